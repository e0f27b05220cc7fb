//! `harness verify`: every backend against the reference executor on every model and form,
//! as a table of errors. Exit 1 when any backend disagrees.

use std::process::ExitCode;

use anyhow::{Context, Result};
use backends::{conformance, CheckOutcome, PrepareOptions};
use models::{Form, InputSize, Model};
use tabled::builder::Builder;
use tabled::settings::Style;

use super::parse_input_size;
use crate::cli::VerifyArgs;

fn parse_list<T>(list: &Option<Vec<String>>, all: &[T], flag: &'static str) -> Result<Vec<T>>
where
    T: std::str::FromStr + Clone,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match list {
        Some(items) => items.iter().map(|s| s.parse::<T>().context(flag)).collect(),
        None => Ok(all.to_vec()),
    }
}

/// pass or FAIL, and at int8 how far from the quantized reference (in output codes).
fn verdict(a: &backends::Agreement) -> String {
    let word = if a.passed() { "pass" } else { "FAIL" };
    match (a.integer_codes_off, a.codes_allowed) {
        (None, _) => word.into(),
        (Some(0), Some(_)) => format!("{word} (code for code with the int8 reference)"),
        (Some(off), Some(allowed)) => {
            format!("{word} ({off} codes from the int8 reference; {allowed} allowed)")
        }
        (Some(off), None) => format!(
            "{word} ({off} codes from the int8 reference: its own requantization, not gated)"
        ),
    }
}

pub fn run(args: &VerifyArgs) -> Result<ExitCode> {
    let models = parse_list(&args.models, &Model::all(), "--models")?;
    let forms = parse_list(&args.forms, &Form::ALL, "--forms")?;
    let selected: Vec<Box<dyn backends::Backend>> = match &args.backends {
        Some(names) => names
            .iter()
            .map(|n| backends::get(n).context("--backends"))
            .collect::<Result<_>>()?,
        None => backends::all(),
    };
    let (height, width) = parse_input_size(&args.input_size)?;
    let size = InputSize {
        batch: 1,
        height,
        width,
    };
    let precision = super::parse_precision(&args.precision)?;
    let options = PrepareOptions::with_threads(args.threads).at(precision);
    let checks = conformance(&selected, &models, &forms, size, args.seed, &options, |c| {
        eprintln!("  checked {} {} {}", c.model, c.form, c.backend)
    })?;
    let mut table = Builder::default();
    table.push_record([
        "model",
        "form",
        "backend",
        "relative L2",
        "max |diff|",
        "tolerance",
        "result",
    ]);
    for c in &checks {
        let mut row = vec![c.model.to_string(), c.form.to_string(), c.backend.clone()];
        row.extend(match &c.outcome {
            CheckOutcome::Checked(a) => [
                format!("{:.2e}", a.relative_l2),
                format!("{:.2e}", a.max_abs_diff),
                format!("{:.0e}", a.tolerance),
                verdict(a),
            ],
            CheckOutcome::Skipped(reason) => [
                "-".into(),
                "-".into(),
                "-".into(),
                format!("skipped: {reason}"),
            ],
            CheckOutcome::Error(e) => ["-".into(), "-".into(), "-".into(), format!("FAIL: {e}")],
        });
        table.push_record(row);
    }
    let mut table = table.build();
    table.with(Style::rounded());
    println!("{table}");
    let failures = checks.iter().filter(|c| c.failed()).count();
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("{failures} check(s) failed");
        ExitCode::FAILURE
    })
}
