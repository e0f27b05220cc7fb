//! Latency statistics as pure functions over raw samples: quantiles, a bootstrap confidence
//! interval of the median, a distribution-free interval for the stopping rule, Tukey outliers.
//! No I/O, no clocks; the bootstrap is seeded so a summary is reproducible.

use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reports::results::LatencySummary;

/// Bootstrap resamples for the median's confidence interval.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;
/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// The q-quantile (0 <= q <= 1) of sorted data, linearly interpolated between order statistics
/// (Hyndman and Fan type 7, NumPy's default). Panics on empty data.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "quantile of no data");
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// A sorted copy.
pub fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

pub fn mean(samples: &[f64]) -> f64 {
    samples.iter().sum::<f64>() / samples.len() as f64
}

/// Sample standard deviation (n - 1); 0 for fewer than two samples.
pub fn std_dev(samples: &[f64]) -> f64 {
    if samples.len() < 2 {
        return 0.0;
    }
    let m = mean(samples);
    let ss: f64 = samples.iter().map(|x| (x - m) * (x - m)).sum();
    (ss / (samples.len() - 1) as f64).sqrt()
}

/// Percentile-bootstrap interval of the median at `level` (e.g. 0.95), seeded.
pub fn bootstrap_median_ci(samples: &[f64], level: f64, resamples: usize, seed: u64) -> [f64; 2] {
    let n = samples.len();
    if n < 2 {
        let v = samples.first().copied().unwrap_or(f64::NAN);
        return [v, v];
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut buffer = vec![0.0; n];
    let mut medians: Vec<f64> = (0..resamples)
        .map(|_| {
            for slot in buffer.iter_mut() {
                *slot = samples[uniform_index(&mut rng, n)];
            }
            buffer.sort_by(f64::total_cmp);
            quantile(&buffer, 0.5)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    [quantile(&medians, tail), quantile(&medians, 1.0 - tail)]
}

/// An index in 0..n (Lemire's multiply-shift; the bias is below 2^-32 for our n).
fn uniform_index(rng: &mut ChaCha8Rng, n: usize) -> usize {
    ((rng.next_u64() as u128 * n as u128) >> 64) as usize
}

/// Distribution-free 95% interval of the median from order statistics (normal approximation to
/// the binomial): cheap enough to evaluate after every sample. None below 6 samples.
pub fn order_statistic_median_ci(sorted: &[f64]) -> Option<[f64; 2]> {
    let n = sorted.len();
    if n < 6 {
        return None;
    }
    let half_width = Z95 * (n as f64).sqrt() / 2.0;
    let lo = ((n as f64 / 2.0 - half_width).floor().max(1.0) as usize).min(n) - 1;
    let hi = ((n as f64 / 2.0 + half_width).ceil() as usize).clamp(1, n) - 1;
    Some([sorted[lo], sorted[hi]])
}

/// Half-width of an interval relative to a centre value.
pub fn relative_half_width(ci: [f64; 2], centre: f64) -> f64 {
    (ci[1] - ci[0]) / 2.0 / centre
}

/// Counts of samples beyond Tukey's fences: (mild: beyond 1.5 IQR, severe: beyond 3 IQR).
/// Severe outliers are counted in both.
pub fn tukey_outliers(sorted: &[f64]) -> (usize, usize) {
    let q1 = quantile(sorted, 0.25);
    let q3 = quantile(sorted, 0.75);
    let iqr = q3 - q1;
    let beyond = |k: f64| {
        sorted
            .iter()
            .filter(|&&x| x < q1 - k * iqr || x > q3 + k * iqr)
            .count()
    };
    (beyond(1.5), beyond(3.0))
}

/// The full summary of a cell's samples (at least one).
pub fn summarize(samples_ms: &[f64], seed: u64) -> LatencySummary {
    let s = sorted(samples_ms);
    let median = quantile(&s, 0.5);
    let ci = bootstrap_median_ci(samples_ms, 0.95, BOOTSTRAP_RESAMPLES, seed);
    let (mild, severe) = tukey_outliers(&s);
    LatencySummary {
        samples: s.len(),
        median_ms: median,
        mean_ms: mean(&s),
        min_ms: s[0],
        max_ms: s[s.len() - 1],
        p10_ms: quantile(&s, 0.10),
        p90_ms: quantile(&s, 0.90),
        p99_ms: quantile(&s, 0.99),
        iqr_ms: quantile(&s, 0.75) - quantile(&s, 0.25),
        std_dev_ms: std_dev(&s),
        ci95_ms: ci,
        ci95_relative: relative_half_width(ci, median),
        outliers_mild: mild,
        outliers_severe: severe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy() {
        // numpy.quantile([1, 2, 3, 4, 10], [0, .25, .5, .9, 1]) = 1, 2, 3, 7.6, 10
        let s = [1.0, 2.0, 3.0, 4.0, 10.0];
        let got: Vec<f64> = [0.0, 0.25, 0.5, 0.9, 1.0]
            .iter()
            .map(|&q| quantile(&s, q))
            .collect();
        let expected = [1.0, 2.0, 3.0, 7.6, 10.0];
        for (g, e) in got.iter().zip(expected) {
            assert!((g - e).abs() < 1e-12, "{got:?}");
        }
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.5);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
    }

    #[test]
    fn mean_and_std_dev_by_hand() {
        // [2, 4, 4, 4, 5, 5, 7, 9]: mean 5, sum of squares 32, sample variance 32 / 7.
        let x = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert_eq!(mean(&x), 5.0);
        assert!((std_dev(&x) - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(std_dev(&[3.0]), 0.0);
    }

    #[test]
    fn tukey_fences_by_hand() {
        // 1..=8 and 30: q1 = 3, q3 = 7, IQR 4; mild fence 13, severe fence 19: 30 is both.
        let s = sorted(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 30.0]);
        assert_eq!(tukey_outliers(&s), (1, 1));
        // 15 is beyond 13 but not 19.
        let s = sorted(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 15.0]);
        assert_eq!(tukey_outliers(&s), (1, 0));
    }

    #[test]
    fn order_statistic_interval_by_hand() {
        // n = 100: half width 1.96 * 10 / 2 = 9.8 -> ranks floor(40.2) = 40 and ceil(59.8) = 60
        // (1-based), i.e. values 40 and 60 of 1..=100.
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(order_statistic_median_ci(&s), Some([40.0, 60.0]));
        assert_eq!(order_statistic_median_ci(&s[..5]), None);
    }

    #[test]
    fn bootstrap_interval_covers_the_median_and_narrows_with_more_samples() {
        // A deterministic spread of values around 10.
        let wide: Vec<f64> = (0..20)
            .map(|i| 10.0 + ((i * 7) % 20) as f64 / 10.0 - 1.0)
            .collect();
        let narrow: Vec<f64> = (0..2000)
            .map(|i| 10.0 + ((i * 7) % 20) as f64 / 10.0 - 1.0)
            .collect();
        let [lo, hi] = bootstrap_median_ci(&wide, 0.95, 2000, 1);
        let median = quantile(&sorted(&wide), 0.5);
        assert!(lo <= median && median <= hi, "[{lo}, {hi}] vs {median}");
        let [nlo, nhi] = bootstrap_median_ci(&narrow, 0.95, 2000, 1);
        assert!(nhi - nlo < hi - lo, "{nlo}..{nhi} vs {lo}..{hi}");
        // Seeded: the same interval twice.
        assert_eq!(bootstrap_median_ci(&wide, 0.95, 2000, 1), [lo, hi]);
        // Constant data: a zero-width interval.
        assert_eq!(bootstrap_median_ci(&[3.0; 10], 0.95, 100, 1), [3.0, 3.0]);
    }

    #[test]
    fn summary_of_known_samples() {
        let x = [5.0, 1.0, 4.0, 2.0, 3.0];
        let s = summarize(&x, 0);
        assert_eq!(
            (s.samples, s.median_ms, s.min_ms, s.max_ms, s.mean_ms),
            (5, 3.0, 1.0, 5.0, 3.0)
        );
        assert_eq!(s.iqr_ms, 2.0);
        assert!((s.p90_ms - 4.6).abs() < 1e-12);
        assert!(s.ci95_ms[0] <= 3.0 && s.ci95_ms[1] >= 3.0);
        assert!((s.ci95_relative - (s.ci95_ms[1] - s.ci95_ms[0]) / 6.0).abs() < 1e-12);
    }
}
