//! One module per command; this one holds the argument parsing they share.

pub mod classify;
pub mod export;
pub mod gate;
pub mod history;
pub mod infer;
pub mod inspect;
pub mod list;
pub mod profile;
pub mod quantize;
pub mod reparameterize;
pub mod report;
pub mod run;
pub mod verify;

use anyhow::{bail, Context, Result};
use backends::PrepareOptions;
use models::{
    load_model_weights, Form, Graph, InputSize, Model, Naming, Precision, Variant, Weights,
    WeightsOrigin,
};

use crate::cli::{ModelArgs, WeightsArgs};
use crate::scenario::{MAX_BATCH, MAX_SIDE};

/// Any model of the zoo (MobileOne, the comparison models, the plain CNN).
pub fn parse_model(s: &str) -> Result<Model> {
    s.parse::<Model>().context("model")
}

/// A MobileOne model, for what only MobileOne has (checkpoints, preprocessing, the fold).
pub fn parse_mobileone(s: &str) -> Result<Variant> {
    match parse_model(s)? {
        Model::MobileOne(v) => Ok(v),
        other => {
            bail!("--model {other}: this command runs MobileOne models only (mobileone-s0 .. s4)")
        }
    }
}

pub fn parse_form(s: &str) -> Result<Form> {
    s.parse::<Form>().context("form")
}

pub fn parse_naming(s: Option<&str>) -> Result<Option<Naming>> {
    s.map(|n| n.parse::<Naming>().context("--naming"))
        .transpose()
}

/// --batch: 1 to MAX_BATCH.
pub fn parse_batch(batch: usize) -> Result<usize> {
    if batch == 0 || batch > MAX_BATCH {
        bail!("--batch {batch}: a batch of 1 to {MAX_BATCH}");
    }
    Ok(batch)
}

/// "224" or "256x192" -> (height, width), each 32 to MAX_SIDE.
pub fn parse_input_size(s: &str) -> Result<(usize, usize)> {
    let parse = |v: &str| -> Result<usize> {
        let n: usize = v
            .trim()
            .parse()
            .with_context(|| format!("--input-size `{s}`: `{v}` is not a whole number"))?;
        if n < 32 {
            bail!("--input-size `{s}`: {n} is too small; MobileOne downsamples 32x, so use at least 32");
        }
        if n > MAX_SIDE {
            bail!("--input-size `{s}`: {n} is too large; at most {MAX_SIDE}");
        }
        Ok(n)
    };
    match s.split_once(['x', 'X']) {
        Some((h, w)) => Ok((parse(h)?, parse(w)?)),
        None => {
            let n = parse(s)?;
            Ok((n, n))
        }
    }
}

/// The weights the user chose: a checkpoint, or seeded random weights (seed 0 by default).
pub fn choose_weights(
    args: &WeightsArgs,
    model: Model,
    form: Form,
) -> Result<(Weights, WeightsOrigin)> {
    match (&args.weights, model.mobileone()) {
        (Some(path), Some(variant)) => {
            let naming = parse_naming(args.naming.as_deref())?;
            Ok(load_model_weights(path, variant, form, naming)?)
        }
        (Some(path), None) => bail!(
            "--weights {}: checkpoints load for MobileOne models only; {model} runs on seeded weights (--seed)",
            path.display()
        ),
        (None, _) => {
            let seed = args.seed.unwrap_or(0);
            let origin = WeightsOrigin {
                source: format!("seed {seed}"),
                naming: None,
                folded_at_load: false,
            };
            Ok((model.seeded_weights(form, seed), origin))
        }
    }
}

/// A model as `ModelArgs` describe it: its graph, its weights and where they came from.
pub struct BuiltModel {
    pub model: Model,
    pub form: Form,
    pub size: InputSize,
    pub graph: Graph,
    pub weights: Weights,
    pub origin: WeightsOrigin,
}

pub fn build_model(args: &ModelArgs) -> Result<BuiltModel> {
    let model = parse_model(&args.model)?;
    let form = parse_form(&args.form)?;
    let (height, width) = parse_input_size(&args.input_size)?;
    let size = InputSize {
        batch: parse_batch(args.batch)?,
        height,
        width,
    };
    crate::scenario::check_cell_memory(model, form, size)
        .map_err(|m| anyhow::anyhow!("{m}; use a smaller --batch or --input-size"))?;
    let graph = model.build(form, size)?;
    let (weights, origin) = choose_weights(&args.weights, model, form)?;
    Ok(BuiltModel {
        model,
        form,
        size,
        graph,
        weights,
        origin,
    })
}

/// The backend called `name`, available here, with a valid `--threads`: what `infer`,
/// `profile` and `classify` check before they load anything.
fn ready_backend(
    name: &str,
    threads: usize,
    precision: &str,
) -> Result<(Box<dyn backends::Backend>, PrepareOptions)> {
    let backend = backends::get(name).context("--backend")?;
    if let backends::Availability::Unavailable(reason) = backend.availability() {
        bail!("--backend {}: unavailable: {reason}", backend.name());
    }
    crate::scenario::check_threads(&[threads]).map_err(|m| anyhow::anyhow!("--threads: {m}"))?;
    let precision = parse_precision(precision)?;
    if let Err(reason) = backend.supports(precision) {
        bail!("--precision {precision}: {reason}");
    }
    Ok((backend, PrepareOptions::with_threads(threads).at(precision)))
}

fn parse_precision(s: &str) -> Result<Precision> {
    s.parse().context("--precision")
}

/// The quantized model saved at `path` (`harness quantize --save`), checked against `graph`;
/// it runs at int8 only.
fn load_quantized(
    path: &std::path::Path,
    graph: &Graph,
    precision: &Precision,
) -> Result<models::quantized::QuantizedModel> {
    if *precision != Precision::Int8 {
        bail!(
            "--quantized {}: a quantized model runs at --precision int8, not {precision}",
            path.display()
        );
    }
    Ok(models::quantized::QuantizedModel::load(graph, path)?)
}
