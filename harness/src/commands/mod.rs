//! One module per command; this one holds the argument parsing they share.

pub mod classify;
pub mod export;
pub mod gate;
pub mod infer;
pub mod inspect;
pub mod list;
pub mod profile;
pub mod reparameterize;
pub mod report;
pub mod run;
pub mod verify;

use anyhow::{bail, Context, Result};
use models::{
    build, load_model_weights, seeded_weights, Form, Graph, InputSize, Naming, Variant, Weights,
    WeightsOrigin,
};

use crate::cli::{ModelArgs, WeightsArgs};

pub fn parse_model(s: &str) -> Result<Variant> {
    s.parse::<Variant>().context("model")
}

pub fn parse_form(s: &str) -> Result<Form> {
    s.parse::<Form>().context("form")
}

pub fn parse_naming(s: Option<&str>) -> Result<Option<Naming>> {
    s.map(|n| n.parse::<Naming>().context("--naming"))
        .transpose()
}

/// "224" or "256x192" -> (height, width).
pub fn parse_input_size(s: &str) -> Result<(usize, usize)> {
    let parse = |v: &str| -> Result<usize> {
        let n: usize = v
            .trim()
            .parse()
            .with_context(|| format!("--input-size `{s}`: `{v}` is not a whole number"))?;
        if n < 32 {
            bail!("--input-size `{s}`: {n} is too small; MobileOne downsamples 32x, so use at least 32");
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
    variant: Variant,
    form: Form,
) -> Result<(Weights, WeightsOrigin)> {
    match &args.weights {
        Some(path) => {
            let naming = parse_naming(args.naming.as_deref())?;
            Ok(load_model_weights(path, variant, form, naming)?)
        }
        None => Ok(seeded_weights(variant, form, args.seed.unwrap_or(0))),
    }
}

/// A model as `ModelArgs` describe it: its graph, its weights and where they came from.
pub struct BuiltModel {
    pub variant: Variant,
    pub form: Form,
    pub size: InputSize,
    pub graph: Graph,
    pub weights: Weights,
    pub origin: WeightsOrigin,
}

pub fn build_model(args: &ModelArgs) -> Result<BuiltModel> {
    let variant = parse_model(&args.model)?;
    let form = parse_form(&args.form)?;
    let (height, width) = parse_input_size(&args.input_size)?;
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let size = InputSize {
        batch: args.batch,
        height,
        width,
    };
    let graph = build(variant, form, size)?;
    let (weights, origin) = choose_weights(&args.weights, variant, form)?;
    Ok(BuiltModel {
        variant,
        form,
        size,
        graph,
        weights,
        origin,
    })
}
