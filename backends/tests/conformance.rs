//! One test body for every backend: S0-S4 in both forms, seeded weights, equal to the reference
//! executor within the backend's tolerance. A backend that is unavailable here is reported, not
//! silently passed.

use backends::{conformance, CheckOutcome, PrepareOptions};
use models::{Form, InputSize, Variant};

#[test]
fn every_backend_matches_the_reference_on_every_model_and_form() {
    let size = InputSize {
        batch: 2,
        height: 64,
        width: 64,
    };
    let options = PrepareOptions {
        threads: 2,
        per_layer_timing: false,
    };
    let checks = conformance(
        &backends::all(),
        &Variant::ALL,
        &Form::ALL,
        size,
        1,
        &options,
        |c| eprintln!("{c:?}"),
    )
    .unwrap();
    for c in &checks {
        assert!(
            !c.failed(),
            "{} {} {}: {:?}",
            c.variant,
            c.form,
            c.backend,
            c.outcome
        );
    }
    let checked = checks
        .iter()
        .filter(|c| matches!(c.outcome, CheckOutcome::Checked(_)))
        .count();
    let expected = if cfg!(feature = "tch") { 50 } else { 40 };
    assert!(
        checked >= expected,
        "reference, native, both candle backends (and tch with its feature) on 10 model/form pairs; checked {checked}"
    );
}
