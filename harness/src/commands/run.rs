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
    let kept = keep_in_history(&scenario, results);
    Ok(if !outcome.saved.where_asked {
        eprintln!("error: the results could not be written where asked (see the notes above)");
        ExitCode::FAILURE
    } else if !kept {
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

/// Keeps the run in the scenario's results store (unless its history is `off`); false, after
/// saying why, when it could not be kept (the results files are written all the same).
pub fn keep_in_history(scenario: &Scenario, results: &reports::results::ResultsFile) -> bool {
    let Some(location) = scenario.history_location() else {
        return true;
    };
    match crate::history::keep(&location, results) {
        Ok(said) => {
            println!("{said}");
            true
        }
        Err(e) => {
            eprintln!("error: the run could not be kept in history: {e:#}");
            false
        }
    }
}
