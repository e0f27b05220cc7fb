//! The report's plots, drawn with plotters into SVG strings (inlined by the HTML report):
//! latency per model and backend with interval whiskers, reparameterization speedup, latency
//! distributions from the raw samples, metric-versus-latency scatter plots with their rank
//! correlations, and the roofline. Every axis is labelled with its unit.

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::analysis::{series, Metric};
use crate::results::{shown_ms, CellResult, CellStatus, ResultsFile, Speedup};
use crate::stats::quantile;

const SIZE: (u32, u32) = (900, 480);

/// A plot of the report: an id for the page, a title and its SVG.
#[derive(Debug, Clone, PartialEq)]
pub struct Plot {
    pub id: String,
    pub title: String,
    pub svg: String,
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Why a plot was not drawn.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlotError {
    /// The results hold nothing this plot shows (e.g. no per-layer times).
    #[error("nothing to plot: {0}")]
    NoData(&'static str),
    /// plotters failed to draw.
    #[error("drawing failed: {0}")]
    Drawing(String),
}

fn drawing(e: impl std::fmt::Display) -> PlotError {
    PlotError::Drawing(e.to_string())
}

/// Draws into a fresh SVG string.
fn svg(draw: impl FnOnce(&Area) -> Result<(), PlotError>) -> Result<String, PlotError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        draw(&root)?;
        root.present().map_err(drawing)?;
    }
    Ok(out)
}

fn color(i: usize) -> RGBColor {
    let c = Palette99::pick(i).to_rgba();
    RGBColor(c.0, c.1, c.2)
}

/// The measured cells the plots draw: those with plausible latencies (`left_out` lists the
/// others, for the report's note).
fn ok_cells(results: &ResultsFile) -> Vec<&CellResult> {
    results
        .cells
        .iter()
        .filter(|c| c.status == CellStatus::Ok && c.latency.is_some() && c.implausible().is_none())
        .collect()
}

/// Measured cells and speedups left out of every plot, each with why (a corrupt or
/// hand-edited file).
pub fn left_out(results: &ResultsFile) -> Vec<String> {
    let cells = results
        .cells
        .iter()
        .filter(|c| c.status == CellStatus::Ok)
        .filter_map(|c| c.implausible().map(|why| format!("{}: {why}", c.key)));
    let speedups = results.speedups.iter().filter(|s| !s.plausible()).map(|s| {
        format!(
            "the speedup of {} {}: {} (from {} and {} ms)",
            s.model,
            speedup_series(s),
            s.speedup,
            shown_ms(s.unfused_ms),
            shown_ms(s.reparameterized_ms)
        )
    });
    cells.chain(speedups).collect()
}

/// The most decades a log axis spans: beyond that, the smallest values are clipped (a value
/// of 1e200 among milliseconds would otherwise make hundreds of decades of ticks).
const MAX_DECADES: f64 = 12.0;

fn unique<T: PartialEq + Clone>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// Log-axis range padded by a factor on both sides.
fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| *v > 0.0 && *v < 1e200)
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        (0.1, 10.0)
    } else {
        let lo = lo.max(hi / 10f64.powf(MAX_DECADES));
        (lo / 1.5, hi * 1.5)
    }
}

/// A log y range with room above the data for the legend (drawn in the upper corner): the
/// data keep the lower 60% of the axis.
fn log_range_with_legend_room(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = log_range(values);
    (lo, hi * (hi / lo).powf(0.66))
}

/// The label of a category axis at `x`: category i's label at its centre (i + 0.5), nothing
/// elsewhere (bars span [i, i + 1)).
fn category_label(labels: &[String], x: f64) -> String {
    if (x - x.floor() - 0.5).abs() < 1e-9 {
        labels.get(x.floor() as usize).cloned().unwrap_or_default()
    } else {
        String::new()
    }
}

/// Axes over categories `0..categories` on x (category i labelled at its centre from
/// `labels`; none when `labels` is empty) and `y`, with the caption and the axis descriptions.
fn category_chart<'a, 'b, Y>(
    root: &'a Area<'b>,
    caption: (&str, u32),
    (categories, labels): (usize, &[String]),
    y: Y,
    (x_desc, y_desc): (&str, &str),
) -> Result<CategoryChart<'a, 'b, Y::CoordDescType>, PlotError>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(caption.0, ("sans-serif", caption.1))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..categories as f64, y)
        .map_err(drawing)?;
    let label_of = |x: &f64| category_label(labels, *x);
    let ticks = if labels.is_empty() {
        0
    } else {
        categories * 2 + 1
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(ticks)
        .x_label_formatter(&label_of)
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(drawing)?;
    Ok(chart)
}

type CategoryChart<'a, 'b, Y> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y>>;

/// Every plot the results support, in the report's order. Cells and speedups with
/// implausible numbers are left out first (`left_out` names them): plotters maps values to
/// pixel coordinates, which absurd values overflow.
pub fn all(results: &ResultsFile) -> Vec<Plot> {
    let mut plottable = results.clone();
    plottable
        .cells
        .retain(|c| c.status != CellStatus::Ok || c.implausible().is_none());
    plottable.speedups.retain(Speedup::plausible);
    all_plottable(&plottable)
}

fn all_plottable(results: &ResultsFile) -> Vec<Plot> {
    let mut plots = Vec::new();
    let mut push = |id: &str, title: String, drawn: Result<String, PlotError>| {
        if let Ok(svg) = drawn {
            plots.push(Plot {
                id: id.into(),
                title,
                svg,
            });
        }
    };
    let threads = unique(ok_cells(results).iter().map(|c| c.key.threads));
    for t in threads {
        push(
            &format!("latency-t{t}"),
            format!("Latency per model, {t} thread(s)"),
            latency_bars(results, t),
        );
    }
    if !results.speedups.is_empty() {
        push(
            "speedup",
            "Reparameterization speedup".into(),
            speedup_bars(results),
        );
    }
    push(
        "distributions",
        "Latency distributions".into(),
        distributions(results),
    );
    for m in Metric::ALL {
        push(
            &format!("scatter-{}", m.name().replace(' ', "-")),
            format!("{} versus latency", m.name()),
            scatter(results, m),
        );
    }
    push("roofline", "Roofline".into(), roofline(results));
    if ok_cells(results).iter().any(|c| !c.layers.is_empty()) {
        push(
            "layers-by-kind",
            "Per-layer breakdown by op kind".into(),
            layers_by_kind(results),
        );
        push(
            "top-layers",
            "The 10 slowest layers".into(),
            top_layers(results),
        );
    }
    plots
}

fn short_cell(c: &CellResult) -> String {
    format!(
        "{} {} {} t{}",
        c.key.model.trim_start_matches("mobileone-"),
        short(&c.key.form),
        c.key.engine(),
        c.key.threads
    )
}

/// Stacked bars, one per cell that reports per-layer times: milliseconds per run by op kind.
pub fn layers_by_kind(results: &ResultsFile) -> Result<String, PlotError> {
    let cells: Vec<&CellResult> = ok_cells(results)
        .into_iter()
        .filter(|c| !c.layers.is_empty())
        .collect();
    if cells.is_empty() {
        return Err(PlotError::NoData("no per-layer times"));
    }
    let kinds = unique(
        cells
            .iter()
            .flat_map(|c| c.layers.iter().map(|l| l.kind.clone())),
    );
    let top = cells
        .iter()
        .map(|c| c.layers.iter().map(|l| l.ms).sum::<f64>())
        .fold(0.0, f64::max)
        * 1.6;
    svg(|root| {
        let labels: Vec<String> = cells.iter().map(|c| short_cell(c)).collect();
        let mut chart = category_chart(
            root,
            ("Time per run by op kind (separate profiling plan)", 20),
            (cells.len(), &labels),
            0f64..top.max(1e-3),
            ("cell (model, form, backend, threads)", "ms per run"),
        )?;
        for (k, kind) in kinds.iter().enumerate() {
            let bars: Vec<_> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let below: f64 = kinds[..k].iter().map(|kk| kind_ms(c, kk)).sum();
                    let here = kind_ms(c, kind);
                    Rectangle::new(
                        [(i as f64 + 0.15, below), (i as f64 + 0.85, below + here)],
                        color(k).filled(),
                    )
                })
                .collect();
            chart
                .draw_series(bars)
                .map_err(drawing)?
                .label(kind.clone())
                .legend(move |p| swatch(p, k));
        }
        legend_at(&mut chart, SeriesLabelPosition::UpperRight)
    })
}

fn kind_ms(c: &CellResult, kind: &str) -> f64 {
    c.layers
        .iter()
        .filter(|l| l.kind == kind)
        .map(|l| l.ms)
        .sum()
}

/// Horizontal bars: the 10 slowest layers of the slowest cell that reports per-layer times.
pub fn top_layers(results: &ResultsFile) -> Result<String, PlotError> {
    let cell = ok_cells(results)
        .into_iter()
        .filter(|c| !c.layers.is_empty())
        .max_by(|a, b| {
            let total = |c: &CellResult| c.layers.iter().map(|l| l.ms).sum::<f64>();
            total(a).total_cmp(&total(b))
        })
        .ok_or(PlotError::NoData("no per-layer times"))?;
    let mut layers: Vec<_> = cell.layers.iter().collect();
    layers.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    layers.truncate(10);
    let top = layers.first().map_or(1.0, |l| l.ms) * 1.1;
    let kinds = unique(cell.layers.iter().map(|l| l.kind.clone()));
    svg(|root| {
        let names: Vec<String> = layers
            .iter()
            .map(|l| {
                let name: String = l.name.chars().take(40).collect();
                format!("{name} ({})", l.kind)
            })
            .collect();
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("The 10 slowest layers of {}", short_cell(cell)),
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(330)
            .build_cartesian_2d(0f64..top.max(1e-3), 0f64..layers.len() as f64)
            .map_err(drawing)?;
        // Slowest at the top: category i from the bottom is layer len - 1 - i.
        let top_down: Vec<String> = names.iter().rev().cloned().collect();
        let label_of = |y: &f64| category_label(&top_down, *y);
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(layers.len() * 2 + 1)
            .y_label_formatter(&label_of)
            .x_desc("ms per run")
            .draw()
            .map_err(drawing)?;
        chart
            .draw_series(layers.iter().enumerate().map(|(i, l)| {
                let y = (layers.len() - i - 1) as f64;
                let k = kinds.iter().position(|kk| kk == &l.kind).unwrap_or(0);
                Rectangle::new([(0.0, y + 0.15), (l.ms, y + 0.85)], color(k).filled())
            }))
            .map_err(drawing)?;
        Ok(())
    })
}

/// Grouped bars: one group per model/form, one bar per backend, whiskers at the median's 95%
/// interval; log latency axis.
pub fn latency_bars(results: &ResultsFile, threads: usize) -> Result<String, PlotError> {
    let cells: Vec<&CellResult> = ok_cells(results)
        .into_iter()
        .filter(|c| c.key.threads == threads)
        .collect();
    let groups = unique(
        cells
            .iter()
            .map(|c| (c.key.model.clone(), c.key.form.clone())),
    );
    let backends = unique(cells.iter().map(|c| c.key.engine()));
    let (lo, hi) = log_range_with_legend_room(cells.iter().flat_map(|c| {
        let l = c.latency.as_ref().expect("ok cells have latency");
        [l.ci95_ms[0], l.ci95_ms[1]]
    }));
    svg(|root| {
        let labels: Vec<String> = groups
            .iter()
            .map(|(m, f)| format!("{} {}", m.trim_start_matches("mobileone-"), short(f)))
            .collect();
        let caption = format!("Median latency, {threads} thread(s) (whiskers: 95% CI)");
        let mut chart = category_chart(
            root,
            (&caption, 20),
            (groups.len(), &labels),
            (lo..hi).log_scale(),
            ("model and form", "latency (ms, log scale)"),
        )?;
        let width = 0.8 / backends.len().max(1) as f64;
        for (b, backend) in backends.iter().enumerate() {
            let mut bars = Vec::new();
            let mut whiskers = Vec::new();
            for (g, (model, form)) in groups.iter().enumerate() {
                let Some(c) = cells.iter().find(|c| {
                    &c.key.engine() == backend && &c.key.model == model && &c.key.form == form
                }) else {
                    continue;
                };
                let l = c.latency.as_ref().expect("ok cells have latency");
                let x0 = g as f64 + 0.1 + b as f64 * width;
                bars.push(Rectangle::new(
                    [(x0, lo), (x0 + width * 0.9, l.median_ms)],
                    color(b).filled(),
                ));
                let xm = x0 + width * 0.45;
                whiskers.push(PathElement::new(
                    vec![(xm, l.ci95_ms[0]), (xm, l.ci95_ms[1])],
                    BLACK.stroke_width(2),
                ));
            }
            chart
                .draw_series(bars)
                .map_err(drawing)?
                .label(backend.clone())
                .legend(move |p| swatch(p, b));
            chart.draw_series(whiskers).map_err(drawing)?;
        }
        legend(&mut chart)
    })
}

fn short(form: &str) -> &str {
    if form == "reparameterized" {
        "reparam"
    } else {
        form
    }
}

fn legend<'a, 'b: 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>,
) -> Result<(), PlotError> {
    legend_at(chart, SeriesLabelPosition::UpperLeft)
}

fn legend_at<'a, 'b: 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> Result<(), PlotError> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(position)
        .draw()
        .map_err(drawing)
}

/// The legend's square colour swatch of series `k`.
fn swatch((x, y): (i32, i32), k: usize) -> Rectangle<(i32, i32)> {
    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color(k).filled())
}

/// The series a speedup belongs to: its backend, precision and thread count.
fn speedup_series(s: &Speedup) -> String {
    let engine = crate::results::engine_label(&s.backend, &s.precision);
    format!("{engine} t{}", s.threads)
}

/// Unfused median / reparameterized median, per model, one bar per backend and thread count.
pub fn speedup_bars(results: &ResultsFile) -> Result<String, PlotError> {
    let models = unique(results.speedups.iter().map(|s| s.model.clone()));
    let keys = unique(results.speedups.iter().map(speedup_series));
    let top = results
        .speedups
        .iter()
        .map(|s| s.speedup)
        .fold(1.0, f64::max)
        * 1.7;
    svg(|root| {
        let labels: Vec<String> = models
            .iter()
            .map(|m| m.trim_start_matches("mobileone-").to_string())
            .collect();
        let mut chart = category_chart(
            root,
            (
                "Reparameterization speedup (unfused / reparameterized median)",
                20,
            ),
            (models.len(), &labels),
            0f64..top,
            ("model", "speedup (x)"),
        )?;
        let width = 0.8 / keys.len().max(1) as f64;
        for (k, key) in keys.iter().enumerate() {
            let bars: Vec<_> = results
                .speedups
                .iter()
                .filter(|s| &speedup_series(s) == key)
                .filter_map(|s| {
                    let g = models.iter().position(|m| m == &s.model)?;
                    let x0 = g as f64 + 0.1 + k as f64 * width;
                    Some(Rectangle::new(
                        [(x0, 0.0), (x0 + width * 0.9, s.speedup)],
                        color(k).filled(),
                    ))
                })
                .collect();
            chart
                .draw_series(bars)
                .map_err(drawing)?
                .label(key.clone())
                .legend(move |p| swatch(p, k));
        }
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, 1.0), (models.len() as f64, 1.0)],
                BLACK.stroke_width(1),
            )))
            .map_err(drawing)?;
        legend(&mut chart)
    })
}

/// One box per cell from its raw samples: box from the first to the third quartile, a line at
/// the median, whiskers to the minimum and maximum; log latency axis.
pub fn distributions(results: &ResultsFile) -> Result<String, PlotError> {
    let cells: Vec<&CellResult> = ok_cells(results)
        .into_iter()
        .filter(|c| !c.samples_ms.is_empty())
        .collect();
    if cells.is_empty() {
        return Err(PlotError::NoData("no samples"));
    }
    let (lo, hi) =
        log_range_with_legend_room(cells.iter().flat_map(|c| c.samples_ms.iter().copied()));
    let backends = unique(cells.iter().map(|c| c.key.engine()));
    svg(|root| {
        let caption = "Latency distributions (box: quartiles, line: median, whiskers: min and max)";
        let mut chart = category_chart(
            root,
            (caption, 18),
            (cells.len(), &[]),
            (lo..hi).log_scale(),
            (
                "cells in run order (model, form, backend, threads)",
                "latency (ms, log scale)",
            ),
        )?;
        for (b, backend) in backends.iter().enumerate() {
            let mut shapes: Vec<DynElement<SVGBackend, (f64, f64)>> = Vec::new();
            for (i, c) in cells.iter().enumerate() {
                if &c.key.engine() != backend {
                    continue;
                }
                let mut s = c.samples_ms.clone();
                s.sort_by(f64::total_cmp);
                let q = |p: f64| quantile(&s, p);
                let (x0, x1, xm) = (i as f64 + 0.2, i as f64 + 0.8, i as f64 + 0.5);
                shapes.push(
                    Rectangle::new([(x0, q(0.25)), (x1, q(0.75))], color(b).filled()).into_dyn(),
                );
                shapes.push(
                    PathElement::new(vec![(x0, q(0.5)), (x1, q(0.5))], BLACK.stroke_width(2))
                        .into_dyn(),
                );
                shapes.push(
                    PathElement::new(vec![(xm, s[0]), (xm, s[s.len() - 1])], BLACK).into_dyn(),
                );
            }
            chart
                .draw_series(shapes)
                .map_err(drawing)?
                .label(backend.clone())
                .legend(move |p| swatch(p, b));
        }
        legend(&mut chart)
    })
}

/// Metric against median latency, log-log, one series per backend and thread count (and the
/// reference measurements), each labelled with its Spearman rho and Kendall tau.
pub fn scatter(results: &ResultsFile, metric: Metric) -> Result<String, PlotError> {
    let all = series(results);
    if all.is_empty() {
        return Err(PlotError::NoData("no points"));
    }
    let (xlo, xhi) = log_range(
        all.iter()
            .flat_map(|s| s.points.iter().map(|p| p.metric(metric))),
    );
    let (ylo, yhi) = log_range_with_legend_room(
        all.iter()
            .flat_map(|s| s.points.iter().map(|p| p.latency_ms)),
    );
    svg(|root| {
        let mut chart: ChartContext<SVGBackend, Cartesian2d<LogCoord<f64>, LogCoord<f64>>> =
            ChartBuilder::on(root)
                .caption(
                    format!(
                        "{} versus latency (legend: Spearman ρ, Kendall τ)",
                        metric.name()
                    ),
                    ("sans-serif", 20),
                )
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d((xlo..xhi).log_scale(), (ylo..yhi).log_scale())
                .map_err(drawing)?;
        chart
            .configure_mesh()
            .x_desc(format!("{} (log scale)", metric.axis()))
            .y_desc("median latency (ms, log scale)")
            .draw()
            .map_err(drawing)?;
        for (i, s) in all.iter().enumerate() {
            let c = s.correlation(metric);
            let fmt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:+.2}"));
            let label = format!(
                "{} (n={}): ρ {} τ {} r(log) {}",
                s.name,
                c.points,
                fmt(c.spearman),
                fmt(c.kendall),
                fmt(c.pearson_log)
            );
            chart
                .draw_series(
                    s.points.iter().map(|p| {
                        Circle::new((p.metric(metric), p.latency_ms), 4, color(i).filled())
                    }),
                )
                .map_err(drawing)?
                .label(label)
                .legend(move |(x, y)| Circle::new((x + 5, y), 4, color(i).filled()));
        }
        legend(&mut chart)
    })
}

/// Achieved GFLOP/s against arithmetic intensity (FLOPs per byte of memory traffic) for every
/// cell, under this machine's measured ceilings at each thread count (peak compute and memory
/// bandwidth from the built-in probe) and the scenario's device profile.
pub fn roofline(results: &ResultsFile) -> Result<String, PlotError> {
    let cells = ok_cells(results);
    if cells.is_empty() {
        return Err(PlotError::NoData("no cells"));
    }
    let intensity =
        |c: &CellResult| c.cost.flops as f64 / c.cost.memory_traffic_bytes.max(1) as f64;
    let mut ceilings: Vec<(String, f64, f64)> = Vec::new();
    if let Some(peak) = &results.environment.peak {
        // One compute ceiling per precision the cells ran at (fp32 unnamed).
        let precisions = unique(cells.iter().map(|c| c.key.precision.clone()));
        for (t, _) in &peak.gflops {
            let Some((_, gbps)) = peak.gbps.iter().find(|(tt, _)| tt == t) else {
                continue;
            };
            for precision in &precisions {
                if let Some(gflops) = peak.gflops_at(*t, precision) {
                    let at = match precision.as_str() {
                        "fp32" => String::new(),
                        other => format!(", {other}"),
                    };
                    ceilings.push((format!("this machine, {t} thread(s){at}"), gflops, *gbps));
                }
            }
        }
    }
    if let Some(d) = &results.device_profile {
        ceilings.push((d.name.clone(), d.peak_gflops, d.memory_gbps));
    }
    let (xlo, xhi) = log_range(cells.iter().map(|c| intensity(c)));
    let (xlo, xhi) = (xlo.min(0.5), xhi.max(200.0));
    let (ylo, yhi) = log_range(
        cells
            .iter()
            .map(|c| c.achieved_gflops)
            .chain(ceilings.iter().map(|c| c.1)),
    );
    let backends = unique(cells.iter().map(|c| c.key.engine()));
    svg(|root| {
        let mut chart: ChartContext<SVGBackend, Cartesian2d<LogCoord<f64>, LogCoord<f64>>> =
            ChartBuilder::on(root)
                .caption(
                    "Roofline: achieved compute against arithmetic intensity",
                    ("sans-serif", 20),
                )
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d((xlo..xhi).log_scale(), (ylo..yhi).log_scale())
                .map_err(drawing)?;
        chart
            .configure_mesh()
            .x_desc("arithmetic intensity (FLOPs per byte of memory traffic, log scale)")
            .y_desc("achieved GFLOP/s (log scale)")
            .draw()
            .map_err(drawing)?;
        for (i, (name, gflops, gbps)) in ceilings.iter().enumerate() {
            let steps = 60;
            let line: Vec<(f64, f64)> = (0..=steps)
                .map(|k| {
                    let x = xlo * (xhi / xlo).powf(k as f64 / steps as f64);
                    (x, (gbps * x).min(*gflops))
                })
                .collect();
            let style = color(i + backends.len()).stroke_width(2);
            chart
                .draw_series(LineSeries::new(line, style))
                .map_err(drawing)?
                .label(format!(
                    "ceiling: {name} ({gflops:.0} GFLOP/s, {gbps:.0} GB/s)"
                ))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], style));
        }
        for (b, backend) in backends.iter().enumerate() {
            chart
                .draw_series(
                    cells
                        .iter()
                        .filter(|c| &c.key.engine() == backend && c.achieved_gflops > 0.0)
                        .map(|c| {
                            Circle::new((intensity(c), c.achieved_gflops), 4, color(b).filled())
                        }),
                )
                .map_err(drawing)?
                .label(backend.clone())
                .legend(move |(x, y)| Circle::new((x + 5, y), 4, color(b).filled()));
        }
        legend_at(&mut chart, SeriesLabelPosition::LowerRight)
    })
}
