//! `harness report RESULTS.json [--out DIR]`: re-render the reports from saved results.

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
    for (name, text) in [
        ("results.csv", reports::summary::csv(&results)),
        ("report.md", reports::summary::markdown(&results)),
        ("report.html", reports::html::html(&results)),
    ] {
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(name);
        models::checkpoint::write_atomically(&path, text.as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", path.display()))?;
    }
    println!("{}", reports::summary::terminal_table(&results));
    println!(
        "wrote {}/results.csv, report.md, report.html",
        dir.display()
    );
    Ok(())
}
