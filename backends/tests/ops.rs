//! Every op on awkward shapes (odd sizes, channel counts that are not a multiple of any SIMD
//! width, stride 2 on odd inputs), one test body for every backend this build has: each against
//! the reference executor within its tolerance; native also on every instruction set this CPU
//! has against the portable path, and at 2 and 3 threads bit-identical to 1 thread.

mod common;

use backends::native::{Isa, NativeBackend};
use backends::{check_against_reference, reference_output, Availability, Backend, PrepareOptions};
use models::graph::{BatchNorm, Conv2d, Linear};
use models::testing::assert_contains;
use models::{
    random_weights, relative_l2, seeded_uniform, Graph, GraphBuilder, Op, Precision, Tensor,
    ValueId,
};

fn conv(cin: usize, cout: usize, kernel: usize, stride: usize, groups: usize, bias: bool) -> Op {
    Op::Conv2d(Conv2d {
        in_channels: cin,
        out_channels: cout,
        kernel,
        stride,
        padding: kernel / 2,
        groups,
        bias,
    })
}

fn bn(channels: usize) -> Op {
    Op::BatchNorm(BatchNorm {
        channels,
        eps: 1e-5,
    })
}

fn run(backend: &NativeBackend, graph: &Graph, threads: usize, input: &Tensor) -> Tensor {
    run_at(backend, graph, threads, Precision::Fp32, input)
}

fn run_at(
    backend: &NativeBackend,
    graph: &Graph,
    threads: usize,
    precision: Precision,
    input: &Tensor,
) -> Tensor {
    let weights = random_weights(graph, 11);
    let options = PrepareOptions::with_threads(threads).at(precision);
    let mut plan = backend
        .prepare(graph, &weights, &options)
        .expect("prepares");
    plan.forward(input).expect("runs")
}

/// Every available backend equals the reference within its tolerance, at fp32 and at each
/// 16-bit precision it has; native on every supported ISA also equals the portable path
/// (< 1e-5) and is bit-identical across threads.
fn check(graph: Graph) {
    let input = seeded_uniform(graph.input_shape().to_vec(), 5, -2.0, 2.0);
    let weights = random_weights(&graph, 11);
    let expected = reference_output(&graph, &weights, &input).unwrap();
    let mut checked = 0;
    for backend in backends::all() {
        if backend.name() == "reference" || backend.availability() != Availability::Available {
            continue;
        }
        checked += 1;
        // int8 is checked against the quantized reference (native's int8 tests).
        for precision in Precision::FLOATS {
            if backend.supports(precision).is_ok() {
                let options = PrepareOptions::with_threads(2).at(precision);
                let name = (graph.name(), backend.name(), precision);
                let b = backend.as_ref();
                let agreement =
                    check_against_reference(b, &graph, &weights, &input, &expected, &options)
                        .unwrap_or_else(|e| panic!("{name:?}: {e}"));
                assert!(agreement.passed(), "{name:?}: {agreement:?}");
            }
        }
    }
    // native, both candles, and tch and gpu when built with them (metal on Apple too).
    let expected_backends = 3 + common::optional_backends();
    assert!(checked >= expected_backends, "{checked} backends ran");
    native_on_every_isa(&graph, &input, &expected);
    native_16_bit_on_every_isa(&graph, &input, &expected);
}

/// Native at bf16 on every ISA (the dot-product kernel on AVX512_BF16, f32 kernels over
/// bf16-rounded operands elsewhere) and at fp16 on every ISA with fp16 arithmetic: within
/// the precision's tolerance of the reference, and the same bits at 1, 2 and 3 threads. (The
/// ISAs do not agree to 1e-5 here: a sum in another order can round to the neighbouring
/// 16-bit value.)
fn native_16_bit_on_every_isa(graph: &Graph, input: &Tensor, expected: &Tensor) {
    let mut fp16_isas = 0;
    for isa in Isa::supported() {
        let backend = NativeBackend::with_isa(isa);
        for precision in [Precision::Bf16, Precision::Fp16] {
            if precision == Precision::Fp16 && !isa.has_fp16_arith() {
                assert!(backend.supports(precision).is_err(), "{isa}");
                continue;
            }
            fp16_isas += usize::from(precision == Precision::Fp16);
            let tolerance = backend.tolerance_at(precision);
            let at = |threads| run_at(&backend, graph, threads, precision, input);
            let one = at(1);
            let err = relative_l2(one.data(), expected.data());
            let name = graph.name();
            assert!(
                err < tolerance,
                "{name} on {isa} at {precision}: relative L2 {err:e}"
            );
            for threads in [2, 3] {
                assert_eq!(
                    one.data(),
                    at(threads).data(),
                    "{name} on {isa} at {precision}: {threads} threads"
                );
            }
        }
    }
    let cpu_has_fp16 = Isa::supported().iter().any(|isa| isa.has_fp16_arith());
    assert_eq!(fp16_isas > 0, cpu_has_fp16);
}

/// Native on every ISA: within 1e-5 of the reference and of the portable path, and the same
/// bits at 1, 2 and 3 threads.
fn native_on_every_isa(graph: &Graph, input: &Tensor, expected: &Tensor) {
    let portable = run(&NativeBackend::with_isa(Isa::Portable), graph, 1, input);
    for isa in Isa::supported() {
        let backend = NativeBackend::with_isa(isa);
        let one = run(&backend, graph, 1, input);
        let err = relative_l2(one.data(), expected.data());
        assert!(
            err < 1e-5,
            "{} on {isa}: relative L2 {err:e} against the reference",
            graph.name()
        );
        let err = relative_l2(one.data(), portable.data());
        assert!(
            err < 1e-5,
            "{} on {isa}: relative L2 {err:e} against the portable path",
            graph.name()
        );
        for threads in [2, 3] {
            let many = run(&backend, graph, threads, input);
            assert_eq!(
                one.data(),
                many.data(),
                "{} on {isa}: {threads} threads differ from 1",
                graph.name()
            );
        }
    }
}

fn single(name: &str, input: Vec<usize>, op: Op) -> Graph {
    let mut b = GraphBuilder::new(name, input).unwrap();
    let y = b.add("layer", op, &[ValueId::Input]).unwrap();
    b.finish(y)
}

#[test]
fn depthwise_convs_of_every_kernel_size_and_stride_match() {
    for (k, stride, channels, h, w) in [
        (3, 1, 19, 9, 11),
        (3, 2, 35, 13, 7),
        (1, 2, 16, 9, 9),
        (5, 1, 21, 8, 10),
        (7, 2, 33, 15, 13),
        (9, 1, 20, 12, 10),
        (11, 2, 17, 13, 14),
        (3, 1, 48, 5, 3),
    ] {
        let name = format!("dw{k}x{k}-s{stride}-c{channels}-{h}x{w}");
        check(single(
            &name,
            vec![2, channels, h, w],
            conv(channels, channels, k, stride, channels, true),
        ));
    }
}

#[test]
fn pointwise_and_dense_convs_match() {
    for (cin, cout, k, stride, h, w) in [
        (37, 45, 1, 1, 7, 9),
        (16, 64, 1, 1, 5, 5),
        (3, 48, 3, 2, 17, 15),
        (3, 29, 1, 2, 11, 11),
        (8, 100, 3, 1, 6, 7),
        (70, 130, 1, 1, 3, 4),
    ] {
        let name = format!("conv{k}x{k}-s{stride}-{cin}to{cout}-{h}x{w}");
        check(single(
            &name,
            vec![2, cin, h, w],
            conv(cin, cout, k, stride, 1, true),
        ));
    }
}

/// 1x1 convs on an NHWC activation run as plain GEMMs (at bf16 on the dot-product kernel
/// where the CPU has it): odd K, N off the panel widths, rows off the tile heights.
#[test]
fn pointwise_convs_on_activations_match() {
    for (cin, cout, h, w) in [
        (37, 45, 7, 9),
        (16, 64, 5, 5),
        (70, 130, 3, 4),
        (1, 17, 2, 3),
    ] {
        let name = format!("pw-{cin}to{cout}-{h}x{w}");
        let mut b = GraphBuilder::new(&name, vec![2, cin, h, w]).unwrap();
        let r = b.add("relu", Op::Relu, &[ValueId::Input]).unwrap();
        let y = b.add("pw", conv(cin, cout, 1, 1, 1, true), &[r]).unwrap();
        check(b.finish(y));
    }
}

#[test]
fn dense_convs_on_nhwc_activations_match() {
    // The first conv reads the NCHW input; the second (3x3 stride 2, odd size, padded) and
    // the third (1x1 stride 2, unpadded) read NHWC activations.
    for (k, stride, cin, cout) in [(3, 2, 13, 21), (1, 2, 16, 40), (3, 1, 5, 70)] {
        let mut b = GraphBuilder::new("nhwc-dense", vec![2, 3, 11, 9]).unwrap();
        let first = b
            .add("first", conv(3, cin, 1, 1, 1, true), &[ValueId::Input])
            .unwrap();
        let second = b
            .add("second", conv(cin, cout, k, stride, 1, true), &[first])
            .unwrap();
        check(b.finish(second));
    }
}

#[test]
fn a_matrix_vector_gemm_matches() {
    // One row (batch 1 at 1x1): the single-row micro-kernel.
    check(single(
        "pointwise-1x1",
        vec![1, 50, 1, 1],
        conv(50, 33, 1, 1, 1, true),
    ));
}

#[test]
fn conv_with_batch_norm_and_relu_fuses_and_matches() {
    let mut b = GraphBuilder::new("conv-bn-relu", vec![1, 24, 9, 9]).unwrap();
    let c = b
        .add("c", conv(24, 40, 1, 1, 1, false), &[ValueId::Input])
        .unwrap();
    let n = b.add("c.bn", bn(40), &[c]).unwrap();
    let r = b.add("relu", Op::Relu, &[n]).unwrap();
    check(b.finish(r));
}

#[test]
fn a_multi_branch_block_sums_its_branches() {
    // An unfused depthwise block: identity BN, 1x1 scale branch, two 3x3 branches, then ReLU.
    let c = 20;
    let mut b = GraphBuilder::new("branches", vec![2, c, 10, 9]).unwrap();
    let x = ValueId::Input;
    let skip = b.add("skip", bn(c), &[x]).unwrap();
    let mut branches = vec![skip];
    for (i, k) in [1, 3, 3].into_iter().enumerate() {
        let conv = b
            .add(&format!("b{i}.conv"), conv(c, c, k, 1, c, false), &[x])
            .unwrap();
        branches.push(b.add(&format!("b{i}.bn"), bn(c), &[conv]).unwrap());
    }
    let sum = b.add("add", Op::Add, &branches).unwrap();
    let r = b.add("relu", Op::Relu, &[sum]).unwrap();
    check(b.finish(r));
}

#[test]
fn an_add_whose_inputs_are_read_elsewhere_still_sums() {
    // x + relu(conv(x)): the add cannot accumulate in place, so it copies then adds.
    let mut b = GraphBuilder::new("residual", vec![1, 18, 6, 6]).unwrap();
    let c = b
        .add("conv", conv(18, 18, 3, 1, 18, true), &[ValueId::Input])
        .unwrap();
    let r = b.add("relu", Op::Relu, &[c]).unwrap();
    let sum = b.add("add", Op::Add, &[ValueId::Input, r]).unwrap();
    let out = b.add("relu2", Op::Relu, &[sum]).unwrap();
    check(b.finish(out));
}

#[test]
fn squeeze_excite_and_the_head_match() {
    let (c, r) = (40, 10);
    let mut b = GraphBuilder::new("se-head", vec![2, c, 7, 5]).unwrap();
    let x = ValueId::Input;
    let pooled = b.add("se.pool", Op::GlobalAvgPool, &[x]).unwrap();
    let reduced = b
        .add("se.reduce", conv(c, r, 1, 1, 1, true), &[pooled])
        .unwrap();
    let act = b.add("se.relu", Op::Relu, &[reduced]).unwrap();
    let expanded = b
        .add("se.expand", conv(r, c, 1, 1, 1, true), &[act])
        .unwrap();
    let gate = b.add("se.sigmoid", Op::Sigmoid, &[expanded]).unwrap();
    let scaled = b.add("se.scale", Op::ChannelMul, &[x, gate]).unwrap();
    let relu = b.add("relu", Op::Relu, &[scaled]).unwrap();
    let gap = b.add("gap", Op::GlobalAvgPool, &[relu]).unwrap();
    let flat = b.add("flatten", Op::Flatten, &[gap]).unwrap();
    let out = b
        .add(
            "linear",
            Op::Linear(Linear {
                in_features: c,
                out_features: 17,
                bias: true,
            }),
            &[flat],
        )
        .unwrap();
    check(b.finish(out));
}

#[test]
fn a_feature_map_output_comes_back_in_nchw() {
    // No head: the output is 4-D and must be transposed back; flatten of a 3x3 map too.
    let mut b = GraphBuilder::new("nchw-out", vec![1, 5, 7, 7]).unwrap();
    let c = b
        .add("conv", conv(5, 6, 3, 2, 1, true), &[ValueId::Input])
        .unwrap();
    check(b.finish(c));
    let mut b = GraphBuilder::new("flatten-map", vec![2, 4, 6, 6]).unwrap();
    let c = b
        .add("conv", conv(4, 3, 3, 2, 1, true), &[ValueId::Input])
        .unwrap();
    let f = b.add("flatten", Op::Flatten, &[c]).unwrap();
    let l = b
        .add(
            "linear",
            Op::Linear(Linear {
                in_features: 27,
                out_features: 5,
                bias: false,
            }),
            &[f],
        )
        .unwrap();
    check(b.finish(l));
}

#[test]
fn unsupported_kernels_are_refused_with_the_node_named() {
    // 9x9 and 11x11 (MixNet) have kernels; 13x13 does not.
    let graph = single("dw13", vec![1, 8, 14, 14], conv(8, 8, 13, 1, 8, true));
    let weights = random_weights(&graph, 1);
    let err = NativeBackend::new()
        .prepare(&graph, &weights, &PrepareOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert_contains(&err, &["`layer`", "13x13"]);
    let graph = single("grouped", vec![1, 8, 6, 6], conv(8, 8, 3, 1, 2, true));
    let weights = random_weights(&graph, 1);
    let err = NativeBackend::new()
        .prepare(&graph, &weights, &PrepareOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert_contains(&err, &["grouped conv2d (groups = 2)", "`layer`"]);
}

/// Dynamic shift-max's seeded weights start near the identity (MicroNet's initialization), so
/// the 30-layer network is a stable function at 224x224: a 1e-6 relative change of the input
/// moves the logits by about as much, not by the 69% that drawing the gate weights as is gave.
#[test]
fn dynamic_shift_max_seeded_weights_are_not_chaotic() {
    use models::zoo::Activation;
    use models::{Form, InputSize, Model};
    let model = Model::Plain30 {
        activation: Activation::DynamicShiftMax,
        skip: false,
    };
    let graph = model
        .build(Form::Reparameterized, InputSize::IMAGENET)
        .unwrap();
    let weights = model.seeded_weights(Form::Reparameterized, 0);
    let mut plan = NativeBackend::new()
        .prepare(&graph, &weights, &PrepareOptions::default())
        .unwrap();
    let x = seeded_uniform(graph.input_shape().to_vec(), 1, -1.0, 1.0);
    let nudge = seeded_uniform(graph.input_shape().to_vec(), 2, -1e-6, 1e-6);
    let nudged: Vec<f32> = x
        .data()
        .iter()
        .zip(nudge.data())
        .map(|(a, d)| a * (1.0 + d))
        .collect();
    let nudged = Tensor::new(x.shape().to_vec(), nudged).unwrap();
    let (a, b) = (plan.forward(&x).unwrap(), plan.forward(&nudged).unwrap());
    let change = relative_l2(b.data(), a.data());
    assert!(
        change < 1e-4,
        "a 1e-6 input change moved the logits by {change:e}"
    );
    assert!(
        a.data().iter().any(|v| v.abs() > 1e-3),
        "the logits are not all zero"
    );
}
