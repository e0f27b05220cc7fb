//! The exported protobuf decoded again: structure, names, shapes and weight bytes of every
//! model in both forms. (ONNX Runtime loading and running these files is tested with the
//! `ort` backend, which verifies every exported model against the reference.)

use std::collections::{BTreeMap, BTreeSet};

use prost::Message;

use super::proto::{self, ModelProto, TensorProto, ValueInfoProto};
use super::*;
use crate::{Form, InputSize, Model, Variant};

fn exported(model: Model, form: Form) -> (Graph, Weights<f32>, ModelProto) {
    let graph = model.build(form, InputSize::square(2, 64)).unwrap();
    let weights = model.seeded_weights(form, 3);
    let bytes = export(&graph, &weights, "test").unwrap();
    (
        graph,
        weights,
        ModelProto::decode(bytes.as_slice()).unwrap(),
    )
}

fn shape_of(info: &ValueInfoProto) -> Vec<usize> {
    let tensor = info.r#type.as_ref().unwrap().tensor_type.as_ref().unwrap();
    assert_eq!(tensor.elem_type, proto::FLOAT, "{}", info.name);
    let dims = &tensor.shape.as_ref().unwrap().dim;
    dims.iter().map(|d| d.dim_value as usize).collect()
}

fn floats(t: &TensorProto) -> Vec<f32> {
    assert_eq!(t.data_type, proto::FLOAT, "{}", t.name);
    let chunks = t.raw_data.chunks_exact(4);
    chunks
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// Every value a node reads is the input, an initializer or the output of an earlier node.
fn assert_topological(model: &ModelProto) {
    let g = model.graph.as_ref().unwrap();
    let mut defined: BTreeSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    defined.insert("input");
    for n in &g.node {
        for i in &n.input {
            assert!(
                defined.contains(i.as_str()),
                "node {} reads {i} before it is defined",
                n.name
            );
        }
        defined.extend(n.output.iter().map(String::as_str));
    }
    let output = &g.output[0].name;
    assert!(
        defined.contains(output.as_str()),
        "output {output} is never computed"
    );
}

#[test]
fn every_model_in_both_forms_keeps_its_nodes_shapes_and_weights() {
    for model in Model::all() {
        for form in [Form::Unfused, Form::Reparameterized] {
            let (graph, weights, onnx) = exported(model, form);
            assert_eq!(onnx.ir_version, 8);
            assert_eq!(onnx.opset_import[0].version, 17);
            assert_topological(&onnx);
            let g = onnx.graph.as_ref().unwrap();
            assert_eq!(
                shape_of(&g.input[0]),
                graph.input_shape(),
                "{}",
                graph.name()
            );
            assert_eq!(
                shape_of(&g.output[0]),
                graph.output_shape(),
                "{}",
                graph.name()
            );
            let outputs: BTreeSet<&str> = g
                .node
                .iter()
                .flat_map(|n| &n.output)
                .map(String::as_str)
                .collect();
            let infos: BTreeMap<&str, Vec<usize>> = g
                .value_info
                .iter()
                .map(|v| (v.name.as_str(), shape_of(v)))
                .collect();
            for node in graph.nodes() {
                assert!(
                    outputs.contains(node.name.as_str()),
                    "{} not computed",
                    node.name
                );
                if g.output[0].name != node.name {
                    assert_eq!(infos[node.name.as_str()], node.shape, "{}", node.name);
                }
            }
            let inits: BTreeMap<&str, &TensorProto> =
                g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
            for (name, tensor) in weights.iter() {
                let t = inits[name.as_str()];
                let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
                assert_eq!(dims, tensor.shape(), "{name}");
                assert_eq!(floats(t), tensor.data(), "{name}");
            }
        }
    }
}

#[test]
fn every_ir_op_maps_to_its_onnx_ops() {
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for model in Model::all() {
        for form in [Form::Unfused, Form::Reparameterized] {
            let (graph, _, onnx) = exported(model, form);
            let by_name: BTreeMap<&str, &str> = onnx
                .graph
                .as_ref()
                .unwrap()
                .node
                .iter()
                .map(|n| (n.name.as_str(), n.op_type.as_str()))
                .collect();
            for node in graph.nodes() {
                used.entry(node.op.kind().to_string())
                    .or_default()
                    .insert(by_name[node.name.as_str()].to_string());
            }
        }
    }
    // The op of the node that writes each IR node's value (the last of a decomposition).
    let expected = [
        ("add", "Sum"),
        ("batch_norm", "BatchNormalization"),
        ("channel_add", "Add"),
        ("channel_mul", "Mul"),
        ("channel_shuffle", "Reshape"),
        ("concat", "Concat"),
        ("conv2d", "Conv"),
        ("conv2d_depthwise", "Conv"),
        ("conv2d_pointwise", "Conv"),
        ("flatten", "Flatten"),
        ("gelu", "Mul"),
        ("global_avg_pool", "GlobalAveragePool"),
        ("hard_sigmoid", "HardSigmoid"),
        ("hard_swish", "HardSwish"),
        ("linear", "Gemm"),
        ("max", "Max"),
        ("max_pool", "MaxPool"),
        ("relu", "Relu"),
        ("relu6", "Clip"),
        ("sigmoid", "Sigmoid"),
        ("silu", "Mul"),
        ("slice", "Slice"),
    ];
    let expected: BTreeMap<String, BTreeSet<String>> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), BTreeSet::from([v.to_string()])))
        .collect();
    assert_eq!(used, expected, "every IR op kind, each in some zoo model");
}

#[test]
fn conv_attributes_and_the_channel_shuffle_shapes_are_written() {
    let (_, _, onnx) = exported(Model::ShuffleNetV2x2, Form::Unfused);
    let g = onnx.graph.unwrap();
    let conv = g.node.iter().find(|n| n.op_type == "Conv").unwrap();
    let attr = |n: &str| conv.attribute.iter().find(|a| a.name == n).unwrap().clone();
    assert_eq!(attr("kernel_shape").ints, [3, 3]);
    assert_eq!(attr("strides").ints, [2, 2]);
    assert_eq!(attr("pads").ints, [1, 1, 1, 1]);
    assert_eq!(attr("group").i, 1);
    let reshape = g.node.iter().find(|n| n.op_type == "Reshape").unwrap();
    let shape = g
        .initializer
        .iter()
        .find(|t| t.name == reshape.input[1])
        .unwrap();
    let values: Vec<i64> = shape
        .raw_data
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(shape.data_type, proto::INT64);
    assert_eq!(values[..3], [0, 2, values[2]], "batch free, 2 groups");
}

#[test]
fn weights_that_do_not_fit_the_graph_are_refused() {
    let model = Model::all()[0];
    let graph = model
        .build(Form::Unfused, InputSize::square(1, 64))
        .unwrap();
    let mut weights = model.seeded_weights(Form::Unfused, 0);
    let (name, _) = graph.params().into_iter().next().unwrap();
    weights.remove(&name);
    let err = export(&graph, &weights, "test").unwrap_err().to_string();
    crate::testing::assert_contains(&err, &["missing tensor", &name]);
}

#[test]
fn an_int8_model_is_written_as_qdq_with_int8_weights_and_every_value_quantized() {
    use crate::quantize::ValueRanges;
    use crate::quantized::{QuantizedModel, QuantizedOp};
    let model = Model::MobileOne(Variant::S0);
    let graph = model
        .build(Form::Reparameterized, InputSize::square(1, 32))
        .unwrap();
    let weights = model.seeded_weights(Form::Reparameterized, 0);
    let mut ranges = ValueRanges::new(graph.nodes().len());
    ranges.input.observe([-2.0, 2.0]);
    for (range, node) in ranges.nodes.iter_mut().zip(graph.nodes()) {
        let low = if matches!(node.op, Op::Relu) {
            0.0
        } else {
            -3.0
        };
        range.observe([low, 3.0]);
    }
    let quantized = QuantizedModel::new(&graph, &weights, &ranges).unwrap();
    let bytes = super::export_quantized(&quantized, "test").unwrap();
    let onnx = ModelProto::decode(bytes.as_slice()).unwrap();
    let g = onnx.graph.unwrap();
    let count = |op: &str| g.node.iter().filter(|n| n.op_type == op).count();
    let fused = quantized
        .ops
        .iter()
        .filter(|o| **o == QuantizedOp::Fused)
        .count();
    let convs = graph
        .nodes()
        .iter()
        .filter(|n| matches!(n.op, Op::Conv2d(_)))
        .count();
    assert!(fused > 10 && convs > 10);
    // A pair per value (the input, and every node not followed by a fused activation).
    assert_eq!(count("QuantizeLinear"), 1 + graph.nodes().len() - fused);
    // Per conv and the classifier: weight and bias dequantized.
    assert_eq!(
        count("DequantizeLinear"),
        count("QuantizeLinear") + 2 * (convs + 1)
    );
    assert_eq!(
        (count("Conv"), count("Gemm"), count("Relu")),
        (convs, 1, fused)
    );
    // Each Conv is followed directly by its ReLU: no pair between.
    for relu in g.node.iter().filter(|n| n.op_type == "Relu") {
        let producer = g
            .node
            .iter()
            .find(|n| n.output[0] == relu.input[0])
            .unwrap();
        assert_eq!(producer.op_type, "Conv", "{relu:?}");
    }
    let weight = g
        .initializer
        .iter()
        .find(|t| t.name == "stage0.reparam_conv.weight/q")
        .unwrap();
    assert_eq!(
        (weight.data_type, weight.dims.as_slice()),
        (proto::INT8, &[48i64, 3, 3, 3][..])
    );
    let bias = g
        .initializer
        .iter()
        .find(|t| t.name == "stage0.reparam_conv.bias/q")
        .unwrap();
    assert_eq!(
        (bias.data_type, bias.raw_data.len()),
        (proto::INT32, 48 * 4)
    );
    let QuantizedOp::Gemm { weights: w, .. } = &quantized.ops[0] else {
        panic!("{:?}", quantized.ops[0]);
    };
    assert_eq!(
        weight.raw_data,
        w.iter().map(|&v| v as u8).collect::<Vec<_>>()
    );
}
