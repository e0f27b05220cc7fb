//! The int8 kernels against the quantized reference, code for code: a graph of awkward shapes
//! (odd channel counts, k not a multiple of 4, strides, padding and none, im2col and direct
//! GEMMs, a batch norm, a three-way add, squeeze-excite, a table, the classifier) at every
//! node, on every int8 instruction set this CPU has and at 1 and 3 threads; and the rescale's
//! vector form against the scalar one on edge cases.

use models::graph::{BatchNorm, Graph, GraphBuilder, Linear, Op, ValueId};
use models::{seeded_uniform, Form, InputSize, Model, Variant};

use super::Int8Isa;
use crate::native::simd::Isa;
use crate::quantized_reference::{quantize, run_values, seeded_calibration};

fn conv(cin: usize, cout: usize, k: usize, stride: usize, padding: usize, groups: usize) -> Op {
    Op::Conv2d(models::testing::conv(cin, cout, k, stride, padding, groups))
}

/// Every int8 kernel kind on shapes that do not fit the vector widths (depthwise convs of 17,
/// 20 and 83 channels, 3x3 and 5x5, with and without padding).
fn awkward_graph() -> Graph {
    let mut b = GraphBuilder::new("awkward", vec![2, 3, 29, 27]).unwrap();
    let mut add = |name: &str, op: Op, inputs: &[ValueId]| b.add(name, op, inputs).unwrap();
    let stem = add("stem", conv(3, 17, 3, 2, 1, 1), &[ValueId::Input]);
    let stem = add("stem.relu", Op::Relu, &[stem]);
    let dw = add("dw", conv(17, 17, 3, 1, 1, 17), &[stem]);
    let dw = add("dw.relu6", Op::Relu6, &[dw]);
    // 83 channels: one block of 64 on four-tap dot products, then 19 on the 16-lane path.
    let wide = add("widen", conv(17, 83, 1, 1, 0, 1), &[dw]);
    let wide = add("dw5", conv(83, 83, 5, 1, 2, 83), &[wide]);
    let wide = add("dw3", conv(83, 83, 3, 1, 1, 83), &[wide]);
    // Stride 2, padded, from 15x14: an odd and an even side.
    let wide = add("dw3s2", conv(83, 83, 3, 2, 1, 83), &[wide]);
    let dw = add("narrow", conv(83, 17, 1, 1, 0, 1), &[wide]);
    let dw2 = add("dw2", conv(17, 17, 3, 2, 0, 17), &[dw]);
    let pw = add("pw", conv(17, 33, 1, 1, 0, 1), &[dw2]);
    let pw2 = add("pw2", conv(17, 33, 1, 1, 0, 1), &[dw2]);
    let bn = add(
        "bn",
        Op::BatchNorm(BatchNorm {
            channels: 33,
            eps: 1e-5,
        }),
        &[pw2],
    );
    let sum = add("sum", Op::Add, &[pw, bn, pw2]);
    let sum = add("sum.relu", Op::Relu, &[sum]);
    let dense = add("dense", conv(33, 20, 3, 1, 1, 1), &[sum]);
    // 3x3, stride 1, no padding: the sliding window over a span of its own.
    let valid = add("valid", conv(20, 20, 3, 1, 0, 20), &[dense]);
    let down = add("down", conv(20, 20, 1, 2, 0, 1), &[valid]);
    let pool = add("se.pool", Op::GlobalAvgPool, &[down]);
    let squeeze = add("se.squeeze", conv(20, 5, 1, 1, 0, 1), &[pool]);
    let squeeze = add("se.relu", Op::Relu, &[squeeze]);
    let excite = add("se.excite", conv(5, 20, 1, 1, 0, 1), &[squeeze]);
    let gate = add("se.sigmoid", Op::Sigmoid, &[excite]);
    let scaled = add("se.mul", Op::ChannelMul, &[down, gate]);
    let pool = add("pool", Op::GlobalAvgPool, &[scaled]);
    let flat = add("flatten", Op::Flatten, &[pool]);
    let linear = Linear {
        in_features: 20,
        out_features: 7,
        bias: true,
    };
    let logits = add("classifier", Op::Linear(linear), &[flat]);
    b.finish(logits)
}

fn int8_isas() -> Vec<Int8Isa> {
    let isas = Int8Isa::supported();
    assert!(isas.contains(&Int8Isa::for_isa(Isa::best())));
    isas
}

/// Quantizes `graph` on seeded inputs and checks every node's codes on every int8 instruction
/// set and thread count against the quantized reference; returns the nodes checked.
fn assert_every_node_matches(graph: &Graph, weights: &models::Weights<f32>) -> usize {
    let calibration = seeded_calibration(graph.input_shape(), 3);
    let model = quantize(graph, weights, &calibration).unwrap();
    let input = seeded_uniform(graph.input_shape().to_vec(), 7, -2.5, 2.5);
    let (_, expected) = run_values(&model, &input).unwrap();
    for isa in int8_isas() {
        for threads in [1, 3] {
            let mut plan = crate::native::int8::prepare(&model, isa, threads, false).unwrap();
            let got = plan.values(&input).unwrap();
            assert_eq!(got.len(), expected.len());
            for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                let node = &model.graph.nodes()[i].name;
                let differ = g.iter().zip(e).filter(|(a, b)| a != b).count();
                assert_eq!(
                    differ, 0,
                    "{isa:?}, {threads} threads, `{node}`: {differ} codes differ"
                );
            }
        }
    }
    expected.len()
}

#[test]
fn every_node_of_awkward_shapes_matches_the_quantized_reference_code_for_code() {
    let graph = awkward_graph();
    for seed in [1, 2] {
        let weights = models::random_weights(&graph, seed);
        assert_eq!(
            assert_every_node_matches(&graph, &weights),
            graph.nodes().len()
        );
    }
}

#[test]
fn mobileone_s0_both_forms_and_s4_run_code_for_code_as_the_reference() {
    for (variant, form) in [
        (Variant::S0, Form::Unfused),
        (Variant::S0, Form::Reparameterized),
        (Variant::S4, Form::Reparameterized),
    ] {
        let model = Model::MobileOne(variant);
        let graph = model.build(form, InputSize::square(1, 64)).unwrap();
        let weights = model.seeded_weights(form, 3);
        assert!(assert_every_node_matches(&graph, &weights) > 30);
    }
}

#[test]
fn a_grouped_convolution_that_is_not_depthwise_is_refused_by_node() {
    let mut b = GraphBuilder::new("grouped", vec![1, 8, 6, 6]).unwrap();
    let c = b
        .add("grouped", conv(8, 8, 3, 1, 1, 2), &[ValueId::Input])
        .unwrap();
    let graph = b.finish(c);
    let weights = models::random_weights(&graph, 1);
    let model = quantize(
        &graph,
        &weights,
        &seeded_calibration(graph.input_shape(), 1),
    )
    .unwrap();
    let err = crate::native::int8::prepare(&model, Int8Isa::Portable, 1, false)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("grouped") && err.contains("not depthwise"),
        "{err}"
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn the_vector_rescales_round_as_the_scalar_one_on_edge_cases() {
    let accs = [
        0,
        1,
        -1,
        5,
        -5,
        6,
        -6,
        1 << 20,
        -(1 << 20),
        123_456_789,
        -123_456_789,
        i32::MAX,
        i32::MIN,
        i32::MAX - 1,
        i32::MIN + 1,
    ];
    let rescales: Vec<models::quantize::Rescale> = [
        0.25,
        0.5,
        0.3,
        1e-3,
        0.999_999,
        3.75,
        40.0,
        2f64.powi(-31),
        1e-12,
        1.0,
    ]
    .iter()
    .map(|&r| models::quantize::Rescale::new(r).unwrap())
    .collect();
    for rescale in rescales {
        let want: Vec<i32> = accs
            .iter()
            .map(|&acc| rescale.apply(acc).clamp(-(1 << 30), 1 << 30))
            .collect();
        let mut lanes = [0i32; 16];
        lanes[..accs.len()].copy_from_slice(&accs);
        if Int8Isa::Avx512Vnni.is_supported() {
            let got = unsafe { super::vnni::rescale_lanes(lanes, rescale) };
            assert_eq!(&got[..accs.len()], &want[..], "AVX-512, {rescale:?}");
        }
        if Int8Isa::AvxVnni.is_supported() {
            for (part, at) in [(0, 0..8), (1, 8..16)] {
                let half: [i32; 8] = lanes[at.clone()].try_into().unwrap();
                let got = unsafe { super::avxvnni::rescale_lanes(half, rescale) };
                let end = at.end.min(accs.len());
                assert_eq!(
                    &got[..end - at.start],
                    &want[at.start..end],
                    "AVX2 {part}, {rescale:?}"
                );
            }
        }
    }
}

#[test]
fn the_input_is_quantized_as_the_scalar_quantization_rounds_on_every_isa() {
    let quant = models::quantize::ActivationQuant {
        scale: 0.5,
        zero_point: 100,
    };
    // Ties (x / scale = k + 1/2) round away from zero; beyond the range saturates; NaN is 0.
    let mut plane: Vec<f32> = vec![
        0.25, -0.25, 0.75, -0.75, 1.25, -1.25, 49.0, -49.0, 1e9, -1e9,
    ];
    plane.extend([
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -0.0,
        63.75,
        -50.25,
        0.2499,
    ]);
    plane.extend((0..40).map(|i| (i as f32 - 20.0) * 0.37));
    let expected: Vec<u8> = plane.iter().map(|&v| quant.quantize(v)).collect();
    assert_eq!(&expected[..4], &[101, 99, 102, 98]);
    for isa in int8_isas() {
        let mut codes = vec![0u8; plane.len()];
        super::quantize_plane(isa, quant, &plane, &mut codes);
        assert_eq!(codes, expected, "{isa:?}");
    }
}
