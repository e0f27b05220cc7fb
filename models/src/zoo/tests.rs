use super::*;
use crate::cost::model_cost;
use crate::mobileone::Variant;
use crate::model::{Form, InputSize, Model};
use crate::testing::assert_contains;

fn params(model: Model, form: Form) -> u64 {
    model_cost(&model.build(form, InputSize::IMAGENET).unwrap())
        .totals
        .params
}

#[test]
fn parameter_counts_match_the_published_figures() {
    let mut report = Vec::new();
    for model in Model::ZOO {
        let published = model.published().expect("every zoo model is pinned");
        let ours = params(model, Form::Unfused) as f64;
        let off = (ours - published.params).abs();
        if off > published.params_tolerance {
            report.push(format!(
                "{model}: ours {ours}, published {} ({})",
                published.params, published.source
            ));
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}

#[test]
fn macs_match_the_published_figures_where_given() {
    let mut report = Vec::new();
    for model in Model::ZOO {
        let Some((macs, tolerance)) = model.published().and_then(|p| p.macs) else {
            continue;
        };
        let graph = model.build(Form::Unfused, InputSize::IMAGENET).unwrap();
        let ours = model_cost(&graph).totals.macs as f64;
        if (ours - macs).abs() > tolerance {
            report.push(format!("{model}: ours {ours}, published {macs}"));
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}

#[test]
fn repvgg_deploy_count_matches_the_published_figure() {
    // mmpretrain: 8.31M parameters after the fold.
    let deploy = params(Model::RepVggA0, Form::Reparameterized) as f64;
    assert!((deploy - 8.31e6).abs() <= 0.005e6, "{deploy}");
}

#[test]
fn every_model_builds_both_forms_with_1000_logits() {
    for model in Model::all() {
        for form in Form::ALL {
            let g = model.build(form, InputSize::IMAGENET).unwrap();
            assert_eq!(g.output_shape(), &[1, 1000], "{model} {form}");
            let w = model.seeded_weights(form, 3);
            w.validate(&g, "seeded").unwrap();
        }
    }
}

#[test]
fn the_fold_removes_every_batch_norm_that_follows_a_conv() {
    for model in [
        Model::MobileNetV3Large,
        Model::ShuffleNetV2x2,
        Model::ResNet18,
    ] {
        let folded = model
            .build(Form::Reparameterized, InputSize::IMAGENET)
            .unwrap();
        let bns = folded
            .nodes()
            .iter()
            .filter(|n| matches!(n.op, crate::Op::BatchNorm(_)))
            .count();
        assert_eq!(bns, 0, "{model}");
        let unfused = model.build(Form::Unfused, InputSize::IMAGENET).unwrap();
        let bn_count = unfused
            .nodes()
            .iter()
            .filter(|n| matches!(n.op, crate::Op::BatchNorm(_)))
            .count();
        assert_eq!(
            folded.nodes().len() + bn_count,
            unfused.nodes().len(),
            "{model}"
        );
    }
}

#[test]
fn names_round_trip_and_unknown_names_list_the_zoo() {
    for model in Model::all() {
        assert_eq!(model.name().parse::<Model>().unwrap(), model);
    }
    assert_eq!(
        "s2".parse::<Model>().unwrap(),
        Model::MobileOne(Variant::S2)
    );
    let err = "mobilenet-v4".parse::<Model>().unwrap_err().to_string();
    assert_contains(&err, &["mobilenet-v4", "mixnet-s"]);
}

#[test]
fn the_plain_cnn_has_30_convs_and_the_documented_cost() {
    let g = Model::Plain30 {
        activation: Activation::Relu,
        skip: false,
    }
    .build(Form::Unfused, InputSize::IMAGENET)
    .unwrap();
    let convs = g
        .nodes()
        .iter()
        .filter(|n| matches!(n.op, crate::Op::Conv2d(_)))
        .count();
    assert_eq!(convs, 30);
    let macs = model_cost(&g).totals.macs as f64 / 1e9;
    assert!((macs - 0.806).abs() < 0.001, "{macs} GMACs");
}
