//! Latency statistics as pure functions over raw samples: quantiles, a bootstrap confidence
//! interval of the median (hierarchical when the samples come from several processes: the
//! processes are resampled, then each one's samples), the spread and modes of process medians,
//! a distribution-free interval for the stopping rule, Tukey outliers. No I/O, no clocks; the
//! bootstrap is seeded so a summary is reproducible.

use crate::results::{LatencySummary, ProcessSpread};
use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

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
    if samples.len() < 2 {
        let v = samples.first().copied().unwrap_or(f64::NAN);
        return [v, v];
    }
    hierarchical_median_ci(&[samples], level, resamples, seed)
}

/// The medians of `resamples` two-level bootstrap resamples of grouped samples (one group per
/// process): each resample draws as many groups as there are, with replacement, then from each
/// drawn group as many samples as it has, with replacement, and takes the median of all drawn
/// samples. Between-process variance thus enters the spread of the medians, which resampling
/// the pooled samples would hide. One group is the ordinary bootstrap (no draw of groups).
pub fn resampled_medians(groups: &[&[f64]], resamples: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let groups: Vec<&[f64]> = groups.iter().copied().filter(|g| !g.is_empty()).collect();
    let mut buffer = Vec::with_capacity(groups.iter().map(|g| g.len()).sum());
    (0..resamples)
        .map(|_| {
            buffer.clear();
            for i in 0..groups.len() {
                let group = if groups.len() == 1 {
                    groups[i]
                } else {
                    groups[uniform_index(rng, groups.len())]
                };
                buffer.extend((0..group.len()).map(|_| group[uniform_index(rng, group.len())]));
            }
            buffer.sort_by(f64::total_cmp);
            if buffer.is_empty() {
                f64::NAN
            } else {
                quantile(&buffer, 0.5)
            }
        })
        .collect()
}

/// Percentile interval at `level` of the hierarchical bootstrap of the median
/// (`resampled_medians`), seeded.
pub fn hierarchical_median_ci(
    groups: &[&[f64]],
    level: f64,
    resamples: usize,
    seed: u64,
) -> [f64; 2] {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    percentile_interval(resampled_medians(groups, resamples, &mut rng), level)
}

/// The central interval holding `level` of `values` (e.g. bootstrap replicates): their
/// (1 - level)/2 and (1 + level)/2 quantiles.
pub fn percentile_interval(mut values: Vec<f64>, level: f64) -> [f64; 2] {
    values.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    [quantile(&values, tail), quantile(&values, 1.0 - tail)]
}

/// How the processes of a cell differ: each one's median, max/min - 1, and whether they form
/// separate modes (`separate_modes`). Groups are the samples of each process, in order.
pub fn process_spread(groups: &[&[f64]]) -> ProcessSpread {
    let medians: Vec<f64> = groups
        .iter()
        .filter(|g| !g.is_empty())
        .map(|g| quantile(&sorted(g), 0.5))
        .collect();
    let (lo, hi) = medians
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), &m| {
            (lo.min(m), hi.max(m))
        });
    ProcessSpread {
        samples_per_process: groups.iter().map(|g| g.len()).collect(),
        spread: if medians.is_empty() {
            0.0
        } else {
            hi / lo - 1.0
        },
        multimodal: separate_modes(&medians),
        medians_ms: medians,
    }
}

/// Smallest gap between two modes, relative to the overall median, that counts.
const MODE_GAP: f64 = 0.02;

/// Whether process medians fall into two groups of at least two processes each, with the gap
/// between the groups wider than either group's own range and than 2% of the median of all:
/// then each process landed in one of two speeds, and which one is chance (e.g. where memory
/// landed), not noise around one speed. Needs at least four processes.
pub fn separate_modes(medians: &[f64]) -> bool {
    let m = sorted(medians);
    if m.len() < 4 {
        return false;
    }
    let centre = quantile(&m, 0.5);
    (2..=m.len() - 2).any(|k| {
        let gap = m[k] - m[k - 1];
        gap > MODE_GAP * centre && gap > m[k - 1] - m[0] && gap > m[m.len() - 1] - m[k]
    })
}

/// `summarize` of samples taken by several processes (`groups`, in order): the same pooled
/// statistics, but the median's interval from the hierarchical bootstrap, and the processes'
/// spread. One group gives `summarize` and no spread.
pub fn summarize_processes(
    groups: &[&[f64]],
    seed: u64,
) -> (LatencySummary, Option<ProcessSpread>) {
    let pooled: Vec<f64> = groups.concat();
    let mut summary = summarize(&pooled, seed);
    if groups.len() < 2 {
        return (summary, None);
    }
    let ci = hierarchical_median_ci(groups, 0.95, BOOTSTRAP_RESAMPLES, seed);
    summary.ci95_ms = ci;
    summary.ci95_relative = relative_half_width(ci, summary.median_ms);
    (summary, Some(process_spread(groups)))
}

/// An index in 0..n (Lemire's multiply-shift; the bias is below 2^-32 for our n).
pub fn uniform_index(rng: &mut ChaCha8Rng, n: usize) -> usize {
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

/// The two-sided prediction interval, at `level`, of one more draw from the normal population
/// `values` are a sample of: mean ± t(n-1) · sd · √(1 + 1/n) (Student's t; it accounts for the
/// mean and the spread being estimated). `None` below two values or for a level outside (0, 1).
pub fn prediction_interval(values: &[f64], level: f64) -> Option<[f64; 2]> {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    let n = values.len();
    if n < 2 || !(level > 0.0 && level < 1.0) {
        return None;
    }
    let centre = mean(values);
    let t = StudentsT::new(0.0, 1.0, (n - 1) as f64).ok()?;
    let quantile = t.inverse_cdf(0.5 + level / 2.0);
    let half = quantile * std_dev(values) * (1.0 + 1.0 / n as f64).sqrt();
    Some([centre - half, centre + half])
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

    #[test]
    fn one_process_is_the_ordinary_bootstrap() {
        let x: Vec<f64> = (0..40).map(|i| 10.0 + (i * 7 % 13) as f64).collect();
        let (summary, spread) = summarize_processes(&[&x], 3);
        assert_eq!(summary, summarize(&x, 3));
        assert!(spread.is_none());
    }

    #[test]
    fn the_two_level_bootstrap_draws_processes_then_samples() {
        // Two processes, each constant: a resample draws (a, a), (b, b) or (a, b) with
        // probabilities 1/4, 1/4, 1/2, so its pooled median is 1, 3 or 2 in those shares.
        let (a, b) = ([1.0; 3], [3.0; 3]);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let medians = resampled_medians(&[&a, &b], 20_000, &mut rng);
        let share = |v: f64| medians.iter().filter(|&&m| m == v).count() as f64 / 20_000.0;
        assert!((share(1.0) - 0.25).abs() < 0.015, "{}", share(1.0));
        assert!((share(3.0) - 0.25).abs() < 0.015, "{}", share(3.0));
        assert!((share(2.0) - 0.5).abs() < 0.015, "{}", share(2.0));
        // So the 95% interval spans both processes' values.
        assert_eq!(hierarchical_median_ci(&[&a, &b], 0.95, 2000, 0), [1.0, 3.0]);
    }

    #[test]
    fn between_process_variance_widens_the_interval() {
        // Ten processes at 1, 2, ..., 10 ms, 50 samples each, tight within: pooled, the median
        // looks certain (500 samples); resampling processes shows it is not.
        let groups: Vec<Vec<f64>> = (1..=10)
            .map(|p| (0..50).map(|i| p as f64 + 0.001 * i as f64).collect())
            .collect();
        let refs: Vec<&[f64]> = groups.iter().map(|g| &g[..]).collect();
        let pooled = bootstrap_median_ci(&groups.concat(), 0.95, 2000, 0);
        let nested = hierarchical_median_ci(&refs, 0.95, 2000, 0);
        assert!(pooled[1] - pooled[0] < 1.1, "{pooled:?}");
        assert!(nested[1] - nested[0] > 3.0, "{nested:?}");
        let (summary, spread) = summarize_processes(&refs, 0);
        assert_eq!(summary.ci95_ms, nested);
        assert_eq!(summary.samples, 500);
        let spread = spread.unwrap();
        assert_eq!(spread.samples_per_process, vec![50; 10]);
        // Medians 1.0245, ..., 10.0245: max/min - 1 = 9 / 1.0245.
        assert!(
            (spread.spread - 9.0 / 1.0245).abs() < 1e-9,
            "{}",
            spread.spread
        );
        // Evenly spaced: one spread-out mode, not two.
        assert!(!spread.multimodal);
    }

    #[test]
    fn two_speeds_are_flagged_as_modes_and_noise_is_not() {
        // The S1 reparameterized, 2 threads, 8 processes: 8.2 or 10.4 ms.
        let two = [8.21, 8.40, 10.51, 10.35, 10.47, 10.38, 8.22, 10.35];
        assert!(separate_modes(&two));
        // Its 1-thread row: one speed, one slow process (a single process is no mode).
        let one = [15.67, 15.74, 15.60, 15.52, 15.69, 15.76, 15.72, 16.36];
        assert!(!separate_modes(&one));
        // A gap wider than each group but under 2% of the median is noise.
        assert!(!separate_modes(&[10.0, 10.01, 10.1, 10.11]));
        // A gap over 2% but narrower than a group's own range is one wide mode.
        assert!(!separate_modes(&[10.0, 10.5, 10.8, 11.0, 11.4]));
        // Fewer than four processes cannot show two modes of two.
        assert!(!separate_modes(&[8.0, 8.0, 10.0]));
        let groups: Vec<Vec<f64>> = two.iter().map(|&m| vec![m - 0.01, m, m + 0.01]).collect();
        let refs: Vec<&[f64]> = groups.iter().map(|g| &g[..]).collect();
        let spread = process_spread(&refs);
        assert!(spread.multimodal);
        assert!((spread.spread - (10.51 / 8.21 - 1.0)).abs() < 1e-12);
        assert_eq!(spread.medians_ms, two.to_vec());
    }

    #[test]
    fn the_prediction_interval_matches_the_t_table() {
        // n = 10, sd 1, mean 0: t(9) at 99% two-sided is 3.2498; sqrt(1.1) = 1.0488.
        let values: Vec<f64> = (0..10)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let sd = super::std_dev(&values);
        let [lo, hi] = super::prediction_interval(&values, 0.99).unwrap();
        let expected = 3.2498 * sd * 1.1f64.sqrt();
        assert!(
            (hi - expected).abs() < 1e-3 && (lo + expected).abs() < 1e-3,
            "{lo} {hi}"
        );
        assert_eq!(super::prediction_interval(&[1.0], 0.99), None);
        assert_eq!(super::prediction_interval(&values, 1.0), None);
    }
}
