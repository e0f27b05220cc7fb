//! Terminal tables of a model's cost: a one-model summary and the per-layer breakdown.

use models::{CostTotals, ModelCost};
use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Alignment, Style};

use crate::units::{bytes, si};

/// A two-column summary of one model's cost (exact counts beside readable ones).
pub fn cost_summary_table(
    model: &str,
    form: &str,
    input_shape: &[usize],
    cost: &CostTotals,
) -> String {
    let mut b = Builder::default();
    b.push_record(["quantity", "value", "exact"]);
    let rows: [(&str, String, String); 9] = [
        ("model", model.to_string(), String::new()),
        ("form", form.to_string(), String::new()),
        ("input", format!("{input_shape:?}"), String::new()),
        ("params", si(cost.params), cost.params.to_string()),
        (
            "MACs (ours, with classifier)",
            si(cost.macs),
            cost.macs.to_string(),
        ),
        (
            "MACs (fvcore, as published)",
            si(cost.macs_fvcore),
            cost.macs_fvcore.to_string(),
        ),
        ("FLOPs", si(cost.flops), cost.flops.to_string()),
        (
            "memory traffic",
            bytes(cost.memory_traffic_bytes),
            cost.memory_traffic_bytes.to_string(),
        ),
        (
            "peak activations",
            bytes(cost.peak_activation_bytes),
            cost.peak_activation_bytes.to_string(),
        ),
    ];
    for (name, value, exact) in rows {
        b.push_record([name.to_string(), value, exact]);
    }
    b.push_record(["ops".to_string(), cost.ops.to_string(), String::new()]);
    let mut table = b.build();
    table.with(Style::rounded());
    table.modify(Columns::new(1..), Alignment::right());
    table.to_string()
}

/// One row per executed op: kind, output shape, params, MACs, FLOPs, bytes moved.
pub fn per_layer_table(cost: &ModelCost) -> String {
    let mut b = Builder::default();
    b.push_record([
        "#", "layer", "kind", "output", "params", "MACs", "FLOPs", "traffic",
    ]);
    for (i, l) in cost.layers.iter().enumerate() {
        b.push_record([
            i.to_string(),
            l.name.clone(),
            l.kind.to_string(),
            format!("{:?}", l.output_shape),
            l.params.to_string(),
            l.macs.to_string(),
            l.flops.to_string(),
            bytes(l.memory_traffic_bytes()),
        ]);
    }
    let mut table = b.build();
    table.with(Style::rounded());
    table.modify(Columns::new(4..), Alignment::right());
    table.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::testing::assert_contains;
    use models::{model_cost, Form, InputSize, Model, Variant};

    #[test]
    fn summary_shows_exact_published_counts() {
        let g = Model::MobileOne(Variant::S0)
            .build(Form::Reparameterized, InputSize::IMAGENET)
            .unwrap();
        let text = cost_summary_table(
            "mobileone-s0",
            "reparameterized",
            g.input_shape(),
            &model_cost(&g).totals,
        );
        assert_contains(&text, &["2078504", "2.08 M"]);
        assert_contains(&text, &["274136576"]);
        assert_contains(&text, &["│ ops "]);
    }

    #[test]
    fn per_layer_table_has_a_row_per_op() {
        let g = Model::MobileOne(Variant::S1)
            .build(Form::Reparameterized, InputSize::IMAGENET)
            .unwrap();
        let cost = model_cost(&g);
        let text = per_layer_table(&cost);
        // One line per op plus the header line.
        assert_contains(&text, &["stage0.reparam_conv", "[1, 64, 112, 112]"]);
        assert_eq!(
            text.lines().filter(|l| l.starts_with("│")).count(),
            cost.totals.ops + 1
        );
    }
}
