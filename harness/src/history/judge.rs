//! What `gate --history` judges a candidate run against: the medians of the last N stored runs
//! of each cell (the candidate is one more run: is its median outside the prediction interval
//! of a run's median, and is it more than the threshold slower than their centre?), and the
//! cell's whole series for slow drifts (a recent change point whose cumulative effect is above
//! the threshold, even when each step was small).

use reports::changepoint::{change_points, ChangePointSettings};
use reports::results::{CellKey, CellResult, CellStatus, ResultsFile};
use reports::stats::{mean, prediction_interval, process_spread};

use crate::compare::{CellComparison, GateSettings, Verdict};

use super::{Point, Series};

/// How history is used to judge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistorySettings {
    /// The baseline is the last `window` stored runs of the cell.
    pub window: usize,
    /// Fewer stored runs than this: the cell is not judged against history.
    pub min_runs: usize,
    /// A drift fails when its change point lies within the last `drift_commits` commits.
    pub drift_commits: usize,
    /// How far back the drift search looks (stored runs).
    pub drift_span: usize,
}

impl Default for HistorySettings {
    fn default() -> Self {
        HistorySettings {
            window: 10,
            min_runs: 3,
            drift_commits: 5,
            drift_span: 60,
        }
    }
}

/// The points of a series usable as history for `candidate`: measured, and not the candidate
/// run itself (which may have been stored already).
pub fn history_points<'a>(series: &'a Series, candidate: &ResultsFile) -> Vec<&'a Point> {
    series
        .points
        .iter()
        .filter(|p| p.status == "ok" && !p.samples_ms.is_empty() && p.median_ms.is_some())
        .filter(|p| {
            !(p.started_at == candidate.started_at
                && p.git_commit == candidate.environment.git_commit)
        })
        .collect()
}

/// The baseline cell made of the last `window` runs: their samples, one process group per run
/// (the gate's hierarchical bootstrap then resamples runs, then samples within them).
pub fn baseline_cell(
    key: &CellKey,
    points: &[&Point],
    settings: &HistorySettings,
) -> Option<CellResult> {
    if points.len() < settings.min_runs {
        return None;
    }
    let recent = &points[points.len().saturating_sub(settings.window)..];
    let groups: Vec<&[f64]> = recent.iter().map(|p| &p.samples_ms[..]).collect();
    let mut cell = CellResult::unmeasured(key.clone(), Default::default());
    cell.samples_ms = groups.concat();
    cell.latency = Some(reports::stats::summarize(&cell.samples_ms, 0));
    cell.processes = Some(process_spread(&groups));
    cell.status = CellStatus::Ok;
    Some(cell)
}

/// The medians of the runs `baseline_cell` pools (the last `window`).
pub fn window_medians(points: &[&Point], settings: &HistorySettings) -> Vec<f64> {
    let recent = &points[points.len().saturating_sub(settings.window)..];
    recent.iter().filter_map(|p| p.median_ms).collect()
}

/// Judges a cell compared against its pooled history again, as one more run of the history:
/// on a log scale, the prediction interval (at the gate's confidence) of a run's median from
/// the stored runs' medians gives the ratio's interval (candidate over the runs' geometric
/// mean, over the range one run varies in), and the verdict keeps the gate's rule that a
/// change needs both significance (the interval excludes 1) and an effect above the threshold.
/// Cells without a verdict (too few samples, under load) are left as they are.
pub fn judge_as_one_more_run(c: &mut CellComparison, medians: &[f64], settings: &GateSettings) {
    if !c.verdict.judged() || medians.iter().any(|m| m.is_nan() || *m <= 0.0) {
        return;
    }
    let logs: Vec<f64> = medians.iter().map(|m| m.ln()).collect();
    let Some([low, high]) = prediction_interval(&logs, settings.confidence) else {
        return;
    };
    let centre = mean(&logs);
    let x = c.candidate_median_ms.ln();
    c.baseline_median_ms = centre.exp();
    c.ratio = (x - centre).exp();
    c.ratio_ci = [(x - high).exp(), (x - low).exp()];
    c.verdict = if c.ratio_ci[0] > 1.0 && c.ratio > 1.0 + settings.threshold {
        Verdict::Regressed
    } else if c.ratio_ci[1] < 1.0 && c.ratio < 1.0 - settings.threshold {
        Verdict::Improved
    } else {
        Verdict::Unchanged
    };
}

/// The change-point test of the drift rule: stricter than the report's (p <= 0.01, from 499
/// permutations), because a drift fails the gate on its own, without a confirmation run, and
/// a shared machine's own speed moves between runs hours apart (calibration: at p <= 0.05, 2 of
/// 30 A/A runs failed by it).
const DRIFT_CHANGE_POINTS: ChangePointSettings = ChangePointSettings {
    significance: 0.01,
    permutations: 499,
    min_segment: 3,
    seed: 0,
};

/// A slow drift: the series changed at `since_commit` (within the last commits) and the
/// candidate is `change` slower than before it.
#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    pub key: CellKey,
    pub since_commit: String,
    pub before_ms: f64,
    pub candidate_ms: f64,
    pub p_value: f64,
}

impl Drift {
    /// candidate / before - 1.
    pub fn change(&self) -> f64 {
        self.candidate_ms / self.before_ms - 1.0
    }

    /// One line: the cell, the change, since which commit, and the change point's p.
    pub fn describe(&self) -> String {
        format!(
            "{}: {:+.1}% since commit {} ({} -> {} ms, change point p = {:.3})",
            self.key,
            self.change() * 100.0,
            self.since_commit,
            reports::summary::ms(self.before_ms),
            reports::summary::ms(self.candidate_ms),
            self.p_value
        )
    }

    /// The drift as gate.json records it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "cell": self.key.to_string(),
            "since_commit": self.since_commit,
            "before_ms": self.before_ms,
            "candidate_ms": self.candidate_ms,
            "change": self.change(),
            "p_value": self.p_value,
        })
    }
}

/// The drift of a cell: change points of its recent medians followed by the candidate's; the
/// earliest one within the last `drift_commits` commits is a drift when the candidate is more
/// than `threshold` slower than the segment before it.
pub fn drift(
    key: &CellKey,
    points: &[&Point],
    candidate: (&str, f64),
    threshold: f64,
    settings: &HistorySettings,
) -> Option<Drift> {
    let recent = &points[points.len().saturating_sub(settings.drift_span)..];
    let mut medians: Vec<f64> = recent.iter().filter_map(|p| p.median_ms).collect();
    let mut commits: Vec<&str> = recent.iter().map(|p| p.git_commit.as_str()).collect();
    medians.push(candidate.1);
    commits.push(candidate.0);
    let first_recent = start_of_last_commits(&commits, settings.drift_commits);
    let found = change_points(&medians, &DRIFT_CHANGE_POINTS);
    let earliest = found.iter().find(|c| c.index >= first_recent)?;
    let result = Drift {
        key: key.clone(),
        since_commit: commits[earliest.index].to_string(),
        before_ms: earliest.median_before,
        candidate_ms: candidate.1,
        p_value: earliest.p_value,
    };
    (result.change() > threshold).then_some(result)
}

/// The index where the last `k` distinct commits of the series begin (runs of one commit are
/// consecutive in a store fed by CI; a commit measured again later counts again).
fn start_of_last_commits(commits: &[&str], k: usize) -> usize {
    let mut seen = 0;
    for i in (0..commits.len()).rev() {
        if i + 1 == commits.len() || commits[i] != commits[i + 1] {
            seen += 1;
            if seen > k {
                return i + 1;
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(i: usize, commit: &str, median: f64) -> Point {
        Point {
            run_id: i as i64,
            started_at: format!("2026-11-30T00:{i:02}:00Z"),
            git_commit: commit.into(),
            status: "ok".into(),
            median_ms: Some(median),
            ci95_ms: None,
            samples_ms: (0..5)
                .map(|j| median * (1.0 + 0.002 * (j as f64 - 2.0)))
                .collect(),
        }
    }

    fn key() -> CellKey {
        super::super::tests::cell("mobileone-s0", 1, 1.0).key
    }

    /// Ten stable commits, then five commits of +2% each (with 0.3% jitter): the candidate is
    /// the fifth step.
    fn drifting() -> (Vec<Point>, f64) {
        let jitter = [
            0.0, 0.003, -0.002, 0.001, -0.003, 0.002, -0.001, 0.0, 0.003, -0.002,
        ];
        let mut points: Vec<Point> = (0..10)
            .map(|i| point(i, &format!("c{i}"), 10.0 * (1.0 + jitter[i])))
            .collect();
        for step in 1..=4 {
            points.push(point(
                9 + step,
                &format!("d{step}"),
                10.0 * 1.02f64.powi(step as i32),
            ));
        }
        (points, 10.0 * 1.02f64.powi(5))
    }

    #[test]
    fn five_small_steps_are_a_drift_of_their_sum() {
        let (points, candidate) = drifting();
        let refs: Vec<&Point> = points.iter().collect();
        let found = drift(
            &key(),
            &refs,
            ("d5", candidate),
            0.05,
            &HistorySettings::default(),
        )
        .expect("a drift of +10% in five commits");
        assert!(found.change() > 0.08, "{found:?}");
        assert!(found.since_commit.starts_with('d'), "{found:?}");
        // Each step alone is 2%: under a 5% threshold no single comparison would fail.
        assert!(drift(
            &key(),
            &refs[..10],
            ("c10", 10.0),
            0.05,
            &HistorySettings::default()
        )
        .is_none());
    }

    #[test]
    fn an_old_change_is_no_drift_now() {
        // A step of +10% twenty commits ago, stable since.
        let points: Vec<Point> = (0..40)
            .map(|i| {
                point(
                    i,
                    &format!("c{i}"),
                    if i < 20 { 10.0 } else { 11.0 } * (1.0 + 0.001 * (i % 3) as f64),
                )
            })
            .collect();
        let refs: Vec<&Point> = points.iter().collect();
        assert!(drift(
            &key(),
            &refs,
            ("new", 11.01),
            0.05,
            &HistorySettings::default()
        )
        .is_none());
    }

    #[test]
    fn the_baseline_is_the_last_runs_one_group_each() {
        let (points, _) = drifting();
        let refs: Vec<&Point> = points.iter().collect();
        let settings = HistorySettings {
            window: 4,
            ..HistorySettings::default()
        };
        let cell = baseline_cell(&key(), &refs, &settings).unwrap();
        assert_eq!(cell.sample_groups().len(), 4);
        assert_eq!(cell.samples_ms.len(), 20);
        assert_eq!(cell.sample_groups()[3], &points[13].samples_ms[..]);
        assert!(baseline_cell(&key(), &refs[..2], &settings).is_none());
    }

    #[test]
    fn one_more_run_is_judged_against_the_spread_of_runs() {
        // Stored runs' medians spread about 4% around 10 ms.
        let medians = [10.0, 10.4, 9.6, 10.2, 9.8, 10.3, 9.7, 10.1, 9.9, 10.0];
        let settings = GateSettings::default();
        let judged = |candidate: f64| {
            let mut c = crate::compare::compare_samples(
                key(),
                &[&[10.0; 10][..]],
                &[&[candidate; 10][..]],
                &settings,
            );
            judge_as_one_more_run(&mut c, &medians, &settings);
            c
        };
        // 6% slower: above the threshold, but a run of this history can be that slow.
        let c = judged(10.6);
        assert_eq!(c.verdict, Verdict::Unchanged, "{c:?}");
        assert!(
            c.ratio_ci[0] < 1.0 && (c.ratio - 1.06).abs() < 0.01,
            "{c:?}"
        );
        // 20% slower: outside every run's range and above the threshold.
        assert_eq!(judged(12.0).verdict, Verdict::Regressed);
        assert_eq!(judged(8.0).verdict, Verdict::Improved);
        // Steady history: 3% slower is significant but under the threshold.
        let steady = [10.0, 10.01, 9.99, 10.0, 10.02, 9.98];
        let mut c = crate::compare::compare_samples(
            key(),
            &[&[10.0; 10][..]],
            &[&[10.3; 10][..]],
            &settings,
        );
        judge_as_one_more_run(&mut c, &steady, &settings);
        assert!(
            c.ratio_ci[0] > 1.0 && c.verdict == Verdict::Unchanged,
            "{c:?}"
        );
    }

    #[test]
    fn the_last_commits_begin_where_the_kth_distinct_commit_does() {
        let commits = ["a", "b", "b", "c", "d", "d", "e"];
        assert_eq!(start_of_last_commits(&commits, 2), 4);
        assert_eq!(start_of_last_commits(&commits, 4), 1);
        assert_eq!(start_of_last_commits(&commits, 9), 0);
    }
}
