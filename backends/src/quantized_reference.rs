//! The quantized reference executor: runs a `models::quantized::QuantizedModel` with its exact
//! integer semantics (uint8 activations, int32 sums, the model's rescales and clamps) in plain
//! loops. Every int8 kernel is checked against it bit for bit; its dequantized output against
//! the float64 reference gives the quantization error of a model.

use models::graph::{Conv2d, Op, ValueId};
use models::quantize::ActivationQuant;
use models::quantized::{add_sum, QuantizedModel, QuantizedOp};
use models::{fold_batch_norm_weights, fold_batch_norms_graph, Graph, Tensor, Weights};

use crate::backend::BackendError;
use crate::reference::NAME;

/// The model on `input` (float32, quantized with the model's input quantization); the output
/// dequantized.
pub fn run(model: &QuantizedModel, input: &Tensor<f32>) -> Result<Tensor<f32>, BackendError> {
    let (x, values) = run_values(model, input)?;
    let graph = &model.graph;
    let output = model.quant(graph.output());
    let bytes = match graph.output() {
        ValueId::Input => &x,
        ValueId::Node(p) => &values[p],
    };
    let data = bytes.iter().map(|&q| output.dequantize(q)).collect();
    Tensor::new(graph.output_shape().to_vec(), data)
        .map_err(|e| BackendError::failed(NAME, e.to_string()))
}

/// The quantized input and every node's uint8 output, in node order (what an int8 kernel's
/// layer is checked against).
pub fn run_values(
    model: &QuantizedModel,
    input: &Tensor<f32>,
) -> Result<(Vec<u8>, Vec<Vec<u8>>), BackendError> {
    let graph = &model.graph;
    if input.shape() != graph.input_shape() {
        return Err(BackendError::InputShape {
            backend: NAME.into(),
            expected: graph.input_shape().to_vec(),
            found: input.shape().to_vec(),
        });
    }
    let x: Vec<u8> = input
        .data()
        .iter()
        .map(|&v| model.input.quantize(v))
        .collect();
    let mut values: Vec<Vec<u8>> = Vec::with_capacity(graph.nodes().len());
    for (i, node) in graph.nodes().iter().enumerate() {
        let read = |v: ValueId| -> Input {
            let data = match v {
                ValueId::Input => &x,
                ValueId::Node(p) => &values[p],
            };
            (data, model.quant(v), graph.value_shape(v))
        };
        let inputs: Vec<Input> = node.inputs.iter().map(|&v| read(v)).collect();
        let out = run_node(
            &node.op,
            &model.ops[i],
            &inputs,
            model.values[i],
            &node.shape,
        );
        values.push(out);
    }
    Ok((x, values))
}

/// Post-training static quantization as deployed: batch norms after convs folded into them
/// (each branch of an unfused block on its own), min/max ranges calibrated on `calibration`
/// with the float reference, then `QuantizedModel::new`. Returns the folded graph's model.
pub fn quantize(
    graph: &Graph,
    weights: &Weights<f32>,
    calibration: &[Tensor<f32>],
) -> Result<QuantizedModel, BackendError> {
    let failed = |e: String| BackendError::failed(NAME, e);
    let folded = fold_batch_norms_graph(graph, graph.name()).map_err(|e| failed(e.to_string()))?;
    let folded_weights = fold_batch_norm_weights(graph, weights, "weights")
        .map_err(|e| BackendError::weights(NAME, e))?;
    let ranges = crate::reference::value_ranges(&folded, &folded_weights, calibration)?;
    QuantizedModel::new(&folded, &folded_weights, &ranges).map_err(|e| failed(e.to_string()))
}

/// Calibration inputs a cell is quantized on when nothing else is given: `count` seeded
/// uniform inputs of `shape` in [-2, 2] (the range of the suite's seeded inputs), seeds from
/// 1000 (never the seed of an input a cell is verified on).
pub fn seeded_calibration(shape: &[usize], count: usize) -> Vec<Tensor<f32>> {
    (0..count as u64)
        .map(|i| models::seeded_uniform(shape.to_vec(), 1000 + i, -2.0, 2.0))
        .collect()
}

/// How many seeded inputs `seeded_calibration` gives a backend that quantizes on its own.
pub const CALIBRATION_INPUTS: usize = 4;

/// `quantize` on `CALIBRATION_INPUTS` seeded inputs: the int8 model of a cell, which every
/// backend that quantizes on its own builds the same way.
pub fn quantize_seeded(
    graph: &Graph,
    weights: &Weights<f32>,
) -> Result<QuantizedModel, BackendError> {
    let calibration = seeded_calibration(graph.input_shape(), CALIBRATION_INPUTS);
    quantize(graph, weights, &calibration)
}

type Input<'a> = (&'a [u8], ActivationQuant, &'a [usize]);

fn run_node(
    op: &Op,
    qop: &QuantizedOp,
    inputs: &[Input],
    out: ActivationQuant,
    shape: &[usize],
) -> Vec<u8> {
    let (x, xq, xshape) = inputs[0];
    let zx = i32::from(xq.zero_point);
    let zo = i32::from(out.zero_point);
    let store =
        |acc: i32, low: u8, high: u8| (acc.saturating_add(zo)).clamp(low.into(), high.into()) as u8;
    match qop {
        QuantizedOp::Gemm {
            weights,
            bias,
            rescale,
            low,
            high,
            ..
        } => {
            let sums = match op {
                Op::Conv2d(c) => conv(c, x, zx, xshape, weights, bias, shape),
                Op::Linear(_) => linear(x, zx, xshape, weights, bias),
                _ => channel_affine(x, zx, xshape, weights, bias),
            };
            let per_channel = sums.len() / (shape[0] * rescale.len());
            sums.iter()
                .enumerate()
                .map(|(j, &acc)| {
                    store(
                        rescale[(j / per_channel) % rescale.len()].apply(acc),
                        *low,
                        *high,
                    )
                })
                .collect()
        }
        QuantizedOp::Table(table) => x.iter().map(|&q| table[usize::from(q)]).collect(),
        QuantizedOp::Fused | QuantizedOp::Reshape => x.to_vec(),
        QuantizedOp::Add {
            inputs: scales,
            low,
            high,
        } => (0..x.len())
            .map(|j| {
                let terms = inputs
                    .iter()
                    .zip(scales)
                    .map(|((data, q, _), s)| (i32::from(data[j]) - i32::from(q.zero_point), *s));
                store(add_sum(terms), *low, *high)
            })
            .collect(),
        QuantizedOp::Mean(rescale) => {
            let area = xshape[2] * xshape[3];
            x.chunks(area)
                .map(|plane| {
                    let sum: i32 = plane.iter().map(|&q| i32::from(q) - zx).sum();
                    store(rescale.apply(sum), 0, 255)
                })
                .collect()
        }
        QuantizedOp::ChannelMul { rescale, low, high } => {
            let (s, sq, sshape) = inputs[1];
            let zs = i32::from(sq.zero_point);
            let area = xshape[2] * xshape[3];
            let per_image = sshape[1];
            (0..x.len())
                .map(|j| {
                    let (n, c) = (j / (xshape[1] * area), (j / area) % xshape[1]);
                    let gate = s[n * per_image + if per_image == 1 { 0 } else { c }];
                    let product = (i32::from(x[j]) - zx) * (i32::from(gate) - zs);
                    store(rescale.apply(product), *low, *high)
                })
                .collect()
        }
    }
}

/// int32 sums of a convolution, [N, C_out, H_out, W_out]: bias plus int8 weight x (q - zero
/// point) over the window; padding is real 0, which contributes nothing.
fn conv(
    c: &Conv2d,
    x: &[u8],
    zx: i32,
    xshape: &[usize],
    w: &[i8],
    bias: &[i32],
    shape: &[usize],
) -> Vec<i32> {
    let (n, hin, win) = (xshape[0], xshape[2], xshape[3]);
    let (hout, wout) = (shape[2], shape[3]);
    let (k, cin_g, cout_g) = (
        c.kernel,
        c.in_channels / c.groups,
        c.out_channels / c.groups,
    );
    let mut sums = Vec::with_capacity(n * c.out_channels * hout * wout);
    for b in 0..n {
        for co in 0..c.out_channels {
            let g = co / cout_g;
            for oy in 0..hout {
                for ox in 0..wout {
                    let mut acc = bias[co];
                    for ci in 0..cin_g {
                        let plane = (b * c.in_channels + g * cin_g + ci) * hin * win;
                        for ky in 0..k {
                            let Some(iy) = (oy * c.stride + ky)
                                .checked_sub(c.padding)
                                .filter(|&y| y < hin)
                            else {
                                continue;
                            };
                            for kx in 0..k {
                                let Some(ix) = (ox * c.stride + kx)
                                    .checked_sub(c.padding)
                                    .filter(|&v| v < win)
                                else {
                                    continue;
                                };
                                let wv = i32::from(w[((co * cin_g + ci) * k + ky) * k + kx]);
                                acc += wv * (i32::from(x[plane + iy * win + ix]) - zx);
                            }
                        }
                    }
                    sums.push(acc);
                }
            }
        }
    }
    sums
}

/// int32 sums of a fully connected layer, [N, outputs].
fn linear(x: &[u8], zx: i32, xshape: &[usize], w: &[i8], bias: &[i32]) -> Vec<i32> {
    let inputs = xshape[1];
    x.chunks(inputs)
        .flat_map(|row| {
            bias.iter().enumerate().map(move |(o, &b)| {
                let weights = &w[o * inputs..(o + 1) * inputs];
                row.iter().zip(weights).fold(b, |acc, (&q, &wv)| {
                    acc + i32::from(wv) * (i32::from(q) - zx)
                })
            })
        })
        .collect()
}

/// int32 sums of a per-channel affine (a batch norm as a 1x1 depthwise conv).
fn channel_affine(x: &[u8], zx: i32, xshape: &[usize], w: &[i8], bias: &[i32]) -> Vec<i32> {
    let (channels, area) = (xshape[1], xshape[2] * xshape[3]);
    x.iter()
        .enumerate()
        .map(|(j, &q)| {
            let c = (j / area) % channels;
            bias[c] + i32::from(w[c]) * (i32::from(q) - zx)
        })
        .collect()
}

#[cfg(test)]
mod tests;
