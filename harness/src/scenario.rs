//! Scenario files: parsing (YAML via serde_norway, unknown fields refused), validation with
//! errors that name the file, line and field and say what is allowed, the `--quick` and
//! command-line overrides, and expansion into cells.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
#[cfg(test)]
use models::Variant;
use models::{Form, Model, Naming, Precision, UnknownName};
use serde::Deserialize;
use std::str::FromStr;

/// The environment variable that names the results store (below `--history`, above the
/// scenario's `history:`).
pub const HISTORY_VARIABLE: &str = "ONEBENCH_HISTORY";
/// The store location that keeps no history.
pub const HISTORY_OFF: &str = crate::history::OFF;

/// A scenario as written in YAML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub models: Vec<ModelName>,
    #[serde(default = "default_forms")]
    pub forms: Vec<FormName>,
    /// Backend names, or `all`: every available backend except `reference`.
    #[serde(default = "default_backends")]
    pub backends: Vec<String>,
    #[serde(default = "default_threads")]
    pub threads: Vec<usize>,
    /// Number formats every cell runs in (fp32, bf16, fp16, int8); a backend without one skips it.
    #[serde(default = "default_precisions")]
    pub precisions: Vec<PrecisionName>,
    #[serde(default = "one")]
    pub batch: usize,
    /// `224` or `[height, width]` (read as YAML here, interpreted by validation so its errors
    /// carry the line).
    #[serde(default = "default_input_size")]
    pub input_size: serde_norway::Value,
    #[serde(default)]
    pub weights: WeightsSpec,
    #[serde(default)]
    pub warmup: Warmup,
    #[serde(default)]
    pub measurement: Measurement,
    #[serde(default)]
    pub cooldown_ms: u64,
    /// Fresh processes each cell is measured in (the harness runs itself once per process,
    /// each with its share of the measurement budget); 1 measures in this process.
    #[serde(default = "one")]
    pub processes: usize,
    #[serde(default)]
    pub order: Order,
    /// Seeds the input tensor, the shuffled order and the bootstrap.
    #[serde(default)]
    pub seed: u64,
    /// Output folder, relative to the working directory (default `results/<name>`).
    #[serde(default)]
    pub output: Option<PathBuf>,
    /// The results store every run is kept in: a SQLite file (relative to the working
    /// directory), a `postgres://` URL, or `off` (default `history.sqlite` beside the output
    /// folder; `--history` and `ONEBENCH_HISTORY` override it).
    #[serde(default)]
    pub history: Option<String>,
    #[serde(default)]
    pub device_profile: Option<DeviceProfileSpec>,
    #[serde(default)]
    pub reference_measurements: Option<ReferenceSpec>,
}

fn default_forms() -> Vec<FormName> {
    Form::ALL.into_iter().map(Parsed).collect()
}
fn default_backends() -> Vec<String> {
    vec!["all".into()]
}
impl ScenarioFile {
    /// Every (thread count, precision) pair of the cells, thread counts outermost.
    pub fn threads_and_precisions(&self) -> Vec<(usize, Precision)> {
        let precisions = || self.precisions.iter().map(|p| p.0);
        (self.threads.iter())
            .flat_map(|&t| precisions().map(move |p| (t, p)))
            .collect()
    }
}

fn default_precisions() -> Vec<PrecisionName> {
    vec![Parsed(Precision::Fp32)]
}
fn default_threads() -> Vec<usize> {
    vec![1]
}
fn one() -> usize {
    1
}
fn default_input_size() -> serde_norway::Value {
    serde_norway::Value::from(224u64)
}

/// A name from `models` (a model, form or naming), checked while parsing so the error carries
/// the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String", bound = "T: FromStr<Err = UnknownName>")]
pub struct Parsed<T>(pub T);

pub type ModelName = Parsed<Model>;
pub type FormName = Parsed<Form>;
pub type NamingName = Parsed<Naming>;
pub type PrecisionName = Parsed<Precision>;

impl<T: FromStr<Err = UnknownName>> TryFrom<String> for Parsed<T> {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
            .map(Parsed)
            .map_err(|e: UnknownName| e.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputSizeSpec {
    Square(usize),
    HeightWidth([usize; 2]),
}

impl InputSizeSpec {
    /// `224` or `[height, width]`.
    pub fn parse(v: &serde_norway::Value) -> Result<Self, String> {
        let size = |v: &serde_norway::Value| v.as_u64().map(|n| n as usize);
        match v {
            serde_norway::Value::Number(_) => size(v).map(InputSizeSpec::Square),
            serde_norway::Value::Sequence(items) if items.len() == 2 => {
                match (size(&items[0]), size(&items[1])) {
                    (Some(h), Some(w)) => Some(InputSizeSpec::HeightWidth([h, w])),
                    _ => None,
                }
            }
            _ => None,
        }
        .ok_or_else(|| {
            format!(
                "expected a size like 224 or a list [height, width] of positive sizes, found {}",
                flow(v)
            )
        })
    }
}

/// A YAML value on one line, as it would be written in flow style (`[-1, 64]`).
fn flow(v: &serde_norway::Value) -> String {
    match v {
        serde_norway::Value::Sequence(items) => {
            format!(
                "[{}]",
                items.iter().map(flow).collect::<Vec<_>>().join(", ")
            )
        }
        other => serde_norway::to_string(other)
            .unwrap_or_default()
            .trim()
            .replace('\n', " "),
    }
}

impl InputSizeSpec {
    pub fn height_width(self) -> (usize, usize) {
        match self {
            InputSizeSpec::Square(n) => (n, n),
            InputSizeSpec::HeightWidth([h, w]) => (h, w),
        }
    }
}

/// Seeded weights (the default) or checkpoints per model; models without one use the seed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsSpec {
    #[serde(default)]
    pub seed: u64,
    /// model -> checkpoint path (relative to the scenario file).
    #[serde(default)]
    pub checkpoints: BTreeMap<ModelName, PathBuf>,
    #[serde(default)]
    pub naming: Option<NamingName>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Warmup {
    #[serde(default = "default_warmup_runs")]
    pub runs: usize,
    #[serde(default = "default_warmup_ms")]
    pub min_time_ms: u64,
}

fn default_warmup_runs() -> usize {
    3
}
fn default_warmup_ms() -> u64 {
    200
}

impl Default for Warmup {
    fn default() -> Self {
        Warmup {
            runs: default_warmup_runs(),
            min_time_ms: default_warmup_ms(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measurement {
    #[serde(default = "default_min_runs")]
    pub min_runs: usize,
    #[serde(default = "default_max_runs")]
    pub max_runs: usize,
    #[serde(default = "default_min_time_ms")]
    pub min_time_ms: u64,
    #[serde(default = "default_max_time_ms")]
    pub max_time_ms: u64,
    /// Stop early once the 95% interval of the median is within ± this fraction of it
    /// (0.02 = ±2%); absent: run to the time or run limits.
    #[serde(default = "default_target_ci")]
    pub target_ci: Option<f64>,
}

fn default_min_runs() -> usize {
    10
}
fn default_max_runs() -> usize {
    1000
}
fn default_min_time_ms() -> u64 {
    500
}
fn default_max_time_ms() -> u64 {
    5000
}
fn default_target_ci() -> Option<f64> {
    Some(0.02)
}

impl Default for Measurement {
    fn default() -> Self {
        Measurement {
            min_runs: default_min_runs(),
            max_runs: default_max_runs(),
            min_time_ms: default_min_time_ms(),
            max_time_ms: default_max_time_ms(),
            target_ci: default_target_ci(),
        }
    }
}

/// The order cells are measured in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Cell after cell, in the file's order.
    Sequential,
    /// Cell after cell, in a seeded random order.
    Shuffled,
    /// Round-robin: every cell gets a short turn in each round until all are done, so slow
    /// drift of the machine (heat, other load) spreads over all cells alike.
    #[default]
    Interleaved,
}

impl Order {
    pub fn name(self) -> &'static str {
        match self {
            Order::Sequential => "sequential",
            Order::Shuffled => "shuffled",
            Order::Interleaved => "interleaved",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceProfileSpec {
    pub name: String,
    pub peak_gflops: f64,
    pub memory_gbps: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceSpec {
    pub name: String,
    #[serde(default = "reparameterized")]
    pub form: FormName,
    pub latency_ms: BTreeMap<ModelName, f64>,
}

fn reparameterized() -> FormName {
    Parsed(Form::Reparameterized)
}

/// A parsed, validated scenario and where it came from.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub file: ScenarioFile,
    pub path: PathBuf,
    pub sha256: String,
    pub quick: bool,
}

/// Command-line overrides of a scenario (`None`: keep the file's).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub models: Option<Vec<String>>,
    pub forms: Option<Vec<String>>,
    pub backends: Option<Vec<String>>,
    pub threads: Option<Vec<usize>>,
    pub precisions: Option<Vec<String>>,
    pub out: Option<PathBuf>,
    /// The results store (`--history`): a SQLite path, a `postgres://` URL or `off`.
    pub history: Option<String>,
    pub quick: bool,
    pub processes: Option<usize>,
    /// This process is one of N workers of a run in N processes: it measures in itself, with
    /// 1/N of the measurement budget.
    pub worker_of: Option<usize>,
}

impl Scenario {
    /// Reads, parses and validates a scenario file, then applies the overrides.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Scenario> {
        let bytes =
            std::fs::read(path).map_err(|e| anyhow!("{}: cannot read: {e}", path.display()))?;
        Scenario::parse(path, &bytes, overrides)
    }

    /// Parses and validates the bytes of a scenario file (`path` names it in errors and
    /// anchors relative paths), then applies the overrides.
    pub fn parse(path: &Path, bytes: &[u8], overrides: &Overrides) -> Result<Scenario> {
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| anyhow!("{}: not UTF-8 text", path.display()))?;
        // Editors on Windows start UTF-8 files with a byte-order mark; it is not YAML.
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text).to_string();
        let file: ScenarioFile =
            serde_norway::from_str(&text).map_err(|e| describe_yaml_error(path, &text, &e))?;
        let mut scenario = Scenario {
            file,
            path: path.to_path_buf(),
            sha256: sha256_hex(bytes),
            quick: false,
        };
        scenario.validate(&text)?;
        scenario.apply(overrides)?;
        let (height, width) = scenario.input_size();
        scenario
            .check_memory(scenario.file.batch, height, width)
            .map_err(|m| {
                let line = line_of(&text, "batch").or(line_of(&text, "input_size"));
                anyhow!("{}: `batch` and `input_size`: {m}", at_line(path, line))
            })?;
        Ok(scenario)
    }

    fn validate(&self, text: &str) -> Result<()> {
        let located = |(field, message): (&str, String)| -> anyhow::Error {
            anyhow!(
                "{}: `{field}`: {message}",
                at_line(&self.path, field_line(text, field))
            )
        };
        self.check_cells()
            .and_then(|()| self.check_measurement())
            .and_then(|()| self.check_inputs())
            .and_then(|()| check_history(self.file.history.as_deref()).map_err(|m| ("history", m)))
            .map_err(located)
    }

    /// What the cells are: models, forms, backends, threads, batch and input size.
    fn check_cells(&self) -> Result<(), (&'static str, String)> {
        let f = &self.file;
        check_name(&f.name).map_err(|m| ("name", m))?;
        if f.models.is_empty() {
            return Err((
                "models",
                "list at least one model (`harness list` names them)".into(),
            ));
        }
        if f.forms.is_empty() {
            return Err((
                "forms",
                "list at least one form (unfused, reparameterized)".into(),
            ));
        }
        check_backends(&f.backends).map_err(|m| ("backends", m))?;
        check_threads(&f.threads).map_err(|m| ("threads", m))?;
        if f.precisions.is_empty() {
            return Err((
                "precisions",
                "list at least one (fp32, bf16, fp16, int8)".into(),
            ));
        }
        if f.batch == 0 || f.batch > MAX_BATCH {
            return Err(("batch", format!("{}: a batch of 1 to {MAX_BATCH}", f.batch)));
        }
        let (h, w) = InputSizeSpec::parse(&f.input_size)
            .map_err(|m| ("input_size", m))?
            .height_width();
        if h < 32 || w < 32 || h > MAX_SIDE || w > MAX_SIDE {
            return Err((
                "input_size",
                format!("{h}x{w}: height and width must be 32 to {MAX_SIDE}"),
            ));
        }
        Ok(())
    }

    /// How the cells are measured: cool-down, processes and the measurement budget.
    fn check_measurement(&self) -> Result<(), (&'static str, String)> {
        let f = &self.file;
        if f.cooldown_ms > MAX_COOLDOWN_MS {
            return Err((
                "cooldown_ms",
                format!("{}: at most {MAX_COOLDOWN_MS} (a minute)", f.cooldown_ms),
            ));
        }
        check_processes(f.processes).map_err(|m| ("processes", m))?;
        let m = &f.measurement;
        if m.min_runs == 0 || m.min_runs > m.max_runs {
            return Err((
                "measurement.min_runs",
                format!(
                    "{} with max_runs {}: need 1 <= min_runs <= max_runs",
                    m.min_runs, m.max_runs
                ),
            ));
        }
        if m.min_time_ms > m.max_time_ms {
            return Err((
                "measurement.min_time_ms",
                format!("{} is above max_time_ms {}", m.min_time_ms, m.max_time_ms),
            ));
        }
        if let Some(t) = m.target_ci {
            if !(t > 0.0 && t < 1.0) {
                return Err((
                    "measurement.target_ci",
                    format!("{t}: a fraction between 0 and 1, e.g. 0.02 for ±2%"),
                ));
            }
        }
        Ok(())
    }

    /// What the run reads besides the scenario: checkpoints, a device profile, published
    /// latencies.
    fn check_inputs(&self) -> Result<(), (&'static str, String)> {
        let f = &self.file;
        for (model, checkpoint) in &f.weights.checkpoints {
            if model.0.mobileone().is_none() {
                return Err((
                    "weights.checkpoints",
                    format!(
                        "{}: checkpoints load for MobileOne models only; the zoo runs on seeded weights",
                        model.0
                    ),
                ));
            }
            let resolved = self.resolve(checkpoint);
            if !resolved.is_file() {
                return Err((
                    "weights.checkpoints",
                    format!(
                        "{}: checkpoint {} does not exist",
                        model.0,
                        resolved.display()
                    ),
                ));
            }
        }
        if let Some(d) = &f.device_profile {
            if !(d.peak_gflops > 0.0 && d.memory_gbps > 0.0) {
                return Err((
                    "device_profile",
                    "peak_gflops and memory_gbps must be positive".into(),
                ));
            }
        }
        if let Some(r) = &f.reference_measurements {
            if let Some((m, v)) = r.latency_ms.iter().find(|(_, v)| v.is_nan() || **v <= 0.0) {
                return Err((
                    "reference_measurements.latency_ms",
                    format!("{}: {v} is not a positive latency", m.0),
                ));
            }
        }
        Ok(())
    }

    /// The largest cell must fit in this machine's available memory: its peak activations,
    /// counted by the cost model, times MEMORY_FACTOR (the f64 reference beside the plan).
    fn check_memory(&self, batch: usize, height: usize, width: usize) -> Result<(), String> {
        let size = models::InputSize {
            batch,
            height,
            width,
        };
        for model in &self.file.models {
            for form in &self.file.forms {
                check_cell_memory(model.0, form.0, size)
                    .map_err(|m| format!("{m}; use a smaller batch or input_size"))?;
            }
        }
        Ok(())
    }

    /// A path from the scenario, relative to the scenario file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            return path.to_path_buf();
        }
        self.path.parent().unwrap_or(Path::new(".")).join(path)
    }

    fn apply(&mut self, o: &Overrides) -> Result<()> {
        let f = &mut self.file;
        if let Some(models) = &o.models {
            f.models = parse_list(models, "--models")?;
        }
        if let Some(forms) = &o.forms {
            f.forms = parse_list(forms, "--forms")?;
        }
        if let Some(backends) = &o.backends {
            check_backends(backends).map_err(|m| anyhow!("--backends: {m}"))?;
            f.backends = backends.clone();
        }
        if let Some(threads) = &o.threads {
            check_threads(threads).map_err(|m| anyhow!("--threads: {m}"))?;
            f.threads = threads.clone();
        }
        if let Some(out) = &o.out {
            f.output = Some(out.clone());
        }
        // An empty ONEBENCH_HISTORY is no setting (as shells leave it); an empty --history is
        // a mistake.
        check_history(o.history.as_deref()).map_err(|m| anyhow!("--history: {m}"))?;
        if let Some(history) = o.history.clone().or_else(|| {
            std::env::var(HISTORY_VARIABLE)
                .ok()
                .filter(|v| !v.trim().is_empty())
        }) {
            f.history = Some(history);
        }
        if o.quick {
            self.quick = true;
            f.warmup = Warmup {
                runs: 1,
                min_time_ms: 0,
            };
            f.measurement = Measurement {
                min_runs: 3,
                max_runs: 5,
                min_time_ms: 0,
                max_time_ms: 1000,
                target_ci: None,
            };
            f.cooldown_ms = 0;
        }
        if let Some(precisions) = &o.precisions {
            f.precisions = parse_list(precisions, "--precisions")?;
        }
        if let Some(n) = o.processes {
            check_processes(n).map_err(|m| anyhow!("--processes: {m}"))?;
            f.processes = n;
        }
        if let Some(n) = o.worker_of {
            check_processes(n).map_err(|m| anyhow!("--worker-of: {m}"))?;
            f.processes = 1;
            // The run of all workers is stored once, by the process that merges them.
            f.history = Some(HISTORY_OFF.into());
            f.measurement = worker_share(&f.measurement, n);
        }
        dedup(&mut f.models);
        dedup(&mut f.forms);
        dedup(&mut f.threads);
        dedup(&mut f.precisions);
        dedup(&mut f.backends);
        Ok(())
    }

    /// The results store this run is kept in; `None` when the history is `off`.
    pub fn history_location(&self) -> Option<crate::history::Location> {
        match self.file.history.as_deref() {
            Some(location) => crate::history::location_of(location),
            None => Some(crate::history::default_location(&self.output_dir())),
        }
    }

    pub fn output_dir(&self) -> PathBuf {
        self.file
            .output
            .clone()
            .unwrap_or_else(|| PathBuf::from("results").join(&self.file.name))
    }

    /// (height, width) of the input; validated at load.
    pub fn input_size(&self) -> (usize, usize) {
        InputSizeSpec::parse(&self.file.input_size)
            .expect("validated at load")
            .height_width()
    }
}

fn parse_list<T: FromStr<Err = UnknownName>>(
    items: &[String],
    flag: &str,
) -> Result<Vec<Parsed<T>>> {
    if items.is_empty() {
        bail!("{flag}: list at least one value");
    }
    items
        .iter()
        .map(|s| Parsed::try_from(s.clone()).map_err(|e| anyhow!("{flag}: {e}")))
        .collect()
}

/// The longest pause between cells or turns.
pub const MAX_COOLDOWN_MS: u64 = 60_000;

/// The most processes a cell may be measured in.
pub const MAX_PROCESSES: usize = 100;

/// A results store's location, when one is given, names something: a blank one would be a
/// SQLite file called "" (or " ") in the working folder.
fn check_history(location: Option<&str>) -> Result<(), String> {
    match location {
        Some(l) if l.trim().is_empty() => Err(format!(
            "`{l}`: empty; give a SQLite file, a postgres:// URL, or `{HISTORY_OFF}` to keep nothing"
        )),
        _ => Ok(()),
    }
}

fn check_processes(n: usize) -> Result<(), String> {
    if (1..=MAX_PROCESSES).contains(&n) {
        Ok(())
    } else {
        Err(format!("{n}: from 1 to {MAX_PROCESSES}"))
    }
}

/// One worker's share of a cell's measurement budget when it is measured in `n` processes:
/// runs and times divided by n (at least one run each; two when the scenario asks for two or
/// more, so each process has a median of its own), the confidence target kept.
pub fn worker_share(m: &Measurement, n: usize) -> Measurement {
    let runs = |r: usize| r.div_ceil(n).max(r.min(2));
    Measurement {
        min_runs: runs(m.min_runs),
        max_runs: runs(m.max_runs).max(runs(m.min_runs)),
        min_time_ms: m.min_time_ms / n as u64,
        max_time_ms: m.max_time_ms.div_ceil(n as u64),
        target_ci: m.target_ci,
    }
}
/// The largest batch a scenario may ask for.
pub const MAX_BATCH: usize = 1024;
/// The largest input height or width a scenario may ask for.
pub const MAX_SIDE: usize = 4096;
/// Bytes a cell needs per byte of peak activations: the f32 plan, the f64 reference and
/// their inputs and outputs.
const MEMORY_FACTOR: u64 = 4;

/// Whether one cell of `model` in `form` at `size` fits in the available memory: its peak
/// activations by the cost model times MEMORY_FACTOR, plus its parameters in f64.
pub fn check_cell_memory(model: Model, form: Form, size: models::InputSize) -> Result<(), String> {
    let graph = model.build(form, size).map_err(|e| e.to_string())?;
    let cost = models::model_cost(&graph);
    let need = cost
        .totals
        .peak_activation_bytes
        .saturating_mul(MEMORY_FACTOR)
        .saturating_add(cost.totals.params.saturating_mul(8));
    models::memory::check_fits(
        need,
        &format!(
            "{model} {form} at batch {}, {}x{}",
            size.batch, size.height, size.width
        ),
    )
}

/// Removes repeated entries, keeping the first of each (`[s0, mobileone-s0]` is one model).
fn dedup<T: PartialEq + Clone>(items: &mut Vec<T>) {
    let mut kept: Vec<T> = Vec::with_capacity(items.len());
    for item in items.drain(..) {
        if !kept.contains(&item) {
            kept.push(item);
        }
    }
    *items = kept;
}

/// A scenario name names the output folder `results/<name>`: a name, not a path.
fn check_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 100 || name.starts_with('.') || !name.chars().all(allowed) {
        return Err(format!(
            "`{name}`: a name of up to 100 letters, digits, '-', '_' and '.', not starting with '.' (it names the folder results/<name>; give a path with `output:` or --out)"
        ));
    }
    Ok(())
}

/// Thread counts from 1 to the machine's logical cores: more threads than cores measure the
/// OS scheduler, not the engine.
pub fn check_threads(threads: &[usize]) -> Result<(), String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads.is_empty() || threads.contains(&0) {
        return Err(format!("{threads:?}: list thread counts of at least 1"));
    }
    match threads.iter().find(|&&t| t > cores) {
        Some(t) => Err(format!(
            "{t} is more than this machine's {cores} logical cores; list thread counts from 1 to {cores}"
        )),
        None => Ok(()),
    }
}

/// Backend names must be known to this build (availability is decided at run time).
fn check_backends(names: &[String]) -> Result<(), String> {
    if names.is_empty() {
        return Err("list at least one backend, or `all`".into());
    }
    for name in names {
        if name != "all" && backends::get(name).is_err() {
            return Err(format!(
                "unknown backend `{name}`; allowed: all, {}",
                backends::names()
            ));
        }
    }
    Ok(())
}

/// serde_norway's message already says what was found, what is allowed and where; prefix the
/// file and line in the `file:line:` form editors understand. A duplicated key is located at
/// its second appearance (serde_norway points at the mapping that holds it).
fn describe_yaml_error(path: &Path, text: &str, e: &serde_norway::Error) -> anyhow::Error {
    let message = e.to_string();
    let duplicate = message
        .strip_prefix("duplicate field `")
        .and_then(|rest| rest.split('`').next())
        .and_then(|key| nth_line_of(text, key, 2));
    let line = duplicate.or(e.location().map(|loc| loc.line()));
    anyhow!("{}: {message}", at_line(path, line))
}

/// `file:line` where the line is known, else `file`.
fn at_line(path: &Path, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{}:{line}", path.display()),
        None => path.display().to_string(),
    }
}

/// The line of a (possibly dotted) field: its own key, else its parent's.
fn field_line(text: &str, field: &str) -> Option<usize> {
    let mut parts: Vec<&str> = field.split('.').collect();
    while let Some(key) = parts.pop() {
        if let Some(line) = line_of(text, key) {
            return Some(line);
        }
    }
    None
}

/// The 1-based line where `key:` first appears, as a block key or inside a flow mapping.
fn line_of(text: &str, key: &str) -> Option<usize> {
    nth_line_of(text, key, 1)
}

/// The 1-based line of the `n`th appearance of `key:` as a key.
fn nth_line_of(text: &str, key: &str, n: usize) -> Option<usize> {
    let pattern = format!("{key}:");
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            l.match_indices(&pattern).any(|(at, _)| {
                let before = l[..at].trim_end();
                before.is_empty() || before.ends_with(['{', ',', '-'])
            })
        })
        .nth(n - 1)
        .map(|(i, _)| i + 1)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::testing::assert_contains;

    fn load_text(text: &str, overrides: &Overrides) -> Result<Scenario> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.yaml");
        std::fs::write(&path, text).unwrap();
        Scenario::load(&path, overrides).map_err(|e| {
            anyhow!(
                "{}",
                e.to_string()
                    .replace(&dir.path().display().to_string(), "DIR")
            )
        })
    }

    fn err(text: &str) -> String {
        load_text(text, &Overrides::default())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_minimal_scenario_gets_the_defaults() {
        let s = load_text(
            "name: t\nmodels: [s0, mobileone-s3]\n",
            &Overrides::default(),
        )
        .unwrap();
        let f = &s.file;
        assert_eq!(
            f.models,
            [
                Parsed(Model::MobileOne(Variant::S0)),
                Parsed(Model::MobileOne(Variant::S3))
            ]
        );
        assert_eq!(f.forms.len(), 2);
        assert_eq!(f.backends, ["all"]);
        assert_eq!(
            (f.threads.clone(), f.batch, s.input_size()),
            (vec![1], 1, (224, 224))
        );
        assert_eq!(f.order, Order::Interleaved);
        assert_eq!(f.measurement, Measurement::default());
        assert_eq!(s.output_dir(), PathBuf::from("results/t"));
        assert_eq!(s.sha256.len(), 64);
    }

    #[test]
    fn unknown_fields_name_the_line_and_the_allowed_fields() {
        let e = err("name: t\nmodels: [s0]\nthread: [1]\n");
        assert!(e.starts_with("DIR/s.yaml:3: "), "{e}");
        assert_contains(&e, &["unknown field `thread`", "`threads`"]);
        let e = err("name: t\nmodels: [s0]\nmeasurement:\n  min_runs: 3\n  max_rnus: 9\n");
        assert_contains(&e, &[":5: ", "unknown field `max_rnus`", "max_runs"]);
    }

    #[test]
    fn bad_values_name_the_line_field_and_what_is_allowed() {
        // serde_norway points at the start of the `models` sequence (line 3), naming the value.
        let e = err("name: t\nmodels:\n  - s0\n  - s7\n");
        assert_contains(
            &e,
            &[
                ":3: models: unknown model `s7`",
                "mobileone-s0, mobileone-s1",
                "resnet-18",
            ],
        );
        let e = err("name: t\nmodels: [s0]\nforms: [folded]\n");
        assert_contains(&e, &[":3: ", "unknown form `folded`"]);
        let e = err("name: t\nmodels: [s0]\norder: random\n");
        assert_contains(&e, &[":3: ", "sequential", "interleaved"]);
        let e = err("name: t\nmodels: [s0]\nbackends: [tensorrt]\n");
        assert!(
            e.contains(":3: `backends`: unknown backend `tensorrt`; allowed: all, reference"),
            "{e}"
        );
        let e = err("name: t\nmodels: [s0]\nthreads: [1, 0]\n");
        assert_contains(&e, &[":3: `threads`"]);
        let e = err("name: t\nmodels: [s0]\nprecisions: [fp32, fp64]\n");
        assert_contains(&e, &[":3", "unknown precision `fp64`", "fp32, bf16, fp16"]);
        let e = err("name: t\nmodels: [s0]\nprecisions: []\n");
        assert_contains(
            &e,
            &[":3: `precisions`: list at least one (fp32, bf16, fp16, int8)"],
        );
        let e = err("name: t\nmodels: [s0]\nmeasurement:\n  min_runs: 50\n  max_runs: 10\n");
        assert_contains(&e, &[":4: `measurement.min_runs`: 50 with max_runs 10"]);
        let e = err("name: t\nmodels: [s0]\nmeasurement:\n  target_ci: 2\n");
        assert_contains(&e, &["`measurement.target_ci`: 2: a fraction"]);
        let e = err("name: t\nmodels: [s0]\ninput_size: 16\n");
        assert_contains(&e, &[":3: `input_size`: 16x16"]);
        let e = err("name: t\nmodels: [s0]\ninput_size: [224]\n");
        assert_contains(&e, &[":3: ", "a size like 224 or a list [height, width]"]);
        let e = err("name: t\nmodels: [s0]\nweights:\n  checkpoints:\n    s0: nowhere.pth\n");
        assert_contains(&e, &[":4: `weights.checkpoints`: mobileone-s0: checkpoint DIR/nowhere.pth does not exist"]);
        let e = err("models: [s0]\n");
        assert_contains(&e, &["missing field `name`"]);
        let e = err("name: t\nmodels: []\n");
        assert_contains(&e, &[":2: `models`: list at least one model"]);
        let e = err("name: t\nmodels: [s0]\nreference_measurements:\n  name: x\n  latency_ms:\n    s0: -1\n");
        assert_contains(
            &e,
            &["`reference_measurements.latency_ms`: mobileone-s0: -1"],
        );
    }

    #[test]
    fn overrides_and_quick_mode() {
        let o = Overrides {
            models: Some(vec!["s1".into()]),
            forms: Some(vec!["fused".into()]),
            backends: Some(vec!["reference".into()]),
            threads: Some(vec![2]),
            out: Some("x".into()),
            quick: true,
            ..Overrides::default()
        };
        let s = load_text("name: t\nmodels: [s0]\nthreads: [1]\n", &o).unwrap();
        assert_eq!(s.file.models, [Parsed(Model::MobileOne(Variant::S1))]);
        assert_eq!(s.file.forms, [Parsed(Form::Reparameterized)]);
        assert_eq!(
            (s.file.backends.clone(), s.file.threads.clone()),
            (vec!["reference".to_string()], vec![2])
        );
        assert_eq!(s.output_dir(), PathBuf::from("x"));
        assert!(s.quick && s.file.measurement.max_runs == 5 && s.file.warmup.runs == 1);
        let bad = Overrides {
            models: Some(vec!["s9".into()]),
            ..Default::default()
        };
        let e = load_text("name: t\nmodels: [s0]\n", &bad)
            .unwrap_err()
            .to_string();
        assert_contains(&e, &["--models: unknown model `s9`"]);
    }

    #[test]
    fn hostile_values_are_refused_by_field_and_line() {
        let e = err("name: ../../evil\nmodels: [s0]\n");
        assert!(
            e.starts_with("DIR/s.yaml:1: `name`: `../../evil`: a name of"),
            "{e}"
        );
        let e = err("name: t\nmodels: [s0]\nthreads: [1, 10000]\n");
        assert_contains(&e, &[":3: `threads`: 10000 is more than this machine's"]);
        let e = err("name: t\nmodels: [s0]\nbatch: 1000000\n");
        assert_contains(&e, &[":3: `batch`: 1000000: a batch of 1 to 1024"]);
        let e = err("name: t\nmodels: [s0]\ninput_size: 100000\n");
        assert_contains(
            &e,
            &[":3: `input_size`: 100000x100000: height and width must be 32 to 4096"],
        );
        let e = err("name: t\nmodels: [s4]\ninput_size: 4096\nbatch: 1024\n");
        assert!(
            e.contains(
                ":4: `batch` and `input_size`: mobileone-s4 unfused at batch 1024, 4096x4096 needs"
            ) && e.contains("is available; use a smaller batch or input_size"),
            "{e}"
        );
        let e = err("name: t\nmodels: [s0]\ncooldown_ms: 1000000000000\n");
        assert_contains(&e, &[":3: `cooldown_ms`: 1000000000000: at most 60000"]);
        let e = err("name: t\nmodels: [s0]\ninput_size: [-1, 64]\n");
        assert!(e.ends_with("found [-1, 64]"), "{e}");
        let o = Overrides {
            threads: Some(vec![100_000]),
            ..Default::default()
        };
        let e = load_text("name: t\nmodels: [s0]\n", &o)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--threads: 100000 is more than"), "{e}");
    }

    #[test]
    fn lines_point_at_the_field_in_flow_style_and_at_a_duplicate() {
        let e = err("name: t\nmodels: [s0]\nmeasurement: {min_runs: 3, target_ci: 0}\n");
        assert!(
            e.starts_with("DIR/s.yaml:3: `measurement.target_ci`: 0: a fraction"),
            "{e}"
        );
        let e = err("name: t\nmodels: [s0]\nforms: [unfused]\nmodels: [s1]\n");
        assert!(
            e.starts_with("DIR/s.yaml:4: duplicate field `models`"),
            "{e}"
        );
    }

    #[test]
    fn a_byte_order_mark_is_not_yaml_and_repeats_are_one_cell() {
        let s = load_text(
            "\u{feff}name: t\nmodels: [s0, s0, mobileone-s0, s1]\nthreads: [1, 1]\nforms: [fused, reparameterized]\nbackends: [native, native]\n",
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(
            s.file.models,
            [
                Parsed(Model::MobileOne(Variant::S0)),
                Parsed(Model::MobileOne(Variant::S1))
            ]
        );
        assert_eq!(
            (
                s.file.threads.clone(),
                s.file.forms.len(),
                s.file.backends.clone()
            ),
            (vec![1], 1, vec!["native".to_string()])
        );
        // A long list of one model is one model, and loads at once.
        let long = format!("name: t\nmodels: [{}]\n", vec!["s0"; 100_000].join(", "));
        assert_eq!(
            load_text(&long, &Overrides::default())
                .unwrap()
                .file
                .models
                .len(),
            1
        );
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = Scenario::load(Path::new("no/such.yaml"), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert_contains(&e, &["no/such.yaml: cannot read"]);
    }

    #[test]
    fn an_empty_history_location_is_refused_by_field() {
        let e = err("name: t\nmodels: [s0]\nhistory: \"\"\n");
        assert_contains(&e, &[":3: `history`: ``: empty; give a SQLite file"]);
        let blank = Overrides {
            history: Some(" ".into()),
            ..Overrides::default()
        };
        let e = load_text("name: t\nmodels: [s0]\n", &blank)
            .unwrap_err()
            .to_string();
        assert_contains(&e, &["--history: ` `: empty"]);
        let s = load_text(
            "name: t\nmodels: [s0]\nhistory: off\n",
            &Overrides::default(),
        );
        assert!(s.unwrap().history_location().is_none());
    }

    #[test]
    fn processes_are_bounded_and_a_worker_gets_its_share_of_the_budget() {
        let e = err("name: t\nmodels: [s0]\nprocesses: 0\n");
        assert_contains(&e, &[":3: `processes`: 0: from 1 to 100"]);
        let e = err("name: t\nmodels: [s0]\nprocesses: 101\n");
        assert_contains(&e, &["101: from 1 to 100"]);
        let text = "name: t\nmodels: [s0]\nprocesses: 4\nmeasurement:\n  min_runs: 5\n  max_runs: 400\n  min_time_ms: 200\n  max_time_ms: 2000\n";
        assert_eq!(
            load_text(text, &Overrides::default())
                .unwrap()
                .file
                .processes,
            4
        );
        let worker = Overrides {
            worker_of: Some(4),
            ..Overrides::default()
        };
        let s = load_text(text, &worker).unwrap();
        assert_eq!(s.file.processes, 1);
        // 5 runs over 4 processes: 2 each; 400: 100; 200 ms: 50 ms; 2000 ms: 500 ms.
        let m = &s.file.measurement;
        assert_eq!(
            (m.min_runs, m.max_runs, m.min_time_ms, m.max_time_ms),
            (2, 100, 50, 500)
        );
        let bad = Overrides {
            processes: Some(0),
            ..Overrides::default()
        };
        let e = load_text(text, &bad).unwrap_err().to_string();
        assert_contains(&e, &["--processes: 0: from 1 to 100"]);
    }
}
