//! Renderings of a results file that need no plots: the compact terminal table, results.csv
//! and the Markdown summary (the reports issue adds plots and HTML beside it).

use std::fmt::Write;

use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Alignment, Style};

use crate::results::{CellResult, CellStatus, LatencySummary, ResultsFile};

/// A latency in milliseconds as every table shows it.
pub fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// A fraction of the machine's peak as shown in every table; above 100% it carries a `!`
/// (the run's warnings say why and how to refresh the probed peak).
pub fn peak_label(fraction: f64) -> String {
    if fraction > 1.0 {
        format!("{:.0}%!", fraction * 100.0)
    } else {
        format!("{:.0}%", fraction * 100.0)
    }
}

/// The between-process column: how many processes took the samples and how far apart their
/// medians are (max/min - 1), `MULTIMODAL` when they form separate modes; `-` for one process.
pub fn processes_label(c: &CellResult) -> String {
    match &c.processes {
        Some(p) => format!(
            "{}: {:.1}%{}",
            p.medians_ms.len(),
            p.spread * 100.0,
            if p.multimodal { " MULTIMODAL" } else { "" }
        ),
        None => "-".into(),
    }
}

fn row(c: &CellResult) -> Vec<String> {
    let key = &c.key;
    let mut cells = vec![
        key.model.clone(),
        key.form.clone(),
        key.backend.clone(),
        key.precision.clone(),
        key.threads.to_string(),
    ];
    match &c.latency {
        Some(l) if c.status == CellStatus::Ok => cells.extend([
            ms(l.median_ms),
            ms(l.p90_ms),
            format!("±{:.1}%", l.ci95_relative * 100.0),
            processes_label(c),
            l.samples.to_string(),
            format!("{:.1}", c.achieved_gflops),
            c.fraction_of_peak.map_or("-".into(), peak_label),
            format!("{:.1}", c.achieved_gbps),
            format!("{:.0}", c.resident_bytes as f64 / (1u64 << 20) as f64),
        ]),
        _ => cells.extend(std::iter::repeat_n("-".to_string(), 9)),
    }
    cells.push(error_label(c));
    let note = match (&c.status, &c.reason) {
        (CellStatus::Ok, _) => c.warnings.join("; "),
        (status, Some(reason)) => format!("{status}: {reason}"),
        (status, None) => status.to_string(),
    };
    cells.push(note);
    cells
}

/// The cell's relative L2 error against the float64 reference, as the tables show it.
pub fn error_label(c: &CellResult) -> String {
    c.verification
        .as_ref()
        .map_or("-".into(), |v| format!("{:.1e}", v.relative_l2))
}

const HEADER: [&str; 16] = [
    "model",
    "form",
    "backend",
    "precision",
    "threads",
    "median ms",
    "p90 ms",
    "95% CI",
    "processes: spread",
    "runs",
    "GFLOP/s",
    "of peak",
    "GB/s",
    "resident MiB",
    "error vs f64",
    "note",
];

/// The compact table printed at the end of a run.
pub fn terminal_table(results: &ResultsFile) -> String {
    let mut b = Builder::default();
    b.push_record(HEADER);
    for c in &results.cells {
        b.push_record(row(c));
    }
    let mut table = b.build();
    table.with(Style::rounded());
    table.modify(Columns::new(4..15), Alignment::right());
    let mut out = table.to_string();
    for s in &results.speedups {
        let _ = write!(
            out,
            "\nreparameterization speedup {} {} t{}: {} ({} -> {} ms)",
            s.model,
            crate::results::engine_label(&s.backend, &s.precision),
            s.threads,
            s.label(),
            ms(s.unfused_ms),
            ms(s.reparameterized_ms)
        );
    }
    out
}

/// results.csv: one row per cell, the summary statistics in columns (raw samples stay in JSON).
pub fn csv(results: &ResultsFile) -> String {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_COLUMNS.map(|(name, _)| name))
        .expect("in-memory csv");
    for c in &results.cells {
        w.write_record(CSV_COLUMNS.map(|(_, value)| value(c)))
            .expect("in-memory csv");
    }
    String::from_utf8(w.into_inner().expect("in-memory csv")).expect("utf-8")
}

/// A latency statistic for the CSV: six decimals, empty for a cell without latencies.
fn csv_ms(c: &CellResult, pick: fn(&LatencySummary) -> f64) -> String {
    c.latency
        .as_ref()
        .map_or(String::new(), |l| format!("{:.6}", pick(l)))
}

type CsvColumn = (&'static str, fn(&CellResult) -> String);

/// The CSV's columns: each one's name and its value for a cell.
const CSV_COLUMNS: [CsvColumn; 30] = [
    ("model", |c| c.key.model.clone()),
    ("form", |c| c.key.form.clone()),
    ("backend", |c| c.key.backend.clone()),
    ("precision", |c| c.key.precision.clone()),
    ("threads", |c| c.key.threads.to_string()),
    ("batch", |c| c.key.batch.to_string()),
    ("height", |c| c.key.height.to_string()),
    ("width", |c| c.key.width.to_string()),
    ("status", |c| c.status.to_string()),
    ("relative_l2", |c| {
        c.verification
            .as_ref()
            .map_or(String::new(), |v| v.relative_l2.to_string())
    }),
    ("tolerance", |c| {
        c.verification
            .as_ref()
            .map_or(String::new(), |v| v.tolerance.to_string())
    }),
    ("median_ms", |c| csv_ms(c, |l| l.median_ms)),
    ("mean_ms", |c| csv_ms(c, |l| l.mean_ms)),
    ("min_ms", |c| csv_ms(c, |l| l.min_ms)),
    ("p10_ms", |c| csv_ms(c, |l| l.p10_ms)),
    ("p90_ms", |c| csv_ms(c, |l| l.p90_ms)),
    ("p99_ms", |c| csv_ms(c, |l| l.p99_ms)),
    ("ci95_low_ms", |c| csv_ms(c, |l| l.ci95_ms[0])),
    ("ci95_high_ms", |c| csv_ms(c, |l| l.ci95_ms[1])),
    ("samples", |c| {
        c.latency.as_ref().map_or(0, |l| l.samples).to_string()
    }),
    ("processes", |c| {
        c.processes
            .as_ref()
            .map_or(1, |p| p.medians_ms.len())
            .to_string()
    }),
    ("process_spread", |c| {
        c.processes
            .as_ref()
            .map_or(String::new(), |p| format!("{:.6}", p.spread))
    }),
    ("multimodal", |c| {
        c.processes
            .as_ref()
            .is_some_and(|p| p.multimodal)
            .to_string()
    }),
    ("gflops", |c| format!("{:.3}", c.achieved_gflops)),
    ("gbps", |c| format!("{:.3}", c.achieved_gbps)),
    ("params", |c| c.cost.params.to_string()),
    ("macs", |c| c.cost.macs.to_string()),
    ("flops", |c| c.cost.flops.to_string()),
    ("memory_traffic_bytes", |c| {
        c.cost.memory_traffic_bytes.to_string()
    }),
    ("reason", |c| c.reason.clone().unwrap_or_default()),
];

/// The header every report starts with: scenario, date, machine, OS, build, commit, rustc,
/// backends, order and duration, as (label, value) pairs.
pub fn header_facts(results: &ResultsFile) -> Vec<(&'static str, String)> {
    let e = &results.environment;
    vec![
        ("date", results.started_at.clone()),
        (
            "scenario",
            format!(
                "`{}` (sha256 {}…)",
                results.scenario.path,
                &results.scenario.sha256[..12.min(results.scenario.sha256.len())]
            ),
        ),
        (
            "machine",
            format!(
                "{}, {} logical cores, {:.1} GiB",
                e.cpu,
                e.logical_cores,
                e.memory_bytes as f64 / (1u64 << 30) as f64
            ),
        ),
        ("os", format!("{} (kernel {})", e.os, e.kernel)),
        (
            "build",
            format!(
                "{} profile, opt-level {}, debug assertions {}",
                e.build_profile,
                e.opt_level,
                if e.debug_assertions { "on" } else { "off" }
            ),
        ),
        ("commit", e.git_commit.clone()),
        ("rustc", e.rustc.clone()),
        (
            "backends",
            e.backends
                .iter()
                .map(|b| match &b.device {
                    Some(device) => {
                        format!("{} {} ({}, on {device})", b.name, b.version, b.availability)
                    }
                    None => format!("{} {} ({})", b.name, b.version, b.availability),
                })
                .collect::<Vec<_>>()
                .join("; "),
        ),
        ("order", results.scenario.order.clone()),
        (
            "duration",
            format!(
                "{:.1} s{}",
                results.duration_s,
                if results.interrupted {
                    " (interrupted)"
                } else {
                    ""
                }
            ),
        ),
    ]
}

/// Header of the GPU table.
pub const GPU_HEADER: [&str; 6] = [
    "model",
    "form",
    "backend and precision",
    "device (adapter, API, driver)",
    "wall median ms",
    "GPU median ms",
];

/// One row per measured cell that ran on a GPU: the adapter it ran on, its wall-clock median
/// (upload, kernels, readback) and its GPU median by timestamp queries (kernels only).
pub fn gpu_rows(results: &ResultsFile) -> Vec<[String; 6]> {
    results
        .cells
        .iter()
        .filter_map(|c| {
            let device = c.device.clone()?;
            Some([
                c.key.model.clone(),
                c.key.form.clone(),
                c.key.engine(),
                device,
                c.median_ms().map_or("-".into(), ms),
                c.gpu_median_ms.map_or("no timestamps".into(), ms),
            ])
        })
        .collect()
}

/// The columns of the engines-side-by-side table.
pub const ENGINES_HEADER: [&str; 8] = [
    "model",
    "form",
    "threads",
    "engine",
    "median ms",
    "95% CI ms",
    "/ native",
    "fastest",
];

/// The engines side by side: for each model, form, thread count and input where two or more
/// engines (backend and precision) measured, one row per engine with its median and 95% CI,
/// its ratio to native fp32 (below 1: faster than ours) and the fastest engine marked.
pub fn engines_rows(cells: &[CellResult]) -> Vec<[String; 8]> {
    let measured: Vec<(&CellResult, &LatencySummary)> = cells
        .iter()
        .filter(|c| c.status == CellStatus::Ok && c.implausible().is_none())
        .filter_map(|c| Some((c, c.latency.as_ref()?)))
        .collect();
    let group_of = |c: &CellResult| {
        let k = &c.key;
        (
            k.model.clone(),
            k.form.clone(),
            k.threads,
            k.batch,
            k.height,
            k.width,
        )
    };
    let mut groups: Vec<_> = measured.iter().map(|(c, _)| group_of(c)).collect();
    groups.dedup();
    let mut seen = std::collections::BTreeSet::new();
    groups.retain(|g| seen.insert(g.clone()));
    let mut rows = Vec::new();
    for group in groups {
        let members: Vec<_> = measured
            .iter()
            .filter(|(c, _)| group_of(c) == group)
            .collect();
        if members.len() < 2 {
            continue;
        }
        let native = members
            .iter()
            .find(|(c, _)| c.key.backend == "native" && c.key.precision == "fp32")
            .map(|(_, l)| l.median_ms);
        let fastest = members
            .iter()
            .map(|(_, l)| l.median_ms)
            .fold(f64::INFINITY, f64::min);
        // The fastest is a tie when its CI reaches into another engine's.
        let overlaps = |best: &LatencySummary| {
            members
                .iter()
                .any(|(_, l)| l.median_ms != fastest && l.ci95_ms[0] <= best.ci95_ms[1])
        };
        for (c, l) in &members {
            rows.push([
                c.key.model.clone(),
                c.key.form.clone(),
                c.key.threads.to_string(),
                c.key.engine(),
                ms(l.median_ms),
                format!("{}–{}", ms(l.ci95_ms[0]), ms(l.ci95_ms[1])),
                native.map_or("-".into(), |n| format!("{:.2}", l.median_ms / n)),
                match (l.median_ms == fastest, overlaps(l)) {
                    (false, _) => String::new(),
                    (true, false) => "fastest".into(),
                    (true, true) => "fastest (CIs overlap)".into(),
                },
            ]);
        }
    }
    rows
}

/// The Markdown summary: header (scenario, machine, build), warnings, the cell table, speedups.
pub fn markdown(results: &ResultsFile) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# onebench: {}\n", results.scenario.name);
    for w in &results.warnings {
        let _ = writeln!(md, "> **Warning:** {w}\n");
    }
    let _ = writeln!(md, "| | |\n|---|---|");
    let facts = header_facts(results);
    for (k, v) in facts {
        let _ = writeln!(md, "| {k} | {} |", v.replace('|', "\\|"));
    }
    let _ = writeln!(
        md,
        "\n## Latency\n\n| {} |\n|{}",
        HEADER.join(" | "),
        "---|".repeat(HEADER.len())
    );
    for c in &results.cells {
        let _ = writeln!(
            md,
            "| {} |",
            row(c)
                .iter()
                .map(|s| s.replace('|', "\\|"))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    if !results.speedups.is_empty() {
        let _ = writeln!(md, "\n## Reparameterization speedup (unfused / reparameterized median)\n\n| model | backend | precision | threads | unfused ms | reparameterized ms | speedup |\n|---|---|---|---|---|---|---|");
        for s in &results.speedups {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                s.model,
                s.backend,
                s.precision,
                s.threads,
                ms(s.unfused_ms),
                ms(s.reparameterized_ms),
                s.label()
            );
        }
    }
    let engines = engines_rows(&results.cells);
    if !engines.is_empty() {
        let _ = writeln!(
            md,
            "\n## Engines side by side\n\nEvery engine that measured the same model, form and thread count: its median with the 95% CI, its ratio to native fp32 (below 1: faster than native), the fastest marked (a tie when its 95% CI overlaps another engine's).\n\n| {} |\n|{}",
            ENGINES_HEADER.join(" | "),
            "---|".repeat(ENGINES_HEADER.len())
        );
        for r in engines {
            let _ = writeln!(md, "| {} |", r.map(|s| s.replace('|', "\\|")).join(" | "));
        }
    }
    let gpu = gpu_rows(results);
    if !gpu.is_empty() {
        let _ = writeln!(
            md,
            "\n## GPU\n\nWall time is what the latency table reports (input upload, kernels, readback, synchronized); GPU time is the compute pass alone, by timestamp queries.\n\n| {} |\n|{}",
            GPU_HEADER.join(" | "),
            "---|".repeat(GPU_HEADER.len())
        );
        for r in gpu {
            let _ = writeln!(md, "| {} |", r.map(|s| s.replace('|', "\\|")).join(" | "));
        }
    }
    let int8 = crate::quantization::rows(&results.cells);
    if !int8.is_empty() {
        let _ = writeln!(
            md,
            "\n## int8 and reparameterization\n\nBoth forms quantized the same way (min/max activation ranges on the calibration inputs, per-channel int8 weights, batch norms folded into their convs; the unfused form branch by branch): the int8 error against float64, code for code with the quantized reference, and why the forms differ: the layer whose typical weight gets the fewest int8 codes (each channel's RMS code, median over channels, of 127: a folded kernel dominated by its centre tap leaves the others few) and the widest activation range.\n\n| {} |\n|{}",
            crate::quantization::HEADER.join(" | "),
            "---|".repeat(crate::quantization::HEADER.len())
        );
        for r in int8 {
            let _ = writeln!(md, "| {} |", r.map(|s| s.replace('|', "\\|")).join(" | "));
        }
    }
    if let Some(r) = &results.reference_measurements {
        let _ = writeln!(
            md,
            "\n## Reference measurements: {} ({})\n\n| model | latency ms |\n|---|---|",
            r.name, r.form
        );
        for (m, v) in &r.latency_ms {
            let _ = writeln!(md, "| {m} | {v} |");
        }
    }
    let _ = writeln!(
        md,
        "\n## Metric versus latency\n\nRank correlation of median latency with each cost metric, one point per model and form: Spearman ρ and Kendall τ-b (ties corrected); 1 = same order, 0 = unrelated.\n"
    );
    md.push_str(&crate::analysis::markdown_table(results));
    let findings = crate::analysis::findings(results);
    if !findings.is_empty() {
        md.push_str("\n## What this run shows\n\nGenerated from the measurements above; a correlation needs at least five points.\n\n");
        for f in findings {
            let _ = writeln!(md, "- {f}");
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::CellKey;

    fn cell(backend: &str, threads: usize, median: f64, ci: [f64; 2]) -> CellResult {
        let key = CellKey {
            model: "mobileone-s0".into(),
            form: "reparameterized".into(),
            backend: backend.into(),
            precision: "fp32".into(),
            threads,
            batch: 1,
            height: 224,
            width: 224,
        };
        let mut c = CellResult::unmeasured(key, Default::default());
        c.status = CellStatus::Ok;
        c.latency = Some(LatencySummary {
            samples: 10,
            median_ms: median,
            mean_ms: median,
            min_ms: ci[0],
            max_ms: ci[1],
            p10_ms: ci[0],
            p90_ms: ci[1],
            p99_ms: ci[1],
            iqr_ms: ci[1] - ci[0],
            std_dev_ms: 0.1,
            ci95_ms: ci,
            ci95_relative: (ci[1] - ci[0]) / 2.0 / median,
            outliers_mild: 0,
            outliers_severe: 0,
        });
        c
    }

    #[test]
    fn engines_are_compared_within_a_cell_with_ratios_to_native_and_the_fastest_marked() {
        let cells = [
            cell("native", 1, 2.0, [1.9, 2.1]),
            cell("ort", 1, 1.0, [0.9, 1.1]),
            cell("candle", 1, 4.0, [3.0, 5.0]),
            // Two threads: a tie, and one engine alone at 3 threads (no comparison).
            cell("native", 2, 1.0, [0.9, 1.2]),
            cell("ort", 2, 1.1, [1.0, 1.3]),
            cell("ort", 3, 0.8, [0.7, 0.9]),
        ];
        let rows = engines_rows(&cells);
        let shown: Vec<[&str; 4]> = rows
            .iter()
            .map(|r| [r[2].as_str(), r[3].as_str(), r[6].as_str(), r[7].as_str()])
            .collect();
        assert_eq!(
            shown,
            [
                ["1", "native", "1.00", ""],
                ["1", "ort", "0.50", "fastest"],
                ["1", "candle", "2.00", ""],
                ["2", "native", "1.00", "fastest (CIs overlap)"],
                ["2", "ort", "1.10", ""],
            ]
        );
        assert_eq!(
            rows[1][4..6],
            ["1.000".to_string(), "0.900–1.100".to_string()]
        );
    }
}
