//! `harness SCENARIO` end to end: a small scenario runs, verifies, measures and writes
//! results.json (schema fields, raw samples), results.csv, report.md and report.html; a failing cell is
//! reported without stopping the others; Ctrl-C keeps what was measured; `harness report`
//! re-renders from saved results; every shipped scenario parses.

mod common;
use common::{assert_contains, harness, run_scenario};

use std::path::Path;
use std::process::Command;

use harness::scenario::{Overrides, Scenario};
use reports::results::{CellStatus, ResultsFile};

/// The first cell of `backend` in a results file.
fn cell_of<'a>(results: &'a ResultsFile, backend: &str) -> &'a reports::results::CellResult {
    results
        .cells
        .iter()
        .find(|c| c.key.backend == backend)
        .unwrap_or_else(|| panic!("no cell for backend {backend}"))
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

const SMALL: &str = "name: small
models: [s0, s1]
forms: [unfused, reparameterized]
backends: [reference, candle]
threads: [1, 2]
input_size: 32
warmup: {runs: 1, min_time_ms: 0}
measurement: {min_runs: 3, max_runs: 6, min_time_ms: 0, max_time_ms: 300, target_ci: 0.05}
order: shuffled
seed: 4
";

#[test]
fn a_scenario_runs_end_to_end_and_writes_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let (o, out) = run_scenario(dir.path(), "small.yaml", SMALL);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_contains(&stdout, &["median ms", "reparameterization speedup"]);

    let results = ResultsFile::read(&out.join("results.json")).unwrap();
    assert_eq!(results.cells.len(), 2 * 2 * 2 * 2);
    assert_eq!(results.scenario.order, "shuffled");
    for cell in &results.cells {
        let single_threaded_reference = cell.key.backend == "reference" && cell.key.threads == 2;
        if single_threaded_reference {
            assert_eq!(cell.status, CellStatus::Skipped, "{}", cell.key);
            assert!(cell.reason.as_deref().unwrap().contains("single-threaded"));
            continue;
        }
        assert_eq!(
            cell.status,
            CellStatus::Ok,
            "{}: {:?}",
            cell.key,
            cell.reason
        );
        let l = cell.latency.as_ref().unwrap();
        assert_eq!(l.samples, cell.samples_ms.len());
        assert!(
            (3..=6).contains(&l.samples),
            "{}: {} samples",
            cell.key,
            l.samples
        );
        assert!(l.min_ms <= l.median_ms && l.median_ms <= l.p90_ms && l.p90_ms <= l.max_ms);
        assert!(l.ci95_ms[0] <= l.median_ms && l.median_ms <= l.ci95_ms[1]);
        assert!(cell.verification.as_ref().unwrap().relative_l2 <= 1e-4);
        assert!(cell.achieved_gflops > 0.0 && cell.prepare_ms > 0.0 && cell.resident_bytes > 0);
        assert!(!cell.plan.is_empty());
    }
    assert!(!results.speedups.is_empty());
    assert!(results.environment.peak.is_some() && !results.environment.rustc.is_empty());

    // The flat per-cell keys the schema promises.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let cell = json["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["status"] == "ok")
        .unwrap();
    for key in [
        "model",
        "form",
        "backend",
        "precision",
        "threads",
        "batch",
        "median_ms",
        "p90_ms",
        "ci95_ms",
        "samples_ms",
        "status",
    ] {
        assert!(!cell[key].is_null(), "cell key {key} missing");
    }
    assert_eq!(json["schema_version"], 2);

    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert!(csv.starts_with(
        "model,form,backend,precision,threads,batch,height,width,status,relative_l2,tolerance,median_ms"
    ));
    assert_eq!(csv.lines().count(), 1 + 16);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert_contains(&md, &["# onebench: small", "| mobileone-s1 |"]);

    // `harness report` re-renders from the saved results without measuring.
    let again = dir.path().join("again");
    let o = harness(&[
        "report",
        out.join("results.json").to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(again.join("results.csv")).unwrap(),
        csv
    );
}

#[test]
fn a_failing_cell_is_reported_and_the_others_still_run() {
    let dir = tempfile::tempdir().unwrap();
    // An S1 checkpoint given for S0: S0's cells fail with the loader's message, S1's run.
    let s1 = models::Model::MobileOne(models::Variant::S1)
        .seeded_weights(models::Form::Reparameterized, 0);
    models::save_safetensors(&s1, &dir.path().join("s1.safetensors")).unwrap();
    let (o, out) = run_scenario(dir.path(), "f.yaml", "name: f\nmodels: [s0, s1]\nforms: [reparameterized]\nbackends: [candle]\ninput_size: 32\nweights:\n  checkpoints:\n    s0: s1.safetensors\nmeasurement: {min_runs: 3, max_runs: 3, min_time_ms: 0, max_time_ms: 200}\n");
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let results = ResultsFile::read(&out.join("results.json")).unwrap();
    let s0 = results
        .cells
        .iter()
        .find(|c| c.key.model == "mobileone-s0")
        .unwrap();
    assert_eq!(s0.status, CellStatus::Failed);
    assert!(
        s0.reason
            .as_deref()
            .unwrap()
            .contains("looks like mobileone-s1 reparameterized"),
        "{:?}",
        s0.reason
    );
    let s1 = results
        .cells
        .iter()
        .find(|c| c.key.model == "mobileone-s1")
        .unwrap();
    assert_eq!(s1.status, CellStatus::Ok, "{:?}", s1.reason);
}

#[test]
fn an_optional_backend_runs_when_compiled_in_and_is_skipped_with_its_reason_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let (o, out) = run_scenario(dir.path(), "t.yaml", "name: t\nmodels: [s0]\nforms: [reparameterized]\nbackends: [tch, candle]\ninput_size: 32\nmeasurement: {min_runs: 3, max_runs: 3, min_time_ms: 0, max_time_ms: 200}\n");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let results = ResultsFile::read(&out.join("results.json")).unwrap();
    let cell = |backend: &str| cell_of(&results, backend);
    assert_eq!(cell("candle").status, CellStatus::Ok);
    let tch = cell("tch");
    if cfg!(feature = "tch") {
        assert_eq!(tch.status, CellStatus::Ok, "{:?}", tch.reason);
    } else {
        assert_eq!(tch.status, CellStatus::Skipped);
        assert_eq!(
            tch.reason.as_deref(),
            Some("not compiled in (build with --features tch)")
        );
    }
}

/// Starts a long sequential run into `out`, sends `signal` after `after_ms`, and returns the
/// exit code and stderr.
#[cfg(unix)]
fn interrupted_run(dir: &Path, out: &Path, signal: &str, after_ms: u64) -> (Option<i32>, String) {
    let scenario = write(
        dir,
        "long.yaml",
        "name: long\nmodels: [s0, s1, s2]\nforms: [reparameterized]\nbackends: [candle]\ninput_size: 32\norder: sequential\nwarmup: {runs: 1, min_time_ms: 0}\nmeasurement: {min_runs: 1, max_runs: 1000000, min_time_ms: 0, max_time_ms: 1500, target_ci: 0.000001}\n",
    );
    signalled_run(&scenario, out, signal, after_ms)
}

/// Runs `harness SCENARIO --out OUT`, sends it `signal` `after_ms` after its first line on
/// stderr (so the process is running its own code: loading a linked libtorch alone takes a
/// few hundred milliseconds before `main`) and returns its exit code and stderr.
fn signalled_run(scenario: &str, out: &Path, signal: &str, after_ms: u64) -> (Option<i32>, String) {
    use std::io::{BufRead, Read};
    let mut child = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args([scenario, "--out", out.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut err = String::new();
    stderr.read_line(&mut err).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(after_ms));
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let o = child.wait_with_output().unwrap();
    stderr.read_to_string(&mut err).unwrap();
    (o.status.code(), err)
}

#[cfg(unix)]
#[test]
fn sigterm_is_treated_like_ctrl_c_and_never_spoils_a_complete_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (code, err) = interrupted_run(dir.path(), &out, "-TERM", 2500);
    assert_eq!(code, Some(143), "{err}");
    let results = ResultsFile::read(&out.join("results.json")).unwrap();
    assert!(results.interrupted);
    assert_eq!(results.cells[0].status, CellStatus::Ok);

    // A complete run in a folder, then a run interrupted at once into the same folder: the
    // complete one stays, the interrupted one goes beside it.
    let done = dir.path().join("done");
    let scenario = write(dir.path(), "one.yaml", "name: one\nmodels: [s0]\nforms: [reparameterized]\nbackends: [reference]\ninput_size: 32\n");
    let o = harness(&[&scenario, "--quick", "--out", done.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let before = std::fs::read(done.join("results.json")).unwrap();
    let (code, err) = interrupted_run(dir.path(), &done, "-INT", 300);
    assert_eq!(code, Some(130), "{err}");
    assert_eq!(std::fs::read(done.join("results.json")).unwrap(), before);
    assert_contains(&err, &["holds an earlier complete run, kept as it was"]);
    assert!(
        ResultsFile::read(&done.join("interrupted/results.json"))
            .unwrap()
            .interrupted
    );
}

#[test]
fn an_output_folder_that_cannot_be_written_is_refused_before_measuring() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let scenario = write(
        dir.path(),
        "one.yaml",
        "name: one\nmodels: [s0]\nbackends: [reference]\ninput_size: 32\n",
    );
    let o = harness(&[&scenario, "--out", file.join("out").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("the output folder cannot be written") && !err.contains("measured"),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn ctrl_c_keeps_the_cells_measured_so_far() {
    let dir = tempfile::tempdir().unwrap();
    // Long budgets, sequential: the first cells finish, a later one is interrupted.
    let out = dir.path().join("out");
    let (code, err) = interrupted_run(dir.path(), &out, "-INT", 2500);
    assert_eq!(code, Some(130), "{err}");
    let results = ResultsFile::read(&out.join("results.json")).unwrap();
    assert!(results.interrupted);
    let statuses: Vec<_> = results.cells.iter().map(|c| c.status).collect();
    assert_eq!(statuses[0], CellStatus::Ok, "{statuses:?}");
    assert!(statuses.contains(&CellStatus::Interrupted), "{statuses:?}");
    // No temporary files are left beside the outputs.
    let names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        4,
        "results.json, results.csv, report.md, report.html: {names:?}"
    );
}

#[test]
fn bad_scenarios_give_one_clear_line_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let (o, out) = run_scenario(
        dir.path(),
        "bad.yaml",
        "name: bad\nmodels: [s0]\nthreds: [1]\n",
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_contains(&err, &["bad.yaml:3:", "unknown field `threds`"]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!out.exists());
    let o = harness(&["report", dir.path().join("nothing.json").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing.json: cannot read"));
    let junk = write(dir.path(), "junk.json", "{\"schema_version\": 99}");
    let o = harness(&["report", &junk]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("schema version 99 is not supported"));
}

#[test]
fn every_shipped_scenario_parses_in_quick_mode() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let quick = Overrides {
                quick: true,
                ..Default::default()
            };
            Scenario::load(&path, &quick).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            count += 1;
        }
    }
    assert!(count >= 3, "iphone-class, quick and full-sweep at least");
}

/// With no GPU adapter (the Vulkan loader pointed at no driver, wgpu held to Vulkan), `gpu`
/// reports "no GPU adapter found", its cells are skipped with that reason, and the run goes on
/// with the other backends.
#[cfg(feature = "gpu")]
#[test]
fn without_an_adapter_the_gpu_cells_are_skipped_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(
        dir.path(),
        "s.yaml",
        "name: t\nmodels: [s0]\nforms: [reparameterized]\nbackends: [gpu, native]\ninput_size: 32\nmeasurement: {min_runs: 3, max_runs: 3, min_time_ms: 0, max_time_ms: 200}\n",
    );
    let out = dir.path().join("out");
    let no_driver = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_harness"))
            .args(args)
            .env("VK_ICD_FILENAMES", dir.path().join("none.json"))
            .env("VK_DRIVER_FILES", dir.path().join("none.json"))
            .env("WGPU_BACKEND", "vulkan")
            .output()
            .unwrap()
    };
    let list = no_driver(&["list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("  gpu ") && l.ends_with("unavailable: no GPU adapter found")),
        "{text}"
    );
    let o = no_driver(&[&scenario, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let results = ResultsFile::read(&out.join("results.json")).unwrap();
    let cell = |backend: &str| cell_of(&results, backend);
    assert_eq!(cell("gpu").status, CellStatus::Skipped);
    assert_eq!(cell("gpu").reason.as_deref(), Some("no GPU adapter found"));
    assert_eq!(cell("native").status, CellStatus::Ok);
}

#[test]
fn processes_measure_each_cell_in_fresh_workers_and_keep_their_split() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let scenario = write(
        dir.path(),
        "procs.yaml",
        "name: procs\nmodels: [s0]\nforms: [reparameterized]\nbackends: [native]\nthreads: [1]\ninput_size: 32\nprocesses: 2\nwarmup: {runs: 1, min_time_ms: 0}\nmeasurement: {min_runs: 12, max_runs: 12, min_time_ms: 0, max_time_ms: 5000}\n",
    );
    // The scenario asks for 2 processes; the command line for 3, and bf16 instead of the
    // default fp32 (every override reaches the workers).
    let o = harness(&[
        &scenario,
        "--processes",
        "3",
        "--precisions",
        "bf16",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    for i in 1..=3 {
        assert_contains(&stderr, &[&format!("process {i} of 3")]);
    }
    let results = ResultsFile::read(&out.join("results.json")).unwrap();
    assert_eq!(results.cells.len(), 1);
    let cell = &results.cells[0];
    assert_eq!(cell.status, CellStatus::Ok);
    assert_eq!(cell.key.precision, "bf16");
    // 12 runs over 3 processes: 4 each, kept apart.
    let p = cell.processes.as_ref().expect("a process split");
    assert_eq!(p.samples_per_process, vec![4, 4, 4]);
    assert_eq!(cell.samples_ms.len(), 12);
    assert_eq!(p.medians_ms.len(), 3);
    let lo = p.medians_ms.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = p.medians_ms.iter().cloned().fold(0.0, f64::max);
    assert!((p.spread - (hi / lo - 1.0)).abs() < 1e-12);
    // Every process verified its own plan and warmed up.
    assert!(cell.verification.is_some() && cell.warmup_runs >= 3);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_contains(&stdout, &["processes: spread", "3: "]);
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert!(csv
        .lines()
        .next()
        .unwrap()
        .contains("processes,process_spread,multimodal"));
}

/// Runs `scenario`, and once its stderr shows `line`, waits `delay_ms` and sends `signal`.
#[cfg(unix)]
fn signalled_after_line(
    scenario: &str,
    out: &Path,
    line: &str,
    delay_ms: u64,
) -> (Option<i32>, String) {
    use std::io::{BufRead, BufReader, Read};
    let mut child = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args([scenario, "--out", out.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains(line) {
        assert!(stderr.read_line(&mut seen).unwrap() > 0, "{seen}");
    }
    std::thread::sleep(std::time::Duration::from_millis(delay_ms));
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    stderr.read_to_string(&mut seen).unwrap();
    (child.wait().unwrap().code(), seen)
}

#[cfg(unix)]
#[test]
fn a_signal_during_a_run_in_processes_keeps_what_the_workers_measured() {
    // Stopped while the second worker starts (before it can save anything) and while it
    // measures: either way the first worker's cells are saved as interrupted.
    for delay_ms in [0, 1000] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let scenario = write(
            dir.path(),
            "long.yaml",
            "name: long\nmodels: [s0]\nforms: [reparameterized]\nbackends: [native]\ninput_size: 32\nprocesses: 4\nwarmup: {runs: 1, min_time_ms: 0}\nmeasurement: {min_runs: 1, max_runs: 1000000, min_time_ms: 0, max_time_ms: 8000, target_ci: 0.000001}\n",
        );
        let (code, stderr) = signalled_after_line(&scenario, &out, "process 2 of 4", delay_ms);
        assert_eq!(code, Some(143), "{stderr}");
        assert!(!stderr.contains("process 3 of 4"), "{stderr}");
        let results = ResultsFile::read(&out.join("results.json")).unwrap();
        assert!(results.interrupted);
        let cell = &results.cells[0];
        assert_eq!(cell.status, CellStatus::Ok, "{:?}", cell.reason);
        assert!(!cell.samples_ms.is_empty());
    }
}

#[test]
fn precision_is_a_cell_dimension_and_a_backend_without_one_skips_it_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (o, out) = run_scenario(
        dir.path(),
        "p.yaml",
        "name: p\nmodels: [s0]\nforms: [reparameterized]\nbackends: [native, candle]\nprecisions: [fp32, bf16]\ninput_size: 32\nmeasurement: {min_runs: 3, max_runs: 3, min_time_ms: 0, max_time_ms: 200}\n",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let results = ResultsFile::read(&out.join("results.json")).unwrap();
    let cell = |backend: &str, precision: &str| {
        let found = results
            .cells
            .iter()
            .find(|c| c.key.backend == backend && c.key.precision == precision);
        found.unwrap_or_else(|| panic!("no {backend} {precision} cell"))
    };
    assert_eq!(results.cells.len(), 4);
    let (fp32, bf16) = (cell("native", "fp32"), cell("native", "bf16"));
    assert_eq!(
        (fp32.status, bf16.status),
        (CellStatus::Ok, CellStatus::Ok),
        "{:?}",
        bf16.reason
    );
    let error = |c: &reports::results::CellResult| c.verification.as_ref().unwrap().clone();
    // bf16 pays about 2^-8 of relative error per rounding; fp32 orders of magnitude less.
    assert!(error(fp32).relative_l2 < 1e-5, "{:?}", error(fp32));
    assert!(error(bf16).relative_l2 > 1e-4 && error(bf16).relative_l2 < error(bf16).tolerance);
    assert_contains(&bf16.plan, &["bf16", "round to bf16"]);
    // Bytes at what native stores: f32 everything at fp32; at bf16, 16-bit GEMM weights only
    // on a bf16 dot product (f32 words holding bf16 values otherwise).
    assert_eq!(fp32.cost.param_bytes, 4 * fp32.cost.params);
    let dot = backends::native::Isa::best().has_bf16_dot();
    assert_eq!(bf16.cost.param_bytes < fp32.cost.param_bytes, dot);
    assert_eq!(bf16.cost.flops, fp32.cost.flops);
    let skipped = cell("candle", "bf16");
    assert_eq!(skipped.status, CellStatus::Skipped);
    let reason = skipped.reason.as_deref().unwrap_or_default();
    assert!(reason.ends_with("CPU conv2d has no bf16 GEMM"), "{reason}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_contains(
        &stdout,
        &["bf16", "skipped: candle-core", "has no bf16 GEMM"],
    );

    let (o, out) = run_scenario(dir.path(), "p.yaml", "name: p\nmodels: [s0]\nforms: [reparameterized]\nbackends: [native]\ninput_size: 32\nmeasurement: {min_runs: 3, max_runs: 3, min_time_ms: 0, max_time_ms: 200}\n");
    assert!(o.status.success());
    let only_fp32 = ResultsFile::read(&out.join("results.json")).unwrap();
    assert_eq!(only_fp32.cells.len(), 1, "precisions default to [fp32]");
    assert_eq!(only_fp32.cells[0].key.precision, "fp32");
}

#[test]
fn an_int8_cell_runs_code_for_code_with_the_quantized_reference_and_reports_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let (o, out) = run_scenario(
        dir.path(),
        "q.yaml",
        "name: q\nmodels: [s0]\nforms: [unfused, reparameterized]\nbackends: [native, candle]\nprecisions: [fp32, int8]\ninput_size: 32\nmeasurement: {min_runs: 3, max_runs: 3, min_time_ms: 0, max_time_ms: 200}\n",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let results = ResultsFile::read(&out.join("results.json")).unwrap();
    assert_eq!(results.cells.len(), 8);
    for cell in results.cells.iter().filter(|c| c.key.precision == "int8") {
        match cell.key.backend.as_str() {
            "native" => {
                assert_eq!(cell.status, CellStatus::Ok, "{:?}", cell.reason);
                let v = cell.verification.as_ref().unwrap();
                assert_eq!(v.integer_codes_off, Some(0));
                // The price of int8: percent-level error against float64, far above fp32's.
                assert!(v.relative_l2 > 1e-3 && v.relative_l2 < v.tolerance, "{v:?}");
                assert_eq!(cell.cost.param_bytes, cell.cost.params);
                assert_contains(&cell.plan, &["int8", "requantized"]);
                assert!(cell.latency.is_some());
            }
            _ => {
                assert_eq!(cell.status, CellStatus::Skipped);
                assert_contains(cell.reason.as_deref().unwrap(), &["no int8"]);
            }
        }
    }
    let fp32 = results
        .cells
        .iter()
        .find(|c| c.key.precision == "fp32")
        .unwrap();
    assert_eq!(fp32.verification.as_ref().unwrap().integer_codes_off, None);
    // The study: each int8 cell's layers, and the report's section comparing the forms.
    let native_int8 = results
        .cells
        .iter()
        .filter(|c| c.key.backend == "native" && c.key.precision == "int8");
    for cell in native_int8 {
        assert!(cell.quantization.len() > 10, "{:?}", cell.quantization);
        assert!(cell.quantization.iter().all(|l| l.weight_spread() >= 1.0));
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert_contains(
        &report,
        &[
            "## int8 and reparameterization",
            "mobileone-s0 at int8: the reparameterized form's error is",
        ],
    );
}

#[test]
fn a_precision_a_backend_lacks_is_a_clear_error_on_the_single_model_commands() {
    let o = harness(&[
        "profile",
        "--model",
        "s0",
        "--backend",
        "candle",
        "--precision",
        "bf16",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_contains(&err, &["--precision bf16: candle-core", "has no bf16 GEMM"]);
    let o = harness(&["profile", "--model", "s0", "--precision", "int3"]);
    assert_contains(
        &String::from_utf8_lossy(&o.stderr),
        &["unknown precision `int3`", "fp32, bf16, fp16"],
    );
    let o = harness(&[
        "run",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/quick.yaml"),
        "--precisions",
        "fp64",
    ]);
    assert_contains(
        &String::from_utf8_lossy(&o.stderr),
        &["--precisions: unknown precision `fp64`"],
    );
}
