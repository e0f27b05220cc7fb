//! What the suite builds: which network (`Model`: MobileOne S0-S4 and the zoo), in which form
//! (`Form`: unfused or reparameterized), at which input size (`InputSize`) and arithmetic
//! precision (`Precision`); their names, and the error for a name that is none of them. The networks themselves are in `mobileone` and `zoo`.

use std::fmt;
use std::str::FromStr;

use crate::graph::{Graph, GraphError};
use crate::mobileone::{self, Variant};
use crate::reparameterize::{fold_batch_norm_weights, fold_batch_norms_graph, fold_blocks};
use crate::tensor::Element;
use crate::weights::{random_weights, Weights, WeightsError};
use crate::zoo::{classic, mobilenets, plain, Activation};

/// A model or form name that is not known; lists what is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{found}`; expected one of: {allowed}")]
pub struct UnknownName {
    pub what: &'static str,
    pub found: String,
    pub allowed: String,
}

/// The two forms of a model: as trained, and folded for inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Form {
    /// The train-time multi-branch graph, evaluated in inference mode.
    Unfused,
    /// Each block folded into one conv with bias.
    Reparameterized,
}

impl Form {
    pub const ALL: [Form; 2] = [Form::Unfused, Form::Reparameterized];

    pub fn name(self) -> &'static str {
        match self {
            Form::Unfused => "unfused",
            Form::Reparameterized => "reparameterized",
        }
    }
}

impl fmt::Display for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Form {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "unfused" => Ok(Form::Unfused),
            "reparameterized" | "reparameterised" | "fused" => Ok(Form::Reparameterized),
            _ => Err(UnknownName {
                what: "form",
                found: s.to_string(),
                allowed: "unfused, reparameterized (or fused)".into(),
            }),
        }
    }
}

/// The number format a cell computes in: float32, 16-bit bfloat16 or IEEE half (each with
/// float32 accumulation where the engine has it), or int8 (uint8 activations and int8 weights
/// with int32 sums, after post-training quantization: `quantize`, `quantized`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Precision {
    #[default]
    Fp32,
    Bf16,
    Fp16,
    Int8,
}

impl Precision {
    pub const ALL: [Precision; 4] = [
        Precision::Fp32,
        Precision::Bf16,
        Precision::Fp16,
        Precision::Int8,
    ];
    /// The floating-point formats (each value rounded on its own: `round`).
    pub const FLOATS: [Precision; 3] = [Precision::Fp32, Precision::Bf16, Precision::Fp16];

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
            Precision::Int8 => "int8",
        }
    }

    /// Bytes of one stored element.
    pub fn bytes(self) -> usize {
        match self {
            Precision::Fp32 => 4,
            Precision::Bf16 | Precision::Fp16 => 2,
            Precision::Int8 => 1,
        }
    }

    /// `x` rounded to the nearest value of this format (ties to even), as an f32. int8 has no
    /// value of its own without a scale (a tensor's quantization gives it: `quantize`), so
    /// `x` is returned unchanged.
    pub fn round(self, x: f32) -> f32 {
        match self {
            Precision::Fp32 | Precision::Int8 => x,
            Precision::Bf16 => half::bf16::from_f32(x).to_f32(),
            Precision::Fp16 => half::f16::from_f32(x).to_f32(),
        }
    }

    /// Bits of significand, the implicit leading one included (24, 8, 11); for int8 the 8
    /// bits of a code (a step of 1/255 of the tensor's range).
    pub fn significand_bits(self) -> u32 {
        match self {
            Precision::Fp32 => 24,
            Precision::Bf16 | Precision::Int8 => 8,
            Precision::Fp16 => 11,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fp32" | "f32" | "float32" => Ok(Precision::Fp32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            "fp16" | "f16" | "float16" | "half" => Ok(Precision::Fp16),
            "int8" | "i8" | "qint8" => Ok(Precision::Int8),
            _ => Err(UnknownName {
                what: "precision",
                found: s.to_string(),
                allowed: "fp32, bf16, fp16, int8".into(),
            }),
        }
    }
}

/// Input of a model: batch size and square-or-not spatial size (3 channels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSize {
    pub batch: usize,
    pub height: usize,
    pub width: usize,
}

impl InputSize {
    /// Batch 1, 3x224x224: the size of every published figure.
    pub const IMAGENET: InputSize = InputSize::square(1, 224);

    /// `batch` images of `side` x `side`.
    pub const fn square(batch: usize, side: usize) -> InputSize {
        InputSize {
            batch,
            height: side,
            width: side,
        }
    }

    pub fn shape(self) -> Vec<usize> {
        vec![self.batch, 3, self.height, self.width]
    }
}

/// Every model the suite can build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Model {
    MobileOne(Variant),
    MobileNetV1,
    MobileNetV2,
    MobileNetV3Large,
    MnasNetA1,
    ShuffleNetV2x2,
    MixNetS,
    MobileNeXt14,
    EfficientNetB0,
    RepVggA0,
    ResNet18,
    /// The plain 30-layer CNN with an activation, with or without skip connections.
    Plain30 {
        activation: Activation,
        skip: bool,
    },
}

/// A published figure a model's count is pinned to, and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Published {
    /// Trainable parameters of the unfused (train-time) model.
    pub params: f64,
    /// How close our count must be: 0 for an exact figure, else half the last published digit.
    pub params_tolerance: f64,
    /// Multiply-accumulates at 224x224, when published.
    pub macs: Option<(f64, f64)>,
    pub source: &'static str,
}

impl Model {
    /// The comparison models of the paper's figure (and RepVGG-A0 and ResNet-18).
    pub const ZOO: [Model; 10] = [
        Model::MobileNetV1,
        Model::MobileNetV2,
        Model::MobileNetV3Large,
        Model::MnasNetA1,
        Model::ShuffleNetV2x2,
        Model::MixNetS,
        Model::MobileNeXt14,
        Model::EfficientNetB0,
        Model::RepVggA0,
        Model::ResNet18,
    ];

    /// Every named model: MobileOne, the zoo, the plain CNN variants.
    pub fn all() -> Vec<Model> {
        let mut all: Vec<Model> = Variant::ALL.into_iter().map(Model::MobileOne).collect();
        all.extend(Model::ZOO);
        for activation in Activation::ALL {
            all.push(Model::Plain30 {
                activation,
                skip: false,
            });
        }
        all.push(Model::Plain30 {
            activation: Activation::Relu,
            skip: true,
        });
        all
    }

    pub fn name(self) -> String {
        match self {
            Model::MobileOne(v) => v.name().to_string(),
            Model::MobileNetV1 => "mobilenet-v1".into(),
            Model::MobileNetV2 => "mobilenet-v2".into(),
            Model::MobileNetV3Large => "mobilenet-v3-large".into(),
            Model::MnasNetA1 => "mnasnet-a1".into(),
            Model::ShuffleNetV2x2 => "shufflenet-v2-2.0".into(),
            Model::MixNetS => "mixnet-s".into(),
            Model::MobileNeXt14 => "mobilenext-1.4".into(),
            Model::EfficientNetB0 => "efficientnet-b0".into(),
            Model::RepVggA0 => "repvgg-a0".into(),
            Model::ResNet18 => "resnet-18".into(),
            Model::Plain30 { activation, skip } => {
                format!("plain30-{}{}", if skip { "skip-" } else { "" }, activation)
            }
        }
    }

    /// The MobileOne variant, for what only MobileOne has (checkpoints, preprocessing).
    pub fn mobileone(self) -> Option<Variant> {
        match self {
            Model::MobileOne(v) => Some(v),
            _ => None,
        }
    }

    /// The graph of this model in a form for an input size.
    pub fn build(self, form: Form, input: InputSize) -> Result<Graph, GraphError> {
        let name = format!("{}-{}", self.name(), form.name());
        let unfused_name = format!("{}-unfused", self.name());
        let unfused = match self {
            Model::MobileOne(v) => return mobileone::build(v, form, input),
            Model::RepVggA0 => return classic::repvgg_a0(form, input, &name),
            Model::MobileNetV1 => mobilenets::mobilenet_v1(input, &unfused_name),
            Model::MobileNetV2 => mobilenets::mobilenet_v2(input, &unfused_name),
            Model::MobileNetV3Large => mobilenets::mobilenet_v3_large(input, &unfused_name),
            Model::MnasNetA1 => mobilenets::mnasnet_a1(input, &unfused_name),
            Model::ShuffleNetV2x2 => classic::shufflenet_v2_x2(input, &unfused_name),
            Model::MixNetS => mobilenets::mixnet_s(input, &unfused_name),
            Model::MobileNeXt14 => mobilenets::mobilenext_140(input, &unfused_name),
            Model::EfficientNetB0 => mobilenets::efficientnet_b0(input, &unfused_name),
            Model::ResNet18 => classic::resnet18(input, &unfused_name),
            Model::Plain30 { activation, skip } => {
                plain::plain30(activation, skip, input, &unfused_name)
            }
        }?;
        match form {
            Form::Unfused => Ok(unfused),
            Form::Reparameterized => fold_batch_norms_graph(&unfused, &name),
        }
    }

    /// Weights from a seed: unfused weights drawn from the seed, folded for the other form (so
    /// both forms compute the same function).
    pub fn seeded_weights(self, form: Form, seed: u64) -> Weights<f32> {
        let graph = self
            .build(Form::Unfused, InputSize::IMAGENET)
            .expect("zoo graphs are valid at 224x224");
        let mut unfused = random_weights(&graph, seed);
        if let Model::Plain30 {
            activation: Activation::DynamicShiftMax,
            ..
        } = self
        {
            plain::near_identity_shift_max(&mut unfused);
        }
        match form {
            Form::Unfused => unfused,
            Form::Reparameterized => self
                .reparameterize(&unfused)
                .expect("seeded weights fit their graph"),
        }
    }

    /// Folds unfused weights of this model into the weights of its reparameterized form (in
    /// f64 whatever the element type).
    pub fn reparameterize<T: Element>(
        self,
        unfused: &Weights<T>,
    ) -> Result<Weights<T>, WeightsError> {
        let graph = self
            .build(Form::Unfused, InputSize::IMAGENET)
            .expect("zoo graphs are valid at 224x224");
        match self {
            Model::MobileOne(v) => crate::reparameterize(v, unfused, "weights"),
            Model::RepVggA0 => {
                fold_blocks(&classic::repvgg_a0_blocks(), &graph, unfused, "weights")
            }
            _ => fold_batch_norm_weights(&graph, unfused, "weights"),
        }
    }

    /// The published parameter count (and MACs) this model's definition is pinned to.
    pub fn published(self) -> Option<Published> {
        let tv = "torchvision model builder docs (num_params, GFLOPS)";
        let exact = |params: f64, gmacs: f64, source| Published {
            params,
            params_tolerance: 0.0,
            macs: Some((gmacs * 1e9, 0.005e9)),
            source,
        };
        let rounded = |mparams: f64, places: i32, macs: Option<(f64, f64)>, source| Published {
            params: mparams * 1e6,
            params_tolerance: 0.5 * 10f64.powi(-places) * 1e6,
            macs,
            source,
        };
        Some(match self {
            Model::MobileNetV2 => exact(3_504_872.0, 0.30, tv),
            Model::MobileNetV3Large => exact(5_483_032.0, 0.22, tv),
            Model::EfficientNetB0 => exact(5_288_548.0, 0.39, tv),
            Model::ShuffleNetV2x2 => exact(7_393_996.0, 0.58, tv),
            Model::ResNet18 => exact(11_689_512.0, 1.81, tv),
            Model::MobileNetV1 => rounded(
                4.2,
                1,
                Some((569e6, 0.5e6)),
                "Howard et al. 2017, MobileNets, Table 8 (1.0 MobileNet-224: 4.2M, 569M mult-adds)",
            ),
            Model::MnasNetA1 => rounded(
                3.89,
                2,
                None,
                "timm `semnasnet_100` model card (Params (M) 3.89)",
            ),
            Model::MixNetS => rounded(
                4.13,
                2,
                None,
                "timm `mixnet_s` model card (Params (M) 4.13)",
            ),
            Model::MobileNeXt14 => rounded(
                6.1,
                1,
                None,
                "Zhou et al. 2020, MobileNeXt, Table 3 (1.4x: 6.1M)",
            ),
            Model::RepVggA0 => rounded(
                9.11,
                2,
                None,
                "mmpretrain RepVGG README (A0: 9.11M train / 8.31M deploy, 1.52 / 1.36 GFLOPs)",
            ),
            _ => return None,
        })
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Model {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(v) = s.parse::<Variant>() {
            return Ok(Model::MobileOne(v));
        }
        let lower = s.trim().to_ascii_lowercase();
        Model::all()
            .into_iter()
            .find(|m| m.name() == lower)
            .ok_or_else(|| UnknownName {
                what: "model",
                found: s.to_string(),
                allowed: Model::all()
                    .iter()
                    .map(|m| m.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precisions_parse_print_and_round_to_their_significand() {
        assert_eq!("int8".parse::<Precision>(), Ok(Precision::Int8));
        assert_eq!(Precision::Int8.bytes(), 1);
        for p in Precision::FLOATS {
            assert_eq!(p.name().parse::<Precision>(), Ok(p));
            // 1 + 2^-bits is a tie between 1 and the next value up: it rounds to even (1).
            let tie = 1.0 + 2f32.powi(-(p.significand_bits() as i32));
            let next = 1.0 + 2f32.powi(1 - p.significand_bits() as i32);
            assert_eq!((p.round(tie), p.round(next)), (1.0, next), "{p}");
        }
        assert_eq!(Precision::default(), Precision::Fp32);
        assert_eq!(Precision::Bf16.bytes(), 2);
        let err = "int4".parse::<Precision>().unwrap_err().to_string();
        assert!(
            err.contains("unknown precision `int4`") && err.contains("bf16"),
            "{err}"
        );
    }
}
