//! `harness profile`: runs one model on one backend with per-layer timing on, then prints the
//! time per op kind and the slowest planned ops (per run, and as a share of the total).

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use backends::{LayerTime, PrepareOptions};
use models::seeded_uniform;

use super::build_model;
use crate::cli::ProfileArgs;

pub fn run(args: &ProfileArgs) -> Result<()> {
    let (backend, options) = super::ready_backend(&args.backend, args.threads, &args.precision)?;
    if args.runs == 0 {
        bail!("--runs 0: time at least 1 run");
    }
    let m = build_model(&args.model)?;
    let options = PrepareOptions {
        per_layer_timing: true,
        ..options
    };
    let mut plan = backend.prepare(&m.graph, &m.weights, &options)?;
    let input = seeded_uniform(m.size.shape(), 0, -2.0, 2.0);
    for _ in 0..3 {
        plan.forward(&input)?;
    }
    // Per-layer times accumulate from prepare: subtract the warm-up runs' share.
    let warm = plan.layer_times();
    if warm.is_empty() {
        bail!(
            "--backend {} does not report per-layer times (the native backend does)",
            backend.name()
        );
    }
    let started = std::time::Instant::now();
    let mut output = models::Tensor::zeros(plan.output_shape().to_vec());
    for _ in 0..args.runs {
        plan.run(&input, &mut output)?;
    }
    let wall_ms = started.elapsed().as_secs_f64() * 1e3 / args.runs as f64;
    let layers: Vec<LayerTime> = plan
        .layer_times()
        .into_iter()
        .zip(warm)
        .map(|(mut l, w)| {
            l.seconds -= w.seconds;
            l.runs -= w.runs;
            l
        })
        .collect();
    if args.plan {
        println!("{}\n", plan.describe());
    }
    print!("{}", render(&layers, args.top, wall_ms));
    println!(
        "{} {} on {} ({} thread(s)), {}x3x{}x{}, {} runs",
        m.model,
        m.form,
        backend.name(),
        args.threads,
        m.size.batch,
        m.size.height,
        m.size.width,
        args.runs
    );
    Ok(())
}

/// Milliseconds per run of one layer.
fn per_run_ms(l: &LayerTime) -> f64 {
    if l.runs == 0 {
        0.0
    } else {
        l.seconds * 1e3 / l.runs as f64
    }
}

/// The per-kind totals and the `top` slowest layers as text tables.
pub fn render(layers: &[LayerTime], top: usize, wall_ms: f64) -> String {
    let total: f64 = layers.iter().map(per_run_ms).sum();
    let share = |ms: f64| if total > 0.0 { 100.0 * ms / total } else { 0.0 };
    let mut kinds: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for l in layers {
        let e = kinds.entry(&l.kind).or_default();
        e.0 += per_run_ms(l);
        e.1 += 1;
    }
    let mut kinds: Vec<_> = kinds.into_iter().collect();
    kinds.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    // The kind column as wide as its longest name (OpenVINO's `groupconvolution`).
    let w = kinds
        .iter()
        .map(|(k, _)| k.len())
        .max()
        .unwrap_or(0)
        .max(14);
    let mut text = format!(
        "{:<w$} {:>6} {:>10} {:>7}\n",
        "kind", "ops", "ms/run", "share"
    );
    for (kind, (ms, count)) in &kinds {
        text.push_str(&format!(
            "{kind:<w$} {count:>6} {ms:>10.3} {:>6.1}%\n",
            share(*ms)
        ));
    }
    text.push_str(&format!(
        "{:<w$} {:>6} {total:>10.3} {:>6.1}%   (wall {wall_ms:.3} ms/run; the rest is dispatch and timing)\n\n",
        "total",
        layers.len(),
        100.0
    ));
    let mut slowest: Vec<&LayerTime> = layers.iter().collect();
    slowest.sort_by(|a, b| per_run_ms(b).total_cmp(&per_run_ms(a)));
    text.push_str(&format!(
        "{:>10} {:>7}  {}\n",
        "ms/run", "share", "layer: kernel"
    ));
    for l in slowest.into_iter().take(top) {
        let ms = per_run_ms(l);
        text.push_str(&format!(
            "{ms:>10.3} {:>6.1}%  {}: {}\n",
            share(ms),
            l.name,
            l.kernel
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(name: &str, kind: &str, seconds: f64) -> LayerTime {
        LayerTime {
            name: name.into(),
            kind: kind.into(),
            kernel: format!("{kind} kernel"),
            seconds,
            runs: 10,
        }
    }

    #[test]
    fn kinds_are_summed_and_the_slowest_listed_first() {
        let layers = [
            layer("a", "gemm", 0.030),
            layer("b", "depthwise", 0.010),
            layer("c", "gemm", 0.060),
        ];
        let text = render(&layers, 2, 10.5);
        let gemm = text.lines().find(|l| l.starts_with("gemm")).unwrap();
        assert!(gemm.contains("9.000") && gemm.contains("90.0%"), "{text}");
        let listed: Vec<&str> = text
            .lines()
            .filter(|l| l.ends_with(" kernel") && !l.contains("layer: kernel"))
            .collect();
        assert_eq!(listed.len(), 2, "{text}");
        assert!(
            listed[0].contains("c: gemm kernel") && listed[0].contains("6.000"),
            "{text}"
        );
        assert!(listed[1].contains("a: gemm kernel"), "{text}");
    }
}
