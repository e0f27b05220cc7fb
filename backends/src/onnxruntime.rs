//! The ONNX Runtime backend (`ort`, cargo feature `ort`): each plan is our graph exported as ONNX
//! (`models::onnx`) and loaded into an ONNX Runtime session on the CPU execution provider (all
//! graph optimizations, intra-op threads = the plan's threads, one inter-op thread, sequential).
//! The library is opened at run time from `ORT_DYLIB_PATH` (scripts/setup-onnxruntime.sh); per-
//! layer times come from ONNX Runtime's own profiler, in profiling plans only. Without the
//! feature a stub takes its place and reports "not compiled in".

use models::{Graph, Precision, Weights};

use crate::backend::{Availability, Backend, BackendError, PrepareOptions, Prepared};

/// Why the backend is missing from a build without the feature.
pub const NOT_COMPILED_IN: &str = "not compiled in (build with --features ort)";

/// ONNX Runtime through the `ort` crate; a stub when the `ort` feature is off.
pub struct OrtBackend;

impl Backend for OrtBackend {
    fn name(&self) -> &'static str {
        "ort"
    }

    fn version(&self) -> String {
        #[cfg(feature = "ort")]
        return engine::version();
        #[cfg(not(feature = "ort"))]
        "onnxruntime (not compiled in)".to_string()
    }

    fn availability(&self) -> Availability {
        #[cfg(feature = "ort")]
        return match engine::environment() {
            Ok(_) => Availability::Available,
            Err(reason) => Availability::Unavailable(reason),
        };
        #[cfg(not(feature = "ort"))]
        Availability::Unavailable(NOT_COMPILED_IN.into())
    }

    fn compiled_in(&self) -> bool {
        cfg!(feature = "ort")
    }

    fn multithreaded(&self) -> bool {
        true
    }

    fn reports_layer_times(&self) -> bool {
        cfg!(feature = "ort")
    }

    /// fp32 only: ONNX Runtime runs the exported float32 graph as it is; a bf16 or fp16 cell
    /// would need a converted export, which is not written.
    /// fp32 only, for what ONNX Runtime itself does with 16-bit graphs (checked with 1.32 on
    /// x86): ONNX's Conv has no bfloat16, and the CPU execution provider runs an fp16 graph
    /// as Cast, float32 kernels, Cast (its optimized graph shows it), which would be float32
    /// measured under the name fp16.
    fn supports(&self, precision: Precision) -> Result<(), String> {
        match precision {
            Precision::Fp32 => Ok(()),
            Precision::Bf16 => Err(
                "ONNX's Conv takes no bfloat16 (ONNX Runtime refuses a bf16 graph as invalid)".into(),
            ),
            Precision::Fp16 if cfg!(target_arch = "x86_64") => Err(
                "ONNX Runtime's CPU execution provider has no fp16 convolutions on x86: an fp16 graph runs as Cast, float32 kernels, Cast".into(),
            ),
            Precision::Fp16 => Err(
                "ort runs the float32 ONNX export only here (an fp16 export and a check that ONNX Runtime keeps it in fp16 on this CPU are not written)".into(),
            ),
            // The QDQ export of the int8 model: ONNX Runtime fuses it into its int8 kernels.
            Precision::Int8 => Ok(()),
        }
    }

    fn prepare(
        &self,
        graph: &Graph,
        weights: &Weights,
        options: &PrepareOptions,
    ) -> Result<Box<dyn Prepared>, BackendError> {
        crate::require_precision(self, options)?;
        if options.precision == Precision::Int8 {
            let model = crate::quantized_reference::quantize_seeded(graph, weights)?;
            return self.prepare_quantized(&model, options);
        }
        #[cfg(feature = "ort")]
        return Ok(Box::new(engine::OrtPlan::prepare(graph, weights, options)?));
        #[cfg(not(feature = "ort"))]
        {
            let _ = (graph, weights, options);
            Err(BackendError::unavailable(self.name(), NOT_COMPILED_IN))
        }
    }

    /// The int8 model as QDQ ONNX (`models::onnx::export_quantized`): ONNX Runtime's own int8
    /// kernels (QLinearConv and friends) with its own requantization (float scales, ties to
    /// even), so not code for code with the quantized reference (`int8_codes_allowed`).
    fn prepare_quantized(
        &self,
        model: &models::quantized::QuantizedModel,
        options: &PrepareOptions,
    ) -> Result<Box<dyn Prepared>, BackendError> {
        #[cfg(feature = "ort")]
        return Ok(Box::new(engine::OrtPlan::prepare_quantized(
            model, options,
        )?));
        #[cfg(not(feature = "ort"))]
        {
            let _ = (model, options);
            Err(BackendError::unavailable(self.name(), NOT_COMPILED_IN))
        }
    }

    fn int8_codes_allowed(&self) -> Option<u64> {
        None
    }
}

/// Per-node kernel times from an ONNX Runtime profile (its Chrome-trace JSON): for each node
/// event `<node>_kernel_time`, the node, its op and microseconds, in the order they ran.
pub fn parse_profile(json: &str) -> Result<Vec<(String, String, f64)>, String> {
    let events: Vec<serde_json::Value> =
        serde_json::from_str(json).map_err(|e| format!("ONNX Runtime profile: {e}"))?;
    let kernels = events
        .iter()
        .filter(|e| e["cat"] == "Node")
        .filter_map(|e| {
            let node = e["name"].as_str()?.strip_suffix("_kernel_time")?;
            let op = e["args"]["op_name"].as_str().unwrap_or("?");
            Some((node.to_string(), op.to_string(), e["dur"].as_f64()?))
        });
    Ok(kernels.collect())
}

#[cfg(feature = "ort")]
mod engine {
    //! The real backend: one ONNX Runtime session per plan.

    use std::cell::RefCell;
    use std::path::PathBuf;
    use std::sync::OnceLock;

    use models::{Graph, Tensor, Weights};
    use ort::environment::Environment;
    use ort::session::builder::GraphOptimizationLevel;
    use ort::session::Session;
    use ort::value::TensorRef;

    use crate::backend::{
        check_run_shapes, copy_output, BackendError, LayerTime, PrepareOptions, Prepared,
    };

    const NAME: &str = "ort";
    /// Where the library is looked for when `ORT_DYLIB_PATH` is unset at run time: its value
    /// when this binary was built.
    const BUILT_WITH: Option<&str> = option_env!("ONEBENCH_ORT_DYLIB_PATH");

    fn failed(reason: impl ToString) -> BackendError {
        BackendError::failed(NAME, reason)
    }

    fn library() -> Result<PathBuf, String> {
        crate::runtime_library::locate("ORT_DYLIB_PATH", BUILT_WITH, "scripts/setup-onnxruntime.sh")
    }

    /// The process's one ONNX Runtime environment (the library allows one), loaded once.
    pub fn environment() -> Result<&'static Environment, String> {
        static ENV: OnceLock<Result<Environment, String>> = OnceLock::new();
        let env = ENV.get_or_init(|| {
            let path = library()?;
            let builder = ort::init_from(&path)
                .map_err(|e| format!("{}: cannot load ONNX Runtime: {e}", path.display()))?;
            let env = builder.with_name("onebench").with_telemetry(false).build();
            env.map_err(|e| format!("ONNX Runtime environment: {e}"))
        });
        env.as_ref().map_err(Clone::clone)
    }

    /// The loaded library's version and the `ort` crate's.
    pub fn version() -> String {
        let crate_version = env!("ONEBENCH_ORT_VERSION");
        match environment() {
            Ok(_) => format!("onnxruntime {} (ort {crate_version})", library_version()),
            Err(_) => format!("onnxruntime (not loaded; ort {crate_version})"),
        }
    }

    fn library_version() -> String {
        // ort::info() is the build-info line "ORT Build Info: git-branch=..., build type=...";
        // the version is the library file's suffix (libonnxruntime.so.1.32.0) when it has one.
        let path = library().unwrap_or_default();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        name.rsplit_once(".so.")
            .map(|(_, v)| v.to_string())
            .unwrap_or_else(|| ort::info().to_string())
    }

    pub struct OrtPlan {
        session: RefCell<Session>,
        /// Profiling plans only: the model, for the fresh profiling sessions.
        model: Option<Vec<u8>>,
        options: PrepareOptions,
        input_shape: Vec<usize>,
        output_shape: Vec<usize>,
        output_name: String,
        /// Profiling plans: the kernel times of sessions already ended, in the order nodes ran.
        profiled: RefCell<Vec<LayerTime>>,
        runs: u64,
        profile_dir: Option<tempfile::TempDir>,
    }

    fn session(
        model: &[u8],
        options: &PrepareOptions,
        profile: Option<&std::path::Path>,
    ) -> Result<Session, BackendError> {
        let env = environment().map_err(|r| BackendError::unavailable(NAME, r))?;
        let builder = Session::builder(env)
            .map_err(failed)?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(failed)?
            .with_intra_threads(options.threads)
            .map_err(failed)?
            .with_inter_threads(1)
            .map_err(failed)?
            .with_parallel_execution(false)
            .map_err(failed)?;
        let mut builder = match profile {
            Some(prefix) => builder.with_profiling(prefix).map_err(failed)?,
            None => builder,
        };
        builder.commit_from_memory(model).map_err(failed)
    }

    impl OrtPlan {
        pub fn prepare(
            graph: &Graph,
            weights: &Weights,
            options: &PrepareOptions,
        ) -> Result<Self, BackendError> {
            let model = models::onnx::export(graph, weights, env!("CARGO_PKG_VERSION"))
                .map_err(|e| BackendError::weights(NAME, e))?;
            let shapes = (graph.input_shape(), graph.output_shape());
            Self::from_onnx(model, shapes, options)
        }

        /// The int8 model's QDQ export.
        pub fn prepare_quantized(
            model: &models::quantized::QuantizedModel,
            options: &PrepareOptions,
        ) -> Result<Self, BackendError> {
            let bytes = models::onnx::export_quantized(model, env!("CARGO_PKG_VERSION"))
                .map_err(|e| BackendError::failed(NAME, e))?;
            let graph = &model.graph;
            Self::from_onnx(bytes, (graph.input_shape(), graph.output_shape()), options)
        }

        fn from_onnx(
            model: Vec<u8>,
            (input_shape, output_shape): (&[usize], &[usize]),
            options: &PrepareOptions,
        ) -> Result<Self, BackendError> {
            let profile_dir = match options.per_layer_timing {
                true => Some(tempfile::tempdir().map_err(failed)?),
                false => None,
            };
            let prefix = profile_dir.as_ref().map(|d| d.path().join("profile"));
            let session = session(&model, options, prefix.as_deref())?;
            let output_name = session.outputs()[0].name().to_string();
            Ok(Self {
                session: RefCell::new(session),
                model: profile_dir.is_some().then_some(model),
                options: options.clone(),
                input_shape: input_shape.to_vec(),
                output_shape: output_shape.to_vec(),
                output_name,
                profiled: RefCell::new(Vec::new()),
                runs: 0,
                profile_dir,
            })
        }

        /// Ends the profiling session's profile, adds its kernel times to `profiled`, and
        /// starts a fresh profiling session (ONNX Runtime profiles a session once).
        fn collect_profile(&self) -> Result<(), BackendError> {
            let (Some(dir), Some(model)) = (&self.profile_dir, &self.model) else {
                return Ok(());
            };
            let file = self.session.borrow_mut().end_profiling().map_err(failed)?;
            let text =
                std::fs::read_to_string(&file).map_err(|e| failed(format!("{file}: {e}")))?;
            let _ = std::fs::remove_file(&file);
            let mut profiled = self.profiled.borrow_mut();
            for (node, op, micros) in super::parse_profile(&text).map_err(failed)? {
                let seconds = micros * 1e-6;
                match profiled.iter_mut().find(|l| l.name == node) {
                    Some(layer) => layer.seconds += seconds,
                    None => profiled.push(LayerTime {
                        name: node,
                        kind: op.to_ascii_lowercase(),
                        kernel: format!("onnxruntime {op} (CPU)"),
                        seconds,
                        runs: 0,
                    }),
                }
            }
            *self.session.borrow_mut() =
                session(model, &self.options, Some(&dir.path().join("profile")))?;
            Ok(())
        }
    }

    impl Prepared for OrtPlan {
        fn input_shape(&self) -> &[usize] {
            &self.input_shape
        }

        fn output_shape(&self) -> &[usize] {
            &self.output_shape
        }

        fn run(&mut self, input: &Tensor, output: &mut Tensor) -> Result<(), BackendError> {
            check_run_shapes(NAME, (&self.input_shape, &self.output_shape), input, output)?;
            let view = TensorRef::from_array_view((input.shape(), input.data())).map_err(failed)?;
            let mut session = self.session.borrow_mut();
            let outputs = session.run(ort::inputs!["input" => view]).map_err(failed)?;
            let (_, logits) = outputs[self.output_name.as_str()]
                .try_extract_tensor::<f32>()
                .map_err(failed)?;
            copy_output(NAME, logits, output)?;
            self.runs += 1;
            Ok(())
        }

        fn layer_times(&self) -> Vec<LayerTime> {
            if self.profile_dir.is_none() || self.collect_profile().is_err() {
                return Vec::new();
            }
            let runs = self.runs;
            self.profiled
                .borrow()
                .iter()
                .map(|l| LayerTime { runs, ..l.clone() })
                .collect()
        }

        fn describe(&self) -> String {
            format!(
                "ort: {}, CPU execution provider, all graph optimizations, {} intra-op thread(s), 1 inter-op, sequential; the graph exported as ONNX opset {}",
                version(),
                self.options.threads,
                models::onnx::OPSET
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_16_bit_cell_is_skipped_with_what_onnx_runtime_would_do() {
        assert!(OrtBackend.supports(Precision::Fp32).is_ok());
        let bf16 = OrtBackend.supports(Precision::Bf16).unwrap_err();
        assert!(bf16.contains("no bfloat16"), "{bf16}");
        let fp16 = OrtBackend.supports(Precision::Fp16).unwrap_err();
        if cfg!(target_arch = "x86_64") {
            assert!(fp16.contains("Cast, float32 kernels, Cast"), "{fp16}");
        }
    }

    #[test]
    fn a_profile_gives_each_kernel_in_order_and_nothing_else() {
        let json = r#"[
            {"cat": "Session", "name": "session_initialization", "dur": 900, "args": {}},
            {"cat": "Node", "name": "stem_kernel_time", "dur": 120, "args": {"op_name": "Conv"}},
            {"cat": "Node", "name": "stem_fence_before", "dur": 1, "args": {"op_name": "Conv"}},
            {"cat": "Node", "name": "head.fc_kernel_time", "dur": 7.5, "args": {"op_name": "Gemm"}}
        ]"#;
        let kernels = parse_profile(json).unwrap();
        assert_eq!(
            kernels,
            [
                ("stem".to_string(), "Conv".to_string(), 120.0),
                ("head.fc".to_string(), "Gemm".to_string(), 7.5)
            ]
        );
        let err = parse_profile("[{\"cat\": ").unwrap_err();
        assert!(err.starts_with("ONNX Runtime profile:"), "{err}");
    }

    #[cfg(feature = "ort")]
    #[test]
    fn a_profiling_plan_accumulates_layer_times_and_a_timing_plan_has_none() {
        use models::seeded_uniform;
        let (graph, weights, input) = models::testing::small_s0(64);
        let options = PrepareOptions {
            per_layer_timing: true,
            ..PrepareOptions::with_threads(1)
        };
        let mut plan = OrtBackend.prepare(&graph, &weights, &options).unwrap();
        for _ in 0..2 {
            plan.forward(&input).unwrap();
        }
        let first = plan.layer_times();
        assert!(first.len() > 10, "{first:?}");
        assert!(first.iter().all(|l| l.runs == 2 && l.seconds > 0.0));
        for _ in 0..3 {
            plan.forward(&input).unwrap();
        }
        let later = plan.layer_times();
        let names = |v: &[crate::LayerTime]| v.iter().map(|l| l.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&later), names(&first), "same layers, same order");
        for (a, b) in first.iter().zip(&later) {
            assert!(b.seconds > a.seconds && b.runs == 5, "{a:?} then {b:?}");
        }
        assert!(
            plan.describe().contains("1 intra-op thread(s)"),
            "{}",
            plan.describe()
        );

        let mut timed = OrtBackend
            .prepare(&graph, &weights, &PrepareOptions::with_threads(2))
            .unwrap();
        timed.forward(&input).unwrap();
        assert!(timed.layer_times().is_empty());
        let wrong = seeded_uniform(vec![1, 3, 32, 32], 0, -1.0, 1.0);
        let err = timed.forward(&wrong).unwrap_err().to_string();
        assert!(err.contains("[1, 3, 32, 32]"), "{err}");
    }
}
