//! What the backend test files share: the conformance run with its failures named, and how
//! many feature-gated backends this build has.

use backends::{conformance, Backend, CheckOutcome, PrepareOptions};
use models::{Form, InputSize, Model};

/// How many feature-gated backends this build runs (tch, gpu, ort, openvino).
#[allow(dead_code)]
pub fn optional_backends() -> usize {
    [
        cfg!(feature = "tch"),
        cfg!(feature = "gpu"),
        cfg!(feature = "ort"),
        cfg!(feature = "litert"),
    ]
    .iter()
    .filter(|on| **on)
    .count()
}

/// `backends` on `models` in both forms against the reference, each check logged; panics
/// naming every failed check, with `hint`; returns how many were checked (not skipped).
#[allow(dead_code)]
pub fn checked_in_both_forms(
    backends: &[Box<dyn Backend>],
    models: &[Model],
    (size, seed): (InputSize, u64),
    options: &PrepareOptions,
    hint: &str,
) -> usize {
    let describe = |c: &backends::ConformanceCheck| {
        format!("{} {} {}: {:?}", c.model, c.form, c.backend, c.outcome)
    };
    let checks = conformance(backends, models, &Form::ALL, size, seed, options, |c| {
        eprintln!("{}", describe(c))
    })
    .unwrap();
    let failures: Vec<String> = checks.iter().filter(|c| c.failed()).map(describe).collect();
    assert!(failures.is_empty(), "{}{hint}", failures.join("\n"));
    checks
        .iter()
        .filter(|c| matches!(c.outcome, CheckOutcome::Checked(_)))
        .count()
}
