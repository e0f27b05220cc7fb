//! The graph IR: a typed, topologically ordered list of ops over float32 NCHW tensors.
//! Shapes are inferred and checked as the graph is built; every node knows its output shape
//! and the named parameters it reads. Adding an op means one `Op` variant, its `infer_shape`
//! and `params` arms here, and its cost rule in `cost.rs`; backends reject ops they lack.

use std::fmt;

/// Errors found while building or reshaping a graph; each names the node.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphError {
    #[error("graph `{graph}`, node `{node}` ({op}): {reason}")]
    BadNode {
        graph: String,
        node: String,
        op: &'static str,
        reason: String,
    },
    #[error("graph `{graph}`: node `{node}` reads value {value}, which is not defined before it")]
    UndefinedValue {
        graph: String,
        node: String,
        value: usize,
    },
    #[error("graph `{graph}`: node name `{node}` is used twice")]
    DuplicateName { graph: String, node: String },
    #[error("graph `{graph}`: input shape {shape:?} must be [batch, channels, height, width] with every size > 0")]
    BadInput { graph: String, shape: Vec<usize> },
}

/// A 2-D convolution with a square kernel (PyTorch semantics, symmetric zero padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2d {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
    pub bias: bool,
}

impl Conv2d {
    /// Shape of the weight tensor: [out, in / groups, k, k].
    pub fn weight_shape(&self) -> Vec<usize> {
        vec![
            self.out_channels,
            self.in_channels / self.groups,
            self.kernel,
            self.kernel,
        ]
    }

    /// Output spatial size for an input size (None when the kernel does not fit).
    pub fn output_size(&self, input: usize) -> Option<usize> {
        let padded = input + 2 * self.padding;
        if padded < self.kernel || self.stride == 0 {
            return None;
        }
        Some((padded - self.kernel) / self.stride + 1)
    }

    pub fn is_depthwise(&self) -> bool {
        self.groups == self.in_channels && self.groups == self.out_channels && self.groups > 1
    }
}

/// Inference-mode batch norm: y = (x - mean) / sqrt(var + eps) * gamma + beta, per channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNorm {
    pub channels: usize,
    pub eps: f64,
}

/// A fully connected layer on [N, in_features].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Linear {
    pub in_features: usize,
    pub out_features: usize,
    pub bias: bool,
}

/// A 2-D max pool with a square window (PyTorch semantics: padding never wins the max).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool2d {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl MaxPool2d {
    /// Output spatial size for an input size (None when the window does not fit).
    pub fn output_size(&self, input: usize) -> Option<usize> {
        let padded = input + 2 * self.padding;
        if padded < self.kernel || self.stride == 0 || 2 * self.padding > self.kernel {
            return None;
        }
        Some((padded - self.kernel) / self.stride + 1)
    }
}

/// Every operation the IR knows.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Conv2d(Conv2d),
    BatchNorm(BatchNorm),
    Relu,
    /// min(max(x, 0), 6).
    Relu6,
    Sigmoid,
    /// relu6(x + 3) / 6, PyTorch's `hardsigmoid`.
    HardSigmoid,
    /// x * relu6(x + 3) / 6, PyTorch's `hardswish`.
    HardSwish,
    /// x * sigmoid(x) (swish).
    Silu,
    /// x * Phi(x) with the exact erf form (PyTorch's default `gelu`).
    Gelu,
    /// Element-wise sum of two or more tensors of one shape.
    Add,
    /// Element-wise maximum of two or more tensors of one shape.
    Max,
    /// [N, C, H, W] -> [N, C, 1, 1], the mean over H and W.
    GlobalAvgPool,
    MaxPool2d(MaxPool2d),
    /// [N, C, H, W] * [N, C, 1, 1] (or [N, 1, 1, 1]): scales each channel (squeeze-excite).
    ChannelMul,
    /// [N, C, H, W] + [N, C, 1, 1] (or [N, 1, 1, 1]): shifts each channel.
    ChannelAdd,
    /// Joins rank-4 tensors along channels, in input order.
    Concat,
    /// Channels `start..end` of a rank-4 tensor (one part of a channel split).
    Slice {
        start: usize,
        end: usize,
    },
    /// ShuffleNet's channel shuffle: view as [N, groups, C / groups, H, W], swap the two
    /// channel axes, flatten back.
    ChannelShuffle {
        groups: usize,
    },
    /// [N, C, H, W] -> [N, C * H * W].
    Flatten,
    Linear(Linear),
}

/// The role of a parameter tensor, which decides how it is initialized and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamRole {
    Weight { fan_in: usize },
    Bias,
    BnGamma,
    BnBeta,
    BnMean,
    BnVar,
}

impl ParamRole {
    /// Trainable parameters (what PyTorch's `parameters()` counts); BN running statistics are buffers.
    pub fn is_trainable(&self) -> bool {
        !matches!(self, ParamRole::BnMean | ParamRole::BnVar)
    }
}

/// One parameter tensor an op reads, named `{node}.{suffix}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    pub suffix: &'static str,
    pub shape: Vec<usize>,
    pub role: ParamRole,
}

impl Op {
    /// Short lowercase name of the op kind, used in reports and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv2d(c) if c.is_depthwise() => "conv2d_depthwise",
            Op::Conv2d(c) if c.kernel == 1 && c.groups == 1 => "conv2d_pointwise",
            Op::Conv2d(_) => "conv2d",
            Op::BatchNorm(_) => "batch_norm",
            Op::Relu => "relu",
            Op::Relu6 => "relu6",
            Op::Sigmoid => "sigmoid",
            Op::HardSigmoid => "hard_sigmoid",
            Op::HardSwish => "hard_swish",
            Op::Silu => "silu",
            Op::Gelu => "gelu",
            Op::Add => "add",
            Op::Max => "max",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::MaxPool2d(_) => "max_pool",
            Op::ChannelMul => "channel_mul",
            Op::ChannelAdd => "channel_add",
            Op::Concat => "concat",
            Op::Slice { .. } => "slice",
            Op::ChannelShuffle { .. } => "channel_shuffle",
            Op::Flatten => "flatten",
            Op::Linear(_) => "linear",
        }
    }

    /// The defining formula of an element-wise activation, in f64 (None for other ops).
    /// The reference executor evaluates these; faster backends are checked against it.
    pub fn unary_f64(&self) -> Option<fn(f64) -> f64> {
        fn relu6(v: f64) -> f64 {
            v.clamp(0.0, 6.0)
        }
        fn sigmoid(v: f64) -> f64 {
            1.0 / (1.0 + (-v).exp())
        }
        Some(match self {
            // NaN stays NaN: the oracle must not hide a NaN the way f64::max would.
            Op::Relu => |v| if v.is_nan() { v } else { v.max(0.0) },
            Op::Relu6 => relu6,
            Op::Sigmoid => sigmoid,
            Op::HardSigmoid => |v| relu6(v + 3.0) / 6.0,
            Op::HardSwish => |v| v * relu6(v + 3.0) / 6.0,
            Op::Silu => |v| v * sigmoid(v),
            Op::Gelu => |v| 0.5 * v * (1.0 + libm::erf(v / std::f64::consts::SQRT_2)),
            _ => return None,
        })
    }

    /// The parameters this op reads.
    pub fn params(&self) -> Vec<ParamSpec> {
        match self {
            Op::Conv2d(c) => {
                let fan_in = c.in_channels / c.groups * c.kernel * c.kernel;
                let mut p = vec![ParamSpec {
                    suffix: "weight",
                    shape: c.weight_shape(),
                    role: ParamRole::Weight { fan_in },
                }];
                if c.bias {
                    p.push(ParamSpec {
                        suffix: "bias",
                        shape: vec![c.out_channels],
                        role: ParamRole::Bias,
                    });
                }
                p
            }
            Op::BatchNorm(bn) => [
                ("weight", ParamRole::BnGamma),
                ("bias", ParamRole::BnBeta),
                ("running_mean", ParamRole::BnMean),
                ("running_var", ParamRole::BnVar),
            ]
            .into_iter()
            .map(|(suffix, role)| ParamSpec {
                suffix,
                shape: vec![bn.channels],
                role,
            })
            .collect(),
            Op::Linear(l) => {
                let mut p = vec![ParamSpec {
                    suffix: "weight",
                    shape: vec![l.out_features, l.in_features],
                    role: ParamRole::Weight {
                        fan_in: l.in_features,
                    },
                }];
                if l.bias {
                    p.push(ParamSpec {
                        suffix: "bias",
                        shape: vec![l.out_features],
                        role: ParamRole::Bias,
                    });
                }
                p
            }
            _ => Vec::new(),
        }
    }

    /// The output shape for these input shapes, or why the inputs do not fit.
    pub fn infer_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
        let arity_ok = match self {
            Op::Add | Op::Max => inputs.len() >= 2,
            Op::Concat => !inputs.is_empty(),
            Op::ChannelMul | Op::ChannelAdd => inputs.len() == 2,
            _ => inputs.len() == 1,
        };
        if !arity_ok {
            return Err(format!("wrong number of inputs: {}", inputs.len()));
        }
        let x = inputs[0];
        match self {
            Op::Add | Op::Max | Op::ChannelMul | Op::ChannelAdd | Op::Concat => {
                self.combined_shape(inputs)
            }
            Op::Conv2d(c) => conv_shape(c, x),
            Op::BatchNorm(bn) => {
                expect_rank(x, 4)?;
                if x[1] != bn.channels {
                    return Err(format!(
                        "input has {} channels, batch norm has {}",
                        x[1], bn.channels
                    ));
                }
                Ok(x.to_vec())
            }
            op if op.unary_f64().is_some() => Ok(x.to_vec()),
            Op::GlobalAvgPool => {
                expect_rank(x, 4)?;
                Ok(vec![x[0], x[1], 1, 1])
            }
            Op::MaxPool2d(p) => {
                expect_rank(x, 4)?;
                match (p.output_size(x[2]), p.output_size(x[3])) {
                    (Some(h), Some(w)) => Ok(vec![x[0], x[1], h, w]),
                    _ => Err(format!(
                        "window {} with stride {} and padding {} does not fit input {}x{}",
                        p.kernel, p.stride, p.padding, x[2], x[3]
                    )),
                }
            }
            Op::Slice { start, end } => {
                expect_rank(x, 4)?;
                if start >= end || *end > x[1] {
                    return Err(format!(
                        "channel range {start}..{end} is empty or outside 0..{}",
                        x[1]
                    ));
                }
                Ok(vec![x[0], end - start, x[2], x[3]])
            }
            Op::ChannelShuffle { groups } => {
                expect_rank(x, 4)?;
                if *groups == 0 || !x[1].is_multiple_of(*groups) {
                    return Err(format!("{groups} groups do not divide {} channels", x[1]));
                }
                Ok(x.to_vec())
            }
            Op::Flatten => {
                if x.is_empty() {
                    return Err("cannot flatten a scalar".into());
                }
                Ok(vec![x[0], x[1..].iter().product()])
            }
            Op::Relu
            | Op::Relu6
            | Op::Sigmoid
            | Op::HardSigmoid
            | Op::HardSwish
            | Op::Silu
            | Op::Gelu => unreachable!("element-wise ops are matched above"),
            Op::Linear(l) => {
                expect_rank(x, 2)?;
                if x[1] != l.in_features {
                    return Err(format!(
                        "input has {} features, linear expects {}",
                        x[1], l.in_features
                    ));
                }
                Ok(vec![x[0], l.out_features])
            }
        }
    }

    /// The output shape of an op that combines several inputs.
    fn combined_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
        let x = inputs[0];
        match self {
            Op::Add | Op::Max => match inputs.iter().find(|s| *s != &x) {
                Some(other) => Err(format!("inputs differ in shape: {x:?} and {other:?}")),
                None => Ok(x.to_vec()),
            },
            Op::ChannelMul | Op::ChannelAdd => {
                expect_rank(x, 4)?;
                let scale = inputs[1];
                if scale != [x[0], x[1], 1, 1] && scale != [x[0], 1, 1, 1] {
                    return Err(format!(
                        "per-channel operand shape {scale:?} must be [{0}, {1}, 1, 1] or [{0}, 1, 1, 1]",
                        x[0], x[1]
                    ));
                }
                Ok(x.to_vec())
            }
            Op::Concat => {
                let mut channels = 0;
                for s in inputs {
                    expect_rank(s, 4)?;
                    if (s[0], s[2], s[3]) != (x[0], x[2], x[3]) {
                        return Err(format!(
                            "inputs differ in batch or spatial size: {x:?} and {s:?}"
                        ));
                    }
                    channels += s[1];
                }
                Ok(vec![x[0], channels, x[2], x[3]])
            }
            _ => unreachable!("only ops of several inputs come here"),
        }
    }
}

fn expect_rank(shape: &[usize], rank: usize) -> Result<(), String> {
    if shape.len() != rank {
        return Err(format!(
            "expected a rank-{rank} input, found shape {shape:?}"
        ));
    }
    Ok(())
}

fn conv_shape(c: &Conv2d, x: &[usize]) -> Result<Vec<usize>, String> {
    expect_rank(x, 4)?;
    if c.groups == 0
        || !c.in_channels.is_multiple_of(c.groups)
        || !c.out_channels.is_multiple_of(c.groups)
    {
        return Err(format!(
            "groups {} must divide in channels {} and out channels {}",
            c.groups, c.in_channels, c.out_channels
        ));
    }
    if c.kernel == 0 || c.stride == 0 {
        return Err("kernel and stride must be positive".into());
    }
    if x[1] != c.in_channels {
        return Err(format!(
            "input has {} channels, conv expects {}",
            x[1], c.in_channels
        ));
    }
    let (Some(h), Some(w)) = (c.output_size(x[2]), c.output_size(x[3])) else {
        return Err(format!(
            "kernel {} with padding {} does not fit input {}x{}",
            c.kernel, c.padding, x[2], x[3]
        ));
    };
    Ok(vec![x[0], c.out_channels, h, w])
}

/// A value in the graph: the graph input, or the output of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ValueId {
    Input,
    Node(usize),
}

impl fmt::Display for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueId::Input => write!(f, "input"),
            ValueId::Node(i) => write!(f, "%{i}"),
        }
    }
}

/// One op applied to earlier values, with its inferred output shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<ValueId>,
    pub shape: Vec<usize>,
}

impl Node {
    /// Full parameter names and specs: `{node}.{suffix}`.
    pub fn params(&self) -> Vec<(String, ParamSpec)> {
        self.op
            .params()
            .into_iter()
            .map(|p| (format!("{}.{}", self.name, p.suffix), p))
            .collect()
    }
}

/// A checked, topologically ordered graph with one input and one output.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    name: String,
    input_shape: Vec<usize>,
    nodes: Vec<Node>,
    output: ValueId,
}

impl Graph {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn output(&self) -> ValueId {
        self.output
    }

    pub fn output_shape(&self) -> &[usize] {
        self.value_shape(self.output)
    }

    pub fn value_shape(&self, id: ValueId) -> &[usize] {
        match id {
            ValueId::Input => &self.input_shape,
            ValueId::Node(i) => &self.nodes[i].shape,
        }
    }

    /// Every parameter of the graph, in node order.
    pub fn params(&self) -> Vec<(String, ParamSpec)> {
        self.nodes.iter().flat_map(Node::params).collect()
    }

    /// The same graph for another input shape (batch or resolution), re-inferring every shape.
    pub fn with_input_shape(&self, input_shape: Vec<usize>) -> Result<Graph, GraphError> {
        let mut builder = GraphBuilder::new(&self.name, input_shape)?;
        for node in &self.nodes {
            builder.add(&node.name, node.op.clone(), &node.inputs)?;
        }
        Ok(builder.finish(self.output))
    }

    /// For each value, the index of the last node that reads it (the output lives to the end).
    pub fn last_uses(&self) -> Vec<(ValueId, usize)> {
        let mut last = std::collections::BTreeMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            for input in &node.inputs {
                last.insert(*input, i);
            }
        }
        last.insert(self.output, self.nodes.len());
        last.into_iter().collect()
    }
}

/// Builds a graph node by node, inferring and checking shapes as it goes.
pub struct GraphBuilder {
    graph: Graph,
    names: std::collections::HashSet<String>,
}

impl GraphBuilder {
    pub fn new(name: &str, input_shape: Vec<usize>) -> Result<Self, GraphError> {
        if input_shape.len() != 4 || input_shape.contains(&0) {
            return Err(GraphError::BadInput {
                graph: name.to_string(),
                shape: input_shape,
            });
        }
        Ok(Self {
            graph: Graph {
                name: name.to_string(),
                input_shape,
                nodes: Vec::new(),
                output: ValueId::Input,
            },
            names: Default::default(),
        })
    }

    /// Appends a node; returns the value it produces.
    pub fn add(&mut self, name: &str, op: Op, inputs: &[ValueId]) -> Result<ValueId, GraphError> {
        let graph = &self.graph;
        let mut shapes = Vec::with_capacity(inputs.len());
        for input in inputs {
            if let ValueId::Node(i) = input {
                if *i >= graph.nodes.len() {
                    return Err(GraphError::UndefinedValue {
                        graph: graph.name.clone(),
                        node: name.to_string(),
                        value: *i,
                    });
                }
            }
            shapes.push(graph.value_shape(*input));
        }
        let shape = op
            .infer_shape(&shapes)
            .map_err(|reason| GraphError::BadNode {
                graph: graph.name.clone(),
                node: name.to_string(),
                op: op.kind(),
                reason,
            })?;
        if !self.names.insert(name.to_string()) {
            return Err(GraphError::DuplicateName {
                graph: graph.name.clone(),
                node: name.to_string(),
            });
        }
        self.graph.nodes.push(Node {
            name: name.to_string(),
            op,
            inputs: inputs.to_vec(),
            shape,
        });
        Ok(ValueId::Node(self.graph.nodes.len() - 1))
    }

    /// The shape of a value added so far.
    pub fn shape(&self, value: ValueId) -> &[usize] {
        self.graph.value_shape(value)
    }

    pub fn finish(mut self, output: ValueId) -> Graph {
        self.graph.output = output;
        self.graph
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_contains;

    fn conv(cin: usize, cout: usize, k: usize, stride: usize, groups: usize) -> Op {
        Op::Conv2d(Conv2d {
            in_channels: cin,
            out_channels: cout,
            kernel: k,
            stride,
            padding: k / 2,
            groups,
            bias: false,
        })
    }

    #[test]
    fn conv_shapes_follow_pytorch() {
        let mut b = GraphBuilder::new("t", vec![1, 3, 224, 224]).unwrap();
        let x = b
            .add("stem", conv(3, 48, 3, 2, 1), &[ValueId::Input])
            .unwrap();
        let y = b.add("dw", conv(48, 48, 3, 2, 48), &[x]).unwrap();
        let g = b.finish(y);
        assert_eq!(g.value_shape(x), &[1, 48, 112, 112]);
        assert_eq!(g.output_shape(), &[1, 48, 56, 56]);
        // Odd input, stride 2: floor((7 + 2 - 3) / 2) + 1 = 4.
        let g7 = g.with_input_shape(vec![2, 3, 7, 7]).unwrap();
        assert_eq!(g7.value_shape(x), &[2, 48, 4, 4]);
        assert_eq!(g7.output_shape(), &[2, 48, 2, 2]);
    }

    #[test]
    fn an_impossible_graph_names_the_node() {
        let mut b = GraphBuilder::new("t", vec![1, 3, 8, 8]).unwrap();
        let err = b
            .add("stage1.0.conv", conv(4, 8, 3, 1, 1), &[ValueId::Input])
            .unwrap_err();
        let msg = err.to_string();
        assert_contains(&msg, &["stage1.0.conv", "3 channels"]);

        let err = b
            .add("bad_groups", conv(3, 8, 3, 1, 2), &[ValueId::Input])
            .unwrap_err();
        assert!(err.to_string().contains("groups 2"), "{err}");

        let x = b.add("a", Op::Relu, &[ValueId::Input]).unwrap();
        let pooled = b.add("p", Op::GlobalAvgPool, &[x]).unwrap();
        let err = b.add("sum", Op::Add, &[x, pooled]).unwrap_err();
        assert!(err.to_string().contains("differ in shape"), "{err}");
        let err = b.add("a", Op::Relu, &[x]).unwrap_err();
        assert_eq!(
            err,
            GraphError::DuplicateName {
                graph: "t".into(),
                node: "a".into()
            }
        );
        let err = b.add("late", Op::Relu, &[ValueId::Node(99)]).unwrap_err();
        assert!(matches!(err, GraphError::UndefinedValue { value: 99, .. }));
    }

    #[test]
    fn kernel_too_large_for_the_input_is_an_error() {
        let mut b = GraphBuilder::new("t", vec![1, 3, 2, 2]).unwrap();
        let err = b
            .add(
                "big",
                Op::Conv2d(Conv2d {
                    in_channels: 3,
                    out_channels: 3,
                    kernel: 7,
                    stride: 1,
                    padding: 0,
                    groups: 1,
                    bias: true,
                }),
                &[ValueId::Input],
            )
            .unwrap_err();
        assert!(err.to_string().contains("does not fit"), "{err}");
        assert!(GraphBuilder::new("t", vec![1, 3, 0, 4]).is_err());
    }

    #[test]
    fn params_are_named_after_their_node() {
        let mut b = GraphBuilder::new("t", vec![1, 4, 4, 4]).unwrap();
        let x = b
            .add(
                "bn",
                Op::BatchNorm(BatchNorm {
                    channels: 4,
                    eps: 1e-5,
                }),
                &[ValueId::Input],
            )
            .unwrap();
        let g = b.finish(x);
        let names: Vec<_> = g.params().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"]
        );
    }
}
