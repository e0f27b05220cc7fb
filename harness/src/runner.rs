//! Running a scenario: expand it into cells, verify each cell's output against the reference
//! executor, measure the cells that pass in the scenario's order, summarize, and write
//! results.json, results.csv and report.md atomically. A failing cell never stops the others;
//! Ctrl-C keeps what was measured.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use backends::{Agreement, Availability, Backend, PrepareOptions, Prepared};
use indicatif::{ProgressBar, ProgressStyle};
use models::quantized::QuantizedModel;
use models::{model_cost_at, seeded_uniform, Form, InputSize, Model, Precision, Tensor, Weights};
use rand_chacha::rand_core::{Rng, SeedableRng};
use reports::results::{
    CellKey, CellResult, CellStatus, DeviceProfile, Environment, ReferenceMeasurements,
    ResultsFile, ScenarioInfo, Speedup, Verification, SCHEMA_VERSION,
};

use crate::affinity::AffinityGuard;
use crate::environment;
use crate::measure::{Budget, CellTimer, StopReason};
use crate::scenario::{Order, Scenario};
use crate::stats;

/// A cell ready to be measured: verified, prepared, with its buffers.
struct ReadyCell {
    plan: Box<dyn Prepared>,
    output: Tensor,
    timer: CellTimer,
}

/// One cell of the scenario and everything known about it so far.
struct Cell {
    key: CellKey,
    model: Model,
    form: Form,
    precision: Precision,
    result: CellResult,
    ready: Option<ReadyCell>,
}

/// Weights and reference outputs, loaded or computed once per model (and form).
struct ModelData {
    weights: BTreeMap<(Model, Form), Result<(Weights, String), String>>,
    reference: BTreeMap<Model, Result<Tensor, String>>,
    int8: BTreeMap<(Model, Form), Result<Arc<Int8Reference>, String>>,
}

/// What an int8 cell runs and is checked against: the model quantized once per model and
/// form (batch norms folded, min/max ranges on `seeded_calibration`), and the quantized
/// reference's output on the cell's input.
struct Int8Reference {
    model: QuantizedModel,
    output: Tensor,
}

/// The signals that end a run gracefully: Ctrl-C (SIGINT) and SIGTERM (what CI cancellation,
/// `timeout` and `docker stop` send). The first sets the flag and is remembered; a second
/// ends the process at once.
#[cfg(unix)]
const GRACEFUL: [i32; 2] = [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM];

/// The signal that interrupted this run, if one did (its number, e.g. 2 or 15).
static SIGNAL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The flag SIGINT and SIGTERM set (installed once per process).
pub fn interrupt_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        #[cfg(unix)]
        for signal in GRACEFUL {
            // If a handler cannot be installed, the signal ends the process as usual.
            let _ = signal_hook::flag::register_conditional_shutdown(
                signal,
                128 + signal,
                flag.clone(),
            );
            let _ = signal_hook::flag::register(signal, flag.clone());
            // SAFETY: the action only stores into an atomic, which is async-signal-safe.
            let _ = unsafe {
                signal_hook::low_level::register(signal, move || {
                    SIGNAL.store(signal as usize, Ordering::SeqCst)
                })
            };
        }
        flag
    })
    .clone()
}

/// The exit code of an interrupted run: 128 + the signal (130 for Ctrl-C, 143 for SIGTERM).
pub fn interrupted_exit_code() -> u8 {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => 130,
        signal => (128 + signal).min(255) as u8,
    }
}

/// What a run produced, and where it was saved.
pub struct Outcome {
    pub results: ResultsFile,
    pub saved: Saved,
}

impl Outcome {
    pub fn any_failed(&self) -> bool {
        self.results
            .cells
            .iter()
            .any(|c| c.status == CellStatus::Failed)
    }
}

/// Runs a scenario in this process, or in `processes` fresh worker processes when it asks for
/// more than one (`crate::processes`).
pub fn run_scenario(scenario: &Scenario) -> Result<Outcome> {
    run_scenario_with(scenario, backends::all())
}

/// `run_scenario` with the backends the cells run on given by name (the registry's names):
/// the seam a test harness uses to wrap them (e.g. the gate's calibration slows one down).
/// A scenario in several processes runs them as `run_scenario` does: each worker is this
/// executable again, so a wrapping binary's workers are wrapped the same way.
pub fn run_scenario_with(scenario: &Scenario, registry: Vec<Box<dyn Backend>>) -> Result<Outcome> {
    if scenario.file.processes > 1 {
        return crate::processes::run_in_processes(scenario);
    }
    let interrupt = interrupt_flag();
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let clock = Instant::now();
    let f = &scenario.file;
    let out_dir = scenario.output_dir();
    check_writable(&out_dir)?;
    let (mut env, mut warnings) = announce(scenario);

    let (height, width) = scenario.input_size();
    let size = InputSize {
        batch: f.batch,
        height,
        width,
    };
    let input = seeded_uniform(size.shape(), f.seed, -2.0, 2.0);
    let mut cells = expand(scenario, size, &registry);
    if f.order == Order::Shuffled {
        shuffle(&mut cells, f.seed);
    }
    verify_and_measure(scenario, &mut cells, registry, size, &input, &interrupt)?;

    let interrupted = interrupt.load(Ordering::Relaxed);
    // Cells too short for a reading of their own get the whole measurement's.
    let mut run_load = crate::load::LoadWindow::default();
    for ready in cells.iter().filter_map(|c| c.ready.as_ref()) {
        run_load.merge(&ready.timer.load);
    }
    let target_ci = f.measurement.target_ci;
    let mut results: Vec<CellResult> = cells
        .into_iter()
        .map(|cell| finish_cell(cell, &env, target_ci, f.seed, interrupted, &run_load))
        .collect();
    warnings.extend(check_peak(&mut results, &mut env, &crate::machine::reprobe));
    warnings.extend(cell_count_warnings(&results));
    let mut results = results_file(scenario, env, results, warnings);
    results.started_at = started_at;
    results.duration_s = clock.elapsed().as_secs_f64();
    results.interrupted = interrupted;
    let saved = save(&results, &out_dir);
    Ok(Outcome { results, saved })
}

/// Captures the environment, prints the banner and the build's warnings, and returns both.
fn announce(scenario: &Scenario) -> (Environment, Vec<String>) {
    let f = &scenario.file;
    let max_threads = *f.threads.iter().max().unwrap_or(&1);
    let env = capture_environment(max_threads);
    let warnings = build_warnings(&env);
    for w in &warnings {
        eprintln!("\n!!! WARNING: {w}\n");
    }
    eprintln!(
        "onebench: scenario `{}`{}, {} on {} ({} logical cores)",
        f.name,
        if scenario.quick { " (quick)" } else { "" },
        env.build_profile,
        env.cpu,
        env.logical_cores
    );
    (env, warnings)
}

/// Prepares and verifies every cell, and measures them: one cell at a time for sequential
/// orders (measured right away), all prepared first for interleaving.
fn verify_and_measure(
    scenario: &Scenario,
    cells: &mut [Cell],
    registry: Vec<Box<dyn Backend>>,
    size: InputSize,
    input: &Tensor,
    interrupt: &AtomicBool,
) -> Result<()> {
    let f = &scenario.file;
    let mut data = ModelData {
        int8: BTreeMap::new(),
        weights: BTreeMap::new(),
        reference: BTreeMap::new(),
    };
    let budget = budget(scenario);
    let progress = progress_bar(cells.len() as u64);
    let backends_by_name: BTreeMap<String, Box<dyn Backend>> = registry
        .into_iter()
        .map(|b| (b.name().to_string(), b))
        .collect();
    let turns = Turns {
        budget: &budget,
        interrupt,
        progress: &progress,
        cooldown: Duration::from_millis(f.cooldown_ms),
        affinity: AffinityGuard::of_this_thread(),
    };
    let interleaved = f.order == Order::Interleaved;
    for i in 0..cells.len() {
        if interrupt.load(Ordering::Relaxed) {
            break;
        }
        progress.set_message(format!("verifying {}", cells[i].key));
        let backend = backends_by_name
            .get(&cells[i].key.backend)
            .map(|b| b.as_ref());
        prepare_cell(&mut cells[i], backend, scenario, size, input, &mut data);
        turns.put_affinity_back(&mut cells[i]);
        if !interleaved {
            measure_turns(&mut cells[i..=i], input, None, &turns)?;
        }
    }
    if interleaved {
        let slice = Some(Duration::from_millis(250));
        measure_turns(cells, input, slice, &turns)?;
    }
    progress.finish_and_clear();
    Ok(())
}

/// The results file of a run of `scenario` (start time, duration and interruption are the
/// caller's to set).
fn results_file(
    scenario: &Scenario,
    env: Environment,
    cells: Vec<CellResult>,
    warnings: Vec<String>,
) -> ResultsFile {
    let f = &scenario.file;
    ResultsFile {
        schema_version: SCHEMA_VERSION,
        tool: format!("onebench {}", env!("CARGO_PKG_VERSION")),
        scenario: ScenarioInfo {
            name: f.name.clone(),
            path: scenario.path.display().to_string(),
            sha256: scenario.sha256.clone(),
            quick: scenario.quick,
            order: f.order.name().into(),
        },
        started_at: String::new(),
        duration_s: 0.0,
        interrupted: false,
        speedups: speedups(&cells),
        environment: env,
        cells,
        device_profile: f.device_profile.as_ref().map(|d| DeviceProfile {
            name: d.name.clone(),
            peak_gflops: d.peak_gflops,
            memory_gbps: d.memory_gbps,
        }),
        reference_measurements: f
            .reference_measurements
            .as_ref()
            .map(|r| ReferenceMeasurements {
                name: r.name.clone(),
                form: r.form.0.name().into(),
                latency_ms: r
                    .latency_ms
                    .iter()
                    .map(|(m, v)| (m.0.name().to_string(), *v))
                    .collect(),
            }),
        warnings,
    }
}

/// The run's warnings that count cells: measured under load, wide intervals or spreads.
pub fn cell_count_warnings(results: &[CellResult]) -> Vec<String> {
    let mut warnings = Vec::new();
    let loaded = results.iter().filter(|c| c.under_load()).count();
    if loaded > 0 {
        warnings.push(format!(
            "{loaded} cell(s) were measured while other processes loaded the machine (flagged MEASURED UNDER LOAD): their latencies and any speedup built on them are not this machine's; stop the other work and run again (README, \"Bad input and faults\")"
        ));
    }
    let noisy = results.iter().filter(|c| !c.warnings.is_empty()).count();
    if noisy > 0 {
        warnings.push(format!(
            "{noisy} cell(s) have a wide confidence interval or a large spread; see their notes"
        ));
    }
    warnings
}

fn capture_environment(max_threads: usize) -> Environment {
    let probe_env = environment::capture(None);
    let peak = crate::machine::peak(
        &probe_env.machine_fingerprint,
        max_threads.max(probe_env.logical_cores),
    );
    Environment {
        peak: Some(peak),
        ..probe_env
    }
}

/// The warnings every report of this build must carry.
pub fn build_warnings(env: &Environment) -> Vec<String> {
    let mut w = Vec::new();
    if env.opt_level == "0" {
        w.push(format!(
            "measured with an UNOPTIMIZED build (profile {}, opt-level {}): these timings are not meaningful; keep opt-level = 3 in the workspace Cargo.toml or use --release",
            env.build_profile, env.opt_level
        ));
    }
    w
}

/// The scenario's backends with `all` expanded: every backend of `registry` compiled into this
/// build but `reference` (a backend whose feature is off is listed, with why, in the
/// environment).
pub fn backend_names(
    f: &crate::scenario::ScenarioFile,
    registry: &[Box<dyn Backend>],
) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for name in &f.backends {
        if name == "all" {
            names.extend(
                registry
                    .iter()
                    .filter(|b| b.name() != backends::reference::NAME && b.compiled_in())
                    .map(|b| b.name().to_string()),
            );
        } else {
            let wanted = name.trim().to_ascii_lowercase();
            let known = registry.iter().find(|b| b.name() == wanted);
            names.push(known.map_or_else(|| name.clone(), |b| b.name().to_string()));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// Every (model, form, backend, threads) cell; unavailable backends and unsupported thread
/// counts become skipped cells with their reason.
fn expand(scenario: &Scenario, size: InputSize, registry: &[Box<dyn Backend>]) -> Vec<Cell> {
    let f = &scenario.file;
    let names = backend_names(f, registry);
    let mut cells = Vec::new();
    for model in &f.models {
        for form in &f.forms {
            for backend_name in &names {
                for (threads, precision) in f.threads_and_precisions() {
                    let key = CellKey {
                        model: model.0.name(),
                        form: form.0.name().into(),
                        backend: backend_name.clone(),
                        precision: precision.name().into(),
                        threads,
                        batch: size.batch,
                        height: size.height,
                        width: size.width,
                    };
                    let graph = model.0.build(form.0, size).expect("validated sizes build");
                    let backend = registry.iter().find(|b| b.name() == backend_name);
                    let storage = backend
                        .map_or(models::Storage::uniform(precision.bytes() as u64), |b| {
                            b.storage(precision)
                        });
                    let result = empty_result(&key, &model_cost_at(&graph, storage));
                    cells.push(Cell {
                        key,
                        model: model.0,
                        form: form.0,
                        precision,
                        result,
                        ready: None,
                    });
                }
            }
        }
    }
    cells
}

fn empty_result(key: &CellKey, cost: &models::ModelCost) -> CellResult {
    CellResult::unmeasured(key.clone(), cost.totals.clone())
}

fn shuffle(cells: &mut [Cell], seed: u64) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for i in (1..cells.len()).rev() {
        let j = ((rng.next_u64() as u128 * (i as u128 + 1)) >> 64) as usize;
        cells.swap(i, j);
    }
}

fn weights_for(
    data: &mut ModelData,
    scenario: &Scenario,
    model: Model,
    form: Form,
) -> Result<(Weights, String), String> {
    data.weights
        .entry((model, form))
        .or_insert_with(|| {
            let w = &scenario.file.weights;
            let checkpoint = w.checkpoints.get(&crate::scenario::Parsed(model));
            match checkpoint.zip(model.mobileone()) {
                Some((path, variant)) => models::load_model_weights(
                    &scenario.resolve(path),
                    variant,
                    form,
                    w.naming.map(|n| n.0),
                )
                .map(|(weights, origin)| {
                    let folded = if origin.folded_at_load {
                        " (folded at load)"
                    } else {
                        ""
                    };
                    (weights, format!("{}{folded}", origin.source))
                })
                .map_err(|e| e.to_string()),
                None => Ok((
                    model.seeded_weights(form, w.seed),
                    format!("seed {}", w.seed),
                )),
            }
        })
        .clone()
}

/// The reference output for a model, computed once: on the reparameterized form when its
/// weights exist (the cheaper graph; the fold is exact to float32 rounding), else on the unfused.
fn reference_for(
    data: &mut ModelData,
    scenario: &Scenario,
    model: Model,
    size: InputSize,
    input: &Tensor,
) -> Result<Tensor, String> {
    if let Some(r) = data.reference.get(&model) {
        return r.clone();
    }
    let result = Form::ALL
        .into_iter()
        .rev()
        .find_map(|form| {
            weights_for(data, scenario, model, form)
                .ok()
                .map(|w| (form, w.0))
        })
        .ok_or_else(|| "no weights could be loaded for the reference".to_string())
        .and_then(|(form, weights)| {
            let graph = model.build(form, size).map_err(|e| e.to_string())?;
            backends::reference_output(&graph, &weights, input).map_err(|e| e.to_string())
        });
    data.reference.insert(model, result.clone());
    result
}

/// Checks availability, loads weights, prepares and verifies one cell against the reference;
/// a cell that cannot be measured says why.
fn prepare_cell(
    cell: &mut Cell,
    backend: Option<&dyn Backend>,
    scenario: &Scenario,
    size: InputSize,
    input: &Tensor,
    data: &mut ModelData,
) {
    let outcome = match backend.map(|b| (b, skip_reason(cell, b))) {
        None => Err((CellStatus::Skipped, "not compiled into this build".into())),
        Some((_, Some(reason))) => Err((CellStatus::Skipped, reason)),
        Some((backend, None)) => verified_plan(cell, backend, scenario, size, input, data),
    };
    if let Err((status, reason)) = outcome {
        cell.result.status = status;
        cell.result.reason = Some(reason);
    }
}

/// Why `backend` skips this cell, if it does.
fn skip_reason(cell: &Cell, backend: &dyn Backend) -> Option<String> {
    if let Availability::Unavailable(reason) = backend.availability() {
        return Some(reason);
    }
    if let Err(reason) = backend.supports(cell.precision) {
        return Some(reason);
    }
    (cell.key.threads > 1 && !backend.multithreaded())
        .then(|| format!("{} is single-threaded", backend.name()))
}

/// A failure of step `what`, as the cell's status and reason.
fn failed<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> (CellStatus, String) {
    move |e| (CellStatus::Failed, format!("{what}: {e}"))
}

/// Loads the weights, prepares the plan and checks its output against the reference; the
/// cell is then ready to measure.
fn verified_plan(
    cell: &mut Cell,
    backend: &dyn Backend,
    scenario: &Scenario,
    size: InputSize,
    input: &Tensor,
    data: &mut ModelData,
) -> Result<(), (CellStatus, String)> {
    let (weights, source) =
        weights_for(data, scenario, cell.model, cell.form).map_err(failed("weights"))?;
    cell.result.weights = source;
    let expected =
        reference_for(data, scenario, cell.model, size, input).map_err(failed("reference"))?;
    let graph = cell
        .model
        .build(cell.form, size)
        .expect("validated sizes build");
    let options = PrepareOptions::with_threads(cell.key.threads).at(cell.precision);
    let int8 = match cell.precision {
        Precision::Int8 => Some(
            int8_reference_for(data, (cell.model, cell.form), &graph, &weights, input)
                .map_err(failed("quantize"))?,
        ),
        _ => None,
    };
    let started = Instant::now();
    let plan = match &int8 {
        Some(r) => backend.prepare_quantized(&r.model, &options),
        None => backend.prepare(&graph, &weights, &options),
    };
    let mut plan = plan.map_err(failed("prepare"))?;
    cell.result.prepare_ms = started.elapsed().as_secs_f64() * 1e3;
    cell.result.plan = plan.describe();
    cell.result.device = backend.device();
    let output = plan.forward(input).map_err(failed("run"))?;
    let tolerance = backend.tolerance_at(cell.precision);
    let agreement = Agreement::measure(&output, &expected, tolerance);
    let codes_off = int8
        .as_ref()
        .map(|r| backends::verify::codes_off(&output, &r.output, &r.model));
    if let Some(r) = &int8 {
        cell.result.quantization = r.model.layers();
    }
    cell.result.verification = Some(Verification {
        relative_l2: agreement.relative_l2,
        max_abs_diff: agreement.max_abs_diff,
        tolerance: agreement.tolerance,
        integer_codes_off: codes_off,
    });
    if !agreement.passed() {
        let reason = format!(
            "output differs from the reference: relative L2 {:.3e} > tolerance {:.0e}",
            agreement.relative_l2, agreement.tolerance
        );
        return Err((CellStatus::Failed, reason));
    }
    let allowed = backend.int8_codes_allowed();
    if let (Some(off), Some(allowed)) = (codes_off, allowed.filter(|&a| codes_off > Some(a))) {
        let reason = format!("output differs from the quantized reference by up to {off} codes (at most {allowed} allowed)");
        return Err((CellStatus::Failed, reason));
    }
    if backend.reports_layer_times() {
        let options = PrepareOptions {
            per_layer_timing: true,
            ..options
        };
        let source = match &int8 {
            Some(r) => PlanSource::Quantized(&r.model),
            None => PlanSource::Float(&graph, &weights),
        };
        cell.result.layers = profile_layers(backend, source, &options, input);
    }
    cell.ready = Some(ReadyCell {
        plan,
        output,
        timer: CellTimer::new(),
    });
    Ok(())
}

/// What a plan is prepared from: a float graph with its weights, or an int8 model.
enum PlanSource<'a> {
    Float(&'a models::Graph, &'a Weights),
    Quantized(&'a QuantizedModel),
}

/// The int8 model of a model and form, and the quantized reference's output on `input`,
/// computed once.
fn int8_reference_for(
    data: &mut ModelData,
    key: (Model, Form),
    graph: &models::Graph,
    weights: &Weights,
    input: &Tensor,
) -> Result<Arc<Int8Reference>, String> {
    data.int8
        .entry(key)
        .or_insert_with(|| {
            use backends::quantized_reference::{quantize_seeded, run};
            let model = quantize_seeded(graph, weights).map_err(|e| e.to_string())?;
            let output = run(&model, input).map_err(|e| e.to_string())?;
            Ok(Arc::new(Int8Reference { model, output }))
        })
        .clone()
}

/// Runs for the per-layer breakdown, after one warm-up run.
const PROFILE_RUNS: u64 = 3;

/// Per-op times from a plan of its own, prepared with per-layer timing (its clock reads stay
/// out of the timed plan), averaged over `PROFILE_RUNS` runs after a warm-up. Empty if the
/// profiling plan fails: the breakdown is a bonus, not a verdict.
fn profile_layers(
    backend: &dyn Backend,
    source: PlanSource,
    options: &PrepareOptions,
    input: &Tensor,
) -> Vec<reports::results::LayerRecord> {
    let plan = match source {
        PlanSource::Float(graph, weights) => backend.prepare(graph, weights, options),
        PlanSource::Quantized(model) => backend.prepare_quantized(model, options),
    };
    let Ok(mut plan) = plan else {
        return Vec::new();
    };
    if plan.forward(input).is_err() {
        return Vec::new();
    }
    let warm = plan.layer_times();
    for _ in 0..PROFILE_RUNS {
        if plan.forward(input).is_err() {
            return Vec::new();
        }
    }
    plan.layer_times()
        .into_iter()
        .zip(warm)
        .map(|(now, before)| reports::results::LayerRecord {
            name: now.name,
            kind: now.kind,
            kernel: now.kernel,
            ms: (now.seconds - before.seconds) / PROFILE_RUNS as f64 * 1e3,
        })
        .collect()
}

/// What every measuring turn shares.
struct Turns<'a> {
    budget: &'a Budget,
    interrupt: &'a AtomicBool,
    progress: &'a ProgressBar,
    cooldown: Duration,
    /// The measuring thread's CPU affinity, put back after any engine changes it.
    affinity: AffinityGuard,
}

impl Turns<'_> {
    /// Puts the measuring thread's affinity back if `cell`'s engine changed it, and says so
    /// in the cell's warnings.
    fn put_affinity_back(&self, cell: &mut Cell) {
        if let Some(change) = self.affinity.put_back() {
            let warning = format!(
                "{} changed the measuring thread's CPU affinity ({change}); put back",
                cell.key.backend
            );
            if !cell.result.warnings.contains(&warning) {
                cell.result.warnings.push(warning);
            }
        }
    }
}

/// Measures the ready cells among `cells` in turns (`slice` None: each to completion).
fn measure_turns(
    cells: &mut [Cell],
    input: &Tensor,
    slice: Option<Duration>,
    turns: &Turns,
) -> Result<()> {
    let (budget, interrupt, progress) = (turns.budget, turns.interrupt, turns.progress);
    loop {
        let mut any_left = false;
        for cell in cells.iter_mut() {
            let key = cell.key.to_string();
            let Some(ready) = cell.ready.as_mut() else {
                continue;
            };
            if ready.timer.is_done() {
                continue;
            }
            progress.set_message(format!(
                "measuring {key} ({} samples)",
                ready.timer.samples_ms.len()
            ));
            let done = match ready.timer.turn(
                ready.plan.as_mut(),
                input,
                &mut ready.output,
                budget,
                slice,
                interrupt,
            ) {
                Ok(done) => done,
                Err(e) => {
                    cell.result.status = CellStatus::Failed;
                    cell.result.reason = Some(format!("run: {e}"));
                    cell.ready = None;
                    true
                }
            };
            turns.put_affinity_back(cell);
            if done {
                if let Some(ready) = cell.ready.as_ref() {
                    cell.result.resident_bytes = environment::resident_bytes();
                    if ready.timer.stopped != Some(StopReason::Interrupted) {
                        progress.inc(1);
                        if progress.is_hidden() {
                            let median =
                                stats::quantile(&stats::sorted(&ready.timer.samples_ms), 0.5);
                            eprintln!(
                                "  measured {key}: median {median:.3} ms over {} runs",
                                ready.timer.samples_ms.len()
                            );
                        }
                    }
                }
            } else {
                any_left = true;
            }
            sleep_unless_interrupted(turns.cooldown, interrupt);
            if interrupt.load(Ordering::Relaxed) {
                return Ok(());
            }
        }
        if !any_left {
            return Ok(());
        }
    }
}

/// Sleeps for `pause` in short steps, waking at once when the run is interrupted.
fn sleep_unless_interrupted(pause: Duration, interrupt: &AtomicBool) {
    let until = Instant::now() + pause;
    while !interrupt.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// Turns a cell's samples into its result: summary, throughput, warnings.
fn finish_cell(
    cell: Cell,
    env: &Environment,
    target_ci: Option<f64>,
    seed: u64,
    interrupted: bool,
    run_load: &crate::load::LoadWindow,
) -> CellResult {
    let mut r = cell.result;
    let Some(ready) = cell.ready else {
        if r.status == CellStatus::Interrupted && !interrupted {
            r.reason = Some("not reached".into());
        }
        return r;
    };
    let timer = ready.timer;
    r.warmup_runs = timer.warmup_runs;
    if timer.stopped == Some(StopReason::Interrupted) || timer.samples_ms.is_empty() {
        r.status = CellStatus::Interrupted;
        r.reason = Some(format!(
            "interrupted after {} samples",
            timer.samples_ms.len()
        ));
        r.samples_ms = timer.samples_ms;
        return r;
    }
    r.foreign_load = timer.load.cores().or_else(|| run_load.cores());
    r.samples_ms = timer.samples_ms;
    set_latency(&mut r, &[], env, target_ci, seed);
    if !timer.gpu_samples_ms.is_empty() {
        r.gpu_median_ms = Some(stats::quantile(&stats::sorted(&timer.gpu_samples_ms), 0.5));
        r.gpu_samples_ms = timer.gpu_samples_ms;
    }
    r
}

/// Makes a cell with samples `ok` and gives it its statistics, throughput and warnings.
/// `samples_per_process` splits `samples_ms` by the process that took them (empty: one).
pub fn set_latency(
    r: &mut CellResult,
    samples_per_process: &[usize],
    env: &Environment,
    target_ci: Option<f64>,
    seed: u64,
) {
    let groups = reports::results::split_by_process(&r.samples_ms, samples_per_process);
    let (summary, spread) = stats::summarize_processes(&groups, seed);
    r.processes = spread;
    let seconds = summary.median_ms / 1e3;
    r.achieved_gflops = r.cost.flops as f64 / seconds / 1e9;
    r.achieved_gbps = r.cost.memory_traffic_bytes as f64 / seconds / 1e9;
    r.fraction_of_peak = fraction_of_peak(r, env);
    let limit = target_ci.unwrap_or(0.02);
    if summary.ci95_relative > limit {
        r.warnings.push(format!(
            "95% CI ±{:.1}% exceeds ±{:.1}%",
            summary.ci95_relative * 100.0,
            limit * 100.0
        ));
    }
    if summary.iqr_ms > 0.1 * summary.median_ms {
        r.warnings.push(format!(
            "large spread: IQR {:.0}% of the median",
            summary.iqr_ms / summary.median_ms * 100.0
        ));
    }
    if let Some(p) = &r.processes {
        if p.multimodal {
            r.warnings.push(format!(
                "MULTIMODAL: its {} processes ran at separate speeds (medians {}); which one a process gets is chance, not the code",
                p.medians_ms.len(),
                p.medians_ms.iter().map(|m| format!("{m:.3}")).collect::<Vec<_>>().join(", ")
            ));
        } else if p.spread > reports::results::PROCESS_SPREAD_LIMIT {
            r.warnings.push(format!(
                "process medians {:.1}% apart (max/min)",
                p.spread * 100.0
            ));
        }
    }
    if r.under_load() {
        r.warnings.push(format!(
            "MEASURED UNDER LOAD: other processes kept {:.2} cores busy (limit {}); not this machine's speed",
            r.foreign_load.unwrap_or(0.0),
            reports::results::FOREIGN_LOAD_LIMIT
        ));
    }
    r.status = CellStatus::Ok;
    r.reason = None;
    r.latency = Some(summary);
}

/// Achieved GFLOP/s over the probed peak at the cell's precision, at the largest probed thread
/// count not above the cell's; none at a precision the machine has no peak for.
fn fraction_of_peak(cell: &CellResult, env: &Environment) -> Option<f64> {
    let peak = env.peak.as_ref()?;
    let threads = peak
        .gflops
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| *t <= cell.key.threads)
        .max()?;
    let at = peak.gflops_at(threads, &cell.key.precision)?;
    Some(cell.achieved_gflops / at)
}

/// A cell above 100% of the peak means the cached peak was probed on a busy machine (or a
/// FLOP count is wrong): probe again, once, and recompute every fraction; a cell still above
/// 100% gets a warning that names the cache file and how to refresh it.
fn check_peak(
    cells: &mut [CellResult],
    env: &mut Environment,
    reprobe: &dyn Fn(&str, usize) -> reports::results::MachinePeak,
) -> Vec<String> {
    let above = |cells: &[CellResult]| {
        cells
            .iter()
            .any(|c| c.fraction_of_peak.is_some_and(|f| f > 1.0))
    };
    if !above(cells) {
        return Vec::new();
    }
    eprintln!("a cell measured above the cached peak of this machine: probing the peak again");
    let threads = env
        .peak
        .as_ref()
        .and_then(|p| p.gflops.iter().map(|(t, _)| *t).max())
        .unwrap_or(1);
    env.peak = Some(reprobe(&env.machine_fingerprint, threads));
    for c in cells.iter_mut().filter(|c| c.status == CellStatus::Ok) {
        c.fraction_of_peak = fraction_of_peak(c, env);
    }
    let cache = crate::machine::cache_path(&env.machine_fingerprint)
        .map_or("(no cache file: HOME is not set)".into(), |p| {
            p.display().to_string()
        });
    cells
        .iter_mut()
        .filter(|c| c.fraction_of_peak.is_some_and(|f| f > 1.0))
        .map(|c| {
            let w = format!(
                "{} measured {:.0}% of the probed peak even after probing again: the peak in {cache} is too low (probed while the machine was busy?) or the model's FLOP count is off; delete that file to probe again on a quiet machine",
                c.key,
                c.fraction_of_peak.unwrap_or(0.0) * 100.0
            );
            c.warnings.push(format!("ABOVE PEAK: {:.0}% of the probed peak", c.fraction_of_peak.unwrap_or(0.0) * 100.0));
            w
        })
        .collect()
}

/// unfused / reparameterized median per model, backend and thread count.
pub fn speedups(cells: &[CellResult]) -> Vec<Speedup> {
    let median_of = |c: &CellResult| c.median_ms().filter(|_| c.status == CellStatus::Ok);
    let mut out = Vec::new();
    for fused in cells
        .iter()
        .filter(|c| c.key.form == Form::Reparameterized.name())
    {
        let Some(fused_ms) = median_of(fused) else {
            continue;
        };
        let unfused = cells.iter().find(|c| {
            c.key.form == Form::Unfused.name()
                && CellKey {
                    form: fused.key.form.clone(),
                    ..c.key.clone()
                } == fused.key
        });
        if let Some(unfused_ms) = unfused.and_then(median_of) {
            out.push(Speedup {
                model: fused.key.model.clone(),
                backend: fused.key.backend.clone(),
                precision: fused.key.precision.clone(),
                threads: fused.key.threads,
                unfused_ms,
                reparameterized_ms: fused_ms,
                speedup: unfused_ms / fused_ms,
                under_load: fused.under_load() || unfused.is_some_and(|u| u.under_load()),
            });
        }
    }
    out
}

fn budget(scenario: &Scenario) -> Budget {
    let f = &scenario.file;
    Budget {
        warmup_runs: f.warmup.runs,
        warmup_min: Duration::from_millis(f.warmup.min_time_ms),
        min_runs: f.measurement.min_runs,
        max_runs: f.measurement.max_runs,
        min_time: Duration::from_millis(f.measurement.min_time_ms),
        max_time: Duration::from_millis(f.measurement.max_time_ms),
        target_ci: f.measurement.target_ci,
    }
}

fn progress_bar(cells: u64) -> ProgressBar {
    let bar = ProgressBar::new(cells);
    bar.set_style(
        ProgressStyle::with_template(
            "[{elapsed_precise}] {bar:30} cell {pos}/{len} (eta {eta}) {msg}",
        )
        .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// results.json, results.csv, report.md and report.html, written together (all or none
/// replaced).
pub fn write_outputs(results: &ResultsFile, out_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("{}: cannot create the output folder", out_dir.display()))?;
    let texts = [
        results.to_json(),
        reports::summary::csv(results),
        reports::summary::markdown(results),
        reports::html::html(results),
    ];
    let files: Vec<(&std::ffi::OsStr, &[u8])> = OUTPUT_FILES
        .iter()
        .zip(&texts)
        .map(|(name, text)| (std::ffi::OsStr::new(*name), text.as_bytes()))
        .collect();
    models::checkpoint::write_all_atomically(out_dir, &files)
        .with_context(|| format!("{}: cannot write the results", out_dir.display()))
}

/// The files a run writes (all or none), in the order `write_outputs` writes them.
pub const OUTPUT_FILES: [&str; 4] = ["results.json", "results.csv", "report.md", "report.html"];

/// "wrote DIR/results.json, results.csv, ...": what a run or a re-render says it wrote.
pub fn wrote(dir: &Path) -> String {
    format!("wrote {}/{}", dir.display(), OUTPUT_FILES.join(", "))
}

/// Fails early, before anything is measured, when the output folder cannot be written.
pub fn check_writable(out_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(out_dir)
        .and_then(|()| tempfile::NamedTempFile::new_in(out_dir).map(drop))
        .with_context(|| {
            format!(
                "{}: the output folder cannot be written, so nothing would be kept; choose another with --out",
                out_dir.display()
            )
        })
}

/// Where a run's outputs went, and what the user must be told about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Saved {
    pub dir: PathBuf,
    pub notes: Vec<String>,
    /// False when the outputs could not go where they were asked to.
    pub where_asked: bool,
}

/// Writes the outputs without ever making `out_dir` worse: an interrupted run does not
/// replace a complete earlier one (it goes to `out_dir/interrupted`), and when `out_dir`
/// cannot be written the outputs go to a fresh folder under the system's temporary folder.
pub fn save(results: &ResultsFile, out_dir: &Path) -> Saved {
    let mut notes = Vec::new();
    let mut dir = out_dir.to_path_buf();
    if results.interrupted && holds_complete_run(out_dir) {
        dir = out_dir.join("interrupted");
        notes.push(format!(
            "{} holds an earlier complete run, kept as it was; this interrupted run is in {}",
            out_dir.display(),
            dir.display()
        ));
    }
    let Err(e) = write_outputs(results, &dir) else {
        return Saved {
            dir,
            notes,
            where_asked: true,
        };
    };
    notes.push(format!("{e:#}"));
    let fallback = std::env::temp_dir().join(format!(
        "onebench-{}-{}",
        results.scenario.name,
        std::process::id()
    ));
    match write_outputs(results, &fallback) {
        Ok(()) => notes.push(format!(
            "the results were saved to {} instead",
            fallback.display()
        )),
        Err(e) => notes.push(format!(
            "nor could they be saved to {}: {e:#}; the table above is all that is kept",
            fallback.display()
        )),
    }
    Saved {
        dir: fallback,
        notes,
        where_asked: false,
    }
}

/// Whether `dir` holds the results of a run that was not interrupted.
fn holds_complete_run(dir: &Path) -> bool {
    ResultsFile::read(&dir.join("results.json")).is_ok_and(|r| !r.interrupted)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn an_unoptimized_build_is_warned_about_loudly() {
        let mut env = environment::capture(None);
        env.opt_level = "0".into();
        let w = build_warnings(&env);
        assert!(w.len() == 1 && w[0].contains("UNOPTIMIZED"), "{w:?}");
        env.opt_level = "3".into();
        assert!(build_warnings(&env).is_empty());
    }

    pub(crate) fn empty_run(interrupted: bool) -> ResultsFile {
        ResultsFile {
            schema_version: SCHEMA_VERSION,
            tool: "test".into(),
            scenario: ScenarioInfo {
                name: "t".into(),
                path: "t.yaml".into(),
                sha256: String::new(),
                quick: true,
                order: "sequential".into(),
            },
            started_at: String::new(),
            duration_s: 0.0,
            interrupted,
            environment: environment::capture(None),
            cells: Vec::new(),
            speedups: Vec::new(),
            device_profile: None,
            reference_measurements: None,
            warnings: Vec::new(),
        }
    }

    #[test]
    fn an_interrupted_run_never_replaces_a_complete_one() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let first = save(&empty_run(false), &out);
        assert_eq!((first.dir.clone(), first.where_asked), (out.clone(), true));
        let second = save(&empty_run(true), &out);
        assert_eq!(second.dir, out.join("interrupted"));
        assert!(second.notes[0].contains("holds an earlier complete run, kept as it was"));
        assert!(
            !ResultsFile::read(&out.join("results.json"))
                .unwrap()
                .interrupted
        );
        assert!(
            ResultsFile::read(&out.join("interrupted/results.json"))
                .unwrap()
                .interrupted
        );
        // An interrupted run may replace an interrupted one, and a complete run anything.
        let dir2 = tempfile::tempdir().unwrap();
        save(&empty_run(true), dir2.path());
        assert_eq!(save(&empty_run(true), dir2.path()).dir, dir2.path());
    }

    #[test]
    fn results_that_cannot_go_where_asked_go_to_the_temporary_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, "not a folder").unwrap();
        let out = file.join("out");
        let e = check_writable(&out).unwrap_err();
        assert!(
            format!("{e:#}").contains("the output folder cannot be written"),
            "{e:#}"
        );
        let saved = save(&empty_run(false), &out);
        assert!(!saved.where_asked);
        assert!(
            saved.dir.starts_with(std::env::temp_dir()),
            "{:?}",
            saved.dir
        );
        assert!(ResultsFile::read(&saved.dir.join("results.json")).is_ok());
        assert!(
            saved.notes[1].starts_with("the results were saved to "),
            "{:?}",
            saved.notes
        );
        std::fs::remove_dir_all(&saved.dir).unwrap();
    }

    #[test]
    fn a_cooldown_ends_at_once_when_the_run_is_interrupted() {
        // An hour's pause returns at once (a hang here would be the bug).
        sleep_unless_interrupted(Duration::from_secs(3600), &AtomicBool::new(true));
        sleep_unless_interrupted(Duration::from_millis(1), &AtomicBool::new(false));
    }

    fn peak_of(gflops: f64) -> reports::results::MachinePeak {
        reports::results::MachinePeak {
            gflops: vec![(1, gflops)],
            precision_rates: Default::default(),
            gbps: vec![(1, 10.0)],
            isa: "test".into(),
        }
    }

    #[test]
    fn a_16_bit_cell_is_measured_against_its_precisions_peak_and_none_without_one() {
        let key = |precision: &str, threads| CellKey {
            model: "mobileone-s0".into(),
            form: "reparameterized".into(),
            backend: "native".into(),
            precision: precision.into(),
            threads,
            batch: 1,
            height: 224,
            width: 224,
        };
        let mut env = environment::capture(None);
        let mut peak = peak_of(100.0);
        peak.gflops.push((2, 190.0));
        peak.precision_rates.insert("fp16".into(), 2.0);
        env.peak = Some(peak);
        let at = |precision, threads| {
            let mut cell = CellResult::unmeasured(key(precision, threads), Default::default());
            cell.achieved_gflops = 95.0;
            fraction_of_peak(&cell, &env)
        };
        assert_eq!(at("fp32", 1), Some(0.95));
        assert_eq!(at("fp16", 1), Some(0.475));
        // The largest probed thread count not above the cell's, at fp16's rate.
        assert_eq!(at("fp16", 3), Some(95.0 / 380.0));
        assert_eq!(at("bf16", 1), None, "no bf16 rate was probed");
    }

    #[test]
    fn a_cell_above_the_cached_peak_makes_the_peak_probed_again_and_warns_if_still_above() {
        let key = CellKey {
            model: "mobileone-s0".into(),
            form: "reparameterized".into(),
            backend: "native".into(),
            precision: "fp32".into(),
            threads: 1,
            batch: 1,
            height: 224,
            width: 224,
        };
        let mut cell = CellResult::unmeasured(key, Default::default());
        cell.status = CellStatus::Ok;
        cell.achieved_gflops = 293.0;
        let mut env = environment::capture(None);
        env.peak = Some(peak_of(100.0));
        cell.fraction_of_peak = fraction_of_peak(&cell, &env);
        assert_eq!(cell.fraction_of_peak, Some(2.93));

        // The busy-machine cache: probed again, the true peak puts the cell at 98%.
        let mut cells = vec![cell.clone()];
        let mut fresh_env = env.clone();
        let w = check_peak(&mut cells, &mut fresh_env, &|_, _| peak_of(300.0));
        assert!(w.is_empty(), "{w:?}");
        assert!((cells[0].fraction_of_peak.unwrap() - 293.0 / 300.0).abs() < 1e-12);

        // Still above after probing again: a warning with the cache file and the way out.
        let mut cells = vec![cell];
        let w = check_peak(&mut cells, &mut env, &|_, _| peak_of(100.0));
        assert!(
            w.len() == 1
                && w[0].contains("293% of the probed peak even after probing again")
                && w[0].contains("peak-")
                && w[0].contains("delete that file"),
            "{w:?}"
        );
        assert!(cells[0].warnings[0].starts_with("ABOVE PEAK: 293%"));
    }
}

#[cfg(test)]
mod all_backends_tests {
    use super::*;

    #[test]
    fn all_means_every_backend_compiled_in_except_the_reference() {
        let file: crate::scenario::ScenarioFile =
            serde_norway::from_str("name: t\nmodels: [s0]\nbackends: [all, tch]\n").unwrap();
        let names = backend_names(&file, &backends::all());
        assert!(!names.iter().any(|n| n == "reference"));
        assert!(names.contains(&"native".to_string()));
        assert_eq!(names.contains(&"gpu".to_string()), cfg!(feature = "gpu"));
        assert_eq!(names.contains(&"metal".to_string()), cfg!(feature = "gpu"));
        // Named explicitly, a backend that is not compiled in still gets its (skipped) cells.
        assert_eq!(names.iter().filter(|n| *n == "tch").count(), 1);
    }
}
