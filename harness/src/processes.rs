//! Measuring in several fresh processes, as pyperf does: where memory lands (address-space
//! randomization, allocator history) can set a process's speed for its whole life, so one
//! process is one draw. A run with `processes: N` starts the harness itself N times, one after
//! another (each a worker: the whole scenario, verified, with 1/N of the budget, results in a
//! temporary folder), then merges the workers' cells keeping which process took which samples.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use reports::results::{CellKey, CellResult, CellStatus, ResultsFile};

use crate::runner::{
    cell_count_warnings, check_writable, interrupt_flag, save, set_latency, speedups, Outcome,
};
use crate::scenario::Scenario;

/// Runs `scenario` in `scenario.file.processes` worker processes and saves the merged results.
pub fn run_in_processes(scenario: &Scenario) -> Result<Outcome> {
    let f = &scenario.file;
    let n = f.processes;
    let out_dir = scenario.output_dir();
    check_writable(&out_dir)?;
    let work = tempfile::tempdir().context("a temporary folder for the worker processes")?;
    let interrupt = interrupt_flag();
    let mut runs = Vec::new();
    for i in 0..n {
        if interrupt.load(Ordering::Relaxed) {
            break;
        }
        eprintln!("onebench: process {} of {n}", i + 1);
        let out = work.path().join(format!("process-{i}"));
        match run_worker(scenario, n, &out).with_context(|| format!("process {}", i + 1))? {
            Some(run) => runs.push(run),
            // Stopped before it measured anything: what the others measured is kept.
            None => break,
        }
    }
    if runs.is_empty() {
        bail!("interrupted before the first process finished: nothing was measured");
    }
    // Fewer processes than asked: the run was stopped between them.
    let short = runs.len() < n;
    let mut merged = merge_runs(runs, f.measurement.target_ci, f.seed);
    merged.interrupted |= short || interrupt.load(Ordering::Relaxed);
    let saved = save(&merged, &out_dir);
    Ok(Outcome {
        results: merged,
        saved,
    })
}

/// Runs one worker to completion and reads what it saved. A signal to this process is passed
/// on to the worker once (it runs in its own process group, so a Ctrl-C at the terminal reaches
/// it only through here and only once: a second signal would end it before it saved). `None`
/// when the signal reached the worker before it had anything to save (still starting).
fn run_worker(scenario: &Scenario, n: usize, out: &Path) -> Result<Option<ResultsFile>> {
    let f = &scenario.file;
    let exe = std::env::current_exe().context("cannot find the harness executable")?;
    let list = |items: Vec<String>| items.join(",");
    let mut command = Command::new(&exe);
    command
        .arg("run")
        .arg(&scenario.path)
        .args([
            "--models",
            &list(f.models.iter().map(|m| m.0.name().to_string()).collect()),
        ])
        .args([
            "--forms",
            &list(f.forms.iter().map(|m| m.0.name().to_string()).collect()),
        ])
        .args(["--backends", &list(f.backends.clone())])
        .args([
            "--threads",
            &list(f.threads.iter().map(|t| t.to_string()).collect()),
        ])
        .args([
            "--precisions",
            &list(
                f.precisions
                    .iter()
                    .map(|p| p.0.name().to_string())
                    .collect(),
            ),
        ])
        .args(["--worker-of", &n.to_string()])
        .arg("--out")
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if scenario.quick {
        command.arg("--quick");
    }
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    let interrupt = interrupt_flag();
    let mut passed_on = false;
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for the worker")? {
            break status;
        }
        if interrupt.load(Ordering::Relaxed) && !passed_on {
            pass_signal_on(child.id());
            passed_on = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let saved = [
        out.join("results.json"),
        out.join("interrupted/results.json"),
    ];
    match saved.iter().find(|p| p.is_file()) {
        Some(path) => Ok(Some(ResultsFile::read(path)?)),
        None if passed_on => Ok(None),
        None => {
            bail!("the worker saved no results (it exited with {status}; its messages are above)")
        }
    }
}

/// Sends the worker the signal this process got (SIGTERM if it cannot tell).
fn pass_signal_on(pid: u32) {
    #[cfg(unix)]
    {
        let signal = match crate::runner::interrupted_exit_code() {
            130 => libc::SIGINT,
            _ => libc::SIGTERM,
        };
        // SAFETY: kill has no memory effects; a worker that already exited is harmless.
        unsafe { libc::kill(pid as libc::pid_t, signal) };
    }
}

/// The runs of the same scenario in successive processes as one run: each cell's samples in
/// process order, with how many each process took, and its statistics over both levels; a
/// cell that failed in any process failed. Environment and scenario come from the first run.
pub fn merge_runs(runs: Vec<ResultsFile>, target_ci: Option<f64>, seed: u64) -> ResultsFile {
    let mut runs = runs.into_iter();
    let mut merged = runs.next().expect("at least one run");
    let own = cell_count_warnings(&merged.cells);
    merged.warnings.retain(|w| !own.contains(w));
    let mut cells: BTreeMap<CellKey, MergedCell> = BTreeMap::new();
    let order: Vec<CellKey> = merged.cells.iter().map(|c| c.key.clone()).collect();
    for cell in std::mem::take(&mut merged.cells) {
        cells.insert(cell.key.clone(), MergedCell::new(cell));
    }
    for run in runs {
        merged.duration_s += run.duration_s;
        merged.interrupted |= run.interrupted;
        let own = cell_count_warnings(&run.cells);
        for w in run.warnings {
            if !merged.warnings.contains(&w) && !own.contains(&w) {
                merged.warnings.push(w);
            }
        }
        for cell in run.cells {
            match cells.get_mut(&cell.key) {
                Some(known) => known.absorb(cell),
                None => {
                    cells.insert(cell.key.clone(), MergedCell::new(cell));
                }
            }
        }
    }
    let env = merged.environment.clone();
    let mut in_order: Vec<MergedCell> = order.iter().filter_map(|k| cells.remove(k)).collect();
    in_order.extend(cells.into_values());
    merged.cells = in_order
        .into_iter()
        .map(|c| c.finish(&env, target_ci, seed))
        .collect();
    merged.speedups = speedups(&merged.cells);
    merged.warnings.extend(cell_count_warnings(&merged.cells));
    let modes = merged
        .cells
        .iter()
        .filter(|c| c.processes.as_ref().is_some_and(|p| p.multimodal))
        .count();
    if modes > 0 {
        merged.warnings.push(format!(
            "{modes} cell(s) are MULTIMODAL: their processes ran at separate speeds, so one process's number is a draw; compare their medians over processes, not single runs"
        ));
    }
    merged
}

/// One cell across processes while merging.
pub struct MergedCell {
    cell: CellResult,
    samples_per_process: Vec<usize>,
    /// The first process in which it failed, with why.
    failed: Option<String>,
    processes: usize,
}

impl MergedCell {
    pub fn new(cell: CellResult) -> Self {
        let mut merged = MergedCell {
            samples_per_process: Vec::new(),
            failed: None,
            processes: 0,
            cell: CellResult {
                samples_ms: Vec::new(),
                gpu_samples_ms: Vec::new(),
                warmup_runs: 0,
                ..cell.clone()
            },
        };
        merged.absorb(cell);
        merged
    }

    /// Adds the cell as the next process measured it.
    pub fn absorb(&mut self, cell: CellResult) {
        self.processes += 1;
        let m = &mut self.cell;
        match cell.status {
            CellStatus::Ok => {
                // A cell that was itself measured in several processes keeps their split.
                let split = cell
                    .sample_groups()
                    .iter()
                    .map(|g| g.len())
                    .collect::<Vec<_>>();
                self.samples_per_process.extend(split);
                m.samples_ms.extend_from_slice(&cell.samples_ms);
                m.warmup_runs += cell.warmup_runs;
                m.foreign_load = match (m.foreign_load, cell.foreign_load) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                m.resident_bytes = m.resident_bytes.max(cell.resident_bytes);
                if let (Some(v), Some(w)) = (&mut m.verification, &cell.verification) {
                    v.relative_l2 = v.relative_l2.max(w.relative_l2);
                    v.max_abs_diff = v.max_abs_diff.max(w.max_abs_diff);
                }
                m.gpu_samples_ms.extend_from_slice(&cell.gpu_samples_ms);
            }
            CellStatus::Failed if self.failed.is_none() => {
                let why = cell.reason.unwrap_or_default();
                self.failed = Some(format!("in process {}: {why}", self.processes));
            }
            _ => {}
        }
    }

    /// The merged cell with statistics over all its processes.
    pub fn finish(
        mut self,
        env: &reports::results::Environment,
        target_ci: Option<f64>,
        seed: u64,
    ) -> CellResult {
        let r = &mut self.cell;
        if let Some(why) = self.failed {
            r.status = CellStatus::Failed;
            r.reason = Some(why);
            r.latency = None;
            return self.cell;
        }
        if r.samples_ms.is_empty() {
            return self.cell;
        }
        r.warnings.retain(|w| w.starts_with("ABOVE PEAK"));
        set_latency(r, &self.samples_per_process, env, target_ci, seed);
        if !r.gpu_samples_ms.is_empty() {
            r.gpu_median_ms = Some(crate::stats::quantile(
                &crate::stats::sorted(&r.gpu_samples_ms),
                0.5,
            ));
        }
        self.cell
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reports::results::CellKey;

    fn key(model: &str) -> CellKey {
        CellKey {
            model: model.into(),
            form: "reparameterized".into(),
            backend: "native".into(),
            precision: "fp32".into(),
            threads: 2,
            batch: 1,
            height: 224,
            width: 224,
        }
    }

    /// One process's run: each model's cell with samples around `centre` (+-0.5%).
    fn run_of(cells: &[(&str, f64)]) -> ResultsFile {
        let mut run = crate::runner::tests::empty_run(false);
        for &(model, centre) in cells {
            let mut c = CellResult::unmeasured(key(model), Default::default());
            c.samples_ms = (0..5)
                .map(|i| centre * (1.0 + 0.0025 * (i as f64 - 2.0)))
                .collect();
            c.status = CellStatus::Ok;
            run.cells.push(c);
        }
        run.warnings = cell_count_warnings(&run.cells);
        run.warnings.push("a build warning".into());
        run
    }

    #[test]
    fn processes_merge_into_one_cell_with_their_split_and_modes() {
        // The S1 at 2 threads: 8.2 or 10.4 ms by process; S0 steady at 3 ms.
        let s1 = [8.21, 8.40, 10.51, 10.35, 10.47, 10.38, 8.22, 10.35];
        let runs: Vec<ResultsFile> = s1
            .iter()
            .map(|&m| run_of(&[("s1", m), ("s0", 3.0)]))
            .collect();
        let merged = merge_runs(runs, Some(0.02), 0);
        assert_eq!(merged.cells.len(), 2);
        let cell = &merged.cells[0];
        assert_eq!(cell.key.model, "s1");
        assert_eq!(cell.samples_ms.len(), 40);
        let p = cell.processes.as_ref().unwrap();
        assert_eq!(p.samples_per_process, vec![5; 8]);
        assert_eq!(p.medians_ms, s1.to_vec());
        assert!(p.multimodal);
        assert!(
            cell.warnings.iter().any(|w| w.starts_with("MULTIMODAL")),
            "{:?}",
            cell.warnings
        );
        // The interval of the median spans both speeds' pull: far wider than within a process.
        let l = cell.latency.as_ref().unwrap();
        assert!(l.ci95_ms[1] - l.ci95_ms[0] > 1.0, "{:?}", l.ci95_ms);
        let steady = merged.cells[1].processes.as_ref().unwrap();
        assert!(!steady.multimodal && steady.spread == 0.0);
        assert!(
            merged.cells[1].warnings.is_empty(),
            "{:?}",
            merged.cells[1].warnings
        );
        // Run warnings: the build warning once, the cell counts recounted over the merge.
        assert_eq!(
            merged
                .warnings
                .iter()
                .filter(|w| *w == "a build warning")
                .count(),
            1
        );
        assert!(
            merged
                .warnings
                .iter()
                .any(|w| w.starts_with("1 cell(s) have a wide")),
            "{:?}",
            merged.warnings
        );
        assert!(merged
            .warnings
            .iter()
            .any(|w| w.starts_with("1 cell(s) are MULTIMODAL")));
    }

    #[test]
    fn a_cell_that_failed_in_any_process_failed() {
        let mut second = run_of(&[("s0", 3.0)]);
        second.cells[0].status = CellStatus::Failed;
        second.cells[0].reason = Some("output differs from the reference".into());
        let merged = merge_runs(
            vec![run_of(&[("s0", 3.0)]), second, run_of(&[("s0", 3.0)])],
            None,
            0,
        );
        let cell = &merged.cells[0];
        assert_eq!(cell.status, CellStatus::Failed);
        assert_eq!(
            cell.reason.as_deref(),
            Some("in process 2: output differs from the reference")
        );
        assert!(cell.latency.is_none());
    }
}
