//! The OpenVINO backend (`openvino`, cargo feature `openvino`): each plan is our graph exported
//! as ONNX (`models::onnx`), read by OpenVINO's ONNX frontend and compiled for its CPU plugin
//! with a latency hint, one stream, `INFERENCE_NUM_THREADS` = the plan's threads and the cell's
//! precision as `INFERENCE_PRECISION_HINT` (read back after compiling: a precision OpenVINO
//! would not honour is refused, never run as f32). The C library is opened at run time from
//! `OPENVINO_LIB_PATH` (scripts/setup-openvino.sh). Without the feature a stub takes its place.

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
        #[cfg(feature = "openvino")]
        return Ok(Box::new(engine::OpenVinoPlan::prepare(
            graph, weights, options,
        )?));
        #[cfg(not(feature = "openvino"))]
        {
            let _ = (graph, weights, options);
            Err(BackendError::unavailable(self.name(), NOT_COMPILED_IN))
        }
    }
}

/// OpenVINO's name for a precision (`INFERENCE_PRECISION_HINT`) and its capability flag.
pub fn hint_of(precision: Precision) -> (&'static str, &'static str) {
    match precision {
        Precision::Fp32 => ("f32", "FP32"),
        Precision::Bf16 => ("bf16", "BF16"),
        Precision::Fp16 => ("f16", "FP16"),
    }
}

#[cfg(feature = "openvino")]
mod engine {
    //! The real backend: one OpenVINO core, compiled model and infer request per plan.

    use std::path::PathBuf;
    use std::sync::OnceLock;

    use ::openvino::{
        CompiledModel, Core, DeviceType, ElementType, InferRequest, PropertyKey, RwPropertyKey,
        Shape, Tensor as OvTensor,
    };
    use models::{Graph, Precision, Tensor, Weights};

    use super::hint_of;
    use crate::backend::{check_run_shapes, copy_output, BackendError, PrepareOptions, Prepared};

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
    }

    /// Core properties for the CPU plugin, set before compiling.
    fn configure(core: &mut Core, threads: usize, hint: &str) -> Result<(), BackendError> {
        let threads = threads.to_string();
        let settings = [
            (RwPropertyKey::HintPerformanceMode, "LATENCY"),
            (RwPropertyKey::NumStreams, "1"),
            (RwPropertyKey::InferenceNumThreads, threads.as_str()),
            (RwPropertyKey::HintInferencePrecision, hint),
        ];
        core.set_properties(&DeviceType::CPU, settings)
            .map_err(failed)
    }

    fn compile(
        graph: &Graph,
        weights: &Weights,
        options: &PrepareOptions,
    ) -> Result<(Core, CompiledModel), BackendError> {
        runtime().map_err(|r| BackendError::unavailable(NAME, r))?;
        let onnx = models::onnx::export(graph, weights, env!("CARGO_PKG_VERSION"))
            .map_err(|e| BackendError::weights(NAME, e))?;
        let mut core = Core::new().map_err(failed)?;
        let model = core.read_model_from_buffer(&onnx, None).map_err(failed)?;
        let (hint, _) = hint_of(options.precision);
        configure(&mut core, options.threads, hint)?;
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
        pub fn prepare(
            graph: &Graph,
            weights: &Weights,
            options: &PrepareOptions,
        ) -> Result<Self, BackendError> {
            let (core, mut compiled) = compile(graph, weights, options)?;
            let mut request = compiled.create_infer_request().map_err(failed)?;
            let dims: Vec<i64> = graph.input_shape().iter().map(|&d| d as i64).collect();
            let shape = Shape::new(&dims).map_err(failed)?;
            let input = OvTensor::new(ElementType::F32, &shape).map_err(failed)?;
            request.set_input_tensor(&input).map_err(failed)?;
            Ok(Self {
                request,
                input,
                _compiled: compiled,
                _core: core,
                input_shape: graph.input_shape().to_vec(),
                output_shape: graph.output_shape().to_vec(),
                threads: options.threads,
                precision: hint_of(options.precision).0,
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
            let logits = self.request.get_output_tensor().map_err(failed)?;
            let values = logits.get_data::<f32>().map_err(failed)?;
            copy_output(NAME, values, output)
        }

        fn describe(&self) -> String {
            format!(
                "openvino: {}, CPU plugin, PERFORMANCE_HINT=LATENCY, NUM_STREAMS=1, INFERENCE_NUM_THREADS={}, INFERENCE_PRECISION_HINT={}; the graph exported as ONNX opset {}; the input copied into OpenVINO's tensor each run",
                version(),
                self.threads,
                self.precision,
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
        let hints = Precision::ALL.map(hint_of);
        assert_eq!(hints, [("f32", "FP32"), ("bf16", "BF16"), ("f16", "FP16")]);
    }

    #[cfg(feature = "openvino")]
    #[test]
    fn a_plan_runs_at_the_precision_it_was_asked_for_and_checks_its_shapes() {
        use models::{seeded_uniform, Form, InputSize, Model, Variant};
        let model = Model::MobileOne(Variant::S0);
        let graph = model
            .build(Form::Reparameterized, InputSize::square(1, 64))
            .unwrap();
        let weights = model.seeded_weights(Form::Reparameterized, 0);
        let input = seeded_uniform(graph.input_shape().to_vec(), 0, -2.0, 2.0);
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
}
