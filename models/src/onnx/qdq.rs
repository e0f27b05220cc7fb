//! ONNX export of an int8 model in the QDQ form that ONNX Runtime and OpenVINO quantize from:
//! every value a uint8 QuantizeLinear/DequantizeLinear pair with the model's scale and zero
//! point; conv, linear and unfolded batch-norm weights int8 per output channel (axis 0) and
//! biases int32 at input scale x weight scale, each behind a DequantizeLinear; the float op
//! between. A ReLU or ReLU6 fused into its producer follows the producer without a pair
//! between (Conv, Relu, QuantizeLinear: the pattern runtimes fuse into one int8 kernel).

use super::proto::{self, TensorProto};
use super::{conv_attributes, float, initializer, int, ints, unexportable, OnnxError, Writer};
use crate::graph::{Node, Op, ValueId};
use crate::quantize::ActivationQuant;
use crate::quantized::{QuantizedModel, QuantizedOp};
use crate::weights::Weights;

/// The model as the bytes of a QDQ `.onnx` file: float input `input`, float output named as
/// the graph's output node.
pub fn export_quantized(
    model: &QuantizedModel,
    producer_version: &str,
) -> Result<Vec<u8>, OnnxError> {
    let empty = Weights::new();
    let mut q = QdqWriter {
        model,
        writer: Writer {
            graph: &model.graph,
            weights: &empty,
            nodes: Vec::new(),
            initializers: Vec::new(),
        },
    };
    q.pair("input", "input/dq", model.input);
    for (i, node) in model.graph.nodes().iter().enumerate() {
        q.node(i, node)?;
    }
    let onnx = q.writer.finish(producer_version)?;
    Ok(prost::Message::encode_to_vec(&onnx))
}

struct QdqWriter<'a> {
    model: &'a QuantizedModel,
    writer: Writer<'a>,
}

impl QdqWriter<'_> {
    /// The float name consumers read a value by.
    fn value(&self, v: ValueId) -> String {
        match v {
            ValueId::Input => "input/dq".into(),
            ValueId::Node(i) => self.model.graph.nodes()[i].name.clone(),
        }
    }

    fn push(
        &mut self,
        op_type: &str,
        inputs: Vec<String>,
        output: &str,
        attribute: Vec<proto::AttributeProto>,
    ) {
        self.writer.node(op_type, inputs, output, attribute);
    }

    fn add_initializer(&mut self, tensor: TensorProto) -> String {
        let name = tensor.name.clone();
        self.writer.initializers.push(tensor);
        name
    }

    /// `from` quantized with `quant` and dequantized into `to`.
    fn pair(&mut self, from: &str, to: &str, quant: ActivationQuant) {
        let scale = self.add_initializer(initializer(
            &format!("{to}/scale"),
            Vec::new(),
            proto::FLOAT,
            quant.scale.to_le_bytes().to_vec(),
        ));
        let zero = self.add_initializer(initializer(
            &format!("{to}/zero_point"),
            Vec::new(),
            proto::UINT8,
            vec![quant.zero_point],
        ));
        let codes = format!("{to}/q");
        self.push(
            "QuantizeLinear",
            vec![from.into(), scale.clone(), zero.clone()],
            &codes,
            Vec::new(),
        );
        self.push("DequantizeLinear", vec![codes, scale, zero], to, Vec::new());
    }

    /// Whether node i's output is read only by a ReLU/ReLU6 fused into it.
    fn fused_consumer(&self, i: usize) -> bool {
        let nodes = self.model.graph.nodes();
        (i + 1..nodes.len()).any(|j| {
            self.model.ops[j] == QuantizedOp::Fused && nodes[j].inputs[0] == ValueId::Node(i)
        })
    }

    /// Node i: its float op into `{name}/float` then a pair into `{name}`, or straight into
    /// `{name}` when a fused activation follows (which then adds the pair).
    fn node(&mut self, i: usize, node: &Node) -> Result<(), OnnxError> {
        let name = node.name.clone();
        let fused_next = self.fused_consumer(i);
        let float_out = if fused_next {
            name.clone()
        } else {
            format!("{name}/float")
        };
        let inputs: Vec<String> = node.inputs.iter().map(|&v| self.value(v)).collect();
        match (&self.model.ops[i], &node.op) {
            (QuantizedOp::Gemm { .. }, _) => self.gemm(i, node, &inputs[0], &float_out)?,
            (QuantizedOp::Fused, Op::Relu) => self.push("Relu", inputs, &float_out, Vec::new()),
            (QuantizedOp::Fused, Op::Relu6) | (QuantizedOp::Table(_), Op::Relu6) => {
                let lo = self.scalar(&name, "min", 0.0);
                let hi = self.scalar(&name, "max", 6.0);
                self.push(
                    "Clip",
                    vec![inputs[0].clone(), lo, hi],
                    &float_out,
                    Vec::new(),
                );
            }
            (_, Op::Flatten) => self.push("Flatten", inputs, &float_out, vec![int("axis", 1)]),
            (_, Op::HardSigmoid) => {
                let attrs = vec![float("alpha", 1.0 / 6.0), float("beta", 0.5)];
                self.push("HardSigmoid", inputs, &float_out, attrs);
            }
            (_, Op::Silu) => {
                let sigmoid = format!("{name}/sigmoid");
                self.push("Sigmoid", inputs.clone(), &sigmoid, Vec::new());
                self.push(
                    "Mul",
                    vec![inputs[0].clone(), sigmoid],
                    &float_out,
                    Vec::new(),
                );
            }
            (_, op) => {
                let op_type = match op {
                    Op::Relu => "Relu",
                    Op::Sigmoid => "Sigmoid",
                    Op::HardSwish => "HardSwish",
                    Op::Add => "Sum",
                    Op::GlobalAvgPool => "GlobalAveragePool",
                    Op::ChannelMul => "Mul",
                    other => {
                        let reason =
                            format!("node `{name}` ({}) has no QDQ form here", other.kind());
                        return Err(unexportable(&self.model.graph, reason));
                    }
                };
                self.push(op_type, inputs, &float_out, Vec::new());
            }
        }
        if !fused_next {
            self.pair(&float_out, &name, self.model.values[i]);
        }
        Ok(())
    }

    fn scalar(&mut self, name: &str, part: &str, value: f32) -> String {
        self.add_initializer(initializer(
            &format!("{name}/{part}"),
            Vec::new(),
            proto::FLOAT,
            value.to_le_bytes().to_vec(),
        ))
    }

    /// Conv, linear (Gemm with transB) or batch norm (a per-channel 1x1 depthwise Conv) on
    /// dequantized int8 weights and int32 biases.
    fn gemm(&mut self, i: usize, node: &Node, x: &str, out: &str) -> Result<(), OnnxError> {
        let QuantizedOp::Gemm {
            weights,
            weight_scales,
            bias,
            ..
        } = &self.model.ops[i]
        else {
            unreachable!("called for Gemm ops only");
        };
        let channels = weight_scales.len();
        let input_scale = self.model.quant(node.inputs[0]).scale;
        let dims: Vec<i64> = match &node.op {
            Op::BatchNorm(_) => vec![channels as i64, 1, 1, 1],
            Op::Linear(l) => vec![l.out_features as i64, l.in_features as i64],
            Op::Conv2d(c) => c.weight_shape().iter().map(|&d| d as i64).collect(),
            other => {
                let reason = format!("node `{}` ({}) is not conv-like", node.name, other.kind());
                return Err(unexportable(&self.model.graph, reason));
            }
        };
        let w = self.dequantized(
            &format!("{}.weight", node.name),
            dims,
            proto::INT8,
            weights.iter().map(|&v| v as u8).collect(),
            weight_scales.clone(),
            true,
        );
        let bias_scales: Vec<f32> = weight_scales.iter().map(|&s| input_scale * s).collect();
        let b = self.dequantized(
            &format!("{}.bias", node.name),
            vec![channels as i64],
            proto::INT32,
            bias.iter().flat_map(|v| v.to_le_bytes()).collect(),
            bias_scales,
            false,
        );
        let inputs = vec![x.to_string(), w, b];
        match &node.op {
            Op::Linear(_) => self.push("Gemm", inputs, out, vec![int("transB", 1)]),
            Op::Conv2d(c) => self.push("Conv", inputs, out, conv_attributes(c)),
            _ => {
                let attrs = vec![ints("kernel_shape", &[1, 1]), int("group", channels as i64)];
                self.push("Conv", inputs, out, attrs);
            }
        }
        Ok(())
    }

    /// A quantized constant `{name}/q` dequantized per channel (axis 0) into `{name}`; int8
    /// weights get explicit zero points (0), int32 biases none (0 by default).
    fn dequantized(
        &mut self,
        name: &str,
        dims: Vec<i64>,
        data_type: i32,
        raw: Vec<u8>,
        scales: Vec<f32>,
        zero_points: bool,
    ) -> String {
        let channels = scales.len() as i64;
        let codes = self.add_initializer(initializer(&format!("{name}/q"), dims, data_type, raw));
        let scale = self.add_initializer(initializer(
            &format!("{name}/scale"),
            vec![channels],
            proto::FLOAT,
            scales.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
        let mut inputs = vec![codes, scale];
        if zero_points {
            let zero = initializer(
                &format!("{name}/zero_point"),
                vec![channels],
                proto::INT8,
                vec![0; channels as usize],
            );
            inputs.push(self.add_initializer(zero));
        }
        self.push("DequantizeLinear", inputs, name, vec![int("axis", 0)]);
        name.to_string()
    }
}
