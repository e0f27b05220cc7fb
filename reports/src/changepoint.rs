//! Change points in a series of latencies (one cell's medians over commits): E-divisive means
//! (Matteson & James 2014, as Hunter and MongoDB's performance CI use it), with a permutation
//! test for each candidate. Pure functions; the caller decides what size of change matters.

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::stats::{quantile, sorted, uniform_index};

fn median(values: &[f64]) -> f64 {
    quantile(&sorted(values), 0.5)
}

/// How change points are searched for and tested.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChangePointSettings {
    /// A candidate is a change point when its permutation p-value is at most this.
    pub significance: f64,
    /// Permutations of the segment per test (the smallest p-value is 1 / (permutations + 1)).
    pub permutations: usize,
    /// The fewest points on either side of a change point.
    pub min_segment: usize,
    /// Seeds the permutations, so a series always gives the same answer.
    pub seed: u64,
}

impl Default for ChangePointSettings {
    fn default() -> Self {
        ChangePointSettings {
            significance: 0.05,
            permutations: 199,
            min_segment: 3,
            seed: 0,
        }
    }
}

/// A detected change: the series is different from `index` on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChangePoint {
    /// The first point after the change.
    pub index: usize,
    pub p_value: f64,
    /// Medians of the segments on either side (between the neighbouring change points).
    pub median_before: f64,
    pub median_after: f64,
}

impl ChangePoint {
    /// after / before - 1: +0.05 is 5% slower after the change.
    pub fn relative_change(&self) -> f64 {
        self.median_after / self.median_before - 1.0
    }
}

/// The change points of `series`, in order. Each round finds the split with the largest
/// divergence statistic over the current segments and keeps it if the permutation test finds
/// it significant; it stops at the first split that is not.
pub fn e_divisive(series: &[f64], settings: &ChangePointSettings) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
    let mut bounds = vec![0, series.len()];
    loop {
        let best = bounds
            .windows(2)
            .filter_map(|w| {
                best_split(&series[w[0]..w[1]], settings.min_segment).map(|s| (w[0], w[1], s))
            })
            .max_by(|a, b| a.2 .1.total_cmp(&b.2 .1));
        let Some((start, end, (offset, q))) = best else {
            break;
        };
        let p = permutation_p_value(&series[start..end], q, settings, &mut rng);
        if p > settings.significance {
            break;
        }
        bounds.push(start + offset);
        bounds.sort_unstable();
    }
    bounds[1..bounds.len() - 1].to_vec()
}

/// `e_divisive` with each change's p-value and the medians around it.
pub fn change_points(series: &[f64], settings: &ChangePointSettings) -> Vec<ChangePoint> {
    let splits = e_divisive(series, settings);
    let mut bounds = vec![0];
    bounds.extend(&splits);
    bounds.push(series.len());
    bounds
        .windows(3)
        .map(|w| {
            let segment = &series[w[0]..w[2]];
            let q = divergence(segment, w[1] - w[0]);
            let mut rng = ChaCha8Rng::seed_from_u64(settings.seed ^ w[1] as u64);
            ChangePoint {
                index: w[1],
                p_value: permutation_p_value(segment, q, settings, &mut rng),
                median_before: median(&series[w[0]..w[1]]),
                median_after: median(&series[w[1]..w[2]]),
            }
        })
        .collect()
}

/// The split of `segment` with the largest statistic: (index of the first point after it, Q).
fn best_split(segment: &[f64], min_segment: usize) -> Option<(usize, f64)> {
    let min = min_segment.max(2);
    if segment.len() < 2 * min {
        return None;
    }
    statistics(segment)
        .into_iter()
        .enumerate()
        .filter(|(tau, _)| *tau >= min && segment.len() - tau >= min)
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// Q at one split (for reporting a known change point's p-value).
fn divergence(segment: &[f64], tau: usize) -> f64 {
    statistics(segment)[tau]
}

/// Q(tau) for every split tau of `segment` (0 where a side has fewer than two points), in
/// O(n^2): the sums of distances within the left part, within the right part and between them
/// are updated as each point moves from the right part to the left.
fn statistics(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    if n == 0 {
        return vec![0.0];
    }
    let d = |i: usize, j: usize| (x[i] - x[j]).abs();
    let mut within_left = 0.0;
    let mut within_right: f64 = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .map(|(i, j)| d(i, j))
        .sum();
    let mut between = 0.0;
    // Q(0) and Q(n) split nothing.
    let mut q = vec![0.0];
    for tau in 1..n {
        // Point tau - 1 moves from the right part to the left.
        let moved = tau - 1;
        let to_left: f64 = (0..moved).map(|i| d(i, moved)).sum();
        let to_right: f64 = (tau..n).map(|j| d(moved, j)).sum();
        within_left += to_left;
        within_right -= to_right;
        between += to_right - to_left;
        let (m1, m2) = (tau as f64, (n - tau) as f64);
        if tau >= 2 && n - tau >= 2 {
            let pairs = |m: f64| m * (m - 1.0) / 2.0;
            let energy =
                2.0 * between / (m1 * m2) - within_left / pairs(m1) - within_right / pairs(m2);
            q.push(m1 * m2 / (m1 + m2) * energy);
        } else {
            q.push(0.0);
        }
    }
    q.push(0.0);
    q
}

/// The share of random orderings of `segment` whose best split is at least as divergent as
/// the observed one (with the observed ordering counted, so never 0).
fn permutation_p_value(
    segment: &[f64],
    observed: f64,
    settings: &ChangePointSettings,
    rng: &mut ChaCha8Rng,
) -> f64 {
    let mut shuffled = segment.to_vec();
    let mut as_large = 0;
    for _ in 0..settings.permutations {
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, uniform_index(rng, i + 1));
        }
        let best = best_split(&shuffled, settings.min_segment).map_or(0.0, |(_, q)| q);
        if best >= observed {
            as_large += 1;
        }
    }
    (as_large + 1) as f64 / (settings.permutations + 1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::Rng;

    /// Gaussian noise (Box-Muller) of relative size `sd` around `level`.
    fn noise(rng: &mut ChaCha8Rng, n: usize, level: f64, sd: f64) -> Vec<f64> {
        let mut uniform =
            || -> f64 { (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 + f64::EPSILON };
        (0..n)
            .map(|_| {
                let z = (-2.0 * uniform().ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos();
                level * (1.0 + sd * z)
            })
            .collect()
    }

    #[test]
    fn a_step_is_found_where_it_is() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut series = noise(&mut rng, 20, 10.0, 0.01);
        series.extend(noise(&mut rng, 20, 10.5, 0.01));
        let found = change_points(&series, &ChangePointSettings::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].index, 20);
        assert!(found[0].p_value <= 0.01, "{found:?}");
        assert!(
            (found[0].relative_change() - 0.05).abs() < 0.01,
            "{found:?}"
        );
    }

    #[test]
    fn two_steps_and_an_outlier() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut series = noise(&mut rng, 15, 10.0, 0.01);
        series.extend(noise(&mut rng, 15, 11.0, 0.01));
        series.extend(noise(&mut rng, 15, 10.2, 0.01));
        // One run on a busy machine is no change.
        series[7] = 14.0;
        let found = e_divisive(&series, &ChangePointSettings::default());
        assert_eq!(found, [15, 30]);
    }

    #[test]
    fn a_slow_drift_is_one_change_of_its_whole_size() {
        // Five commits of +2% each, eight runs apiece, 1% noise.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut series = noise(&mut rng, 10, 10.0, 0.01);
        for step in 1..=5 {
            series.extend(noise(&mut rng, 8, 10.0 * 1.02f64.powi(step), 0.01));
        }
        let found = change_points(&series, &ChangePointSettings::default());
        assert!(!found.is_empty());
        let total: f64 = found
            .iter()
            .map(|c| 1.0 + c.relative_change())
            .product::<f64>()
            - 1.0;
        assert!(total > 0.06, "{found:?}");
    }

    #[test]
    fn pure_noise_rarely_has_a_change_point() {
        // The false-positive rate is the significance level of the first test: about 5%.
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let settings = ChangePointSettings {
            permutations: 99,
            ..ChangePointSettings::default()
        };
        let trials = 200;
        let false_alarms = (0..trials)
            .filter(|&t| {
                let series = noise(&mut rng, 30, 10.0, 0.02);
                !e_divisive(
                    &series,
                    &ChangePointSettings {
                        seed: t,
                        ..settings
                    },
                )
                .is_empty()
            })
            .count();
        let rate = false_alarms as f64 / trials as f64;
        eprintln!("false change points on pure noise: {false_alarms} of {trials}");
        assert!(rate < 0.10, "false change points on pure noise: {rate}");
    }

    #[test]
    fn short_and_constant_series_have_none() {
        let settings = ChangePointSettings::default();
        assert!(e_divisive(&[], &settings).is_empty());
        assert!(e_divisive(&[1.0, 2.0, 3.0, 4.0, 5.0], &settings).is_empty());
        assert!(e_divisive(&[3.0; 40], &settings).is_empty());
    }

    #[test]
    fn the_statistic_matches_its_definition() {
        let x = [1.0, 2.0, 4.0, 7.0, 7.5, 9.0];
        let q = statistics(&x);
        for (tau, &q_tau) in q.iter().enumerate().take(5).skip(2) {
            let (l, r) = x.split_at(tau);
            let within = |s: &[f64]| {
                let mut sum = 0.0;
                for i in 0..s.len() {
                    for j in i + 1..s.len() {
                        sum += (s[i] - s[j]).abs();
                    }
                }
                sum / (s.len() * (s.len() - 1) / 2) as f64
            };
            let between: f64 = l
                .iter()
                .flat_map(|a| r.iter().map(move |b| (a - b).abs()))
                .sum::<f64>()
                / (l.len() * r.len()) as f64;
            let (m1, m2) = (l.len() as f64, r.len() as f64);
            let expected = m1 * m2 / (m1 + m2) * (2.0 * between - within(l) - within(r));
            assert!(
                (q_tau - expected).abs() < 1e-12,
                "tau {tau}: {q_tau} vs {expected}"
            );
        }
    }
}
