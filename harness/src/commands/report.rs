//! `harness report RESULTS.json [--out DIR]`: re-render the reports from saved results (the
//! same writer as a run: results.json, results.csv, report.md, report.html, all or none).

use std::path::Path;

use anyhow::Result;
use reports::results::ResultsFile;

pub fn run(results_path: &Path, out: Option<&Path>) -> Result<()> {
    let results = ResultsFile::read(results_path)?;
    let dir = match out {
        Some(d) => d.to_path_buf(),
        None => results_path
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf(),
    };
    crate::runner::write_outputs(&results, &dir)?;
    println!("{}", reports::summary::terminal_table(&results));
    for cell in reports::plots::left_out(&results) {
        eprintln!("warning: left out of the plots (implausible numbers): {cell}");
    }
    println!("{}", crate::runner::wrote(&dir));
    Ok(())
}
