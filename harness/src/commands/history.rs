//! `harness history`: the results store from the command line: import results files, list
//! the kept runs, show one cell's series over commits.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use models::checkpoint::write_atomically;
use reports::changepoint::{change_points, ChangePointSettings};
use reports::results::{CellKey, ResultsFile};
use reports::summary::ms;
use reports::trend::{Trend, TrendPoint};
use tabled::builder::Builder;
use tabled::settings::Style;

use crate::cli::{HistoryCommand, HistoryFilter};
use crate::history::{Location, RunFilter, Series, Store, Stored};

pub fn run(command: &HistoryCommand) -> Result<ExitCode> {
    match command {
        HistoryCommand::Import { store, files } => import(store, files),
        HistoryCommand::List { store, filter } => list(store, filter),
        HistoryCommand::Show {
            store,
            cell,
            filter,
        } => show(store, cell, filter),
        HistoryCommand::Report {
            store,
            out,
            cell,
            filter,
        } => report(store, out, cell.as_deref(), filter),
    }
}

fn open(store: &str) -> Result<Store> {
    Store::open(&Location::parse(store)).context("--store")
}

fn run_filter(filter: &HistoryFilter) -> RunFilter {
    RunFilter {
        scenario: filter.scenario.clone(),
        machine: filter.machine.clone(),
        branch: filter.branch.clone(),
        commit: filter.commit.clone(),
        commits: filter.commits.clone(),
        last: filter.last,
    }
}

/// Stores each results file; a file that cannot be read or stored is reported and the others
/// are stored all the same (exit 1 at the end).
fn import(store: &str, files: &[PathBuf]) -> Result<ExitCode> {
    let mut store = open(store)?;
    let mut failed = 0;
    for path in files {
        let outcome = ResultsFile::read(path)
            .map_err(anyhow::Error::from)
            .and_then(|results| store.append(&results));
        match outcome {
            Ok(Stored::New(id)) => println!("{}: kept as run {id}", path.display()),
            Ok(Stored::AlreadyThere(id)) => {
                println!("{}: already kept, as run {id}", path.display())
            }
            Err(e) => {
                eprintln!("error: {}: {e:#}", path.display());
                failed += 1;
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} files could not be imported", files.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn list(store: &str, filter: &HistoryFilter) -> Result<ExitCode> {
    let runs = open(store)?.runs(&run_filter(filter))?;
    let mut table = Builder::default();
    table.push_record([
        "run", "started", "scenario", "machine", "commit", "branch", "cells", "seconds", "kind",
    ]);
    for r in &runs {
        let kind = match (r.interrupted, r.quick) {
            (true, _) => "interrupted",
            (false, true) => "quick",
            (false, false) => "full",
        };
        table.push_record([
            r.id.to_string(),
            r.started_at.clone(),
            r.scenario.clone(),
            r.machine.chars().take(12).collect(),
            r.git_commit.clone(),
            r.git_branch.clone(),
            r.cells.to_string(),
            format!("{:.1}", r.duration_s),
            kind.to_string(),
        ]);
    }
    println!("{}", table.build().with(Style::markdown()));
    println!("{} runs in {store}", runs.len());
    Ok(ExitCode::SUCCESS)
}

/// The series of every stored cell `pattern` matches (all cells without one), each cut to the
/// filter's last N runs; an error naming some stored cells when none matches.
fn matching_series(
    store: &mut Store,
    pattern: Option<&str>,
    filter: &HistoryFilter,
) -> Result<Vec<Series>> {
    let parsed = pattern.map(CellPattern::parse).transpose()?;
    let cells = store.cells(&run_filter(filter))?;
    let matching: Vec<_> = cells
        .iter()
        .filter(|(_, _, k)| parsed.as_ref().is_none_or(|p| p.matches(k)))
        .collect();
    if matching.is_empty() {
        let known: Vec<String> = cells
            .iter()
            .take(8)
            .map(|(_, _, k)| k.to_string())
            .collect();
        bail!(
            "no stored cell matches `{}`{}",
            pattern.unwrap_or("any cell"),
            match known.is_empty() {
                true => " (the store has no cells under these filters)".to_string(),
                false => format!("; stored cells include: {}", known.join("; ")),
            }
        );
    }
    let mut all = Vec::new();
    for (scenario, machine, key) in matching {
        let mut series = store.series(scenario, machine, key)?;
        if let Some(range) = &filter.commits {
            let commits: Vec<&str> = series
                .points
                .iter()
                .map(|p| p.git_commit.as_str())
                .collect();
            let keep = range
                .select(&commits)
                .map_err(|e| anyhow::anyhow!("--commits: {key}: {e}"))?;
            series.points = series.points.drain(keep).collect();
        }
        if let Some(last) = filter.last {
            let keep_from = series.points.len().saturating_sub(last);
            series.points.drain(..keep_from);
        }
        all.push(series);
    }
    Ok(all)
}

fn show(store: &str, cell: &str, filter: &HistoryFilter) -> Result<ExitCode> {
    for series in matching_series(&mut open(store)?, Some(cell), filter)? {
        print_series(&series);
    }
    Ok(ExitCode::SUCCESS)
}

fn report(store: &str, out: &Path, cell: Option<&str>, filter: &HistoryFilter) -> Result<ExitCode> {
    let mut opened = open(store)?;
    let shown = opened.location().shown();
    let trends: Vec<Trend> = matching_series(&mut opened, cell, filter)?
        .iter()
        .map(trend_of)
        .collect();
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    for (name, text) in [
        ("history.md", reports::trend::markdown(&shown, &trends)),
        ("history.html", reports::trend::html(&shown, &trends)),
    ] {
        let path = out.join(name);
        write_atomically(&path, text.as_bytes())
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    let changes: usize = trends.iter().map(|t| t.changes.len()).sum();
    println!(
        "{} cell series, {changes} change point(s); wrote {}/history.md and history.html",
        trends.len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A series as the report draws it: its measured points and their change points.
fn trend_of(series: &Series) -> Trend {
    let points: Vec<TrendPoint> = series
        .points
        .iter()
        .filter_map(|p| {
            Some(TrendPoint {
                run_id: p.run_id,
                commit: p.git_commit.clone(),
                started_at: p.started_at.clone(),
                median_ms: p.median_ms?,
                ci95_ms: p.ci95_ms,
            })
        })
        .collect();
    let medians: Vec<f64> = points.iter().map(|p| p.median_ms).collect();
    Trend {
        cell: series.key.to_string(),
        scenario: series.scenario.clone(),
        machine: series.machine.clone(),
        changes: change_points(&medians, &ChangePointSettings::default()),
        points,
    }
}

fn print_series(series: &Series) {
    println!(
        "\n{} — scenario {}, machine {}",
        series.key, series.scenario, series.machine
    );
    let mut table = Builder::default();
    table.push_record([
        "run",
        "started",
        "commit",
        "median ms",
        "95% CI",
        "vs previous",
        "n",
    ]);
    let mut previous: Option<f64> = None;
    for p in &series.points {
        let change = match (previous, p.median_ms) {
            (Some(before), Some(now)) => format!("{:+.1}%", (now / before - 1.0) * 100.0),
            _ => String::new(),
        };
        table.push_record([
            p.run_id.to_string(),
            p.started_at.clone(),
            p.git_commit.clone(),
            p.median_ms.map_or_else(|| p.status.clone(), ms),
            p.ci95_ms
                .map(|[low, high]| format!("{} .. {}", ms(low), ms(high)))
                .unwrap_or_default(),
            change,
            p.samples_ms.len().to_string(),
        ]);
        previous = p.median_ms.or(previous);
    }
    println!("{}", table.build().with(Style::markdown()));
}

/// Which cells `history show` means: words that each name a field of the cell (a model, a
/// form, a backend, a precision, `t2` threads, `b1` batch, `224` or `256x192` input size).
#[derive(Debug, Default, PartialEq)]
pub struct CellPattern {
    model: Option<String>,
    form: Option<String>,
    backend: Option<String>,
    precision: Option<String>,
    threads: Option<usize>,
    batch: Option<usize>,
    size: Option<(usize, usize)>,
}

fn number_after(word: &str, prefix: char) -> Option<usize> {
    word.strip_prefix(prefix)?.parse().ok()
}

impl CellPattern {
    pub fn parse(text: &str) -> Result<CellPattern> {
        let mut p = CellPattern::default();
        let words: Vec<&str> = text
            .split([' ', '/', ','])
            .filter(|w| !w.is_empty())
            .collect();
        if words.is_empty() {
            bail!("CELL: name at least one of model, form, backend, precision, tN, bN, size");
        }
        for word in words {
            if let Some(n) = number_after(word, 't') {
                p.threads = Some(n);
            } else if let Some(n) = number_after(word, 'b') {
                p.batch = Some(n);
            } else if word.starts_with(|c: char| c.is_ascii_digit()) {
                p.size =
                    Some(super::parse_input_size(word).with_context(|| format!("CELL `{text}`"))?);
            } else if let Ok(model) = word.parse::<models::Model>() {
                p.model = Some(model.name());
            } else if let Ok(form) = word.parse::<models::Form>() {
                p.form = Some(form.name().into());
            } else if let Ok(precision) = word.parse::<models::Precision>() {
                p.precision = Some(precision.name().into());
            } else if let Ok(backend) = backends::get(word) {
                p.backend = Some(backend.name().into());
            } else {
                bail!("CELL `{text}`: `{word}` is no model, form, backend, precision, tN (threads), bN (batch) or input size");
            }
        }
        Ok(p)
    }

    pub fn matches(&self, key: &CellKey) -> bool {
        let same = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        same(&self.model, &key.model)
            && same(&self.form, &key.form)
            && same(&self.backend, &key.backend)
            && same(&self.precision, &key.precision)
            && self.threads.is_none_or(|t| t == key.threads)
            && self.batch.is_none_or(|b| b == key.batch)
            && self.size.is_none_or(|s| s == (key.height, key.width))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_is_named_by_any_of_its_fields() {
        let p = CellPattern::parse("s0 fused native t2").unwrap();
        let mut key = crate::history::tests::cell("mobileone-s0", 2, 1.0).key;
        assert!(p.matches(&key));
        key.threads = 1;
        assert!(!p.matches(&key));
        let p = CellPattern::parse("mobileone-s0/bf16/b1/224").unwrap();
        key.precision = "bf16".into();
        assert!(p.matches(&key));
        key.width = 192;
        assert!(!p.matches(&key));
        let e = CellPattern::parse("s0 turbo").unwrap_err();
        assert!(e.to_string().contains("`turbo` is no model"), "{e}");
        assert!(CellPattern::parse(" / ").is_err());
    }
}
