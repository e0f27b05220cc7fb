//! `harness gate` (compare two results files) and `harness ab` (measure two harness builds
//! alternately, cell by cell, then gate with a confirmation run): reading, refusing
//! incomparable runs, and the terminal, Markdown and JSON summaries. The statistics are in
//! `crate::compare`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{anyhow, bail, Context, Result};
use models::checkpoint::write_atomically;
use reports::results::{CellKey, CellResult, CellStatus, ResultsFile};
use tabled::builder::Builder;
use tabled::settings::Style;

use crate::cli::{AbArgs, GateArgs, GateOptions};
use crate::compare::{
    cells_by_key, compare, incomparable, run_problems, sort_movers_first, Decision, GateReport,
    GateSettings, Verdict,
};
use crate::history::judge::Drift;
use crate::scenario::Scenario;

/// Exit code for bad input or incomparable runs.
const BAD_INPUT: u8 = 2;

/// `harness gate`: exit 0 (no regression), 1 (regression) or 2 (bad input).
pub fn run(args: &GateArgs) -> ExitCode {
    exit_code(gate_files(args))
}

/// `harness ab`: exit 0, 1 or 2 like `gate`.
pub fn run_ab(args: &AbArgs) -> ExitCode {
    exit_code(ab(args))
}

fn exit_code(result: Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|err| {
        eprintln!("error: {err:#}");
        ExitCode::from(BAD_INPUT)
    })
}

fn settings(options: &GateOptions) -> Result<GateSettings> {
    if !(options.threshold >= 0.0 && options.threshold.is_finite()) {
        bail!(
            "--threshold {}: expected a percentage, 0 or more",
            options.threshold
        );
    }
    if !(options.confidence > 0.5 && options.confidence < 1.0) {
        bail!(
            "--confidence {}: expected a level between 0.5 and 1 (e.g. 0.99)",
            options.confidence
        );
    }
    Ok(GateSettings {
        threshold: options.threshold / 100.0,
        confidence: options.confidence,
        ..GateSettings::default()
    })
}

fn check_comparable(baseline: &ResultsFile, candidate: &ResultsFile, allow: bool) -> Result<()> {
    let reasons = incomparable(&baseline.environment, &candidate.environment);
    if reasons.is_empty() {
        return Ok(());
    }
    if allow {
        for r in &reasons {
            eprintln!("warning: {r} (compared anyway: --allow-different-machine)");
        }
        return Ok(());
    }
    bail!(
        "the runs are not comparable: {}; pass --allow-different-machine to compare anyway",
        reasons.join("; ")
    )
}

/// Where the stored baseline of a scenario on a machine lives.
pub fn stored_baseline_path(dir: &Path, scenario: &str, fingerprint: &str) -> PathBuf {
    dir.join(scenario).join(format!("{fingerprint}.json"))
}

/// `harness baseline`: measures the scenario and stores the results as this machine's baseline.
pub fn store_baseline(
    scenario: &Path,
    dir: &Path,
    options: &crate::cli::RunOptions,
) -> Result<ExitCode> {
    let overrides = options.overrides();
    let loaded = Scenario::load(scenario, &overrides)?;
    let outcome = crate::runner::run_scenario(&loaded)?;
    let results = &outcome.results;
    if results.interrupted || outcome.any_failed() {
        bail!("the run was interrupted or a cell failed; no baseline stored");
    }
    let path = stored_baseline_path(
        dir,
        &results.scenario.name,
        &results.environment.machine_fingerprint,
    );
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("{}: cannot create", parent.display()))?;
    }
    write_atomically(&path, results.to_json().as_bytes())
        .with_context(|| format!("{}: cannot write", path.display()))?;
    println!("{}", reports::summary::terminal_table(results));
    println!("stored the baseline of this machine: {}", path.display());
    Ok(match super::run::keep_in_history(&loaded, results) {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    })
}

fn gate_files(args: &GateArgs) -> Result<ExitCode> {
    if let Some(store) = &args.history {
        return gate_history(args, store);
    }
    let settings = settings(&args.options)?;
    let candidate = ResultsFile::read(&args.candidate).context("--candidate")?;
    let baseline_path = match (&args.baseline, &args.baseline_dir) {
        (Some(path), _) => path.clone(),
        (None, Some(dir)) => {
            let path = stored_baseline_path(
                dir,
                &candidate.scenario.name,
                &candidate.environment.machine_fingerprint,
            );
            if !path.is_file() {
                bail!(
                    "--baseline-dir {}: no baseline stored for scenario `{}` on this machine ({}); \
                     store one with `harness baseline SCENARIO --dir {}`",
                    dir.display(),
                    candidate.scenario.name,
                    path.display(),
                    dir.display()
                );
            }
            path
        }
        (None, None) => bail!("give --baseline FILE or --baseline-dir DIR"),
    };
    let baseline = ResultsFile::read(&baseline_path).context("--baseline")?;
    check_comparable(&baseline, &candidate, args.options.allow_different_machine)?;
    let base_cells = cells_by_key(&baseline.cells)
        .map_err(|e| anyhow!("--baseline {}: {e}", baseline_path.display()))?;
    let cand_cells = cells_by_key(&candidate.cells)
        .map_err(|e| anyhow!("--candidate {}: {e}", args.candidate.display()))?;
    let mut problems = run_problems("baseline", baseline.interrupted, &base_cells);
    problems.extend(run_problems(
        "candidate",
        candidate.interrupted,
        &cand_cells,
    ));
    let report = compare(&base_cells, &cand_cells, &settings);
    let decision = Decision::of(&report, problems);
    publish(&report, None, &[], &decision, &args.options)?;
    Ok(verdict_exit(&decision))
}

/// `gate --history`: the candidate against the stored runs of its scenario on its machine.
fn gate_history(args: &GateArgs, store: &str) -> Result<ExitCode> {
    use crate::history::judge::{
        baseline_cell, drift, history_points, judge_as_one_more_run, window_medians,
        HistorySettings,
    };
    let settings = settings(&args.options)?;
    if args.window < 2 {
        bail!("--window {}: at least 2 stored runs", args.window);
    }
    let history = HistorySettings {
        window: args.window,
        drift_commits: args.drift_commits,
        ..HistorySettings::default()
    };
    let candidate = ResultsFile::read(&args.candidate).context("--candidate")?;
    let cand_cells = cells_by_key(&candidate.cells)
        .map_err(|e| anyhow!("--candidate {}: {e}", args.candidate.display()))?;
    let location = crate::history::Location::parse(store);
    let mut store = crate::history::Store::open(&location).context("--history")?;
    let (scenario, machine) = (
        &candidate.scenario.name,
        &candidate.environment.machine_fingerprint,
    );
    let mut base_cells = BTreeMap::new();
    let mut run_medians = BTreeMap::new();
    let mut too_short = Vec::new();
    let mut drifts = Vec::new();
    for (key, cell) in &cand_cells {
        let series = store.series(scenario, machine, key)?;
        let points = history_points(&series, &candidate);
        let Some(baseline) = baseline_cell(key, &points, &history) else {
            too_short.push(format!(
                "{key}: {} stored run(s) of scenario `{scenario}` on this machine, fewer than {}",
                points.len(),
                history.min_runs
            ));
            continue;
        };
        base_cells.insert(key.clone(), baseline);
        run_medians.insert(key.clone(), window_medians(&points, &history));
        let commit = &candidate.environment.git_commit;
        if let Some(median) = cell.median_ms().filter(|_| cell.status == CellStatus::Ok) {
            drifts.extend(drift(
                key,
                &points,
                (commit, median),
                settings.threshold,
                &history,
            ));
        }
    }
    if base_cells.is_empty() {
        bail!(
            "--history {}: no cell of scenario `{scenario}` has {} stored runs on this machine ({machine}); gate against a results file instead (--baseline) until it has",
            location.shown(),
            history.min_runs
        );
    }
    let problems = run_problems("candidate", candidate.interrupted, &cand_cells);
    let mut report = compare(&base_cells, &cand_cells, &settings);
    for c in &mut report.cells {
        judge_as_one_more_run(c, &run_medians[&c.key], &settings);
    }
    sort_movers_first(&mut report.cells);
    report
        .unmatched
        .retain(|u| !u.ends_with("only in the candidate"));
    report.unmatched.extend(too_short);
    let mut decision = Decision::of(&report, problems);
    let regressed: Vec<&CellKey> = report
        .cells
        .iter()
        .filter(|c| c.verdict == Verdict::Regressed)
        .map(|c| &c.key)
        .collect();
    // A drift fails the gate on its own, counted once per cell.
    decision.regressions += drifts
        .iter()
        .filter(|d| !regressed.contains(&&d.key))
        .count();
    publish(&report, None, &drifts, &decision, &args.options)?;
    println!(
        "history: each cell against the medians of its last {} stored runs (scenario `{scenario}`, this machine); \
         the interval is the candidate over their geometric mean, across the {:.0}% prediction interval of one run's median (Student's t, log scale)",
        history.window,
        settings.confidence * 100.0
    );
    for d in &drifts {
        println!("drift: {}", d.describe());
    }
    Ok(verdict_exit(&decision))
}

/// Prints the gate's last line and turns its decision into the exit code.
fn verdict_exit(decision: &Decision) -> ExitCode {
    if !decision.refused.is_empty() {
        for reason in &decision.refused {
            println!("gate: cannot judge: {reason}");
        }
        println!(
            "gate: NO VERDICT (exit 2): {} cell(s) compared validly, {} regressed; the reasons are above",
            decision.compared, decision.regressions
        );
    } else if decision.regressions == 0 {
        println!(
            "gate: no regression ({} cell(s) compared)",
            decision.compared
        );
    } else {
        println!(
            "gate: {} cell(s) regressed ({} compared)",
            decision.regressions, decision.compared
        );
    }
    ExitCode::from(decision.exit_code())
}

/// Prints the table and writes the requested Markdown and JSON summaries (atomically), with
/// the slow drifts `gate --history` found.
fn publish(
    report: &GateReport,
    confirmation: Option<&GateReport>,
    drifts: &[Drift],
    decision: &Decision,
    options: &GateOptions,
) -> Result<()> {
    println!("{}", terminal_table(report));
    for u in &report.unmatched {
        println!("not compared: {u}");
    }
    if let Some(c) = confirmation {
        println!("confirmation run of the cells that looked regressed:");
        println!("{}", terminal_table(c));
    }
    if let Some(path) = &options.markdown {
        write_atomically(
            path,
            markdown(report, confirmation, drifts, decision).as_bytes(),
        )
        .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    if let Some(path) = &options.json {
        let value = serde_json::json!({
            "decision": decision,
            "exit_code": decision.exit_code(),
            "regressions": decision.regressions,
            "improvements": report.count(Verdict::Improved),
            "report": report,
            "confirmation": confirmation,
            "drifts": drifts.iter().map(Drift::to_json).collect::<Vec<_>>(),
        });
        write_atomically(path, serde_json::to_string_pretty(&value)?.as_bytes())
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok(())
}

fn cell_row(c: &crate::compare::CellComparison) -> [String; 7] {
    let k = &c.key;
    [
        format!("{} {} {} t{}", k.model, k.form, k.engine(), k.threads),
        format!("{:.3}", c.baseline_median_ms),
        format!("{:.3}", c.candidate_median_ms),
        format!("{:+.1}%", (c.ratio - 1.0) * 100.0),
        if c.ratio_ci[0].is_nan() {
            "-".into()
        } else {
            format!(
                "[{:+.1}%, {:+.1}%]",
                (c.ratio_ci[0] - 1.0) * 100.0,
                (c.ratio_ci[1] - 1.0) * 100.0
            )
        },
        format!("{} / {}", c.baseline_samples, c.candidate_samples),
        c.verdict.label().to_string(),
    ]
}

const HEADER: [&str; 7] = [
    "cell",
    "baseline ms",
    "candidate ms",
    "change",
    "interval",
    "samples",
    "verdict",
];

pub fn terminal_table(report: &GateReport) -> String {
    let mut builder = Builder::default();
    builder.push_record(HEADER);
    for c in &report.cells {
        builder.push_record(cell_row(c));
    }
    let mut table = builder.build();
    table.with(Style::rounded());
    format!(
        "{table}\nthreshold ±{:.1}%, {:.0}% intervals of the ratio of medians (bootstrap, {} resamples)",
        report.settings.threshold * 100.0,
        report.settings.confidence * 100.0,
        report.settings.resamples
    )
}

/// The Markdown summary, movers first (the report's order), ready for a PR comment.
pub fn markdown(
    report: &GateReport,
    confirmation: Option<&GateReport>,
    drifts: &[Drift],
    decision: &Decision,
) -> String {
    let mut md = String::new();
    let headline = if !decision.refused.is_empty() {
        "**no verdict**".to_string()
    } else if decision.regressions == 0 {
        "no latency regression".to_string()
    } else {
        format!("**{} cell(s) regressed**", decision.regressions)
    };
    let _ = writeln!(md, "### Latency gate: {headline}\n");
    for reason in &decision.refused {
        let _ = writeln!(md, "- cannot judge: {reason}");
    }
    if !decision.refused.is_empty() {
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "{} cells matched, {} compared validly: {} regressed, {} improved, {} unchanged, {} with too few samples, {} under load (not judged). \
         A cell moves only when the whole {:.0}% interval of its ratio of medians lies beyond \
         ±{:.1}%.\n",
        report.cells.len(),
        report.compared(),
        report.regressions(),
        report.count(Verdict::Improved),
        report.count(Verdict::Unchanged),
        report.count(Verdict::Insufficient),
        report.count(Verdict::UnderLoad),
        report.settings.confidence * 100.0,
        report.settings.threshold * 100.0
    );
    md.push_str(&markdown_table(report));
    if let Some(c) = confirmation {
        let _ = writeln!(
            md,
            "\nConfirmation run of the {} cell(s) that looked regressed (fresh samples; only a \
             confirmed regression fails the gate):\n",
            c.cells.len()
        );
        md.push_str(&markdown_table(c));
    }
    if !drifts.is_empty() {
        let _ = writeln!(
            md,
            "\nSlow drifts against history (each fails the gate, though no single step crossed the threshold):\n"
        );
        for d in drifts {
            let _ = writeln!(md, "- {}", d.describe());
        }
    }
    if !report.unmatched.is_empty() {
        let _ = writeln!(md, "\nNot compared: {}", report.unmatched.join("; "));
    }
    md
}

fn markdown_table(report: &GateReport) -> String {
    let mut md = format!(
        "| {} |\n|{}\n",
        HEADER.join(" | "),
        "---|".repeat(HEADER.len())
    );
    for c in &report.cells {
        let _ = writeln!(md, "| {} |", cell_row(c).join(" | "));
    }
    md
}

// ---- A/B mode ----

/// One (model, form, backend, threads) cell of the scenario, as command-line overrides.
#[derive(Clone)]
struct AbCell {
    model: String,
    form: String,
    backend: String,
    precision: String,
    threads: usize,
}

/// Both sides' cells merged across rounds: each round is a fresh process, so the samples keep
/// which round took them and the gate resamples rounds, then samples (`crate::processes`).
#[derive(Default)]
struct Side {
    runs: Vec<ResultsFile>,
}

impl Side {
    fn absorb(&mut self, results: ResultsFile) {
        self.runs.push(results);
    }

    /// The merged run (statistics over all rounds), if any round ran.
    fn merged(&self) -> Option<ResultsFile> {
        (!self.runs.is_empty()).then(|| crate::processes::merge_runs(self.runs.clone(), None, 0))
    }

    fn cells(&self) -> BTreeMap<CellKey, CellResult> {
        self.merged()
            .map(|m| m.cells.into_iter().map(|c| (c.key.clone(), c)).collect())
            .unwrap_or_default()
    }

    fn problems(&self, side: &str) -> Vec<String> {
        let interrupted = self.runs.iter().any(|r| r.interrupted);
        run_problems(side, interrupted, &self.cells())
    }
}

fn ab(args: &AbArgs) -> Result<ExitCode> {
    let settings = settings(&args.options)?;
    let cells = ab_cells(args)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create", args.out.display()))?;
    let work = tempfile::tempdir().context("a temporary folder")?;
    let (baseline, candidate) = measure_ab(args, &cells, args.rounds, work.path(), "main")?;
    let (Some(base_file), Some(cand_file)) = (baseline.merged(), candidate.merged()) else {
        bail!("no cell was measured");
    };
    check_comparable(&base_file, &cand_file, args.options.allow_different_machine)?;
    for (name, file) in [
        ("baseline.json", &base_file),
        ("candidate.json", &cand_file),
    ] {
        let path = args.out.join(name);
        write_atomically(&path, file.to_json().as_bytes())
            .with_context(|| format!("{}: cannot write", path.display()))?;
        if let Some(location) = args
            .history
            .as_deref()
            .and_then(crate::history::location_of)
        {
            let said = crate::history::keep(&location, file)
                .with_context(|| format!("--history: keeping {name}"))?;
            println!("{name}: {said}");
        }
    }
    let mut problems = baseline.problems("baseline");
    problems.extend(candidate.problems("candidate"));
    let report = compare(&baseline.cells(), &candidate.cells(), &settings);
    let suspects = suspects(&cells, &report);
    let confirmation = if suspects.is_empty() || args.confirm_rounds == 0 {
        None
    } else {
        eprintln!(
            "ab: {} cell(s) look regressed or were measured under load; measuring them again ({} rounds)",
            suspects.len(),
            args.confirm_rounds
        );
        let (b, c) = measure_ab(args, &suspects, args.confirm_rounds, work.path(), "confirm")?;
        problems.extend(b.problems("baseline (confirmation)"));
        problems.extend(c.problems("candidate (confirmation)"));
        Some(compare(&b.cells(), &c.cells(), &settings))
    };
    let options = GateOptions {
        threshold: args.options.threshold,
        confidence: args.options.confidence,
        allow_different_machine: args.options.allow_different_machine,
        markdown: Some(
            args.options
                .markdown
                .clone()
                .unwrap_or_else(|| args.out.join("gate.md")),
        ),
        json: Some(
            args.options
                .json
                .clone()
                .unwrap_or_else(|| args.out.join("gate.json")),
        ),
    };
    let decision = match &confirmation {
        Some(c) => Decision::confirmed(&report, c, problems),
        None => Decision::of(&report, problems),
    };
    publish(&report, confirmation.as_ref(), &[], &decision, &options)?;
    Ok(verdict_exit(&decision))
}

/// Checks `ab`'s arguments and lists the scenario's cells.
fn ab_cells(args: &AbArgs) -> Result<Vec<AbCell>> {
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    for (flag, bin) in [
        ("--baseline-harness", &args.baseline_harness),
        ("--candidate-harness", &args.candidate_harness),
    ] {
        if !bin.is_file() {
            bail!("{flag} {}: no such file", bin.display());
        }
    }
    let overrides = args.cells.overrides(None, false);
    let scenario = Scenario::load(&args.scenario, &overrides)?;
    let f = &scenario.file;
    let mut cells = Vec::new();
    for model in &f.models {
        for form in &f.forms {
            for backend in crate::runner::backend_names(f, &backends::all()) {
                for (threads, precision) in f.threads_and_precisions() {
                    cells.push(AbCell {
                        model: model.0.name().to_string(),
                        form: form.0.name().to_string(),
                        backend: backend.clone(),
                        precision: precision.name().to_string(),
                        threads,
                    });
                }
            }
        }
    }
    Ok(cells)
}

/// The cells that look regressed, or were measured under load: they are measured again.
fn suspects(cells: &[AbCell], report: &GateReport) -> Vec<AbCell> {
    cells
        .iter()
        .filter(|c| {
            report.cells.iter().any(|r| {
                matches!(r.verdict, Verdict::Regressed | Verdict::UnderLoad)
                    && r.key.model == c.model
                    && r.key.form == c.form
                    && r.key.backend == c.backend
                    && r.key.precision == c.precision
                    && r.key.threads == c.threads
            })
        })
        .cloned()
        .collect()
}

/// Runs `rounds` rounds; in each, every cell once on each build, alternating which goes first
/// from cell to cell and round to round, so both see the same machine state.
fn measure_ab(
    args: &AbArgs,
    cells: &[AbCell],
    rounds: usize,
    work: &Path,
    label: &str,
) -> Result<(Side, Side)> {
    let mut baseline = Side::default();
    let mut candidate = Side::default();
    let total = rounds * cells.len();
    let progress = indicatif::ProgressBar::new(total as u64);
    for round in 0..rounds {
        for (i, cell) in cells.iter().enumerate() {
            let baseline_first = (round + i) % 2 == 0;
            for side in [baseline_first, !baseline_first] {
                let (bin, name) = if side {
                    (&args.baseline_harness, "baseline")
                } else {
                    (&args.candidate_harness, "candidate")
                };
                let out = work.join(format!("{label}-{name}-{round}-{i}"));
                let results = run_cell(bin, &args.scenario, cell, &out)
                    .with_context(|| format!("{name} build ({})", bin.display()))?;
                if side {
                    baseline.absorb(results);
                } else {
                    candidate.absorb(results);
                }
            }
            progress.inc(1);
        }
    }
    progress.finish_and_clear();
    Ok((baseline, candidate))
}

fn run_cell(bin: &Path, scenario: &Path, cell: &AbCell, out: &Path) -> Result<ResultsFile> {
    let output = Command::new(bin)
        .arg("run")
        .arg(scenario)
        .args(["--models", &cell.model, "--forms", &cell.form])
        .args(["--backends", &cell.backend])
        .args(["--threads", &cell.threads.to_string()])
        // Only when not the default, so that a baseline harness built before precisions
        // existed still runs its fp32 cells.
        .args(
            (cell.precision != models::Precision::Fp32.name())
                .then_some(["--precisions", cell.precision.as_str()])
                .into_iter()
                .flatten(),
        )
        .arg("--out")
        .arg(out)
        // The ab run keeps the merged sides itself (--history); the builds keep nothing.
        .env(
            crate::scenario::HISTORY_VARIABLE,
            crate::scenario::HISTORY_OFF,
        )
        .output()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let path: PathBuf = out.join("results.json");
    if !path.is_file() {
        bail!(
            "{} {} {} t{}: no results ({}): {}",
            cell.model,
            cell.form,
            reports::results::engine_label(&cell.backend, &cell.precision),
            cell.threads,
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(ResultsFile::read(&path)?)
}
