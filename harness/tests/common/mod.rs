//! Helpers the harness's integration tests share: running the built binary, checking what it said.

use std::process::{Command, Output};

/// Runs the harness binary with `args` and waits for it.
pub fn harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .output()
        .unwrap()
}

/// Asserts that `text` contains every one of `needles`, showing the text when one is missing.
pub fn assert_contains(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "`{needle}` missing from:\n{text}");
    }
}
