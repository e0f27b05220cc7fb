//! One module per command; this one holds the argument parsing they share.

pub mod export;
pub mod infer;
pub mod inspect;
pub mod list;
pub mod profile;
pub mod reparameterize;
pub mod report;
pub mod run;
pub mod verify;

use anyhow::{bail, Context, Result};
use models::{load_model_weights, seeded_weights, Form, Naming, Variant, Weights, WeightsOrigin};

use crate::cli::WeightsArgs;

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
