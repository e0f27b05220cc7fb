//! The reports a user reads, end to end: a run writes report.md and a self-contained
//! report.html with every plot kind (latency per thread count, speedup, distributions, four
//! metric scatter plots with rank correlations, roofline) and the correlation table; `harness
//! report` re-renders them; and the HTML loads in headless Chromium with no console errors
//! (skipped with a message when Chromium is absent; CI sets ONEBENCH_REQUIRE_BROWSER=1).

mod common;
use common::{assert_contains, harness};

use std::path::{Path, PathBuf};
use std::process::Command;

const SCENARIO: &str = "name: r
models: [s0, s1, s2]
forms: [unfused, reparameterized]
backends: [native]
threads: [1, 2]
input_size: 32
measurement: {min_runs: 5, max_runs: 5, min_time_ms: 0, max_time_ms: 1000}
device_profile: {name: test device, peak_gflops: 1000, memory_gbps: 50}
reference_measurements:
  name: paper
  form: reparameterized
  latency_ms: {mobileone-s0: 0.79, mobileone-s1: 0.89, mobileone-s2: 1.18}
";

const PLOT_IDS: [&str; 12] = [
    "latency-t1",
    "latency-t2",
    "speedup",
    "distributions",
    "scatter-FLOPs",
    "scatter-params",
    "scatter-memory-traffic",
    "scatter-op-count",
    "scatter-roofline-estimate",
    "roofline",
    "layers-by-kind",
    "top-layers",
];

fn run_small(dir: &Path) -> PathBuf {
    run_scenario(dir, SCENARIO)
}

fn run_scenario(dir: &Path, text: &str) -> PathBuf {
    let (o, out) = common::run_scenario(dir, "r.yaml", text);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// The SVG of the figure with this id.
fn figure<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<figure class=\"plot\" id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no figure {id}"));
    let rest = &html[start..];
    &rest[..rest.find("</figure>").unwrap()]
}

#[test]
fn a_run_writes_markdown_and_html_with_every_plot_and_the_correlations() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_small(dir.path());
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    // Self-contained: no scripts, stylesheets, images or anything else fetched (the SVG
    // namespace URI is a name, not a fetch).
    for fetch in ["<script", "<link", "<img", "src=", "href=", "url("] {
        assert!(!html.contains(fetch), "{fetch}");
    }
    for id in PLOT_IDS {
        let svg = figure(&html, id);
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{id}");
        assert!(svg.contains("<text"), "{id}: labelled axes");
    }
    // Scatter plots: one circle per point (6 model/forms x 2 thread counts + 3 paper points),
    // one legend marker per series (3), and one tooltip target per point.
    let scatter = figure(&html, "scatter-FLOPs");
    assert_eq!(scatter.matches("<circle").count(), 15 + 3 + 15);
    assert_eq!(scatter.matches("class=\"tip\"").count(), 15);
    assert_contains(
        scatter,
        &[" (native t1): GFLOPs per forward pass ", " (paper): GFLOPs"],
    );
    assert!(figure(&html, "scatter-FLOPs").contains("ρ"));
    // The roofline draws this machine's ceilings and the device profile's.
    let roofline = figure(&html, "roofline");
    assert!(roofline.contains("test device") && roofline.contains("this machine"));
    assert!(roofline.matches("<polyline").count() >= 2);
    // Correlation table: a row per series, with the paper's own series.
    let table = &html[html.find("<table id=\"correlations\">").unwrap()..];
    assert_contains(table, &["<td>native t1</td><td>6</td>"]);
    assert!(table.contains("<td>paper</td><td>3 (too few to conclude)</td>"));
    assert!(!html.contains("NaN"));
    // Per-layer times from the native backend: a segment per op kind in each stacked bar, and
    // ten bars (plus the legend's) in the top-10 plot.
    let results = reports::results::ResultsFile::read(&out.join("results.json")).unwrap();
    assert!(results.cells.iter().all(|c| !c.layers.is_empty()));
    assert!(results.cells[0].layers.iter().all(|l| l.ms >= 0.0));
    // The top-10 plot labels the ten slowest layers of the slowest cell, each with its kind
    // (which layers those are depends on the run: under load any step can be slowest).
    let total = |c: &reports::results::CellResult| c.layers.iter().map(|l| l.ms).sum::<f64>();
    let slowest = results
        .cells
        .iter()
        .max_by(|a, b| total(a).total_cmp(&total(b)))
        .unwrap();
    let mut layers = slowest.layers.clone();
    layers.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    for l in layers.iter().take(10) {
        let name: String = l.name.chars().take(40).collect();
        assert_contains(
            figure(&html, "top-layers"),
            &[&format!("{name} ({})", l.kind)],
        );
    }

    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## Metric versus latency") && md.contains("| native t2 | 6 |"));
    assert!(md.contains("too few to conclude anything: paper"));
    // The generated findings: the best-ranking metric of each series with enough points, and
    // each series' models fastest to slowest against the scenario's first model.
    assert_contains(&md, &["## What this run shows"]);
    assert_contains(
        &md,
        &["- native t1: ", "ranks latency best of the five metrics"],
    );
    assert_contains(
        &md,
        &["native t2, fastest to slowest (percentages against s0): "],
    );
    assert!(
        !md.contains("- paper: "),
        "three paper points are too few for a finding"
    );
    assert!(html.contains("<h2>What this run shows</h2>"));
    assert!(!md.contains("## GPU"), "no GPU cell, no GPU section");

    // Re-rendered from the saved results: the same HTML.
    let again = dir.path().join("again");
    let results = out.join("results.json");
    let o = harness(&[
        "report",
        results.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert_eq!(
        std::fs::read_to_string(again.join("report.html")).unwrap(),
        html
    );

    let cells: Vec<String> = ["s0", "s1", "s2"]
        .iter()
        .flat_map(|m| ["unfused", "reparam"].map(move |f| (m, f)))
        .flat_map(|(m, f)| [1, 2].map(move |t| format!("{m} {f} native t{t}")))
        .collect();
    browser_check(&out.join("report.html"), &cells);
}

/// A GPU run reports its adapter per cell and its GPU time (timestamp queries) apart from the
/// wall time, in the results and in both reports.
#[cfg(feature = "gpu")]
#[test]
fn a_gpu_run_reports_the_adapter_and_gpu_time_beside_wall_time() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = SCENARIO
        .replace("backends: [native]", "backends: [gpu]")
        .replace("threads: [1, 2]", "threads: [1]");
    let out = run_scenario(dir.path(), &scenario);
    let results = reports::results::ResultsFile::read(&out.join("results.json")).unwrap();
    assert_eq!(results.cells.len(), 6);
    let device = results.cells[0]
        .device
        .clone()
        .expect("a GPU cell names its adapter");
    for c in &results.cells {
        assert_eq!(c.status, reports::results::CellStatus::Ok, "{:?}", c.reason);
        assert_eq!(c.device.as_deref(), Some(device.as_str()));
        assert!(c.plan.contains(&device));
        if c.plan.contains("GPU timestamps: yes") {
            assert_eq!(c.gpu_samples_ms.len(), c.samples_ms.len());
            let gpu = c.gpu_median_ms.unwrap();
            assert!(gpu > 0.0 && gpu <= c.median_ms().unwrap(), "{gpu}");
        }
    }
    let gpu_backend = results
        .environment
        .backends
        .iter()
        .find(|b| b.name == "gpu");
    assert_eq!(
        gpu_backend.unwrap().device.as_deref(),
        Some(device.as_str())
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert_contains(&md, &["## GPU", &format!("| {device} |")]);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<h2>GPU</h2>"));
}

/// Loads the report in headless Chromium: no console errors, every plot in the DOM with a
/// drawn SVG, every plot readable (data area marked, legend outside it, no overlapping texts,
/// a tooltip on every mark, every box of the distributions labelled with its cell); keeps a
/// screenshot (target/report-screenshot.png) for CI to archive.
fn browser_check(report: &Path, cells: &[String]) {
    let Some(dom) = common::browser_dom(report) else {
        return;
    };
    for id in PLOT_IDS {
        let svg = figure(&dom, id);
        assert!(
            svg.contains("<svg") && svg.contains("<rect"),
            "{id} not rendered"
        );
    }
    // One tooltip per bar, box or point: 12 cells (6 per thread count), 6 speedups, and the
    // scatter plots' 12 points plus the paper's 3.
    let min_titles = |id: &str| match id {
        "latency-t1" | "latency-t2" | "speedup" => 6,
        "distributions" | "roofline" => 12,
        "top-layers" => 10,
        id if id.starts_with("scatter-") => 15,
        _ => 1,
    };
    let layouts = common::assert_plots_readable(report, min_titles).unwrap();
    let distributions = layouts
        .iter()
        .find(|l| l.figure == "distributions")
        .unwrap();
    for cell in cells {
        assert!(
            distributions.texts.contains(cell),
            "no box labelled {cell}: {:?}",
            distributions.texts
        );
    }
    let chromium = common::chromium().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", report.canonicalize().unwrap().display());
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/report-screenshot.png");
    let o = common::chromium_command(chromium, profile.path())
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1200,9000")
        .arg(&url)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
}

#[test]
fn extreme_latencies_in_a_results_file_are_left_out_of_the_plots_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_small(dir.path());
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let cell = &mut v["cells"][0];
    cell["samples_ms"][0] = serde_json::json!(1e200);
    cell["median_ms"] = serde_json::json!(1e200);
    cell["max_ms"] = serde_json::json!(1e200);
    v["cells"][1]["samples_ms"][2] = serde_json::json!(1e-300);
    let edited = dir.path().join("edited.json");
    std::fs::write(&edited, serde_json::to_string(&v).unwrap()).unwrap();
    let rendered = dir.path().join("rendered");
    // A hang shows as this child still running: it is killed at the deadline and the test fails.
    let mut child = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args([
            "report",
            edited.to_str().unwrap(),
            "--out",
            rendered.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("harness report did not finish in 120 s on a file with a 1e200 ms sample");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    assert_eq!(
        err.matches("left out of the plots (implausible numbers)")
            .count(),
        2,
        "{err}"
    );
    assert_contains(&err, &["sample 0 is 1e200 ms (longer than 10^7 ms)"]);
    assert_contains(&err, &["(shorter than a nanosecond)"]);
    let html = std::fs::read_to_string(rendered.join("report.html")).unwrap();
    assert!(html.contains("Left out of the plots"));
    assert!(figure(&html, "distributions").contains("<svg"));
}

#[test]
fn a_version_1_results_file_reads_as_fp32_and_is_rewritten_as_version_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_small(dir.path());
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(v["schema_version"], 2);
    assert_eq!(v["cells"][0]["precision"], "fp32");
    v["schema_version"] = serde_json::json!(1);
    for c in v["cells"].as_array_mut().unwrap() {
        c.as_object_mut().unwrap().remove("precision").unwrap();
    }
    for s in v["speedups"].as_array_mut().unwrap() {
        s.as_object_mut().unwrap().remove("precision").unwrap();
    }
    let old = dir.path().join("v1.json");
    std::fs::write(&old, serde_json::to_string(&v).unwrap()).unwrap();
    let rendered = dir.path().join("rendered");
    let o = harness(&["report", p(&old), "--out", p(&rendered)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let again = reports::results::ResultsFile::read(&rendered.join("results.json")).unwrap();
    assert_eq!(again.schema_version, 2);
    assert!(again.cells.iter().all(|c| c.key.precision == "fp32"));
    let csv = std::fs::read_to_string(rendered.join("results.csv")).unwrap();
    assert!(
        csv.starts_with("model,form,backend,precision,threads,"),
        "{csv}"
    );
    assert_eq!(
        csv.matches(",native,fp32,").count(),
        again.cells.len(),
        "{csv}"
    );
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}
