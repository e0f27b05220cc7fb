//! What the report's SVG plots carry on top of plotters' drawing, as tagged SVG: a hover
//! tooltip (`<title>`) on every point and bar, the legend in its own band below the chart
//! (never over the data), and the outline of the data area (`class="data-area"`), so that a
//! browser test can check that nothing covers the data and every mark explains itself.

use std::fmt::Write as _;

use plotters::style::RGBColor;

/// How a legend entry shows its series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mark {
    /// A filled square (bars, boxes).
    Swatch(RGBColor),
    /// A filled circle (points).
    Dot(RGBColor),
    /// A short line (ceilings, trend lines).
    Line(RGBColor),
}

/// One entry of a legend: its mark and its label.
#[derive(Debug, Clone, PartialEq)]
pub struct LegendEntry {
    pub mark: Mark,
    pub label: String,
}

impl LegendEntry {
    pub fn new(mark: Mark, label: impl Into<String>) -> Self {
        LegendEntry {
            mark,
            label: label.into(),
        }
    }
}

/// What a tooltip's hover target covers, in pixels of the SVG.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// A point (a circle of radius 7 around it).
    Point(i32, i32),
    /// A rectangle between two corners (a bar, a box).
    Rect((i32, i32), (i32, i32)),
}

/// A hover target with the exact values of the mark under it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tip {
    pub target: Target,
    pub text: String,
}

impl Tip {
    pub fn new(target: Target, text: impl Into<String>) -> Self {
        Tip {
            target,
            text: text.into(),
        }
    }
}

/// The height of one legend row, in pixels.
const LEGEND_ROW: u32 = 20;
/// The legend's left edge and padding, in pixels.
const LEGEND_LEFT: i32 = 80;

/// The height of the band a legend of `entries` rows needs below the chart (0 without one).
pub fn legend_height(entries: usize) -> u32 {
    match entries {
        0 => 0,
        n => n as u32 * LEGEND_ROW + 12,
    }
}

/// What the chart's drawing reports back: where its data area is and the tooltips of its marks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Marks {
    /// The data area's pixel corners (left-top, right-bottom).
    pub data_area: Option<((i32, i32), (i32, i32))>,
    pub tips: Vec<Tip>,
}

/// Appends the data-area outline, the legend (from `legend_top` down) and the tooltip targets
/// (last, so they lie on top) before the closing `</svg>`.
pub fn apply(svg: String, marks: &Marks, legend: &[LegendEntry], legend_top: u32) -> String {
    let Some(end) = svg.rfind("</svg>") else {
        return svg;
    };
    let mut extra = String::new();
    if let Some(((x0, y0), (x1, y1))) = marks.data_area {
        let _ = writeln!(
            extra,
            "<rect class=\"data-area\" x=\"{x0}\" y=\"{y0}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"none\"/>",
            x1 - x0,
            y1 - y0
        );
    }
    extra.push_str(&legend_svg(legend, legend_top));
    for tip in &marks.tips {
        extra.push_str(&tip_svg(tip));
    }
    format!("{}{extra}{}", &svg[..end], &svg[end..])
}

fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

fn legend_svg(legend: &[LegendEntry], top: u32) -> String {
    if legend.is_empty() {
        return String::new();
    }
    let mut out = String::from("<g class=\"legend\">\n");
    for (i, entry) in legend.iter().enumerate() {
        let y = (top + 6 + i as u32 * LEGEND_ROW + LEGEND_ROW / 2) as i32;
        let x = LEGEND_LEFT;
        let mark = match entry.mark {
            Mark::Swatch(c) => format!(
                "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/>",
                y - 6,
                hex(c)
            ),
            Mark::Dot(c) => format!(
                "<circle cx=\"{}\" cy=\"{y}\" r=\"5\" fill=\"{}\"/>",
                x + 6,
                hex(c)
            ),
            Mark::Line(c) => format!(
                "<line x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{}\" stroke-width=\"2\"/>",
                x + 14,
                hex(c)
            ),
        };
        let _ = writeln!(
            out,
            "{mark}<text x=\"{}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"13\">{}</text>",
            x + 22,
            y + 5,
            escape(&entry.label)
        );
    }
    out.push_str("</g>\n");
    out
}

fn tip_svg(tip: &Tip) -> String {
    let title = format!("<title>{}</title>", escape(&tip.text));
    match tip.target {
        Target::Point(x, y) => format!(
            "<circle cx=\"{x}\" cy=\"{y}\" r=\"7\" fill=\"transparent\" class=\"tip\">{title}</circle>\n"
        ),
        Target::Rect((x0, y0), (x1, y1)) => format!(
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"transparent\" class=\"tip\">{title}</rect>\n",
            x0.min(x1),
            y0.min(y1),
            (x1 - x0).abs().max(1),
            (y1 - y0).abs().max(1)
        ),
    }
}

/// Text escaped for HTML and SVG (element content and attribute values).
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "<svg width=\"10\" height=\"10\"></svg>";

    #[test]
    fn tips_legend_and_data_area_are_added_before_the_end() {
        let marks = Marks {
            data_area: Some(((70, 10), (890, 430))),
            tips: vec![
                Tip::new(Target::Point(5, 6), "a < b & \"c\""),
                Tip::new(Target::Rect((30, 40), (10, 20)), "bar"),
            ],
        };
        let legend = [
            LegendEntry::new(Mark::Swatch(RGBColor(255, 0, 16)), "native t1"),
            LegendEntry::new(Mark::Dot(RGBColor(0, 0, 0)), "x"),
        ];
        let out = apply(EMPTY.into(), &marks, &legend, 480);
        assert!(out.ends_with("</svg>"));
        assert!(out
            .contains("<rect class=\"data-area\" x=\"70\" y=\"10\" width=\"820\" height=\"420\""));
        assert!(out.contains("<title>a &lt; b &amp; &quot;c&quot;</title>"));
        // A rectangle given by any two opposite corners.
        assert!(
            out.contains("<rect x=\"10\" y=\"20\" width=\"20\" height=\"20\" fill=\"transparent\"")
        );
        // The legend lies below the chart: its first row's mark starts at 480 + 6 + 10 - 6.
        assert!(
            out.contains("<rect x=\"80\" y=\"490\" width=\"12\" height=\"12\" fill=\"#ff0010\"/>")
        );
        assert!(out.contains(">native t1</text>"));
        assert_eq!(legend_height(2), 52);
        assert_eq!(legend_height(0), 0);
    }

    #[test]
    fn nothing_is_added_to_what_is_not_an_svg() {
        assert_eq!(apply("<p>".into(), &Marks::default(), &[], 0), "<p>");
    }
}
