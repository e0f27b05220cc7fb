//! Every node of whole models checked against an independent float64 computation on the same
//! rounded numbers (the inputs dequantized from the integer run, weights at int8 x scale,
//! biases at int32 x accumulator scale): within one output code. And the quantization error
//! of whole models against the float reference.

use models::graph::{BatchNorm, Conv2d, Graph, GraphBuilder, Node, Op, ValueId};
use models::quantize::{quantize_bias, quantize_weights, ActivationQuant};
use models::quantized::{QuantizedModel, QuantizedOp};
use models::reparameterize::batch_norm_affine;
use models::{relative_l2, seeded_uniform, Form, InputSize, Model, Tensor, Variant, Weights};

use super::{run, run_values};

fn inputs(graph: &Graph, seeds: std::ops::Range<u64>) -> Vec<Tensor<f32>> {
    seeds
        .map(|s| seeded_uniform(graph.input_shape().to_vec(), s, -1.0, 1.0))
        .collect()
}

fn calibrated(graph: &Graph, weights: &Weights<f32>) -> QuantizedModel {
    let ranges = crate::reference::value_ranges(graph, weights, &inputs(graph, 0..4)).unwrap();
    QuantizedModel::new(graph, weights, &ranges).unwrap()
}

/// A conv-like op's weights and bias as the integer op sees them, in f64.
fn rounded_gemm(
    w: &[f32],
    bias: Option<&[f32]>,
    channels: usize,
    x: ActivationQuant,
) -> (Vec<f64>, Vec<f64>) {
    let q = quantize_weights(w, channels).unwrap();
    let per = w.len() / channels;
    let weights = q
        .values
        .iter()
        .enumerate()
        .map(|(j, &v)| f64::from(v) * f64::from(q.scales[j / per]))
        .collect();
    let zeros = vec![0.0; channels];
    let b = quantize_bias(bias.unwrap_or(&zeros), x.scale, &q.scales).unwrap();
    let bias = b
        .iter()
        .zip(&q.scales)
        .map(|(&v, &s)| f64::from(v) * f64::from(x.scale) * f64::from(s))
        .collect();
    (weights, bias)
}

fn param<'a>(weights: &'a Weights<f32>, node: &Node, suffix: &str) -> Option<&'a [f32]> {
    weights
        .get(&format!("{}.{suffix}", node.name))
        .map(|t| t.data())
}

/// The float64 op on dequantized inputs: an independent computation of what node `i` means.
fn float_op(
    model: &QuantizedModel,
    weights: &Weights<f32>,
    i: usize,
    ins: &[(Vec<f64>, Vec<usize>)],
) -> Vec<f64> {
    let node = &model.graph.nodes()[i];
    let (x, shape) = (&ins[0].0, &ins[0].1);
    let xq = model.quant(node.inputs[0]);
    match &node.op {
        Op::Conv2d(c) => {
            let (w, b) = rounded_gemm(
                param(weights, node, "weight").unwrap(),
                param(weights, node, "bias"),
                c.out_channels,
                xq,
            );
            float_conv(c, x, shape, &w, &b, &node.shape)
        }
        Op::Linear(l) => {
            let (w, b) = rounded_gemm(
                param(weights, node, "weight").unwrap(),
                param(weights, node, "bias"),
                l.out_features,
                xq,
            );
            let n = l.in_features;
            x.chunks(n)
                .flat_map(|row| {
                    (0..l.out_features)
                        .map(|o| b[o] + (0..n).map(|k| w[o * n + k] * row[k]).sum::<f64>())
                        .collect::<Vec<_>>()
                })
                .collect()
        }
        Op::BatchNorm(bn) => {
            let [g, beta, m, v] = ["weight", "bias", "running_mean", "running_var"]
                .map(|s| param(weights, node, s).unwrap());
            let (scale, shift) = batch_norm_affine(g, beta, m, v, bn.eps);
            let scale: Vec<f32> = scale.iter().map(|&s| s as f32).collect();
            let shift: Vec<f32> = shift.iter().map(|&s| s as f32).collect();
            let (w, b) = rounded_gemm(&scale, Some(&shift), bn.channels, xq);
            let area = shape[2] * shape[3];
            x.iter()
                .enumerate()
                .map(|(j, v)| {
                    let c = (j / area) % bn.channels;
                    w[c] * v + b[c]
                })
                .collect()
        }
        Op::Add => (0..x.len())
            .map(|j| ins.iter().map(|(d, _)| d[j]).sum())
            .collect(),
        Op::GlobalAvgPool => x
            .chunks(shape[2] * shape[3])
            .map(|p| p.iter().sum::<f64>() / p.len() as f64)
            .collect(),
        Op::ChannelMul => {
            let (s, sshape) = (&ins[1].0, &ins[1].1);
            let area = shape[2] * shape[3];
            (0..x.len())
                .map(|j| {
                    let (n, c) = (j / (shape[1] * area), (j / area) % shape[1]);
                    x[j] * s[n * sshape[1] + if sshape[1] == 1 { 0 } else { c }]
                })
                .collect()
        }
        Op::Flatten => x.clone(),
        op => x.iter().map(|&v| op.unary_f64().unwrap()(v)).collect(),
    }
}

fn float_conv(
    c: &Conv2d,
    x: &[f64],
    xs: &[usize],
    w: &[f64],
    b: &[f64],
    out: &[usize],
) -> Vec<f64> {
    let (cin_g, cout_g, k) = (
        c.in_channels / c.groups,
        c.out_channels / c.groups,
        c.kernel,
    );
    let mut y = Vec::new();
    for n in 0..out[0] {
        for co in 0..out[1] {
            for oy in 0..out[2] {
                for ox in 0..out[3] {
                    let mut acc = b[co];
                    for ci in 0..cin_g {
                        for ky in 0..k {
                            for kx in 0..k {
                                let (iy, ix) = (
                                    (oy * c.stride + ky) as i64 - c.padding as i64,
                                    (ox * c.stride + kx) as i64 - c.padding as i64,
                                );
                                if iy < 0 || ix < 0 || iy >= xs[2] as i64 || ix >= xs[3] as i64 {
                                    continue;
                                }
                                let xi = ((n * xs[1] + co / cout_g * cin_g + ci) * xs[2]
                                    + iy as usize)
                                    * xs[3]
                                    + ix as usize;
                                acc += w[((co * cin_g + ci) * k + ky) * k + kx] * x[xi];
                            }
                        }
                    }
                    y.push(acc);
                }
            }
        }
    }
    y
}

/// Runs the model on a held-out input and checks every node's codes against `float_op` on
/// its dequantized inputs, quantized (after the fused activation, if any): at most one code
/// apart. Returns how many nodes were checked.
fn assert_every_node_within_one_code(graph: &Graph, weights: &Weights<f32>) -> usize {
    let model = calibrated(graph, weights);
    let input = seeded_uniform(graph.input_shape().to_vec(), 99, -1.1, 1.1);
    let (x, values) = run_values(&model, &input).unwrap();
    let dequant = |v: ValueId| -> (Vec<f64>, Vec<usize>) {
        let q = model.quant(v);
        let bytes = match v {
            ValueId::Input => &x,
            ValueId::Node(p) => &values[p],
        };
        (
            bytes.iter().map(|&b| f64::from(q.dequantize(b))).collect(),
            graph.value_shape(v).to_vec(),
        )
    };
    let nodes = graph.nodes();
    for (i, node) in nodes.iter().enumerate() {
        if model.ops[i] == QuantizedOp::Fused {
            assert_eq!(
                values[i],
                values[node.inputs[0].index_of_node().unwrap()],
                "{}",
                node.name
            );
            continue;
        }
        let ins: Vec<_> = node.inputs.iter().map(|&v| dequant(v)).collect();
        let mut expected = float_op(&model, weights, i, &ins);
        let fused = (i + 1..nodes.len()).find(|&j| {
            model.ops[j] == QuantizedOp::Fused && nodes[j].inputs[0] == ValueId::Node(i)
        });
        if let Some(j) = fused {
            let f = nodes[j].op.unary_f64().unwrap();
            expected.iter_mut().for_each(|v| *v = f(*v));
        }
        let out = model.values[i];
        for (j, (&got, &want)) in values[i].iter().zip(&expected).enumerate() {
            let want = out.quantize(want as f32);
            assert!(
                got.abs_diff(want) <= 1,
                "{} element {j}: {got} against {want} ({:?})",
                node.name,
                node.op.kind()
            );
        }
    }
    nodes.len()
}

trait NodeIndex {
    fn index_of_node(self) -> Option<usize>;
}

impl NodeIndex for ValueId {
    fn index_of_node(self) -> Option<usize> {
        match self {
            ValueId::Node(p) => Some(p),
            ValueId::Input => None,
        }
    }
}

#[test]
fn every_node_of_s0_both_forms_and_s4_is_one_code_from_the_float_op() {
    for (variant, form) in [
        (Variant::S0, Form::Reparameterized),
        (Variant::S0, Form::Unfused),
        (Variant::S4, Form::Reparameterized),
    ] {
        let model = Model::MobileOne(variant);
        let graph = model.build(form, InputSize::square(1, 64)).unwrap();
        let weights = model.seeded_weights(form, 5);
        assert!(assert_every_node_within_one_code(&graph, &weights) > 20);
    }
}

#[test]
fn batch_norms_and_the_fused_relu_take_their_integer_forms() {
    let mut b = GraphBuilder::new("bn", vec![2, 4, 5, 5]).unwrap();
    let bn = b
        .add(
            "bn",
            Op::BatchNorm(BatchNorm {
                channels: 4,
                eps: 1e-5,
            }),
            &[ValueId::Input],
        )
        .unwrap();
    let relu = b.add("relu", Op::Relu, &[bn]).unwrap();
    let graph = b.finish(relu);
    let weights = models::random_weights(&graph, 3);
    let model = calibrated(&graph, &weights);
    assert!(
        matches!(model.ops[0], QuantizedOp::Gemm { low, high: 255, .. } if low == model.values[1].zero_point)
    );
    assert_eq!(model.ops[1], QuantizedOp::Fused);
    assert_eq!(model.values[0], model.values[1]);
    assert_eq!(assert_every_node_within_one_code(&graph, &weights), 2);
}

#[test]
fn the_quantization_error_of_whole_models_is_small_on_held_out_inputs() {
    for form in [Form::Unfused, Form::Reparameterized] {
        let model = Model::MobileOne(Variant::S1);
        let graph = model.build(form, InputSize::square(1, 64)).unwrap();
        let weights = model.seeded_weights(form, 5);
        let quantized = super::quantize(&graph, &weights, &inputs(&graph, 0..4)).unwrap();
        let folded = graph
            .nodes()
            .iter()
            .filter(|n| matches!(n.op, Op::BatchNorm(_)))
            .count()
            - quantized
                .graph
                .nodes()
                .iter()
                .filter(|n| matches!(n.op, Op::BatchNorm(_)))
                .count();
        // The reparameterized graph has none left to fold.
        assert_eq!(
            folded > 0,
            form == Form::Unfused,
            "{form}: batch norms after convs fold"
        );
        for input in inputs(&graph, 10..12) {
            let float = crate::reference::evaluate(&graph, &weights, &input).unwrap();
            let int8 = run(&quantized, &input).unwrap();
            let error = relative_l2(int8.data(), float.data());
            eprintln!("{} {form}: int8 relative L2 {error:.3e}", graph.name());
            assert!(error < 0.12, "{form}: {error}");
        }
    }
}

#[test]
fn an_op_without_an_int8_form_is_refused_by_name() {
    let model = "mixnet-s".parse::<Model>().unwrap();
    let graph = model
        .build(Form::Reparameterized, InputSize::square(1, 32))
        .unwrap();
    let weights = model.seeded_weights(Form::Reparameterized, 0);
    let ranges = crate::reference::value_ranges(&graph, &weights, &inputs(&graph, 0..1)).unwrap();
    let err = QuantizedModel::new(&graph, &weights, &ranges)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no int8 form yet"), "{err}");
}
