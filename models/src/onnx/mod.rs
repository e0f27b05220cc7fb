//! ONNX export: a graph and its weights written as a standard ONNX model (opset 17, IR
//! version 8) that ONNX Runtime, OpenVINO and Netron open. Every IR op maps to ONNX ops of
//! the same semantics (a few become two to five nodes, e.g. `Gelu` as its erf formula, since
//! opset 17 has no Gelu); weights are float32 initializers named as in the graph's weights.

pub mod proto;
mod qdq;

pub use qdq::export_quantized;

use std::collections::BTreeSet;

use prost::Message;
use proto::{
    AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TensorTypeProto, TypeProto, ValueInfoProto,
};

use crate::graph::{Graph, Node, Op, ValueId};
use crate::weights::{Weights, WeightsError};

/// The opset every exported model imports (the default domain only).
pub const OPSET: i64 = 17;
/// The ONNX IR version that goes with opset 17.
pub const IR_VERSION: i64 = 8;
/// A protobuf message cannot exceed 2 GiB; ONNX puts larger weights in external files, which
/// this exporter does not write.
const MAX_MODEL_BYTES: usize = (1 << 31) - 1;

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("graph `{graph}` cannot be written as ONNX: {reason}")]
    Unexportable { graph: String, reason: String },
}

/// The graph with these weights (checked against it first) as the bytes of an `.onnx` file.
/// The graph input is called `input`; every other value, the output included, has the name of
/// the node that computes it.
pub fn export(
    graph: &Graph,
    weights: &Weights<f32>,
    producer_version: &str,
) -> Result<Vec<u8>, OnnxError> {
    weights.validate(graph, "the weights to export")?;
    let mut writer = Writer {
        graph,
        weights,
        nodes: Vec::new(),
        initializers: Vec::new(),
    };
    for node in graph.nodes() {
        writer.op(node);
    }
    let model = writer.finish(producer_version)?;
    if model.encoded_len() > MAX_MODEL_BYTES {
        return Err(unexportable(
            graph,
            format!(
                "the model is {} bytes, over protobuf's 2 GiB limit (external weights are not written)",
                model.encoded_len()
            ),
        ));
    }
    Ok(model.encode_to_vec())
}

fn unexportable(graph: &Graph, reason: String) -> OnnxError {
    OnnxError::Unexportable {
        graph: graph.name().to_string(),
        reason,
    }
}

struct Writer<'a> {
    graph: &'a Graph,
    weights: &'a Weights<f32>,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl Writer<'_> {
    fn value(&self, id: ValueId) -> String {
        match id {
            ValueId::Input => "input".to_string(),
            ValueId::Node(i) => self.graph.nodes()[i].name.clone(),
        }
    }

    /// One ONNX node; its name is its output's.
    fn node(
        &mut self,
        op_type: &str,
        inputs: Vec<String>,
        output: &str,
        attribute: Vec<AttributeProto>,
    ) {
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![output.to_string()],
            name: output.to_string(),
            op_type: op_type.to_string(),
            attribute,
        });
    }

    /// The node's inputs followed by its parameters (as initializers), in the op's order.
    fn inputs_and_params(&mut self, node: &Node) -> Vec<String> {
        let mut inputs: Vec<String> = node.inputs.iter().map(|&v| self.value(v)).collect();
        for (name, _) in node.params() {
            let tensor = self
                .weights
                .get(&name)
                .expect("validated against the graph");
            let dims = tensor.shape().iter().map(|&d| d as i64).collect();
            let raw = tensor.data().iter().flat_map(|v| v.to_le_bytes()).collect();
            self.initializers
                .push(initializer(&name, dims, proto::FLOAT, raw));
            inputs.push(name);
        }
        inputs
    }

    /// A constant initializer `{node}/{part}` of int64 values (a 1-D tensor).
    fn int64s(&mut self, node: &Node, part: &str, values: &[i64]) -> String {
        let name = format!("{}/{part}", node.name);
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers.push(initializer(
            &name,
            vec![values.len() as i64],
            proto::INT64,
            raw,
        ));
        name
    }

    /// A constant float32 scalar initializer `{node}/{part}`.
    fn scalar(&mut self, node: &Node, part: &str, value: f32) -> String {
        let name = format!("{}/{part}", node.name);
        let raw = value.to_le_bytes().to_vec();
        self.initializers
            .push(initializer(&name, Vec::new(), proto::FLOAT, raw));
        name
    }

    fn op(&mut self, node: &Node) {
        let out = node.name.as_str();
        let inputs = self.inputs_and_params(node);
        match &node.op {
            Op::Conv2d(c) => self.node("Conv", inputs, out, conv_attributes(c)),
            Op::BatchNorm(b) => self.node(
                "BatchNormalization",
                inputs,
                out,
                vec![float("epsilon", b.eps as f32)],
            ),
            Op::MaxPool2d(m) => {
                let (k, s, p) = (m.kernel as i64, m.stride as i64, m.padding as i64);
                let attrs = vec![
                    ints("kernel_shape", &[k, k]),
                    ints("strides", &[s, s]),
                    ints("pads", &[p, p, p, p]),
                ];
                self.node("MaxPool", inputs, out, attrs);
            }
            Op::Linear(_) => self.node("Gemm", inputs, out, vec![int("transB", 1)]),
            Op::Concat => self.node("Concat", inputs, out, vec![int("axis", 1)]),
            Op::Flatten => self.node("Flatten", inputs, out, vec![int("axis", 1)]),
            Op::Relu6 => {
                let lo = self.scalar(node, "min", 0.0);
                let hi = self.scalar(node, "max", 6.0);
                self.node("Clip", vec![inputs[0].clone(), lo, hi], out, Vec::new());
            }
            Op::HardSigmoid => {
                let attrs = vec![float("alpha", 1.0 / 6.0), float("beta", 0.5)];
                self.node("HardSigmoid", inputs, out, attrs);
            }
            Op::Silu => {
                let sigmoid = format!("{out}/sigmoid");
                self.node("Sigmoid", inputs.clone(), &sigmoid, Vec::new());
                self.node("Mul", vec![inputs[0].clone(), sigmoid], out, Vec::new());
            }
            Op::Gelu => self.gelu(node, &inputs[0]),
            Op::Slice { start, end } => {
                let starts = self.int64s(node, "starts", &[*start as i64]);
                let ends = self.int64s(node, "ends", &[*end as i64]);
                let axes = self.int64s(node, "axes", &[1]);
                self.node(
                    "Slice",
                    vec![inputs[0].clone(), starts, ends, axes],
                    out,
                    Vec::new(),
                );
            }
            Op::ChannelShuffle { groups } => self.channel_shuffle(node, &inputs[0], *groups),
            other => {
                let op_type = match other {
                    Op::Relu => "Relu",
                    Op::Sigmoid => "Sigmoid",
                    Op::HardSwish => "HardSwish",
                    Op::Add => "Sum",
                    Op::Max => "Max",
                    Op::GlobalAvgPool => "GlobalAveragePool",
                    Op::ChannelMul => "Mul",
                    Op::ChannelAdd => "Add",
                    _ => unreachable!("every other op has its own arm above"),
                };
                self.node(op_type, inputs, out, Vec::new());
            }
        }
    }

    /// x * 0.5 * (1 + erf(x / sqrt(2))): the exact form, as PyTorch's default `gelu`.
    fn gelu(&mut self, node: &Node, x: &str) {
        let out = node.name.as_str();
        let sqrt2 = self.scalar(node, "sqrt2", std::f32::consts::SQRT_2);
        let one = self.scalar(node, "one", 1.0);
        let half = self.scalar(node, "half", 0.5);
        let [scaled, erf, shifted, product] =
            ["scaled", "erf", "shifted", "product"].map(|p| format!("{out}/{p}"));
        self.node("Div", vec![x.into(), sqrt2], &scaled, Vec::new());
        self.node("Erf", vec![scaled], &erf, Vec::new());
        self.node("Add", vec![erf, one], &shifted, Vec::new());
        self.node("Mul", vec![x.into(), shifted], &product, Vec::new());
        self.node("Mul", vec![product, half], out, Vec::new());
    }

    /// [N, C, H, W] viewed as [N, g, C/g, H, W], the two channel axes swapped, flattened back.
    fn channel_shuffle(&mut self, node: &Node, x: &str, groups: usize) {
        let out = node.name.as_str();
        let shape: Vec<i64> = node.shape.iter().map(|&d| d as i64).collect();
        let (c, g) = (shape[1], groups as i64);
        // 0 in a Reshape's shape copies the input's size: the batch stays free.
        let grouped = self.int64s(node, "grouped_shape", &[0, g, c / g, shape[2], shape[3]]);
        let flat = self.int64s(node, "shape", &[0, c, shape[2], shape[3]]);
        let [split, swapped] = ["split", "swapped"].map(|p| format!("{out}/{p}"));
        self.node("Reshape", vec![x.into(), grouped], &split, Vec::new());
        self.node(
            "Transpose",
            vec![split],
            &swapped,
            vec![ints("perm", &[0, 2, 1, 3, 4])],
        );
        self.node("Reshape", vec![swapped, flat], out, Vec::new());
    }

    fn finish(self, producer_version: &str) -> Result<ModelProto, OnnxError> {
        let graph = self.graph;
        let mut names = BTreeSet::from(["input".to_string()]);
        let defined = self.nodes.iter().flat_map(|n| &n.output);
        for name in defined.chain(self.initializers.iter().map(|t| &t.name)) {
            if !names.insert(name.clone()) {
                return Err(unexportable(
                    graph,
                    format!("the value name `{name}` would be defined twice"),
                ));
            }
        }
        if graph.output() == ValueId::Input {
            return Err(unexportable(graph, "its output is its input".into()));
        }
        let output = self.value(graph.output());
        let intermediates = graph
            .nodes()
            .iter()
            .filter(|n| n.name != output)
            .map(|n| value_info(&n.name, &n.shape))
            .collect();
        let onnx_graph = GraphProto {
            node: self.nodes,
            name: graph.name().to_string(),
            initializer: self.initializers,
            input: vec![value_info("input", graph.input_shape())],
            output: vec![value_info(&output, graph.output_shape())],
            value_info: intermediates,
        };
        Ok(ModelProto {
            ir_version: IR_VERSION,
            producer_name: "onebench".into(),
            producer_version: producer_version.into(),
            doc_string: format!("{}, exported by onebench", graph.name()),
            graph: Some(onnx_graph),
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
        })
    }
}

fn initializer(name: &str, dims: Vec<i64>, data_type: i32, raw_data: Vec<u8>) -> TensorProto {
    TensorProto {
        dims,
        data_type,
        name: name.to_string(),
        raw_data,
    }
}

fn value_info(name: &str, shape: &[usize]) -> ValueInfoProto {
    let dim = shape
        .iter()
        .map(|&d| Dimension {
            dim_value: d as i64,
        })
        .collect();
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: proto::FLOAT,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

/// A Conv node's attributes: square kernel, stride and symmetric padding, groups.
fn conv_attributes(c: &crate::graph::Conv2d) -> Vec<AttributeProto> {
    let (k, s, p) = (c.kernel as i64, c.stride as i64, c.padding as i64);
    vec![
        ints("kernel_shape", &[k, k]),
        ints("strides", &[s, s]),
        ints("pads", &[p, p, p, p]),
        int("group", c.groups as i64),
    ]
}

fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i,
        r#type: proto::ATTR_INT,
        ..Default::default()
    }
}

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: values.to_vec(),
        r#type: proto::ATTR_INTS,
        ..Default::default()
    }
}

fn float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f,
        r#type: proto::ATTR_FLOAT,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
