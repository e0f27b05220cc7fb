//! The OpenVINO backend (`openvino`, cargo feature `openvino`): each plan is our graph exported
//! as ONNX (`models::onnx`), read by OpenVINO's ONNX frontend and compiled for its CPU plugin
//! with a latency hint, one stream, `INFERENCE_NUM_THREADS` = the plan's threads and the cell's
//! precision as `INFERENCE_PRECISION_HINT` (read back after compiling: a precision OpenVINO
//! would not honour is refused, never run as f32). Profiling plans compile with `PERF_COUNT`
//! and read OpenVINO's per-node performance counters after each run. The C library is opened
//! at run time from `OPENVINO_LIB_PATH` (scripts/setup-openvino.sh). Without the feature a stub
//! takes its place.

use models::{Graph, Precision, Weights};

use crate::backend::{Availability, Backend, BackendError, PrepareOptions, Prepared};

/// Why the backend is missing from a build without the feature.
pub const NOT_COMPILED_IN: &str = "not compiled in (build with --features openvino)";

/// OpenVINO through the `openvino` crate; a stub when the `openvino` feature is off.
pub struct OpenVinoBackend;

impl Backend for OpenVinoBackend {
    fn name(&self) -> &'static str {
        "openvino"
    }

    fn version(&self) -> String {
        #[cfg(feature = "openvino")]
        return engine::version();
        #[cfg(not(feature = "openvino"))]
        "openvino (not compiled in)".to_string()
    }

    fn availability(&self) -> Availability {
        #[cfg(feature = "openvino")]
        return match engine::runtime() {
            Ok(_) => Availability::Available,
            Err(reason) => Availability::Unavailable(reason),
        };
        #[cfg(not(feature = "openvino"))]
        Availability::Unavailable(NOT_COMPILED_IN.into())
    }

    fn compiled_in(&self) -> bool {
        cfg!(feature = "openvino")
    }

    fn multithreaded(&self) -> bool {
        true
    }

    fn reports_layer_times(&self) -> bool {
        cfg!(feature = "openvino")
    }

    /// fp32 everywhere; bf16 and fp16 where OpenVINO's CPU plugin lists them among its
    /// optimization capabilities (on other CPUs it would quietly run them in f32).
    fn supports(&self, precision: Precision) -> Result<(), String> {
        #[cfg(feature = "openvino")]
        return engine::supports(precision);
        #[cfg(not(feature = "openvino"))]
        match precision {
            Precision::Fp32 => Ok(()),
            other => Err(format!("openvino has no {other} path ({NOT_COMPILED_IN})")),
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
        #[cfg(feature = "openvino")]
        {
            let onnx = models::onnx::export(graph, weights, env!("CARGO_PKG_VERSION"))
                .map_err(|e| BackendError::weights(self.name(), e))?;
            let shapes = (graph.input_shape(), graph.output_shape());
            Ok(Box::new(engine::OpenVinoPlan::prepare(
                &onnx, shapes, options,
            )?))
        }
        #[cfg(not(feature = "openvino"))]
        {
            let _ = (graph, weights, options);
            Err(BackendError::unavailable(self.name(), NOT_COMPILED_IN))
        }
    }

    /// The int8 model as QDQ ONNX (`models::onnx::export_quantized`), which OpenVINO reads as
    /// FakeQuantize ops and runs on its own int8 kernels with its own requantization: not code
    /// for code with the quantized reference (`int8_codes_allowed`).
    fn prepare_quantized(
        &self,
        model: &models::quantized::QuantizedModel,
        options: &PrepareOptions,
    ) -> Result<Box<dyn Prepared>, BackendError> {
        crate::require_precision(self, options)?;
        #[cfg(feature = "openvino")]
        {
            let onnx = models::onnx::export_quantized(model, env!("CARGO_PKG_VERSION"))
                .map_err(|e| BackendError::failed(self.name(), e))?;
            let graph = &model.graph;
            let shapes = (graph.input_shape(), graph.output_shape());
            Ok(Box::new(engine::OpenVinoPlan::prepare(
                &onnx, shapes, options,
            )?))
        }
        #[cfg(not(feature = "openvino"))]
        {
            let _ = (model, options);
            Err(BackendError::unavailable(self.name(), NOT_COMPILED_IN))
        }
    }

    fn int8_codes_allowed(&self) -> Option<u64> {
        None
    }
}

/// OpenVINO's name for a precision (`INFERENCE_PRECISION_HINT`) and its capability flag.
pub fn hint_of(precision: Precision) -> (&'static str, &'static str) {
    match precision {
        Precision::Fp32 => ("f32", "FP32"),
        Precision::Bf16 => ("bf16", "BF16"),
        Precision::Fp16 => ("f16", "FP16"),
        // An int8 model runs its quantized ops in int8 whatever the hint; the hint keeps what
        // stays float at f32.
        Precision::Int8 => ("f32", "INT8"),
    }
}

#[cfg(feature = "openvino")]
mod engine {
    //! The real backend: one OpenVINO core, compiled model and infer request per plan.

    use std::cell::RefCell;
    use std::path::PathBuf;
    use std::sync::OnceLock;

    use ::openvino::{
        CompiledModel, Core, DeviceType, ElementType, InferRequest, PropertyKey, RwPropertyKey,
        Shape, Tensor as OvTensor,
    };
    use models::{Precision, Tensor};

    use super::hint_of;
    use crate::backend::{
        check_run_shapes, copy_output, BackendError, LayerTime, PrepareOptions, Prepared,
    };

    const NAME: &str = "openvino";
    /// The library opened when `OPENVINO_LIB_PATH` is unset at run time: its value when this
    /// binary was built.
    const BUILT_WITH: Option<&str> = option_env!("ONEBENCH_OPENVINO_LIB_PATH");

    fn failed(reason: impl ToString) -> BackendError {
        BackendError::failed(NAME, reason)
    }

    /// What the loaded runtime is: its build number and the CPU plugin's capabilities.
    pub struct Runtime {
        version: String,
        capabilities: String,
    }

    fn library() -> Result<PathBuf, String> {
        crate::runtime_library::locate("OPENVINO_LIB_PATH", BUILT_WITH, "scripts/setup-openvino.sh")
    }

    /// The library, loaded once per process, and what its CPU plugin can do.
    pub fn runtime() -> Result<&'static Runtime, String> {
        static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
        let runtime = RUNTIME.get_or_init(|| {
            let path = library()?;
            openvino_sys::library::load_from(&path)
                .map_err(|e| format!("{}: cannot load OpenVINO: {e}", path.display()))?;
            let core = Core::new().map_err(|e| format!("OpenVINO core: {e}"))?;
            let capabilities = core
                .get_property(&DeviceType::CPU, &PropertyKey::DeviceCapabilities)
                .map_err(|e| format!("OpenVINO's CPU plugin: {e}"))?;
            Ok(Runtime {
                version: ::openvino::version().build_number,
                capabilities,
            })
        });
        runtime.as_ref().map_err(Clone::clone)
    }

    pub fn version() -> String {
        let crate_version = env!("ONEBENCH_OPENVINO_VERSION");
        match runtime() {
            Ok(r) => format!("openvino {} (openvino crate {crate_version})", r.version),
            Err(_) => format!("openvino (not loaded; openvino crate {crate_version})"),
        }
    }

    pub fn supports(precision: Precision) -> Result<(), String> {
        let (hint, flag) = hint_of(precision);
        let runtime = runtime()?;
        let listed = runtime.capabilities.split_whitespace().any(|c| c == flag);
        match precision == Precision::Fp32 || listed {
            true => Ok(()),
            false => Err(format!(
                "OpenVINO's CPU plugin lacks {flag} on this CPU (capabilities: {}); a {hint} hint would run f32",
                runtime.capabilities
            )),
        }
    }

    pub struct OpenVinoPlan {
        request: InferRequest,
        input: OvTensor,
        _compiled: CompiledModel,
        _core: Core,
        input_shape: Vec<usize>,
        output_shape: Vec<usize>,
        threads: usize,
        precision: &'static str,
        /// Whether the model is the int8 model's QDQ export.
        int8: bool,
        /// Profiling plans only: each node's time summed over the runs so far.
        profiled: Option<RefCell<Vec<LayerTime>>>,
        runs: u64,
    }

    /// Core properties for the CPU plugin, set before compiling (`PERF_COUNT` for a profiling
    /// plan only: the counters cost time).
    fn configure(
        core: &mut Core,
        options: &PrepareOptions,
        hint: &str,
    ) -> Result<(), BackendError> {
        let threads = options.threads.to_string();
        let profiling = if options.per_layer_timing {
            "YES"
        } else {
            "NO"
        };
        let settings = [
            (RwPropertyKey::HintPerformanceMode, "LATENCY"),
            (RwPropertyKey::NumStreams, "1"),
            (RwPropertyKey::InferenceNumThreads, threads.as_str()),
            (RwPropertyKey::HintInferencePrecision, hint),
            (RwPropertyKey::EnableProfiling, profiling),
            // Pinning binds the calling thread too (the harness's main thread, to CPU 0), which
            // slowed every later cell of other engines in the process by 8-15%.
            (RwPropertyKey::HintEnableCpuPinning, "NO"),
        ];
        core.set_properties(&DeviceType::CPU, settings)
            .map_err(failed)
    }

    /// The C handle of an infer request. `openvino` 0.11 binds no call for the performance
    /// counters and keeps the handle private; the handle is `InferRequest`'s only field (the
    /// struct is asserted to be exactly one pointer, so the field can only lie at offset 0).
    fn request_handle(request: &InferRequest) -> *mut openvino_sys::ov_infer_request_t {
        const _: () = assert!(
            std::mem::size_of::<InferRequest>()
                == std::mem::size_of::<*mut openvino_sys::ov_infer_request_t>()
        );
        // SAFETY: `InferRequest` is one pointer in size and its one field is that pointer (see
        // above); reading it copies the handle without touching ownership.
        unsafe { *(request as *const InferRequest).cast::<*mut openvino_sys::ov_infer_request_t>() }
    }

    /// One node's counters from the last inference: name, node type, what ran, microseconds.
    pub struct NodeTime {
        pub name: String,
        pub node_type: String,
        pub exec_type: String,
        pub micros: i64,
    }

    fn text(ptr: *const std::os::raw::c_char) -> String {
        if ptr.is_null() {
            return String::new();
        }
        // SAFETY: OpenVINO's profiling strings are NUL-terminated and live until the list is freed.
        unsafe { std::ffi::CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned()
    }

    /// The performance counters of the request's last inference: every node that ran (not
    /// those optimized out or not run), in execution order.
    fn node_times(request: &InferRequest) -> Result<Vec<NodeTime>, BackendError> {
        use openvino_sys::{ov_profiling_info_list_t, ov_profiling_info_t_Status, ov_status_e};
        let mut list = ov_profiling_info_list_t {
            profiling_infos: std::ptr::null_mut(),
            size: 0,
        };
        // SAFETY: a live request handle and a list the library fills and we free below.
        let status = unsafe {
            openvino_sys::ov_infer_request_get_profiling_info(request_handle(request), &mut list)
        };
        if status != ov_status_e::OK {
            return Err(failed(format!(
                "ov_infer_request_get_profiling_info: {status:?} (was the plan compiled with PERF_COUNT?)"
            )));
        }
        let infos = match list.profiling_infos.is_null() {
            true => &[][..],
            // SAFETY: the library returned `size` entries at `profiling_infos`.
            false => unsafe { std::slice::from_raw_parts(list.profiling_infos, list.size) },
        };
        let nodes = infos
            .iter()
            .filter(|i| i.status == ov_profiling_info_t_Status::EXECUTED)
            .map(|i| NodeTime {
                name: text(i.node_name),
                node_type: text(i.node_type),
                exec_type: text(i.exec_type),
                micros: i.real_time,
            })
            .collect();
        // SAFETY: the list the library filled above, freed once.
        unsafe { openvino_sys::ov_profiling_info_list_free(&mut list) };
        Ok(nodes)
    }

    /// Adds one inference's node times to the running per-layer totals (a node first seen is
    /// appended, so the order is the execution order).
    fn accumulate(profiled: &mut Vec<LayerTime>, nodes: Vec<NodeTime>) {
        for node in nodes {
            let seconds = node.micros as f64 * 1e-6;
            match profiled.iter_mut().find(|l| l.name == node.name) {
                Some(layer) => layer.seconds += seconds,
                None => profiled.push(LayerTime {
                    name: node.name,
                    kind: node.node_type.to_ascii_lowercase(),
                    kernel: format!("openvino {} {}", node.node_type, node.exec_type),
                    seconds,
                    runs: 0,
                }),
            }
        }
    }

    fn compile(
        onnx: &[u8],
        options: &PrepareOptions,
    ) -> Result<(Core, CompiledModel), BackendError> {
        runtime().map_err(|r| BackendError::unavailable(NAME, r))?;
        let mut core = Core::new().map_err(failed)?;
        let model = core.read_model_from_buffer(onnx, None).map_err(failed)?;
        let (hint, _) = hint_of(options.precision);
        configure(&mut core, options, hint)?;
        let compiled = core
            .compile_model(&model, DeviceType::CPU)
            .map_err(failed)?;
        let key = PropertyKey::Rw(RwPropertyKey::HintInferencePrecision);
        let actual = compiled.get_property(&key).map_err(failed)?;
        if actual != hint {
            return Err(failed(format!(
                "asked OpenVINO for {hint}, it compiled for {actual}: refused rather than measured as {hint}"
            )));
        }
        Ok((core, compiled))
    }

    impl OpenVinoPlan {
        /// A plan for an exported ONNX model (float, or the int8 model's QDQ form).
        pub fn prepare(
            onnx: &[u8],
            (input_shape, output_shape): (&[usize], &[usize]),
            options: &PrepareOptions,
        ) -> Result<Self, BackendError> {
            let (core, mut compiled) = compile(onnx, options)?;
            let mut request = compiled.create_infer_request().map_err(failed)?;
            let dims: Vec<i64> = input_shape.iter().map(|&d| d as i64).collect();
            let shape = Shape::new(&dims).map_err(failed)?;
            let input = OvTensor::new(ElementType::F32, &shape).map_err(failed)?;
            request.set_input_tensor(&input).map_err(failed)?;
            Ok(Self {
                request,
                input,
                _compiled: compiled,
                _core: core,
                input_shape: input_shape.to_vec(),
                output_shape: output_shape.to_vec(),
                int8: options.precision == Precision::Int8,
                threads: options.threads,
                precision: hint_of(options.precision).0,
                profiled: options.per_layer_timing.then(|| RefCell::new(Vec::new())),
                runs: 0,
            })
        }
    }

    impl Prepared for OpenVinoPlan {
        fn input_shape(&self) -> &[usize] {
            &self.input_shape
        }

        fn output_shape(&self) -> &[usize] {
            &self.output_shape
        }

        fn run(&mut self, input: &Tensor, output: &mut Tensor) -> Result<(), BackendError> {
            check_run_shapes(NAME, (&self.input_shape, &self.output_shape), input, output)?;
            let data = self.input.get_data_mut::<f32>().map_err(failed)?;
            data.copy_from_slice(input.data());
            self.request.infer().map_err(failed)?;
            if let Some(profiled) = &self.profiled {
                accumulate(&mut profiled.borrow_mut(), node_times(&self.request)?);
            }
            self.runs += 1;
            let logits = self.request.get_output_tensor().map_err(failed)?;
            let values = logits.get_data::<f32>().map_err(failed)?;
            copy_output(NAME, values, output)
        }

        fn layer_times(&self) -> Vec<LayerTime> {
            let Some(profiled) = &self.profiled else {
                return Vec::new();
            };
            let runs = self.runs;
            profiled
                .borrow()
                .iter()
                .map(|l| LayerTime { runs, ..l.clone() })
                .collect()
        }

        fn describe(&self) -> String {
            format!(
                "openvino: {}, CPU plugin, PERFORMANCE_HINT=LATENCY, NUM_STREAMS=1, INFERENCE_NUM_THREADS={}, INFERENCE_PRECISION_HINT={}, ENABLE_CPU_PINNING=NO{}; {} exported as ONNX opset {}; the input copied into OpenVINO's tensor each run",
                version(),
                self.threads,
                self.precision,
                match self.profiled {
                    Some(_) => ", PERF_COUNT=YES (profiling plan)",
                    None => "",
                },
                match self.int8 {
                    true => "the int8 model (QDQ: OpenVINO's FakeQuantize, int8 kernels)",
                    false => "the graph",
                },
                models::onnx::OPSET
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_precision_has_its_openvino_hint_and_capability() {
        let hints = Precision::FLOATS.map(hint_of);
        assert_eq!(hints, [("f32", "FP32"), ("bf16", "BF16"), ("f16", "FP16")]);
    }

    #[cfg(feature = "openvino")]
    #[test]
    fn a_plan_runs_at_the_precision_it_was_asked_for_and_checks_its_shapes() {
        use models::seeded_uniform;
        let (graph, weights, input) = models::testing::small_s0(64);
        for precision in Precision::ALL {
            let options = PrepareOptions::with_threads(2).at(precision);
            match OpenVinoBackend.supports(precision) {
                Ok(()) => {
                    let mut plan = OpenVinoBackend.prepare(&graph, &weights, &options).unwrap();
                    let hint = format!("INFERENCE_PRECISION_HINT={}", hint_of(precision).0);
                    assert!(plan.describe().contains(&hint), "{}", plan.describe());
                    assert!(plan.describe().contains("INFERENCE_NUM_THREADS=2"));
                    let out = plan.forward(&input).unwrap();
                    assert!(out.data().iter().all(|v| v.is_finite()));
                    let wrong = seeded_uniform(vec![1, 3, 32, 32], 0, -1.0, 1.0);
                    let err = plan.forward(&wrong).unwrap_err().to_string();
                    assert!(err.contains("[1, 3, 32, 32]"), "{err}");
                }
                Err(reason) => {
                    assert!(reason.contains("lacks"), "{reason}");
                    let err = OpenVinoBackend
                        .prepare(&graph, &weights, &options)
                        .err()
                        .unwrap();
                    assert!(err.to_string().contains(&reason), "{err}");
                }
            }
        }
        assert!(OpenVinoBackend.supports(Precision::Fp32).is_ok());
    }

    #[cfg(feature = "openvino")]
    #[test]
    fn a_profiling_plan_accumulates_layer_times_and_a_timing_plan_has_none() {
        let (graph, weights, input) = models::testing::small_s0(64);
        let options = PrepareOptions {
            per_layer_timing: true,
            ..PrepareOptions::with_threads(1)
        };
        assert!(OpenVinoBackend.reports_layer_times());
        let mut plan = OpenVinoBackend.prepare(&graph, &weights, &options).unwrap();
        assert!(
            plan.describe().contains("PERF_COUNT=YES"),
            "{}",
            plan.describe()
        );
        for _ in 0..2 {
            plan.forward(&input).unwrap();
        }
        let first = plan.layer_times();
        assert!(first.len() > 10, "{first:?}");
        assert!(first.iter().all(|l| l.runs == 2 && l.seconds >= 0.0));
        assert!(
            first.iter().any(|l| l.kind.contains("convolution")),
            "{first:?}"
        );
        assert!(first.iter().all(|l| l.kernel.starts_with("openvino ")));
        for _ in 0..3 {
            plan.forward(&input).unwrap();
        }
        let later = plan.layer_times();
        let names = |v: &[crate::LayerTime]| v.iter().map(|l| l.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&later), names(&first), "same layers, same order");
        let total = |v: &[crate::LayerTime]| v.iter().map(|l| l.seconds).sum::<f64>();
        assert!(total(&later) > total(&first) && later[0].runs == 5);

        let mut timed = OpenVinoBackend
            .prepare(&graph, &weights, &PrepareOptions::with_threads(2))
            .unwrap();
        timed.forward(&input).unwrap();
        assert!(timed.layer_times().is_empty());
        assert!(!timed.describe().contains("PERF_COUNT"));
    }
}
