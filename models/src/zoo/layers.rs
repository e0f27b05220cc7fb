//! The building blocks the zoo's definitions share: a graph builder that knows each value's
//! channels, conv + BN + activation, squeeze-excite, mixed (split) convolutions and the head.
//! Names follow one scheme: `{layer}.conv`, `{layer}.bn`, `{layer}.act`.

use crate::graph::{BatchNorm, Conv2d, Graph, GraphBuilder, GraphError, Linear, Op, ValueId};
use crate::mobileone::{BN_EPS, NUM_CLASSES};
use crate::model::InputSize;

/// torchvision's and timm's `_make_divisible`: round to a multiple of `divisor`, never below
/// it and never more than 10% below `value`.
pub fn make_divisible(value: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let rounded = (((value + d / 2.0) as usize) / divisor * divisor).max(divisor);
    if (rounded as f64) < 0.9 * value {
        rounded + divisor
    } else {
        rounded
    }
}

/// timm's `_split_channels`: equal parts, the remainder going to the first.
pub fn split_channels(total: usize, parts: usize) -> Vec<usize> {
    let mut split = vec![total / parts; parts];
    split[0] += total - split.iter().sum::<usize>();
    split
}

/// A graph under construction.
pub struct Net {
    b: GraphBuilder,
}

impl Net {
    pub fn new(name: &str, input: InputSize) -> Result<Self, GraphError> {
        Ok(Self {
            b: GraphBuilder::new(name, input.shape())?,
        })
    }

    pub fn channels(&self, x: ValueId) -> usize {
        self.b.shape(x)[1]
    }

    pub fn op(&mut self, name: &str, op: Op, inputs: &[ValueId]) -> Result<ValueId, GraphError> {
        self.b.add(name, op, inputs)
    }

    /// A conv with PyTorch's "same" padding for odd kernels (k / 2).
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        &mut self,
        name: &str,
        x: ValueId,
        out: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
        bias: bool,
    ) -> Result<ValueId, GraphError> {
        let conv = Conv2d {
            in_channels: self.channels(x),
            out_channels: out,
            kernel,
            stride,
            padding: kernel / 2,
            groups,
            bias,
        };
        self.b.add(name, Op::Conv2d(conv), &[x])
    }

    pub fn bn(&mut self, name: &str, x: ValueId) -> Result<ValueId, GraphError> {
        let bn = BatchNorm {
            channels: self.channels(x),
            eps: BN_EPS,
        };
        self.b.add(name, Op::BatchNorm(bn), &[x])
    }

    /// The activation `act` (none when None), named `{name}`.
    pub fn act(&mut self, name: &str, x: ValueId, act: Option<&Op>) -> Result<ValueId, GraphError> {
        match act {
            Some(op) => self.b.add(name, op.clone(), &[x]),
            None => Ok(x),
        }
    }

    /// conv (no bias) + BN + optional activation: `{name}.conv`, `{name}.bn`, `{name}.act`.
    #[allow(clippy::too_many_arguments)]
    pub fn conv_bn(
        &mut self,
        name: &str,
        x: ValueId,
        out: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
        act: Option<&Op>,
    ) -> Result<ValueId, GraphError> {
        let y = self.conv(
            &format!("{name}.conv"),
            x,
            out,
            kernel,
            stride,
            groups,
            false,
        )?;
        let y = self.bn(&format!("{name}.bn"), y)?;
        self.act(&format!("{name}.act"), y, act)
    }

    /// A depthwise conv + BN + activation.
    pub fn dw_bn(
        &mut self,
        name: &str,
        x: ValueId,
        kernel: usize,
        stride: usize,
        act: Option<&Op>,
    ) -> Result<ValueId, GraphError> {
        let c = self.channels(x);
        self.conv_bn(name, x, c, kernel, stride, c, act)
    }

    /// Squeeze-excite: x * gate(expand(act(reduce(avgpool(x))))), 1x1 convs with bias.
    pub fn squeeze_excite(
        &mut self,
        name: &str,
        x: ValueId,
        squeeze: usize,
        act: &Op,
        gate: &Op,
    ) -> Result<ValueId, GraphError> {
        let c = self.channels(x);
        let pooled = self.op(&format!("{name}.pool"), Op::GlobalAvgPool, &[x])?;
        let reduced = self.conv(&format!("{name}.reduce"), pooled, squeeze, 1, 1, 1, true)?;
        let reduced = self.op(&format!("{name}.act"), act.clone(), &[reduced])?;
        let expanded = self.conv(&format!("{name}.expand"), reduced, c, 1, 1, 1, true)?;
        let gate = self.op(&format!("{name}.gate"), gate.clone(), &[expanded])?;
        self.op(&format!("{name}.scale"), Op::ChannelMul, &[x, gate])
    }

    /// timm's MixedConv2d: the channels split into one group per kernel size, each group
    /// convolved on its own (depthwise or dense 1x1), the results joined. One kernel is a
    /// plain conv named `{name}`; several are `{name}.{i}` between a slice and a concat.
    pub fn mixed_conv(
        &mut self,
        name: &str,
        x: ValueId,
        out: usize,
        kernels: &[usize],
        stride: usize,
        depthwise: bool,
    ) -> Result<ValueId, GraphError> {
        let cin = self.channels(x);
        if kernels.len() == 1 {
            let groups = if depthwise { cin } else { 1 };
            return self.conv(name, x, out, kernels[0], stride, groups, false);
        }
        let (ins, outs) = (
            split_channels(cin, kernels.len()),
            split_channels(out, kernels.len()),
        );
        let mut parts = Vec::new();
        let mut start = 0;
        for (i, &k) in kernels.iter().enumerate() {
            let end = start + ins[i];
            let part = self.op(&format!("{name}.split{i}"), Op::Slice { start, end }, &[x])?;
            let groups = if depthwise { ins[i] } else { 1 };
            parts.push(self.conv(
                &format!("{name}.{i}"),
                part,
                outs[i],
                k,
                stride,
                groups,
                false,
            )?);
            start = end;
        }
        self.op(&format!("{name}.concat"), Op::Concat, &parts)
    }

    /// Global average pool, flatten and the classifier (`head.fc`).
    pub fn classifier(&mut self, x: ValueId) -> Result<ValueId, GraphError> {
        let pooled = self.op("head.pool", Op::GlobalAvgPool, &[x])?;
        let flat = self.op("head.flatten", Op::Flatten, &[pooled])?;
        self.linear("head.fc", flat, NUM_CLASSES)
    }

    pub fn linear(&mut self, name: &str, x: ValueId, out: usize) -> Result<ValueId, GraphError> {
        let l = Linear {
            in_features: self.b.shape(x)[1],
            out_features: out,
            bias: true,
        };
        self.op(name, Op::Linear(l), &[x])
    }

    pub fn finish(self, output: ValueId) -> Graph {
        self.b.finish(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_divisible_matches_torchvision() {
        // Values from torchvision's MobileNetV3-Large squeeze widths and MobileNetV2 at 1.0.
        assert_eq!(make_divisible(72.0 / 4.0, 8), 24);
        assert_eq!(make_divisible(120.0 / 4.0, 8), 32);
        assert_eq!(make_divisible(480.0 / 4.0, 8), 120);
        assert_eq!(make_divisible(672.0 / 4.0, 8), 168);
        assert_eq!(make_divisible(32.0 * 1.4, 8), 48);
        assert_eq!(make_divisible(3.0, 8), 8);
    }

    #[test]
    fn split_channels_gives_the_remainder_to_the_first_group() {
        assert_eq!(split_channels(240, 3), [80, 80, 80]);
        assert_eq!(split_channels(200, 3), [68, 66, 66]);
        assert_eq!(split_channels(1200, 5), [240; 5]);
    }
}
