//! The reference executor: plain loops, float64 accumulation, no cleverness. It is the ground
//! truth every other backend is checked against. `evaluate` runs in f32 or f64 storage (f64
//! end to end for exactness checks); the `reference` backend stores activations in f64.

use models::graph::{Conv2d, Linear, MaxPool2d, Op};
use models::{Element, Graph, Node, Tensor, Weights};

/// The backend's name, in its listing and its errors.
pub const NAME: &str = "reference";

use crate::interpret::interpret;

use crate::backend::{
    check_run_shapes, Availability, Backend, BackendError, PrepareOptions, Prepared,
};

/// Runs `graph` on `input` with plain loops. Activations are stored as `T`; every sum is f64.
pub fn evaluate<T: Element>(
    graph: &Graph,
    weights: &Weights<T>,
    input: &Tensor<T>,
) -> Result<Tensor<T>, BackendError> {
    evaluate_observed(graph, weights, input, |_, _| {})
}

/// Min/max calibration: the range of every value of `graph` (its input, each node's output)
/// over all `inputs`, run in f32 storage, as int8 quantization's activation ranges come from.
pub fn value_ranges(
    graph: &Graph,
    weights: &Weights<f32>,
    inputs: &[Tensor<f32>],
) -> Result<models::quantize::ValueRanges, BackendError> {
    let mut ranges = models::quantize::ValueRanges::new(graph.nodes().len());
    for input in inputs {
        ranges
            .input
            .observe(input.data().iter().map(|v| v.to_f64()));
        evaluate_observed(graph, weights, input, |i, out| {
            ranges.nodes[i].observe(out.data().iter().map(|v| v.to_f64()));
        })?;
        ranges.inputs_seen += 1;
    }
    Ok(ranges)
}

/// `evaluate`, handing each node's output to `observe(node index, output)` as it is computed.
pub fn evaluate_observed<T: Element>(
    graph: &Graph,
    weights: &Weights<T>,
    input: &Tensor<T>,
    mut observe: impl FnMut(usize, &Tensor<T>),
) -> Result<Tensor<T>, BackendError> {
    if input.shape() != graph.input_shape() {
        return Err(BackendError::InputShape {
            backend: NAME.into(),
            expected: graph.input_shape().to_vec(),
            found: input.shape().to_vec(),
        });
    }
    let param = |node: &str, suffix: &str| -> Result<&[T], BackendError> {
        let name = format!("{node}.{suffix}");
        weights
            .get(&name)
            .map(Tensor::data)
            .ok_or_else(|| BackendError::weights(NAME, format!("missing tensor `{name}`")))
    };
    interpret(graph, input.clone(), |i, node, inputs| {
        let mut out = Tensor::<T>::zeros(node.shape.clone());
        run_node(node, inputs, &param, &mut out)?;
        observe(i, &out);
        Ok(out)
    })
}

/// A parameter of a node by its suffix.
type ParamOf<'a, T> = dyn Fn(&str, &str) -> Result<&'a [T], BackendError> + 'a;

/// Computes `node` from its inputs into `out`.
fn run_node<'a, T: Element>(
    node: &Node,
    inputs: &[&Tensor<T>],
    param: &ParamOf<'a, T>,
    out: &mut Tensor<T>,
) -> Result<(), BackendError> {
    let x = inputs[0];
    let n = &node.name;
    match &node.op {
        Op::Conv2d(c) => {
            let bias = c.bias.then(|| param(n, "bias")).transpose()?;
            conv2d(c, x, param(n, "weight")?, bias, out);
        }
        Op::BatchNorm(bn) => batch_norm(
            x,
            [
                param(n, "weight")?,
                param(n, "bias")?,
                param(n, "running_mean")?,
                param(n, "running_var")?,
            ],
            bn.eps,
            out,
        ),
        Op::Relu
        | Op::Relu6
        | Op::Sigmoid
        | Op::HardSigmoid
        | Op::HardSwish
        | Op::Silu
        | Op::Gelu => map(x, out, node.op.unary_f64().expect("an element-wise op")),
        Op::Add | Op::Max => {
            let values = |j: usize| inputs.iter().map(move |t| t.data()[j].to_f64());
            for (j, o) in out.data_mut().iter_mut().enumerate() {
                *o = T::from_f64(match node.op {
                    Op::Add => values(j).sum(),
                    _ => values(j).fold(f64::NEG_INFINITY, max_keeping_nan),
                });
            }
        }
        Op::GlobalAvgPool => global_avg_pool(x, out),
        Op::MaxPool2d(p) => max_pool(p, x, out),
        Op::ChannelMul | Op::ChannelAdd => {
            per_channel(node.op == Op::ChannelMul, x, inputs[1], out)
        }
        Op::Concat => concat(inputs, out),
        Op::Slice { start, end } => slice(x, *start, *end, out),
        Op::ChannelShuffle { groups } => channel_shuffle(x, *groups, out),
        Op::Flatten => out.data_mut().copy_from_slice(x.data()),
        Op::Linear(l) => {
            let bias = l.bias.then(|| param(n, "bias")).transpose()?;
            linear(l, x, param(n, "weight")?, bias, out);
        }
    }
    Ok(())
}

/// x * s (or x + s) with s one value per image and channel (or per image).
fn per_channel<T: Element>(mul: bool, x: &Tensor<T>, operand: &Tensor<T>, out: &mut Tensor<T>) {
    let [_, channels, h, w] = dims4(x.shape());
    let per_image = operand.shape()[1];
    for (j, o) in out.data_mut().iter_mut().enumerate() {
        let (n, c) = (j / (channels * h * w), j / (h * w) % channels);
        let s = operand.data()[n * per_image + c % per_image].to_f64();
        let v = x.data()[j].to_f64();
        *o = T::from_f64(if mul { v * s } else { v + s });
    }
}

fn concat<T: Element>(inputs: &[&Tensor<T>], out: &mut Tensor<T>) {
    let x = inputs[0];
    let plane = x.shape()[2] * x.shape()[3];
    let mut dst = 0;
    for n in 0..x.shape()[0] {
        for t in inputs {
            let len = t.shape()[1] * plane;
            out.data_mut()[dst..dst + len].copy_from_slice(&t.data()[n * len..(n + 1) * len]);
            dst += len;
        }
    }
}

fn slice<T: Element>(x: &Tensor<T>, start: usize, end: usize, out: &mut Tensor<T>) {
    let [batch, channels, h, w] = dims4(x.shape());
    let plane = h * w;
    let len = (end - start) * plane;
    for n in 0..batch {
        let src = (n * channels + start) * plane;
        out.data_mut()[n * len..(n + 1) * len].copy_from_slice(&x.data()[src..src + len]);
    }
}

fn channel_shuffle<T: Element>(x: &Tensor<T>, groups: usize, out: &mut Tensor<T>) {
    let [batch, channels, h, w] = dims4(x.shape());
    let (plane, per_group) = (h * w, channels / groups);
    for n in 0..batch {
        for c in 0..channels {
            // Output channel c reads input channel (c % groups) * per_group + c / groups.
            let src = (n * channels + (c % groups) * per_group + c / groups) * plane;
            let dst = (n * channels + c) * plane;
            out.data_mut()[dst..dst + plane].copy_from_slice(&x.data()[src..src + plane]);
        }
    }
}

fn map<T: Element>(x: &Tensor<T>, out: &mut Tensor<T>, f: impl Fn(f64) -> f64) {
    for (o, v) in out.data_mut().iter_mut().zip(x.data()) {
        *o = T::from_f64(f(v.to_f64()));
    }
}

/// Direct convolution, PyTorch semantics (cross-correlation, zero padding, groups). For each
/// output channel, every (input channel, ky, kx) tap is added over the output plane into an f64
/// accumulator, skipping the taps that fall in the padding.
fn conv2d<T: Element>(c: &Conv2d, x: &Tensor<T>, w: &[T], bias: Option<&[T]>, out: &mut Tensor<T>) {
    let [batch, _, h, wd] = dims4(x.shape());
    let [_, oc_total, oh, ow] = dims4(out.shape());
    let in_per_group = c.in_channels / c.groups;
    let out_per_group = c.out_channels / c.groups;
    let k = c.kernel;
    let xd = x.data();
    let od = out.data_mut();
    let mut acc = vec![0.0f64; oh * ow];
    for n in 0..batch {
        for oc in 0..oc_total {
            acc.fill(bias.map_or(0.0, |b| b[oc].to_f64()));
            let group = oc / out_per_group;
            for ic in 0..in_per_group {
                let channel = group * in_per_group + ic;
                let plane = &xd[(n * c.in_channels + channel) * h * wd..][..h * wd];
                for ky in 0..k {
                    for kx in 0..k {
                        let wv = w[((oc * in_per_group + ic) * k + ky) * k + kx].to_f64();
                        let columns = valid_outputs(kx, c.stride, c.padding, wd, ow);
                        if columns.is_empty() {
                            // Every output column reads padding for this tap (a kernel wider
                            // than the image).
                            continue;
                        }
                        for oy in valid_outputs(ky, c.stride, c.padding, h, oh) {
                            let iy = oy * c.stride + ky - c.padding;
                            let row = &plane[iy * wd..][..wd];
                            // Output columns `columns` read input columns ox * stride + kx - padding.
                            let first_input = columns.start * c.stride + kx - c.padding;
                            let inputs = row[first_input..].iter().step_by(c.stride);
                            let outputs = acc[oy * ow..][columns.clone()].iter_mut();
                            for (o, xv) in outputs.zip(inputs) {
                                *o += xv.to_f64() * wv;
                            }
                        }
                    }
                }
            }
            let dst = &mut od[(n * oc_total + oc) * oh * ow..][..oh * ow];
            for (d, a) in dst.iter_mut().zip(&acc) {
                *d = T::from_f64(*a);
            }
        }
    }
}

/// The outputs `o` in 0..out_len whose input index `o * stride + tap - padding` lies in
/// 0..in_len (the rest read zero padding).
fn valid_outputs(
    tap: usize,
    stride: usize,
    padding: usize,
    in_len: usize,
    out_len: usize,
) -> std::ops::Range<usize> {
    // o * stride + tap >= padding  <=>  o >= ceil((padding - tap) / stride)
    let lo = padding.saturating_sub(tap).div_ceil(stride);
    // o * stride + tap - padding <= in_len - 1  <=>  o <= (in_len - 1 + padding - tap) / stride
    let hi = match (in_len + padding).checked_sub(tap + 1) {
        Some(limit) => (limit / stride + 1).min(out_len),
        None => 0,
    };
    lo..hi.max(lo)
}

fn batch_norm<T: Element>(
    x: &Tensor<T>,
    [gamma, beta, mean, var]: [&[T]; 4],
    eps: f64,
    out: &mut Tensor<T>,
) {
    let [_, channels, h, w] = dims4(x.shape());
    let plane = h * w;
    for (j, o) in out.data_mut().iter_mut().enumerate() {
        let c = (j / plane) % channels;
        let normalized = (x.data()[j].to_f64() - mean[c].to_f64()) / (var[c].to_f64() + eps).sqrt();
        *o = T::from_f64(normalized * gamma[c].to_f64() + beta[c].to_f64());
    }
}

fn global_avg_pool<T: Element>(x: &Tensor<T>, out: &mut Tensor<T>) {
    let [_, _, h, w] = dims4(x.shape());
    let plane = h * w;
    for (j, o) in out.data_mut().iter_mut().enumerate() {
        let sum: f64 = x.data()[j * plane..(j + 1) * plane]
            .iter()
            .map(|v| v.to_f64())
            .sum();
        *o = T::from_f64(sum / plane as f64);
    }
}

/// Max over each window; taps in the padding are skipped (PyTorch pads with -inf).
fn max_pool<T: Element>(p: &MaxPool2d, x: &Tensor<T>, out: &mut Tensor<T>) {
    let [_, _, h, w] = dims4(x.shape());
    let [_, _, oh, ow] = dims4(out.shape());
    for (j, o) in out.data_mut().iter_mut().enumerate() {
        let (plane, oy, ox) = (j / (oh * ow), j / ow % oh, j % ow);
        let mut best = f64::NEG_INFINITY;
        for ky in 0..p.kernel {
            for kx in 0..p.kernel {
                let (iy, ix) = (oy * p.stride + ky, ox * p.stride + kx);
                if iy < p.padding || ix < p.padding || iy - p.padding >= h || ix - p.padding >= w {
                    continue;
                }
                let v = x.data()[(plane * h + iy - p.padding) * w + ix - p.padding].to_f64();
                best = max_keeping_nan(best, v);
            }
        }
        *o = T::from_f64(best);
    }
}

fn linear<T: Element>(l: &Linear, x: &Tensor<T>, w: &[T], bias: Option<&[T]>, out: &mut Tensor<T>) {
    let batch = x.shape()[0];
    for n in 0..batch {
        let row = &x.data()[n * l.in_features..(n + 1) * l.in_features];
        for o in 0..l.out_features {
            let weights = &w[o * l.in_features..(o + 1) * l.in_features];
            let dot: f64 = row
                .iter()
                .zip(weights)
                .map(|(a, b)| a.to_f64() * b.to_f64())
                .sum();
            let b = bias.map_or(0.0, |b| b[o].to_f64());
            out.data_mut()[n * l.out_features + o] = T::from_f64(dot + b);
        }
    }
}

fn dims4(shape: &[usize]) -> [usize; 4] {
    [shape[0], shape[1], shape[2], shape[3]]
}

/// The `reference` backend: `evaluate` in float64 on float64 copies of the weights.
pub struct ReferenceBackend;

impl Backend for ReferenceBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> String {
        format!("onebench {}", env!("CARGO_PKG_VERSION"))
    }

    fn availability(&self) -> Availability {
        Availability::Available
    }

    fn tolerance(&self) -> f64 {
        1e-6
    }

    fn supports(&self, precision: models::Precision) -> Result<(), String> {
        match precision {
            models::Precision::Fp32 => Ok(()),
            _ => Err("the reference executor computes in float64: it is what every precision is checked against".into()),
        }
    }

    fn prepare(
        &self,
        graph: &Graph,
        weights: &Weights,
        options: &PrepareOptions,
    ) -> Result<Box<dyn Prepared>, BackendError> {
        crate::require_precision(self, options)?;
        weights
            .validate(graph, "weights")
            .map_err(|e| BackendError::weights(self.name(), e))?;
        Ok(Box::new(ReferencePlan {
            graph: graph.clone(),
            weights: weights.cast(),
        }))
    }
}

struct ReferencePlan {
    graph: Graph,
    weights: Weights<f64>,
}

impl Prepared for ReferencePlan {
    fn input_shape(&self) -> &[usize] {
        self.graph.input_shape()
    }

    fn output_shape(&self) -> &[usize] {
        self.graph.output_shape()
    }

    fn run(&mut self, input: &Tensor, output: &mut Tensor) -> Result<(), BackendError> {
        let shapes = (self.graph.input_shape(), self.graph.output_shape());
        check_run_shapes(NAME, shapes, input, output)?;
        let result = evaluate(&self.graph, &self.weights, &input.cast::<f64>())?;
        for (o, v) in output.data_mut().iter_mut().zip(result.data()) {
            *o = *v as f32;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "reference: {} ops run one by one, NCHW, float64 activations and accumulation",
            self.graph.nodes().len()
        )
    }
}

/// The larger of two values, NaN if either is (f64::max returns the other one, which would
/// let a NaN from bad weights vanish before the comparison with a backend).
fn max_keeping_nan(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::graph::{BatchNorm, GraphBuilder, ValueId};

    fn t(shape: &[usize], data: &[f64]) -> Tensor<f64> {
        Tensor::new(shape.to_vec(), data.to_vec()).unwrap()
    }

    fn run_one(op: Op, input: Tensor<f64>, params: &[(&str, Tensor<f64>)]) -> Tensor<f64> {
        let mut b = GraphBuilder::new("t", input.shape().to_vec()).unwrap();
        let y = b.add("op", op, &[ValueId::Input]).unwrap();
        let g = b.finish(y);
        let mut w = Weights::new();
        for (suffix, tensor) in params {
            w.insert(format!("op.{suffix}"), tensor.clone());
        }
        evaluate(&g, &w, &input).unwrap()
    }

    fn conv(
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        padding: usize,
        groups: usize,
        bias: bool,
    ) -> Op {
        Op::Conv2d(Conv2d {
            in_channels: cin,
            out_channels: cout,
            kernel: k,
            stride,
            padding,
            groups,
            bias,
        })
    }

    #[test]
    fn valid_outputs_agree_with_a_brute_force_check() {
        for stride in 1..4 {
            for padding in 0..4 {
                for tap in 0..7usize {
                    for in_len in 1..9usize {
                        let out_len =
                            (in_len + 2 * padding).saturating_sub(tap.max(1) - 1) / stride + 1;
                        let brute: Vec<usize> = (0..out_len)
                            .filter(|o| {
                                let i = (o * stride + tap) as isize - padding as isize;
                                i >= 0 && (i as usize) < in_len
                            })
                            .collect();
                        let fast: Vec<usize> =
                            valid_outputs(tap, stride, padding, in_len, out_len).collect();
                        assert_eq!(
                            fast, brute,
                            "tap {tap} stride {stride} pad {padding} in {in_len}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn padded_conv_by_hand() {
        // 1x1x3x3 input 1..9, 3x3 all-ones kernel, padding 1: each output is the sum of its
        // neighbourhood. Corner (0,0): 1+2+4+5 = 12; centre: 45; (0,1): 1+2+3+4+5+6 = 21.
        let x = t(&[1, 1, 3, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9.]);
        let y = run_one(
            conv(1, 1, 3, 1, 1, 1, false),
            x,
            &[("weight", t(&[1, 1, 3, 3], &[1.; 9]))],
        );
        assert_eq!(y.data(), &[12., 21., 16., 27., 45., 33., 24., 39., 28.]);
    }

    #[test]
    fn strided_conv_with_bias_by_hand() {
        // Stride 2, padding 1 on 3x3: outputs at (0,0), (0,2), (2,0), (2,2) centres -> 2x2.
        let x = t(&[1, 1, 3, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9.]);
        let y = run_one(
            conv(1, 1, 3, 2, 1, 1, true),
            x,
            &[
                ("weight", t(&[1, 1, 3, 3], &[1.; 9])),
                ("bias", t(&[1], &[0.5])),
            ],
        );
        assert_eq!(y.shape(), &[1, 1, 2, 2]);
        assert_eq!(y.data(), &[12.5, 16.5, 24.5, 28.5]);
    }

    #[test]
    fn grouped_conv_keeps_groups_apart() {
        // 4 input channels, 2 groups, 1x1 kernel, 2 outputs: out0 = 1*c0 + 2*c1, out1 = 3*c2 + 4*c3.
        let x = t(&[1, 4, 1, 2], &[1., 10., 2., 20., 3., 30., 4., 40.]);
        let w = t(&[2, 2, 1, 1], &[1., 2., 3., 4.]);
        let y = run_one(conv(4, 2, 1, 1, 0, 2, false), x, &[("weight", w)]);
        assert_eq!(y.data(), &[5., 50., 25., 250.]);
        // Depthwise: each channel its own kernel.
        let x = t(&[1, 2, 1, 1], &[3., 5.]);
        let y = run_one(
            conv(2, 2, 1, 1, 0, 2, false),
            x,
            &[("weight", t(&[2, 1, 1, 1], &[2., -1.]))],
        );
        assert_eq!(y.data(), &[6., -5.]);
    }

    #[test]
    fn batch_norm_by_hand() {
        // (x - mean) / sqrt(var + eps) * gamma + beta with eps = 0: channel 0 (4 - 2)/2*3+1 = 4.
        let x = t(&[1, 2, 1, 1], &[4., -1.]);
        let bn = Op::BatchNorm(BatchNorm {
            channels: 2,
            eps: 0.0,
        });
        let params = [
            ("weight", t(&[2], &[3., 1.])),
            ("bias", t(&[2], &[1., 0.])),
            ("running_mean", t(&[2], &[2., 1.])),
            ("running_var", t(&[2], &[4., 1.])),
        ];
        assert_eq!(run_one(bn, x, &params).data(), &[4., -2.]);
    }

    #[test]
    fn squeeze_excite_and_head_by_hand() {
        // x: 2 channels of 2 values; pool -> [1.5, 3]; scale by sigmoid(0) = 0.5 through a
        // zero conv with zero bias; then pool, flatten, linear [1, 1] + 1.
        let x = t(&[1, 2, 1, 2], &[1., 2., 2., 4.]);
        let mut b = GraphBuilder::new("t", vec![1, 2, 1, 2]).unwrap();
        let pooled = b.add("pool", Op::GlobalAvgPool, &[ValueId::Input]).unwrap();
        let gate_in = b
            .add("fc", conv(2, 2, 1, 1, 0, 1, true), &[pooled])
            .unwrap();
        let gate = b.add("sig", Op::Sigmoid, &[gate_in]).unwrap();
        let scaled = b
            .add("scale", Op::ChannelMul, &[ValueId::Input, gate])
            .unwrap();
        let p2 = b.add("gap", Op::GlobalAvgPool, &[scaled]).unwrap();
        let flat = b.add("flatten", Op::Flatten, &[p2]).unwrap();
        let lin = Op::Linear(Linear {
            in_features: 2,
            out_features: 1,
            bias: true,
        });
        let out = b.add("linear", lin, &[flat]).unwrap();
        let sum = b.add("sum", Op::Add, &[out, out]).unwrap();
        let g = b.finish(sum);
        let mut w = Weights::new();
        w.insert("fc.weight", t(&[2, 2, 1, 1], &[0.; 4]));
        w.insert("fc.bias", t(&[2], &[0., 0.]));
        w.insert("linear.weight", t(&[1, 2], &[1., 1.]));
        w.insert("linear.bias", t(&[1], &[1.]));
        let y = evaluate(&g, &w, &x).unwrap();
        // gap(scaled) = [0.75, 1.5]; linear = 2.25 + 1 = 3.25; doubled = 6.5.
        assert_eq!(y.data(), &[6.5]);
    }

    #[test]
    fn calibration_sees_every_value_over_every_input() {
        // x -> relu -> add(relu, x): the ranges of x, relu(x) and 2x-or-x.
        let mut g = models::GraphBuilder::new("cal", vec![1, 1, 1, 2]).unwrap();
        let r = g.add("r", Op::Relu, &[models::ValueId::Input]).unwrap();
        let a = g.add("a", Op::Add, &[r, models::ValueId::Input]).unwrap();
        let graph = g.finish(a);
        let weights = models::Weights::<f32>::new();
        let inputs = [
            Tensor::new(vec![1, 1, 1, 2], vec![-1.0f32, 2.0]).unwrap(),
            Tensor::new(vec![1, 1, 1, 2], vec![3.0f32, -4.0]).unwrap(),
        ];
        let ranges = value_ranges(&graph, &weights, &inputs).unwrap();
        assert_eq!(ranges.inputs_seen, 2);
        assert_eq!((ranges.input.min, ranges.input.max), (-4.0, 3.0));
        assert_eq!((ranges.nodes[0].min, ranges.nodes[0].max), (0.0, 3.0));
        // a = relu(x) + x: -1, 4 then 6, -4.
        assert_eq!((ranges.nodes[1].min, ranges.nodes[1].max), (-4.0, 6.0));
    }

    #[test]
    fn wrong_input_shape_is_an_error() {
        let mut b = GraphBuilder::new("t", vec![1, 1, 2, 2]).unwrap();
        let y = b.add("r", Op::Relu, &[ValueId::Input]).unwrap();
        let g = b.finish(y);
        let err =
            evaluate(&g, &Weights::new(), &Tensor::<f64>::zeros(vec![1, 1, 3, 3])).unwrap_err();
        assert!(matches!(err, BackendError::InputShape { .. }), "{err}");
    }

    #[test]
    fn the_oracle_keeps_nan_through_relu_max_and_max_pool() {
        let mut b = GraphBuilder::new("t", vec![1, 1, 2, 2]).unwrap();
        let r = b.add("r", Op::Relu, &[ValueId::Input]).unwrap();
        let m = b.add("m", Op::Max, &[r, ValueId::Input]).unwrap();
        let g = b.finish(m);
        let x = Tensor::new(vec![1, 1, 2, 2], vec![f64::NAN, -1.0, 2.0, 0.5]).unwrap();
        let y = evaluate(&g, &Weights::new(), &x).unwrap();
        assert!(y.data()[0].is_nan(), "{:?}", y.data());
        assert_eq!(&y.data()[1..], &[0.0, 2.0, 0.5]);
        assert!(max_keeping_nan(1.0, f64::NAN).is_nan() && max_keeping_nan(f64::NAN, 1.0).is_nan());
    }
}
