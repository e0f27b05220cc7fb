//! `harness gate` and `harness ab` end to end: exit 0 on the same run, 1 on a slowed copy, 2 on
//! bad input and on runs from different machines (unless allowed); Markdown and JSON written;
//! the A/B mode catches a build that is 3x slower and passes a build against itself.

mod common;
use common::{assert_contains, harness};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SCENARIO: &str = "name: g
models: [s0]
forms: [reparameterized]
backends: [native]
threads: [1]
input_size: 32
measurement: {min_runs: 12, max_runs: 12, min_time_ms: 0, max_time_ms: 2000}
";

/// Measures the small scenario once; returns its results.json.
fn measured(dir: &Path) -> PathBuf {
    let (o, out) = common::run_scenario(dir, "g.yaml", SCENARIO);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out.join("results.json")
}

/// `harness gate` on a baseline and a candidate results file, with more flags.
fn gate(baseline: &Path, candidate: &Path, extra: &[&str]) -> Output {
    let files = [baseline, candidate].map(|p| p.to_str().unwrap());
    let args = ["gate", "--baseline", files[0], "--candidate", files[1]];
    harness(&[&args[..], extra].concat())
}

/// A copy of `results` with every sample multiplied by `factor` and, optionally, another
/// machine fingerprint.
fn edited(results: &Path, factor: f64, fingerprint: Option<&str>, name: &str) -> PathBuf {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(results).unwrap()).unwrap();
    for cell in v["cells"].as_array_mut().unwrap() {
        for s in cell["samples_ms"].as_array_mut().unwrap() {
            *s = serde_json::json!(s.as_f64().unwrap() * factor);
        }
    }
    if let Some(f) = fingerprint {
        v["environment"]["machine_fingerprint"] = serde_json::json!(f);
    }
    let path = results.with_file_name(name);
    std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
    path
}

#[test]
fn gate_exit_codes_follow_the_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let a = measured(dir.path());
    let md = dir.path().join("gate.md");
    let json = dir.path().join("gate.json");

    let same = gate(&a, &a, &[]);
    assert_eq!(same.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&same.stdout).contains("unchanged"));

    let slow = edited(&a, 2.0, None, "slow.json");
    let o = gate(
        &a,
        &slow,
        &[
            "--markdown",
            md.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let markdown = std::fs::read_to_string(&md).unwrap();
    assert_contains(&markdown, &["**1 cell(s) regressed**"]);
    assert_contains(&markdown, &["+100.0%", "REGRESSED"]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(summary["regressions"], 1);
    assert_eq!(summary["report"]["cells"][0]["verdict"], "regressed");

    let fast = edited(&a, 0.4, None, "fast.json");
    let o = gate(&a, &fast, &[]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("improved"));

    // A 2x slowdown under a 150% threshold is not a regression.
    let o = gate(&a, &slow, &["--threshold", "150"]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn gate_refuses_other_machines_and_bad_input_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let a = measured(dir.path());
    let other = edited(&a, 2.0, Some("someone-else"), "other.json");
    let o = gate(&a, &other, &[]);
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_contains(
        &stderr,
        &["machine fingerprint differs", "--allow-different-machine"],
    );
    let o = gate(&a, &other, &["--allow-different-machine"]);
    assert_eq!(o.status.code(), Some(1));

    let missing = dir.path().join("missing.json");
    let o = gate(&a, &missing, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.json"));
    let o = gate(&a, &a, &["--confidence", "2"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn ab_catches_a_slower_build_and_passes_a_build_against_itself() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("g.yaml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let bin = env!("CARGO_BIN_EXE_harness");
    let slowed = Path::new(bin)
        .parent()
        .unwrap()
        .join("examples/slowed_harness");
    assert!(
        slowed.is_file(),
        "cargo test builds the examples: {}",
        slowed.display()
    );
    let run = |candidate: &str, out: &str, extra: &[&str]| {
        let out = dir.path().join(out);
        let mut cmd = Command::new(bin);
        cmd.env("ONEBENCH_SLOWDOWN", "3")
            .arg("ab")
            .arg(&scenario)
            .args(["--baseline-harness", bin, "--candidate-harness", candidate])
            .args(["--rounds", "2", "--confirm-rounds", "1", "--out"])
            .arg(&out)
            .args(extra);
        (cmd.output().unwrap(), out)
    };
    let (o, out) = run(slowed.to_str().unwrap(), "slow", &[]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let md = std::fs::read_to_string(out.join("gate.md")).unwrap();
    assert_contains(&md, &["Confirmation run"]);
    for side in ["baseline.json", "candidate.json"] {
        let r = reports::results::ResultsFile::read(&out.join(side)).unwrap();
        assert_eq!(r.cells[0].samples_ms.len(), 24, "two rounds of 12 samples");
    }
    // Against itself, with a threshold far beyond this machine's noise.
    let (o, _) = run(bin, "same", &["--threshold", "60"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn baselines_are_stored_per_machine_and_found_by_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("g.yaml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let store = dir.path().join("baselines");
    let o = harness(&[
        "baseline",
        scenario.to_str().unwrap(),
        "--dir",
        store.to_str().unwrap(),
        "--out",
        dir.path().join("run").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stored: Vec<PathBuf> = std::fs::read_dir(store.join("g"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(stored.len(), 1);
    let results = reports::results::ResultsFile::read(&stored[0]).unwrap();
    assert_eq!(
        stored[0].file_stem().unwrap().to_str().unwrap(),
        results.environment.machine_fingerprint
    );
    // The stored baseline against itself: found by scenario and fingerprint, no regression.
    let o = harness(&[
        "gate",
        "--baseline-dir",
        store.to_str().unwrap(),
        "--candidate",
        stored[0].to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A candidate from another machine has no stored baseline: exit 2, with the way out.
    let other = edited(&stored[0], 1.0, Some("elsewhere"), "other.json");
    let o = harness(&[
        "gate",
        "--baseline-dir",
        store.to_str().unwrap(),
        "--candidate",
        other.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_contains(&stderr, &["no baseline stored", "harness baseline"]);
}
