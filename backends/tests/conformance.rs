//! One test body for every backend: S0-S4 in both forms, seeded weights, equal to the reference
//! executor within the backend's tolerance. A backend that is unavailable here is reported, not
//! silently passed.

mod common;

use common::{checked_in_both_forms, optional_backends};
use models::{Form, InputSize, Model, Precision, Variant};

/// Batch 2 at 64x64: small enough for every backend, odd enough to catch batch mix-ups.
const SIZE: InputSize = InputSize::square(2, 64);

#[test]
fn every_backend_matches_the_reference_on_every_model_and_form() {
    let mobileone = Variant::ALL.map(Model::MobileOne);
    let options = backends::PrepareOptions::with_threads(2);
    let checked = checked_in_both_forms(&backends::all(), &mobileone, (SIZE, 1), &options, "");
    let expected = 10 * (4 + optional_backends());
    assert!(
        checked >= expected,
        "reference, native, both candle backends (and tch, gpu with their features) on 10 model/form pairs; checked {checked} of {expected}"
    );
}

/// The zoo and the plain CNN variants: every new op (mixed depthwise kernels up to 11x11,
/// hard-swish, SiLU, GELU, max pool, split/concat/shuffle, dynamic activations) on every
/// backend, both forms, against the reference.
#[test]
fn every_backend_matches_the_reference_on_the_zoo() {
    let zoo: Vec<Model> = Model::all()
        .into_iter()
        .filter(|m| m.mobileone().is_none())
        .collect();
    // Stock candle runs grouped convs one channel at a time: far too slow for 19 models here;
    // its variant with unrolled depthwise convs covers candle's ops.
    let selected: Vec<_> = backends::all()
        .into_iter()
        .filter(|b| b.name() != "candle" && b.name() != "reference")
        .collect();
    let options = backends::PrepareOptions::with_threads(2);
    let checked = checked_in_both_forms(&selected, &zoo, (SIZE, 1), &options, "");
    let backends_here = 2 + optional_backends();
    // `>=`: on Apple machines `metal` runs too.
    assert!(
        checked >= zoo.len() * Form::ALL.len() * backends_here,
        "checked {checked}"
    );
}

/// Every model in both forms at bf16 on every backend that has bf16 (native here), against the
/// reference within the bf16 tolerance.
#[test]
fn backends_with_bf16_match_the_reference_on_every_model_at_bf16() {
    let bf16 = Precision::Bf16;
    let with_bf16: Vec<_> = backends::all()
        .into_iter()
        .filter(|b| b.supports(bf16).is_ok() && b.name() != "reference")
        .collect();
    assert!(with_bf16.iter().any(|b| b.name() == "native"));
    let options = backends::PrepareOptions::with_threads(2).at(bf16);
    let checked = checked_in_both_forms(&with_bf16, &Model::all(), (SIZE, 1), &options, "");
    assert_eq!(
        checked,
        Model::all().len() * Form::ALL.len() * with_bf16.len()
    );
}
