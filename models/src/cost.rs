//! Cost counting per op and per model: params, MACs (ours and fvcore's convention), FLOPs,
//! memory traffic and peak activation memory. The rules are stated in models/COUNTING.md and in
//! the doc comments below; tests pin the published MobileOne figures. Bytes are counted at a
//! `Storage`: float32 by default, or the element sizes an engine stores at a 16-bit precision.

use serde::{Deserialize, Serialize};

use crate::graph::{Graph, Op, ValueId};
use crate::tensor::numel;

/// Bytes per element at float32, the default storage of every count.
pub const BYTES_PER_ELEMENT: u64 = 4;

/// How many bytes an engine stores each kind of element in: the weights of dense convs and
/// linear layers (GEMM operands), every other parameter (depthwise weights, biases, batch-norm
/// statistics), and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Storage {
    pub gemm_weights: u64,
    pub other_params: u64,
    pub activations: u64,
}

impl Storage {
    /// Everything float32.
    pub const F32: Storage = Storage::uniform(BYTES_PER_ELEMENT);

    /// Every element in `bytes`.
    pub const fn uniform(bytes: u64) -> Storage {
        Storage {
            gemm_weights: bytes,
            other_params: bytes,
            activations: bytes,
        }
    }
}

/// The cost of one op as executed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpCost {
    pub name: String,
    pub kind: &'static str,
    pub output_shape: Vec<usize>,
    /// Trainable parameters (BN running statistics excluded, as PyTorch counts).
    pub params: u64,
    /// Multiply-accumulates of conv and linear layers; 0 for other ops.
    pub macs: u64,
    /// 2 x MACs (+1 per output with bias) for conv/linear; element-wise rules otherwise.
    pub flops: u64,
    /// Input activations + parameter tensors (running statistics included) read, at the
    /// storage counted (float32 by default).
    pub bytes_read: u64,
    /// Output activation written, at the storage counted.
    pub bytes_written: u64,
}

impl OpCost {
    pub fn memory_traffic_bytes(&self) -> u64 {
        self.bytes_read + self.bytes_written
    }
}

/// The cost of a whole graph: its totals and every op's own cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelCost {
    #[serde(flatten)]
    pub totals: CostTotals,
    pub layers: Vec<OpCost>,
}

/// A graph's totals (what results files record per cell).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostTotals {
    pub params: u64,
    /// Our MAC count: every conv and linear, classifier included.
    pub macs: u64,
    /// MACs in fvcore's convention, as in the published tables: conv MACs (SE convs included)
    /// plus the elements entering every global average pool; classifier excluded.
    pub macs_fvcore: u64,
    pub flops: u64,
    pub memory_traffic_bytes: u64,
    pub peak_activation_bytes: u64,
    /// Number of ops executed (graph nodes).
    pub ops: usize,
    /// Bytes of the trainable parameters as stored (params x their element sizes); absent in
    /// files from before it was counted.
    #[serde(default)]
    pub param_bytes: u64,
}

/// Counts one op given its input shapes and output shape, at float32.
pub fn op_cost(graph: &Graph, index: usize) -> OpCost {
    op_cost_at(graph, index, Storage::F32)
}

/// Counts one op with its bytes at `storage`.
pub fn op_cost_at(graph: &Graph, index: usize, storage: Storage) -> OpCost {
    let node = &graph.nodes()[index];
    let inputs: Vec<&[usize]> = node.inputs.iter().map(|v| graph.value_shape(*v)).collect();
    let out = numel(&node.shape) as u64;
    let input_elems: u64 = inputs.iter().map(|s| numel(s) as u64).sum();
    let param_specs = node.op.params();
    let params: u64 = param_specs
        .iter()
        .filter(|p| p.role.is_trainable())
        .map(|p| numel(&p.shape) as u64)
        .sum();
    let param_elems: u64 = param_specs.iter().map(|p| numel(&p.shape) as u64).sum();
    let (macs, flops) = match &node.op {
        Op::Conv2d(c) => {
            let macs = out * (c.in_channels / c.groups * c.kernel * c.kernel) as u64;
            (macs, 2 * macs + if c.bias { out } else { 0 })
        }
        Op::Linear(l) => {
            let macs = out * l.in_features as u64;
            (macs, 2 * macs + if l.bias { out } else { 0 })
        }
        // Inference BN is a per-channel multiply and add.
        Op::BatchNorm(_) => (0, 2 * out),
        Op::Relu | Op::ChannelMul | Op::ChannelAdd => (0, out),
        // A clamp is two comparisons.
        Op::Relu6 => (0, 2 * out),
        // exp, add, divide and the negation: 4 per element.
        Op::Sigmoid => (0, 4 * out),
        // add 3, clamp (2), scale by 1/6; hard-swish multiplies by x once more.
        Op::HardSigmoid => (0, 4 * out),
        Op::HardSwish => (0, 5 * out),
        // sigmoid (4) and the product with x.
        Op::Silu => (0, 5 * out),
        // x / sqrt 2, erf (counted as one, like exp), + 1, * 0.5, * x.
        Op::Gelu => (0, 5 * out),
        Op::Add | Op::Max => (0, (inputs.len() as u64 - 1) * out),
        // One comparison per window element.
        Op::MaxPool2d(p) => (0, out * (p.kernel * p.kernel) as u64),
        // Pure data movement.
        Op::Concat | Op::Slice { .. } | Op::ChannelShuffle { .. } => (0, 0),
        // One add per input element; the division per output is not counted.
        Op::GlobalAvgPool => (0, input_elems),
        Op::Flatten => (0, 0),
    };
    let act = storage.activations;
    let param_bytes = param_elems * param_element_bytes(&node.op, storage);
    // A flatten is a view: it moves no data.
    let (bytes_read, bytes_written) = match node.op {
        Op::Flatten => (0, 0),
        // A slice reads only the channels it keeps.
        Op::Slice { .. } => (out * act, out * act),
        _ => (input_elems * act + param_bytes, out * act),
    };
    OpCost {
        name: node.name.clone(),
        kind: node.op.kind(),
        output_shape: node.shape.clone(),
        params,
        macs,
        flops,
        bytes_read,
        bytes_written,
    }
}

/// Bytes per parameter element of `op` at `storage`: a dense conv's or linear layer's are GEMM
/// weights (a conv with a bias or a batch norm folded in keeps the bias at the same size: the
/// difference is one vector per layer), every other op's are other parameters.
fn param_element_bytes(op: &Op, storage: Storage) -> u64 {
    match op {
        Op::Conv2d(c) if !c.is_depthwise() => storage.gemm_weights,
        Op::Linear(_) => storage.gemm_weights,
        _ => storage.other_params,
    }
}

/// Counts every op of the graph and sums them, at float32.
pub fn model_cost(graph: &Graph) -> ModelCost {
    model_cost_at(graph, Storage::F32)
}

/// Counts every op of the graph and sums them, with bytes at `storage`.
pub fn model_cost_at(graph: &Graph, storage: Storage) -> ModelCost {
    let layers: Vec<OpCost> = (0..graph.nodes().len())
        .map(|i| op_cost_at(graph, i, storage))
        .collect();
    let param_bytes = graph
        .nodes()
        .iter()
        .zip(&layers)
        .map(|(node, l)| l.params * param_element_bytes(&node.op, storage))
        .sum();
    let totals = CostTotals {
        params: layers.iter().map(|l| l.params).sum(),
        macs: layers.iter().map(|l| l.macs).sum(),
        macs_fvcore: fvcore_macs(graph, &layers),
        flops: layers.iter().map(|l| l.flops).sum(),
        memory_traffic_bytes: layers.iter().map(OpCost::memory_traffic_bytes).sum(),
        peak_activation_bytes: peak_activation_bytes(graph) / BYTES_PER_ELEMENT
            * storage.activations,
        ops: layers.len(),
        param_bytes,
    };
    ModelCost { totals, layers }
}

/// fvcore counts convolutions, and `adaptive_avg_pool2d` as one per input element (the head's
/// pool and, in mmpretrain's definition the published figures come from, the SE pools too); it
/// ignores element-wise ops. The classifier is left out, as in the published tables.
fn fvcore_macs(graph: &Graph, layers: &[OpCost]) -> u64 {
    graph
        .nodes()
        .iter()
        .zip(layers)
        .map(|(node, cost)| match node.op {
            Op::Conv2d(_) => cost.macs,
            Op::GlobalAvgPool => numel(graph.value_shape(node.inputs[0])) as u64,
            _ => 0,
        })
        .sum()
}

/// Largest total of live activations while executing in node order: the graph input and each
/// op's output stay allocated until their last reader has run; an op's inputs and output are
/// live together.
pub fn peak_activation_bytes(graph: &Graph) -> u64 {
    let mut last_use = vec![0usize; graph.nodes().len() + 1];
    let slot = |v: ValueId| match v {
        ValueId::Input => 0,
        ValueId::Node(i) => i + 1,
    };
    for (value, last) in graph.last_uses() {
        last_use[slot(value)] = last;
    }
    let size = |v: ValueId| numel(graph.value_shape(v)) as u64 * BYTES_PER_ELEMENT;
    let mut live = size(ValueId::Input);
    let mut peak = live;
    for (i, node) in graph.nodes().iter().enumerate() {
        live += size(ValueId::Node(i));
        peak = peak.max(live);
        let mut freed: Vec<ValueId> = node.inputs.clone();
        freed.sort();
        freed.dedup();
        for v in freed {
            if last_use[slot(v)] == i {
                live -= size(v);
            }
        }
        if last_use[i + 1] <= i {
            // An output nobody reads is freed at once.
            live -= size(ValueId::Node(i));
        }
    }
    peak
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Conv2d, GraphBuilder};
    use crate::mobileone::{build, Variant};
    use crate::model::{Form, InputSize};

    fn cost(v: Variant, f: Form) -> CostTotals {
        model_cost(&build(v, f, InputSize::IMAGENET).unwrap()).totals
    }

    #[test]
    fn bytes_follow_the_storage_each_element_kind_is_counted_at() {
        let graph = build(Variant::S0, Form::Reparameterized, InputSize::IMAGENET).unwrap();
        let f32 = model_cost(&graph).totals;
        assert_eq!(f32.param_bytes, 4 * f32.params);
        // Everything 16-bit: every byte count halves; counts of work do not change.
        let half = model_cost_at(&graph, Storage::uniform(2)).totals;
        assert_eq!(2 * half.memory_traffic_bytes, f32.memory_traffic_bytes);
        assert_eq!(2 * half.peak_activation_bytes, f32.peak_activation_bytes);
        assert_eq!(
            (half.flops, half.params, 2 * half.param_bytes),
            (f32.flops, f32.params, f32.param_bytes)
        );
        // 16-bit GEMM weights only: traffic drops by exactly 2 bytes per dense/linear parameter.
        let gemm16 = Storage {
            gemm_weights: 2,
            ..Storage::F32
        };
        let mixed = model_cost_at(&graph, gemm16).totals;
        let dense: u64 = graph
            .nodes()
            .iter()
            .filter(|n| match &n.op {
                Op::Conv2d(c) => !c.is_depthwise(),
                Op::Linear(_) => true,
                _ => false,
            })
            .map(|n| {
                n.op.params()
                    .iter()
                    .map(|p| numel(&p.shape) as u64)
                    .sum::<u64>()
            })
            .sum();
        assert!(
            dense > f32.params / 2,
            "S0's weights are mostly dense: {dense}"
        );
        assert_eq!(
            mixed.memory_traffic_bytes,
            f32.memory_traffic_bytes - 2 * dense
        );
        assert_eq!(mixed.peak_activation_bytes, f32.peak_activation_bytes);
    }

    #[test]
    fn reparameterized_params_match_the_published_counts() {
        let published = [2_078_504, 4_764_840, 7_808_168, 10_078_312, 14_838_352];
        for (v, p) in Variant::ALL.into_iter().zip(published) {
            assert_eq!(cost(v, Form::Reparameterized).params, p, "{v}");
        }
    }

    #[test]
    fn unfused_params_match_the_published_counts() {
        let published = [5_293_272, 4_825_192, 7_884_648, 10_170_600, 14_951_248];
        for (v, p) in Variant::ALL.into_iter().zip(published) {
            assert_eq!(cost(v, Form::Unfused).params, p, "{v}");
        }
    }

    #[test]
    fn fvcore_macs_match_the_published_counts() {
        let published = [
            274_136_576,
            823_839_744,
            1_296_478_848,
            1_893_842_944,
            2_979_222_528,
        ];
        for (v, m) in Variant::ALL.into_iter().zip(published) {
            assert_eq!(cost(v, Form::Reparameterized).macs_fvcore, m, "{v}");
        }
    }

    #[test]
    fn our_macs_include_the_classifier_and_not_the_pool() {
        // Stated in the reference: with the classifier and without the pool term, S0 is 275,110,400.
        assert_eq!(cost(Variant::S0, Form::Reparameterized).macs, 275_110_400);
    }

    #[test]
    fn a_small_conv_is_counted_by_hand() {
        // 1x2x5x5 input, conv 2->4, k3, stride 2, pad 1, bias: output 1x4x3x3 = 36 elements.
        let mut b = GraphBuilder::new("t", vec![1, 2, 5, 5]).unwrap();
        let conv = Conv2d {
            in_channels: 2,
            out_channels: 4,
            kernel: 3,
            stride: 2,
            padding: 1,
            groups: 1,
            bias: true,
        };
        let y = b.add("c", Op::Conv2d(conv), &[ValueId::Input]).unwrap();
        let z = b.add("r", Op::Relu, &[y]).unwrap();
        let g = b.finish(z);
        let c = model_cost(&g);
        let conv_cost = &c.layers[0];
        assert_eq!(conv_cost.params, 4 * 2 * 9 + 4);
        assert_eq!(conv_cost.macs, 36 * 18);
        assert_eq!(conv_cost.flops, 2 * 36 * 18 + 36);
        assert_eq!(conv_cost.bytes_read, (50 + 76) * 4);
        assert_eq!(conv_cost.bytes_written, 36 * 4);
        assert_eq!(c.layers[1].flops, 36);
        assert_eq!(c.layers[1].memory_traffic_bytes(), 72 * 4);
        // Peak: input (50) + conv output (36) live together, then conv out + relu out (72).
        assert_eq!(c.totals.peak_activation_bytes, 86 * 4);
        assert_eq!(c.totals.ops, 2);
    }

    #[test]
    fn unfused_moves_more_memory_than_reparameterized() {
        for v in Variant::ALL {
            let (u, r) = (cost(v, Form::Unfused), cost(v, Form::Reparameterized));
            assert!(u.memory_traffic_bytes > 2 * r.memory_traffic_bytes, "{v}");
            // Reparameterized: conv + relu per block, 6 more ops per SE, pool/flatten/linear.
            assert_eq!(
                r.ops,
                43 * 2 + 3 + if v == Variant::S4 { 12 * 6 } else { 0 },
                "{v}"
            );
        }
        // S1 unfused by hand: stem (conv, bn, scale conv, scale bn, add, relu) 6; four stride-2
        // dw blocks 6 each; 17 stride-1 dw blocks 7 (+ identity BN); four first pw blocks
        // (conv, bn, relu) 3; 17 other pw blocks (conv, bn, identity, add, relu) 5; head 3.
        assert_eq!(
            cost(Variant::S1, Form::Unfused).ops,
            6 + 4 * 6 + 17 * 7 + 4 * 3 + 17 * 5 + 3
        );
    }
}
