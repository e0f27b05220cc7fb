//! The depthwise-separable and inverted-residual families: MobileNetV1, MobileNetV2,
//! MobileNetV3-Large, EfficientNet-B0 (torchvision's definitions), MNASNet-A1 and MixNet-S
//! (timm's), and MobileNeXt (the sandglass block). One block function serves them all; each
//! model is its table of blocks, transcribed from the reference code named on it.

use crate::graph::{Graph, GraphError, Op, ValueId};
use crate::model::InputSize;

use super::layers::{make_divisible, Net};

/// One inverted-residual block: [expand 1x1] -> depthwise (mixed) -> [SE] -> project 1x1.
struct Inverted<'a> {
    mid: usize,
    out: usize,
    /// One depthwise kernel per channel group (timm's mixed kernels); usually one.
    kernels: &'a [usize],
    stride: usize,
    /// Channel groups of the expansion and projection 1x1 convs (MixNet's `a1.1`, `p1.1`).
    expand_groups: usize,
    project_groups: usize,
    act: Op,
    /// (squeeze width, SE activation, gate).
    se: Option<(usize, Op, Op)>,
}

fn inverted_residual(
    net: &mut Net,
    name: &str,
    x: ValueId,
    b: &Inverted,
) -> Result<ValueId, GraphError> {
    let cin = net.channels(x);
    let mut y = x;
    if b.mid != cin {
        let ones = vec![1; b.expand_groups];
        y = net.mixed_conv(&format!("{name}.expand.conv"), y, b.mid, &ones, 1, false)?;
        y = net.bn(&format!("{name}.expand.bn"), y)?;
        y = net.act(&format!("{name}.expand.act"), y, Some(&b.act))?;
    }
    y = net.mixed_conv(
        &format!("{name}.dw.conv"),
        y,
        b.mid,
        b.kernels,
        b.stride,
        true,
    )?;
    y = net.bn(&format!("{name}.dw.bn"), y)?;
    y = net.act(&format!("{name}.dw.act"), y, Some(&b.act))?;
    if let Some((squeeze, act, gate)) = &b.se {
        y = net.squeeze_excite(&format!("{name}.se"), y, *squeeze, act, gate)?;
    }
    let ones = vec![1; b.project_groups];
    y = net.mixed_conv(&format!("{name}.project.conv"), y, b.out, &ones, 1, false)?;
    y = net.bn(&format!("{name}.project.bn"), y)?;
    if b.stride == 1 && cin == b.out {
        y = net.op(&format!("{name}.add"), Op::Add, &[x, y])?;
    }
    Ok(y)
}

/// Depthwise + BN + act, then pointwise + BN (+ act when `pw_act`); a skip when the shape
/// allows and `skip` is set (timm's `ds` and `dsa` blocks).
fn depthwise_separable(
    net: &mut Net,
    name: &str,
    x: ValueId,
    (out, stride): (usize, usize),
    act: &Op,
    pw_act: bool,
    skip: bool,
) -> Result<ValueId, GraphError> {
    let cin = net.channels(x);
    let y = net.dw_bn(&format!("{name}.dw"), x, 3, stride, Some(act))?;
    let y = net.conv_bn(
        &format!("{name}.pw"),
        y,
        out,
        1,
        1,
        1,
        pw_act.then_some(act),
    )?;
    if skip && stride == 1 && cin == out {
        return net.op(&format!("{name}.add"), Op::Add, &[x, y]);
    }
    Ok(y)
}

/// MobileNetV1 1.0 as timm's `mobilenetv1_100`: a 32-wide stem and 13 `dsa` blocks
/// (pointwise activation, no skips), ReLU, 1024 features.
pub fn mobilenet_v1(input: InputSize, name: &str) -> Result<Graph, GraphError> {
    let mut net = Net::new(name, input)?;
    let relu = Op::Relu;
    let mut x = net.conv_bn("stem", ValueId::Input, 32, 3, 2, 1, Some(&relu))?;
    let plan: [(usize, usize, usize); 5] = [
        (64, 1, 1),
        (128, 2, 2),
        (256, 2, 2),
        (512, 6, 2),
        (1024, 2, 2),
    ];
    let mut i = 0;
    for (out, repeats, stride) in plan {
        for r in 0..repeats {
            let s = if r == 0 { stride } else { 1 };
            x = depthwise_separable(
                &mut net,
                &format!("blocks.{i}"),
                x,
                (out, s),
                &relu,
                true,
                false,
            )?;
            i += 1;
        }
    }
    let logits = net.classifier(x)?;
    Ok(net.finish(logits))
}

/// MobileNetV2 1.0 as torchvision's `mobilenet_v2`: ReLU6, hidden width round(in * t).
pub fn mobilenet_v2(input: InputSize, name: &str) -> Result<Graph, GraphError> {
    let mut net = Net::new(name, input)?;
    let act = Op::Relu6;
    let mut x = net.conv_bn("stem", ValueId::Input, 32, 3, 2, 1, Some(&act))?;
    // t, c, n, s
    let settings: [(usize, usize, usize, usize); 7] = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ];
    let mut i = 0;
    for (t, c, n, s) in settings {
        for r in 0..n {
            let cin = net.channels(x);
            let block = Inverted {
                mid: cin * t,
                out: c,
                kernels: &[3],
                stride: if r == 0 { s } else { 1 },
                expand_groups: 1,
                project_groups: 1,
                act: act.clone(),
                se: None,
            };
            x = inverted_residual(&mut net, &format!("blocks.{i}"), x, &block)?;
            i += 1;
        }
    }
    x = net.conv_bn("head.conv", x, 1280, 1, 1, 1, Some(&act))?;
    let logits = net.classifier(x)?;
    Ok(net.finish(logits))
}

/// MobileNetV3-Large 1.0 as torchvision's `mobilenet_v3_large`: SE squeeze
/// make_divisible(exp / 4, 8) with ReLU and hard-sigmoid; a 1280-wide hidden classifier.
pub fn mobilenet_v3_large(input: InputSize, name: &str) -> Result<Graph, GraphError> {
    let mut net = Net::new(name, input)?;
    let (re, hs) = (Op::Relu, Op::HardSwish);
    let mut x = net.conv_bn("stem", ValueId::Input, 16, 3, 2, 1, Some(&hs))?;
    // kernel, expanded, out, SE, hard-swish, stride
    let settings: [(usize, usize, usize, bool, bool, usize); 15] = [
        (3, 16, 16, false, false, 1),
        (3, 64, 24, false, false, 2),
        (3, 72, 24, false, false, 1),
        (5, 72, 40, true, false, 2),
        (5, 120, 40, true, false, 1),
        (5, 120, 40, true, false, 1),
        (3, 240, 80, false, true, 2),
        (3, 200, 80, false, true, 1),
        (3, 184, 80, false, true, 1),
        (3, 184, 80, false, true, 1),
        (3, 480, 112, true, true, 1),
        (3, 672, 112, true, true, 1),
        (5, 672, 160, true, true, 2),
        (5, 960, 160, true, true, 1),
        (5, 960, 160, true, true, 1),
    ];
    for (i, (k, exp, out, se, use_hs, s)) in settings.into_iter().enumerate() {
        let block = Inverted {
            mid: exp,
            out,
            kernels: &[k],
            stride: s,
            expand_groups: 1,
            project_groups: 1,
            act: if use_hs { hs.clone() } else { re.clone() },
            se: se.then(|| {
                (
                    make_divisible(exp as f64 / 4.0, 8),
                    Op::Relu,
                    Op::HardSigmoid,
                )
            }),
        };
        x = inverted_residual(&mut net, &format!("blocks.{i}"), x, &block)?;
    }
    x = net.conv_bn("head.conv", x, 960, 1, 1, 1, Some(&hs))?;
    let pooled = net.op("head.pool", Op::GlobalAvgPool, &[x])?;
    let flat = net.op("head.flatten", Op::Flatten, &[pooled])?;
    let hidden = net.linear("head.fc1", flat, 1280)?;
    let hidden = net.op("head.act", hs, &[hidden])?;
    let logits = net.linear("head.fc", hidden, crate::mobileone::NUM_CLASSES)?;
    Ok(net.finish(logits))
}

/// EfficientNet-B0 as torchvision's `efficientnet_b0`: SiLU, hidden width
/// make_divisible(in * t, 8), SE squeeze max(1, in / 4) with SiLU and sigmoid.
pub fn efficientnet_b0(input: InputSize, name: &str) -> Result<Graph, GraphError> {
    let mut net = Net::new(name, input)?;
    let act = Op::Silu;
    let mut x = net.conv_bn("stem", ValueId::Input, 32, 3, 2, 1, Some(&act))?;
    // expand, kernel, stride, out, layers
    let settings: [(usize, usize, usize, usize, usize); 7] = [
        (1, 3, 1, 16, 1),
        (6, 3, 2, 24, 2),
        (6, 5, 2, 40, 2),
        (6, 3, 2, 80, 3),
        (6, 5, 1, 112, 3),
        (6, 5, 2, 192, 4),
        (6, 3, 1, 320, 1),
    ];
    let mut i = 0;
    for (t, k, s, out, n) in settings {
        for r in 0..n {
            let cin = net.channels(x);
            let block = Inverted {
                mid: make_divisible((cin * t) as f64, 8),
                out,
                kernels: &[k],
                stride: if r == 0 { s } else { 1 },
                expand_groups: 1,
                project_groups: 1,
                act: act.clone(),
                se: Some(((cin / 4).max(1), Op::Silu, Op::Sigmoid)),
            };
            x = inverted_residual(&mut net, &format!("blocks.{i}"), x, &block)?;
            i += 1;
        }
    }
    x = net.conv_bn("head.conv", x, 1280, 1, 1, 1, Some(&act))?;
    let logits = net.classifier(x)?;
    Ok(net.finish(logits))
}

/// One row of a timm architecture table (`ir_r{repeats}_k{kernels}_a{..}_p{..}_s{stride}_e{exp}_c{out}_se{ratio}`).
struct TimmStage {
    repeats: usize,
    kernels: &'static [usize],
    expand_groups: usize,
    project_groups: usize,
    stride: usize,
    exp: usize,
    out: usize,
    se: f64,
    swish: bool,
}

#[allow(clippy::too_many_arguments)]
const fn stage(
    repeats: usize,
    kernels: &'static [usize],
    (expand_groups, project_groups): (usize, usize),
    stride: usize,
    exp: usize,
    out: usize,
    se: f64,
    swish: bool,
) -> TimmStage {
    TimmStage {
        repeats,
        kernels,
        expand_groups,
        project_groups,
        stride,
        exp,
        out,
        se,
        swish,
    }
}

/// timm's EfficientNet builder for `ir` rows: mid = make_divisible(in * e, 8); the SE squeeze
/// is round(in * ratio) (the ratio is taken of the block input) with the block's activation.
fn timm_stages(
    net: &mut Net,
    mut x: ValueId,
    stages: &[TimmStage],
    first: usize,
) -> Result<ValueId, GraphError> {
    let mut i = first;
    for st in stages {
        for r in 0..st.repeats {
            let cin = net.channels(x);
            let act = if st.swish { Op::Silu } else { Op::Relu };
            let squeeze = (cin as f64 * st.se).round() as usize;
            let block = Inverted {
                mid: make_divisible((cin * st.exp) as f64, 8),
                out: st.out,
                kernels: st.kernels,
                stride: if r == 0 { st.stride } else { 1 },
                expand_groups: st.expand_groups,
                project_groups: st.project_groups,
                act: act.clone(),
                se: (st.se > 0.0).then_some((squeeze, act, Op::Sigmoid)),
            };
            x = inverted_residual(net, &format!("blocks.{i}"), x, &block)?;
            i += 1;
        }
    }
    Ok(x)
}

/// MNASNet-A1 as timm's `semnasnet_100` (`_gen_mnasnet_a1`): ReLU, SE in three stages.
pub fn mnasnet_a1(input: InputSize, name: &str) -> Result<Graph, GraphError> {
    let mut net = Net::new(name, input)?;
    let relu = Op::Relu;
    let x = net.conv_bn("stem", ValueId::Input, 32, 3, 2, 1, Some(&relu))?;
    // ds_r1_k3_s1_e1_c16_noskip
    let x = depthwise_separable(&mut net, "blocks.0", x, (16, 1), &relu, false, false)?;
    let stages = [
        stage(2, &[3], (1, 1), 2, 6, 24, 0.0, false),
        stage(3, &[5], (1, 1), 2, 3, 40, 0.25, false),
        stage(4, &[3], (1, 1), 2, 6, 80, 0.0, false),
        stage(2, &[3], (1, 1), 1, 6, 112, 0.25, false),
        stage(3, &[5], (1, 1), 2, 6, 160, 0.25, false),
        stage(1, &[3], (1, 1), 1, 6, 320, 0.0, false),
    ];
    let x = timm_stages(&mut net, x, &stages, 1)?;
    let x = net.conv_bn("head.conv", x, 1280, 1, 1, 1, Some(&relu))?;
    let logits = net.classifier(x)?;
    Ok(net.finish(logits))
}

/// MixNet-S as timm's `mixnet_s` (`_gen_mixnet_s`): mixed depthwise kernels 3 to 11, grouped
/// 1x1 convs (as split convs), swish from the third stage, 1536 features.
pub fn mixnet_s(input: InputSize, name: &str) -> Result<Graph, GraphError> {
    let mut net = Net::new(name, input)?;
    let relu = Op::Relu;
    let x = net.conv_bn("stem", ValueId::Input, 16, 3, 2, 1, Some(&relu))?;
    // ds_r1_k3_s1_e1_c16 (a skip: 16 -> 16, stride 1)
    let x = depthwise_separable(&mut net, "blocks.0", x, (16, 1), &relu, false, true)?;
    let stages = [
        stage(1, &[3], (2, 2), 2, 6, 24, 0.0, false),
        stage(1, &[3], (2, 2), 1, 3, 24, 0.0, false),
        stage(1, &[3, 5, 7], (1, 1), 2, 6, 40, 0.5, true),
        stage(3, &[3, 5], (2, 2), 1, 6, 40, 0.5, true),
        stage(1, &[3, 5, 7], (1, 2), 2, 6, 80, 0.25, true),
        stage(2, &[3, 5], (1, 2), 1, 6, 80, 0.25, true),
        stage(1, &[3, 5, 7], (2, 2), 1, 6, 120, 0.5, true),
        stage(2, &[3, 5, 7, 9], (2, 2), 1, 3, 120, 0.5, true),
        stage(1, &[3, 5, 7, 9, 11], (1, 1), 2, 6, 200, 0.5, true),
        stage(2, &[3, 5, 7, 9], (1, 2), 1, 6, 200, 0.5, true),
    ];
    let x = timm_stages(&mut net, x, &stages, 1)?;
    let x = net.conv_bn("head.conv", x, 1536, 1, 1, 1, Some(&relu))?;
    let logits = net.classifier(x)?;
    Ok(net.finish(logits))
}

/// MobileNeXt 1.4x as in the authors' code (`mobilenext.py`, keep_3x3 off, full identity):
/// the sandglass block is [depthwise 3x3 + ReLU6] -> 1x1 reduce to in / t (at least
/// out / 6 rounded up to 16) -> 1x1 expand + ReLU6 -> [depthwise 3x3 with the stride]; the
/// first depthwise conv exists when t = 2 or the widths match, the second also at stride 2.
pub fn mobilenext_140(input: InputSize, name: &str) -> Result<Graph, GraphError> {
    let width = 1.4;
    let mut net = Net::new(name, input)?;
    let act = Op::Relu6;
    let stem = make_divisible(32.0 * width, 8);
    let mut x = net.conv_bn("stem", ValueId::Input, stem, 3, 2, 1, Some(&act))?;
    // t, c, n, s
    let settings: [(usize, usize, usize, usize); 8] = [
        (2, 96, 1, 2),
        (6, 144, 1, 1),
        (6, 192, 3, 2),
        (6, 288, 3, 2),
        (6, 384, 4, 1),
        (6, 576, 4, 2),
        (6, 960, 3, 1),
        (6, 1280, 1, 1),
    ];
    let mut i = 0;
    for (t, c, n, s) in settings {
        let out = make_divisible(c as f64 * width, 8);
        for r in 0..n {
            let stride = if r == 0 { s } else { 1 };
            x = sandglass(&mut net, &format!("blocks.{i}"), x, (out, stride), t, &act)?;
            i += 1;
        }
    }
    let logits = net.classifier(x)?;
    Ok(net.finish(logits))
}

fn sandglass(
    net: &mut Net,
    name: &str,
    x: ValueId,
    (out, stride): (usize, usize),
    t: usize,
    act: &Op,
) -> Result<ValueId, GraphError> {
    let cin = net.channels(x);
    let mut hidden = cin / t;
    if (hidden as f64) < out as f64 / 6.0 {
        hidden = make_divisible((out as f64 / 6.0).ceil(), 16);
    }
    let mut y = x;
    if t == 2 || cin == out {
        y = net.dw_bn(&format!("{name}.dw1"), y, 3, 1, Some(act))?;
    }
    if t != 1 {
        y = net.conv_bn(&format!("{name}.reduce"), y, hidden, 1, 1, 1, None)?;
    }
    y = net.conv_bn(&format!("{name}.expand"), y, out, 1, 1, 1, Some(act))?;
    if t == 2 || cin == out || stride == 2 {
        y = net.dw_bn(&format!("{name}.dw2"), y, 3, stride, None)?;
    }
    if stride == 1 && cin == out {
        y = net.op(&format!("{name}.add"), Op::Add, &[x, y])?;
    }
    Ok(y)
}
