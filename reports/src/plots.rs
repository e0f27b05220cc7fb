//! The report's plots, drawn with plotters into SVG strings (inlined by the HTML report):
//! latency per model and backend with interval whiskers, reparameterization speedup, latency
//! distributions from the raw samples, metric-versus-latency scatter plots with their rank
//! correlations, and the roofline. Every axis is labelled with its unit.

use plotters::coord::combinators::WithKeyPoints;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::analysis::{series, Metric};
use crate::overlay::{self, LegendEntry, Mark, Marks, Target, Tip};
use crate::results::{shown_ms, CellResult, CellStatus, ResultsFile, Speedup};
use crate::stats::quantile;
use crate::summary::ms;

const SIZE: (u32, u32) = (900, 480);
/// The font of tick labels and of axis descriptions: large enough to read at the page's width.
pub(crate) const LABELS: (&str, u32) = ("sans-serif", 13);
pub(crate) const AXIS_DESC: (&str, u32) = ("sans-serif", 14);

/// A tick value as a reader writes it: three significant digits, no float noise
/// (0.30000000000000004 is 0.3), no trailing zeros.
pub(crate) fn tick(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (2 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
    let text = format!("{v:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// A plot of the report: an id for the page, a title and its SVG.
#[derive(Debug, Clone, PartialEq)]
pub struct Plot {
    pub id: String,
    pub title: String,
    pub svg: String,
}

pub(crate) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

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

/// Draws a chart `height` pixels tall into a fresh SVG, with `legend` in a band of its own
/// below the chart; the drawing reports its data area and the tooltips of its marks.
pub(crate) fn svg(
    height: u32,
    legend: &[LegendEntry],
    draw: impl FnOnce(&Area) -> Result<Marks, PlotError>,
) -> Result<String, PlotError> {
    let mut out = String::new();
    let marks;
    {
        let total = (SIZE.0, height + overlay::legend_height(legend.len()));
        let root = SVGBackend::with_string(&mut out, total).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let (chart_area, _) = root.split_vertically(height);
        marks = draw(&chart_area)?;
        root.present().map_err(drawing)?;
    }
    Ok(overlay::apply(out, &marks, legend, height))
}

/// The pixel corners of a chart's data area.
pub(crate) fn data_area<X: Ranged, Y: Ranged>(
    chart: &ChartContext<SVGBackend, Cartesian2d<X, Y>>,
) -> Option<((i32, i32), (i32, i32))> {
    let (x, y) = chart.plotting_area().get_pixel_range();
    Some(((x.start, y.start), (x.end, y.end)))
}

/// A tooltip over the rectangle between two data corners.
fn rect_tip<X: Ranged, Y: Ranged>(
    chart: &ChartContext<SVGBackend, Cartesian2d<X, Y>>,
    corners: [(X::ValueType, Y::ValueType); 2],
    text: String,
) -> Tip {
    let [a, b] = corners;
    Tip::new(
        Target::Rect(chart.backend_coord(&a), chart.backend_coord(&b)),
        text,
    )
}

/// A tooltip over the point at a data coordinate.
fn point_tip<X: Ranged, Y: Ranged>(
    chart: &ChartContext<SVGBackend, Cartesian2d<X, Y>>,
    at: (X::ValueType, Y::ValueType),
    text: String,
) -> Tip {
    let (x, y) = chart.backend_coord(&at);
    Tip::new(Target::Point(x, y), text)
}

/// A cell named in full, with its median, interval and sample count: every cell's tooltip.
fn cell_tip_text(c: &CellResult) -> String {
    let name = format!(
        "{} {} {} t{}",
        c.key.model,
        c.key.form,
        c.key.engine(),
        c.key.threads
    );
    match &c.latency {
        Some(l) => format!(
            "{name}: median {} ms, 95% CI {} .. {} ms, {} samples",
            ms(l.median_ms),
            ms(l.ci95_ms[0]),
            ms(l.ci95_ms[1]),
            c.samples_ms.len()
        ),
        None => name,
    }
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

/// Which way an axis runs: y labels stack (their height limits them), x labels sit side by
/// side (their width does).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Axis {
    X,
    Y,
}

/// Pixels a tick label of `text` takes along its axis at [`LABELS`]' size, plus the space
/// between two labels: digits and most letters of a 13 px sans-serif font are under 8 px wide.
pub(crate) fn label_extent(axis: Axis, text: &str) -> f64 {
    match axis {
        Axis::Y => LABELS.1 as f64 + 5.0,
        Axis::X => 8.0 * text.chars().count() as f64 + 10.0,
    }
}

/// The labelled ticks of a log axis over `lo..hi` drawn `pixels` long: powers of ten, then
/// 2 and 5, then the other mantissas, each rank taken only where all its ticks keep clear of
/// the labels already chosen (so a short axis over one decade gets 1..9, a long span of
/// decades only every power of ten or every other one); an axis left with under two labels
/// takes the nearest ones that fit. Plotters' own log ticks put labels 1..9 whatever the
/// axis' length, which drew them over each other on short axes.
pub(crate) fn log_ticks(lo: f64, hi: f64, pixels: f64, axis: Axis) -> Vec<f64> {
    if !(lo > 0.0 && hi > lo && lo.is_finite() && hi.is_finite()) {
        return Vec::new();
    }
    let span = (hi / lo).ln();
    let at = |v: f64| (v / lo).ln() / span * pixels;
    let clear = |chosen: &[f64], v: f64| {
        chosen.iter().all(|&c| {
            let need = (label_extent(axis, &tick(c)) + label_extent(axis, &tick(v))) / 2.0;
            (at(c) - at(v)).abs() >= need
        })
    };
    let mut chosen: Vec<f64> = Vec::new();
    for (i, rank) in log_tick_ranks(lo, hi).into_iter().enumerate() {
        let fits = (0..rank.len()).all(|j| clear(&chosen, rank[j]) && clear(&rank[..j], rank[j]));
        if fits && i < 3 {
            chosen.extend(rank);
            continue;
        }
        for v in rank {
            if chosen.len() < 2 && clear(&chosen, v) {
                chosen.push(v);
            }
        }
        if chosen.len() >= 2 {
            break;
        }
    }
    chosen.sort_by(f64::total_cmp);
    chosen
}

/// The candidate ticks of a log axis in rank order: powers of ten, mantissas 2 and 5, the
/// other integer mantissas, then 1.5 and 2.5 (for spans too short to hold two integers).
fn log_tick_ranks(lo: f64, hi: f64) -> Vec<Vec<f64>> {
    let ranks: [&[f64]; 4] = [
        &[1.0],
        &[2.0, 5.0],
        &[3.0, 4.0, 6.0, 7.0, 8.0, 9.0],
        &[1.5, 2.5],
    ];
    let first = lo.log10().floor() as i32;
    let last = hi.log10().ceil() as i32;
    ranks
        .iter()
        .map(|mantissas| {
            (first..=last)
                .flat_map(|e| mantissas.iter().map(move |m| m * 10f64.powi(e)))
                .filter(|v| (lo..=hi).contains(v))
                .collect()
        })
        .collect()
}

type LogAxis = WithKeyPoints<LogCoord<f64>>;

/// The pixel size of the data area a chart built on `root` with this caption's font size and
/// these label areas gets, a little under (plotters' caption takes about 1.5 its font size).
fn data_pixels(root: &Area, caption: u32, (x_labels, y_labels): (u32, u32)) -> (f64, f64) {
    let (w, h) = root.dim_in_pixel();
    let margins = 2.0 * 10.0;
    (
        w as f64 - margins - y_labels as f64,
        h as f64 - margins - x_labels as f64 - 1.5 * caption as f64,
    )
}

/// A log axis over `lo..hi` with [`log_ticks`] labelled and every integer mantissa as a light
/// grid line.
fn log_axis(lo: f64, hi: f64, pixels: f64, axis: Axis) -> LogAxis {
    let grid: Vec<f64> = log_tick_ranks(lo, hi)
        .into_iter()
        .take(3)
        .flatten()
        .collect();
    (lo..hi)
        .log_scale()
        .with_key_points(log_ticks(lo, hi, pixels, axis))
        .with_light_points(grid)
}

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
        .label_style(LABELS)
        .axis_desc_style(AXIS_DESC)
        .disable_x_mesh()
        .x_labels(ticks)
        .x_label_formatter(&label_of)
        .y_label_formatter(&|v| tick(*v))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(drawing)?;
    Ok(chart)
}

type CategoryChart<'a, 'b, Y> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y>>;

/// Axes with one row per category on y, labelled from `top_down` (the first row at the top,
/// each label at its row's centre: row i from the top spans [n - 1 - i, n - i)), and `x`.
fn row_chart<'a, 'b, X>(
    root: &'a Area<'b>,
    caption: (&str, u32),
    (top_down, label_width): (&[String], u32),
    x: X,
    (x_desc, y_desc): (&str, &str),
) -> Result<RowChart<'a, 'b, X::CoordDescType>, PlotError>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let n = top_down.len();
    let mut chart = ChartBuilder::on(root)
        .caption(caption.0, ("sans-serif", caption.1))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(label_width)
        .build_cartesian_2d(x, 0f64..n as f64)
        .map_err(drawing)?;
    let bottom_up: Vec<String> = top_down.iter().rev().cloned().collect();
    let label_of = |y: &f64| category_label(&bottom_up, *y);
    chart
        .configure_mesh()
        .label_style(LABELS)
        .axis_desc_style(AXIS_DESC)
        .disable_y_mesh()
        .y_labels(n * 2 + 1)
        .y_label_formatter(&label_of)
        .x_label_formatter(&|v| tick(*v))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(drawing)?;
    Ok(chart)
}

type RowChart<'a, 'b, X> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, RangedCoordf64>>;

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

/// Stacked horizontal bars, one row per cell that reports per-layer times (top-down in run
/// order): milliseconds per run by op kind.
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
    let total = |c: &CellResult| c.layers.iter().map(|l| l.ms).sum::<f64>();
    let top = cells.iter().map(|c| total(c)).fold(0.0, f64::max) * 1.05;
    let legend = swatches(&kinds);
    let n = cells.len();
    svg(rows_height(n), &legend, |root| {
        let labels: Vec<String> = cells.iter().map(|c| short_cell(c)).collect();
        let mut chart = row_chart(
            root,
            ("Time per run by op kind (separate profiling plan)", 20),
            (&labels, 230),
            0f64..top.max(1e-3),
            ("ms per run", "cell (model, form, backend, threads)"),
        )?;
        let mut tips = Vec::new();
        for (k, kind) in kinds.iter().enumerate() {
            let mut bars = Vec::new();
            for (i, c) in cells.iter().enumerate() {
                let before: f64 = kinds[..k].iter().map(|kk| kind_ms(c, kk)).sum();
                let here = kind_ms(c, kind);
                if here <= 0.0 {
                    continue;
                }
                let y = (n - 1 - i) as f64;
                let corners = [(before, y + 0.15), (before + here, y + 0.85)];
                bars.push(Rectangle::new(corners, color(k).filled()));
                let text = format!(
                    "{}: {kind} {} ms per run ({:.1}% of {} ms)",
                    short_cell(c),
                    ms(here),
                    100.0 * here / total(c),
                    ms(total(c))
                );
                tips.push(rect_tip(&chart, corners, text));
            }
            chart.draw_series(bars).map_err(drawing)?;
        }
        Ok(Marks {
            data_area: data_area(&chart),
            tips,
        })
    })
}

fn kind_ms(c: &CellResult, kind: &str) -> f64 {
    c.layers
        .iter()
        .filter(|l| l.kind == kind)
        .map(|l| l.ms)
        .sum()
}

/// Legend entries of coloured squares, one per name, in colour order.
fn swatches(names: &[String]) -> Vec<LegendEntry> {
    names
        .iter()
        .enumerate()
        .map(|(k, name)| LegendEntry::new(Mark::Swatch(color(k)), name.clone()))
        .collect()
}

/// Horizontal bars: the 10 slowest layers of the slowest cell that reports per-layer times.
pub fn top_layers(results: &ResultsFile) -> Result<String, PlotError> {
    let total = |c: &CellResult| c.layers.iter().map(|l| l.ms).sum::<f64>();
    let cell = ok_cells(results)
        .into_iter()
        .filter(|c| !c.layers.is_empty())
        .max_by(|a, b| total(a).total_cmp(&total(b)))
        .ok_or(PlotError::NoData("no per-layer times"))?;
    let mut layers: Vec<_> = cell.layers.iter().collect();
    layers.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    layers.truncate(10);
    let top = layers.first().map_or(1.0, |l| l.ms) * 1.1;
    let kinds = unique(layers.iter().map(|l| l.kind.clone()));
    let legend = swatches(&kinds);
    svg(SIZE.1, &legend, |root| {
        let names: Vec<String> = layers
            .iter()
            .map(|l| {
                let name: String = l.name.chars().take(40).collect();
                format!("{name} ({})", l.kind)
            })
            .collect();
        let caption = format!("The 10 slowest layers of {}", short_cell(cell));
        let mut chart = row_chart(
            root,
            (&caption, 20),
            (&names, 330),
            0f64..top.max(1e-3),
            ("ms per run", ""),
        )?;
        let mut tips = Vec::new();
        let mut bars = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            let y = (layers.len() - i - 1) as f64;
            let k = kinds.iter().position(|kk| kk == &l.kind).unwrap_or(0);
            let corners = [(0.0, y + 0.15), (l.ms, y + 0.85)];
            bars.push(Rectangle::new(corners, color(k).filled()));
            let text = format!(
                "{} ({}): {} ms per run, {:.1}% of the cell's {} ms",
                l.name,
                l.kind,
                ms(l.ms),
                100.0 * l.ms / total(cell),
                ms(total(cell))
            );
            tips.push(rect_tip(&chart, corners, text));
        }
        chart.draw_series(bars).map_err(drawing)?;
        Ok(Marks {
            data_area: data_area(&chart),
            tips,
        })
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
    let (lo, hi) = log_range(cells.iter().flat_map(|c| {
        let l = c.latency.as_ref().expect("ok cells have latency");
        [l.ci95_ms[0], l.ci95_ms[1]]
    }));
    let legend = swatches(&backends);
    svg(SIZE.1, &legend, |root| {
        let labels: Vec<String> = groups
            .iter()
            .map(|(m, f)| format!("{} {}", m.trim_start_matches("mobileone-"), short(f)))
            .collect();
        let caption = format!("Median latency, {threads} thread(s) (whiskers: 95% CI)");
        let mut chart = category_chart(
            root,
            (&caption, 20),
            (groups.len(), &labels),
            log_axis(lo, hi, data_pixels(root, 20, (40, 70)).1, Axis::Y),
            ("model and form", "latency (ms, log scale)"),
        )?;
        let width = 0.8 / backends.len().max(1) as f64;
        let mut tips = Vec::new();
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
                let corners = [(x0, lo), (x0 + width * 0.9, l.median_ms)];
                bars.push(Rectangle::new(corners, color(b).filled()));
                tips.push(rect_tip(&chart, corners, cell_tip_text(c)));
                let xm = x0 + width * 0.45;
                whiskers.push(PathElement::new(
                    vec![(xm, l.ci95_ms[0]), (xm, l.ci95_ms[1])],
                    BLACK.stroke_width(2),
                ));
            }
            chart.draw_series(bars).map_err(drawing)?;
            chart.draw_series(whiskers).map_err(drawing)?;
        }
        Ok(Marks {
            data_area: data_area(&chart),
            tips,
        })
    })
}

fn short(form: &str) -> &str {
    if form == "reparameterized" {
        "reparam"
    } else {
        form
    }
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
        * 1.1;
    let legend = swatches(&keys);
    svg(SIZE.1, &legend, |root| {
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
        let mut tips = Vec::new();
        for (k, key) in keys.iter().enumerate() {
            let mut bars = Vec::new();
            for s in results
                .speedups
                .iter()
                .filter(|s| &speedup_series(s) == key)
            {
                let Some(g) = models.iter().position(|m| m == &s.model) else {
                    continue;
                };
                let x0 = g as f64 + 0.1 + k as f64 * width;
                let corners = [(x0, 0.0), (x0 + width * 0.9, s.speedup)];
                bars.push(Rectangle::new(corners, color(k).filled()));
                let text = format!(
                    "{} {key}: {:.2}x ({} ms unfused, {} ms reparameterized)",
                    s.model,
                    s.speedup,
                    shown_ms(s.unfused_ms),
                    shown_ms(s.reparameterized_ms)
                );
                tips.push(rect_tip(&chart, corners, text));
            }
            chart.draw_series(bars).map_err(drawing)?;
        }
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, 1.0), (models.len() as f64, 1.0)],
                BLACK.stroke_width(1),
            )))
            .map_err(drawing)?;
        Ok(Marks {
            data_area: data_area(&chart),
            tips,
        })
    })
}

/// The height of a plot with one row per category: 24 pixels a row, at least the default.
fn rows_height(rows: usize) -> u32 {
    (100 + 24 * rows as u32).max(SIZE.1)
}

/// One horizontal box per cell from its raw samples, labelled with the cell: box from the
/// first to the third quartile, a line at the median, whiskers to the minimum and maximum;
/// log latency axis; cells top-down in run order.
pub fn distributions(results: &ResultsFile) -> Result<String, PlotError> {
    let cells: Vec<&CellResult> = ok_cells(results)
        .into_iter()
        .filter(|c| !c.samples_ms.is_empty())
        .collect();
    if cells.is_empty() {
        return Err(PlotError::NoData("no samples"));
    }
    let (lo, hi) = log_range(cells.iter().flat_map(|c| c.samples_ms.iter().copied()));
    let backends = unique(cells.iter().map(|c| c.key.engine()));
    let legend = swatches(&backends);
    let n = cells.len();
    svg(rows_height(n), &legend, |root| {
        let labels: Vec<String> = cells.iter().map(|c| short_cell(c)).collect();
        let mut chart = row_chart(
            root,
            (
                "Latency distributions (box: quartiles, line: median, whiskers: min and max)",
                18,
            ),
            (&labels, 230),
            log_axis(lo, hi, data_pixels(root, 18, (40, 230)).0, Axis::X),
            (
                "latency (ms, log scale)",
                "cell (model, form, backend, threads)",
            ),
        )?;
        let mut shapes: Vec<DynElement<SVGBackend, (f64, f64)>> = Vec::new();
        let mut tips = Vec::new();
        for (i, c) in cells.iter().enumerate() {
            let b = backends
                .iter()
                .position(|e| e == &c.key.engine())
                .unwrap_or(0);
            let mut s = c.samples_ms.clone();
            s.sort_by(f64::total_cmp);
            let q = |p: f64| quantile(&s, p);
            let y = (n - 1 - i) as f64;
            let (y0, y1, ym) = (y + 0.2, y + 0.8, y + 0.5);
            let corners = [(q(0.25), y0), (q(0.75), y1)];
            shapes.push(Rectangle::new(corners, color(b).filled()).into_dyn());
            shapes.push(
                PathElement::new(vec![(q(0.5), y0), (q(0.5), y1)], BLACK.stroke_width(2))
                    .into_dyn(),
            );
            shapes.push(PathElement::new(vec![(s[0], ym), (s[s.len() - 1], ym)], BLACK).into_dyn());
            let text = format!(
                "{}: median {} ms, quartiles {} .. {} ms, min {} ms, max {} ms, {} samples",
                short_cell(c),
                ms(q(0.5)),
                ms(q(0.25)),
                ms(q(0.75)),
                ms(s[0]),
                ms(s[s.len() - 1]),
                s.len()
            );
            tips.push(rect_tip(&chart, [(s[0], y0), (s[s.len() - 1], y1)], text));
        }
        chart.draw_series(shapes).map_err(drawing)?;
        Ok(Marks {
            data_area: data_area(&chart),
            tips,
        })
    })
}

/// Metric against median latency, log-log, one series per backend and thread count (and the
/// reference measurements), each labelled in the legend with its Spearman rho and Kendall tau.
pub fn scatter(results: &ResultsFile, metric: Metric) -> Result<String, PlotError> {
    let all = series(results);
    if all.is_empty() {
        return Err(PlotError::NoData("no points"));
    }
    let (xlo, xhi) = log_range(
        all.iter()
            .flat_map(|s| s.points.iter().map(|p| p.metric(metric))),
    );
    let (ylo, yhi) = log_range(
        all.iter()
            .flat_map(|s| s.points.iter().map(|p| p.latency_ms)),
    );
    let legend: Vec<LegendEntry> = all
        .iter()
        .enumerate()
        .map(|(i, s)| {
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
            LegendEntry::new(Mark::Dot(color(i)), label)
        })
        .collect();
    svg(SIZE.1, &legend, |root| {
        let (w, h) = data_pixels(root, 20, (40, 70));
        let mut chart: ChartContext<SVGBackend, Cartesian2d<LogAxis, LogAxis>> =
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
                .build_cartesian_2d(
                    log_axis(xlo, xhi, w, Axis::X),
                    log_axis(ylo, yhi, h, Axis::Y),
                )
                .map_err(drawing)?;
        chart
            .configure_mesh()
            .label_style(LABELS)
            .axis_desc_style(AXIS_DESC)
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .x_desc(format!("{} (log scale)", metric.axis()))
            .y_desc("median latency (ms, log scale)")
            .draw()
            .map_err(drawing)?;
        let mut tips = Vec::new();
        for (i, s) in all.iter().enumerate() {
            let at = |p: &crate::analysis::Point| (p.metric(metric), p.latency_ms);
            chart
                .draw_series(
                    s.points
                        .iter()
                        .map(|p| Circle::new(at(p), 4, color(i).filled())),
                )
                .map_err(drawing)?;
            for p in &s.points {
                let text = format!(
                    "{} ({}): {} {:.4}, median {} ms",
                    p.label,
                    s.name,
                    metric.axis(),
                    p.metric(metric),
                    ms(p.latency_ms)
                );
                tips.push(point_tip(&chart, at(p), text));
            }
        }
        Ok(Marks {
            data_area: data_area(&chart),
            tips,
        })
    })
}

/// The roofline's ceilings: (name, peak GFLOP/s, GB/s) of this machine at each thread count
/// and precision the cells ran at, then the scenario's device profile.
fn ceilings(results: &ResultsFile, cells: &[&CellResult]) -> Vec<(String, f64, f64)> {
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
    ceilings
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
    let ceilings = ceilings(results, &cells);
    let (xlo, xhi) = log_range(cells.iter().map(|c| intensity(c)));
    let (xlo, xhi) = (xlo.min(0.5), xhi.max(200.0));
    let (ylo, yhi) = log_range(
        cells
            .iter()
            .map(|c| c.achieved_gflops)
            .chain(ceilings.iter().map(|c| c.1)),
    );
    let backends = unique(cells.iter().map(|c| c.key.engine()));
    let ceiling_color = |i: usize| color(i + backends.len());
    let legend: Vec<LegendEntry> = ceilings
        .iter()
        .enumerate()
        .map(|(i, (name, gflops, gbps))| {
            let label = format!("ceiling: {name} ({gflops:.0} GFLOP/s, {gbps:.0} GB/s)");
            LegendEntry::new(Mark::Line(ceiling_color(i)), label)
        })
        .chain(
            backends
                .iter()
                .enumerate()
                .map(|(b, name)| LegendEntry::new(Mark::Dot(color(b)), name.clone())),
        )
        .collect();
    svg(SIZE.1, &legend, |root| {
        let (w, h) = data_pixels(root, 20, (40, 70));
        let mut chart: ChartContext<SVGBackend, Cartesian2d<LogAxis, LogAxis>> =
            ChartBuilder::on(root)
                .caption(
                    "Roofline: achieved compute against arithmetic intensity",
                    ("sans-serif", 20),
                )
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(
                    log_axis(xlo, xhi, w, Axis::X),
                    log_axis(ylo, yhi, h, Axis::Y),
                )
                .map_err(drawing)?;
        chart
            .configure_mesh()
            .label_style(LABELS)
            .axis_desc_style(AXIS_DESC)
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .x_desc("arithmetic intensity (FLOPs per byte of memory traffic, log scale)")
            .y_desc("achieved GFLOP/s (log scale)")
            .draw()
            .map_err(drawing)?;
        for (i, (_, gflops, gbps)) in ceilings.iter().enumerate() {
            let steps = 60;
            let line: Vec<(f64, f64)> = (0..=steps)
                .map(|k| {
                    let x = xlo * (xhi / xlo).powf(k as f64 / steps as f64);
                    (x, (gbps * x).min(*gflops))
                })
                .collect();
            chart
                .draw_series(LineSeries::new(line, ceiling_color(i).stroke_width(2)))
                .map_err(drawing)?;
        }
        let mut tips = Vec::new();
        for (b, backend) in backends.iter().enumerate() {
            let drawn: Vec<&&CellResult> = cells
                .iter()
                .filter(|c| &c.key.engine() == backend && c.achieved_gflops > 0.0)
                .collect();
            let at = |c: &CellResult| (intensity(c), c.achieved_gflops);
            chart
                .draw_series(
                    drawn
                        .iter()
                        .map(|c| Circle::new(at(c), 4, color(b).filled())),
                )
                .map_err(drawing)?;
            for c in drawn {
                let text = format!(
                    "{}: {:.2} FLOPs/byte, {:.2} GFLOP/s achieved",
                    cell_tip_text(c),
                    intensity(c),
                    c.achieved_gflops
                );
                tips.push(point_tip(&chart, at(c), text));
            }
        }
        Ok(Marks {
            data_area: data_area(&chart),
            tips,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_read_as_written_by_hand() {
        assert_eq!(tick(0.30000000000000004), "0.3");
        assert_eq!(tick(0.6000000000000001), "0.6");
        assert_eq!(tick(1.0), "1");
        assert_eq!(tick(2.5), "2.5");
        assert_eq!(tick(0.0123456), "0.0123");
        assert_eq!(tick(1500.0), "1500");
        assert_eq!(tick(-0.25), "-0.25");
        assert_eq!(tick(0.0), "0");
    }

    /// Every log axis the report can draw (spans from the narrowest padded range, 2.25x, to
    /// the widest, 12 decades and a bit; lengths from a squeezed plot to a wide one) gets at
    /// least two labels, inside its range, none closer than its neighbour's label needs.
    #[test]
    fn log_ticks_keep_labels_apart_and_never_leave_an_axis_bare() {
        for axis in [Axis::X, Axis::Y] {
            // Log x axes are the distributions' (650 px) and the scatter plots' (810 px).
            let lengths: &[f64] = match axis {
                Axis::X => &[390.0, 650.0, 810.0],
                Axis::Y => &[150.0, 240.0, 390.0, 650.0],
            };
            for &pixels in lengths {
                for lo_exp in -40..=40 {
                    let lo = 10f64.powf(lo_exp as f64 / 10.0);
                    for span in [2.25, 3.0, 7.0, 20.0, 90.0, 1e3, 1e6, 3e12] {
                        let hi = lo * span;
                        let ticks = log_ticks(lo, hi, pixels, axis);
                        assert!(ticks.len() >= 2, "{lo}..{hi} on {pixels} px: {ticks:?}");
                        let at = |v: f64| (v / lo).ln() / (hi / lo).ln() * pixels;
                        for w in ticks.windows(2) {
                            assert!(w[0] < w[1] && w[0] >= lo && w[1] <= hi);
                            let need = (label_extent(axis, &tick(w[0]))
                                + label_extent(axis, &tick(w[1])))
                                / 2.0;
                            assert!(
                                at(w[1]) - at(w[0]) >= need,
                                "{lo}..{hi} on {pixels} px {axis:?}: {ticks:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn log_ticks_are_as_dense_as_the_axis_allows() {
        // One decade on a tall axis: every integer mantissa.
        assert_eq!(
            log_ticks(9.5, 110.0, 480.0, Axis::Y),
            [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0]
        );
        // Labels 1..9 would collide at the top of a short decade: 1, 2, 5 only.
        assert_eq!(
            log_ticks(9.5, 110.0, 150.0, Axis::Y),
            [10.0, 20.0, 50.0, 100.0]
        );
        // Six decades across a plot: powers of ten.
        assert_eq!(
            log_ticks(0.011, 9000.0, 300.0, Axis::X),
            [0.1, 1.0, 10.0, 100.0, 1000.0]
        );
        // A span holding no power of ten still gets two labels.
        assert_eq!(log_ticks(11.0, 40.0, 390.0, Axis::Y).len(), 3);
        assert!(log_ticks(0.0, 1.0, 390.0, Axis::Y).is_empty());
    }
}
