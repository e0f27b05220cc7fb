//! The candle backend: runs our graphs with candle-core's own CPU tensor ops, as a careful
//! candle user would (conv2d with groups, BN as a per-channel scale and shift, add, ReLU,
//! squeeze-excite, linear). Each forward runs inside a rayon pool of the requested size, which
//! bounds candle's parallel work. `candle-dw-unrolled` is the same except that depthwise convs
//! are written as nine shifted multiply-adds with candle ops, because candle's grouped conv
//! runs one convolution per group and is slow on depthwise layers. At fp16 every parameter and
//! the input are f16 candle tensors and candle's ops run in f16 (what each sums in is candle's
//! choice); bf16 is refused (candle's CPU conv2d has no bf16 GEMM).

use candle_core::{DType, Device, Tensor as CTensor};
use models::graph::{Conv2d, Op};
use models::{Graph, Precision, Tensor, Weights};

use crate::backend::{
    check_run_shapes, Availability, Backend, BackendError, PrepareOptions, Prepared,
};
use crate::interpret::interpret;

/// The candle-core version this build links (from Cargo.lock, by the build script).
pub const CANDLE_VERSION: &str = env!("ONEBENCH_CANDLE_VERSION");

/// How depthwise convolutions are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depthwise {
    /// candle's `conv2d` with `groups = channels`.
    GroupedConv,
    /// Nine shifted slices of the padded input, each scaled per channel and summed.
    Unrolled,
}

pub struct CandleBackend {
    depthwise: Depthwise,
}

impl CandleBackend {
    pub fn new(depthwise: Depthwise) -> Self {
        Self { depthwise }
    }
}

impl Backend for CandleBackend {
    fn name(&self) -> &'static str {
        match self.depthwise {
            Depthwise::GroupedConv => "candle",
            Depthwise::Unrolled => "candle-dw-unrolled",
        }
    }

    fn version(&self) -> String {
        format!("candle-core {CANDLE_VERSION}")
    }

    fn availability(&self) -> Availability {
        Availability::Available
    }

    fn multithreaded(&self) -> bool {
        true
    }

    /// fp32 and fp16, as candle tensors of that dtype. Not bf16: candle's CPU conv2d runs
    /// its im2col GEMM without the bf16 widening its matmul has ("unsupported dtype BF16 for
    /// op matmul").
    fn supports(&self, precision: Precision) -> Result<(), String> {
        match precision {
            Precision::Fp32 | Precision::Fp16 => Ok(()),
            Precision::Bf16 => Err(format!(
                "candle-core {CANDLE_VERSION}'s CPU conv2d has no bf16 GEMM"
            )),
            Precision::Int8 => Err(format!(
                "candle-core {CANDLE_VERSION} has no int8 convolutions"
            )),
        }
    }

    fn prepare(
        &self,
        graph: &Graph,
        weights: &Weights,
        options: &PrepareOptions,
    ) -> Result<Box<dyn Prepared>, BackendError> {
        crate::require_precision(self, options)?;
        Ok(Box::new(self.prepare_plan(graph, weights, options)?))
    }
}

impl CandleBackend {
    fn prepare_plan(
        &self,
        graph: &Graph,
        weights: &Weights,
        options: &PrepareOptions,
    ) -> Result<CandlePlan, BackendError> {
        let name = self.name();
        let err = |reason: String| BackendError::failed(name, reason);
        weights
            .validate(graph, "weights")
            .map_err(|e| BackendError::weights(name, e))?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(options.threads.max(1))
            .build()
            .map_err(|e| err(format!("thread pool: {e}")))?;
        let dtype = dtype_of(options.precision);
        let steps = pool.install(|| {
            graph
                .nodes()
                .iter()
                .map(|node| {
                    Step::prepare(node, weights, self.depthwise, dtype)
                        .map_err(|e| err(format!("node `{}`: {e}", node.name)))
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(CandlePlan {
            name,
            graph: graph.clone(),
            steps,
            pool,
            threads: options.threads.max(1),
            dtype,
        })
    }
}

/// One op with its parameters already on the device.
enum Step {
    Conv {
        conv: Conv2d,
        weight: CTensor,
        bias: Option<CTensor>,
    },
    /// Depthwise conv by shifted slices: weight [C, 1, k, k] as k*k tensors of shape [1, C, 1, 1].
    DepthwiseUnrolled {
        conv: Conv2d,
        taps: Vec<CTensor>,
        bias: Option<CTensor>,
    },
    /// Inference BN: x * scale + shift, both [1, C, 1, 1].
    Affine { scale: CTensor, shift: CTensor },
    /// A parameter-free op, run by `stateless`.
    Stateless(Op),
    /// x @ weight^T + bias; the transposed weight is stored contiguous.
    Linear {
        weight_t: CTensor,
        bias: Option<CTensor>,
    },
}

/// The candle dtype a precision computes in.
fn dtype_of(precision: Precision) -> DType {
    match precision {
        Precision::Fp32 => DType::F32,
        Precision::Bf16 => DType::BF16,
        Precision::Fp16 => DType::F16,
        // `supports` refuses int8 before any tensor is made.
        Precision::Int8 => DType::F32,
    }
}

fn to_candle(t: &Tensor, dtype: DType) -> candle_core::Result<CTensor> {
    CTensor::from_slice(t.data(), t.shape(), &Device::Cpu)?.to_dtype(dtype)
}

fn per_channel(values: Vec<f32>, dtype: DType) -> candle_core::Result<CTensor> {
    let c = values.len();
    CTensor::from_vec(values, (1, c, 1, 1), &Device::Cpu)?.to_dtype(dtype)
}

impl Step {
    fn prepare(
        node: &models::Node,
        weights: &Weights,
        depthwise: Depthwise,
        dtype: DType,
    ) -> candle_core::Result<Step> {
        let param = |suffix: &str| -> candle_core::Result<&Tensor> {
            let name = format!("{}.{suffix}", node.name);
            weights
                .get(&name)
                .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor `{name}`")))
        };
        Ok(match &node.op {
            Op::Conv2d(c) => {
                let bias = match c.bias {
                    true => Some(per_channel(param("bias")?.data().to_vec(), dtype)?),
                    false => None,
                };
                Step::conv(c, param("weight")?, bias, (depthwise, dtype))?
            }
            Op::BatchNorm(bn) => {
                let (gamma, beta) = (param("weight")?.data(), param("bias")?.data());
                let (mean, var) = (param("running_mean")?.data(), param("running_var")?.data());
                let (scale, shift) = models::batch_norm_affine(gamma, beta, mean, var, bn.eps);
                let round = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
                Step::Affine {
                    scale: per_channel(round(scale), dtype)?,
                    shift: per_channel(round(shift), dtype)?,
                }
            }
            Op::Relu
            | Op::Sigmoid
            | Op::Relu6
            | Op::HardSigmoid
            | Op::HardSwish
            | Op::Silu
            | Op::Gelu
            | Op::Add
            | Op::Max
            | Op::GlobalAvgPool
            | Op::MaxPool2d(_)
            | Op::ChannelMul
            | Op::ChannelAdd
            | Op::Concat
            | Op::Slice { .. }
            | Op::ChannelShuffle { .. }
            | Op::Flatten => Step::Stateless(node.op.clone()),
            Op::Linear(l) => {
                let weight_t = to_candle(param("weight")?, dtype)?.t()?.contiguous()?;
                let bias = l.bias.then(|| to_candle(param("bias")?, dtype));
                let bias = bias.transpose()?;
                Step::Linear { weight_t, bias }
            }
        })
    }

    /// A conv: candle's own, or unrolled into per-tap multiply-adds for a depthwise one.
    fn conv(
        c: &Conv2d,
        weight: &Tensor,
        bias: Option<CTensor>,
        (depthwise, dtype): (Depthwise, DType),
    ) -> candle_core::Result<Step> {
        if !(c.is_depthwise() && depthwise == Depthwise::Unrolled) {
            let weight = to_candle(weight, dtype)?;
            return Ok(Step::Conv {
                conv: *c,
                weight,
                bias,
            });
        }
        let k = c.kernel;
        let tap = |tap| {
            per_channel(
                (0..c.out_channels)
                    .map(|ch| weight.data()[ch * k * k + tap])
                    .collect(),
                dtype,
            )
        };
        let taps = (0..k * k).map(tap).collect::<candle_core::Result<_>>()?;
        Ok(Step::DepthwiseUnrolled {
            conv: *c,
            taps,
            bias,
        })
    }

    fn run(&self, inputs: &[&CTensor]) -> candle_core::Result<CTensor> {
        let x = inputs[0];
        match self {
            Step::Conv { conv, weight, bias } => {
                let y = x.conv2d(weight, conv.padding, conv.stride, 1, conv.groups)?;
                match bias {
                    Some(b) => y.broadcast_add(b),
                    None => Ok(y),
                }
            }
            Step::DepthwiseUnrolled { conv, taps, bias } => {
                depthwise_unrolled(x, conv, taps, bias.as_ref())
            }
            Step::Affine { scale, shift } => x.broadcast_mul(scale)?.broadcast_add(shift),
            Step::Stateless(op) => stateless(op, inputs),
            Step::Linear { weight_t, bias } => {
                let y = x.matmul(weight_t)?;
                match bias {
                    Some(b) => y.broadcast_add(b),
                    None => Ok(y),
                }
            }
        }
    }
}

fn hard_sigmoid(x: &CTensor) -> candle_core::Result<CTensor> {
    (x + 3.0)?.clamp(0f32, 6f32)? / 6.0
}

/// The parameter-free ops, from candle's own.
fn stateless(op: &Op, inputs: &[&CTensor]) -> candle_core::Result<CTensor> {
    let x = inputs[0];
    match op {
        Op::Relu => x.relu(),
        Op::Sigmoid => (x.neg()?.exp()? + 1.0)?.recip(),
        Op::Relu6 => x.clamp(0f32, 6f32),
        Op::HardSigmoid => hard_sigmoid(x),
        Op::HardSwish => x * hard_sigmoid(x)?,
        Op::Silu => x.silu(),
        Op::Gelu => x.gelu_erf(),
        Op::Add => inputs[1..].iter().try_fold(x.clone(), |acc, t| acc + *t),
        Op::Max => inputs[1..]
            .iter()
            .try_fold(x.clone(), |acc, t| acc.maximum(*t)),
        Op::GlobalAvgPool => x.mean_keepdim(3)?.mean_keepdim(2),
        Op::MaxPool2d(p) => max_pool(x, p),
        Op::ChannelMul => x.broadcast_mul(inputs[1]),
        Op::ChannelAdd => x.broadcast_add(inputs[1]),
        Op::Concat => CTensor::cat(inputs, 1),
        Op::Slice { start, end } => x.narrow(1, *start, end - start)?.contiguous(),
        Op::ChannelShuffle { groups } => {
            let (n, c, h, w) = x.dims4()?;
            x.reshape((n, *groups, c / groups, h, w))?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((n, c, h, w))
        }
        Op::Flatten => x.flatten_from(1),
        other => Err(candle_core::Error::Msg(format!(
            "{} is not a parameter-free op",
            other.kind()
        ))),
    }
}

/// Max pool; candle's pool has no padding, so the input is framed with -inf first.
fn max_pool(x: &CTensor, p: &models::graph::MaxPool2d) -> candle_core::Result<CTensor> {
    let mut x = x.clone();
    if p.padding > 0 {
        for dim in [2, 3] {
            let mut dims = x.dims().to_vec();
            dims[dim] = p.padding;
            let frame = CTensor::full(f32::NEG_INFINITY, dims, x.device())?.to_dtype(x.dtype())?;
            x = CTensor::cat(&[&frame, &x, &frame], dim)?;
        }
    }
    x.max_pool2d_with_stride(p.kernel, p.stride)
}

/// Depthwise conv as a sum over the k*k taps of (strided slice of the padded input) * weight.
fn depthwise_unrolled(
    x: &CTensor,
    conv: &Conv2d,
    taps: &[CTensor],
    bias: Option<&CTensor>,
) -> candle_core::Result<CTensor> {
    let (n, c, h, w) = x.dims4()?;
    let (k, s, p) = (conv.kernel, conv.stride, conv.padding);
    let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
    // Pad so that every tap's strided window of oh * s rows (ow * s columns) fits.
    let (extra_h, extra_w) = (
        (k - 1 + oh * s).saturating_sub(h + 2 * p),
        (k - 1 + ow * s).saturating_sub(w + 2 * p),
    );
    let padded = x
        .pad_with_zeros(2, p, p + extra_h)?
        .pad_with_zeros(3, p, p + extra_w)?;
    let mut acc: Option<CTensor> = None;
    for ky in 0..k {
        for kx in 0..k {
            let window = padded.narrow(2, ky, oh * s)?.narrow(3, kx, ow * s)?;
            let window = if s == 1 {
                window
            } else {
                // Keep every s-th row and column: [n, c, oh, s, ow, s] -> index 0 of both s axes.
                window
                    .reshape((n, c, oh, s, ow, s))?
                    .narrow(3, 0, 1)?
                    .narrow(5, 0, 1)?
                    .reshape((n, c, oh, ow))?
            };
            let term = window.broadcast_mul(&taps[ky * k + kx])?;
            acc = Some(match acc {
                Some(a) => (a + term)?,
                None => term,
            });
        }
    }
    let y = acc.expect("a kernel has at least one tap");
    match bias {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

struct CandlePlan {
    name: &'static str,
    graph: Graph,
    steps: Vec<Step>,
    pool: rayon::ThreadPool,
    threads: usize,
    dtype: DType,
}

impl CandlePlan {
    fn forward_candle(&self, input: CTensor) -> candle_core::Result<CTensor> {
        interpret(&self.graph, input, |i, _, inputs| self.steps[i].run(inputs))
    }
}

impl Prepared for CandlePlan {
    fn input_shape(&self) -> &[usize] {
        self.graph.input_shape()
    }

    fn output_shape(&self) -> &[usize] {
        self.graph.output_shape()
    }

    fn run(&mut self, input: &Tensor, output: &mut Tensor) -> Result<(), BackendError> {
        let err = |e: candle_core::Error| BackendError::failed(self.name, e);
        let shapes = (self.graph.input_shape(), self.graph.output_shape());
        check_run_shapes(self.name, shapes, input, output)?;
        // Everything, the copy out included, runs in the pool, and the copy waits for the
        // result: the call returns when the work is done.
        let result: candle_core::Result<Vec<f32>> = self.pool.install(|| {
            let x = to_candle(input, self.dtype)?;
            self.forward_candle(x)?
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()
        });
        output.data_mut().copy_from_slice(&result.map_err(err)?);
        Ok(())
    }

    fn describe(&self) -> String {
        let depthwise = if self.name == "candle" {
            "depthwise as grouped conv2d (candle splits it into one conv per channel)"
        } else {
            "depthwise unrolled into 9 shifted multiply-adds"
        };
        format!(
            "{}: candle-core {CANDLE_VERSION} CPU, NCHW {}, {} ops, BN as per-channel scale+shift, {depthwise}, rayon pool of {} thread(s)",
            self.name,
            self.dtype.as_str(),
            self.steps.len(),
            self.threads
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::{seeded_uniform, Form, InputSize, Model, Variant};

    #[test]
    fn each_plan_runs_in_a_pool_of_the_requested_size() {
        let size = InputSize::square(1, 32);
        let graph = Model::MobileOne(Variant::S0)
            .build(Form::Reparameterized, size)
            .unwrap();
        let weights = Model::MobileOne(Variant::S0).seeded_weights(Form::Reparameterized, 0);
        for threads in [1, 2, 3] {
            let options = PrepareOptions::with_threads(threads);
            let mut plan = CandleBackend::new(Depthwise::GroupedConv)
                .prepare_plan(&graph, &weights, &options)
                .unwrap();
            assert_eq!(plan.pool.current_num_threads(), threads);
            assert_eq!(plan.pool.install(rayon::current_num_threads), threads);
            let x = seeded_uniform(size.shape(), 0, -1.0, 1.0);
            assert_eq!(plan.forward(&x).unwrap().shape(), &[1, 1000]);
        }
    }
}
