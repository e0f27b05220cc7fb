//! The libtorch backend (`tch`, cargo feature `tch`): builds our graphs from libtorch's own ops
//! (conv2d with groups, batch_norm, relu, adaptive pooling, linear) with gradients off, and
//! picks NCHW or channels-last per plan by timing both. At bf16 and fp16 the parameters and the
//! input are libtorch tensors of that dtype and libtorch's CPU ops run in it (oneDNN's on
//! AVX512_BF16 and AVX512-FP16 machines). Without the feature a stub takes its place and reports
//! "not compiled in", so listings and the CLI always build.

use models::{Graph, Precision, Weights};

use crate::backend::{Availability, Backend, BackendError, PrepareOptions, Prepared};

/// Why the backend is missing from a build without the feature.
pub const NOT_COMPILED_IN: &str = "not compiled in (build with --features tch)";

/// libtorch through `tch`; a stub when the `tch` feature is off.
pub struct TchBackend;

impl Backend for TchBackend {
    fn name(&self) -> &'static str {
        "tch"
    }

    fn version(&self) -> String {
        #[cfg(feature = "tch")]
        return engine::version();
        #[cfg(not(feature = "tch"))]
        "libtorch (not compiled in)".to_string()
    }

    fn availability(&self) -> Availability {
        if cfg!(feature = "tch") {
            Availability::Available
        } else {
            Availability::Unavailable(NOT_COMPILED_IN.into())
        }
    }

    fn multithreaded(&self) -> bool {
        true
    }

    fn compiled_in(&self) -> bool {
        cfg!(feature = "tch")
    }

    fn reports_layer_times(&self) -> bool {
        cfg!(feature = "tch")
    }

    /// fp32, bf16 and fp16, as libtorch tensors of that dtype; not int8.
    fn supports(&self, precision: Precision) -> Result<(), String> {
        match precision {
            Precision::Int8 => Err(
                "tch runs float graphs only (libtorch's quantized CPU ops need a model quantized in PyTorch, which is not built here)".into(),
            ),
            _ => Ok(()),
        }
    }

    fn prepare(
        &self,
        graph: &Graph,
        weights: &Weights,
        options: &PrepareOptions,
    ) -> Result<Box<dyn Prepared>, BackendError> {
        crate::require_precision(self, options)?;
        #[cfg(feature = "tch")]
        return Ok(Box::new(engine::TchPlan::prepare(graph, weights, options)?));
        #[cfg(not(feature = "tch"))]
        {
            let _ = (graph, weights, options);
            Err(BackendError::unavailable(self.name(), NOT_COMPILED_IN))
        }
    }
}

/// The memory format a plan runs in, and how it was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryFormat {
    /// NCHW, libtorch's default.
    Contiguous,
    /// NHWC strides under NCHW sizes (`torch.channels_last`), which oneDNN convolutions prefer.
    ChannelsLast,
}

/// How the memory format is chosen: from `ONEBENCH_TCH_MEMORY_FORMAT` (`auto`, the default,
/// times both at prepare and keeps the faster; `contiguous` or `channels-last` pin it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatChoice {
    Auto,
    Fixed(MemoryFormat),
}

impl FormatChoice {
    pub const ENV: &'static str = "ONEBENCH_TCH_MEMORY_FORMAT";

    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Self::Auto),
            "contiguous" | "nchw" => Ok(Self::Fixed(MemoryFormat::Contiguous)),
            "channels-last" | "channels_last" | "nhwc" => {
                Ok(Self::Fixed(MemoryFormat::ChannelsLast))
            }
            other => Err(format!(
                "{}=`{other}`: expected auto, contiguous or channels-last",
                Self::ENV
            )),
        }
    }

    pub fn from_env() -> Result<Self, String> {
        Self::parse(&std::env::var(Self::ENV).unwrap_or_default())
    }
}

#[cfg(feature = "tch")]
mod engine {
    //! The real backend: one `Step` per graph node, parameters on libtorch tensors.

    use std::time::Instant;

    use models::graph::Op;
    use models::{Graph, Precision, Tensor, Weights};
    use tch::{Kind, TchError, Tensor as TTensor};

    use super::{FormatChoice, MemoryFormat};
    use crate::backend::{check_run_shapes, BackendError, LayerTime, PrepareOptions, Prepared};
    use crate::interpret::interpret;

    const NAME: &str = "tch";

    /// libtorch's version (read from the install by the build script) and tch's.
    pub fn version() -> String {
        format!(
            "libtorch {} (tch {})",
            env!("ONEBENCH_LIBTORCH_VERSION"),
            env!("ONEBENCH_TCH_VERSION")
        )
    }

    fn failed(reason: impl ToString) -> BackendError {
        BackendError::failed(NAME, reason)
    }

    /// The libtorch dtype of a precision.
    fn kind_of(precision: Precision) -> Kind {
        match precision {
            Precision::Fp32 => Kind::Float,
            Precision::Bf16 => Kind::BFloat16,
            Precision::Fp16 => Kind::Half,
            // `supports` refuses int8 before any tensor is made.
            Precision::Int8 => Kind::Float,
        }
    }

    pub(super) fn to_torch(
        t: &Tensor,
        (format, kind): (MemoryFormat, Kind),
    ) -> Result<TTensor, TchError> {
        let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
        let x = TTensor::f_from_slice(t.data())?.f_view(shape.as_slice())?;
        in_format(x.f_to_kind(kind)?, format)
    }

    /// A 4-D tensor with channels-last strides (NCHW sizes over NHWC storage); other ranks and
    /// the contiguous format unchanged.
    fn in_format(x: TTensor, format: MemoryFormat) -> Result<TTensor, TchError> {
        if format == MemoryFormat::Contiguous || x.dim() != 4 {
            return Ok(x);
        }
        x.f_permute([0, 2, 3, 1])?
            .f_contiguous()?
            .f_permute([0, 3, 1, 2])
    }

    enum Step {
        Conv {
            weight: TTensor,
            bias: Option<TTensor>,
            stride: i64,
            padding: i64,
            groups: i64,
        },
        BatchNorm {
            weight: TTensor,
            bias: TTensor,
            mean: TTensor,
            var: TTensor,
            eps: f64,
        },
        /// A parameter-free op, run by `stateless`.
        Stateless(Op),
        Linear {
            weight: TTensor,
            bias: Option<TTensor>,
        },
    }

    impl Step {
        fn prepare(
            node: &models::Node,
            weights: &Weights,
            format: (MemoryFormat, Kind),
        ) -> Result<Step, BackendError> {
            let param = |suffix: &str| -> Result<TTensor, BackendError> {
                let name = format!("{}.{suffix}", node.name);
                let t = weights.get(&name).ok_or_else(|| {
                    BackendError::weights(NAME, format!("missing tensor `{name}`"))
                })?;
                to_torch(t, format).map_err(failed)
            };
            Ok(match &node.op {
                Op::Conv2d(c) => Step::Conv {
                    weight: param("weight")?,
                    bias: if c.bias { Some(param("bias")?) } else { None },
                    stride: c.stride as i64,
                    padding: c.padding as i64,
                    groups: c.groups as i64,
                },
                Op::BatchNorm(bn) => Step::BatchNorm {
                    weight: param("weight")?,
                    bias: param("bias")?,
                    mean: param("running_mean")?,
                    var: param("running_var")?,
                    eps: bn.eps,
                },
                Op::Relu
                | Op::Sigmoid
                | Op::Add
                | Op::GlobalAvgPool
                | Op::ChannelMul
                | Op::Flatten
                | Op::Relu6
                | Op::HardSigmoid
                | Op::HardSwish
                | Op::Silu
                | Op::Gelu
                | Op::Max
                | Op::MaxPool2d(_)
                | Op::ChannelAdd
                | Op::Concat
                | Op::Slice { .. }
                | Op::ChannelShuffle { .. } => Step::Stateless(node.op.clone()),
                Op::Linear(l) => Step::Linear {
                    weight: param("weight")?,
                    bias: if l.bias { Some(param("bias")?) } else { None },
                },
            })
        }

        fn run(&self, inputs: &[&TTensor]) -> Result<TTensor, TchError> {
            let x = inputs[0];
            match self {
                Step::Conv {
                    weight,
                    bias,
                    stride,
                    padding,
                    groups,
                } => x.f_conv2d(
                    weight,
                    bias.as_ref(),
                    [*stride, *stride],
                    [*padding, *padding],
                    [1, 1],
                    *groups,
                ),
                Step::BatchNorm {
                    weight,
                    bias,
                    mean,
                    var,
                    eps,
                } => x.f_batch_norm(
                    Some(weight),
                    Some(bias),
                    Some(mean),
                    Some(var),
                    false,
                    0.0,
                    *eps,
                    false,
                ),
                Step::Stateless(op) => stateless(op, inputs),
                Step::Linear { weight, bias } => x.f_linear(weight, bias.as_ref()),
            }
        }
    }

    /// The parameter-free ops as libtorch calls.
    fn stateless(op: &Op, inputs: &[&TTensor]) -> Result<TTensor, TchError> {
        let x = inputs[0];
        match op {
            Op::Relu => x.f_relu(),
            Op::Sigmoid => x.f_sigmoid(),
            Op::Add => inputs[1..]
                .iter()
                .try_fold(x.shallow_clone(), |acc, t| acc.f_add(t)),
            Op::GlobalAvgPool => x.f_adaptive_avg_pool2d([1, 1]),
            Op::ChannelMul => x.f_mul(inputs[1]),
            Op::Flatten => x.f_flatten(1, -1),
            Op::Relu6 => x.f_clamp(0.0, 6.0),
            Op::HardSigmoid => x.f_hardsigmoid(),
            Op::HardSwish => x.f_hardswish(),
            Op::Silu => x.f_silu(),
            Op::Gelu => x.f_gelu("none"),
            Op::Max => inputs[1..]
                .iter()
                .try_fold(x.shallow_clone(), |acc, t| acc.f_maximum(t)),
            Op::MaxPool2d(p) => {
                let (k, s, pad) = (p.kernel as i64, p.stride as i64, p.padding as i64);
                x.f_max_pool2d([k, k], [s, s], [pad, pad], [1, 1], false)
            }
            Op::ChannelAdd => x.f_add(inputs[1]),
            Op::Concat => TTensor::f_cat(inputs, 1),
            Op::Slice { start, end } => x.f_narrow(1, *start as i64, (end - start) as i64),
            Op::ChannelShuffle { groups } => x.f_channel_shuffle(*groups as i64),
            other => Err(TchError::Kind(format!(
                "{} is not a parameter-free op",
                other.kind()
            ))),
        }
    }

    /// The graph's nodes as libtorch calls in one memory format.
    struct Program {
        format: MemoryFormat,
        kind: Kind,
        steps: Vec<Step>,
    }

    impl Program {
        fn prepare(
            graph: &Graph,
            weights: &Weights,
            (format, precision): (MemoryFormat, Precision),
        ) -> Result<Self, BackendError> {
            let kind = kind_of(precision);
            let steps = graph
                .nodes()
                .iter()
                .map(|node| Step::prepare(node, weights, (format, kind)))
                .collect::<Result<_, _>>()?;
            Ok(Self {
                format,
                kind,
                steps,
            })
        }

        /// One forward pass; with `layer_seconds`, adds each node's time to its slot (CPU ops
        /// are synchronous, so a node's time ends when its call returns).
        fn forward(
            &self,
            graph: &Graph,
            input: &Tensor,
            mut layer_seconds: Option<&mut [f64]>,
        ) -> Result<TTensor, TchError> {
            let input = to_torch(input, (self.format, self.kind))?;
            interpret(graph, input, |i, _, inputs| {
                let start = layer_seconds.as_ref().map(|_| Instant::now());
                let out = self.steps[i].run(inputs)?;
                if let (Some(seconds), Some(start)) = (layer_seconds.as_deref_mut(), start) {
                    seconds[i] += start.elapsed().as_secs_f64();
                }
                Ok(out)
            })
        }

        /// Median seconds of a few forward passes after one warm-up.
        fn median_seconds(&self, graph: &Graph, input: &Tensor) -> Result<f64, TchError> {
            let _warm = self.forward(graph, input, None)?;
            let mut times = Vec::new();
            for _ in 0..5 {
                let start = Instant::now();
                let _timed = self.forward(graph, input, None)?;
                times.push(start.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            Ok(times[times.len() / 2])
        }
    }

    pub struct TchPlan {
        graph: Graph,
        program: Program,
        threads: i32,
        /// How the format was chosen, for `describe`.
        choice: String,
        /// Per-node seconds summed over `runs`, when prepared with per-layer timing.
        layer_seconds: Option<Vec<f64>>,
        runs: u64,
    }

    impl TchPlan {
        /// Prepares with the memory format chosen by `ONEBENCH_TCH_MEMORY_FORMAT`.
        pub fn prepare(
            graph: &Graph,
            weights: &Weights,
            options: &PrepareOptions,
        ) -> Result<Self, BackendError> {
            let choice = FormatChoice::from_env().map_err(failed)?;
            Self::prepare_with(graph, weights, options, choice)
        }

        pub fn prepare_with(
            graph: &Graph,
            weights: &Weights,
            options: &PrepareOptions,
            choice: FormatChoice,
        ) -> Result<Self, BackendError> {
            weights
                .validate(graph, "weights")
                .map_err(|e| BackendError::weights(NAME, e))?;
            let threads = options.threads.max(1) as i32;
            let _no_grad = tch::no_grad_guard();
            tch::set_num_threads(threads);
            let (program, choice) = match choice {
                FormatChoice::Fixed(format) => (
                    Program::prepare(graph, weights, (format, options.precision))?,
                    format!("pinned by {}", FormatChoice::ENV),
                ),
                FormatChoice::Auto => {
                    let probe = models::seeded_uniform(graph.input_shape().to_vec(), 0, -1.0, 1.0);
                    let mut best: Option<(f64, Program)> = None;
                    let mut timings = Vec::new();
                    for format in [MemoryFormat::Contiguous, MemoryFormat::ChannelsLast] {
                        let program =
                            Program::prepare(graph, weights, (format, options.precision))?;
                        let t = program.median_seconds(graph, &probe).map_err(failed)?;
                        timings.push(format!("{} {:.3} ms", label(format), t * 1e3));
                        if best.as_ref().is_none_or(|(b, _)| t < *b) {
                            best = Some((t, program));
                        }
                    }
                    let (_, program) = best.expect("two formats timed");
                    (
                        program,
                        format!("faster at prepare: {}", timings.join(" vs ")),
                    )
                }
            };
            Ok(Self {
                graph: graph.clone(),
                program,
                threads,
                choice,
                layer_seconds: options
                    .per_layer_timing
                    .then(|| vec![0.0; graph.nodes().len()]),
                runs: 0,
            })
        }

        pub fn format(&self) -> MemoryFormat {
            self.program.format
        }
    }

    pub fn label(format: MemoryFormat) -> &'static str {
        match format {
            MemoryFormat::Contiguous => "contiguous NCHW",
            MemoryFormat::ChannelsLast => "channels-last",
        }
    }

    impl Prepared for TchPlan {
        fn input_shape(&self) -> &[usize] {
            self.graph.input_shape()
        }

        fn output_shape(&self) -> &[usize] {
            self.graph.output_shape()
        }

        fn run(&mut self, input: &Tensor, output: &mut Tensor) -> Result<(), BackendError> {
            let shapes = (self.graph.input_shape(), self.graph.output_shape());
            check_run_shapes(NAME, shapes, input, output)?;
            // libtorch's intra-op thread count is process-wide: each run sets its own. CPU ops
            // are synchronous, so the copy out ends the work.
            let _no_grad = tch::no_grad_guard();
            if tch::get_num_threads() != self.threads {
                tch::set_num_threads(self.threads);
            }
            let y = self
                .program
                .forward(&self.graph, input, self.layer_seconds.as_deref_mut())
                .and_then(|y| y.f_to_kind(Kind::Float)?.f_contiguous())
                .map_err(failed)?;
            let n = output.data().len();
            y.f_copy_data(output.data_mut(), n).map_err(failed)?;
            self.runs += 1;
            Ok(())
        }

        fn layer_times(&self) -> Vec<LayerTime> {
            let Some(seconds) = &self.layer_seconds else {
                return Vec::new();
            };
            let format = label(self.program.format);
            self.graph
                .nodes()
                .iter()
                .zip(seconds)
                .map(|(node, &seconds)| LayerTime {
                    name: node.name.clone(),
                    kind: node.op.kind().to_string(),
                    kernel: format!("libtorch {} ({format})", node.op.kind()),
                    seconds,
                    runs: self.runs,
                })
                .collect()
        }

        fn describe(&self) -> String {
            format!(
                "tch: {}, CPU {:?}, {} ops, {} ({}), gradients off, {} intra-op thread(s)",
                version(),
                self.program.kind,
                self.program.steps.len(),
                label(self.program.format),
                self.choice,
                self.threads
            )
        }
    }
}

#[cfg(feature = "tch")]
pub use engine::TchPlan;

#[cfg(test)]
mod tests {
    use super::*;
    use models::testing::assert_contains;

    #[test]
    fn the_memory_format_setting_parses_and_rejects_typos() {
        assert_eq!(FormatChoice::parse("").unwrap(), FormatChoice::Auto);
        assert_eq!(
            FormatChoice::parse("Channels-Last").unwrap(),
            FormatChoice::Fixed(MemoryFormat::ChannelsLast)
        );
        assert_eq!(
            FormatChoice::parse("nchw").unwrap(),
            FormatChoice::Fixed(MemoryFormat::Contiguous)
        );
        let err = FormatChoice::parse("nhcw").unwrap_err();
        assert_contains(&err, &["ONEBENCH_TCH_MEMORY_FORMAT=`nhcw`"]);
    }

    #[cfg(not(feature = "tch"))]
    #[test]
    fn without_the_feature_the_stub_says_how_to_get_it() {
        let backend = TchBackend;
        assert_eq!(
            backend.availability(),
            Availability::Unavailable(NOT_COMPILED_IN.into())
        );
        let (model, form) = (
            models::Model::MobileOne(models::Variant::S0),
            models::Form::Reparameterized,
        );
        let size = models::InputSize::square(1, 32);
        let graph = model.build(form, size).unwrap();
        let weights = model.seeded_weights(form, 0);
        let err = backend
            .prepare(&graph, &weights, &PrepareOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert_contains(&err, &["--features tch"]);
    }
}

#[cfg(all(test, feature = "tch"))]
mod engine_tests {
    use super::*;
    use models::testing::assert_contains;
    use models::{seeded_uniform, Form, InputSize, Model, Variant};

    fn s0(batch: usize) -> (Graph, Weights) {
        let size = InputSize {
            batch,
            height: 32,
            width: 32,
        };
        let graph = Model::MobileOne(Variant::S0)
            .build(Form::Unfused, size)
            .unwrap();
        (
            graph,
            Model::MobileOne(Variant::S0).seeded_weights(Form::Unfused, 0),
        )
    }

    fn options(threads: usize) -> PrepareOptions {
        PrepareOptions::with_threads(threads)
    }

    #[test]
    fn each_run_sets_the_thread_count_of_its_plan() {
        let (graph, weights) = s0(1);
        let fixed = FormatChoice::Fixed(MemoryFormat::Contiguous);
        let mut one = TchPlan::prepare_with(&graph, &weights, &options(1), fixed).unwrap();
        let mut three = TchPlan::prepare_with(&graph, &weights, &options(3), fixed).unwrap();
        let x = seeded_uniform(graph.input_shape().to_vec(), 1, -1.0, 1.0);
        for (plan, threads) in [(0, 1), (1, 3), (0, 1)] {
            let plan = if plan == 0 { &mut one } else { &mut three };
            plan.forward(&x).unwrap();
            assert_eq!(tch::get_num_threads(), threads);
        }
    }

    #[test]
    fn both_memory_formats_compute_the_same_logits() {
        let (graph, weights) = s0(2);
        let x = seeded_uniform(graph.input_shape().to_vec(), 1, -1.0, 1.0);
        let mut outputs = Vec::new();
        for format in [MemoryFormat::Contiguous, MemoryFormat::ChannelsLast] {
            let mut plan =
                TchPlan::prepare_with(&graph, &weights, &options(2), FormatChoice::Fixed(format))
                    .unwrap();
            assert_eq!(plan.format(), format);
            assert!(plan.describe().contains(engine::label(format)));
            outputs.push(plan.forward(&x).unwrap());
        }
        let err = models::relative_l2(outputs[0].data(), outputs[1].data());
        assert!(err < 1e-5, "{err}");
        let auto =
            TchPlan::prepare_with(&graph, &weights, &options(1), FormatChoice::Auto).unwrap();
        assert_contains(&auto.describe(), &["faster at prepare"]);
    }

    #[test]
    fn channels_last_tensors_have_nhwc_strides() {
        let x = seeded_uniform(vec![2, 3, 4, 5], 0, -1.0, 1.0);
        let t = engine::to_torch(&x, (MemoryFormat::ChannelsLast, tch::Kind::Float)).unwrap();
        assert_eq!(t.size(), [2, 3, 4, 5]);
        assert_eq!(t.stride(), [60, 1, 15, 3]);
        let back: Vec<f32> = Vec::try_from(t.contiguous().flatten(0, -1)).unwrap();
        assert_eq!(back, x.data());
    }
}
