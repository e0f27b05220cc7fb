//! The model zoo: the networks beside MobileOne, built from shared layers. The comparison
//! models of the paper's accuracy-vs-latency figure (`mobilenets`: MobileNet V1-V3, MnasNet,
//! MixNet, MobileNeXt, EfficientNet; `classic`: ShuffleNetV2, RepVGG-A0, ResNet-18) and the
//! plain 30-layer CNN of the activation and block studies. `Model` names and builds them all.

pub(crate) mod classic;
pub mod layers;
pub(crate) mod mobilenets;
pub mod plain;

pub use plain::Activation;

#[cfg(test)]
mod tests;
