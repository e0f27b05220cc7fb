//! The int8 model: a graph with every value's uint8 quantization (from calibrated ranges, see
//! `quantize`), convolutions and linears with per-output-channel int8 weights and int32 biases,
//! and each op's integer form. It is the contract the quantized reference executor
//! (`backends::quantized_reference`) and every int8 kernel follow bit for bit.
//!
//! Per op: a conv, a linear and a batch norm nothing folded (as a per-channel 1x1 depthwise
//! conv) sum int8 x uint8 products in int32 with the bias and requantize per output channel; a
//! ReLU or ReLU6 right after one of them, or after an add or a channel product, is fused as the
//! clamp of its output
//! (which takes the activation's quantization); other single-input maps are 256-entry tables;
//! an add sums each zero-point-corrected input times its scale over the output's in f32
//! (`add_sum`);
//! the global average sums and rescales; squeeze-excite's channel product multiplies the two
//! zero-point-corrected inputs and rescales; flatten keeps bytes and quantization.

mod stored;

pub use stored::StoredError;

use crate::graph::{Graph, Op, ValueId};
use crate::quantize::{
    quantize_bias, quantize_weights, ActivationQuant, QuantizeError, Rescale, ValueRanges,
};
use crate::reparameterize::batch_norm_affine;
use crate::weights::Weights;

/// Why a graph cannot be quantized.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuantizedError {
    #[error("graph `{graph}`, node `{node}` ({op}): {reason}")]
    Node {
        graph: String,
        node: String,
        op: &'static str,
        reason: String,
    },
    #[error("graph `{graph}`: the calibration ranges cover {ranges} nodes, the graph has {nodes}")]
    Ranges {
        graph: String,
        ranges: usize,
        nodes: usize,
    },
}

/// An add's value before the output zero point: the sum over its inputs of (q - zero point)
/// converted to f32 times the input's multiplier (its scale over the output's), in input order
/// (each product and each partial sum rounded to f32, no fused multiply-add), rounded to the
/// nearest integer with ties to even.
pub fn add_sum(terms: impl IntoIterator<Item = (i32, Rescale)>) -> i32 {
    let sum = terms
        .into_iter()
        .fold(0f32, |sum, (centred, m)| sum + centred as f32 * m.scale);
    sum.round_ties_even() as i32
}

/// One node's integer form.
#[derive(Debug, Clone, PartialEq)]
pub enum QuantizedOp {
    /// Conv, linear, or a batch norm as a per-channel 1x1 depthwise conv: int8 weights in the
    /// graph's layout, int32 biases at input scale x weight scale, one rescale per output
    /// channel, and the output clamped to `low..=high`.
    Gemm {
        weights: Vec<i8>,
        /// Each output channel's weight scale (real weight = int8 x scale).
        weight_scales: Vec<f32>,
        bias: Vec<i32>,
        rescale: Vec<Rescale>,
        low: u8,
        high: u8,
    },
    /// A single-input map as a table over the 256 input codes.
    Table(Box<[u8; 256]>),
    /// A ReLU or ReLU6 fused into the op before it: the same bytes.
    Fused,
    /// Sum of the inputs (`add_sum`: each input's multiplier is its scale over the
    /// output's), offset by the output zero point, clamped to `low..=high`.
    Add {
        inputs: Vec<Rescale>,
        low: u8,
        high: u8,
    },
    /// The mean over H and W: the sum of (q - zero point) rescaled by s_in / (H W s_out).
    Mean(Rescale),
    /// x [N, C, H, W] times s [N, C, 1, 1]: (qx - zx)(qs - zs) rescaled by sx ss / s_out,
    /// clamped to `low..=high`.
    ChannelMul { rescale: Rescale, low: u8, high: u8 },
    /// Flatten: the same bytes and quantization.
    Reshape,
}

/// One conv-like layer of an int8 model: what its quantization had to cover (the study of
/// reparameterization and quantization compares these between the forms).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerQuant {
    pub name: String,
    pub op: String,
    /// The smallest and largest per-channel weight scale (the channel's largest |w| / 127).
    pub weight_scales: [f32; 2],
    /// The median over output channels of the RMS of the channel's int8 weight codes (of a
    /// largest 127): how much of int8's resolution a typical weight gets. A kernel whose
    /// largest value dominates (a folded identity or 1x1 on the centre tap) leaves its other
    /// weights few codes.
    #[serde(default)]
    pub weight_rms_code: f32,
    /// The real range the output's codes cover: [min, max].
    pub output_range: [f32; 2],
}

impl LayerQuant {
    /// Largest over smallest channel weight scale: how unevenly the channels share int8.
    pub fn weight_spread(&self) -> f32 {
        self.weight_scales[1] / self.weight_scales[0].max(f32::MIN_POSITIVE)
    }
}

/// The median over `channels` equal chunks of `codes` of each chunk's root mean square.
fn median_rms_code(codes: &[i8], channels: usize) -> f32 {
    let per_channel = codes.len() / channels.max(1);
    let mut rms: Vec<f32> = codes
        .chunks(per_channel.max(1))
        .map(|c| {
            let sum: f32 = c.iter().map(|&q| f32::from(q) * f32::from(q)).sum();
            (sum / c.len() as f32).sqrt()
        })
        .collect();
    rms.sort_by(f32::total_cmp);
    rms.get(rms.len() / 2).copied().unwrap_or(0.0)
}

/// A graph with its integer ops and every value's quantization.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedModel {
    pub graph: Graph,
    pub input: ActivationQuant,
    /// The quantization of each node's output.
    pub values: Vec<ActivationQuant>,
    pub ops: Vec<QuantizedOp>,
}

impl QuantizedModel {
    /// Quantizes `graph` with `weights` (both as they will run: the caller folds batch norms
    /// first if it wants them folded) from min/max `ranges` calibrated on it.
    pub fn new(
        graph: &Graph,
        weights: &Weights<f32>,
        ranges: &ValueRanges,
    ) -> Result<Self, QuantizedError> {
        if ranges.nodes.len() != graph.nodes().len() {
            return Err(QuantizedError::Ranges {
                graph: graph.name().to_string(),
                ranges: ranges.nodes.len(),
                nodes: graph.nodes().len(),
            });
        }
        let mut q = Quantizer::new(graph, weights, ranges)?;
        for i in 0..graph.nodes().len() {
            let op = q.op(i).map_err(|reason| q.error(i, reason))?;
            q.ops.push(op);
        }
        Ok(QuantizedModel {
            graph: graph.clone(),
            input: q.input,
            values: q.values,
            ops: q.ops,
        })
    }

    /// Every conv-like layer's weight scales and output range, in node order.
    pub fn layers(&self) -> Vec<LayerQuant> {
        let nodes = self.graph.nodes().iter().zip(&self.ops).enumerate();
        nodes
            .filter_map(|(i, (node, op))| {
                let QuantizedOp::Gemm {
                    weights,
                    weight_scales,
                    ..
                } = op
                else {
                    return None;
                };
                let low = weight_scales.iter().copied().fold(f32::INFINITY, f32::min);
                let high = weight_scales.iter().copied().fold(0f32, f32::max);
                let out = self.values[i];
                Some(LayerQuant {
                    name: node.name.clone(),
                    op: node.op.kind().to_string(),
                    weight_scales: [low, high],
                    weight_rms_code: median_rms_code(weights, weight_scales.len()),
                    output_range: [out.dequantize(0), out.dequantize(255)],
                })
            })
            .collect()
    }

    /// The quantization of any value.
    pub fn quant(&self, value: ValueId) -> ActivationQuant {
        match value {
            ValueId::Input => self.input,
            ValueId::Node(i) => self.values[i],
        }
    }
}

struct Quantizer<'a> {
    graph: &'a Graph,
    weights: &'a Weights<f32>,
    input: ActivationQuant,
    values: Vec<ActivationQuant>,
    /// Which nodes are ReLU/ReLU6 fused into their producer.
    fused: Vec<bool>,
    ops: Vec<QuantizedOp>,
}

fn text(e: QuantizeError) -> String {
    e.to_string()
}

impl<'a> Quantizer<'a> {
    /// Every value's quantization: from its range, except that a fused activation's producer
    /// takes the activation's, and flatten keeps its input's.
    fn new(
        graph: &'a Graph,
        weights: &'a Weights<f32>,
        ranges: &ValueRanges,
    ) -> Result<Self, QuantizedError> {
        let nodes = graph.nodes();
        let fused = fused_activations(graph);
        let input = ranges
            .input
            .activation()
            .map_err(|e| QuantizedError::Node {
                graph: graph.name().to_string(),
                node: "input".into(),
                op: "input",
                reason: e.to_string(),
            })?;
        let mut values = Vec::with_capacity(nodes.len());
        for (i, node) in nodes.iter().enumerate() {
            let consumer_fused =
                (i + 1..nodes.len()).find(|&j| fused[j] && nodes[j].inputs[0] == ValueId::Node(i));
            let source = consumer_fused.unwrap_or(i);
            let quant = match &node.op {
                Op::Flatten => Ok(match node.inputs[0] {
                    ValueId::Input => input,
                    ValueId::Node(p) => values[p],
                }),
                _ => ranges.nodes[source].activation(),
            };
            let quant = quant.map_err(|e| QuantizedError::Node {
                graph: graph.name().to_string(),
                node: node.name.clone(),
                op: node.op.kind(),
                reason: e.to_string(),
            })?;
            values.push(quant);
        }
        // A fused activation's value is its producer's.
        for (i, node) in nodes.iter().enumerate() {
            if let (true, ValueId::Node(p)) = (fused[i], node.inputs[0]) {
                values[i] = values[p];
            }
        }
        Ok(Quantizer {
            graph,
            weights,
            input,
            values,
            fused,
            ops: Vec::with_capacity(nodes.len()),
        })
    }

    fn error(&self, i: usize, reason: String) -> QuantizedError {
        let node = &self.graph.nodes()[i];
        QuantizedError::Node {
            graph: self.graph.name().to_string(),
            node: node.name.clone(),
            op: node.op.kind(),
            reason,
        }
    }

    fn quant(&self, v: ValueId) -> ActivationQuant {
        match v {
            ValueId::Input => self.input,
            ValueId::Node(i) => self.values[i],
        }
    }

    fn param(&self, i: usize, suffix: &str) -> Option<&'a [f32]> {
        let name = format!("{}.{suffix}", self.graph.nodes()[i].name);
        self.weights.get(&name).map(|t| t.data())
    }

    /// The clamp of node i's output: its quantized activation's floor and ceiling when a
    /// ReLU/ReLU6 is fused after it, else the whole code range.
    fn clamp(&self, i: usize) -> (u8, u8) {
        let nodes = self.graph.nodes();
        let quant = self.values[i];
        let fused =
            (i + 1..nodes.len()).find(|&j| self.fused[j] && nodes[j].inputs[0] == ValueId::Node(i));
        match fused.map(|j| &nodes[j].op) {
            Some(Op::Relu) => (quant.zero_point, 255),
            Some(Op::Relu6) => (quant.zero_point, quant.quantize(6.0)),
            _ => (0, 255),
        }
    }

    fn op(&self, i: usize) -> Result<QuantizedOp, String> {
        let node = &self.graph.nodes()[i];
        let out = self.values[i];
        let x = self.quant(node.inputs[0]);
        Ok(match &node.op {
            _ if self.fused[i] => QuantizedOp::Fused,
            Op::Conv2d(c) => {
                let w = self.param(i, "weight").ok_or("no weight")?;
                let bias = self.param(i, "bias").map(<[f32]>::to_vec);
                self.gemm(i, w, bias, c.out_channels, x, out)?
            }
            Op::Linear(l) => {
                let w = self.param(i, "weight").ok_or("no weight")?;
                let bias = self.param(i, "bias").map(<[f32]>::to_vec);
                self.gemm(i, w, bias, l.out_features, x, out)?
            }
            Op::BatchNorm(b) => {
                let [g, beta, m, v] = ["weight", "bias", "running_mean", "running_var"]
                    .map(|s| self.param(i, s).unwrap_or(&[]));
                let (scale, shift) = batch_norm_affine(g, beta, m, v, b.eps);
                let w: Vec<f32> = scale.iter().map(|&s| s as f32).collect();
                let shift = shift.iter().map(|&s| s as f32).collect();
                self.gemm(i, &w, Some(shift), b.channels, x, out)?
            }
            Op::Add => {
                let over_output = |v: ValueId| f64::from(self.quant(v).scale) / f64::from(out.scale);
                let inputs = node.inputs.iter().map(|&v| Rescale::new(over_output(v)));
                let inputs = inputs.collect::<Result<_, _>>().map_err(text)?;
                let (low, high) = self.clamp(i);
                QuantizedOp::Add { inputs, low, high }
            }
            Op::GlobalAvgPool => {
                let shape = self.graph.value_shape(node.inputs[0]);
                let area = (shape[2] * shape[3]) as f64;
                let real = f64::from(x.scale) / (area * f64::from(out.scale));
                QuantizedOp::Mean(Rescale::new(real).map_err(text)?)
            }
            Op::ChannelMul => {
                let s = self.quant(node.inputs[1]);
                let real = f64::from(x.scale) * f64::from(s.scale) / f64::from(out.scale);
                let (low, high) = self.clamp(i);
                QuantizedOp::ChannelMul { rescale: Rescale::new(real).map_err(text)?, low, high }
            }
            Op::Flatten => QuantizedOp::Reshape,
            op => match op.unary_f64() {
                Some(f) => QuantizedOp::Table(Box::new(table(f, x, out))),
                None => return Err("no int8 form yet (int8 covers conv, linear, batch norm, the activations, add, global average, channel product and flatten)".into()),
            },
        })
    }

    /// A conv-like op: per-channel int8 weights, int32 biases, per-channel rescales.
    fn gemm(
        &self,
        i: usize,
        w: &[f32],
        bias: Option<Vec<f32>>,
        channels: usize,
        x: ActivationQuant,
        out: ActivationQuant,
    ) -> Result<QuantizedOp, String> {
        let weights = quantize_weights(w, channels).map_err(text)?;
        let bias = bias.unwrap_or_else(|| vec![0.0; channels]);
        let bias = quantize_bias(&bias, x.scale, &weights.scales).map_err(text)?;
        let rescale = weights
            .scales
            .iter()
            .map(|&s| Rescale::new(f64::from(x.scale) * f64::from(s) / f64::from(out.scale)))
            .collect::<Result<_, _>>()
            .map_err(text)?;
        let (low, high) = self.clamp(i);
        Ok(QuantizedOp::Gemm {
            weight_scales: weights.scales,
            weights: weights.values,
            bias,
            rescale,
            low,
            high,
        })
    }
}

/// The ReLU and ReLU6 nodes that run as their producer's clamp: right after a conv, linear,
/// batch norm, add or channel product that nothing else reads.
fn fused_activations(graph: &Graph) -> Vec<bool> {
    let nodes = graph.nodes();
    let mut readers = vec![0usize; nodes.len()];
    for node in nodes {
        for &v in &node.inputs {
            if let ValueId::Node(p) = v {
                readers[p] += 1;
            }
        }
    }
    nodes
        .iter()
        .map(|node| match (&node.op, node.inputs[0]) {
            (Op::Relu | Op::Relu6, ValueId::Node(p)) => {
                readers[p] == 1
                    && matches!(
                        nodes[p].op,
                        Op::Conv2d(_) | Op::Linear(_) | Op::BatchNorm(_) | Op::Add | Op::ChannelMul
                    )
            }
            _ => false,
        })
        .collect()
}

/// f over every input code: each dequantized, mapped in f64, quantized to the output.
fn table(f: fn(f64) -> f64, x: ActivationQuant, out: ActivationQuant) -> [u8; 256] {
    std::array::from_fn(|q| out.quantize(f(f64::from(x.dequantize(q as u8))) as f32))
}
