//! The 30-layer plain CNN of the paper's activation and block studies, with the activation
//! swapped (ReLU, GELU, SiLU, hard-swish, SE-ReLU, dynamic ReLU A and B, dynamic shift-max)
//! and optionally a skip connection around every stride-1 layer.
//!
//! Layout (every layer a 3x3 conv + BN + the activation): the stem, 3 -> 32 channels at
//! stride 2 (112x112); then four stages of 8, 7, 7 and 7 layers at 32, 64, 128 and 256
//! channels, each starting with stride 2 (56, 28, 14, 7); then global average pooling and a
//! 256 -> 1000 classifier. 30 convs, 0.81 GMACs at 224x224.

use std::fmt;

use crate::graph::{Graph, GraphError, Op, ValueId};
use crate::model::InputSize;

use super::layers::Net;

/// The stages after the stem: (layers, channels).
pub const STAGES: [(usize, usize); 4] = [(8, 32), (7, 64), (7, 128), (7, 256)];
/// Channel reduction of the SE and dynamic-activation coefficient branches.
pub const REDUCTION: usize = 4;

/// The activation of every layer of the plain CNN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Activation {
    Relu,
    Gelu,
    Silu,
    HardSwish,
    /// ReLU followed by squeeze-excite.
    SeRelu,
    /// Dynamic ReLU-A: max_k(a_k x + b_k) with 2 x 2 coefficients per image, shared by all
    /// channels.
    DynamicReluA,
    /// Dynamic ReLU-B: the same with coefficients per image and channel.
    DynamicReluB,
    /// Dynamic shift-max: max over 2 of (a x_c + b x_(c + C/G)), coefficients per channel,
    /// G = 4 channel groups.
    DynamicShiftMax,
}

impl Activation {
    pub const ALL: [Activation; 8] = [
        Activation::Relu,
        Activation::Gelu,
        Activation::Silu,
        Activation::HardSwish,
        Activation::SeRelu,
        Activation::DynamicReluA,
        Activation::DynamicReluB,
        Activation::DynamicShiftMax,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Gelu => "gelu",
            Activation::Silu => "silu",
            Activation::HardSwish => "hardswish",
            Activation::SeRelu => "se-relu",
            Activation::DynamicReluA => "dyrelu-a",
            Activation::DynamicReluB => "dyrelu-b",
            Activation::DynamicShiftMax => "dyshiftmax",
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub fn plain30(
    activation: Activation,
    skip: bool,
    input: InputSize,
    name: &str,
) -> Result<Graph, GraphError> {
    let mut net = Net::new(name, input)?;
    let x = net.conv_bn("stem", ValueId::Input, 32, 3, 2, 1, None)?;
    let mut x = activate(&mut net, "stem", x, activation)?;
    for (s, (layers, width)) in STAGES.into_iter().enumerate() {
        for j in 0..layers {
            let name = format!("stage{}.{j}", s + 1);
            let stride = if j == 0 { 2 } else { 1 };
            let y = net.conv_bn(&name, x, width, 3, stride, 1, None)?;
            let y = activate(&mut net, &name, y, activation)?;
            x = if skip && stride == 1 {
                net.op(&format!("{name}.add"), Op::Add, &[x, y])?
            } else {
                y
            };
        }
    }
    let logits = net.classifier(x)?;
    Ok(net.finish(logits))
}

fn activate(net: &mut Net, name: &str, x: ValueId, a: Activation) -> Result<ValueId, GraphError> {
    let simple = |op| Some(op);
    let op = match a {
        Activation::Relu => simple(Op::Relu),
        Activation::Gelu => simple(Op::Gelu),
        Activation::Silu => simple(Op::Silu),
        Activation::HardSwish => simple(Op::HardSwish),
        _ => None,
    };
    if let Some(op) = op {
        return net.op(&format!("{name}.act"), op, &[x]);
    }
    let c = net.channels(x);
    match a {
        Activation::SeRelu => {
            let y = net.op(&format!("{name}.act"), Op::Relu, &[x])?;
            net.squeeze_excite(
                &format!("{name}.se"),
                y,
                c / REDUCTION,
                &Op::Relu,
                &Op::Sigmoid,
            )
        }
        Activation::DynamicReluA => dynamic_relu(net, name, x, 1),
        Activation::DynamicReluB => dynamic_relu(net, name, x, c),
        _ => dynamic_shift_max(net, name, x),
    }
}

/// The coefficient branch of a dynamic activation: avgpool, 1x1 reduce + ReLU, 1x1 to
/// `count` values, then `gate`; returns the `parts` equal slices of the result.
fn coefficients(
    net: &mut Net,
    name: &str,
    x: ValueId,
    count: usize,
    gate: Op,
    parts: usize,
) -> Result<Vec<ValueId>, GraphError> {
    let c = net.channels(x);
    let pooled = net.op(&format!("{name}.coef.pool"), Op::GlobalAvgPool, &[x])?;
    let reduced = net.conv(
        &format!("{name}.coef.reduce"),
        pooled,
        c / REDUCTION,
        1,
        1,
        1,
        true,
    )?;
    let reduced = net.op(&format!("{name}.coef.act"), Op::Relu, &[reduced])?;
    let theta = net.conv(
        &format!("{name}.coef.expand"),
        reduced,
        count,
        1,
        1,
        1,
        true,
    )?;
    let theta = net.op(&format!("{name}.coef.gate"), gate, &[theta])?;
    let each = count / parts;
    (0..parts)
        .map(|i| {
            let slice = Op::Slice {
                start: i * each,
                end: (i + 1) * each,
            };
            net.op(&format!("{name}.coef.{i}"), slice, &[theta])
        })
        .collect()
}

/// max(a1 x + b1, a2 x + b2) with coefficients per image and `per` channels (1 or C). The
/// coefficients are sigmoid outputs; the paper's affine map of them (alpha + lambda (2 s - 1))
/// is left out: it acts on 4C numbers per image and changes no cost that matters here.
fn dynamic_relu(net: &mut Net, name: &str, x: ValueId, per: usize) -> Result<ValueId, GraphError> {
    let k = coefficients(net, name, x, 4 * per, Op::Sigmoid, 4)?;
    let mut pieces = Vec::new();
    for j in 0..2 {
        let scaled = net.op(&format!("{name}.mul{j}"), Op::ChannelMul, &[x, k[2 * j]])?;
        pieces.push(net.op(
            &format!("{name}.add{j}"),
            Op::ChannelAdd,
            &[scaled, k[2 * j + 1]],
        )?);
    }
    net.op(&format!("{name}.max"), Op::Max, &pieces)
}

/// Seeded weights for dynamic shift-max start as MicroNet initializes it: near the identity.
/// Each coefficient branch's last 1x1 conv gets a bias of +3.5 for the first piece's
/// coefficient on x and -3.5 for the other three, and a tenth of its drawn weights, so the
/// hard-sigmoid gates start saturated at 1 and 0: each activation starts as max(x, 0). Drawn
/// as is, the 30 layers' data-dependent channel mixings made the network chaotic at 224x224
/// (a 1e-6 change of the input changed the output by 69%), so no backend could be verified.
pub fn near_identity_shift_max(weights: &mut crate::Weights<f32>) {
    let expands: Vec<String> = weights
        .iter()
        .map(|(name, _)| name.clone())
        .filter(|name| name.ends_with(".coef.expand.bias") || name.ends_with(".coef.expand.weight"))
        .collect();
    for name in expands {
        let Some(tensor) = weights.remove(&name) else {
            continue;
        };
        let shape = tensor.shape().to_vec();
        let mut data = tensor.into_data();
        if name.ends_with(".bias") {
            let c = data.len() / 4;
            for (i, b) in data.iter_mut().enumerate() {
                *b = if i < c { 3.5 } else { -3.5 };
            }
        } else {
            data.iter_mut().for_each(|w| *w *= 0.1);
        }
        let tensor = crate::Tensor::new(shape, data).expect("same shape");
        weights.insert(name, tensor);
    }
}

/// Dynamic shift-max (MicroNet), J = 2 shifts and K = 2 pieces: with x' the channels rolled
/// by C / 4, max over k of (a_k x + b_k x'); a hard-sigmoid gates the coefficients.
fn dynamic_shift_max(net: &mut Net, name: &str, x: ValueId) -> Result<ValueId, GraphError> {
    let c = net.channels(x);
    let shift = c / 4;
    let k = coefficients(net, name, x, 4 * c, Op::HardSigmoid, 4)?;
    let tail = net.op(
        &format!("{name}.roll.tail"),
        Op::Slice {
            start: shift,
            end: c,
        },
        &[x],
    )?;
    let head = net.op(
        &format!("{name}.roll.head"),
        Op::Slice {
            start: 0,
            end: shift,
        },
        &[x],
    )?;
    let rolled = net.op(&format!("{name}.roll"), Op::Concat, &[tail, head])?;
    let mut pieces = Vec::new();
    for j in 0..2 {
        let a = net.op(&format!("{name}.mul{j}a"), Op::ChannelMul, &[x, k[2 * j]])?;
        let b = net.op(
            &format!("{name}.mul{j}b"),
            Op::ChannelMul,
            &[rolled, k[2 * j + 1]],
        )?;
        pieces.push(net.op(&format!("{name}.sum{j}"), Op::Add, &[a, b])?);
    }
    net.op(&format!("{name}.max"), Op::Max, &pieces)
}
