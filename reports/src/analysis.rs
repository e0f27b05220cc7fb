//! The metric-versus-latency analysis of a run: one series per backend and thread count (plus
//! the scenario's reference measurements, e.g. the paper's iPhone 12 latencies), one point per
//! model and form, and the rank correlations of latency with FLOPs, params, memory traffic and
//! op count.

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
}

impl Metric {
    pub const ALL: [Metric; 4] = [
        Metric::Flops,
        Metric::Params,
        Metric::MemoryTraffic,
        Metric::Ops,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Flops => "FLOPs",
            Metric::Params => "params",
            Metric::MemoryTraffic => "memory traffic",
            Metric::Ops => "op count",
        }
    }

    /// Axis label with its unit.
    pub fn axis(self) -> &'static str {
        match self {
            Metric::Flops => "GFLOPs per forward pass",
            Metric::Params => "parameters (millions)",
            Metric::MemoryTraffic => "memory traffic (MB per forward pass)",
            Metric::Ops => "ops executed",
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
    pub latency_ms: f64,
}

impl Point {
    pub fn metric(&self, m: Metric) -> f64 {
        match m {
            Metric::Flops => self.gflops,
            Metric::Params => self.mparams,
            Metric::MemoryTraffic => self.traffic_mb,
            Metric::Ops => self.ops,
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
        let name = format!("{} t{}", cell.key.backend, cell.key.threads);
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
