//! `harness list`: models, forms and backends, with each backend's availability.

use anyhow::Result;
use models::{Form, Variant};

pub fn run() -> Result<()> {
    println!("models:");
    for v in Variant::ALL {
        println!("  {v}");
    }
    println!("forms:");
    for f in Form::ALL {
        println!("  {f}");
    }
    println!("backends:");
    for b in backends::all() {
        println!(
            "  {:<12} {:<24} {}",
            b.name(),
            b.version(),
            b.availability()
        );
    }
    Ok(())
}
