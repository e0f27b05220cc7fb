//! The fold, checked numerically on every variant: the reparameterized model's output equals
//! the unfused model's, in float32 (relative L2 < 1e-4) and in a float64 evaluation (< 1e-9),
//! with random weights and non-trivial BN statistics.

use backends::evaluate;
use models::{
    random_weights, relative_l2, reparameterize, seeded_uniform, Element, Form, InputSize, Model,
    Tensor, Variant, Weights,
};

/// A seeded input in [-2, 2).
fn input<T: Element>(size: InputSize, seed: u64) -> Tensor<T> {
    seeded_uniform(size.shape(), seed, -2.0, 2.0).cast()
}

fn outputs<T: Element>(
    variant: Variant,
    size: InputSize,
    unfused: &Weights<T>,
) -> (Tensor<T>, Tensor<T>) {
    let fused = reparameterize(variant, unfused, "seeded").unwrap();
    let x = input::<T>(size, 5);
    let u = evaluate(
        &Model::MobileOne(variant)
            .build(Form::Unfused, size)
            .unwrap(),
        unfused,
        &x,
    )
    .unwrap();
    let r = evaluate(
        &Model::MobileOne(variant)
            .build(Form::Reparameterized, size)
            .unwrap(),
        &fused,
        &x,
    )
    .unwrap();
    (u, r)
}

/// The logits must be meaningful: finite, not all equal, of ordinary magnitude.
fn assert_non_trivial<T: Element>(t: &Tensor<T>, what: &str) {
    let v: Vec<f64> = t.data().iter().map(|x| x.to_f64()).collect();
    assert!(v.iter().all(|x| x.is_finite()), "{what}: non-finite logits");
    let (min, max) = v
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
    assert!(
        max - min > 1e-2 && max.abs().max(min.abs()) < 1e4,
        "{what}: logits span [{min}, {max}]"
    );
}

const SMALL: InputSize = InputSize {
    batch: 2,
    height: 64,
    width: 48,
};

#[test]
fn fold_matches_unfused_in_float32_on_every_variant() {
    for v in Variant::ALL {
        let graph = Model::MobileOne(v).build(Form::Unfused, SMALL).unwrap();
        let w = random_weights(&graph, 1234);
        let (u, r) = outputs(v, SMALL, &w);
        assert_non_trivial(&u, v.name());
        let err = relative_l2(r.data(), u.data());
        eprintln!("{v} float32: relative L2 {err:.2e}");
        assert!(err < 1e-4, "{v}: relative L2 {err:e}");
    }
}

#[test]
fn fold_matches_unfused_in_float64_on_every_variant() {
    for v in Variant::ALL {
        let graph = Model::MobileOne(v).build(Form::Unfused, SMALL).unwrap();
        let w: Weights<f64> = random_weights(&graph, 99).cast();
        let (u, r) = outputs(v, SMALL, &w);
        assert_non_trivial(&u, v.name());
        let err = relative_l2(r.data(), u.data());
        eprintln!("{v} float64: relative L2 {err:.2e}");
        assert!(err < 1e-9, "{v}: relative L2 {err:e}");
    }
}

#[test]
fn fold_matches_unfused_at_full_resolution() {
    let v = Variant::S0;
    let graph = Model::MobileOne(v)
        .build(Form::Unfused, InputSize::IMAGENET)
        .unwrap();
    let w = random_weights(&graph, 7);
    let (u, r) = outputs(v, InputSize::IMAGENET, &w);
    assert_non_trivial(&u, "s0 at 224");
    let err = relative_l2(r.data(), u.data());
    assert!(err < 1e-4, "relative L2 {err:e}");
}

#[test]
fn a_wrong_fold_is_caught() {
    // The check must be able to fail: drop one BN's shift from a folded bias.
    let v = Variant::S1;
    let graph = Model::MobileOne(v).build(Form::Unfused, SMALL).unwrap();
    let w: Weights<f64> = random_weights(&graph, 3).cast();
    let mut fused = reparameterize(v, &w, "seeded").unwrap();
    let name = "stage2.5.reparam_conv.bias";
    let mut bias = fused.get(name).unwrap().clone();
    bias.data_mut()[0] += 0.05;
    fused.insert(name, bias);
    let x = input::<f64>(SMALL, 5);
    let u = evaluate(&graph, &w, &x).unwrap();
    let r = evaluate(
        &Model::MobileOne(v)
            .build(Form::Reparameterized, SMALL)
            .unwrap(),
        &fused,
        &x,
    )
    .unwrap();
    assert!(relative_l2(r.data(), u.data()) > 1e-9);
}

/// The zoo's fold (BN into conv everywhere; RepVGG's branches into one 3x3) in float64:
/// the reparameterized graph computes the unfused graph's function.
#[test]
fn the_zoo_fold_is_exact_in_float64() {
    use models::Model;
    let size = InputSize::square(1, 32);
    let x = input::<f64>(size, 9);
    for model in Model::all().into_iter().filter(|m| m.mobileone().is_none()) {
        let unfused_graph = model.build(Form::Unfused, size).unwrap();
        let unfused: Weights<f64> = random_weights(&unfused_graph, 4).cast();
        let fused = model.reparameterize(&unfused).unwrap();
        let u = evaluate(&unfused_graph, &unfused, &x).unwrap();
        let r = evaluate(
            &model.build(Form::Reparameterized, size).unwrap(),
            &fused,
            &x,
        )
        .unwrap();
        // Magnitudes are not checked: 29 unnormalized skips grow the plain CNN's logits to ~1e4.
        let (min, max) = u
            .data()
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
        assert!(
            min.is_finite() && max.is_finite() && max > min,
            "{model}: [{min}, {max}]"
        );
        let err = relative_l2(r.data(), u.data());
        assert!(err < 1e-9, "{model}: relative L2 {err:e}");
    }
}
