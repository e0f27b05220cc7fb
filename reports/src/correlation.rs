//! Correlation statistics as pure functions, for the metric-versus-latency analysis: Spearman's
//! rho (Pearson on average ranks, so ties are handled), Kendall's tau-b (tie-corrected) and
//! Pearson's r (the reports apply it to logarithms). No I/O.

/// Fewer points than this: the reports say there are too few to conclude anything.
pub const MIN_POINTS: usize = 5;

/// Pearson's correlation coefficient; `None` for fewer than 3 points or a constant series.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len();
    if n != y.len() || n < 3 {
        return None;
    }
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// 1-based ranks, ties sharing the average of the ranks they span.
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && values[order[end + 1]] == values[order[start]] {
            end += 1;
        }
        let rank = (start + end) as f64 / 2.0 + 1.0;
        for &i in &order[start..=end] {
            ranks[i] = rank;
        }
        start = end + 1;
    }
    ranks
}

/// Spearman's rho: Pearson's r of the average ranks.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    pearson(&average_ranks(x), &average_ranks(y))
}

/// Kendall's tau-b: (concordant - discordant) / sqrt((n0 - n1)(n0 - n2)), where n1 and n2 count
/// the pairs tied in x and in y. O(n^2), fine for the tens of points a report has.
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len();
    if n != y.len() || n < 3 {
        return None;
    }
    let (mut concordant, mut discordant, mut ties_x, mut ties_y) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..n {
        for j in i + 1..n {
            let (dx, dy) = (x[i].total_cmp(&x[j]), y[i].total_cmp(&y[j]));
            match (dx.is_eq(), dy.is_eq()) {
                (true, true) => {
                    ties_x += 1;
                    ties_y += 1;
                }
                (true, false) => ties_x += 1,
                (false, true) => ties_y += 1,
                (false, false) if dx == dy => concordant += 1,
                (false, false) => discordant += 1,
            }
        }
    }
    let n0 = (n * (n - 1) / 2) as i64;
    let denominator = (((n0 - ties_x) * (n0 - ties_y)) as f64).sqrt();
    (denominator > 0.0).then(|| (concordant - discordant) as f64 / denominator)
}

/// The three coefficients for one metric against latency, with the point count.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Correlation {
    pub points: usize,
    pub spearman: Option<f64>,
    pub kendall: Option<f64>,
    /// Pearson's r of log(metric) against log(latency).
    pub pearson_log: Option<f64>,
}

impl Correlation {
    /// Positive values only (metrics and latencies are).
    pub fn of(metric: &[f64], latency: &[f64]) -> Self {
        let logs = |v: &[f64]| v.iter().map(|x| x.ln()).collect::<Vec<_>>();
        Self {
            points: metric.len(),
            spearman: spearman(metric, latency),
            kendall: kendall_tau_b(metric, latency),
            pearson_log: pearson(&logs(metric), &logs(latency)),
        }
    }

    pub fn enough_points(&self) -> bool {
        self.points >= MIN_POINTS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn ranks_average_over_ties() {
        assert_eq!(
            average_ranks(&[10.0, 20.0, 20.0, 5.0, 20.0]),
            [2.0, 4.0, 4.0, 1.0, 4.0]
        );
    }

    #[test]
    fn pearson_by_hand() {
        // x = 1..5, y = 2, 4, 5, 4, 5: sxy = 6, sxx = 10, syy = 6 -> r = 6 / sqrt(60).
        let r = pearson(&[1.0, 2.0, 3.0, 4.0, 5.0], &[2.0, 4.0, 5.0, 4.0, 5.0]);
        assert!(close(r, 6.0 / 60f64.sqrt()));
        assert_eq!(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
    }

    #[test]
    fn spearman_by_hand_with_ties() {
        // Ranks of y = 2, 4, 5, 4, 5 are 1, 2.5, 4.5, 2.5, 4.5; against 1..5:
        // sxy = 4 + 0.5 + 0 - 0.5 + 3 = 7, sxx = 10, syy = 9 -> rho = 7 / sqrt(90).
        let rho = spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[2.0, 4.0, 5.0, 4.0, 5.0]);
        assert!(close(rho, 7.0 / 90f64.sqrt()));
        // Monotone but not linear: rho = 1.
        assert!(close(
            spearman(&[1.0, 2.0, 3.0, 4.0], &[1.0, 8.0, 27.0, 64.0]),
            1.0
        ));
        assert!(close(
            spearman(&[1.0, 2.0, 3.0, 4.0], &[4.0, 3.0, 2.0, 1.0]),
            -1.0
        ));
    }

    #[test]
    fn kendall_tau_b_by_hand_with_ties() {
        // x = 1..5, y = 2, 4, 5, 4, 5. Of 10 pairs: concordant 7, discordant 1, tied in y 2
        // ((2,4) and (3,5)), none tied in x -> tau_b = 6 / sqrt(10 * 8).
        let tau = kendall_tau_b(&[1.0, 2.0, 3.0, 4.0, 5.0], &[2.0, 4.0, 5.0, 4.0, 5.0]);
        assert!(close(tau, 6.0 / 80f64.sqrt()), "{tau:?}");
        // No ties: (concordant - discordant) / pairs. 1,2,3 vs 1,3,2: C = 2, D = 1 -> 1/3.
        assert!(close(
            kendall_tau_b(&[1.0, 2.0, 3.0], &[1.0, 3.0, 2.0]),
            1.0 / 3.0
        ));
        assert_eq!(kendall_tau_b(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
    }

    #[test]
    fn log_pearson_and_the_point_count() {
        // latency = 2 * flops^0.5 exactly: a perfect line on log scales, a curve on linear ones.
        let flops = [1.0, 4.0, 9.0, 16.0, 100.0];
        let latency: Vec<f64> = flops.iter().map(|f: &f64| 2.0 * f.sqrt()).collect();
        let c = Correlation::of(&flops, &latency);
        assert!(close(c.pearson_log, 1.0) && close(c.spearman, 1.0) && close(c.kendall, 1.0));
        assert!(c.enough_points());
        assert!(!Correlation::of(&flops[..4], &latency[..4]).enough_points());
    }
}
