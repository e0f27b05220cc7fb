//! The results file: one versioned, documented schema that the harness writes and the reports,
//! the gate and `harness report` read. A cell's identity (`CellKey`) orders and names cells
//! everywhere. Raw samples are always kept.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change of `ResultsFile`. Version 2 added each cell's and
/// speedup's `precision`.
pub const SCHEMA_VERSION: u32 = 2;

/// The oldest version this build reads: version 1 files read as fp32 throughout.
pub const OLDEST_SCHEMA_VERSION: u32 = 1;

/// Errors reading a results file.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("{path}: cannot read: {error}")]
    Io {
        path: String,
        /// Not a `source` (the message already says it; a chained source would print twice).
        error: std::io::Error,
    },
    #[error("{path}: not a onebench results file: {reason}")]
    Parse { path: String, reason: String },
    #[error("{path}: schema version {found} is not supported (this build reads versions {OLDEST_SCHEMA_VERSION} to {SCHEMA_VERSION})")]
    Version { path: String, found: String },
}

/// What identifies a measured cell: model, form, backend, threads, batch, input size.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CellKey {
    pub model: String,
    pub form: String,
    pub backend: String,
    /// The number format the cell computed in (`fp32` in files of schema version 1).
    #[serde(default = "fp32")]
    pub precision: String,
    pub threads: usize,
    pub batch: usize,
    pub height: usize,
    pub width: usize,
}

fn fp32() -> String {
    models::Precision::Fp32.name().into()
}

/// A backend at a precision as tables and legends name it: the backend alone at fp32 (the
/// default), `native bf16` otherwise.
pub fn engine_label(backend: &str, precision: &str) -> String {
    match precision == models::Precision::Fp32.name() {
        true => backend.to_string(),
        false => format!("{backend} {precision}"),
    }
}

impl CellKey {
    /// The cell's backend and precision, as tables and legends name them (`engine_label`).
    pub fn engine(&self) -> String {
        engine_label(&self.backend, &self.precision)
    }
}

impl fmt::Display for CellKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} t{} b{} {}x{}",
            self.model,
            self.form,
            self.engine(),
            self.threads,
            self.batch,
            self.height,
            self.width
        )
    }
}

/// How a cell ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellStatus {
    /// Verified against the reference, then measured.
    Ok,
    /// Its output disagreed with the reference (or it failed to run); not timed.
    Failed,
    /// The backend is unavailable here (reason given); not run.
    Skipped,
    /// The run was interrupted before or while this cell was measured.
    Interrupted,
}

impl fmt::Display for CellStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CellStatus::Ok => "ok",
            CellStatus::Failed => "failed",
            CellStatus::Skipped => "skipped",
            CellStatus::Interrupted => "interrupted",
        })
    }
}

/// Summary statistics of a cell's latency samples, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub samples: usize,
    pub median_ms: f64,
    pub mean_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub p10_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub iqr_ms: f64,
    pub std_dev_ms: f64,
    /// Bootstrap 95% confidence interval of the median: [low, high].
    pub ci95_ms: [f64; 2],
    /// Half-width of the interval relative to the median (0.01 = ±1%).
    pub ci95_relative: f64,
    /// Samples outside 1.5 IQR of the quartiles (mild) and 3 IQR (severe).
    pub outliers_mild: usize,
    pub outliers_severe: usize,
}

/// One measured (or failed, skipped) cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    #[serde(flatten)]
    pub key: CellKey,
    pub status: CellStatus,
    /// Why the cell failed, was skipped or interrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub weights: String,
    /// The cost of the cell's model at the cell's input (from the cost counter).
    pub cost: models::CostTotals,
    /// Relative L2 error against the reference executor, and the tolerance it passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// Latency statistics, flattened into the cell (`median_ms`, `p90_ms`, `ci95_ms`, ...).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencySummary>,
    /// Every timed sample, in the order measured.
    #[serde(default)]
    pub samples_ms: Vec<f64>,
    #[serde(default)]
    pub warmup_runs: usize,
    #[serde(default)]
    pub prepare_ms: f64,
    /// Resident memory of the process after this cell's warm-up.
    #[serde(default)]
    pub resident_bytes: u64,
    /// FLOPs / median latency.
    #[serde(default)]
    pub achieved_gflops: f64,
    /// Memory traffic / median latency.
    #[serde(default)]
    pub achieved_gbps: f64,
    /// Achieved GFLOP/s over the machine's measured peak at this thread count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction_of_peak: Option<f64>,
    /// What the backend says about its plan (layout, fusions, kernels).
    #[serde(default)]
    pub plan: String,
    /// The device a GPU backend ran on: adapter name, graphics API (Vulkan, Metal, ...),
    /// driver and device type; absent for CPU backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// GPU time of each timed sample by timestamp queries (kernels only, no upload, readback
    /// or submission), where the backend and adapter have them; apart from `samples_ms`,
    /// which is always wall time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpu_samples_ms: Vec<f64>,
    /// Median of `gpu_samples_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_median_ms: Option<f64>,
    /// Average CPU cores that other processes kept busy while this cell was timed (from
    /// /proc/stat on the cores this process may run on, minus this process's own CPU time);
    /// absent where the OS does not tell. Above `FOREIGN_LOAD_LIMIT` the cell is flagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreign_load: Option<f64>,
    /// Warnings about this cell (e.g. a wide confidence interval).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Per-op times from a separate profiling plan (never the timed one), for backends that
    /// report them; empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerRecord>,
    /// How the samples split over the fresh processes that took them (`processes` above 1, and
    /// `harness ab`'s rounds); absent when one process took them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<ProcessSpread>,
    /// int8 cells: each conv-like layer's weight scales and output range, as quantized.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quantization: Vec<models::quantized::LayerQuant>,
}

/// A cell measured in several fresh processes: what each took and how far apart they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessSpread {
    /// How many of `samples_ms` each process took, in order (they sum to the sample count).
    pub samples_per_process: Vec<usize>,
    /// The median of each process's samples.
    pub medians_ms: Vec<f64>,
    /// The largest process median over the smallest, minus one (0.03: 3% apart).
    pub spread: f64,
    /// The process medians fall into separate groups (modes), each tighter than the gap
    /// between them: which mode a process lands in, not the code, decides its speed.
    pub multimodal: bool,
}

/// `samples` cut into consecutive groups of `counts` samples (empty groups dropped); one group
/// when `counts` is empty or does not add up to the samples.
pub fn split_by_process<'a>(samples: &'a [f64], counts: &[usize]) -> Vec<&'a [f64]> {
    if counts.is_empty() || counts.iter().sum::<usize>() != samples.len() {
        return vec![samples];
    }
    let mut rest = samples;
    let mut groups = Vec::with_capacity(counts.len());
    for &n in counts.iter().filter(|&&n| n > 0) {
        let (group, tail) = rest.split_at(n);
        groups.push(group);
        rest = tail;
    }
    groups
}

/// Processes whose medians lie further apart than this (max/min - 1) make a cell's spread a
/// warning.
pub const PROCESS_SPREAD_LIMIT: f64 = 0.03;

/// One planned op's time, averaged over the profiling runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// The graph nodes the op carries out.
    pub name: String,
    /// Op kind, for grouping (e.g. `gemm`, `depthwise`).
    pub kind: String,
    /// What ran (kernel, instruction set, fusions).
    pub kernel: String,
    pub ms: f64,
}

/// Foreign CPU load (average busy cores of other processes) above which a cell counts as
/// measured under load: its numbers are flagged in every table and the gate will not judge it.
pub const FOREIGN_LOAD_LIMIT: f64 = 0.25;

/// The longest latency sample taken as real (about 2.8 hours); anything longer, zero,
/// negative or not finite is corrupt data, not a measurement.
pub const MAX_PLAUSIBLE_MS: f64 = 1e7;

/// The highest GFLOP/s or GB/s taken as real (an exaflop machine is not measured here).
pub const MAX_PLAUSIBLE_RATE: f64 = 1e9;

/// The shortest latency sample taken as real (a nanosecond).
pub const MIN_PLAUSIBLE_MS: f64 = 1e-6;

/// A latency as a message shows it: plain for ordinary values, in exponent form for extreme
/// ones (1e200, not two hundred digits).
pub fn shown_ms(ms: f64) -> String {
    if ms != 0.0 && ms.is_finite() && !(1e-3..1e7).contains(&ms.abs()) {
        format!("{ms:e}")
    } else {
        ms.to_string()
    }
}

/// Why a latency sample is not a plausible measurement, if it is not.
pub fn implausible_sample(ms: f64) -> Option<&'static str> {
    if !ms.is_finite() {
        Some("not a finite number")
    } else if ms <= 0.0 {
        Some("zero or negative")
    } else if ms < MIN_PLAUSIBLE_MS {
        Some("shorter than a nanosecond")
    } else if ms > MAX_PLAUSIBLE_MS {
        Some("longer than 10^7 ms")
    } else {
        None
    }
}

impl CellResult {
    /// A cell not reached yet: `interrupted`, "not reached", no samples.
    pub fn unmeasured(key: CellKey, cost: models::CostTotals) -> CellResult {
        CellResult {
            key,
            status: CellStatus::Interrupted,
            reason: Some("not reached".into()),
            weights: String::new(),
            cost,
            verification: None,
            latency: None,
            samples_ms: Vec::new(),
            warmup_runs: 0,
            prepare_ms: 0.0,
            resident_bytes: 0,
            achieved_gflops: 0.0,
            achieved_gbps: 0.0,
            fraction_of_peak: None,
            plan: String::new(),
            device: None,
            gpu_samples_ms: Vec::new(),
            gpu_median_ms: None,
            foreign_load: None,
            warnings: Vec::new(),
            layers: Vec::new(),
            processes: None,
            quantization: Vec::new(),
        }
    }

    /// The samples of each process that took them (one group when no split is recorded).
    pub fn sample_groups(&self) -> Vec<&[f64]> {
        let counts = self.processes.as_ref().map(|p| &p.samples_per_process[..]);
        split_by_process(&self.samples_ms, counts.unwrap_or(&[]))
    }

    /// The flat fields most readers want: median, p90, CI.
    pub fn median_ms(&self) -> Option<f64> {
        self.latency.as_ref().map(|l| l.median_ms)
    }

    /// True when other processes kept more than `FOREIGN_LOAD_LIMIT` cores busy while this
    /// cell was timed.
    pub fn under_load(&self) -> bool {
        self.foreign_load.is_some_and(|l| l > FOREIGN_LOAD_LIMIT)
    }

    /// What makes this cell's latencies implausible (a sample, or a summary statistic of a
    /// hand-edited file), if anything.
    pub fn implausible(&self) -> Option<String> {
        if let Some((i, ms, why)) = self.implausible_sample() {
            return Some(format!("sample {i} is {} ms ({why})", shown_ms(ms)));
        }
        if let Some(l) = self
            .layers
            .iter()
            .find(|l| !(l.ms.is_finite() && (0.0..=MAX_PLAUSIBLE_MS).contains(&l.ms)))
        {
            return Some(format!("layer `{}` took {} ms", l.name, shown_ms(l.ms)));
        }
        for (what, rate) in [
            ("GFLOP/s", self.achieved_gflops),
            ("GB/s", self.achieved_gbps),
        ] {
            if !(rate.is_finite() && (0.0..=MAX_PLAUSIBLE_RATE).contains(&rate)) {
                return Some(format!("it achieved {} {what}", shown_ms(rate)));
            }
        }
        let l = self.latency.as_ref()?;
        let stats = [
            ("median", l.median_ms),
            ("min", l.min_ms),
            ("max", l.max_ms),
            ("p10", l.p10_ms),
            ("p90", l.p90_ms),
            ("ci95 low", l.ci95_ms[0]),
            ("ci95 high", l.ci95_ms[1]),
        ];
        stats.iter().find_map(|(name, ms)| {
            implausible_sample(*ms).map(|why| format!("its {name} is {} ms ({why})", shown_ms(*ms)))
        })
    }

    /// The first implausible sample (index, value, why), if any.
    pub fn implausible_sample(&self) -> Option<(usize, f64, &'static str)> {
        self.samples_ms
            .iter()
            .enumerate()
            .find_map(|(i, &ms)| implausible_sample(ms).map(|why| (i, ms, why)))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub relative_l2: f64,
    pub max_abs_diff: f64,
    pub tolerance: f64,
    /// int8 cells: the largest difference, in output codes, from the quantized reference
    /// (0: code for code); absent at the float precisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integer_codes_off: Option<u64>,
}

/// unfused median / reparameterized median, per model, backend and thread count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speedup {
    pub model: String,
    pub backend: String,
    #[serde(default = "fp32")]
    pub precision: String,
    pub threads: usize,
    pub unfused_ms: f64,
    pub reparameterized_ms: f64,
    pub speedup: f64,
    /// One of the two cells was measured under foreign load: the ratio is not trustworthy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub under_load: bool,
}

impl Speedup {
    /// Whether both latencies and their ratio are plausible numbers (a hand-edited file may
    /// hold anything).
    pub fn plausible(&self) -> bool {
        implausible_sample(self.unfused_ms).is_none()
            && implausible_sample(self.reparameterized_ms).is_none()
            && self.speedup.is_finite()
            && (1e-6..=1e6).contains(&self.speedup)
    }

    /// The speedup as shown in every report: `2.31x`, flagged when measured under load.
    pub fn label(&self) -> String {
        if self.under_load {
            format!("{:.2}x (UNDER LOAD: not trustworthy)", self.speedup)
        } else {
            format!("{:.2}x", self.speedup)
        }
    }
}

/// The machine, the build and the software the results were measured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub cpu: String,
    pub physical_cores: Option<usize>,
    pub logical_cores: usize,
    pub cpu_frequency_mhz: u64,
    pub memory_bytes: u64,
    pub os: String,
    pub kernel: String,
    pub hostname: String,
    /// A stable identity of the machine kind (CPU model, cores, memory) for comparisons.
    pub machine_fingerprint: String,
    pub git_commit: String,
    /// The branch checked out when the harness was built (`HEAD` when detached; empty in
    /// files written before it was recorded).
    #[serde(default)]
    pub git_branch: String,
    pub rustc: String,
    /// `dev` or `release` (cargo's profile the harness was built with).
    pub build_profile: String,
    pub opt_level: String,
    pub debug_assertions: bool,
    pub backends: Vec<BackendInfo>,
    /// Thread-count environment variables that were set (RAYON_NUM_THREADS, OMP_NUM_THREADS, ...);
    /// each cell's own thread count is in its key.
    #[serde(default)]
    pub thread_env: Vec<(String, String)>,
    /// Measured peak GFLOP/s at 1 and at all threads, and memory GB/s (a short built-in probe).
    pub peak: Option<MachinePeak>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendInfo {
    pub name: String,
    pub version: String,
    pub availability: String,
    /// A GPU backend's adapter (name, API, driver); absent for CPU backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachinePeak {
    /// (threads, GFLOP/s) pairs measured by the FMA probe (fp32).
    pub gflops: Vec<(usize, f64)>,
    /// (threads, GB/s) pairs measured by the read-bandwidth probe.
    pub gbps: Vec<(usize, f64)>,
    pub isa: String,
    /// Per 16-bit precision name, the multiply-add rate of the CPU's fastest instructions for
    /// it over the f32 FMA's (bf16 dot products, fp16 FMAs; at least 1 for bf16, which can
    /// always run on f32 FMAs). A precision absent here has no peak and no "% of peak".
    /// Absent in files before per-precision peaks.
    #[serde(default)]
    pub precision_rates: std::collections::BTreeMap<String, f64>,
}

impl MachinePeak {
    /// The multiply-add rate at the precision named `precision` over fp32's: 1 at fp32.
    pub fn rate(&self, precision: &str) -> Option<f64> {
        match precision == models::Precision::Fp32.name() {
            true => Some(1.0),
            false => self.precision_rates.get(precision).copied(),
        }
    }

    /// The peak GFLOP/s at `precision` of the probe at `threads` threads (exactly that count).
    pub fn gflops_at(&self, threads: usize, precision: &str) -> Option<f64> {
        let fp32 = self.gflops.iter().find(|(t, _)| *t == threads)?.1;
        Some(fp32 * self.rate(precision)?)
    }
}

/// A user-supplied device profile for a roofline projection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceProfile {
    pub name: String,
    pub peak_gflops: f64,
    pub memory_gbps: f64,
}

/// Latencies measured elsewhere (e.g. the paper's iPhone 12 figures), shown beside ours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceMeasurements {
    pub name: String,
    pub form: String,
    /// model -> latency in ms.
    pub latency_ms: std::collections::BTreeMap<String, f64>,
}

/// Everything one run of a scenario produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultsFile {
    pub schema_version: u32,
    pub tool: String,
    pub scenario: ScenarioInfo,
    /// RFC 3339 UTC time the run started.
    pub started_at: String,
    pub duration_s: f64,
    pub interrupted: bool,
    pub environment: Environment,
    pub cells: Vec<CellResult>,
    pub speedups: Vec<Speedup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_profile: Option<DeviceProfile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_measurements: Option<ReferenceMeasurements>,
    /// Run-wide warnings (unoptimized build, noisy cells, ...).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioInfo {
    pub name: String,
    pub path: String,
    /// SHA-256 of the scenario file's bytes.
    pub sha256: String,
    pub quick: bool,
    pub order: String,
}

impl ResultsFile {
    /// Reads and checks a results file.
    pub fn read(path: &Path) -> Result<ResultsFile, ResultsError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ResultsError::Io {
            path: shown.clone(),
            error,
        })?;
        ResultsFile::parse(&shown, &text)
    }

    /// Parses and checks the text of a results file; `shown` names it in errors.
    pub fn parse(shown: &str, text: &str) -> Result<ResultsFile, ResultsError> {
        let shown = shown.to_string();
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ResultsError::Parse {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        let version = value.get("schema_version");
        match version.map(|v| (v, v.as_u64())) {
            Some((_, Some(v)))
                if (u64::from(OLDEST_SCHEMA_VERSION)..=u64::from(SCHEMA_VERSION)).contains(&v) => {}
            Some((_, Some(v))) => {
                return Err(ResultsError::Version {
                    path: shown,
                    found: v.to_string(),
                })
            }
            Some((v, None)) => {
                return Err(ResultsError::Parse {
                    path: shown,
                    reason: format!(
                        "`schema_version` is {v}, expected a whole number like {SCHEMA_VERSION}"
                    ),
                })
            }
            None => {
                return Err(ResultsError::Parse {
                    path: shown,
                    reason: "no `schema_version` field".into(),
                })
            }
        }
        let mut file: ResultsFile =
            serde_json::from_value(value).map_err(|e| ResultsError::Parse {
                path: shown,
                reason: e.to_string(),
            })?;
        // An older file now reads with this version's defaults, and is written as this version.
        file.schema_version = SCHEMA_VERSION;
        Ok(file)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("results serialize")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_schema_version_of_the_wrong_type_is_named_not_called_missing() {
        let e = super::ResultsFile::parse("r.json", r#"{"schema_version": "1"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"r.json: not a onebench results file: `schema_version` is "1", expected a whole number like 2"#
        );
        let e = super::ResultsFile::parse("r.json", r#"{"schema_version": 7}"#).unwrap_err();
        assert!(
            e.to_string().contains("schema version 7 is not supported"),
            "{e}"
        );
        let e = super::ResultsFile::parse("r.json", "{}").unwrap_err();
        assert!(e.to_string().contains("no `schema_version` field"), "{e}");
    }

    #[test]
    fn extreme_latencies_are_shown_in_exponent_form() {
        assert_eq!(super::shown_ms(1e200), "1e200");
        assert_eq!(super::shown_ms(2.5), "2.5");
        assert_eq!(super::shown_ms(-1.0), "-1");
        assert_eq!(
            super::implausible_sample(1e-9),
            Some("shorter than a nanosecond")
        );
        assert_eq!(super::implausible_sample(3.0), None);
    }

    #[test]
    fn floats_survive_a_json_round_trip_exactly() {
        // Values whose shortest decimal form a fast (not correctly rounded) parser reads back
        // one unit in the last place off.
        let samples: Vec<f64> = (1..2000)
            .map(|i| 23.959_179_5 + i as f64 * 1.000_000_1e-7)
            .collect();
        let text = serde_json::to_string(&samples).unwrap();
        let back: Vec<f64> = serde_json::from_str(&text).unwrap();
        assert_eq!(samples, back);
    }
}
