//! The latency regression gate as pure functions: match two runs' cells, bootstrap an interval
//! for each ratio of medians (candidate / baseline) from the raw samples, and call a cell
//! regressed or improved only when the whole interval lies beyond the threshold. No I/O.

use std::collections::BTreeMap;

use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reports::results::{CellKey, CellStatus, Environment, ResultsFile};
use serde::Serialize;

use crate::stats::{quantile, sorted};

/// How the gate decides.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GateSettings {
    /// Smallest slowdown (or speed-up) that counts, as a fraction (0.05 = 5%).
    pub threshold: f64,
    /// Two-sided confidence level of the ratio's interval.
    pub confidence: f64,
    pub resamples: usize,
    pub seed: u64,
    /// Fewer samples than this on either side: no verdict.
    pub min_samples: usize,
}

impl Default for GateSettings {
    /// The defaults chosen by calibration (README, "Latency regression gate").
    fn default() -> Self {
        Self {
            threshold: 0.05,
            confidence: 0.99,
            resamples: 2000,
            seed: 0,
            min_samples: 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Regressed,
    Improved,
    Unchanged,
    /// Too few samples on one side to say anything.
    Insufficient,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Regressed => "REGRESSED",
            Verdict::Improved => "improved",
            Verdict::Unchanged => "unchanged",
            Verdict::Insufficient => "too few samples",
        }
    }
}

/// One matched cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellComparison {
    pub key: CellKey,
    pub baseline_median_ms: f64,
    pub candidate_median_ms: f64,
    /// candidate median / baseline median.
    pub ratio: f64,
    /// Bootstrap interval of the ratio at the settings' confidence.
    pub ratio_ci: [f64; 2],
    pub baseline_samples: usize,
    pub candidate_samples: usize,
    pub verdict: Verdict,
}

/// The gate's answer for two runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateReport {
    pub settings: GateSettings,
    /// Movers first (regressions, then improvements, each by ratio), then the rest by key.
    pub cells: Vec<CellComparison>,
    /// Cells measured in only one of the runs (or not ok in one).
    pub unmatched: Vec<String>,
}

impl GateReport {
    pub fn regressions(&self) -> usize {
        self.count(Verdict::Regressed)
    }

    pub fn count(&self, verdict: Verdict) -> usize {
        self.cells.iter().filter(|c| c.verdict == verdict).count()
    }
}

/// Percentile-bootstrap interval of median(candidate) / median(baseline), resampling both sides
/// independently, seeded.
pub fn bootstrap_ratio_ci(
    baseline: &[f64],
    candidate: &[f64],
    confidence: f64,
    resamples: usize,
    seed: u64,
) -> [f64; 2] {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut a = vec![0.0; baseline.len()];
    let mut b = vec![0.0; candidate.len()];
    let mut ratios: Vec<f64> = (0..resamples)
        .map(|_| {
            let base = resampled_median(baseline, &mut a, &mut rng);
            resampled_median(candidate, &mut b, &mut rng) / base
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0;
    [quantile(&ratios, tail), quantile(&ratios, 1.0 - tail)]
}

fn resampled_median(samples: &[f64], buffer: &mut [f64], rng: &mut ChaCha8Rng) -> f64 {
    let n = samples.len();
    for slot in buffer.iter_mut() {
        *slot = samples[((rng.next_u64() as u128 * n as u128) >> 64) as usize];
    }
    buffer.sort_by(f64::total_cmp);
    quantile(buffer, 0.5)
}

/// Regressed when the whole interval lies above 1 + threshold, improved when below
/// 1 - threshold, otherwise unchanged.
pub fn verdict(ratio_ci: [f64; 2], threshold: f64) -> Verdict {
    if ratio_ci[0] > 1.0 + threshold {
        Verdict::Regressed
    } else if ratio_ci[1] < 1.0 - threshold {
        Verdict::Improved
    } else {
        Verdict::Unchanged
    }
}

/// Compares one cell's samples.
pub fn compare_samples(
    key: CellKey,
    baseline: &[f64],
    candidate: &[f64],
    settings: &GateSettings,
) -> CellComparison {
    let (a, b) = (sorted(baseline), sorted(candidate));
    let enough = a.len() >= settings.min_samples && b.len() >= settings.min_samples;
    let (ma, mb) = (quantile(&a, 0.5), quantile(&b, 0.5));
    let ratio_ci = if enough {
        bootstrap_ratio_ci(
            &a,
            &b,
            settings.confidence,
            settings.resamples,
            settings.seed,
        )
    } else {
        [f64::NAN, f64::NAN]
    };
    CellComparison {
        key,
        baseline_median_ms: ma,
        candidate_median_ms: mb,
        ratio: mb / ma,
        ratio_ci,
        baseline_samples: a.len(),
        candidate_samples: b.len(),
        verdict: if enough {
            verdict(ratio_ci, settings.threshold)
        } else {
            Verdict::Insufficient
        },
    }
}

/// The raw samples of every measured (`ok`) cell of a run, by key.
pub fn samples_by_key(results: &ResultsFile) -> BTreeMap<CellKey, Vec<f64>> {
    results
        .cells
        .iter()
        .filter(|c| c.status == CellStatus::Ok && !c.samples_ms.is_empty())
        .map(|c| (c.key.clone(), c.samples_ms.clone()))
        .collect()
}

/// Matches the cells of two sample sets and compares each pair.
pub fn compare(
    baseline: &BTreeMap<CellKey, Vec<f64>>,
    candidate: &BTreeMap<CellKey, Vec<f64>>,
    settings: &GateSettings,
) -> GateReport {
    let mut cells: Vec<CellComparison> = baseline
        .iter()
        .filter_map(|(key, a)| {
            let b = candidate.get(key)?;
            Some(compare_samples(key.clone(), a, b, settings))
        })
        .collect();
    let mut unmatched: Vec<String> = baseline
        .keys()
        .filter(|k| !candidate.contains_key(*k))
        .map(|k| format!("{k}: only in the baseline"))
        .collect();
    unmatched.extend(
        candidate
            .keys()
            .filter(|k| !baseline.contains_key(*k))
            .map(|k| format!("{k}: only in the candidate")),
    );
    cells.sort_by(|x, y| {
        let rank = |v: Verdict| match v {
            Verdict::Regressed => 0,
            Verdict::Improved => 1,
            Verdict::Unchanged => 2,
            Verdict::Insufficient => 3,
        };
        rank(x.verdict).cmp(&rank(y.verdict)).then_with(|| {
            match x.verdict {
                Verdict::Regressed => y.ratio.total_cmp(&x.ratio),
                Verdict::Improved => x.ratio.total_cmp(&y.ratio),
                _ => std::cmp::Ordering::Equal,
            }
            .then_with(|| x.key.cmp(&y.key))
        })
    });
    GateReport {
        settings: *settings,
        cells,
        unmatched,
    }
}

/// Why two runs cannot be compared: different machines or build settings. Empty when they can.
pub fn incomparable(baseline: &Environment, candidate: &Environment) -> Vec<String> {
    let mut reasons = Vec::new();
    let mut differ = |what: &str, a: &str, b: &str| {
        if a != b {
            reasons.push(format!("{what} differs: baseline `{a}`, candidate `{b}`"));
        }
    };
    differ(
        "machine fingerprint",
        &baseline.machine_fingerprint,
        &candidate.machine_fingerprint,
    );
    differ(
        "build profile",
        &baseline.build_profile,
        &candidate.build_profile,
    );
    differ("opt-level", &baseline.opt_level, &candidate.opt_level);
    differ(
        "debug assertions",
        &baseline.debug_assertions.to_string(),
        &candidate.debug_assertions.to_string(),
    );
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(model: &str) -> CellKey {
        CellKey {
            model: model.into(),
            form: "reparameterized".into(),
            backend: "native".into(),
            threads: 1,
            batch: 1,
            height: 64,
            width: 64,
        }
    }

    /// A deterministic spread around `centre`: +-3% in 20 steps.
    fn spread(centre: f64) -> Vec<f64> {
        (0..20)
            .map(|i| centre * (1.0 + 0.003 * ((i * 7 % 20) as f64 - 10.0)))
            .collect()
    }

    #[test]
    fn verdicts_need_the_whole_interval_beyond_the_threshold() {
        assert_eq!(verdict([1.06, 1.2], 0.05), Verdict::Regressed);
        assert_eq!(verdict([1.04, 1.2], 0.05), Verdict::Unchanged);
        assert_eq!(verdict([0.8, 0.94], 0.05), Verdict::Improved);
        assert_eq!(verdict([0.8, 0.96], 0.05), Verdict::Unchanged);
        assert_eq!(verdict([0.99, 1.01], 0.0), Verdict::Unchanged);
    }

    #[test]
    fn identical_samples_give_a_ratio_of_one_exactly() {
        let s = spread(10.0);
        let ci = bootstrap_ratio_ci(&s, &s, 0.95, 500, 1);
        assert!(ci[0] <= 1.0 && ci[1] >= 1.0, "{ci:?}");
        let c = compare_samples(key("a"), &s, &s, &GateSettings::default());
        assert_eq!(c.ratio, 1.0);
        assert_eq!(c.verdict, Verdict::Unchanged);
    }

    #[test]
    fn a_20_percent_slowdown_is_caught_and_a_2_percent_one_is_not() {
        let settings = GateSettings::default();
        let base = spread(10.0);
        let slow: Vec<f64> = base.iter().map(|x| x * 1.2).collect();
        let c = compare_samples(key("a"), &base, &slow, &settings);
        assert_eq!(c.verdict, Verdict::Regressed, "{c:?}");
        assert!((c.ratio - 1.2).abs() < 1e-12);
        assert!(
            c.ratio_ci[0] > 1.05 && c.ratio_ci[1] < 1.35,
            "{:?}",
            c.ratio_ci
        );
        let slightly: Vec<f64> = base.iter().map(|x| x * 1.02).collect();
        assert_eq!(
            compare_samples(key("a"), &base, &slightly, &settings).verdict,
            Verdict::Unchanged
        );
        let fast: Vec<f64> = base.iter().map(|x| x * 0.7).collect();
        assert_eq!(
            compare_samples(key("a"), &base, &fast, &settings).verdict,
            Verdict::Improved
        );
        let few = &base[..3];
        assert_eq!(
            compare_samples(key("a"), few, few, &settings).verdict,
            Verdict::Insufficient
        );
    }

    #[test]
    fn the_bootstrap_is_seeded_and_its_interval_widens_with_confidence() {
        let a = spread(10.0);
        let b: Vec<f64> = spread(11.0).into_iter().rev().collect();
        let ci95 = bootstrap_ratio_ci(&a, &b, 0.95, 1000, 3);
        assert_eq!(ci95, bootstrap_ratio_ci(&a, &b, 0.95, 1000, 3));
        let ci99 = bootstrap_ratio_ci(&a, &b, 0.99, 1000, 3);
        assert!(ci99[0] <= ci95[0] && ci99[1] >= ci95[1]);
        assert!(ci95[0] < 1.1 && ci95[1] > 1.1, "{ci95:?}");
    }

    #[test]
    fn cells_are_matched_by_key_and_movers_come_first() {
        let settings = GateSettings::default();
        let mut a = BTreeMap::new();
        let mut b = BTreeMap::new();
        for (m, factor) in [("s0", 1.0), ("s1", 1.5), ("s2", 0.5), ("s3", 1.25)] {
            a.insert(key(m), spread(10.0));
            b.insert(key(m), spread(10.0 * factor));
        }
        a.insert(key("only-a"), spread(1.0));
        b.insert(key("only-b"), spread(1.0));
        let report = compare(&a, &b, &settings);
        let order: Vec<&str> = report.cells.iter().map(|c| c.key.model.as_str()).collect();
        assert_eq!(order, ["s1", "s3", "s2", "s0"]);
        assert_eq!(report.regressions(), 2);
        assert_eq!(report.count(Verdict::Improved), 1);
        assert_eq!(report.unmatched.len(), 2);
        assert!(report.unmatched[0].contains("only-a") && report.unmatched[0].contains("baseline"));
    }
}
