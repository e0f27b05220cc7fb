//! Helpers the harness's integration tests share: running the built binary, checking what it said.

use std::process::{Command, Output};

/// Runs the harness binary with `args` and waits for it.
pub fn harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .output()
        .unwrap()
}

pub use models::testing::assert_contains;

/// Writes scenario `text` to `dir/name` and runs `harness SCENARIO --out dir/out`: what the
/// harness said, and the output folder.
#[allow(dead_code)]
pub fn run_scenario(dir: &std::path::Path, name: &str, text: &str) -> (Output, std::path::PathBuf) {
    let scenario = dir.join(name);
    std::fs::write(&scenario, text).unwrap();
    let out = dir.join("out");
    let said = harness(&[scenario.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    (said, out)
}
