//! The self-contained HTML report: one file, plots inline as SVG, no scripts, no network.
//! Header (scenario, machine, build, backends, commit), warnings, the summary table, the
//! reparameterization speedups, every plot, and the metric-versus-latency correlation table.

use std::fmt::Write;

use crate::analysis::{series, Metric};
use crate::correlation::MIN_POINTS;
use crate::overlay::escape;
use crate::plots;
use crate::results::{CellStatus, ResultsFile};

pub const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}
.warning{background:#fff3cd;border:1px solid #e0c060;padding:0.5em 1em;margin:0.5em 0}
figure{margin:1.5em 0}figcaption{font-weight:bold;margin-bottom:0.3em}";

/// The whole report as one HTML document.
pub fn html(results: &ResultsFile) -> String {
    let mut h = String::new();
    let title = format!("onebench: {}", results.scenario.name);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    for w in &results.warnings {
        let _ = writeln!(h, "<div class=\"warning\">Warning: {}</div>", escape(w));
    }
    let facts = crate::summary::header_facts(results);
    h.push_str("<table>\n");
    for (k, v) in facts {
        let _ = writeln!(h, "<tr><th>{k}</th><td>{}</td></tr>", escape(&v));
    }
    h.push_str("</table>\n");
    summary_table(&mut h, results);
    if !results.speedups.is_empty() {
        h.push_str("<h2>Reparameterization speedup</h2>\n<table><tr><th>model</th><th>backend</th><th>precision</th><th>threads</th><th>unfused ms</th><th>reparameterized ms</th><th>speedup</th></tr>\n");
        for s in &results.speedups {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td></tr>",
                escape(&s.model),
                escape(&s.backend),
                escape(&s.precision),
                s.threads,
                s.unfused_ms,
                s.reparameterized_ms,
                escape(&s.label())
            );
        }
        h.push_str("</table>\n");
    }
    engines_table(&mut h, results);
    let gpu = crate::summary::gpu_rows(results);
    if !gpu.is_empty() {
        h.push_str("<h2>GPU</h2>\n<p>Wall time (upload, kernels, readback, synchronized) against GPU time (the compute pass alone, by timestamp queries).</p>\n<table><tr>");
        for head in crate::summary::GPU_HEADER {
            let _ = write!(h, "<th>{}</th>", escape(head));
        }
        h.push_str("</tr>\n");
        for r in gpu {
            h.push_str("<tr>");
            for cell in r {
                let _ = write!(h, "<td>{}</td>", escape(&cell));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n");
    }
    int8_table(&mut h, results);
    let findings = crate::analysis::findings(results);
    if !findings.is_empty() {
        h.push_str("<h2>What this run shows</h2>\n<ul>\n");
        for f in findings {
            let _ = writeln!(h, "<li>{}</li>", escape(&f));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("<h2>Plots</h2>\n");
    let left_out = plots::left_out(results);
    if !left_out.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"warning\">Left out of the plots, their numbers being implausible (corrupt or edited data): {}</p>",
            escape(&left_out.join("; "))
        );
    }
    for p in plots::all(results) {
        let _ = writeln!(
            h,
            "<figure class=\"plot\" id=\"{}\"><figcaption>{}</figcaption>\n{}\n</figure>",
            escape(&p.id),
            escape(&p.title),
            p.svg
        );
    }
    correlation_table(&mut h, results);
    h.push_str("</body></html>\n");
    h
}

/// The int8 study (`quantization::rows`) and its findings.
fn int8_table(h: &mut String, results: &ResultsFile) {
    let rows = crate::quantization::rows(&results.cells);
    if rows.is_empty() {
        return;
    }
    h.push_str("<h2>int8 and reparameterization</h2>\n<p>Both forms quantized the same way (min/max ranges, per-channel int8 weights, batch norms folded; the unfused form branch by branch): the int8 error against float64, and what explains it: the layer whose typical weight gets the fewest int8 codes (per-channel RMS, median over channels, of 127) and the widest activation range.</p>\n<table><tr>");
    for head in crate::quantization::HEADER {
        let _ = write!(h, "<th>{}</th>", escape(head));
    }
    h.push_str("</tr>\n");
    for r in rows {
        h.push_str("<tr>");
        for cell in r {
            let _ = write!(h, "<td>{}</td>", escape(&cell));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}

/// The engines side by side (`summary::engines_rows`), the fastest row in bold.
fn engines_table(h: &mut String, results: &ResultsFile) {
    let rows = crate::summary::engines_rows(&results.cells);
    if rows.is_empty() {
        return;
    }
    h.push_str("<h2>Engines side by side</h2>\n<p>Every engine that measured the same model, form and thread count: its median with the 95% CI, its ratio to native fp32 (below 1: faster than native), the fastest in bold (a tie when its 95% CI overlaps another engine's).</p>\n<table id=\"engines\"><tr>");
    for head in crate::summary::ENGINES_HEADER {
        let _ = write!(h, "<th>{}</th>", escape(head));
    }
    h.push_str("</tr>\n");
    for r in rows {
        let bold = !r[7].is_empty();
        h.push_str(if bold {
            "<tr class=\"fastest\">"
        } else {
            "<tr>"
        });
        for cell in r {
            let cell = escape(&cell);
            let _ = match bold {
                true => write!(h, "<td><strong>{cell}</strong></td>"),
                false => write!(h, "<td>{cell}</td>"),
            };
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}

fn summary_table(h: &mut String, results: &ResultsFile) {
    h.push_str("<h2>Latency</h2>\n<table><tr><th>model</th><th>form</th><th>backend</th><th>precision</th><th>threads</th><th>median ms</th><th>p90 ms</th><th>95% CI ms</th><th>processes: spread</th><th>GFLOP/s</th><th>of peak</th><th>GB/s</th><th>resident MiB</th><th>error vs f64</th><th>note</th></tr>\n");
    for c in &results.cells {
        let k = &c.key;
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            escape(&k.model),
            escape(&k.form),
            escape(&k.backend),
            escape(&k.precision),
            k.threads
        );
        let error = crate::summary::error_label(c);
        match (&c.latency, c.status) {
            (Some(l), CellStatus::Ok) => {
                let _ = writeln!(
                    h,
                    "<td>{:.3}</td><td>{:.3}</td><td>{:.3}–{:.3}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
                    l.median_ms,
                    l.p90_ms,
                    l.ci95_ms[0],
                    l.ci95_ms[1],
                    escape(&crate::summary::processes_label(c)),
                    c.achieved_gflops,
                    c.fraction_of_peak
                        .map_or("-".into(), crate::summary::peak_label),
                    c.achieved_gbps,
                    c.resident_bytes as f64 / (1u64 << 20) as f64,
                    error,
                    escape(&c.warnings.join("; "))
                );
            }
            _ => {
                let _ = writeln!(
                    h,
                    "<td colspan=\"8\"></td><td>{error}</td><td>{}: {}</td></tr>",
                    c.status,
                    escape(c.reason.as_deref().unwrap_or(""))
                );
            }
        }
    }
    h.push_str("</table>\n");
}

fn correlation_table(h: &mut String, results: &ResultsFile) {
    h.push_str("<h2>Metric versus latency</h2>\n<p>Rank correlation of median latency with each cost metric, one point per model and form: Spearman ρ / Kendall τ-b (ties corrected), and Pearson r of the logarithms.</p>\n<table id=\"correlations\"><tr><th>series</th><th>points</th>");
    for m in Metric::ALL {
        let _ = write!(h, "<th>{} ρ / τ / r(log)</th>", m.name());
    }
    h.push_str("</tr>\n");
    let fmt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:+.2}"));
    for s in series(results) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}{}</td>",
            escape(&s.name),
            s.points.len(),
            if s.points.len() < MIN_POINTS {
                " (too few to conclude)"
            } else {
                ""
            }
        );
        for m in Metric::ALL {
            let c = s.correlation(m);
            let _ = write!(
                h,
                "<td>{} / {} / {}</td>",
                fmt(c.spearman),
                fmt(c.kendall),
                fmt(c.pearson_log)
            );
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}
