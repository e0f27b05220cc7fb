//! `harness infer`: one forward pass of a model on an input .npy, logits to an output .npy.

use anyhow::{bail, Context, Result};
use models::checkpoint::write_atomically;
use models::InputSize;

use super::{choose_weights, parse_form, parse_model};
use crate::cli::InferArgs;
use crate::npy;

pub fn run(args: &InferArgs) -> Result<()> {
    let model = parse_model(&args.model)?;
    let form = parse_form(&args.form)?;
    let (backend, options) = super::ready_backend(&args.backend, args.threads, &args.precision)?;
    let input = npy::read_f32(&args.input)?;
    let input_size = match *input.shape() {
        [batch, 3, height, width] if batch >= 1 && height >= 32 && width >= 32 => InputSize { batch, height, width },
        _ => bail!(
            "{}: shape is {:?}, expected [N, 3, H, W] with N >= 1 and H, W >= 32 (e.g. [1, 3, 224, 224])",
            args.input.display(),
            input.shape()
        ),
    };
    let graph = model.build(form, input_size)?;
    let started = std::time::Instant::now();
    let (mut plan, source, folded) = match &args.quantized {
        Some(path) => {
            let quantized = super::load_quantized(path, &graph, &options.precision)?;
            let plan = backend.prepare_quantized(&quantized, &options)?;
            (plan, format!("{} (int8)", path.display()), false)
        }
        None => {
            let (weights, origin) = choose_weights(&args.weights, model, form)?;
            let plan = backend.prepare(&graph, &weights, &options)?;
            (plan, origin.source, origin.folded_at_load)
        }
    };
    let logits = plan.forward(&input)?;
    let elapsed = started.elapsed();
    if let Some((index, count)) = logits.non_finite() {
        bail!("the output has {count} NaN or infinite logits (first at flat index {index}); nothing was written");
    }
    write_atomically(&args.output, &npy::encode_f32(&logits)?)
        .with_context(|| format!("{}: cannot write", args.output.display()))?;
    let folded = if folded { ", folded at load" } else { "" };
    eprintln!(
        "{model} {form} on {}{} ({} thread(s), {}), weights: {}{folded}; {:?} -> {:?} in {:.1} ms; wrote {}",
        backend.name(),
        backend.device().map(|d| format!(" [{d}]")).unwrap_or_default(),
        args.threads,
        options.precision,
        source,
        input.shape(),
        logits.shape(),
        elapsed.as_secs_f64() * 1e3,
        args.output.display()
    );
    Ok(())
}
