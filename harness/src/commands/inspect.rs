//! `harness inspect`: the cost of a model, as tables or JSON.

use anyhow::Result;
use models::{model_cost, InputSize};
use serde_json::json;

use super::{parse_form, parse_input_size, parse_model};
use crate::cli::InspectArgs;

pub fn run(args: &InspectArgs) -> Result<()> {
    let model = parse_model(&args.model)?;
    let form = parse_form(&args.form)?;
    let (height, width) = parse_input_size(&args.input_size)?;
    let input = InputSize {
        batch: super::parse_batch(args.batch)?,
        height,
        width,
    };
    let graph = model.build(form, input)?;
    let cost = model_cost(&graph);
    if args.json {
        let mut value = json!({
            "model": model.name(),
            "form": form.name(),
            "input_shape": graph.input_shape(),
        });
        for (key, v) in serde_json::to_value(&cost.totals)?
            .as_object()
            .expect("a struct")
            .iter()
        {
            value[key] = v.clone();
        }
        if args.per_layer {
            value["layers"] = serde_json::to_value(&cost.layers)?;
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!(
        "{}",
        reports::cost_summary_table(
            &model.name(),
            form.name(),
            graph.input_shape(),
            &cost.totals
        )
    );
    if args.per_layer {
        println!("{}", reports::per_layer_table(&cost));
    }
    Ok(())
}
