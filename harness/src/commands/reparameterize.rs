//! `harness reparameterize`: an unfused checkpoint in, the folded checkpoint out, with the fold
//! checked numerically on the actual weights before anything is written.

use anyhow::{bail, Result};
use backends::evaluate;
use models::{
    load_weights, relative_l2, reparameterize, save_safetensors, seeded_uniform, Form, InputSize,
    Model,
};

use super::{parse_mobileone, parse_naming};
use crate::cli::ReparameterizeArgs;

/// The largest relative L2 difference between the two forms that passes the check.
const FOLD_TOLERANCE: f64 = 1e-4;

pub fn run(args: &ReparameterizeArgs) -> Result<()> {
    let variant = parse_mobileone(&args.model)?;
    let naming = parse_naming(args.naming.as_deref())?;
    let loaded = load_weights(&args.weights, variant, Form::Unfused, naming)?;
    let source = args.weights.display().to_string();
    let fused = reparameterize(variant, &loaded.weights, &source)?;
    if !args.no_verify {
        let size = InputSize::square(1, 64);
        let input = seeded_uniform(size.shape(), 0, -2.0, 2.0).cast::<f64>();
        let unfused_out = evaluate(
            &Model::MobileOne(variant).build(Form::Unfused, size)?,
            &loaded.weights.cast(),
            &input,
        )?;
        let fused_out = evaluate(
            &Model::MobileOne(variant).build(Form::Reparameterized, size)?,
            &fused.cast(),
            &input,
        )?;
        let error = relative_l2(fused_out.data(), unfused_out.data());
        // A NaN error fails too.
        if error.is_nan() || error > FOLD_TOLERANCE {
            bail!("the folded model differs from the unfused one by relative L2 {error:.3e} (> {FOLD_TOLERANCE:e}); nothing was written");
        }
        eprintln!("fold checked: relative L2 {error:.2e} between the forms (reference executor, 1x3x64x64)");
    }
    save_safetensors(&fused, &args.output)?;
    eprintln!(
        "{variant}: {} tensors ({} naming, {}) folded into {} tensors; wrote {}",
        loaded.weights.len(),
        loaded.naming,
        loaded.format,
        fused.len(),
        args.output.display()
    );
    Ok(())
}
