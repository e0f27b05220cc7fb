//! Dense and shuffle architectures: ResNet-18 and ShuffleNetV2 2.0x (torchvision's
//! definitions) and RepVGG-A0 (a MobileOne-style block stack: 3x3 + 1x1 + identity branches
//! that fold into one 3x3 conv).

use crate::graph::{Graph, GraphError, MaxPool2d, Op, ValueId};
use crate::mobileone::{build_blocks, BlockSpec};
use crate::model::{Form, InputSize};

use super::layers::Net;

fn stem_pool(net: &mut Net, x: ValueId) -> Result<ValueId, GraphError> {
    let pool = MaxPool2d {
        kernel: 3,
        stride: 2,
        padding: 1,
    };
    net.op("stem.pool", Op::MaxPool2d(pool), &[x])
}

/// ResNet-18 as torchvision's `resnet18`: 7x7 stem and max pool, four stages of two basic
/// blocks (64, 128, 256, 512), 1x1 stride-2 downsampling shortcuts.
pub fn resnet18(input: InputSize, name: &str) -> Result<Graph, GraphError> {
    let mut net = Net::new(name, input)?;
    let relu = Op::Relu;
    let x = net.conv("stem.conv", ValueId::Input, 64, 7, 2, 1, false)?;
    let x = net.bn("stem.bn", x)?;
    let x = net.act("stem.act", x, Some(&relu))?;
    let mut x = stem_pool(&mut net, x)?;
    for (stage, width) in [64, 128, 256, 512].into_iter().enumerate() {
        for block in 0..2 {
            let name = format!("layer{}.{block}", stage + 1);
            let stride = if block == 0 && stage > 0 { 2 } else { 1 };
            let y = net.conv_bn(
                &format!("{name}.conv1"),
                x,
                width,
                3,
                stride,
                1,
                Some(&relu),
            )?;
            let y = net.conv_bn(&format!("{name}.conv2"), y, width, 3, 1, 1, None)?;
            let shortcut = if stride != 1 || net.channels(x) != width {
                net.conv_bn(&format!("{name}.downsample"), x, width, 1, stride, 1, None)?
            } else {
                x
            };
            let sum = net.op(&format!("{name}.add"), Op::Add, &[y, shortcut])?;
            x = net.op(&format!("{name}.relu"), Op::Relu, &[sum])?;
        }
    }
    let logits = net.classifier(x)?;
    Ok(net.finish(logits))
}

/// ShuffleNetV2 2.0x as torchvision's `shufflenet_v2_x2_0`: stages of 4, 8, 4 units at
/// 244, 488, 976 channels, a 2048-wide last conv. A stride-1 unit splits the channels in two,
/// transforms one half and concatenates; every unit ends in a channel shuffle of 2 groups.
pub fn shufflenet_v2_x2(input: InputSize, name: &str) -> Result<Graph, GraphError> {
    let mut net = Net::new(name, input)?;
    let relu = Op::Relu;
    let x = net.conv_bn("stem", ValueId::Input, 24, 3, 2, 1, Some(&relu))?;
    let mut x = stem_pool(&mut net, x)?;
    for (stage, (repeats, out)) in [(4, 244), (8, 488), (4, 976)].into_iter().enumerate() {
        for unit in 0..repeats {
            let name = format!("stage{}.{unit}", stage + 2);
            let half = out / 2;
            let (left, right_in, stride) = if unit == 0 {
                let l = net.dw_bn(&format!("{name}.branch1.dw"), x, 3, 2, None)?;
                let l =
                    net.conv_bn(&format!("{name}.branch1.pw"), l, half, 1, 1, 1, Some(&relu))?;
                (l, x, 2)
            } else {
                let c = net.channels(x);
                let l = net.op(
                    &format!("{name}.split0"),
                    Op::Slice {
                        start: 0,
                        end: c / 2,
                    },
                    &[x],
                )?;
                let r = net.op(
                    &format!("{name}.split1"),
                    Op::Slice {
                        start: c / 2,
                        end: c,
                    },
                    &[x],
                )?;
                (l, r, 1)
            };
            let r = net.conv_bn(
                &format!("{name}.branch2.pw1"),
                right_in,
                half,
                1,
                1,
                1,
                Some(&relu),
            )?;
            let r = net.dw_bn(&format!("{name}.branch2.dw"), r, 3, stride, None)?;
            let r = net.conv_bn(
                &format!("{name}.branch2.pw2"),
                r,
                half,
                1,
                1,
                1,
                Some(&relu),
            )?;
            let joined = net.op(&format!("{name}.concat"), Op::Concat, &[left, r])?;
            x = net.op(
                &format!("{name}.shuffle"),
                Op::ChannelShuffle { groups: 2 },
                &[joined],
            )?;
        }
    }
    let x = net.conv_bn("conv5", x, 2048, 1, 1, 1, Some(&relu))?;
    let logits = net.classifier(x)?;
    Ok(net.finish(logits))
}

/// RepVGG-A0's blocks (a = 0.75, b = 2.5): a 48-wide stride-2 stem, then stages of 2, 4, 14
/// and 1 blocks at 48, 96, 192 and 1280 channels, each stage starting with stride 2. A block is
/// a 3x3 conv+BN, a 1x1 conv+BN and (stride 1, equal widths) an identity BN, summed.
pub fn repvgg_a0_blocks() -> Vec<BlockSpec> {
    let mut blocks = Vec::new();
    let mut cin = 3;
    let stages = [(1, 48), (2, 48), (4, 96), (14, 192), (1, 1280)];
    for (stage, (repeats, width)) in stages.into_iter().enumerate() {
        for j in 0..repeats {
            blocks.push(BlockSpec {
                name: format!("stage{stage}.{j}"),
                in_channels: cin,
                out_channels: width,
                kernel: 3,
                stride: if j == 0 { 2 } else { 1 },
                groups: 1,
                conv_branches: 1,
                se: false,
            });
            cin = width;
        }
    }
    blocks
}

pub fn repvgg_a0(form: Form, input: InputSize, name: &str) -> Result<Graph, GraphError> {
    build_blocks(name, &repvgg_a0_blocks(), form, input, 1280)
}
