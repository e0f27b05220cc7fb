//! `harness verify`: every backend against the reference executor on every model and form,
//! as a table of errors. Exit 1 when any backend disagrees.

use std::process::ExitCode;

use anyhow::{Context, Result};
use backends::{check_against_reference, reference_output, PrepareOptions};
use models::{build, seeded_uniform, seeded_weights, Form, InputSize, Variant};
use tabled::builder::Builder;
use tabled::settings::Style;

use super::parse_input_size;
use crate::cli::VerifyArgs;

pub fn run(args: &VerifyArgs) -> Result<ExitCode> {
    let variants: Vec<Variant> = match &args.models {
        Some(m) => m
            .iter()
            .map(|s| s.parse().context("--models"))
            .collect::<Result<_>>()?,
        None => Variant::ALL.to_vec(),
    };
    let forms: Vec<Form> = match &args.forms {
        Some(f) => f
            .iter()
            .map(|s| s.parse().context("--forms"))
            .collect::<Result<_>>()?,
        None => Form::ALL.to_vec(),
    };
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
    let input = seeded_uniform(size.shape(), args.seed, -2.0, 2.0);
    let options = PrepareOptions {
        threads: args.threads,
        per_layer_timing: false,
    };
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
    let mut failures = 0;
    for &variant in &variants {
        // One reference per model, on the reparameterized graph (same function, cheaper).
        let (fused_weights, _) = seeded_weights(variant, Form::Reparameterized, args.seed);
        let expected = reference_output(
            &build(variant, Form::Reparameterized, size)?,
            &fused_weights,
            &input,
        )?;
        for &form in &forms {
            let graph = build(variant, form, size)?;
            let (weights, _) = seeded_weights(variant, form, args.seed);
            for backend in &selected {
                let mut row = vec![
                    variant.to_string(),
                    form.to_string(),
                    backend.name().to_string(),
                ];
                if let backends::Availability::Unavailable(reason) = backend.availability() {
                    row.extend([
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        format!("skipped: {reason}"),
                    ]);
                    table.push_record(row);
                    continue;
                }
                match check_against_reference(
                    backend.as_ref(),
                    &graph,
                    &weights,
                    &input,
                    &expected,
                    &options,
                ) {
                    Ok(a) => {
                        failures += usize::from(!a.passed());
                        row.extend([
                            format!("{:.2e}", a.relative_l2),
                            format!("{:.2e}", a.max_abs_diff),
                            format!("{:.0e}", a.tolerance),
                            if a.passed() {
                                "pass".into()
                            } else {
                                "FAIL".into()
                            },
                        ]);
                    }
                    Err(e) => {
                        failures += 1;
                        row.extend(["-".into(), "-".into(), "-".into(), format!("FAIL: {e}")]);
                    }
                }
                eprintln!("  checked {}", row[..3].join(" "));
                table.push_record(row);
            }
        }
    }
    let mut table = table.build();
    table.with(Style::rounded());
    println!("{table}");
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("{failures} check(s) failed");
        ExitCode::FAILURE
    })
}
