//! The latency regression gate as pure functions: match two runs' cells, bootstrap an interval
//! for each ratio of medians (candidate / baseline) from the raw samples, and call a cell
//! regressed or improved only when the whole interval lies beyond the threshold. No I/O.

use std::collections::BTreeMap;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reports::results::{CellKey, CellResult, CellStatus, Environment};
use serde::Serialize;

use crate::stats::{percentile_interval, quantile, resampled_medians, sorted};

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
    /// A side was measured while other processes loaded the machine: not judged.
    UnderLoad,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Regressed => "REGRESSED",
            Verdict::Improved => "improved",
            Verdict::Unchanged => "unchanged",
            Verdict::Insufficient => "too few samples",
            Verdict::UnderLoad => "NOT JUDGED: under load",
        }
    }

    /// Whether the cell was compared validly (a real verdict, not a refusal).
    pub fn judged(self) -> bool {
        matches!(
            self,
            Verdict::Regressed | Verdict::Improved | Verdict::Unchanged
        )
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
    /// Foreign load of each side (baseline, candidate), when one was under load.
    #[serde(skip_serializing_if = "is_none_pair")]
    pub foreign_load: [Option<f64>; 2],
}

fn is_none_pair(pair: &[Option<f64>; 2]) -> bool {
    pair.iter().all(Option::is_none)
}

/// The gate's answer for two runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateReport {
    pub settings: GateSettings,
    /// Movers first (regressions, then improvements, each by ratio), then the rest by key.
    pub cells: Vec<CellComparison>,
    /// Cells measured in only one of the runs (or not ok in one), with why.
    pub unmatched: Vec<String>,
}

impl GateReport {
    pub fn regressions(&self) -> usize {
        self.count(Verdict::Regressed)
    }

    pub fn count(&self, verdict: Verdict) -> usize {
        self.cells.iter().filter(|c| c.verdict == verdict).count()
    }

    /// Cells with a real verdict (regressed, improved or unchanged).
    pub fn compared(&self) -> usize {
        self.cells.iter().filter(|c| c.verdict.judged()).count()
    }

    /// The cells measured under foreign load, each described with both sides' load.
    pub fn under_load(&self) -> Vec<String> {
        let show = |l: Option<f64>| l.map_or("-".to_string(), |l| format!("{l:.2}"));
        self.cells
            .iter()
            .filter(|c| c.verdict == Verdict::UnderLoad)
            .map(|c| {
                format!(
                    "`{}` was measured under foreign load (busy cores of other processes: baseline {}, candidate {}; limit {}): measure it again on a quiet machine",
                    c.key,
                    show(c.foreign_load[0]),
                    show(c.foreign_load[1]),
                    reports::results::FOREIGN_LOAD_LIMIT
                )
            })
            .collect()
    }
}

/// The gate's final word: exit 2 with reasons when it must not judge, else 1 on a regression,
/// else 0; `compared` counts the cells with a real verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub refused: Vec<String>,
    pub compared: usize,
    pub regressions: usize,
}

impl Decision {
    /// The decision on one report, given the runs' own problems (`run_problems`).
    pub fn of(report: &GateReport, problems: Vec<String>) -> Decision {
        Decision::new(
            problems,
            report.under_load(),
            report.compared(),
            report.regressions(),
        )
    }

    /// The decision when the cells that looked regressed or loaded in `report` were measured
    /// again in `confirmation`: those count only by their confirmation.
    pub fn confirmed(
        report: &GateReport,
        confirmation: &GateReport,
        problems: Vec<String>,
    ) -> Decision {
        let settled = report.count(Verdict::Unchanged) + report.count(Verdict::Improved);
        Decision::new(
            problems,
            confirmation.under_load(),
            settled + confirmation.compared(),
            confirmation.regressions(),
        )
    }

    fn new(
        mut refused: Vec<String>,
        under_load: Vec<String>,
        compared: usize,
        regressions: usize,
    ) -> Decision {
        refused.extend(under_load);
        if compared == 0 {
            refused.push("no cell was compared validly (every matched cell had too few samples or was under load, or no cell was measured in both runs): a verdict needs at least one".into());
        }
        Decision {
            refused,
            compared,
            regressions,
        }
    }

    pub fn exit_code(&self) -> u8 {
        if !self.refused.is_empty() {
            2
        } else if self.regressions > 0 {
            1
        } else {
            0
        }
    }
}

/// The cells of one run by key; a key that appears twice is an error (which one would count?).
pub fn cells_by_key(list: &[CellResult]) -> Result<BTreeMap<CellKey, CellResult>, String> {
    let mut cells = BTreeMap::new();
    for cell in list {
        if cells.insert(cell.key.clone(), cell.clone()).is_some() {
            return Err(format!(
                "cell `{}` appears more than once; a results file holds each cell once",
                cell.key
            ));
        }
    }
    Ok(cells)
}

/// Why a run's cells cannot be judged at all: implausible samples in a measured cell, or a
/// run that was interrupted. `side` names the run in the messages.
pub fn run_problems(
    side: &str,
    interrupted: bool,
    cells: &BTreeMap<CellKey, CellResult>,
) -> Vec<String> {
    let mut problems = Vec::new();
    if interrupted {
        problems.push(format!(
            "the {side} run was interrupted: a verdict on part of a scenario could pass a regression in the rest"
        ));
    }
    for cell in cells.values().filter(|c| c.status == CellStatus::Ok) {
        if let Some(why) = cell.implausible() {
            problems.push(format!("{side} cell `{}`: {why}: not a latency", cell.key));
        }
    }
    problems
}

/// Percentile-bootstrap interval of median(candidate) / median(baseline), resampling both sides
/// independently, seeded. Each side is its samples grouped by the process that took them: with
/// several groups the processes are resampled first (`stats::resampled_medians`), so a
/// difference between processes is not mistaken for one between builds.
pub fn bootstrap_ratio_ci(
    baseline: &[&[f64]],
    candidate: &[&[f64]],
    confidence: f64,
    resamples: usize,
    seed: u64,
) -> [f64; 2] {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let base = resampled_medians(baseline, resamples, &mut rng);
    let cand = resampled_medians(candidate, resamples, &mut rng);
    let ratios = cand.iter().zip(&base).map(|(c, b)| c / b).collect();
    percentile_interval(ratios, confidence)
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

/// Compares one cell's samples, each side grouped by the process that took them.
pub fn compare_samples(
    key: CellKey,
    baseline: &[&[f64]],
    candidate: &[&[f64]],
    settings: &GateSettings,
) -> CellComparison {
    let (a, b) = (sorted(&baseline.concat()), sorted(&candidate.concat()));
    let enough = a.len() >= settings.min_samples && b.len() >= settings.min_samples;
    let (ma, mb) = (quantile(&a, 0.5), quantile(&b, 0.5));
    let ratio_ci = if enough {
        bootstrap_ratio_ci(
            baseline,
            candidate,
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
        foreign_load: [None, None],
    }
}

/// Matches the cells of two runs and compares each pair measured (`ok`) in both; the others
/// are listed as unmatched with their status on each side.
pub fn compare(
    baseline: &BTreeMap<CellKey, CellResult>,
    candidate: &BTreeMap<CellKey, CellResult>,
    settings: &GateSettings,
) -> GateReport {
    let measured = |c: &CellResult| c.status == CellStatus::Ok && !c.samples_ms.is_empty();
    let mut cells = Vec::new();
    let mut unmatched = Vec::new();
    for (key, a) in baseline {
        match candidate.get(key) {
            Some(b) if measured(a) && measured(b) => cells.push(compare_cells(a, b, settings)),
            Some(b) => unmatched.push(format!(
                "{key}: {} in the baseline, {} in the candidate",
                status_of(a),
                status_of(b)
            )),
            None => unmatched.push(format!("{key}: only in the baseline")),
        }
    }
    unmatched.extend(
        candidate
            .keys()
            .filter(|k| !baseline.contains_key(*k))
            .map(|k| format!("{k}: only in the candidate")),
    );
    sort_movers_first(&mut cells);
    GateReport {
        settings: *settings,
        cells,
        unmatched,
    }
}

/// A cell's status with its reason, for the unmatched list.
fn status_of(cell: &CellResult) -> String {
    match (&cell.status, &cell.reason) {
        (CellStatus::Ok, _) => "measured".into(),
        (status, Some(reason)) => format!("{status} ({reason})"),
        (status, None) => status.to_string(),
    }
}

/// Compares two measured cells; one measured under load gets no verdict.
fn compare_cells(a: &CellResult, b: &CellResult, settings: &GateSettings) -> CellComparison {
    let mut c = compare_samples(
        a.key.clone(),
        &a.sample_groups(),
        &b.sample_groups(),
        settings,
    );
    if a.under_load() || b.under_load() {
        c.verdict = Verdict::UnderLoad;
        c.foreign_load = [a.foreign_load, b.foreign_load];
    }
    c
}

/// Regressions first, then improvements (each by size), then the rest by key.
pub fn sort_movers_first(cells: &mut [CellComparison]) {
    cells.sort_by(|x, y| {
        let rank = |v: Verdict| match v {
            Verdict::Regressed => 0,
            Verdict::Improved => 1,
            Verdict::Unchanged => 2,
            Verdict::UnderLoad => 3,
            Verdict::Insufficient => 4,
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
    use models::testing::assert_contains;

    fn key(model: &str) -> CellKey {
        CellKey {
            model: model.into(),
            form: "reparameterized".into(),
            backend: "native".into(),
            precision: "fp32".into(),
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
        let ci = bootstrap_ratio_ci(&[&s], &[&s], 0.95, 500, 1);
        assert!(ci[0] <= 1.0 && ci[1] >= 1.0, "{ci:?}");
        let c = compare_samples(key("a"), &[&s[..]], &[&s[..]], &GateSettings::default());
        assert_eq!(c.ratio, 1.0);
        assert_eq!(c.verdict, Verdict::Unchanged);
    }

    #[test]
    fn a_20_percent_slowdown_is_caught_and_a_2_percent_one_is_not() {
        let settings = GateSettings::default();
        let base = spread(10.0);
        let slow: Vec<f64> = base.iter().map(|x| x * 1.2).collect();
        let c = compare_samples(key("a"), &[&base[..]], &[&slow[..]], &settings);
        assert_eq!(c.verdict, Verdict::Regressed, "{c:?}");
        assert!((c.ratio - 1.2).abs() < 1e-12);
        assert!(
            c.ratio_ci[0] > 1.05 && c.ratio_ci[1] < 1.35,
            "{:?}",
            c.ratio_ci
        );
        let slightly: Vec<f64> = base.iter().map(|x| x * 1.02).collect();
        assert_eq!(
            compare_samples(key("a"), &[&base[..]], &[&slightly[..]], &settings).verdict,
            Verdict::Unchanged
        );
        let fast: Vec<f64> = base.iter().map(|x| x * 0.7).collect();
        assert_eq!(
            compare_samples(key("a"), &[&base[..]], &[&fast[..]], &settings).verdict,
            Verdict::Improved
        );
        let few = &base[..3];
        assert_eq!(
            compare_samples(key("a"), &[few], &[few], &settings).verdict,
            Verdict::Insufficient
        );
    }

    #[test]
    fn the_bootstrap_is_seeded_and_its_interval_widens_with_confidence() {
        let a = spread(10.0);
        let b: Vec<f64> = spread(11.0).into_iter().rev().collect();
        let ci95 = bootstrap_ratio_ci(&[&a], &[&b], 0.95, 1000, 3);
        assert_eq!(ci95, bootstrap_ratio_ci(&[&a], &[&b], 0.95, 1000, 3));
        let ci99 = bootstrap_ratio_ci(&[&a], &[&b], 0.99, 1000, 3);
        assert!(ci99[0] <= ci95[0] && ci99[1] >= ci95[1]);
        assert!(ci95[0] < 1.1 && ci95[1] > 1.1, "{ci95:?}");
    }

    fn cell(model: &str, samples: Vec<f64>) -> CellResult {
        let mut c = CellResult::unmeasured(key(model), Default::default());
        c.status = CellStatus::Ok;
        c.samples_ms = samples;
        c
    }

    fn cells(list: Vec<CellResult>) -> BTreeMap<CellKey, CellResult> {
        list.into_iter().map(|c| (c.key.clone(), c)).collect()
    }

    #[test]
    fn a_difference_between_processes_is_not_taken_for_one_between_builds() {
        // The same build both sides, 4 processes each, where a process runs at 10 or 11 ms
        // (two speeds, tight within): the baseline drew 10, 10, 10, 11 and the candidate
        // 10, 11, 11, 11. Pooled, the 10% step looks certain; by process it is a draw.
        let process = |centre: f64| spread(centre);
        let side = |centres: [f64; 4]| {
            let mut c = cell("s1", centres.iter().flat_map(|&m| process(m)).collect());
            c.processes = Some(reports::results::ProcessSpread {
                samples_per_process: vec![20; 4],
                medians_ms: centres.to_vec(),
                spread: 0.1,
                multimodal: true,
            });
            c
        };
        let (a, b) = (
            side([10.0, 10.0, 10.0, 11.0]),
            side([10.0, 11.0, 11.0, 11.0]),
        );
        let settings = GateSettings::default();
        let pooled = compare_samples(key("s1"), &[&a.samples_ms], &[&b.samples_ms], &settings);
        assert_eq!(pooled.verdict, Verdict::Regressed, "{:?}", pooled.ratio_ci);
        let report = compare(&cells(vec![a]), &cells(vec![b]), &settings);
        assert_eq!(
            report.cells[0].verdict,
            Verdict::Unchanged,
            "{:?}",
            report.cells[0].ratio_ci
        );
        assert!(report.cells[0].ratio_ci[0] <= 1.0 && report.cells[0].ratio_ci[1] >= 1.09);
    }

    #[test]
    fn cells_are_matched_by_key_and_movers_come_first() {
        let settings = GateSettings::default();
        let mut a = Vec::new();
        let mut b = Vec::new();
        for (m, factor) in [("s0", 1.0), ("s1", 1.5), ("s2", 0.5), ("s3", 1.25)] {
            a.push(cell(m, spread(10.0)));
            b.push(cell(m, spread(10.0 * factor)));
        }
        a.push(cell("only-a", spread(1.0)));
        b.push(cell("only-b", spread(1.0)));
        let report = compare(&cells(a), &cells(b), &settings);
        let order: Vec<&str> = report.cells.iter().map(|c| c.key.model.as_str()).collect();
        assert_eq!(order, ["s1", "s3", "s2", "s0"]);
        assert_eq!(report.regressions(), 2);
        assert_eq!(report.count(Verdict::Improved), 1);
        assert_eq!(report.compared(), 4);
        let decision = Decision::of(&report, Vec::new());
        assert_eq!((decision.exit_code(), decision.compared), (1, 4));
        assert_eq!(report.unmatched.len(), 2);
        assert!(report.unmatched[0].contains("only-a") && report.unmatched[0].contains("baseline"));
    }

    #[test]
    fn too_few_samples_everywhere_is_no_verdict() {
        let few = || cells(vec![cell("s0", spread(10.0)[..3].to_vec())]);
        let report = compare(&few(), &few(), &GateSettings::default());
        assert_eq!(report.compared(), 0);
        assert_eq!(report.count(Verdict::Insufficient), 1);
        let decision = Decision::of(&report, Vec::new());
        assert_eq!(decision.exit_code(), 2);
        assert!(
            decision.refused.len() == 1
                && decision.refused[0].starts_with("no cell was compared validly"),
            "{decision:?}"
        );
    }

    #[test]
    fn an_interrupted_candidate_cell_is_named_as_such_not_as_missing() {
        let mut stopped = cell("s0", Vec::new());
        stopped.status = CellStatus::Interrupted;
        stopped.reason = Some("interrupted after 0 samples".into());
        let report = compare(
            &cells(vec![cell("s0", spread(10.0))]),
            &cells(vec![stopped]),
            &GateSettings::default(),
        );
        assert_eq!(
            report.unmatched,
            ["s0 reparameterized native t1 b1 64x64: measured in the baseline, interrupted (interrupted after 0 samples) in the candidate"]
        );
        assert_eq!(
            Decision::of(&report, Vec::new()).exit_code(),
            2,
            "nothing compared"
        );
    }

    #[test]
    fn cells_under_foreign_load_are_not_judged() {
        let mut loaded = cell("s0", spread(30.0));
        loaded.foreign_load = Some(1.4);
        let mut quiet = cell("s1", spread(10.0));
        quiet.foreign_load = Some(0.02);
        let report = compare(
            &cells(vec![cell("s0", spread(10.0)), quiet.clone()]),
            &cells(vec![loaded, quiet]),
            &GateSettings::default(),
        );
        assert_eq!(report.count(Verdict::UnderLoad), 1);
        assert_eq!(
            report.regressions(),
            0,
            "a 3x slowdown under load is no verdict"
        );
        assert_eq!(report.compared(), 1);
        let decision = Decision::of(&report, Vec::new());
        assert_eq!(decision.exit_code(), 2);
        assert!(
            decision.refused.len() == 1
                && decision.refused[0].contains(
                    "`s0 reparameterized native t1 b1 64x64` was measured under foreign load"
                )
                && decision.refused[0].contains("candidate 1.40"),
            "{decision:?}"
        );
        // Measured again on a quiet machine, the cell is judged.
        let confirmation = compare(
            &cells(vec![cell("s0", spread(10.0))]),
            &cells(vec![cell("s0", spread(10.0))]),
            &GateSettings::default(),
        );
        let decision = Decision::confirmed(&report, &confirmation, Vec::new());
        assert_eq!((decision.exit_code(), decision.compared), (0, 2));
    }

    #[test]
    fn implausible_samples_duplicates_and_interruptions_are_problems() {
        for (bad, why) in [
            (-1.0, "zero or negative"),
            (0.0, "zero or negative"),
            (f64::INFINITY, "not a finite number"),
            (1e308, "longer than 10^7 ms"),
        ] {
            let mut samples = spread(10.0);
            samples[4] = bad;
            let run = cells(vec![cell("s0", samples)]);
            let problems = run_problems("candidate", false, &run);
            assert!(
                problems.len() == 1
                    && problems[0].contains("sample 4 is")
                    && problems[0].contains(why),
                "{problems:?}"
            );
        }
        let quiet = cells(vec![cell("s0", spread(10.0))]);
        assert!(run_problems("baseline", false, &quiet).is_empty());
        assert!(run_problems("candidate", true, &quiet)[0]
            .starts_with("the candidate run was interrupted"));

        let twice = vec![cell("s0", spread(10.0)), cell("s0", spread(20.0))];
        let e = cells_by_key(&twice).unwrap_err();
        assert_contains(&e, &["appears more than once"]);
    }
}
