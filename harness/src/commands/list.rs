//! `harness list`: models, forms and backends, with each backend's availability and the
//! precisions it computes in.

use anyhow::Result;
use backends::Availability;
use models::{model_cost, Form, InputSize, Model, Precision};

pub fn run() -> Result<()> {
    println!("models (params, MACs at 224x224, unfused):");
    for m in Model::all() {
        let graph = m.build(Form::Unfused, InputSize::IMAGENET)?;
        let t = model_cost(&graph).totals;
        println!(
            "  {:<22} {:>6.2} M  {:>7.1} M",
            m.name(),
            t.params as f64 / 1e6,
            t.macs as f64 / 1e6
        );
    }
    println!("forms:");
    for f in Form::ALL {
        println!("  {f}");
    }
    println!("backends:");
    let rows: Vec<[String; 3]> = backends::all()
        .iter()
        .map(|b| {
            let precisions: Vec<&str> = (Precision::ALL.into_iter())
                .filter(|&p| b.supports(p).is_ok())
                .map(Precision::name)
                .collect();
            [
                b.name().to_string(),
                b.version(),
                match (b.availability(), b.device()) {
                    (Availability::Available, Some(device)) => {
                        format!("available ({}) on {device}", precisions.join(", "))
                    }
                    (Availability::Available, None) => {
                        format!("available ({})", precisions.join(", "))
                    }
                    (availability, _) => availability.to_string(),
                },
            ]
        })
        .collect();
    let width = |i: usize| rows.iter().map(|r| r[i].len()).max().unwrap_or(0);
    let (name_width, version_width) = (width(0), width(1));
    for [name, version, availability] in &rows {
        println!("  {name:<name_width$}  {version:<version_width$}  {availability}");
    }
    Ok(())
}
