//! The history report: for each cell, its medians over the kept runs with their 95% band, the
//! detected change points marked, every point's commit and values in its SVG tooltip; and the
//! table of detected changes (Markdown and one self-contained HTML page).

use std::fmt::Write;

use plotters::prelude::*;

use crate::changepoint::ChangePoint;
use crate::overlay::{escape, LegendEntry, Mark, Marks, Target, Tip};
use crate::plots::PlotError;
use crate::summary::ms;

/// One kept run's measurement of a cell.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendPoint {
    pub run_id: i64,
    pub commit: String,
    pub started_at: String,
    pub median_ms: f64,
    pub ci95_ms: Option<[f64; 2]>,
}

/// A cell's series on one machine, with its change points.
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    /// The cell as tables name it (model form engine threads batch size).
    pub cell: String,
    pub scenario: String,
    pub machine: String,
    pub points: Vec<TrendPoint>,
    pub changes: Vec<ChangePoint>,
}

impl Trend {
    /// "abc123..def456": the last commit before the change and the first after it.
    pub fn commit_range(&self, change: &ChangePoint) -> String {
        let before = change
            .index
            .checked_sub(1)
            .and_then(|i| self.points.get(i))
            .map_or("", |p| p.commit.as_str());
        let after = self
            .points
            .get(change.index)
            .map_or("", |p| p.commit.as_str());
        format!("{before}..{after}")
    }
}

const SIZE: (u32, u32) = (900, 360);

fn drawing(e: impl std::fmt::Display) -> PlotError {
    PlotError::Drawing(e.to_string())
}

/// The trend plot of one cell: the 95% band, the medians joined, a dashed line at each change
/// point; x is the run (labelled with its commit), y the latency.
pub fn trend_svg(trend: &Trend) -> Result<String, PlotError> {
    if trend.points.is_empty() {
        return Err(PlotError::NoData("no kept runs of this cell"));
    }
    let n = trend.points.len();
    let (lo, hi) = y_range(&trend.points);
    crate::plots::svg(SIZE.1, &legend(), |root| {
        let mut tips = Vec::new();
        let labels: Vec<String> = trend
            .points
            .iter()
            .map(|p| short_commit(&p.commit))
            .collect();
        let label_of = |x: &f64| {
            let i = x.round();
            match (x - i).abs() < 1e-9 && i >= 0.0 {
                true => labels.get(i as usize).cloned().unwrap_or_default(),
                false => String::new(),
            }
        };
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), lo..hi)
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .label_style(crate::plots::LABELS)
            .axis_desc_style(crate::plots::AXIS_DESC)
            .y_label_formatter(&|v| crate::plots::tick(*v))
            .disable_x_mesh()
            .x_labels(n.min(commit_labels_fit(root, &labels)))
            .x_label_formatter(&label_of)
            .x_desc("commit of each kept run (oldest left)")
            .y_desc("median latency (ms)")
            .draw()
            .map_err(drawing)?;
        let band: Vec<(f64, f64)> = band_outline(&trend.points);
        if !band.is_empty() {
            chart
                .draw_series(std::iter::once(Polygon::new(band, BLUE.mix(0.15).filled())))
                .map_err(drawing)?;
        }
        let line: Vec<(f64, f64)> = trend
            .points
            .iter()
            .enumerate()
            .map(|(i, p)| (i as f64, p.median_ms))
            .collect();
        chart
            .draw_series(LineSeries::new(line.clone(), BLUE.stroke_width(2)))
            .map_err(drawing)?;
        chart
            .draw_series(line.iter().map(|&xy| Circle::new(xy, 3, BLUE.filled())))
            .map_err(drawing)?;
        for change in &trend.changes {
            let x = change.index as f64 - 0.5;
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(x, lo), (x, hi)],
                    6,
                    4,
                    RED.stroke_width(2),
                ))
                .map_err(drawing)?;
            let (px, py) = chart.backend_coord(&(x, hi));
            tips.push(Tip::new(
                Target::Point(px, py + 8),
                change_tip(trend, change),
            ));
        }
        for (i, p) in trend.points.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(i as f64, p.median_ms));
            tips.push(Tip::new(Target::Point(px, py), point_tip(p)));
        }
        Ok(Marks {
            data_area: crate::plots::data_area(&chart),
            tips,
        })
    })
}

/// What the trend plot's marks mean, below the plot.
fn legend() -> Vec<LegendEntry> {
    vec![
        LegendEntry::new(Mark::Line(BLUE), "median of each kept run"),
        LegendEntry::new(
            Mark::Swatch(RGBColor(217, 217, 255)),
            "its 95% confidence interval",
        ),
        LegendEntry::new(
            Mark::Line(RED),
            "change point (dashed; hover for its size and p)",
        ),
    ]
}

/// The y range: every median and interval, padded by 10% of their span.
fn y_range(points: &[TrendPoint]) -> (f64, f64) {
    let values = points
        .iter()
        .flat_map(|p| {
            [
                Some(p.median_ms),
                p.ci95_ms.map(|c| c[0]),
                p.ci95_ms.map(|c| c[1]),
            ]
        })
        .flatten()
        .filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let pad = ((hi - lo) * 0.1).max(hi.abs() * 0.01).max(1e-9);
    ((lo - pad).max(0.0), hi + pad)
}

/// The band's outline: upper bounds left to right, then lower bounds back (points without an
/// interval use their median).
fn band_outline(points: &[TrendPoint]) -> Vec<(f64, f64)> {
    if points.iter().all(|p| p.ci95_ms.is_none()) {
        return Vec::new();
    }
    let bound = |p: &TrendPoint, k: usize| p.ci95_ms.map_or(p.median_ms, |c| c[k]);
    let upper = points
        .iter()
        .enumerate()
        .map(|(i, p)| (i as f64, bound(p, 1)));
    let lower = points
        .iter()
        .enumerate()
        .rev()
        .map(|(i, p)| (i as f64, bound(p, 0)));
    upper.chain(lower).collect()
}

/// How many commit labels fit side by side under the plot on `root` (at least two; plotters
/// then labels every run, every second, every fifth...).
fn commit_labels_fit(root: &crate::plots::Area, labels: &[String]) -> usize {
    let widest = labels.iter().max_by_key(|l| l.chars().count());
    let extent = crate::plots::label_extent(crate::plots::Axis::X, widest.map_or("", |l| l));
    let width = root.dim_in_pixel().0 as f64 - 2.0 * 12.0 - 70.0;
    ((width / extent) as usize).max(2)
}

fn short_commit(commit: &str) -> String {
    commit.chars().take(8).collect()
}

fn point_tip(p: &TrendPoint) -> String {
    let ci = p
        .ci95_ms
        .map(|[l, h]| format!(", 95% CI {} .. {} ms", ms(l), ms(h)))
        .unwrap_or_default();
    format!(
        "run {} at {}, commit {}: median {} ms{ci}",
        p.run_id,
        p.started_at,
        p.commit,
        ms(p.median_ms)
    )
}

fn change_tip(trend: &Trend, c: &ChangePoint) -> String {
    format!(
        "change point between {}: {} -> {} ms ({:+.1}%), p = {:.3}",
        trend.commit_range(c),
        ms(c.median_before),
        ms(c.median_after),
        c.relative_change() * 100.0,
        c.p_value
    )
}

const CHANGES_HEADER: &str =
    "| cell | scenario | machine | commits | before ms | after ms | change | p |\n|---|---|---|---|---|---|---|---|\n";

fn change_rows(trends: &[Trend]) -> Vec<[String; 8]> {
    trends
        .iter()
        .flat_map(|t| {
            t.changes.iter().map(move |c| {
                [
                    t.cell.clone(),
                    t.scenario.clone(),
                    t.machine.clone(),
                    t.commit_range(c),
                    ms(c.median_before),
                    ms(c.median_after),
                    format!("{:+.1}%", c.relative_change() * 100.0),
                    format!("{:.3}", c.p_value),
                ]
            })
        })
        .collect()
}

/// The history report in Markdown: the detected changes, then every cell's latest median.
pub fn markdown(store: &str, trends: &[Trend]) -> String {
    let mut md = format!(
        "# Latency history\n\nStore: `{store}`; {} cell series. Change points: E-divisive means with a permutation test (p <= 0.05).\n\n## Detected changes\n\n",
        trends.len()
    );
    let rows = change_rows(trends);
    if rows.is_empty() {
        md.push_str("No change point in any series.\n");
    } else {
        md.push_str(CHANGES_HEADER);
        for row in rows {
            let _ = writeln!(md, "| {} |", row.join(" | "));
        }
    }
    md.push_str("\n## Cells\n\n| cell | scenario | machine | runs | first ms | latest ms | change points |\n|---|---|---|---|---|---|---|\n");
    for t in trends {
        let (first, last) = (t.points.first(), t.points.last());
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            t.cell,
            t.scenario,
            t.machine,
            t.points.len(),
            first.map_or(String::new(), |p| ms(p.median_ms)),
            last.map_or(String::new(), |p| ms(p.median_ms)),
            t.changes.len()
        );
    }
    md
}

/// The history report as one HTML page: the changes table, then a trend plot per cell.
pub fn html(store: &str, trends: &[Trend]) -> String {
    let mut h = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>onebench: latency history</title><style>{}</style></head><body>\n<h1>Latency history</h1>\n<p>Store: <code>{}</code>; {} cell series. Change points (red dashes): E-divisive means with a permutation test (p &lt;= 0.05). Hover a point for its run, commit and values.</p>\n<h2>Detected changes</h2>\n",
        crate::html::STYLE,
        escape(store),
        trends.len()
    );
    let rows = change_rows(trends);
    if rows.is_empty() {
        h.push_str("<p>No change point in any series.</p>\n");
    } else {
        h.push_str("<table id=\"changes\"><tr><th>cell</th><th>scenario</th><th>machine</th><th>commits</th><th>before ms</th><th>after ms</th><th>change</th><th>p</th></tr>\n");
        for row in rows {
            let cells: String = row
                .iter()
                .map(|c| format!("<td>{}</td>", escape(c)))
                .collect();
            let _ = writeln!(h, "<tr>{cells}</tr>");
        }
        h.push_str("</table>\n");
    }
    for t in trends {
        let caption = format!("{} ({}, machine {})", t.cell, t.scenario, t.machine);
        let body = trend_svg(t).unwrap_or_else(|e| format!("<p>{}</p>", escape(&e.to_string())));
        let _ = writeln!(
            h,
            "<figure class=\"trend\"><figcaption>{}</figcaption>{body}</figure>",
            escape(&caption)
        );
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trend() -> Trend {
        let points = (0..8)
            .map(|i| TrendPoint {
                run_id: i + 1,
                commit: format!("c{i}abcdef0123"),
                started_at: format!("2026-11-30T10:0{i}:00Z"),
                median_ms: if i < 4 { 10.0 } else { 11.0 },
                ci95_ms: Some([9.8, if i < 4 { 10.2 } else { 11.3 }]),
            })
            .collect();
        Trend {
            cell: "mobileone-s0 reparameterized native t1 b1 224x224".into(),
            scenario: "quick".into(),
            machine: "m1".into(),
            points,
            changes: vec![ChangePoint {
                index: 4,
                p_value: 0.005,
                median_before: 10.0,
                median_after: 11.0,
            }],
        }
    }

    #[test]
    fn every_point_and_change_has_a_tooltip() {
        let svg = trend_svg(&trend()).unwrap();
        assert_eq!(svg.matches("<title>").count(), 8 + 1, "{svg}");
        assert!(svg.contains("<title>run 5 at 2026-11-30T10:04:00Z, commit c4abcdef0123: median 11.000 ms, 95% CI 9.800 .. 11.300 ms</title>"), "{svg}");
        assert!(svg.contains("change point between c3abcdef0123..c4abcdef0123: 10.000 -&gt; 11.000 ms (+10.0%), p = 0.005"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        // Commits label the x axis.
        assert!(svg.contains("\nc4abcdef\n"), "{svg}");
    }

    /// Thirty runs' commits do not fit side by side under the plot: every other (or fifth)
    /// run is labelled instead, no label closer to the next than its width.
    #[test]
    fn a_long_history_labels_only_the_commits_that_fit() {
        let mut long = trend();
        long.points = (0..30)
            .map(|i| TrendPoint {
                commit: format!("{i:02}abcdef0123"),
                ..long.points[0].clone()
            })
            .collect();
        long.changes.clear();
        let svg = trend_svg(&long).unwrap();
        let shown = (0..30)
            .filter(|i| svg.contains(&format!("\n{i:02}abcdef\n")))
            .count();
        assert!((2..=10).contains(&shown), "{shown} commit labels: {svg}");
    }

    #[test]
    fn the_reports_list_the_changes_with_their_commits() {
        let md = markdown("h.sqlite", &[trend()]);
        assert!(md.contains("| mobileone-s0 reparameterized native t1 b1 224x224 | quick | m1 | c3abcdef0123..c4abcdef0123 | 10.000 | 11.000 | +10.0% | 0.005 |"), "{md}");
        assert!(md.contains("| 8 | 10.000 | 11.000 | 1 |"), "{md}");
        let html = html("h.sqlite", &[trend()]);
        assert!(
            html.contains("<table id=\"changes\">") && html.contains("<figure class=\"trend\">")
        );
        let mut quiet = trend();
        quiet.changes.clear();
        assert!(markdown("h.sqlite", &[quiet]).contains("No change point in any series."));
    }
}
