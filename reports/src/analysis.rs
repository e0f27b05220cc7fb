//! The metric-versus-latency analysis of a run: one series per backend and thread count (plus
//! the scenario's reference measurements, e.g. the paper's iPhone 12 latencies), one point per
//! model and form, and the rank correlations of latency with FLOPs, params, memory traffic, op
//! count and a roofline estimate; and the "what this run shows" findings drawn from them.

use std::fmt::Write;

use crate::correlation::{Correlation, MIN_POINTS};
use crate::results::{CellStatus, ResultsFile};

/// A cost metric a point can be placed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Flops,
    Params,
    MemoryTraffic,
    Ops,
    /// max(FLOPs / peak compute, bytes / peak bandwidth) with the machine's probed ceilings
    /// at the series' thread count (the device profile for reference measurements).
    Roofline,
}

impl Metric {
    pub const ALL: [Metric; 5] = [
        Metric::Flops,
        Metric::Params,
        Metric::MemoryTraffic,
        Metric::Ops,
        Metric::Roofline,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Flops => "FLOPs",
            Metric::Params => "params",
            Metric::MemoryTraffic => "memory traffic",
            Metric::Ops => "op count",
            Metric::Roofline => "roofline estimate",
        }
    }

    /// Axis label with its unit.
    pub fn axis(self) -> &'static str {
        match self {
            Metric::Flops => "GFLOPs per forward pass",
            Metric::Params => "parameters (millions)",
            Metric::MemoryTraffic => "memory traffic (MB per forward pass)",
            Metric::Ops => "ops executed",
            Metric::Roofline => "roofline estimate (ms)",
        }
    }
}

/// One model/form: its costs (scaled to the axis units) and latency.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub label: String,
    pub gflops: f64,
    pub mparams: f64,
    pub traffic_mb: f64,
    pub ops: f64,
    pub roofline_ms: f64,
    pub latency_ms: f64,
}

impl Point {
    pub fn metric(&self, m: Metric) -> f64 {
        match m {
            Metric::Flops => self.gflops,
            Metric::Params => self.mparams,
            Metric::MemoryTraffic => self.traffic_mb,
            Metric::Ops => self.ops,
            Metric::Roofline => self.roofline_ms,
        }
    }
}

/// The points of one backend at one thread count, or of the reference measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<Point>,
}

impl Series {
    pub fn correlation(&self, m: Metric) -> Correlation {
        let x: Vec<f64> = self.points.iter().map(|p| p.metric(m)).collect();
        let y: Vec<f64> = self.points.iter().map(|p| p.latency_ms).collect();
        Correlation::of(&x, &y)
    }
}

/// Every series of a run: measured cells by backend and threads (in the order they first
/// appear), then the reference measurements at the costs of the form they were taken in.
pub fn series(results: &ResultsFile) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for cell in &results.cells {
        let (CellStatus::Ok, Some(latency)) = (cell.status, &cell.latency) else {
            continue;
        };
        let name = format!("{} t{}", cell.key.engine(), cell.key.threads);
        let point = Point {
            label: format!(
                "{} {}",
                short_model(&cell.key.model),
                short_form(&cell.key.form)
            ),
            gflops: cell.cost.flops as f64 / 1e9,
            mparams: cell.cost.params as f64 / 1e6,
            traffic_mb: cell.cost.memory_traffic_bytes as f64 / 1e6,
            ops: cell.cost.ops as f64,
            roofline_ms: roofline_ms(
                cell.cost.flops,
                cell.cost.memory_traffic_bytes,
                machine_ceilings(results, cell.key.threads, &cell.key.precision),
            ),
            latency_ms: latency.median_ms,
        };
        match out.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push(point),
            None => out.push(Series {
                name,
                points: vec![point],
            }),
        }
    }
    if let Some(reference) = &results.reference_measurements {
        let mut points = Vec::new();
        for (model, &latency_ms) in &reference.latency_ms {
            let cost = results
                .cells
                .iter()
                .find(|c| &c.key.model == model && c.key.form == reference.form)
                .map(|c| &c.cost);
            if let Some(cost) = cost {
                points.push(Point {
                    label: short_model(model).to_string(),
                    gflops: cost.flops as f64 / 1e9,
                    mparams: cost.params as f64 / 1e6,
                    traffic_mb: cost.memory_traffic_bytes as f64 / 1e6,
                    ops: cost.ops as f64,
                    roofline_ms: roofline_ms(
                        cost.flops,
                        cost.memory_traffic_bytes,
                        results
                            .device_profile
                            .as_ref()
                            .map(|d| (d.peak_gflops, d.memory_gbps)),
                    ),
                    latency_ms,
                });
            }
        }
        if !points.is_empty() {
            out.push(Series {
                name: reference.name.clone(),
                points,
            });
        }
    }
    out
}

/// The probed (GFLOP/s at `precision`, GB/s) of this machine at `threads` (or the nearest
/// probed count).
fn machine_ceilings(results: &ResultsFile, threads: usize, precision: &str) -> Option<(f64, f64)> {
    let peak = results.environment.peak.as_ref()?;
    let nearest = |pairs: &[(usize, f64)]| {
        pairs
            .iter()
            .min_by_key(|(t, _)| t.abs_diff(threads))
            .map(|&(_, v)| v)
    };
    let gflops = nearest(&peak.gflops)? * peak.rate(precision)?;
    Some((gflops, nearest(&peak.gbps)?))
}

/// The roofline time in ms: the slower of compute at peak and traffic at peak bandwidth.
/// Without ceilings it falls back to 100 GFLOP/s and 20 GB/s (the order of one desktop core).
fn roofline_ms(flops: u64, bytes: u64, ceilings: Option<(f64, f64)>) -> f64 {
    let (gflops, gbps) = ceilings.unwrap_or((100.0, 20.0));
    (flops as f64 / (gflops * 1e6)).max(bytes as f64 / (gbps * 1e6))
}

fn short_model(model: &str) -> &str {
    model.strip_prefix("mobileone-").unwrap_or(model)
}

fn short_form(form: &str) -> &str {
    match form {
        "reparameterized" => "reparam",
        other => other,
    }
}

fn coefficient(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:+.2}"))
}

/// The correlation table in Markdown: per series, Spearman rho and Kendall tau of latency
/// against each metric, with the point count; series with too few points are marked.
pub fn markdown_table(results: &ResultsFile) -> String {
    let all = series(results);
    if all.is_empty() {
        return "No measured cells: nothing to correlate.\n".into();
    }
    let mut md = String::from("| series | points |");
    for m in Metric::ALL {
        let _ = write!(md, " {} ρ | {} τ |", m.name(), m.name());
    }
    md.push_str("\n|---|---|");
    md.push_str(&"---|---|".repeat(Metric::ALL.len()));
    md.push('\n');
    let mut too_few = Vec::new();
    for s in &all {
        let _ = write!(md, "| {} | {} |", s.name, s.points.len());
        for m in Metric::ALL {
            let c = s.correlation(m);
            let _ = write!(
                md,
                " {} | {} |",
                coefficient(c.spearman),
                coefficient(c.kendall)
            );
        }
        md.push('\n');
        if s.points.len() < MIN_POINTS {
            too_few.push(s.name.clone());
        }
    }
    if !too_few.is_empty() {
        let _ = writeln!(
            md,
            "\nFewer than {MIN_POINTS} points, too few to conclude anything: {}.",
            too_few.join(", ")
        );
    }
    md
}

/// "What this run shows": sentences generated from the data, each saying only what its
/// numbers say. Per series with enough points, the metric that ranks latency best (and how
/// FLOPs and params do); per series, the models from fastest to slowest, each against the
/// scenario's first model (the baseline of the activation and block studies).
pub fn findings(results: &ResultsFile) -> Vec<String> {
    let mut out = Vec::new();
    for s in series(results) {
        if s.points.len() < MIN_POINTS {
            continue;
        }
        let rho = |m: Metric| s.correlation(m).spearman;
        let best = Metric::ALL
            .into_iter()
            .filter_map(|m| rho(m).map(|r| (m, r)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((best, r)) = best {
            let others: Vec<String> = Metric::ALL
                .into_iter()
                .filter(|&m| m != best)
                .map(|m| format!("{} {}", m.name(), coefficient(rho(m))))
                .collect();
            out.push(format!(
                "{}: {} ranks latency best of the five metrics (Spearman ρ {}, {} points); the others: {}.",
                s.name,
                best.name(),
                coefficient(Some(r)),
                s.points.len(),
                others.join(", ")
            ));
        }
    }
    let baseline = results.cells.first().map(|c| c.key.model.clone());
    for s in series(results) {
        if s.points.len() < 2 {
            continue;
        }
        let mut points = s.points.clone();
        points.sort_by(|a, b| a.latency_ms.total_cmp(&b.latency_ms));
        let base = baseline.as_deref().and_then(|b| {
            s.points
                .iter()
                .find(|p| p.label.starts_with(short_model(b)))
                .map(|p| p.latency_ms)
        });
        let ranked: Vec<String> = points
            .iter()
            .map(|p| match base {
                Some(b) if b > 0.0 => format!(
                    "{} {:.3} ms ({:+.0}%)",
                    p.label,
                    p.latency_ms,
                    (p.latency_ms / b - 1.0) * 100.0
                ),
                _ => format!("{} {:.3} ms", p.label, p.latency_ms),
            })
            .collect();
        let against = match (&baseline, base) {
            (Some(b), Some(_)) => format!(" (percentages against {})", short_model(b)),
            _ => String::new(),
        };
        out.push(format!(
            "{}, fastest to slowest{against}: {}.",
            s.name,
            ranked.join(", ")
        ));
    }
    out.extend(crate::quantization::findings(&results.cells));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(gflops: f64, latency_ms: f64) -> Point {
        Point {
            label: "x".into(),
            gflops,
            mparams: 1.0,
            traffic_mb: gflops * 2.0,
            ops: 10.0,
            roofline_ms: gflops,
            latency_ms,
        }
    }

    #[test]
    fn a_series_correlates_each_metric() {
        let s = Series {
            name: "native t1".into(),
            points: (1..=6).map(|i| point(i as f64, (i * i) as f64)).collect(),
        };
        let flops = s.correlation(Metric::Flops);
        assert_eq!(flops.points, 6);
        assert_eq!(flops.spearman, Some(1.0));
        assert_eq!(flops.kendall, Some(1.0));
        // Constant params and ops: no coefficient.
        assert_eq!(s.correlation(Metric::Params).spearman, None);
        assert_eq!(s.correlation(Metric::Ops).kendall, None);
    }
}
