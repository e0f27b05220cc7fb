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
