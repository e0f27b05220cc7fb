//! MobileOne S0-S4 exactly as Apple's ml-mobileone defines them: the per-variant spec, the
//! block plan (one entry per MobileOne block, shared by the graph builder, the fold and the
//! checkpoint loader), and the graph of either form. Parameter names follow Apple's reference
//! implementation (`stage1.0.rbr_conv.0.conv.weight`, `reparam_conv`, `linear`).

use std::fmt;
use std::str::FromStr;

use crate::graph::{BatchNorm, Conv2d, Graph, GraphBuilder, GraphError, Linear, Op, ValueId};
use crate::model::{Form, InputSize, UnknownName};

/// Batch-norm epsilon of every MobileOne BN.
pub const BN_EPS: f64 = 1e-5;
/// Number of ImageNet classes of the head.
pub const NUM_CLASSES: usize = 1000;
const BASE_CHANNELS: [usize; 4] = [64, 128, 256, 512];
const BLOCKS_PER_STAGE: [usize; 4] = [2, 8, 10, 1];
const SE_RATIO: f64 = 0.0625;

/// One of the five published MobileOne variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Variant {
    S0,
    S1,
    S2,
    S3,
    S4,
}

impl Variant {
    pub const ALL: [Variant; 5] = [
        Variant::S0,
        Variant::S1,
        Variant::S2,
        Variant::S3,
        Variant::S4,
    ];

    /// Canonical name, e.g. `mobileone-s0`.
    pub fn name(self) -> &'static str {
        match self {
            Variant::S0 => "mobileone-s0",
            Variant::S1 => "mobileone-s1",
            Variant::S2 => "mobileone-s2",
            Variant::S3 => "mobileone-s3",
            Variant::S4 => "mobileone-s4",
        }
    }

    /// Width multipliers w1..w4 of the four stages.
    pub fn width_multipliers(self) -> [f64; 4] {
        match self {
            Variant::S0 => [0.75, 1.0, 1.0, 2.0],
            Variant::S1 => [1.5, 1.5, 2.0, 2.5],
            Variant::S2 => [1.5, 2.0, 2.5, 4.0],
            Variant::S3 => [2.0, 2.5, 3.0, 4.0],
            Variant::S4 => [3.0, 3.5, 3.5, 4.0],
        }
    }

    /// Over-parameterization factor k: conv branches per block (outside the stem).
    pub fn conv_branches(self) -> usize {
        match self {
            Variant::S0 => 4,
            _ => 1,
        }
    }

    pub fn has_se(self) -> bool {
        self == Variant::S4
    }

    /// Output channels of the stem and of stages 1..4.
    pub fn channels(self) -> [usize; 5] {
        let w = self.width_multipliers();
        let stage = |i: usize| (BASE_CHANNELS[i] as f64 * w[i]) as usize;
        [
            64.min((64.0 * w[0]) as usize),
            stage(0),
            stage(1),
            stage(2),
            stage(3),
        ]
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Variant {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let short = lower.strip_prefix("mobileone-").unwrap_or(&lower);
        Variant::ALL
            .into_iter()
            .find(|v| v.name().ends_with(&format!("-{short}")))
            .ok_or_else(|| UnknownName {
                what: "model",
                found: s.to_string(),
                allowed: "mobileone-s0 .. mobileone-s4 (or s0 .. s4)".into(),
            })
    }
}

/// One MobileOne block (a "layer" in Apple's code): its conv geometry and its branches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSpec {
    /// Name prefix: `stage0` for the stem, `stage{s}.{j}` otherwise.
    pub name: String,
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub groups: usize,
    /// Number of kxk conv + BN branches.
    pub conv_branches: usize,
    pub se: bool,
}

impl BlockSpec {
    pub fn padding(&self) -> usize {
        self.kernel / 2
    }

    /// The 1x1 scale branch exists when the kernel is larger than 1.
    pub fn has_scale(&self) -> bool {
        self.kernel > 1
    }

    /// The BN identity branch exists for stride 1 and equal widths.
    pub fn has_identity(&self) -> bool {
        self.stride == 1 && self.in_channels == self.out_channels
    }

    /// Squeeze-excite reduced width.
    pub fn se_channels(&self) -> usize {
        (self.out_channels as f64 * SE_RATIO) as usize
    }

    /// The block's main conv (kernel, stride, padding, groups), with or without bias.
    pub fn conv(&self, kernel: usize, bias: bool) -> Conv2d {
        Conv2d {
            in_channels: self.in_channels,
            out_channels: self.out_channels,
            kernel,
            stride: self.stride,
            padding: kernel / 2,
            groups: self.groups,
            bias,
        }
    }
}

/// The blocks of a variant in execution order: the stem, then dw/pw pairs of stages 1..4.
pub fn block_plan(variant: Variant) -> Vec<BlockSpec> {
    let ch = variant.channels();
    let mut blocks = vec![BlockSpec {
        name: "stage0".into(),
        in_channels: 3,
        out_channels: ch[0],
        kernel: 3,
        stride: 2,
        groups: 1,
        conv_branches: 1,
        se: false,
    }];
    let mut in_ch = ch[0];
    for stage in 1..=4 {
        let width = ch[stage];
        let blocks_here = BLOCKS_PER_STAGE[stage - 1];
        let se_blocks = match (variant.has_se(), stage) {
            (true, 3) => 5,
            (true, 4) => 1,
            _ => 0,
        };
        for b in 0..blocks_here {
            let stride = if b == 0 { 2 } else { 1 };
            let se = b >= blocks_here - se_blocks;
            blocks.push(BlockSpec {
                name: format!("stage{stage}.{}", 2 * b),
                in_channels: in_ch,
                out_channels: in_ch,
                kernel: 3,
                stride,
                groups: in_ch,
                conv_branches: variant.conv_branches(),
                se,
            });
            blocks.push(BlockSpec {
                name: format!("stage{stage}.{}", 2 * b + 1),
                in_channels: in_ch,
                out_channels: width,
                kernel: 1,
                stride: 1,
                groups: 1,
                conv_branches: variant.conv_branches(),
                se,
            });
            in_ch = width;
        }
    }
    blocks
}

/// Builds the graph of a variant in a form for an input size.
pub(crate) fn build(variant: Variant, form: Form, input: InputSize) -> Result<Graph, GraphError> {
    let name = format!("{}-{}", variant.name(), form.name());
    build_blocks(
        &name,
        &block_plan(variant),
        form,
        input,
        variant.channels()[4],
    )
}

/// A plain stack of MobileOne-style blocks (each followed by a ReLU) and the classifier head:
/// MobileOne, and RepVGG (whose blocks are the k = 1, dense case).
pub(crate) fn build_blocks(
    name: &str,
    blocks: &[BlockSpec],
    form: Form,
    input: InputSize,
    features: usize,
) -> Result<Graph, GraphError> {
    let mut b = GraphBuilder::new(name, input.shape())?;
    let mut x = ValueId::Input;
    for block in blocks {
        x = match form {
            Form::Unfused => unfused_block(&mut b, block, x)?,
            Form::Reparameterized => {
                let conv = Op::Conv2d(block.conv(block.kernel, true));
                b.add(&format!("{}.reparam_conv", block.name), conv, &[x])?
            }
        };
        if block.se {
            x = squeeze_excite(&mut b, block, x)?;
        }
        x = b.add(&format!("{}.relu", block.name), Op::Relu, &[x])?;
    }
    let pooled = b.add("gap", Op::GlobalAvgPool, &[x])?;
    let flat = b.add("flatten", Op::Flatten, &[pooled])?;
    let logits = b.add(
        "linear",
        Op::Linear(Linear {
            in_features: features,
            out_features: NUM_CLASSES,
            bias: true,
        }),
        &[flat],
    )?;
    Ok(b.finish(logits))
}

fn batch_norm(channels: usize) -> Op {
    Op::BatchNorm(BatchNorm {
        channels,
        eps: BN_EPS,
    })
}

/// The branches of one train-time block, summed.
fn unfused_block(
    b: &mut GraphBuilder,
    block: &BlockSpec,
    x: ValueId,
) -> Result<ValueId, GraphError> {
    let n = &block.name;
    let mut branches = Vec::new();
    if block.has_identity() {
        branches.push(b.add(
            &format!("{n}.rbr_skip"),
            batch_norm(block.in_channels),
            &[x],
        )?);
    }
    if block.has_scale() {
        let conv = b.add(
            &format!("{n}.rbr_scale.conv"),
            Op::Conv2d(block.conv(1, false)),
            &[x],
        )?;
        branches.push(b.add(
            &format!("{n}.rbr_scale.bn"),
            batch_norm(block.out_channels),
            &[conv],
        )?);
    }
    for i in 0..block.conv_branches {
        let conv = Op::Conv2d(block.conv(block.kernel, false));
        let c = b.add(&format!("{n}.rbr_conv.{i}.conv"), conv, &[x])?;
        branches.push(b.add(
            &format!("{n}.rbr_conv.{i}.bn"),
            batch_norm(block.out_channels),
            &[c],
        )?);
    }
    if branches.len() == 1 {
        return Ok(branches[0]);
    }
    b.add(&format!("{n}.add"), Op::Add, &branches)
}

/// x * sigmoid(expand(relu(reduce(avgpool(x))))).
fn squeeze_excite(
    b: &mut GraphBuilder,
    block: &BlockSpec,
    x: ValueId,
) -> Result<ValueId, GraphError> {
    let n = &block.name;
    let (c, r) = (block.out_channels, block.se_channels());
    let one_by_one = |cin, cout| {
        Op::Conv2d(Conv2d {
            in_channels: cin,
            out_channels: cout,
            kernel: 1,
            stride: 1,
            padding: 0,
            groups: 1,
            bias: true,
        })
    };
    let pooled = b.add(&format!("{n}.se.pool"), Op::GlobalAvgPool, &[x])?;
    let reduced = b.add(&format!("{n}.se.reduce"), one_by_one(c, r), &[pooled])?;
    let act = b.add(&format!("{n}.se.relu"), Op::Relu, &[reduced])?;
    let expanded = b.add(&format!("{n}.se.expand"), one_by_one(r, c), &[act])?;
    let gate = b.add(&format!("{n}.se.sigmoid"), Op::Sigmoid, &[expanded])?;
    b.add(&format!("{n}.se.scale"), Op::ChannelMul, &[x, gate])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_widths_match_the_published_table() {
        assert_eq!(Variant::S0.channels(), [48, 48, 128, 256, 1024]);
        assert_eq!(Variant::S1.channels(), [64, 96, 192, 512, 1280]);
        assert_eq!(Variant::S2.channels(), [64, 96, 256, 640, 2048]);
        assert_eq!(Variant::S3.channels(), [64, 128, 320, 768, 2048]);
        assert_eq!(Variant::S4.channels(), [64, 192, 448, 896, 2048]);
    }

    #[test]
    fn names_parse_in_long_and_short_forms() {
        assert_eq!("mobileone-s3".parse::<Variant>().unwrap(), Variant::S3);
        assert_eq!("S4".parse::<Variant>().unwrap(), Variant::S4);
        assert!("s5"
            .parse::<Variant>()
            .unwrap_err()
            .to_string()
            .contains("s5"));
        assert_eq!("fused".parse::<Form>().unwrap(), Form::Reparameterized);
        assert_eq!("unfused".parse::<Form>().unwrap(), Form::Unfused);
        assert!("folded".parse::<Form>().is_err());
    }

    #[test]
    fn block_plan_has_43_convs_and_the_published_branches() {
        for v in Variant::ALL {
            let plan = block_plan(v);
            assert_eq!(plan.len(), 43, "{v}");
            let se = plan.iter().filter(|b| b.se).count();
            assert_eq!(se, if v == Variant::S4 { 12 } else { 0 }, "{v}");
        }
        let s0 = block_plan(Variant::S0);
        // S0's first stage-1 pointwise layer is 48 -> 48 with stride 1: it has an identity branch.
        let pw = s0.iter().find(|b| b.name == "stage1.1").unwrap();
        assert!(pw.has_identity() && !pw.has_scale() && pw.conv_branches == 4);
        let stem = &s0[0];
        assert!(stem.has_scale() && !stem.has_identity() && stem.conv_branches == 1);
        let s4 = block_plan(Variant::S4);
        let se_names: Vec<_> = s4
            .iter()
            .filter(|b| b.se)
            .map(|b| b.name.as_str())
            .collect();
        assert_eq!(se_names.first(), Some(&"stage3.10"));
        assert_eq!(se_names.last(), Some(&"stage4.1"));
        assert_eq!(
            s4.iter()
                .find(|b| b.name == "stage3.10")
                .unwrap()
                .se_channels(),
            56
        );
        assert_eq!(s4.last().unwrap().se_channels(), 128);
    }

    #[test]
    fn both_forms_end_in_1000_logits_at_224() {
        for v in Variant::ALL {
            for f in Form::ALL {
                let g = build(v, f, InputSize::IMAGENET).unwrap();
                assert_eq!(g.output_shape(), &[1, NUM_CLASSES], "{v} {f}");
                let last_conv = g
                    .nodes()
                    .iter()
                    .rev()
                    .find(|n| matches!(n.op, Op::Conv2d(_)) && !n.name.contains(".se."));
                assert_eq!(last_conv.unwrap().shape[2..], [7, 7], "{v} {f}");
            }
        }
    }
}
