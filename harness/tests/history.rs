//! The results store through the command line: a run is kept by default beside its output
//! folder, listed, shown as a series, imported once; a store that cannot be written fails the
//! run without losing its results files.

mod common;

use common::{assert_contains, harness, run_scenario};

const TINY: &str = "name: tiny\nmodels: [s0]\nforms: [reparameterized]\nbackends: [native]\nthreads: [1]\ninput_size: 32\nmeasurement: {min_runs: 3, max_runs: 3, min_time_ms: 0, max_time_ms: 200}\n";

fn said(o: &std::process::Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs the tiny scenario from `dir` into `dir/out`, keeping it in the store `history`.
fn tiny_run(dir: &std::path::Path, history: &str) -> std::process::Output {
    let scenario = dir.join("tiny.yaml");
    std::fs::write(&scenario, TINY).unwrap();
    let out = dir.join("out");
    harness(&[
        scenario.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--history",
        history,
    ])
}

#[test]
fn every_run_is_kept_and_its_series_shown() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("history.sqlite");
    let store = store.to_str().unwrap();
    let (o, out) = run_scenario(dir.path(), "tiny.yaml", TINY);
    assert!(o.status.success(), "{}", said(&o));
    assert_contains(&said(&o), &["kept in history as run 1 of", store]);
    let (o, _) = run_scenario(dir.path(), "tiny.yaml", TINY);
    assert_contains(&said(&o), &["kept in history as run 2 of"]);

    let results = out.join("results.json");
    let o = harness(&[
        "history",
        "import",
        "--store",
        store,
        results.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", said(&o));
    assert_contains(&said(&o), &["already kept, as run 2"]);

    let o = harness(&["history", "list", "--store", store, "--scenario", "tiny"]);
    assert!(o.status.success(), "{}", said(&o));
    assert_contains(&said(&o), &["| run |", "| 1 ", "| 2 ", "2 runs in"]);

    let o = harness(&["history", "show", "--store", store, "s0 native t1 32"]);
    assert!(o.status.success(), "{}", said(&o));
    let text = said(&o);
    assert_contains(
        &text,
        &[
            "mobileone-s0 reparameterized native t1 b1 32x32",
            "median ms",
            "vs previous",
            "| 3 |",
        ],
    );
    assert_eq!(text.matches("| 3 |").count(), 2, "{text}");

    let report = dir.path().join("report");
    let o = harness(&[
        "history",
        "report",
        "--store",
        store,
        "--out",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", said(&o));
    assert_contains(&said(&o), &["1 cell series"]);
    let md = std::fs::read_to_string(report.join("history.md")).unwrap();
    assert_contains(
        &md,
        &[
            "## Detected changes",
            "| mobileone-s0 reparameterized native t1 b1 32x32 | tiny |",
        ],
    );
    let html = std::fs::read_to_string(report.join("history.html")).unwrap();
    assert_contains(
        &html,
        &[
            "<figure class=\"trend\">",
            "<title>run 1 at ",
            "<title>run 2 at ",
        ],
    );
    // In a browser: the legend below the plot, no texts over each other, a tooltip per kept run.
    if let Some(layouts) = common::assert_plots_readable(&report.join("history.html"), |_| 2) {
        assert_eq!(layouts.len(), 1, "one trend plot: {layouts:?}");
        assert!(layouts[0]
            .texts
            .iter()
            .any(|t| t == "median of each kept run"));
    }

    let o = harness(&["history", "show", "--store", store, "s4"]);
    assert_eq!(o.status.code(), Some(1));
    assert_contains(
        &said(&o),
        &[
            "no stored cell matches `s4`",
            "mobileone-s0 reparameterized native",
        ],
    );
}

#[test]
fn a_store_that_cannot_be_written_fails_the_run_but_keeps_its_results() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a database, just words long enough to be read").unwrap();
    let out = dir.path().join("out");
    let o = tiny_run(dir.path(), notes.to_str().unwrap());
    assert_eq!(o.status.code(), Some(1), "{}", said(&o));
    assert_contains(
        &said(&o),
        &[
            "could not be kept in history",
            "notes.txt",
            "not a SQLite database",
        ],
    );
    assert!(out.join("results.json").is_file());

    // `off` keeps nothing.
    let o = tiny_run(dir.path(), "off");
    assert!(o.status.success(), "{}", said(&o));
    assert!(!said(&o).contains("history"), "{}", said(&o));
    assert!(!dir.path().join("history.sqlite").exists());

    let o = harness(&[
        "history",
        "import",
        "--store",
        dir.path().join("h.sqlite").to_str().unwrap(),
        notes.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_contains(
        &said(&o),
        &["notes.txt", "1 of 1 files could not be imported"],
    );
}

/// Writes a copy of `base` (a results file) as the run of `commit` at `minute`, every cell's
/// samples `scale` times 1 ms with 0.1% steps and no foreign load; returns its path.
fn synthetic_run(
    dir: &std::path::Path,
    base: &serde_json::Value,
    minute: usize,
    commit: &str,
    scale: f64,
) -> std::path::PathBuf {
    let mut run = base.clone();
    run["started_at"] = format!("2026-11-30T10:{minute:02}:00Z").into();
    run["environment"]["git_commit"] = commit.into();
    for cell in run["cells"].as_array_mut().unwrap() {
        let samples: Vec<f64> = (0..15).map(|j| scale * (1.0 + 0.001 * j as f64)).collect();
        cell["median_ms"] = (scale * 1.007).into();
        cell["samples_ms"] = samples.into();
        cell["foreign_load"] = serde_json::Value::Null;
    }
    let path = dir.join(format!("run-{minute}.json"));
    std::fs::write(&path, serde_json::to_string(&run).unwrap()).unwrap();
    path
}

#[test]
fn the_gate_judges_against_history_and_catches_a_slow_drift() {
    let dir = tempfile::tempdir().unwrap();
    let o = tiny_run(dir.path(), "off");
    assert!(o.status.success(), "{}", said(&o));
    let out = dir.path().join("out");
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let store = dir.path().join("h.sqlite");
    let store = store.to_str().unwrap();
    let gate = |candidate: &std::path::Path, window: &str| {
        harness(&[
            "gate",
            "--history",
            store,
            "--window",
            window,
            "--candidate",
            candidate.to_str().unwrap(),
        ])
    };

    // No history yet: no verdict.
    let first = synthetic_run(dir.path(), &base, 0, "c0", 1.0);
    let o = gate(&first, "10");
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
    assert_contains(&said(&o), &["no cell of scenario `tiny` has 3 stored runs"]);

    // Ten stable commits, then four commits of +2% each.
    let mut runs = vec![first];
    for i in 1..10 {
        runs.push(synthetic_run(dir.path(), &base, i, &format!("c{i}"), 1.0));
    }
    for step in 1..=4 {
        runs.push(synthetic_run(
            dir.path(),
            &base,
            9 + step,
            &format!("d{step}"),
            1.02f64.powi(step as i32),
        ));
    }
    let mut import = vec!["history", "import", "--store", store];
    import.extend(runs.iter().map(|p| p.to_str().unwrap()));
    assert!(harness(&import).status.success());

    // A candidate like the last ten runs passes; the fifth +2% step is under the threshold
    // against the last three runs, but is a drift of +10% since the change point.
    let steady = synthetic_run(dir.path(), &base, 30, "c10", 1.0);
    let o = gate(&steady, "6");
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let fifth = synthetic_run(dir.path(), &base, 31, "d5", 1.02f64.powi(5));
    // The two-run gate, the fifth step against the fourth: +2%, under the threshold, passes.
    let o = harness(&[
        "gate",
        "--baseline",
        runs[13].to_str().unwrap(),
        "--candidate",
        fifth.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    assert_contains(&said(&o), &["+2.0%", "gate: no regression"]);
    let (md, json) = (dir.path().join("gate.md"), dir.path().join("gate.json"));
    let o = harness(&[
        "gate",
        "--history",
        store,
        "--window",
        "3",
        "--candidate",
        fifth.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", said(&o));
    let text = said(&o);
    assert_contains(
        &text,
        &[
            "drift: mobileone-s0 reparameterized native t1",
            "since commit d",
            "1 cell(s) regressed",
        ],
    );
    assert!(!text.contains("regressed  "), "{text}");
    // The summaries a PR comment and a dashboard read say the same: a drift fails the gate.
    let md = std::fs::read_to_string(md).unwrap();
    assert_contains(
        &md,
        &[
            "**1 cell(s) regressed**",
            "Slow drifts against history",
            "- mobileone-s0 reparameterized native t1",
        ],
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(json["exit_code"], 1);
    assert_eq!(json["regressions"], 1);
    let drift = &json["drifts"][0];
    assert!(drift["since_commit"].as_str().unwrap().starts_with('d'));
    assert!(drift["change"].as_f64().unwrap() > 0.05, "{drift}");
}
