//! `harness quantize`: post-training int8 quantization of one model in each form, as deployed
//! (batch norms folded into their convs, each unfused branch on its own; min/max calibration),
//! run by the quantized reference executor against the float reference: the int8 error of each
//! form, and per layer the ranges that explain it.

use std::path::Path;

use anyhow::{bail, Context, Result};
use backends::quantized_reference;
use models::checkpoint::write_atomically;
use models::quantized::{QuantizedModel, QuantizedOp};
use models::{relative_l2, seeded_uniform, Form, InputSize, Model, Tensor, Variant};
use serde_json::json;
use tabled::builder::Builder;
use tabled::settings::Style;

use super::{choose_weights, parse_form, parse_input_size, parse_model};
use crate::cli::QuantizeArgs;
use crate::preprocess::{load_rgb, EvalTransform};

/// The error of one form over one set of inputs.
struct Agreement {
    relative_l2: Vec<f64>,
    top1: usize,
    top5: usize,
}

pub fn run(args: &QuantizeArgs) -> Result<()> {
    let model = parse_model(&args.model)?;
    let forms: Vec<Form> = match &args.forms {
        Some(list) => list.iter().map(|f| parse_form(f)).collect::<Result<_>>()?,
        None => Form::ALL.to_vec(),
    };
    if let (Some(path), [_, _, ..]) = (&args.save, &forms[..]) {
        bail!(
            "--save {}: one file holds one form; give --forms unfused or --forms reparameterized",
            path.display()
        );
    }
    let (height, width) = parse_input_size(&args.input_size)?;
    let size = InputSize {
        batch: 1,
        height,
        width,
    };
    crate::scenario::check_cell_memory(model, Form::Unfused, size)
        .map_err(|m| anyhow::anyhow!("{m}; use a smaller --input-size"))?;
    let (calibration, calibration_source) = calibration_inputs(args, model, size)?;
    let held_out: Vec<Tensor<f32>> = (0..args.held_out as u64)
        .map(|i| seeded_uniform(vec![1, 3, height, width], 1_000_000 + i, -1.0, 1.0))
        .collect();
    let mut summary = Builder::default();
    summary.push_record([
        "form",
        "int8 ops",
        "inputs",
        "relative L2 median (max)",
        "top-1 agreement",
        "top-5 agreement",
    ]);
    let mut layers = Builder::default();
    layers.push_record([
        "form",
        "layer",
        "op",
        "weight scale per channel (min..max)",
        "output range",
        "output scale",
    ]);
    let mut json_forms = Vec::new();
    for &form in &forms {
        let graph = model.build(form, size)?;
        let (weights, origin) = choose_weights(&args.weights, model, form)?;
        eprintln!(
            "quantizing {model} {form} (weights: {}) on {calibration_source}",
            origin.source
        );
        let quantized = quantized_reference::quantize(&graph, &weights, &calibration)
            .with_context(|| format!("{model} {form}"))?;
        if let Some(path) = &args.save {
            let model_name = model.name();
            let notes = [
                ("model", model_name.as_str()),
                ("form", form.name()),
                ("weights", origin.source.as_str()),
                ("calibration", calibration_source.as_str()),
            ];
            quantized.save(path, &notes)?;
            eprintln!("saved the quantized {model} {form} to {}", path.display());
        }
        let mut sets = Vec::new();
        for (name, inputs) in [("calibration", &calibration), ("held out", &held_out)] {
            if inputs.is_empty() {
                continue;
            }
            let a = agreement(&graph, &weights, &quantized, inputs)?;
            summary.push_record(summary_row(form, &quantized, name, &a));
            sets.push(json!({"inputs": name, "count": inputs.len(), "relative_l2": a.relative_l2, "top1_agreement": a.top1, "top5_agreement": a.top5}));
        }
        let per_layer = layer_ranges(&quantized);
        if args.per_layer {
            for row in &per_layer {
                layers.push_record([
                    form.to_string(),
                    row.0.clone(),
                    row.1.clone(),
                    row.2.clone(),
                    row.3.clone(),
                    row.4.clone(),
                ]);
            }
        }
        json_forms.push(json!({"form": form.to_string(), "weights": origin.source, "sets": sets, "layers": per_layer}));
    }
    println!(
        "int8 post-training quantization of {model} at {height}x{width}: uint8 activations (min/max over {calibration_source}), per-channel int8 weights, batch norms folded into their convs, each unfused branch quantized on its own; int8 by the quantized reference, float by the float reference"
    );
    println!("{}", summary.build().with(Style::rounded()));
    if args.per_layer {
        println!("{}", layers.build().with(Style::rounded()));
    }
    if let Some(path) = &args.json {
        let document = json!({"model": model.name(), "input_size": [height, width], "calibration": calibration_source, "forms": json_forms});
        let text = serde_json::to_string_pretty(&document)?;
        write_atomically(path, text.as_bytes())
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok(())
}

/// The calibration inputs and a phrase saying what they are.
fn calibration_inputs(
    args: &QuantizeArgs,
    model: Model,
    size: InputSize,
) -> Result<(Vec<Tensor<f32>>, String)> {
    let Some(dir) = &args.calibration else {
        if args.calibration_inputs == 0 {
            bail!("--calibration-inputs 0: calibrate on at least one input");
        }
        let inputs = (0..args.calibration_inputs as u64)
            .map(|i| seeded_uniform(vec![1, 3, size.height, size.width], i, -1.0, 1.0))
            .collect();
        return Ok((inputs, format!("{} seeded inputs", args.calibration_inputs)));
    };
    let (images, tensors) = calibration_files(dir)?;
    let mut inputs = Vec::new();
    for path in &tensors {
        inputs.extend(npy_inputs(path, size)?);
    }
    if !images.is_empty() {
        if (size.height, size.width) != (224, 224) {
            bail!("--calibration: images are preprocessed to 224x224; use --input-size 224");
        }
        let transform = EvalTransform::for_variant(model.mobileone().unwrap_or(Variant::S1));
        for path in &images {
            let pixels = load_rgb(path).and_then(|image| transform.apply(&image));
            let pixels = pixels.with_context(|| format!("--calibration: {}", path.display()))?;
            inputs.push(Tensor::new(vec![1, 3, 224, 224], pixels)?);
        }
    }
    let what = match (images.len(), tensors.len()) {
        (0, n) => format!("{} inputs of {n} .npy files", inputs.len()),
        (i, 0) => format!("{i} images"),
        (i, n) => format!(
            "{i} images and {} inputs of {n} .npy files",
            inputs.len() - i
        ),
    };
    Ok((inputs, format!("{what} of {}", dir.display())))
}

/// The inputs of one calibration .npy file: float32 [N, 3, H, W] at the input size, finite,
/// used as they are (already preprocessed), one input per image of the batch.
fn npy_inputs(path: &Path, size: InputSize) -> Result<Vec<Tensor<f32>>> {
    let tensor = crate::npy::read_f32(path).context("--calibration")?;
    let [n, 3, h, w] = *tensor.shape() else {
        bail!(
            "--calibration: {}: shape {:?}, expected [N, 3, {}, {}]",
            path.display(),
            tensor.shape(),
            size.height,
            size.width
        );
    };
    if (h, w) != (size.height, size.width) || n == 0 {
        bail!(
            "--calibration: {}: shape {:?}, expected [N, 3, {}, {}] with N >= 1 (--input-size)",
            path.display(),
            tensor.shape(),
            size.height,
            size.width
        );
    }
    if let Some((index, count)) = tensor.non_finite() {
        bail!(
            "--calibration: {}: {count} NaN or infinite values (first at flat index {index})",
            path.display()
        );
    }
    let per_image = 3 * h * w;
    tensor
        .data()
        .chunks(per_image)
        .map(|image| Ok(Tensor::new(vec![1, 3, h, w], image.to_vec())?))
        .collect()
}

/// A calibration folder's image files and .npy files (by extension), each sorted; an error
/// when it has neither.
fn calibration_files(dir: &Path) -> Result<(Vec<std::path::PathBuf>, Vec<std::path::PathBuf>)> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("--calibration {}", dir.display()))?;
    let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    let extension = |p: &std::path::PathBuf| {
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        ext.to_ascii_lowercase()
    };
    let (tensors, others): (Vec<_>, Vec<_>) =
        files.into_iter().partition(|p| extension(p) == "npy");
    let images: Vec<_> = others
        .into_iter()
        .filter(|p| matches!(extension(p).as_str(), "jpg" | "jpeg" | "png" | "webp"))
        .collect();
    if images.is_empty() && tensors.is_empty() {
        bail!(
            "--calibration {}: no .jpg, .jpeg, .png, .webp or .npy files",
            dir.display()
        );
    }
    Ok((images, tensors))
}

fn agreement(
    graph: &models::Graph,
    weights: &models::Weights,
    quantized: &QuantizedModel,
    inputs: &[Tensor<f32>],
) -> Result<Agreement> {
    let mut a = Agreement {
        relative_l2: Vec::new(),
        top1: 0,
        top5: 0,
    };
    for input in inputs {
        let float = backends::reference::evaluate(graph, weights, input)?;
        let int8 = quantized_reference::run(quantized, input)?;
        a.relative_l2.push(relative_l2(int8.data(), float.data()));
        let best = argmax(float.data());
        let ranked = top_k(int8.data(), 5);
        a.top1 += usize::from(ranked[0] == best);
        a.top5 += usize::from(ranked.contains(&best));
    }
    Ok(a)
}

fn argmax(values: &[f32]) -> usize {
    top_k(values, 1)[0]
}

/// The indices of the k largest values, largest first (ties: the lower index first).
fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

fn summary_row(form: Form, q: &QuantizedModel, set: &str, a: &Agreement) -> Vec<String> {
    let mut sorted = a.relative_l2.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let n = sorted.len();
    vec![
        form.to_string(),
        q.ops
            .iter()
            .filter(|op| !matches!(op, QuantizedOp::Fused | QuantizedOp::Reshape))
            .count()
            .to_string(),
        format!("{n} {set}"),
        format!("{median:.2e} ({:.2e})", sorted[n - 1]),
        format!("{}/{n}", a.top1),
        format!("{}/{n}", a.top5),
    ]
}

/// Per quantized conv-like layer: name, op, its weight scales' spread, its output's real range
/// and scale.
fn layer_ranges(q: &QuantizedModel) -> Vec<(String, String, String, String, String)> {
    q.layers()
        .into_iter()
        .map(|l| {
            let [lo, hi] = l.weight_scales;
            let [low, high] = l.output_range;
            (
                l.name.clone(),
                l.op.clone(),
                format!("{lo:.2e}..{hi:.2e} ({:.0}x)", l.weight_spread()),
                format!("{low:.3}..{high:.3}"),
                format!("{:.2e}", (high - low) / 255.0),
            )
        })
        .collect()
}
