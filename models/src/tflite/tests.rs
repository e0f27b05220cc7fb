//! The written flatbuffer read back by a small independent reader (offsets by hand, as the
//! format defines them): structure, shapes, weight bytes and layouts of every model in both
//! forms. (LiteRT loading and running these files is tested with the `litert` backend, which
//! verifies every exported model against the reference.)

use std::collections::BTreeSet;

use super::schema::{op, slot};
use super::*;
use crate::graph::GraphBuilder;
use crate::{Form, InputSize, Model};

/// A table of a flatbuffer: where it starts in the bytes.
#[derive(Clone, Copy)]
struct Table<'a> {
    bytes: &'a [u8],
    at: usize,
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

impl<'a> Table<'a> {
    fn root(bytes: &'a [u8]) -> Self {
        Table {
            bytes,
            at: u32_at(bytes, 0) as usize,
        }
    }

    /// Where field `slot` lies, if the table has it.
    fn field(&self, slot: u16) -> Option<usize> {
        let vtable = (self.at as i64
            - i32::from_le_bytes(self.bytes[self.at..self.at + 4].try_into().unwrap()) as i64)
            as usize;
        let len = u16::from_le_bytes(self.bytes[vtable..vtable + 2].try_into().unwrap());
        let entry = 4 + 2 * slot as usize;
        if entry + 2 > len as usize {
            return None;
        }
        let off = u16::from_le_bytes(
            self.bytes[vtable + entry..vtable + entry + 2]
                .try_into()
                .unwrap(),
        );
        (off != 0).then_some(self.at + off as usize)
    }

    fn scalar<const N: usize>(&self, slot: u16) -> Option<[u8; N]> {
        self.field(slot)
            .map(|at| self.bytes[at..at + N].try_into().unwrap())
    }

    fn int(&self, slot: u16, default: i32) -> i32 {
        self.scalar::<4>(slot).map_or(default, i32::from_le_bytes)
    }

    fn byte(&self, slot: u16) -> i8 {
        self.scalar::<1>(slot).map_or(0, |b| b[0] as i8)
    }

    fn target(&self, slot: u16) -> Option<usize> {
        self.field(slot)
            .map(|at| at + u32_at(self.bytes, at) as usize)
    }

    fn table(&self, slot: u16) -> Option<Table<'a>> {
        self.target(slot).map(|at| Table {
            bytes: self.bytes,
            at,
        })
    }

    /// A vector field: where its elements start and how many there are.
    fn vector(&self, slot: u16) -> (usize, usize) {
        self.target(slot)
            .map_or((0, 0), |at| (at + 4, u32_at(self.bytes, at) as usize))
    }

    fn tables(&self, slot: u16) -> Vec<Table<'a>> {
        let (start, len) = self.vector(slot);
        (0..len)
            .map(|i| {
                let at = start + 4 * i;
                Table {
                    bytes: self.bytes,
                    at: at + u32_at(self.bytes, at) as usize,
                }
            })
            .collect()
    }

    fn ints(&self, slot: u16) -> Vec<i32> {
        let (start, len) = self.vector(slot);
        (0..len)
            .map(|i| u32_at(self.bytes, start + 4 * i) as i32)
            .collect()
    }

    fn string(&self, slot: u16) -> String {
        let (start, len) = self.vector(slot);
        String::from_utf8(self.bytes[start..start + len].to_vec()).unwrap()
    }
}

/// A tensor read back: name, shape, type, and for a constant where its data starts and the data.
type ReadTensor = (String, Vec<i32>, i8, Option<(usize, Vec<u8>)>);
/// An operator read back: op code, inputs, outputs, options table.
type ReadOperator = (i32, Vec<i32>, Vec<i32>, Option<Table<'static>>);

struct Read {
    codes: Vec<i32>,
    tensors: Vec<ReadTensor>,
    operators: Vec<ReadOperator>,
    inputs: Vec<i32>,
    outputs: Vec<i32>,
    signature: (String, String, String),
}

fn read(bytes: &'static [u8]) -> Read {
    assert_eq!(&bytes[4..8], b"TFL3");
    let model = Table::root(bytes);
    assert_eq!(model.int(slot::MODEL_VERSION, 0), 3);
    let codes = model
        .tables(slot::MODEL_OPERATOR_CODES)
        .into_iter()
        .map(|c| {
            let code = c.int(slot::OPERATOR_CODE_BUILTIN, 0);
            assert_eq!(
                c.byte(slot::OPERATOR_CODE_DEPRECATED_BUILTIN) as i32,
                code.min(127)
            );
            code
        });
    let codes: Vec<i32> = codes.collect();
    let buffers = model.tables(slot::MODEL_BUFFERS);
    assert_eq!(
        buffers[0].vector(slot::BUFFER_DATA).1,
        0,
        "buffer 0 is empty"
    );
    let subgraphs = model.tables(slot::MODEL_SUBGRAPHS);
    assert_eq!(subgraphs.len(), 1);
    let g = subgraphs[0];
    let tensors = g.tables(slot::SUBGRAPH_TENSORS).into_iter().map(|t| {
        let buffer = t.int(slot::TENSOR_BUFFER, 0) as usize;
        let data = (buffer != 0).then(|| {
            let (start, len) = buffers[buffer].vector(slot::BUFFER_DATA);
            (start, bytes[start..start + len].to_vec())
        });
        (
            t.string(slot::TENSOR_NAME),
            t.ints(slot::TENSOR_SHAPE),
            t.byte(slot::TENSOR_TYPE),
            data,
        )
    });
    let tensors = tensors.collect();
    let operators = g.tables(slot::SUBGRAPH_OPERATORS).into_iter().map(|o| {
        let code = codes[o.int(slot::OPERATOR_OPCODE_INDEX, 0) as usize];
        let options = o.table(slot::OPERATOR_OPTIONS);
        (
            code,
            o.ints(slot::OPERATOR_INPUTS),
            o.ints(slot::OPERATOR_OUTPUTS),
            options,
        )
    });
    let operators = operators.collect();
    let sig = model.tables(slot::MODEL_SIGNATURE_DEFS)[0];
    let map = |s| {
        let m = sig.tables(s)[0];
        (
            m.string(slot::TENSOR_MAP_NAME),
            m.int(slot::TENSOR_MAP_TENSOR_INDEX, -1),
        )
    };
    let (input_name, input) = map(slot::SIGNATURE_INPUTS);
    let (output_name, output) = map(slot::SIGNATURE_OUTPUTS);
    assert_eq!(
        (vec![input], vec![output]),
        (
            g.ints(slot::SUBGRAPH_INPUTS),
            g.ints(slot::SUBGRAPH_OUTPUTS)
        )
    );
    Read {
        codes,
        tensors,
        operators,
        inputs: g.ints(slot::SUBGRAPH_INPUTS),
        outputs: g.ints(slot::SUBGRAPH_OUTPUTS),
        signature: (sig.string(slot::SIGNATURE_KEY), input_name, output_name),
    }
}

fn exported(graph: &Graph, weights: &Weights<f32>) -> Read {
    let bytes = export(graph, weights, "test").unwrap();
    read(Box::leak(bytes.into_boxed_slice()))
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// Every tensor an operator reads is the input, a constant or written by an earlier operator;
/// constants hold exactly their shape's bytes, 16-byte aligned.
fn assert_well_formed(r: &Read, name: &str) {
    let mut defined: BTreeSet<i32> = r.inputs.iter().copied().collect();
    for (i, (_, shape, ty, data)) in r.tensors.iter().enumerate() {
        if let Some((start, bytes)) = data {
            defined.insert(i as i32);
            assert!(*ty == schema::FLOAT32 || *ty == schema::INT32);
            let numel: i32 = shape.iter().product();
            assert_eq!(bytes.len(), 4 * numel as usize, "{name}: tensor {i}");
            assert_eq!(start % 16, 0, "{name}: tensor {i} data is aligned");
        }
    }
    for (code, inputs, outputs, _) in &r.operators {
        for i in inputs.iter().filter(|&&i| i >= 0) {
            assert!(
                defined.contains(i),
                "{name}: op {code} reads tensor {i} before it is written"
            );
        }
        defined.extend(outputs);
    }
    assert!(
        defined.contains(&r.outputs[0]),
        "{name}: output never written"
    );
    assert_eq!(
        r.signature,
        (SIGNATURE_KEY.to_string(), "input".into(), "output".into())
    );
}

#[test]
fn every_model_in_both_forms_is_a_well_formed_nhwc_model() {
    for model in Model::all() {
        for form in [Form::Unfused, Form::Reparameterized] {
            let size = InputSize::square(2, 64);
            let graph = model.build(form, size).unwrap();
            let weights = model.seeded_weights(form, 3);
            let r = exported(&graph, &weights);
            let name = graph.name();
            assert_well_formed(&r, name);
            let (_, input_shape, ..) = &r.tensors[r.inputs[0] as usize];
            assert_eq!(
                *input_shape,
                dims(graph.input_shape()),
                "{name}: NCHW input"
            );
            let (_, output_shape, ..) = &r.tensors[r.outputs[0] as usize];
            assert_eq!(*output_shape, dims(graph.output_shape()), "{name}");
            assert_eq!(
                r.operators[0].0,
                op::TRANSPOSE,
                "{name}: the input goes to NHWC first"
            );
            // Every node's value is a tensor of its name, in NHWC.
            for node in graph
                .nodes()
                .iter()
                .filter(|n| !matches!(n.op, Op::BatchNorm(_)))
            {
                let t = r.tensors.iter().find(|t| t.0 == node.name);
                assert_eq!(
                    t.map(|t| t.1.clone()),
                    Some(dims(&nhwc(&node.shape))),
                    "{name}: {}",
                    node.name
                );
            }
        }
    }
}

#[test]
fn batch_norms_after_convs_are_folded_and_the_others_become_mul_and_add() {
    let model = Model::MobileOne(crate::Variant::S0);
    let graph = model
        .build(Form::Unfused, InputSize::square(1, 64))
        .unwrap();
    let weights = model.seeded_weights(Form::Unfused, 1);
    let standalone = graph
        .nodes()
        .iter()
        .filter(|n| matches!(n.op, Op::BatchNorm(_)) && !matches!(n.inputs[0], ValueId::Node(p) if matches!(graph.nodes()[p].op, Op::Conv2d(_))))
        .count();
    assert!(standalone > 0, "S0 unfused has identity (skip) batch norms");
    let r = exported(&graph, &weights);
    let count = |code| r.operators.iter().filter(|o| o.0 == code).count();
    assert_eq!(count(op::MUL), standalone);
    let convs = graph
        .nodes()
        .iter()
        .filter(|n| matches!(n.op, Op::Conv2d(_)))
        .count();
    assert_eq!(count(op::CONV_2D) + count(op::DEPTHWISE_CONV_2D), convs);
    // Unfused MobileOne sums its branches: more adds than the skip batch norms' shifts.
    assert!(count(op::ADD) > standalone);
}

/// One conv layer with weights numbered 0, 1, 2, ... so that layouts can be read off.
fn one_conv(conv: Conv2d, size: usize) -> (Graph, Weights<f32>) {
    let mut b = GraphBuilder::new("one_conv", vec![1, conv.in_channels, size, size]).unwrap();
    let out = b.add("conv", Op::Conv2d(conv), &[ValueId::Input]).unwrap();
    let graph = b.finish(out);
    let mut weights = Weights::new();
    let shape = conv.weight_shape();
    let numel = shape.iter().product::<usize>();
    weights.insert(
        "conv.weight".to_string(),
        crate::Tensor::new(shape, (0..numel).map(|v| v as f32).collect()).unwrap(),
    );
    if conv.bias {
        let bias = (0..conv.out_channels).map(|v| -(v as f32)).collect();
        weights.insert(
            "conv.bias".to_string(),
            crate::Tensor::new(vec![conv.out_channels], bias).unwrap(),
        );
    }
    (graph, weights)
}

use crate::testing::conv;

#[test]
fn dense_filters_are_ohwi_and_depthwise_filters_are_1hwo() {
    let (graph, weights) = one_conv(conv(3, 4, 3, 1, 1, 1), 8);
    let r = exported(&graph, &weights);
    let filter = r.tensors.iter().find(|t| t.0 == "conv.weight").unwrap();
    assert_eq!(filter.1, [4, 3, 3, 3]);
    let data = floats(&filter.3.as_ref().unwrap().1);
    let w = weights.get("conv.weight").unwrap().data();
    for (o, y, x, i) in [(0, 0, 0, 0), (3, 2, 1, 2), (1, 0, 2, 1)] {
        assert_eq!(
            data[((o * 3 + y) * 3 + x) * 3 + i],
            w[((o * 3 + i) * 3 + y) * 3 + x]
        );
    }
    let (graph, weights) = one_conv(conv(4, 8, 3, 1, 1, 4), 8);
    let r = exported(&graph, &weights);
    let filter = r.tensors.iter().find(|t| t.0 == "conv.weight").unwrap();
    assert_eq!(filter.1, [1, 3, 3, 8]);
    let data = floats(&filter.3.as_ref().unwrap().1);
    let w = weights.get("conv.weight").unwrap().data();
    for (o, y, x) in [(0, 0, 0), (7, 2, 1), (5, 1, 2)] {
        assert_eq!(data[(y * 3 + x) * 8 + o], w[(o * 3 + y) * 3 + x]);
    }
    let (code, inputs, _, options) = &r.operators[1];
    assert_eq!(*code, op::DEPTHWISE_CONV_2D);
    assert_eq!(options.unwrap().int(slot::DEPTH_MULTIPLIER, 0), 2);
    let bias = &r.tensors[inputs[2] as usize];
    assert_eq!(
        floats(&bias.3.as_ref().unwrap().1),
        [0.0, -1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0]
    );
}

/// The padding a conv is written with, and whether an explicit PAD precedes it.
fn padding_of(c: Conv2d, size: usize) -> (i8, bool) {
    let (graph, weights) = one_conv(c, size);
    let r = exported(&graph, &weights);
    let conv = r
        .operators
        .iter()
        .find(|o| o.0 == op::CONV_2D || o.0 == op::DEPTHWISE_CONV_2D)
        .unwrap();
    let padding = conv.3.unwrap().byte(slot::PADDING);
    (padding, r.operators.iter().any(|o| o.0 == op::PAD))
}

#[test]
fn padding_is_same_or_valid_where_it_matches_pytorch_and_explicit_elsewhere() {
    assert_eq!(padding_of(conv(3, 4, 3, 1, 1, 1), 9), (schema::SAME, false));
    assert_eq!(
        padding_of(conv(3, 4, 1, 1, 0, 1), 9),
        (schema::VALID, false)
    );
    assert_eq!(
        padding_of(conv(3, 4, 3, 2, 0, 1), 9),
        (schema::VALID, false)
    );
    // Stride 2 over an even size: SAME would pad only the bottom; PyTorch pads both sides.
    assert_eq!(padding_of(conv(3, 4, 3, 2, 1, 1), 8), (schema::VALID, true));
    // Over an odd size SAME pads one on each side, as PyTorch does.
    assert_eq!(padding_of(conv(4, 4, 3, 2, 1, 4), 9), (schema::SAME, false));
    assert_eq!(padding_of(conv(3, 4, 5, 1, 1, 1), 9), (schema::VALID, true));
}

#[test]
fn channel_shuffle_and_flatten_are_written_in_nhwc_terms() {
    let r = {
        let graph = Model::ShuffleNetV2x2
            .build(Form::Reparameterized, InputSize::square(1, 64))
            .unwrap();
        let weights = Model::ShuffleNetV2x2.seeded_weights(Form::Reparameterized, 0);
        exported(&graph, &weights)
    };
    let perms: Vec<Vec<i32>> = r
        .operators
        .iter()
        .filter(|o| o.0 == op::TRANSPOSE)
        .map(|o| floats_i32(&r.tensors[o.1[1] as usize].3.as_ref().unwrap().1))
        .collect();
    assert_eq!(perms[0], [0, 2, 3, 1], "the input to NHWC");
    assert!(
        perms[1..].iter().all(|p| p == &[0, 1, 2, 4, 3]),
        "{perms:?}"
    );
    assert!(r.codes.contains(&op::RESHAPE) && r.codes.contains(&op::SLICE));
}

fn floats_i32(bytes: &[u8]) -> Vec<i32> {
    bytes
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
fn a_grouped_convolution_is_refused_with_its_node() {
    let (graph, weights) = one_conv(conv(4, 8, 3, 1, 1, 2), 8);
    let err = export(&graph, &weights, "test").unwrap_err().to_string();
    crate::testing::assert_contains(
        &err,
        &[
            "one_conv",
            "`conv`",
            "grouped convolution (2 groups over 4 channels)",
        ],
    );
}

#[test]
fn gelu_is_written_with_the_extended_op_code() {
    let graph = Model::all()
        .into_iter()
        .find(|m| m.name().contains("gelu"))
        .unwrap();
    let g = graph
        .build(Form::Reparameterized, InputSize::square(1, 32))
        .unwrap();
    let r = exported(&g, &graph.seeded_weights(Form::Reparameterized, 0));
    assert!(r.codes.contains(&op::GELU), "{:?}", r.codes);
}
