//! The backend abstraction: a `Backend` prepares a graph with its weights once into a
//! `Prepared` plan (layouts, packed weights, buffers), which then runs many times. Backends
//! report their name, version, availability (with the reason when unavailable) and the
//! tolerance their outputs are checked against the reference with.

use std::fmt;

use models::quantized::QuantizedModel;
use models::{Graph, Precision, Tensor, Weights};

/// Why a backend cannot prepare or run a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackendError {
    #[error("backend `{backend}` is unavailable: {reason}")]
    Unavailable { backend: String, reason: String },
    #[error("backend `{backend}` does not support op `{op}` (node `{node}`)")]
    UnsupportedOp {
        backend: String,
        op: String,
        node: String,
    },
    #[error(
        "backend `{backend}`: input shape {found:?} does not match the prepared shape {expected:?}"
    )]
    InputShape {
        backend: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("backend `{backend}`: weights do not fit the graph: {reason}")]
    Weights { backend: String, reason: String },
    #[error("unknown backend `{name}`; known backends: {known}")]
    UnknownBackend { name: String, known: String },
    #[error("backend `{backend}` failed: {reason}")]
    Failed { backend: String, reason: String },
    #[error("backend `{backend}` does not compute in {precision}: {reason}")]
    UnsupportedPrecision {
        backend: String,
        precision: Precision,
        reason: String,
    },
}

impl BackendError {
    /// `backend` failed to prepare or run, and why.
    pub fn failed(backend: &str, reason: impl ToString) -> Self {
        Self::Failed {
            backend: backend.into(),
            reason: reason.to_string(),
        }
    }

    /// The weights given to `backend` do not fit the graph, and why.
    pub fn weights(backend: &str, reason: impl ToString) -> Self {
        Self::Weights {
            backend: backend.into(),
            reason: reason.to_string(),
        }
    }

    /// `backend` cannot run here, and why.
    pub fn unavailable(backend: &str, reason: impl ToString) -> Self {
        Self::Unavailable {
            backend: backend.into(),
            reason: reason.to_string(),
        }
    }
}

/// Whether a backend can run on this machine, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    Available,
    Unavailable(String),
}

impl fmt::Display for Availability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Availability::Available => f.write_str("available"),
            Availability::Unavailable(reason) => write!(f, "unavailable: {reason}"),
        }
    }
}

/// Per-preparation settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepareOptions {
    /// Worker threads for this plan (1 = single-threaded).
    pub threads: usize,
    /// Record the time of each planned op (off for end-to-end timing).
    pub per_layer_timing: bool,
    /// The number format to compute in (`Backend::supports` says which a backend has).
    pub precision: Precision,
}

impl PrepareOptions {
    /// `threads` worker threads, no per-layer timing.
    pub fn with_threads(threads: usize) -> Self {
        Self {
            threads,
            per_layer_timing: false,
            precision: Precision::Fp32,
        }
    }

    /// These options at `precision`.
    pub fn at(self, precision: Precision) -> Self {
        Self { precision, ..self }
    }
}

impl Default for PrepareOptions {
    fn default() -> Self {
        Self::with_threads(1)
    }
}

/// A runtime that turns a graph and its weights into a runnable plan.
pub trait Backend: Send + Sync {
    /// Stable name used on the command line and in results, e.g. `reference`.
    fn name(&self) -> &'static str;
    /// Version of the engine (library version for wrapped libraries).
    fn version(&self) -> String;
    fn availability(&self) -> Availability;
    /// False for the stub of a backend whose cargo feature is off (scenarios' `all` leaves it
    /// out; named explicitly, it is reported as not compiled in).
    fn compiled_in(&self) -> bool {
        true
    }
    /// The device a GPU backend runs on (adapter name, graphics API, driver); `None` for CPU
    /// backends.
    fn device(&self) -> Option<String> {
        None
    }
    /// Whether `PrepareOptions::threads` takes effect; a single-threaded backend is not run
    /// (and not reported as measured) at other thread counts.
    fn multithreaded(&self) -> bool {
        false
    }
    /// Whether plans prepared with `per_layer_timing` report `Prepared::layer_times`.
    fn reports_layer_times(&self) -> bool {
        false
    }
    /// Largest relative L2 error against the reference executor that counts as correct (at
    /// fp32).
    fn tolerance(&self) -> f64 {
        1e-4
    }
    /// Whether this backend computes in `precision` here; `Err` says why not. Every engine
    /// computes in fp32; one that has a 16-bit format says so.
    fn supports(&self, precision: Precision) -> Result<(), String> {
        match precision {
            Precision::Fp32 => Ok(()),
            other => Err(format!("{} has no {other} path", self.name())),
        }
    }
    /// The tolerance at `precision`: `tolerance()` at fp32, the format's own bound
    /// (`reduced_precision_tolerance`) at a 16-bit one.
    fn tolerance_at(&self, precision: Precision) -> f64 {
        match precision {
            Precision::Fp32 => self.tolerance(),
            other => reduced_precision_tolerance(other),
        }
    }
    /// The element sizes this backend stores at `precision` (what its cells' memory traffic is
    /// counted in): every element at the precision's own size, unless the backend says
    /// otherwise.
    fn storage(&self, precision: Precision) -> models::Storage {
        models::Storage::uniform(precision.bytes() as u64)
    }
    /// Prepares `graph` with `weights`; the input shape is the graph's. At int8 the backend
    /// quantizes the graph itself, on `quantized_reference::seeded_calibration`.
    fn prepare(
        &self,
        graph: &Graph,
        weights: &Weights,
        options: &PrepareOptions,
    ) -> Result<Box<dyn Prepared>, BackendError>;

    /// How many output codes an int8 plan may differ from the quantized reference by: `Some(0)`
    /// for an engine that follows its integer arithmetic exactly; `None` for one with its own
    /// requantization, which is checked against float64 only and its distance reported.
    fn int8_codes_allowed(&self) -> Option<u64> {
        Some(0)
    }

    /// Prepares an int8 model quantized beforehand (the one the quantized reference runs, so
    /// outputs can be compared code for code). Backends without int8 refuse.
    fn prepare_quantized(
        &self,
        model: &QuantizedModel,
        options: &PrepareOptions,
    ) -> Result<Box<dyn Prepared>, BackendError> {
        let _ = (model, options);
        Err(BackendError::UnsupportedPrecision {
            backend: self.name().into(),
            precision: Precision::Int8,
            reason: self
                .supports(Precision::Int8)
                .err()
                .unwrap_or_else(|| format!("{} has no int8 path", self.name())),
        })
    }
}

/// The relative L2 error against the float64 reference that a correct 16-bit engine stays
/// within: 16 units of the format's rounding (2^-8 for bf16, 2^-11 for fp16). Rounding each
/// weight and each GEMM operand costs about a third of a unit (RMS) per value, and a chain of
/// 30-90 layers adds them up: native bf16 measured 3.5e-3 to 8.4e-3 on S0-S4 and 2.5e-3 to
/// 4.2e-2 on the zoo at 224x224 (the most: dynamic ReLU-B's input-dependent slopes, then
/// MobileNeXt at 2.6e-2; README, "Precision"). 16 units (6.3e-2 at bf16) keeps a margin of 1.5
/// over the worst, while a wrong kernel (an error of order 1) still fails. fp16 engines also sum
/// in fp16 (candle's f16 ops, native's blocks of 64 products), which adds about as much again
/// (MobileNeXt at 64x64 on native: 6.1e-3 with f32 sums, 1.3e-2 with fp16 block sums): 32 units,
/// 1.6e-2, at fp16.
///
/// int8 is checked code for code against the quantized reference
/// (`verify::Agreement::passed`); its bound against float64 is a sanity check of the
/// quantization itself: 0.3. Post-training min/max quantization of S0-S4 at 224x224 measured
/// 1.8e-2 to 9.4e-2 (README, "int8"), a margin of 3; a broken quantizer is off by order 1.
pub fn reduced_precision_tolerance(precision: Precision) -> f64 {
    let units = match precision {
        Precision::Fp16 => 32.0,
        Precision::Int8 => return 0.3,
        _ => 16.0,
    };
    units * 2f64.powi(-(precision.significand_bits() as i32))
}

/// Refuses to prepare at a precision `backend` does not compute in.
pub fn require_precision(
    backend: &(impl Backend + ?Sized),
    options: &PrepareOptions,
) -> Result<(), BackendError> {
    backend
        .supports(options.precision)
        .map_err(|reason| BackendError::UnsupportedPrecision {
            backend: backend.name().into(),
            precision: options.precision,
            reason,
        })
}

/// A prepared plan: runs one forward pass per call.
pub trait Prepared: Send {
    fn input_shape(&self) -> &[usize];
    fn output_shape(&self) -> &[usize];
    /// Runs one forward pass into `output` (shaped `output_shape`). Returns when the result is
    /// complete (synchronized), so the call can be timed.
    fn run(&mut self, input: &Tensor, output: &mut Tensor) -> Result<(), BackendError>;
    /// A human-readable summary of the plan (layout, fusions, kernels).
    fn describe(&self) -> String;

    /// Per-op times, when the plan was prepared with `per_layer_timing` and the backend
    /// supports it; empty otherwise.
    fn layer_times(&self) -> Vec<LayerTime> {
        Vec::new()
    }

    /// Seconds the last run took on the GPU by its timestamp queries (kernels only: no upload,
    /// readback or submission), for backends and adapters that have them; `None` otherwise.
    fn gpu_seconds(&self) -> Option<f64> {
        None
    }

    /// Runs one forward pass into a new tensor.
    fn forward(&mut self, input: &Tensor) -> Result<Tensor, BackendError> {
        let mut output = Tensor::zeros(self.output_shape().to_vec());
        self.run(input, &mut output)?;
        Ok(output)
    }
}

/// Checks a run's tensors against the prepared shapes: the input, and the output the plan
/// writes into (a mismatch is an error, never a panic in a copy).
pub fn check_run_shapes(
    backend: &str,
    prepared: (&[usize], &[usize]),
    input: &Tensor,
    output: &Tensor,
) -> Result<(), BackendError> {
    let (input_shape, output_shape) = prepared;
    if input.shape() != input_shape {
        return Err(BackendError::InputShape {
            backend: backend.into(),
            expected: input_shape.to_vec(),
            found: input.shape().to_vec(),
        });
    }
    if output.shape() != output_shape {
        return Err(BackendError::failed(
            backend,
            format!(
                "output tensor is {:?}, the plan writes {:?}",
                output.shape(),
                output_shape
            ),
        ));
    }
    Ok(())
}

/// Copies the logits a wrapped runtime returned into the run's output tensor, refusing a count
/// that does not fit it.
pub fn copy_output(backend: &str, values: &[f32], output: &mut Tensor) -> Result<(), BackendError> {
    if values.len() != output.numel() {
        return Err(BackendError::failed(
            backend,
            format!(
                "the runtime returned {} values, expected {}",
                values.len(),
                output.numel()
            ),
        ));
    }
    output.data_mut().copy_from_slice(values);
    Ok(())
}

/// Accumulated time of one planned op over the runs since the plan was prepared.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerTime {
    /// The graph nodes the op carries out (fused nodes joined by `+`).
    pub name: String,
    /// The op kind, for grouping (e.g. `gemm`, `depthwise`).
    pub kind: String,
    /// What ran (kernel, instruction set, fusions).
    pub kernel: String,
    /// Total seconds over `runs` runs.
    pub seconds: f64,
    pub runs: u64,
}
