//! One test body for every backend: S0-S4 in both forms, seeded weights, equal to the reference
//! executor within the backend's tolerance. A backend that is unavailable here is reported, not
//! silently passed.

use backends::{check_against_reference, reference_output, Availability, PrepareOptions};
use models::{build, seeded_uniform, seeded_weights, Form, InputSize, Variant};

#[test]
fn every_backend_matches_the_reference_on_every_model_and_form() {
    let size = InputSize {
        batch: 2,
        height: 64,
        width: 64,
    };
    let input = seeded_uniform(size.shape(), 3, -2.0, 2.0);
    let mut checked = 0;
    for variant in Variant::ALL {
        // The same seed gives the same function in both forms: one reference per model.
        let (fused, _) = seeded_weights(variant, Form::Reparameterized, 1);
        let expected = reference_output(
            &build(variant, Form::Reparameterized, size).unwrap(),
            &fused,
            &input,
        )
        .unwrap();
        for form in Form::ALL {
            let graph = build(variant, form, size).unwrap();
            let (weights, _) = seeded_weights(variant, form, 1);
            for backend in backends::all() {
                if let Availability::Unavailable(reason) = backend.availability() {
                    eprintln!("{} unavailable here: {reason}", backend.name());
                    continue;
                }
                let options = PrepareOptions {
                    threads: 2,
                    per_layer_timing: false,
                };
                let a = check_against_reference(
                    backend.as_ref(),
                    &graph,
                    &weights,
                    &input,
                    &expected,
                    &options,
                )
                .unwrap();
                eprintln!(
                    "{variant} {form} {}: relative L2 {:.2e}",
                    backend.name(),
                    a.relative_l2
                );
                assert!(a.passed(), "{variant} {form} {}: {a:?}", backend.name());
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 30,
        "reference and both candle backends on 10 model/form pairs; checked {checked}"
    );
}
