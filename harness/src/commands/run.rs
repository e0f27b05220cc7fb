//! `harness SCENARIO` / `harness run SCENARIO`: run a scenario and print the table.
//! Exit code: 0 all cells ran, 1 some cell failed verification or running (or the results
//! could not be written where asked), 130 interrupted by Ctrl-C, 143 by SIGTERM.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::RunOptions;
use crate::runner::run_scenario;
use crate::scenario::Scenario;

pub fn run(path: &Path, options: &RunOptions) -> Result<ExitCode> {
    let overrides = options.overrides();
    let scenario = Scenario::load(path, &overrides)?;
    let outcome = run_scenario(&scenario)?;
    let results = &outcome.results;
    println!("{}", reports::summary::terminal_table(results));
    for w in &results.warnings {
        println!("WARNING: {w}");
    }
    for note in &outcome.saved.notes {
        eprintln!("note: {note}");
    }
    println!(
        "{} cells in {:.1} s; {}",
        results.cells.len(),
        results.duration_s,
        crate::runner::wrote(&outcome.saved.dir)
    );
    Ok(if !outcome.saved.where_asked {
        eprintln!("error: the results could not be written where asked (see the notes above)");
        ExitCode::FAILURE
    } else if results.interrupted {
        eprintln!("interrupted: the cells finished so far are saved");
        ExitCode::from(crate::runner::interrupted_exit_code())
    } else if outcome.any_failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
