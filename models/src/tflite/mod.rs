//! TFLite export: a graph and its weights written as a `.tflite` flatbuffer (schema version 3)
//! that LiteRT, its XNNPACK CPU accelerator and Netron open. TFLite is NHWC: the model takes
//! the graph's NCHW input and transposes it once, every rank-4 value is NHWC, and a rank-4
//! output is transposed back. Batch norms after a conv are folded into it (in f64, as TFLite
//! converters do); the rest become a multiply and an add. Weights are float32 buffers.

pub mod schema;

use std::collections::BTreeMap;

use crate::graph::{Conv2d, Graph, MaxPool2d, Node, Op, ValueId};
use crate::reparameterize::{batch_norm_affine, fold_batch_norm_weights, fold_batch_norms_graph};
use crate::weights::{Weights, WeightsError};

/// The signature LiteRT's compiled model runs (its inputs `input`, its outputs `output`).
pub const SIGNATURE_KEY: &str = "serving_default";
/// A flatbuffer cannot exceed 2 GiB; larger models keep buffers outside, which is not written.
const MAX_MODEL_BYTES: usize = (1 << 31) - 1;

#[derive(Debug, thiserror::Error)]
pub enum TfliteError {
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("graph `{graph}` cannot be written as TFLite: {reason}")]
    Unexportable { graph: String, reason: String },
    #[error("graph `{graph}` cannot be written as TFLite: node `{node}` ({op}): {reason}")]
    UnsupportedOp {
        graph: String,
        node: String,
        op: &'static str,
        reason: String,
    },
}

/// The graph with these weights (checked against it first) as the bytes of a `.tflite` file.
pub fn export(
    graph: &Graph,
    weights: &Weights<f32>,
    description: &str,
) -> Result<Vec<u8>, TfliteError> {
    weights.validate(graph, "the weights to export")?;
    let folded =
        fold_batch_norms_graph(graph, graph.name()).map_err(|e| TfliteError::Unexportable {
            graph: graph.name().to_string(),
            reason: e.to_string(),
        })?;
    let folded_weights = fold_batch_norm_weights(graph, weights, "the weights to export")?;
    let model = convert(&folded, &folded_weights)?;
    let bytes = serialize(&model, graph.name(), description);
    if bytes.len() > MAX_MODEL_BYTES {
        return Err(unexportable(
            graph,
            format!(
                "the model is {} bytes, over the flatbuffer limit of 2 GiB",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

/// Whether the exporter can write this graph: the first op it cannot, with the reason.
pub fn check_exportable(graph: &Graph) -> Result<(), TfliteError> {
    for node in graph.nodes() {
        if let Op::Conv2d(c) = &node.op {
            if c.groups != 1 && c.groups != c.in_channels {
                return Err(TfliteError::UnsupportedOp {
                    graph: graph.name().to_string(),
                    node: node.name.clone(),
                    op: node.op.kind(),
                    reason: format!(
                        "a grouped convolution ({} groups over {} channels) has no TFLite builtin that XNNPACK runs; only dense and depthwise convolutions are written",
                        c.groups, c.in_channels
                    ),
                });
            }
        }
    }
    if graph.output() == ValueId::Input {
        return Err(unexportable(graph, "its output is its input".into()));
    }
    Ok(())
}

fn unexportable(graph: &Graph, reason: String) -> TfliteError {
    TfliteError::Unexportable {
        graph: graph.name().to_string(),
        reason,
    }
}

/// One tensor of the subgraph: its buffer is 0 (none) for values computed at run time.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorDef {
    pub name: String,
    pub shape: Vec<i32>,
    pub ty: i8,
    pub buffer: u32,
}

/// An option of an operator's table: a field slot and its value.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionField {
    Byte(u16, i8),
    Int(u16, i32),
    Bool(u16, bool),
    Ints(u16, Vec<i32>),
}

/// One operator: its builtin code, tensor indices (-1: an absent optional input) and options.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorDef {
    pub code: i32,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    pub options_type: u8,
    pub options: Vec<OptionField>,
}

/// The model before it is serialized: what the tests read back.
#[derive(Debug, Default)]
pub struct ModelDef {
    pub tensors: Vec<TensorDef>,
    pub operators: Vec<OperatorDef>,
    /// Buffer 0 is the empty one every intermediate tensor refers to.
    pub buffers: Vec<Vec<u8>>,
    pub input: i32,
    pub output: i32,
}

/// The graph (batch norms after convs already folded) as TFLite tensors and operators.
pub fn convert(graph: &Graph, weights: &Weights<f32>) -> Result<ModelDef, TfliteError> {
    check_exportable(graph)?;
    let mut c = Converter {
        graph,
        weights,
        model: ModelDef {
            buffers: vec![Vec::new()],
            ..ModelDef::default()
        },
        values: Vec::with_capacity(graph.nodes().len()),
    };
    c.model.input = c.tensor("input", graph.input_shape(), None);
    let nhwc = c.transpose_input();
    for node in graph.nodes() {
        let out = c.node(node, nhwc)?;
        c.values.push(out);
    }
    c.model.output = c.graph_output();
    Ok(c.model)
}

struct Converter<'a> {
    graph: &'a Graph,
    weights: &'a Weights<f32>,
    model: ModelDef,
    /// The tensor of each node's output (NHWC for rank 4).
    values: Vec<i32>,
}

/// NCHW dims as NHWC.
fn nhwc(shape: &[usize]) -> Vec<usize> {
    match shape {
        [n, c, h, w] => vec![*n, *h, *w, *c],
        other => other.to_vec(),
    }
}

fn dims(shape: &[usize]) -> Vec<i32> {
    shape.iter().map(|&d| d as i32).collect()
}

fn f32_bytes(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    values.into_iter().flat_map(f32::to_le_bytes).collect()
}

impl Converter<'_> {
    /// A float tensor of this shape; constant when `data` is given.
    fn tensor(&mut self, name: &str, shape: &[usize], data: Option<Vec<u8>>) -> i32 {
        self.typed_tensor(name, dims(shape), schema::FLOAT32, data)
    }

    fn typed_tensor(&mut self, name: &str, shape: Vec<i32>, ty: i8, data: Option<Vec<u8>>) -> i32 {
        let buffer = match data {
            Some(bytes) => {
                self.model.buffers.push(bytes);
                (self.model.buffers.len() - 1) as u32
            }
            None => 0,
        };
        self.model.tensors.push(TensorDef {
            name: name.to_string(),
            shape,
            ty,
            buffer,
        });
        (self.model.tensors.len() - 1) as i32
    }

    fn ints(&mut self, name: &str, values: &[i32]) -> i32 {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.typed_tensor(name, vec![values.len() as i32], schema::INT32, Some(bytes))
    }

    fn scalar(&mut self, name: &str, value: f32) -> i32 {
        self.tensor(name, &[1], Some(value.to_le_bytes().to_vec()))
    }

    fn op(&mut self, code: i32, inputs: Vec<i32>, output: i32, options: (u8, Vec<OptionField>)) {
        self.model.operators.push(OperatorDef {
            code,
            inputs,
            outputs: vec![output],
            options_type: options.0,
            options: options.1,
        });
    }

    fn value(&self, v: ValueId, input: i32) -> i32 {
        match v {
            ValueId::Input => input,
            ValueId::Node(i) => self.values[i],
        }
    }

    fn param(&self, node: &Node, suffix: &str) -> &[f32] {
        let name = format!("{}.{suffix}", node.name);
        self.weights
            .get(&name)
            .expect("validated against the graph")
            .data()
    }

    fn transpose_input(&mut self) -> i32 {
        let shape = nhwc(self.graph.input_shape());
        let out = self.tensor("input/nhwc", &shape, None);
        let perm = self.ints("input/perm", &[0, 2, 3, 1]);
        let input = self.model.input;
        self.op(
            schema::op::TRANSPOSE,
            vec![input, perm],
            out,
            (schema::options::TRANSPOSE, vec![]),
        );
        out
    }

    /// The graph's output tensor: a rank-4 output goes back to NCHW.
    fn graph_output(&mut self) -> i32 {
        let out = self.value(self.graph.output(), self.model.input);
        let shape = self.graph.output_shape().to_vec();
        if shape.len() != 4 {
            return out;
        }
        let nchw = self.tensor("output/nchw", &shape, None);
        let perm = self.ints("output/perm", &[0, 3, 1, 2]);
        self.op(
            schema::op::TRANSPOSE,
            vec![out, perm],
            nchw,
            (schema::options::TRANSPOSE, vec![]),
        );
        nchw
    }

    fn node(&mut self, node: &Node, input: i32) -> Result<i32, TfliteError> {
        let ins: Vec<i32> = node.inputs.iter().map(|&v| self.value(v, input)).collect();
        let out = self.tensor(&node.name, &nhwc(&node.shape), None);
        let in_shape = nhwc(self.graph.value_shape(node.inputs[0]));
        match &node.op {
            Op::Conv2d(c) => self.conv(node, c, ins[0], &in_shape, out),
            Op::BatchNorm(b) => self.batch_norm(node, b.eps, ins[0], out),
            Op::MaxPool2d(m) => self.max_pool(node, m, ins[0], &in_shape, out),
            Op::Linear(l) => {
                let w = self.param(node, "weight").to_vec();
                let weight = self.tensor(
                    &format!("{}.weight", node.name),
                    &[l.out_features, l.in_features],
                    Some(f32_bytes(w)),
                );
                let bias = self.bias(node, l.bias, l.out_features);
                let opts = (schema::options::FULLY_CONNECTED, vec![]);
                self.op(
                    schema::op::FULLY_CONNECTED,
                    vec![ins[0], weight, bias],
                    out,
                    opts,
                );
            }
            Op::Relu => self.unary(schema::op::RELU, ins[0], out),
            Op::Relu6 => self.unary(schema::op::RELU6, ins[0], out),
            Op::Sigmoid => self.unary(schema::op::LOGISTIC, ins[0], out),
            Op::HardSwish => {
                let opts = (schema::options::HARD_SWISH, vec![]);
                self.op(schema::op::HARD_SWISH, vec![ins[0]], out, opts);
            }
            Op::HardSigmoid => self.hard_sigmoid(node, ins[0], &in_shape, out),
            Op::Silu => {
                let sigmoid = self.tensor(&format!("{}/sigmoid", node.name), &in_shape, None);
                self.unary(schema::op::LOGISTIC, ins[0], sigmoid);
                self.binary(schema::op::MUL, ins[0], sigmoid, out);
            }
            Op::Gelu => {
                let opts = vec![OptionField::Bool(schema::slot::GELU_APPROXIMATE, false)];
                self.op(
                    schema::op::GELU,
                    vec![ins[0]],
                    out,
                    (schema::options::GELU, opts),
                );
            }
            Op::Add => self.chain(node, schema::op::ADD, &ins, out),
            Op::Max => self.chain(node, schema::op::MAXIMUM, &ins, out),
            Op::ChannelMul => self.binary(schema::op::MUL, ins[0], ins[1], out),
            Op::ChannelAdd => self.binary(schema::op::ADD, ins[0], ins[1], out),
            Op::GlobalAvgPool => {
                let axes = self.ints(&format!("{}/axes", node.name), &[1, 2]);
                let opts = vec![OptionField::Bool(schema::slot::REDUCER_KEEP_DIMS, true)];
                self.op(
                    schema::op::MEAN,
                    vec![ins[0], axes],
                    out,
                    (schema::options::REDUCER, opts),
                );
            }
            Op::Concat => {
                let opts = vec![OptionField::Int(schema::slot::CONCATENATION_AXIS, 3)];
                self.op(
                    schema::op::CONCATENATION,
                    ins,
                    out,
                    (schema::options::CONCATENATION, opts),
                );
            }
            Op::Slice { start, end } => {
                let s = nhwc(&node.shape);
                let begin = self.ints(&format!("{}/begin", node.name), &[0, 0, 0, *start as i32]);
                let size = self.ints(
                    &format!("{}/size", node.name),
                    &[s[0] as i32, s[1] as i32, s[2] as i32, (end - start) as i32],
                );
                self.op(
                    schema::op::SLICE,
                    vec![ins[0], begin, size],
                    out,
                    (schema::options::SLICE, vec![]),
                );
            }
            Op::ChannelShuffle { groups } => {
                self.channel_shuffle(node, *groups, ins[0], &in_shape, out)
            }
            Op::Flatten => self.flatten(node, ins[0], &in_shape, out),
        }
        Ok(out)
    }

    fn unary(&mut self, code: i32, x: i32, out: i32) {
        self.op(code, vec![x], out, (0, vec![]));
    }

    fn binary(&mut self, code: i32, a: i32, b: i32, out: i32) {
        let options = match code {
            schema::op::ADD => schema::options::ADD,
            schema::op::MUL => schema::options::MUL,
            _ => schema::options::MAXIMUM_MINIMUM,
        };
        self.op(code, vec![a, b], out, (options, vec![]));
    }

    /// An n-ary sum or maximum as a chain of binary ops, the last writing `out`.
    fn chain(&mut self, node: &Node, code: i32, ins: &[i32], out: i32) {
        let shape = nhwc(&node.shape);
        let mut acc = ins[0];
        for (k, &next) in ins[1..].iter().enumerate() {
            let target = match k + 2 == ins.len() {
                true => out,
                false => self.tensor(&format!("{}/partial{}", node.name, k + 1), &shape, None),
            };
            self.binary(code, acc, next, target);
            acc = target;
        }
    }

    /// The layer's bias, zeros when it has none: TFLite's kernels take the bias as optional,
    /// but its CONV_2D refuses to prepare without one in some cases (seen with LiteRT 2.3).
    fn bias(&mut self, node: &Node, has_bias: bool, channels: usize) -> i32 {
        let b = match has_bias {
            true => self.param(node, "bias").to_vec(),
            false => vec![0.0; channels],
        };
        self.tensor(
            &format!("{}.bias", node.name),
            &[channels],
            Some(f32_bytes(b)),
        )
    }

    fn conv(&mut self, node: &Node, c: &Conv2d, x: i32, in_shape: &[usize], out: i32) {
        let (padding, x) = self.padding(node, x, in_shape, (c.kernel, c.stride, c.padding), 0.0);
        let w = self.param(node, "weight");
        let k = c.kernel;
        let depthwise = c.groups != 1;
        let per_out = c.in_channels / c.groups * k * k;
        // OIHW to OHWI (dense) or to [1, H, W, O] (depthwise, one input channel per group).
        let (shape, data): (Vec<usize>, Vec<f32>) = if depthwise {
            let d = (0..k * k * c.out_channels)
                .map(|j| w[(j % c.out_channels) * per_out + j / c.out_channels]);
            (vec![1, k, k, c.out_channels], d.collect())
        } else {
            let cin = c.in_channels;
            let d = (0..c.out_channels * k * k * cin).map(|j| {
                let (o, rest) = (j / (k * k * cin), j % (k * k * cin));
                let (yx, i) = (rest / cin, rest % cin);
                w[o * per_out + i * k * k + yx]
            });
            (vec![c.out_channels, k, k, cin], d.collect())
        };
        let filter = self.tensor(
            &format!("{}.weight", node.name),
            &shape,
            Some(f32_bytes(data)),
        );
        let bias = self.bias(node, c.bias, c.out_channels);
        let s = c.stride as i32;
        let mut opts = vec![
            OptionField::Byte(schema::slot::PADDING, padding),
            OptionField::Int(schema::slot::STRIDE_W, s),
            OptionField::Int(schema::slot::STRIDE_H, s),
        ];
        let (code, options) = if depthwise {
            let multiplier = (c.out_channels / c.in_channels) as i32;
            opts.push(OptionField::Int(schema::slot::DEPTH_MULTIPLIER, multiplier));
            (
                schema::op::DEPTHWISE_CONV_2D,
                schema::options::DEPTHWISE_CONV_2D,
            )
        } else {
            (schema::op::CONV_2D, schema::options::CONV_2D)
        };
        self.op(code, vec![x, filter, bias], out, (options, opts));
    }

    /// TFLite pads SAME (bottom/right first when odd) or VALID; PyTorch pads `p` on every side.
    /// The two agree when the windows start at the same places: VALID when p = 0, SAME when
    /// its output size and top padding are PyTorch's. Otherwise an explicit pad (with `fill`,
    /// -inf for max pools) and VALID.
    fn padding(
        &mut self,
        node: &Node,
        x: i32,
        in_shape: &[usize],
        kernel_stride_pad: (usize, usize, usize),
        fill: f32,
    ) -> (i8, i32) {
        let (k, s, p) = kernel_stride_pad;
        if p == 0 {
            return (schema::VALID, x);
        }
        let same_matches = [in_shape[1], in_shape[2]].iter().all(|&n| {
            let out = n.div_ceil(s);
            let total = ((out - 1) * s + k).saturating_sub(n);
            out == (n + 2 * p - k) / s + 1 && total / 2 == p
        });
        if same_matches {
            return (schema::SAME, x);
        }
        let padded_shape = [
            in_shape[0],
            in_shape[1] + 2 * p,
            in_shape[2] + 2 * p,
            in_shape[3],
        ];
        let padded = self.tensor(&format!("{}/padded", node.name), &padded_shape, None);
        let p = p as i32;
        let pads = self.typed_tensor(
            &format!("{}/pads", node.name),
            vec![4, 2],
            schema::INT32,
            Some(
                [0, 0, p, p, p, p, 0, 0]
                    .iter()
                    .flat_map(|v: &i32| v.to_le_bytes())
                    .collect(),
            ),
        );
        if fill == 0.0 {
            self.op(
                schema::op::PAD,
                vec![x, pads],
                padded,
                (schema::options::PAD, vec![]),
            );
        } else {
            let value = self.scalar(&format!("{}/pad_value", node.name), fill);
            self.op(
                schema::op::PADV2,
                vec![x, pads, value],
                padded,
                (schema::options::PADV2, vec![]),
            );
        }
        (schema::VALID, padded)
    }

    fn max_pool(&mut self, node: &Node, m: &MaxPool2d, x: i32, in_shape: &[usize], out: i32) {
        let (padding, x) = self.padding(
            node,
            x,
            in_shape,
            (m.kernel, m.stride, m.padding),
            f32::NEG_INFINITY,
        );
        let (k, s) = (m.kernel as i32, m.stride as i32);
        let opts = vec![
            OptionField::Byte(schema::slot::PADDING, padding),
            OptionField::Int(schema::slot::STRIDE_W, s),
            OptionField::Int(schema::slot::STRIDE_H, s),
            OptionField::Int(schema::slot::FILTER_WIDTH, k),
            OptionField::Int(schema::slot::FILTER_HEIGHT, k),
        ];
        self.op(
            schema::op::MAX_POOL_2D,
            vec![x],
            out,
            (schema::options::POOL_2D, opts),
        );
    }

    /// A batch norm no conv absorbed: x * scale + shift per channel (the last axis in NHWC).
    fn batch_norm(&mut self, node: &Node, eps: f64, x: i32, out: i32) {
        let [g, b, m, v] =
            ["weight", "bias", "running_mean", "running_var"].map(|s| self.param(node, s));
        let (scale, shift) = batch_norm_affine(g, b, m, v, eps);
        let channels = scale.len();
        let shape = nhwc(&node.shape);
        let scale = self.tensor(
            &format!("{}/scale", node.name),
            &[channels],
            Some(f32_bytes(scale.iter().map(|&s| s as f32))),
        );
        let shift = self.tensor(
            &format!("{}/shift", node.name),
            &[channels],
            Some(f32_bytes(shift.iter().map(|&s| s as f32))),
        );
        let scaled = self.tensor(&format!("{}/scaled", node.name), &shape, None);
        self.binary(schema::op::MUL, x, scale, scaled);
        self.binary(schema::op::ADD, scaled, shift, out);
    }

    /// relu6(x + 3) / 6, PyTorch's hardsigmoid (TFLite has no builtin).
    fn hard_sigmoid(&mut self, node: &Node, x: i32, shape: &[usize], out: i32) {
        let three = self.scalar(&format!("{}/three", node.name), 3.0);
        let sixth = self.scalar(&format!("{}/sixth", node.name), 1.0 / 6.0);
        let shifted = self.tensor(&format!("{}/shifted", node.name), shape, None);
        let clipped = self.tensor(&format!("{}/clipped", node.name), shape, None);
        self.binary(schema::op::ADD, x, three, shifted);
        self.unary(schema::op::RELU6, shifted, clipped);
        self.binary(schema::op::MUL, clipped, sixth, out);
    }

    fn reshape(&mut self, node: &Node, part: &str, x: i32, shape: &[usize], out: i32) {
        let shape = dims(shape);
        let target = self.ints(&format!("{}/{part}", node.name), &shape);
        let opts = vec![OptionField::Ints(schema::slot::RESHAPE_NEW_SHAPE, shape)];
        self.op(
            schema::op::RESHAPE,
            vec![x, target],
            out,
            (schema::options::RESHAPE, opts),
        );
    }

    fn transpose(&mut self, node: &Node, x: i32, perm: &[i32], out: i32) {
        let perm = self.ints(&format!("{}/perm", node.name), perm);
        self.op(
            schema::op::TRANSPOSE,
            vec![x, perm],
            out,
            (schema::options::TRANSPOSE, vec![]),
        );
    }

    /// NHWC [N, H, W, C] viewed as [N, H, W, g, C/g], the last two axes swapped, flattened:
    /// channel j*g + i takes channel i*(C/g) + j, as the NCHW shuffle does.
    fn channel_shuffle(&mut self, node: &Node, groups: usize, x: i32, shape: &[usize], out: i32) {
        let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3]);
        let grouped = [n, h, w, groups, c / groups];
        let swapped = [n, h, w, c / groups, groups];
        let split = self.tensor(&format!("{}/split", node.name), &grouped, None);
        let turned = self.tensor(&format!("{}/swapped", node.name), &swapped, None);
        self.reshape(node, "grouped_shape", x, &grouped, split);
        self.transpose(node, split, &[0, 1, 2, 4, 3], turned);
        self.reshape(node, "shape", turned, &nhwc(&node.shape), out);
    }

    /// [N, C, H, W] flattened in NCHW order: NHWC goes back to NCHW first unless H = W = 1.
    fn flatten(&mut self, node: &Node, x: i32, shape: &[usize], out: i32) {
        let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3]);
        let flat = [n, c * h * w];
        if h * w == 1 {
            return self.reshape(node, "shape", x, &flat, out);
        }
        let nchw = self.tensor(&format!("{}/nchw", node.name), &[n, c, h, w], None);
        self.transpose(node, x, &[0, 3, 1, 2], nchw);
        self.reshape(node, "shape", nchw, &flat, out);
    }
}

mod serialize;
pub use serialize::serialize;

/// The op codes a model uses, in first-use order (the operator code table).
fn opcode_table(model: &ModelDef) -> (Vec<i32>, BTreeMap<i32, u32>) {
    let mut codes = Vec::new();
    let mut index = BTreeMap::new();
    for op in &model.operators {
        index.entry(op.code).or_insert_with(|| {
            codes.push(op.code);
            (codes.len() - 1) as u32
        });
    }
    (codes, index)
}

#[cfg(test)]
mod tests;
