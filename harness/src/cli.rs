//! The command line: every command, flag and default, with the help text users read.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// onebench: benchmark and analyse MobileOne (S0-S4), unfused and reparameterized, on
/// pluggable backends.
///
/// Run a scenario with `harness SCENARIO.yaml` (same as `harness run SCENARIO.yaml`), or use
/// one of the commands below. Models: mobileone-s0 .. mobileone-s4 (or s0 .. s4) and the zoo (`list`). Forms:
/// unfused, reparameterized (or fused).
#[derive(Debug, Parser)]
#[command(name = "harness", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// A scenario file to run (shorthand for `harness run SCENARIO`).
    pub scenario: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunOptions,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Overrides of a scenario file, for `harness SCENARIO` and `harness run SCENARIO`.
/// Which cells of a scenario to run, instead of the scenario's own lists.
#[derive(Debug, Clone, Default, Args)]
pub struct CellSelection {
    /// Models to run instead of the scenario's (comma list, e.g. s0,s1).
    #[arg(long, value_delimiter = ',')]
    pub models: Option<Vec<String>>,
    /// Forms to run instead of the scenario's (comma list: unfused,reparameterized).
    #[arg(long, value_delimiter = ',')]
    pub forms: Option<Vec<String>>,
    /// Backends to run instead of the scenario's (comma list; `all` = every available backend
    /// except `reference`, the correctness oracle).
    #[arg(long, value_delimiter = ',')]
    pub backends: Option<Vec<String>>,
    /// Thread counts to run instead of the scenario's (comma list, e.g. 1,2).
    #[arg(long, value_delimiter = ',')]
    pub threads: Option<Vec<usize>>,
    /// Precisions to run instead of the scenario's (comma list: fp32,bf16,fp16,int8).
    #[arg(long, value_delimiter = ',')]
    pub precisions: Option<Vec<String>>,
}

impl CellSelection {
    /// These selections as scenario overrides, with an output folder and the quick flag.
    pub fn overrides(&self, out: Option<PathBuf>, quick: bool) -> crate::scenario::Overrides {
        crate::scenario::Overrides {
            models: self.models.clone(),
            forms: self.forms.clone(),
            backends: self.backends.clone(),
            threads: self.threads.clone(),
            precisions: self.precisions.clone(),
            out,
            history: None,
            quick,
            processes: None,
            worker_of: None,
        }
    }
}

impl RunOptions {
    /// The scenario overrides these options ask for.
    pub fn overrides(&self) -> crate::scenario::Overrides {
        crate::scenario::Overrides {
            processes: self.processes,
            worker_of: self.worker_of,
            history: self.history.clone(),
            ..self.cells.overrides(self.out.clone(), self.quick)
        }
    }
}

#[derive(Debug, Clone, Default, Args)]
pub struct RunOptions {
    #[command(flatten)]
    pub cells: CellSelection,
    /// Output folder instead of the scenario's (default results/<scenario name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep the run in this results store: a SQLite file, a postgres:// URL, or `off`
    /// (default: $ONEBENCH_HISTORY, else the scenario's `history:`, else history.sqlite
    /// beside the output folder, i.e. results/history.sqlite).
    #[arg(long, value_name = "STORE")]
    pub history: Option<String>,
    /// Quick mode: 1 warm-up run and 3 to 5 timed runs per cell, no confidence target (for CI
    /// smoke runs; the numbers are rough).
    #[arg(long)]
    pub quick: bool,
    /// Measure each cell in N fresh processes instead of the scenario's `processes` (the
    /// harness runs itself N times, one after another, each with 1/N of the budget; the
    /// statistics then see how much processes differ).
    #[arg(long, value_name = "N")]
    pub processes: Option<usize>,
    /// Internal: this process is one of N workers of a run in N processes.
    #[arg(long, value_name = "N", hide = true)]
    pub worker_of: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario file: measure every cell it names and write results and reports.
    Run {
        /// The scenario YAML file.
        scenario: PathBuf,
        #[command(flatten)]
        options: RunOptions,
    },
    /// Check every backend against the reference executor on every model and form (no timing).
    Verify(VerifyArgs),
    /// Post-training int8 quantization of a model in both forms (min/max calibration): the
    /// int8 error of each against float (relative L2, top-1/top-5 agreement) and, with
    /// --per-layer, each layer's weight and activation ranges: what reparameterization does to
    /// quantization.
    Quantize(QuantizeArgs),
    /// Re-render results.csv and report.md from a saved results.json, without measuring.
    Report {
        /// A results.json written by a run.
        results: PathBuf,
        /// Where to write the reports (default: the folder of the results file).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Count a model's params, MACs, FLOPs, memory traffic, peak activations and ops.
    Inspect(InspectArgs),
    /// Run one forward pass on an input .npy and write the logits as .npy.
    Infer(InferArgs),
    /// Fold an unfused checkpoint into a reparameterized one (safetensors, Apple naming).
    Reparameterize(ReparameterizeArgs),
    /// Write a model as a standard ONNX file (`--format onnx`: opens in Netron, ONNX Runtime,
    /// OpenVINO), a TFLite flatbuffer (`--format tflite`: LiteRT, Netron) or as its graph
    /// (JSON) and weights (safetensors).
    Export(ExportArgs),
    /// Time every planned op of one model on one backend (per-layer breakdown) and show the plan.
    Profile(ProfileArgs),
    /// List the models, forms and backends, with each backend's availability.
    List,
    /// Compare two results files cell by cell and fail on a real slowdown (exit 0: none, 1:
    /// regression, 2: bad input or incomparable runs).
    ///
    /// For each cell measured in both (same model, form, backend, threads, batch, input size),
    /// the ratio of medians (candidate / baseline) gets a bootstrap confidence interval from
    /// the raw samples; the cell regressed when the whole interval lies above 1 + threshold,
    /// improved when below 1 - threshold, otherwise it is unchanged.
    Gate(GateArgs),
    /// Measure a scenario and store the results as this machine's baseline for it:
    /// DIR/<scenario>/<machine fingerprint>.json (for `harness gate --baseline-dir DIR`).
    /// Run it again to refresh the baseline.
    Baseline {
        /// The scenario YAML file.
        scenario: PathBuf,
        /// Where baselines are kept (committed to the repository, one file per machine).
        #[arg(long, default_value = "scenarios/baselines")]
        dir: PathBuf,
        #[command(flatten)]
        options: RunOptions,
    },
    /// Measure two harness builds alternately, cell by cell, on one scenario, then gate the
    /// candidate against the baseline; cells that look regressed are measured again
    /// (confirmation) and fail only if the regression is confirmed.
    Ab(AbArgs),
    /// The results store every run is kept in: import results files, list the kept runs,
    /// show a cell's series over commits.
    History {
        #[command(subcommand)]
        command: HistoryCommand,
    },
    /// Classify images with a MobileOne checkpoint: top-K ImageNet-1k classes and probabilities.
    ///
    /// Needs --weights (random weights classify nothing); --seed runs seeded random weights on
    /// purpose, for testing. Exits 1 when any image could not be classified, after reporting
    /// the others.
    Classify(ClassifyArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The model: mobileone-s0 .. mobileone-s4 (or s0 .. s4), or a zoo model (see `list`).
    pub model: String,
    /// The form to count: unfused or reparameterized (fused).
    #[arg(long, default_value = "reparameterized")]
    pub form: String,
    /// Input height and width, as HxW or a single size for a square input.
    #[arg(long, default_value = "224")]
    pub input_size: String,
    /// Batch size the counts are for.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Also list every op with its own counts.
    #[arg(long)]
    pub per_layer: bool,
    /// Print JSON instead of tables (keys: model, form, input_shape, params, macs, macs_fvcore,
    /// flops, memory_traffic_bytes, peak_activation_bytes, ops, and layers with --per-layer).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WeightsArgs {
    /// Checkpoint to load (safetensors, or a zip-based PyTorch .pth/.pth.tar); its naming
    /// scheme (apple, timm, mmpretrain) is detected. An unfused checkpoint asked for in the
    /// reparameterized form is folded at load time.
    #[arg(long, conflicts_with = "seed")]
    pub weights: Option<PathBuf>,
    /// Use seeded random weights instead of a checkpoint (the default, seed 0). One seed gives
    /// the same function in both forms: the reparameterized weights are the fold of the unfused.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override the detected checkpoint naming scheme: apple, timm or mmpretrain.
    #[arg(long, requires = "weights")]
    pub naming: Option<String>,
}

/// A model to build: which, in which form, with which weights, for which input.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// The model: mobileone-s0 .. mobileone-s4 (or s0 .. s4), or a zoo model (see `list`).
    #[arg(long)]
    pub model: String,
    /// The form: unfused or reparameterized (fused).
    #[arg(long, default_value = "reparameterized")]
    pub form: String,
    #[command(flatten)]
    pub weights: WeightsArgs,
    /// Input height and width, as HxW or a single size for a square input.
    #[arg(long, default_value = "224")]
    pub input_size: String,
    /// Batch size.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// What to write: `onnx` (model.onnx: a standard ONNX model, opset 17, weights as
    /// initializers, input `input`, for ONNX Runtime, OpenVINO, Netron), `tflite`
    /// (model.tflite: TFLite schema 3, NHWC inside, NCHW input `input` and output `output` in
    /// the `serving_default` signature, for LiteRT and Netron) or `graph-json`
    /// (graph.json: nodes in execution order with name, op, attributes, input names and output
    /// shape; and weights.safetensors).
    #[arg(long, value_enum, default_value_t = ExportFormat::GraphJson)]
    pub format: ExportFormat,
    /// `fp32`, or `int8` with `--format onnx`: the model quantized as int8 cells are (4 seeded
    /// calibration inputs, min/max ranges, per-channel int8 weights) and written as QDQ ONNX,
    /// scales, zero points, int8 weights and int32 biases in the file.
    #[arg(long, default_value = "fp32")]
    pub precision: String,
    /// With `--precision int8`: the quantized model saved by `harness quantize --save`
    /// (calibrated as it was), instead of quantizing on seeded inputs.
    #[arg(long)]
    pub quantized: Option<PathBuf>,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
}

/// The file formats `harness export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Onnx,
    Tflite,
    GraphJson,
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The backend to profile; it must report per-layer times (the native backend does).
    #[arg(long, default_value = backends::native::NAME)]
    pub backend: String,
    /// Worker threads for the backend.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Number format to compute in: fp32, bf16, fp16 or int8 (the backend must have it; int8 quantizes the model on seeded calibration inputs).
    #[arg(long, default_value = "fp32")]
    pub precision: String,
    /// Timed runs after 3 warm-up runs; per-layer times are averaged over them.
    #[arg(long, default_value_t = 50)]
    pub runs: u64,
    /// How many of the slowest layers to list.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Also print the backend's plan (layout, fusions, kernel per layer).
    #[arg(long)]
    pub plan: bool,
}

#[derive(Debug, Args)]
pub struct InferArgs {
    /// The model: mobileone-s0 .. mobileone-s4 (or s0 .. s4), or a zoo model (see `list`).
    #[arg(long)]
    pub model: String,
    /// The form to run: unfused or reparameterized (fused).
    #[arg(long, default_value = "reparameterized")]
    pub form: String,
    #[command(flatten)]
    pub weights: WeightsArgs,
    /// The backend to run on (see `harness list`).
    #[arg(long, default_value = backends::reference::NAME)]
    pub backend: String,
    /// Worker threads for the backend.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Number format to compute in: fp32, bf16, fp16 or int8 (the backend must have it; int8 quantizes the model on seeded calibration inputs).
    #[arg(long, default_value = "fp32")]
    pub precision: String,
    /// With `--precision int8`: run the quantized model saved by `harness quantize --save`
    /// (its own weights and calibration) instead of quantizing on seeded inputs.
    #[arg(long)]
    pub quantized: Option<PathBuf>,
    /// Input: a float32 NCHW .npy of shape [N, 3, H, W] (N >= 1; H and W >= 32, 224 for the
    /// published models).
    #[arg(long)]
    pub input: PathBuf,
    /// Output: a float32 .npy of shape [N, 1000] with the logits (written atomically).
    #[arg(long)]
    pub output: PathBuf,
}

/// How the gate decides and what it writes besides the terminal table.
#[derive(Debug, Args)]
pub struct GateOptions {
    /// Smallest slowdown (and speed-up) that counts, in percent of the baseline median.
    #[arg(long, default_value_t = 5.0)]
    pub threshold: f64,
    /// Two-sided confidence level of each cell's interval of the ratio of medians.
    #[arg(long, default_value_t = 0.99)]
    pub confidence: f64,
    /// Compare runs from different machines or build settings anyway (the verdicts then mean
    /// little).
    #[arg(long)]
    pub allow_different_machine: bool,
    /// Also write a Markdown summary here, movers first (for a PR comment).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Also write a JSON summary here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GateArgs {
    /// The baseline results.json (e.g. from the main branch).
    #[arg(long, required_unless_present_any = ["baseline_dir", "history"])]
    pub baseline: Option<PathBuf>,
    /// Take the baseline stored for this machine instead: DIR/<scenario>/<machine fingerprint>.json
    /// of the candidate's scenario and machine (written by `harness baseline`).
    #[arg(long, conflicts_with = "baseline")]
    pub baseline_dir: Option<PathBuf>,
    /// The candidate results.json (e.g. from this change).
    #[arg(long)]
    pub candidate: PathBuf,
    /// Judge the candidate against the results store instead: each cell against the last
    /// --window stored runs of its scenario on this machine (runs resampled like processes),
    /// and for slow drifts (a change point within the last --drift-commits commits whose
    /// cumulative slowdown is above the threshold).
    #[arg(long, value_name = "STORE", conflicts_with_all = ["baseline", "baseline_dir"])]
    pub history: Option<String>,
    /// With --history: how many of the last stored runs make the baseline.
    #[arg(long, value_name = "N", default_value_t = 10, requires = "history")]
    pub window: usize,
    /// With --history: a drift fails when its change point is within this many commits.
    #[arg(long, value_name = "K", default_value_t = 5, requires = "history")]
    pub drift_commits: usize,
    #[command(flatten)]
    pub options: GateOptions,
}

#[derive(Debug, Args)]
pub struct AbArgs {
    /// The scenario both builds run (cells are restricted by the flags below).
    pub scenario: PathBuf,
    /// The baseline build's harness binary (e.g. built from the previous commit).
    #[arg(long)]
    pub baseline_harness: PathBuf,
    /// The candidate build's harness binary (e.g. this commit's target/debug/harness).
    #[arg(long)]
    pub candidate_harness: PathBuf,
    /// Rounds: each round runs every cell once on each build (a fresh process each),
    /// alternating which goes first; the gate resamples rounds, so more rounds narrow the
    /// interval when processes differ (10: calibrated, README "Calibration").
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// Rounds of the confirmation run of the cells that look regressed (0: no confirmation).
    #[arg(long, default_value_t = 10)]
    pub confirm_rounds: usize,
    /// Folder for both sides' merged results (baseline.json, candidate.json) and the summaries.
    #[arg(long, default_value = "results/ab")]
    pub out: PathBuf,
    /// Keep both measured sides (baseline.json and candidate.json, each with its own build's
    /// commit) in this results store: a SQLite file or a postgres:// URL (default: not kept).
    #[arg(long, value_name = "STORE")]
    pub history: Option<String>,
    #[command(flatten)]
    pub cells: CellSelection,
    #[command(flatten)]
    pub options: GateOptions,
}

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// The model: mobileone-s0 .. mobileone-s4 (or s0 .. s4); classify runs MobileOne only.
    #[arg(long)]
    pub model: String,
    /// The form to run: unfused or reparameterized (fused).
    #[arg(long, default_value = "reparameterized")]
    pub form: String,
    #[command(flatten)]
    pub weights: WeightsArgs,
    /// The backend to run on (see `harness list`).
    #[arg(long, default_value = backends::native::NAME)]
    pub backend: String,
    /// Worker threads for the backend.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Number format to compute in: fp32, bf16, fp16 or int8 (the backend must have it; int8 quantizes the model on seeded calibration inputs).
    #[arg(long, default_value = "fp32")]
    pub precision: String,
    /// How many of the most probable classes to print per image.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Print JSON (one object per image: pred_label, pred_score, pred_class, top) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Images to classify (JPEG, PNG or WebP; grayscale and alpha are converted to RGB). They
    /// are preprocessed as the checkpoints were evaluated (resize the shorter side to
    /// 224 / crop_pct, bilinear; centre crop 224; ImageNet mean and std) and run as one batch.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReparameterizeArgs {
    /// The model the checkpoint is for: mobileone-s0 .. mobileone-s4 (or s0 .. s4).
    #[arg(long)]
    pub model: String,
    /// The unfused checkpoint (safetensors or zip-based PyTorch, any supported naming).
    #[arg(long)]
    pub weights: PathBuf,
    /// Where to write the reparameterized checkpoint (safetensors, Apple's naming:
    /// `stage1.0.reparam_conv.weight`, `linear.weight`; written atomically).
    #[arg(long)]
    pub output: PathBuf,
    /// Override the detected naming scheme of the input: apple, timm or mmpretrain.
    #[arg(long)]
    pub naming: Option<String>,
    /// Skip the numerical check of the fold (one forward pass of both forms at 64x64 with the
    /// reference executor, compared by relative L2).
    #[arg(long)]
    pub no_verify: bool,
}

#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// The model: mobileone-s0 .. mobileone-s4 (or s0 .. s4), or a zoo model whose ops all have
    /// an int8 form.
    #[arg(long)]
    pub model: String,
    /// Forms to quantize (comma list; default: both). An unfused checkpoint gives both.
    #[arg(long, value_delimiter = ',')]
    pub forms: Option<Vec<String>>,
    #[command(flatten)]
    pub weights: WeightsArgs,
    /// Input height and width, as HxW or a single size.
    #[arg(long, default_value = "224")]
    pub input_size: String,
    /// Calibrate on this folder instead of seeded inputs: its images (JPEG/PNG/WebP, through
    /// `classify`'s preprocessing; 224x224 only) and its .npy files (float32 [N, 3, H, W] at
    /// the input size, already preprocessed: N inputs each).
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// Seeded calibration inputs (uniform in [-1, 1]) when no --calibration folder is given.
    #[arg(long, default_value_t = 8)]
    pub calibration_inputs: usize,
    /// Seeded held-out inputs the error is measured on (besides the calibration inputs).
    #[arg(long, default_value_t = 8)]
    pub held_out: usize,
    /// Also list every quantized layer's weight scales and output range.
    #[arg(long)]
    pub per_layer: bool,
    /// Write the results as JSON to this file too.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Save the quantized model (every int8 weight, bias, scale and zero point) as
    /// safetensors, for `infer` and `export --quantized`; needs one form (`--forms`).
    #[arg(long)]
    pub save: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Backends to check (comma list; default: every available backend).
    #[arg(long, value_delimiter = ',')]
    pub backends: Option<Vec<String>>,
    /// Models to check (comma list; default: all five).
    #[arg(long, value_delimiter = ',')]
    pub models: Option<Vec<String>>,
    /// Forms to check (comma list; default: both).
    #[arg(long, value_delimiter = ',')]
    pub forms: Option<Vec<String>>,
    /// Input height and width, as HxW or a single size.
    #[arg(long, default_value = "224")]
    pub input_size: String,
    /// Seed of the weights and of the input.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Thread count the backends are prepared with.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Number format to compute in: fp32, bf16, fp16 or int8 (the backend must have it; int8 quantizes the model on seeded calibration inputs).
    #[arg(long, default_value = "fp32")]
    pub precision: String,
}

/// The default results store of the history commands: the one runs keep by default.
const DEFAULT_STORE: &str = "results/history.sqlite";

#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// Store results files (results.json of earlier runs) in the store; a file already kept
    /// is kept once.
    Import {
        /// The results store: a SQLite file or a postgres:// URL.
        #[arg(long, default_value = DEFAULT_STORE)]
        store: String,
        /// results.json files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the kept runs, oldest first.
    List {
        /// The results store: a SQLite file or a postgres:// URL.
        #[arg(long, default_value = DEFAULT_STORE)]
        store: String,
        #[command(flatten)]
        filter: HistoryFilter,
    },
    /// Show the series of a cell over the kept runs (per scenario and machine): median, 95%
    /// CI and change from the previous run.
    Show {
        /// The results store: a SQLite file or a postgres:// URL.
        #[arg(long, default_value = DEFAULT_STORE)]
        store: String,
        /// The cell: words naming its fields, e.g. "s0 reparameterized native t1" (model,
        /// form, backend, precision, tN threads, bN batch, input size); every cell that
        /// matches is shown.
        cell: String,
        #[command(flatten)]
        filter: HistoryFilter,
    },
    /// Write the history report: history.md and a self-contained history.html with one trend
    /// plot per cell (median and 95% band over the kept runs, change points marked, each
    /// point's commit in its tooltip) and the table of detected changes.
    Report {
        /// The results store: a SQLite file or a postgres:// URL.
        #[arg(long, default_value = DEFAULT_STORE)]
        store: String,
        /// Where to write history.md and history.html.
        #[arg(long, default_value = "results/history")]
        out: PathBuf,
        /// Only the cells this names (as for `history show`; default: every cell).
        #[arg(long)]
        cell: Option<String>,
        #[command(flatten)]
        filter: HistoryFilter,
    },
}

/// Which kept runs a history command looks at.
#[derive(Debug, Clone, Default, Args)]
pub struct HistoryFilter {
    /// Runs of this scenario (its name).
    #[arg(long)]
    pub scenario: Option<String>,
    /// Runs on this machine (a prefix of its fingerprint).
    #[arg(long)]
    pub machine: Option<String>,
    /// Runs of harness builds from this branch.
    #[arg(long)]
    pub branch: Option<String>,
    /// Runs of this commit (a prefix).
    #[arg(long)]
    pub commit: Option<String>,
    /// Runs from commit FROM to commit TO (prefixes; `FROM..` or `..TO` leave a side open):
    /// from the first kept run of FROM to the last of TO, in the order the runs started.
    #[arg(long, value_name = "FROM..TO", value_parser = crate::history::CommitRange::parse)]
    pub commits: Option<crate::history::CommitRange>,
    /// Only the last N runs.
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
}
