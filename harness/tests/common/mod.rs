//! Helpers the harness's integration tests share: running the built binary, checking what it said.

use std::process::{Command, Output};

/// Runs the harness binary with `args` and waits for it.
pub fn harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .output()
        .unwrap()
}

pub use models::testing::assert_contains;

/// Writes scenario `text` to `dir/name` and runs `harness SCENARIO --out dir/out`: what the
/// harness said, and the output folder.
#[allow(dead_code)]
pub fn run_scenario(dir: &std::path::Path, name: &str, text: &str) -> (Output, std::path::PathBuf) {
    let scenario = dir.join(name);
    std::fs::write(&scenario, text).unwrap();
    let out = dir.join("out");
    let said = harness(&[scenario.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    (said, out)
}

/// What the browser's layout check found in one plot (one `<svg>` of the page).
#[allow(dead_code)]
#[derive(Debug, serde::Deserialize)]
pub struct PlotLayout {
    /// The figure's id (or its caption when it has none).
    pub figure: String,
    /// The plot marks its data area (`rect.data-area`).
    pub data_area: bool,
    /// The legend's box intersects the data area's.
    pub legend_over_data: bool,
    /// `<title>` tooltips in the plot.
    pub titles: usize,
    /// Pairs of visible texts whose rendered boxes overlap ("a / b").
    pub text_clashes: Vec<String>,
    /// Every visible text, as rendered.
    pub texts: Vec<String>,
}

/// The script the layout check adds to a copy of a page: for every SVG, the rendered boxes of
/// its data area, legend and texts (after transforms, as the reader sees them), into
/// `<pre id="layout">` as JSON.
const LAYOUT_SCRIPT: &str = r#"<script>
const out = [];
const box = e => e.getBoundingClientRect();
const overlap = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
for (const svg of document.querySelectorAll('svg')) {
  const fig = svg.closest('figure');
  const caption = fig && fig.querySelector('figcaption');
  const figure = fig ? (fig.id || (caption ? caption.textContent : '')) : '';
  const area = svg.querySelector('rect.data-area');
  const legend = svg.querySelector('g.legend');
  // plotters may write one tick label twice at one place (a log axis's decade): one text to a reader.
  const seen = new Set();
  const texts = [...svg.querySelectorAll('text')].filter(t => {
    const b = box(t), key = t.textContent.trim() + '@' + b.left + ',' + b.top;
    if (t.textContent.trim() === '' || seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  const text_clashes = [];
  for (let i = 0; i < texts.length; i++)
    for (let j = i + 1; j < texts.length; j++)
      if (overlap(box(texts[i]), box(texts[j])))
        text_clashes.push(texts[i].textContent.trim() + ' / ' + texts[j].textContent.trim());
  out.push({figure, data_area: !!area, legend_over_data: !!(area && legend && overlap(box(area), box(legend))),
    titles: svg.querySelectorAll('title').length, text_clashes, texts: texts.map(t => t.textContent.trim())});
}
const pre = document.createElement('pre');
pre.id = 'layout';
pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"#;

/// Headless Chromium, when installed (CI installs it and sets ONEBENCH_REQUIRE_BROWSER=1).
#[allow(dead_code)]
pub fn chromium() -> Option<&'static std::path::Path> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(std::path::Path::new)
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("ONEBENCH_REQUIRE_BROWSER").is_none(),
            "ONEBENCH_REQUIRE_BROWSER is set but Chromium is not installed"
        );
        eprintln!(
            "SKIPPED the browser check: Chromium is not installed (apt-get install chromium)"
        );
    }
    found
}

/// Headless Chromium with a throwaway profile and nothing fetched.
#[allow(dead_code)]
pub fn chromium_command(chromium: &std::path::Path, profile: &std::path::Path) -> Command {
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1200,900",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

/// Loads `page` in headless Chromium: asserts no console error and returns the DOM as the
/// browser built it (None without Chromium).
#[allow(dead_code)]
pub fn browser_dom(page: &std::path::Path) -> Option<String> {
    let chromium = chromium()?;
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let o = chromium_command(chromium, profile.path())
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    let console_errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(console_errors.is_empty(), "console: {console_errors:?}");
    Some(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The layout of every plot of an HTML page as Chromium renders it (None without Chromium):
/// the page is copied with the layout script added (the report itself has no script).
#[allow(dead_code)]
pub fn plot_layouts(page: &std::path::Path) -> Option<Vec<PlotLayout>> {
    let html = std::fs::read_to_string(page).unwrap();
    let end = html.rfind("</body>").expect("a page with a body");
    let checked = page.with_extension("layout-check.html");
    std::fs::write(
        &checked,
        format!("{}{LAYOUT_SCRIPT}{}", &html[..end], &html[end..]),
    )
    .unwrap();
    let dom = browser_dom(&checked)?;
    std::fs::remove_file(&checked).unwrap();
    let start = dom
        .find("<pre id=\"layout\">")
        .expect("the layout script ran")
        + 17;
    let json = &dom[start..start + dom[start..].find("</pre>").unwrap()];
    let json = json
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    Some(serde_json::from_str(&json).unwrap())
}

/// Asserts that every plot of `page` reads well in a browser: its data area marked, no legend
/// over the data, no two texts on top of each other, and at least `min_titles(figure)`
/// tooltips. Returns the layouts (None without Chromium).
#[allow(dead_code)]
pub fn assert_plots_readable(
    page: &std::path::Path,
    min_titles: impl Fn(&str) -> usize,
) -> Option<Vec<PlotLayout>> {
    let layouts = plot_layouts(page)?;
    assert!(!layouts.is_empty(), "no plot in {}", page.display());
    for l in &layouts {
        assert!(l.data_area, "{}: no data area marked", l.figure);
        assert!(
            !l.legend_over_data,
            "{}: the legend covers the data",
            l.figure
        );
        assert!(
            l.text_clashes.is_empty(),
            "{}: texts drawn over each other: {:?}",
            l.figure,
            l.text_clashes
        );
        let want = min_titles(&l.figure);
        assert!(
            l.titles >= want,
            "{}: {} tooltips, expected at least {want}",
            l.figure,
            l.titles
        );
    }
    Some(layouts)
}
