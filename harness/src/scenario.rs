//! Scenario files: parsing (YAML via serde_norway, unknown fields refused), validation with
//! errors that name the file, line and field and say what is allowed, the `--quick` and
//! command-line overrides, and expansion into cells.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
#[cfg(test)]
use models::Variant;
use models::{Form, Model, Naming};
use serde::Deserialize;

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
    #[serde(default)]
    pub order: Order,
    /// Seeds the input tensor, the shuffled order and the bootstrap.
    #[serde(default)]
    pub seed: u64,
    /// Output folder, relative to the working directory (default `results/<name>`).
    #[serde(default)]
    pub output: Option<PathBuf>,
    #[serde(default)]
    pub device_profile: Option<DeviceProfileSpec>,
    #[serde(default)]
    pub reference_measurements: Option<ReferenceSpec>,
}

fn default_forms() -> Vec<FormName> {
    Form::ALL.into_iter().map(FormName).collect()
}
fn default_backends() -> Vec<String> {
    vec!["all".into()]
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

/// A model name, checked while parsing (so the error carries the line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct ModelName(pub Model);

impl TryFrom<String> for ModelName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
            .map(ModelName)
            .map_err(|e: models::mobileone::UnknownName| e.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct FormName(pub Form);

impl TryFrom<String> for FormName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
            .map(FormName)
            .map_err(|e: models::mobileone::UnknownName| e.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct NamingName(pub Naming);

impl TryFrom<String> for NamingName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
            .map(NamingName)
            .map_err(|e: models::mobileone::UnknownName| e.to_string())
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
                "expected a size like 224 or a list [height, width], found {}",
                serde_norway::to_string(&v).unwrap_or_default().trim()
            )
        })
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
    FormName(Form::Reparameterized)
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
    pub out: Option<PathBuf>,
    pub quick: bool,
}

impl Scenario {
    /// Reads, parses and validates a scenario file, then applies the overrides.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Scenario> {
        let bytes =
            std::fs::read(path).map_err(|e| anyhow!("{}: cannot read: {e}", path.display()))?;
        let text = String::from_utf8(bytes.clone())
            .map_err(|_| anyhow!("{}: not UTF-8 text", path.display()))?;
        let file: ScenarioFile =
            serde_norway::from_str(&text).map_err(|e| describe_yaml_error(path, &e))?;
        let mut scenario = Scenario {
            file,
            path: path.to_path_buf(),
            sha256: sha256_hex(&bytes),
            quick: false,
        };
        scenario.validate(&text)?;
        scenario.apply(overrides)?;
        Ok(scenario)
    }

    fn validate(&self, text: &str) -> Result<()> {
        let f = &self.file;
        let err = |field: &str, message: String| -> anyhow::Error {
            let line = line_of(text, field.rsplit('.').next().unwrap_or(field));
            anyhow!("{}:{}: `{field}`: {message}", self.path.display(), line)
        };
        if f.name.trim().is_empty() {
            return Err(err("name", "must not be empty".into()));
        }
        if f.models.is_empty() {
            return Err(err(
                "models",
                "list at least one model (`harness list` names them)".into(),
            ));
        }
        if f.forms.is_empty() {
            return Err(err(
                "forms",
                "list at least one form (unfused, reparameterized)".into(),
            ));
        }
        check_backends(&f.backends).map_err(|m| err("backends", m))?;
        if f.threads.is_empty() || f.threads.contains(&0) {
            return Err(err(
                "threads",
                format!("{:?}: list thread counts of at least 1", f.threads),
            ));
        }
        if f.batch == 0 {
            return Err(err("batch", "must be at least 1".into()));
        }
        let (h, w) = InputSizeSpec::parse(&f.input_size)
            .map_err(|m| err("input_size", m))?
            .height_width();
        if h < 32 || w < 32 {
            return Err(err(
                "input_size",
                format!("{h}x{w}: height and width must be at least 32"),
            ));
        }
        let m = &f.measurement;
        if m.min_runs == 0 || m.min_runs > m.max_runs {
            return Err(err(
                "measurement.min_runs",
                format!(
                    "{} with max_runs {}: need 1 <= min_runs <= max_runs",
                    m.min_runs, m.max_runs
                ),
            ));
        }
        if m.min_time_ms > m.max_time_ms {
            return Err(err(
                "measurement.min_time_ms",
                format!("{} is above max_time_ms {}", m.min_time_ms, m.max_time_ms),
            ));
        }
        if let Some(t) = m.target_ci {
            if !(t > 0.0 && t < 1.0) {
                return Err(err(
                    "measurement.target_ci",
                    format!("{t}: a fraction between 0 and 1, e.g. 0.02 for ±2%"),
                ));
            }
        }
        for (model, checkpoint) in &f.weights.checkpoints {
            if model.0.mobileone().is_none() {
                return Err(err(
                    "weights.checkpoints",
                    format!(
                        "{}: checkpoints load for MobileOne models only; the zoo runs on seeded weights",
                        model.0
                    ),
                ));
            }
            let resolved = self.resolve(checkpoint);
            if !resolved.is_file() {
                return Err(err(
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
                return Err(err(
                    "device_profile",
                    "peak_gflops and memory_gbps must be positive".into(),
                ));
            }
        }
        if let Some(r) = &f.reference_measurements {
            if let Some((m, v)) = r.latency_ms.iter().find(|(_, v)| v.is_nan() || **v <= 0.0) {
                return Err(err(
                    "reference_measurements.latency_ms",
                    format!("{}: {v} is not a positive latency", m.0),
                ));
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
            f.models = parse_list(models, "--models", |s| {
                s.parse::<Model>().map(ModelName).map_err(|e| e.to_string())
            })?;
        }
        if let Some(forms) = &o.forms {
            f.forms = parse_list(forms, "--forms", |s| {
                s.parse::<Form>().map(FormName).map_err(|e| e.to_string())
            })?;
        }
        if let Some(backends) = &o.backends {
            check_backends(backends).map_err(|m| anyhow!("--backends: {m}"))?;
            f.backends = backends.clone();
        }
        if let Some(threads) = &o.threads {
            if threads.is_empty() || threads.contains(&0) {
                bail!("--threads: list thread counts of at least 1");
            }
            f.threads = threads.clone();
        }
        if let Some(out) = &o.out {
            f.output = Some(out.clone());
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
        Ok(())
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

fn parse_list<T>(
    items: &[String],
    flag: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>> {
    if items.is_empty() {
        bail!("{flag}: list at least one value");
    }
    items
        .iter()
        .map(|s| parse(s).map_err(|e| anyhow!("{flag}: {e}")))
        .collect()
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
/// file and line in the `file:line:` form editors understand.
fn describe_yaml_error(path: &Path, e: &serde_norway::Error) -> anyhow::Error {
    match e.location() {
        Some(loc) => anyhow!("{}:{}: {e}", path.display(), loc.line()),
        None => anyhow!("{}: {e}", path.display()),
    }
}

/// The 1-based line where `key:` first appears (0 if it does not).
fn line_of(text: &str, key: &str) -> usize {
    let pattern = format!("{key}:");
    text.lines()
        .position(|l| {
            l.trim_start()
                .trim_start_matches("- ")
                .starts_with(&pattern)
        })
        .map_or(0, |i| i + 1)
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
                ModelName(Model::MobileOne(Variant::S0)),
                ModelName(Model::MobileOne(Variant::S3))
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
        assert!(
            e.contains("unknown field `thread`") && e.contains("`threads`"),
            "{e}"
        );
        let e = err("name: t\nmodels: [s0]\nmeasurement:\n  min_runs: 3\n  max_rnus: 9\n");
        assert!(
            e.contains(":5: ") && e.contains("unknown field `max_rnus`") && e.contains("max_runs"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_name_the_line_field_and_what_is_allowed() {
        // serde_norway points at the start of the `models` sequence (line 3), naming the value.
        let e = err("name: t\nmodels:\n  - s0\n  - s7\n");
        assert!(
            e.contains(":3: models: unknown model `s7`")
                && e.contains("mobileone-s0, mobileone-s1")
                && e.contains("resnet-18"),
            "{e}"
        );
        let e = err("name: t\nmodels: [s0]\nforms: [folded]\n");
        assert!(
            e.contains(":3: ") && e.contains("unknown form `folded`"),
            "{e}"
        );
        let e = err("name: t\nmodels: [s0]\norder: random\n");
        assert!(
            e.contains(":3: ") && e.contains("sequential") && e.contains("interleaved"),
            "{e}"
        );
        let e = err("name: t\nmodels: [s0]\nbackends: [tensorrt]\n");
        assert!(
            e.contains(":3: `backends`: unknown backend `tensorrt`; allowed: all, reference"),
            "{e}"
        );
        let e = err("name: t\nmodels: [s0]\nthreads: [1, 0]\n");
        assert!(e.contains(":3: `threads`"), "{e}");
        let e = err("name: t\nmodels: [s0]\nmeasurement:\n  min_runs: 50\n  max_runs: 10\n");
        assert!(
            e.contains(":4: `measurement.min_runs`: 50 with max_runs 10"),
            "{e}"
        );
        let e = err("name: t\nmodels: [s0]\nmeasurement:\n  target_ci: 2\n");
        assert!(e.contains("`measurement.target_ci`: 2: a fraction"), "{e}");
        let e = err("name: t\nmodels: [s0]\ninput_size: 16\n");
        assert!(e.contains(":3: `input_size`: 16x16"), "{e}");
        let e = err("name: t\nmodels: [s0]\ninput_size: [224]\n");
        assert!(
            e.contains(":3: ") && e.contains("a size like 224 or a list [height, width]"),
            "{e}"
        );
        let e = err("name: t\nmodels: [s0]\nweights:\n  checkpoints:\n    s0: nowhere.pth\n");
        assert!(e.contains(":4: `weights.checkpoints`: mobileone-s0: checkpoint DIR/nowhere.pth does not exist"), "{e}");
        let e = err("models: [s0]\n");
        assert!(e.contains("missing field `name`"), "{e}");
        let e = err("name: t\nmodels: []\n");
        assert!(e.contains(":2: `models`: list at least one model"), "{e}");
        let e = err("name: t\nmodels: [s0]\nreference_measurements:\n  name: x\n  latency_ms:\n    s0: -1\n");
        assert!(
            e.contains("`reference_measurements.latency_ms`: mobileone-s0: -1"),
            "{e}"
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
        };
        let s = load_text("name: t\nmodels: [s0]\nthreads: [1]\n", &o).unwrap();
        assert_eq!(s.file.models, [ModelName(Model::MobileOne(Variant::S1))]);
        assert_eq!(s.file.forms, [FormName(Form::Reparameterized)]);
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
        assert!(e.contains("--models: unknown model `s9`"), "{e}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = Scenario::load(Path::new("no/such.yaml"), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no/such.yaml: cannot read"), "{e}");
    }
}
