//! The arithmetic of post-training int8 quantization, stated exactly so that every int8 kernel
//! and the quantized reference can be checked bit for bit: per-tensor asymmetric uint8
//! activations from an observed range (min/max calibration), per-output-channel symmetric int8
//! weights, int32 biases at the accumulator's scale, and the requantization of an int32
//! accumulator to the next activation in float32 (XNNPACK's and ONNX Runtime's "fp32"
//! requantization: the accumulator converted to f32, multiplied by an f32 scale, rounded to the
//! nearest integer with ties to even, every step an IEEE operation that vector units do
//! identically), and the ranges min/max calibration observes (`ValueRanges`; the calibration run itself is the reference executor's,
//! `backends::reference::value_ranges`).

use crate::graph::ValueId;

/// Why a tensor cannot be quantized.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuantizeError {
    /// An observed range with a NaN or infinite end, or min above max.
    #[error("activation range [{min}, {max}]: not a finite range")]
    BadRange { min: f32, max: f32 },
    /// A weight tensor whose length is not a multiple of its output channels.
    #[error("{len} weights do not split into {channels} output channels")]
    BadWeights { len: usize, channels: usize },
    /// A NaN or infinite weight or bias.
    #[error("a non-finite value ({0}) among the weights or biases")]
    NotFinite(f32),
    /// A requantization multiplier that is not a positive f32 (0, a NaN, or beyond f32).
    #[error("requantization multiplier {0}: must be positive and finite in f32")]
    BadMultiplier(f64),
}

/// The observed range of one value: [min, max] over every element of every calibration input,
/// and whether any element was NaN or infinite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub min: f32,
    pub max: f32,
    pub non_finite: bool,
}

impl Default for Range {
    fn default() -> Self {
        Range {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            non_finite: false,
        }
    }
}

impl Range {
    /// Widens the range by the finite elements of `data` (and notes any other).
    pub fn observe(&mut self, data: impl IntoIterator<Item = f64>) {
        for v in data {
            let v = v as f32;
            if v.is_finite() {
                self.min = self.min.min(v);
                self.max = self.max.max(v);
            } else {
                self.non_finite = true;
            }
        }
    }

    /// The activation quantization of this range (min/max calibration).
    pub fn activation(&self) -> Result<ActivationQuant, QuantizeError> {
        if self.non_finite || self.min > self.max {
            return Err(QuantizeError::BadRange {
                min: self.min,
                max: self.max,
            });
        }
        ActivationQuant::from_range(self.min, self.max)
    }
}

/// The observed range of every value of a graph: its input, and each node's output in node
/// order.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueRanges {
    pub input: Range,
    pub nodes: Vec<Range>,
    /// How many calibration inputs were observed.
    pub inputs_seen: usize,
}

impl ValueRanges {
    /// No observation yet, for a graph of `nodes` nodes.
    pub fn new(nodes: usize) -> Self {
        ValueRanges {
            input: Range::default(),
            nodes: vec![Range::default(); nodes],
            inputs_seen: 0,
        }
    }

    /// The range of one value (None for a node the graph does not have).
    pub fn of(&self, value: ValueId) -> Option<&Range> {
        match value {
            ValueId::Input => Some(&self.input),
            ValueId::Node(i) => self.nodes.get(i),
        }
    }

    pub fn of_mut(&mut self, value: ValueId) -> Option<&mut Range> {
        match value {
            ValueId::Input => Some(&mut self.input),
            ValueId::Node(i) => self.nodes.get_mut(i),
        }
    }
}

/// A per-tensor asymmetric uint8 quantization: real = scale * (q - zero_point).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActivationQuant {
    pub scale: f32,
    pub zero_point: u8,
}

impl ActivationQuant {
    /// The quantization of an observed range: the range is widened to contain 0 (so that 0,
    /// the padding and ReLU's floor, is exactly representable), scale = (max - min) / 255, and
    /// the zero point is -min / scale rounded to the nearest integer. A range of width 0 (a
    /// constant tensor) gets scale 1.
    pub fn from_range(min: f32, max: f32) -> Result<Self, QuantizeError> {
        if !(min.is_finite() && max.is_finite()) || min > max {
            return Err(QuantizeError::BadRange { min, max });
        }
        let (min, max) = (min.min(0.0), max.max(0.0));
        if max - min == 0.0 {
            return Ok(ActivationQuant {
                scale: 1.0,
                zero_point: 0,
            });
        }
        let scale = (max - min) / 255.0;
        let zero_point = (-min / scale).round().clamp(0.0, 255.0) as u8;
        Ok(ActivationQuant { scale, zero_point })
    }

    /// x quantized: x / scale + zero_point, rounded half away from zero, saturated to 0..=255.
    pub fn quantize(&self, x: f32) -> u8 {
        let q = (x / self.scale).round() + f32::from(self.zero_point);
        q.clamp(0.0, 255.0) as u8
    }

    pub fn dequantize(&self, q: u8) -> f32 {
        self.scale * (i32::from(q) - i32::from(self.zero_point)) as f32
    }
}

/// Per-output-channel symmetric int8 weights: channel c's values are real / scales[c],
/// rounded, in -127..=127 (never -128, so a product's negation cannot overflow).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedWeights {
    pub values: Vec<i8>,
    pub scales: Vec<f32>,
}

/// Quantizes weights laid out output channel first (`[C_out, ...]`): each channel's scale is
/// its largest magnitude / 127 (1 for an all-zero channel).
pub fn quantize_weights(w: &[f32], channels: usize) -> Result<QuantizedWeights, QuantizeError> {
    if channels == 0 || w.is_empty() || !w.len().is_multiple_of(channels) {
        return Err(QuantizeError::BadWeights {
            len: w.len(),
            channels,
        });
    }
    if let Some(&bad) = w.iter().find(|v| !v.is_finite()) {
        return Err(QuantizeError::NotFinite(bad));
    }
    let per_channel = w.len() / channels;
    let mut values = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(channels);
    for channel in w.chunks(per_channel) {
        let largest = channel.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = if largest > 0.0 { largest / 127.0 } else { 1.0 };
        values.extend(
            channel
                .iter()
                .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8),
        );
        scales.push(scale);
    }
    Ok(QuantizedWeights { values, scales })
}

/// Biases at the accumulator's scale (input scale x channel c's weight scale), rounded, so
/// they add straight into the int32 sums; saturated to i32.
pub fn quantize_bias(
    bias: &[f32],
    input_scale: f32,
    weight_scales: &[f32],
) -> Result<Vec<i32>, QuantizeError> {
    if bias.len() != weight_scales.len() {
        return Err(QuantizeError::BadWeights {
            len: bias.len(),
            channels: weight_scales.len(),
        });
    }
    if let Some(&bad) = bias.iter().find(|v| !v.is_finite()) {
        return Err(QuantizeError::NotFinite(bad));
    }
    Ok(bias
        .iter()
        .zip(weight_scales)
        .map(|(b, s)| {
            let q = (f64::from(*b) / (f64::from(input_scale) * f64::from(*s))).round();
            q.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
        })
        .collect())
}

/// A positive real multiplier, applied in f32: `apply(acc)` is acc converted to f32 (ties to
/// even), times `scale`, rounded to the nearest integer (ties to even), saturated to i32.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rescale {
    pub scale: f32,
}

impl Rescale {
    pub fn new(real: f64) -> Result<Self, QuantizeError> {
        let scale = real as f32;
        if !(real > 0.0 && scale > 0.0 && scale.is_finite()) {
            return Err(QuantizeError::BadMultiplier(real));
        }
        Ok(Rescale { scale })
    }

    /// acc x scale, rounded once in f32 and once to an integer.
    pub fn apply(&self, acc: i32) -> i32 {
        ((acc as f32) * self.scale).round_ties_even() as i32
    }
}

/// An int32 accumulator to the output activation: rescaled, offset by the output's zero
/// point, clamped to `low..=high` (0..=255, or the quantized floor and ceiling of a fused
/// ReLU/ReLU6).
pub fn requantize_to_u8(acc: i32, rescale: &Rescale, zero_point: u8, low: u8, high: u8) -> u8 {
    let q = rescale.apply(acc).saturating_add(i32::from(zero_point));
    q.clamp(i32::from(low), i32::from(high)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rescale_multiplies_in_f32_and_rounds_ties_to_even() {
        for (real, acc) in [
            (3.75, 1000),
            (0.3, -777),
            (1.0, 12345),
            (40.0, -3),
            (1e-3, 2_000_000),
        ] {
            let r = Rescale::new(real).unwrap();
            let exact = real * f64::from(acc);
            assert!(
                (f64::from(r.apply(acc)) - exact).abs() <= 0.5 + 1e-6,
                "{real} x {acc}"
            );
        }
        let quarter = Rescale::new(0.25).unwrap();
        assert_eq!(
            [6, -6, 10, -10, 5].map(|a| quarter.apply(a)),
            [2, -2, 2, -2, 1]
        );
        // Beyond i32: saturated; the accumulator itself is rounded to f32 first.
        assert_eq!(Rescale::new(4.0).unwrap().apply(i32::MAX / 2), i32::MAX);
        assert_eq!(Rescale::new(4.0).unwrap().apply(i32::MIN / 2), i32::MIN);
        assert_eq!(Rescale::new(1.0).unwrap().apply(16_777_217), 16_777_216);
        assert_eq!(Rescale::new(1e-12).unwrap().apply(i32::MAX), 0);
        for bad in [0.0, -1.0, f64::NAN, 1e300, 1e-300] {
            assert!(Rescale::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_range_widens_with_what_it_sees_and_refuses_what_is_not_finite() {
        let mut ranges = ValueRanges::new(2);
        ranges.of_mut(ValueId::Input).unwrap().observe([1.0, -2.0]);
        ranges.of_mut(ValueId::Node(1)).unwrap().observe([0.5, 4.0]);
        ranges.of_mut(ValueId::Node(1)).unwrap().observe([-1.0]);
        assert_eq!((ranges.input.min, ranges.input.max), (-2.0, 1.0));
        let node = ranges.of(ValueId::Node(1)).unwrap();
        assert_eq!((node.min, node.max), (-1.0, 4.0));
        assert_eq!(
            node.activation().unwrap(),
            ActivationQuant::from_range(-1.0, 4.0).unwrap()
        );
        // Never observed, or observed with a NaN: no quantization.
        assert!(ranges.of(ValueId::Node(0)).unwrap().activation().is_err());
        ranges.of_mut(ValueId::Node(1)).unwrap().observe([f64::NAN]);
        assert!(ranges.of(ValueId::Node(1)).unwrap().activation().is_err());
        assert!(ranges.of(ValueId::Node(2)).is_none());
    }

    #[test]
    fn an_activation_range_keeps_zero_exact_and_rounds_within_half_a_step() {
        let q = ActivationQuant::from_range(-1.0, 3.0).unwrap();
        assert!((q.scale - 4.0 / 255.0).abs() < 1e-9);
        assert_eq!(q.zero_point, 64); // 1 / (4 / 255) = 63.75
        assert_eq!(q.dequantize(q.quantize(0.0)), 0.0);
        for i in 0..=400 {
            let x = -1.0 + i as f32 * 0.01;
            let back = q.dequantize(q.quantize(x));
            assert!((back - x).abs() <= q.scale * 0.5 + 1e-6, "{x} -> {back}");
        }
        // Beyond the range: saturated.
        assert_eq!(q.quantize(100.0), 255);
        assert_eq!(q.quantize(-100.0), 0);
        // A range above zero is widened to contain it (ReLU outputs).
        let relu = ActivationQuant::from_range(0.5, 2.0).unwrap();
        assert_eq!(relu.zero_point, 0);
        assert!((relu.scale - 2.0 / 255.0).abs() < 1e-9);
        assert_eq!(
            ActivationQuant::from_range(0.0, 0.0).unwrap(),
            ActivationQuant {
                scale: 1.0,
                zero_point: 0
            }
        );
        assert!(ActivationQuant::from_range(f32::NAN, 1.0).is_err());
        assert!(ActivationQuant::from_range(2.0, 1.0).is_err());
    }

    #[test]
    fn weights_are_quantized_per_output_channel_to_plus_minus_127() {
        let w = [0.5, -1.0, 0.25, 0.0, 0.0, 0.0, 2.0, 1.0, -0.5];
        let q = quantize_weights(&w, 3).unwrap();
        assert_eq!(q.scales, [1.0 / 127.0, 1.0, 2.0 / 127.0]);
        assert_eq!(q.values, [64, -127, 32, 0, 0, 0, 127, 64, -32]);
        for (c, chunk) in w.chunks(3).enumerate() {
            for (k, v) in chunk.iter().enumerate() {
                let back = f32::from(q.values[c * 3 + k]) * q.scales[c];
                assert!(
                    (back - v).abs() <= q.scales[c] * 0.5 + 1e-6,
                    "{v} -> {back}"
                );
            }
        }
        assert!(quantize_weights(&w, 2).is_err());
        assert!(quantize_weights(&[], 3).is_err());
        assert!(quantize_weights(&[f32::INFINITY], 1).is_err());
        let b = quantize_bias(&[0.1, -0.2, 0.0], 0.05, &q.scales).unwrap();
        // 0.1 / (0.05 / 127) = 254; -0.2 / (0.05 * 1) = -4.
        assert_eq!(b, [254, -4, 0]);
        assert!(quantize_bias(&[0.1], 0.05, &q.scales).is_err());
    }

    #[test]
    fn requantization_is_the_real_multiply_rounded_within_one_step() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2000 {
            let real = (next() % 1_000_000 + 1) as f64 / 1_000_001.0 * 0.9 + 1e-6;
            let r = Rescale::new(real).unwrap();
            let acc = (next() % 2_000_001) as i32 - 1_000_000;
            let exact = (f64::from(acc) * real).round();
            let got = f64::from(r.apply(acc));
            assert!((got - exact).abs() <= 1.0, "{acc} x {real}: {got}");
        }
    }

    #[test]
    fn an_accumulator_lands_in_the_output_range_with_its_zero_point() {
        let r = Rescale::new(0.01).unwrap();
        assert_eq!(requantize_to_u8(1000, &r, 10, 0, 255), 20);
        assert_eq!(requantize_to_u8(-5000, &r, 10, 0, 255), 0);
        assert_eq!(requantize_to_u8(1_000_000, &r, 10, 0, 255), 255);
        // A fused ReLU clamps at the zero point.
        assert_eq!(requantize_to_u8(-500, &r, 10, 10, 255), 10);
    }
}
