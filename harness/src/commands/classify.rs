//! `harness classify`: preprocesses images as the checkpoints were evaluated, runs them as one
//! batch and prints each image's top-K ImageNet-1k classes with softmax probabilities. An image
//! that cannot be read gets one error line; the others are still classified.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use models::{InputSize, Tensor};
use serde::Serialize;

use super::{choose_weights, parse_form, parse_mobileone};
use crate::cli::ClassifyArgs;
use crate::imagenet::{classes, ImagenetClass};
use crate::preprocess::{load_rgb, EvalTransform};

/// One of an image's most probable classes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub label: usize,
    pub wnid: &'static str,
    pub class: &'static str,
    pub score: f64,
}

/// The softmax of `logits` (in float64), as (class index, probability) sorted by probability,
/// highest first (ties by index), the first `k` of them.
pub fn softmax_top_k(logits: &[f32], k: usize) -> Vec<(usize, f64)> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exp: Vec<f64> = logits.iter().map(|&l| (l as f64 - max).exp()).collect();
    let total: f64 = exp.iter().sum();
    let mut ranked: Vec<(usize, f64)> = exp.iter().map(|e| e / total).enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(k);
    ranked
}

fn predictions(logits: &[f32], k: usize, names: &[ImagenetClass]) -> Vec<Prediction> {
    softmax_top_k(logits, k)
        .into_iter()
        .map(|(label, score)| Prediction {
            label,
            wnid: names[label].wnid,
            class: names[label].name,
            score,
        })
        .collect()
}

/// What happened to one image: its predictions, or why it could not be classified.
struct ImageOutcome {
    path: PathBuf,
    result: Result<Vec<Prediction>, String>,
}

pub fn run(args: &ClassifyArgs) -> Result<ExitCode> {
    let variant = parse_mobileone(&args.model)?;
    let form = parse_form(&args.form)?;
    let (backend, options) = super::ready_backend(&args.backend, args.threads, &args.precision)?;
    check_args(args)?;
    let model = models::Model::MobileOne(variant);
    let (weights, origin) = choose_weights(&args.weights, model, form)?;
    let transform = EvalTransform::for_variant(variant);
    let (mut outcomes, batch) = preprocess(&args.images, &transform);
    let good = outcomes.iter().filter(|o| o.result.is_ok()).count();
    if good > 0 {
        let crop = transform.crop as usize;
        let size = InputSize::square(good, crop);
        let mut plan = backend.prepare(&model.build(form, size)?, &weights, &options)?;
        let logits = plan.forward(&Tensor::new(size.shape(), batch)?)?;
        let names = classes();
        let k = args.top.min(names.len());
        let rows = logits.data().chunks(logits.shape()[1]);
        for (outcome, row) in outcomes.iter_mut().filter(|o| o.result.is_ok()).zip(rows) {
            outcome.result = Ok(predictions(row, k, &names));
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json_report(&outcomes))?);
    } else {
        let source = match origin.folded_at_load {
            true => format!("{} (folded at load)", origin.source),
            false => origin.source.to_string(),
        };
        println!(
            "{variant} {form} on {} ({} thread(s)), weights: {source}; resize shorter side to {}, centre crop {}",
            backend.name(),
            args.threads,
            transform.resize_short(),
            transform.crop
        );
        for o in &outcomes {
            if let Ok(top) = &o.result {
                print_text(&o.path, top);
            }
        }
    }
    Ok(report_failures(&outcomes))
}

/// The arguments a run cannot start without.
fn check_args(args: &ClassifyArgs) -> Result<()> {
    if args.top == 0 {
        bail!("--top 0: show at least 1 class");
    }
    if args.weights.weights.is_none() && args.weights.seed.is_none() {
        bail!(
            "--weights is required: random weights classify nothing. Give a checkpoint \
             (Apple, timm or mmpretrain naming), or --seed N to run seeded random weights on purpose"
        );
    }
    Ok(())
}

/// Preprocesses every image: one outcome per image (an error for an unreadable one), and the
/// readable ones' pixels in order, as one batch.
fn preprocess(images: &[PathBuf], transform: &EvalTransform) -> (Vec<ImageOutcome>, Vec<f32>) {
    let mut outcomes = Vec::new();
    let mut batch = Vec::new();
    for path in images {
        let pixels = load_rgb(path).and_then(|image| {
            transform
                .apply(&image)
                .with_context(|| path.display().to_string())
        });
        let result = match pixels {
            Ok(pixels) => {
                batch.extend_from_slice(&pixels);
                Ok(Vec::new())
            }
            Err(err) => Err(format!("{err:#}")),
        };
        outcomes.push(ImageOutcome {
            path: path.clone(),
            result,
        });
    }
    (outcomes, batch)
}

/// One error line per image that could not be classified, and the exit code.
fn report_failures(outcomes: &[ImageOutcome]) -> ExitCode {
    let failed: Vec<&String> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().err())
        .collect();
    for reason in &failed {
        eprintln!("error: {reason}");
    }
    if failed.is_empty() {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "{} of {} image(s) could not be classified",
        failed.len(),
        outcomes.len()
    );
    ExitCode::FAILURE
}

fn print_text(path: &std::path::Path, top: &[Prediction]) {
    println!("{}", path.display());
    for (rank, p) in top.iter().enumerate() {
        println!(
            "  {:>2}. {:>6.2}%  {}  [{} {}]",
            rank + 1,
            p.score * 100.0,
            p.class,
            p.label,
            p.wnid
        );
    }
}

/// One object per image, in the order given: `pred_label`, `pred_score`, `pred_class` (the
/// most probable class, as mmpretrain's `inference_model` names them) and `top`; or `error`.
fn json_report(outcomes: &[ImageOutcome]) -> serde_json::Value {
    outcomes
        .iter()
        .map(|o| match &o.result {
            Ok(top) => serde_json::json!({
                "image": o.path.display().to_string(),
                "pred_label": top[0].label,
                "pred_score": top[0].score,
                "pred_class": top[0].class,
                "top": top,
            }),
            Err(reason) => serde_json::json!({
                "image": o.path.display().to_string(),
                "error": reason,
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_top_k_sorts_and_sums_to_one() {
        let logits = [1.0f32, 3.0, 2.0, 3.0];
        let all = softmax_top_k(&logits, 4);
        let total: f64 = all.iter().map(|p| p.1).sum();
        assert!((total - 1.0).abs() < 1e-12);
        // Hand-computed: e^3 / (e + 2e^3 + e^2) = 0.42232..., ties by index.
        assert_eq!(all.iter().map(|p| p.0).collect::<Vec<_>>(), [1, 3, 2, 0]);
        let e = std::f64::consts::E;
        let expected = e.powi(3) / (e + 2.0 * e.powi(3) + e.powi(2));
        assert!((all[0].1 - expected).abs() < 1e-12);
        assert_eq!(softmax_top_k(&logits, 2).len(), 2);
        // Large logits do not overflow.
        let big = softmax_top_k(&[1000.0, 999.0], 1);
        assert!((big[0].1 - 1.0 / (1.0 + (-1.0f64).exp())).abs() < 1e-12);
    }
}
