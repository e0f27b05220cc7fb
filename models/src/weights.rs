//! Named parameter tensors of a model, their seeded initialization, and their validation
//! against a graph (missing, unexpected, misshapen or non-finite tensors).

use std::collections::BTreeMap;

use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::graph::{Graph, ParamRole};
use crate::tensor::{Element, Tensor};

/// What is wrong with a set of weights for a graph.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WeightsError {
    #[error("{source_name}: missing tensor {name} (expected shape {expected:?}){more}")]
    Missing {
        source_name: String,
        name: String,
        expected: Vec<usize>,
        more: String,
    },
    #[error(
        "{source_name}: unexpected tensor {name} (shape {found:?}) not used by `{graph}`{more}"
    )]
    Unexpected {
        source_name: String,
        name: String,
        found: Vec<usize>,
        graph: String,
        more: String,
    },
    #[error("{source_name}: tensor {name} has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        source_name: String,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{source_name}: tensor {name} has {count} NaN or infinite values (first at flat index {first})")]
    NonFinite {
        source_name: String,
        name: String,
        count: usize,
        first: usize,
    },
    #[error("{source_name}: batch-norm variance {name} has {count} negative values (first {value} at flat index {first}); a variance is never negative, so this checkpoint is corrupt")]
    NegativeVariance {
        source_name: String,
        name: String,
        count: usize,
        first: usize,
        value: f64,
    },
}

/// A model's parameters by name (Apple's ml-mobileone naming for MobileOne).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Weights<T: Element = f32> {
    tensors: BTreeMap<String, Tensor<T>>,
}

impl<T: Element> Weights<T> {
    pub fn new() -> Self {
        Self {
            tensors: BTreeMap::new(),
        }
    }

    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor<T>) {
        self.tensors.insert(name.into(), tensor);
    }

    pub fn get(&self, name: &str) -> Option<&Tensor<T>> {
        self.tensors.get(name)
    }

    pub fn remove(&mut self, name: &str) -> Option<Tensor<T>> {
        self.tensors.remove(name)
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Tensor<T>)> {
        self.tensors.iter()
    }

    pub fn cast<U: Element>(&self) -> Weights<U> {
        Weights {
            tensors: self
                .tensors
                .iter()
                .map(|(k, v)| (k.clone(), v.cast()))
                .collect(),
        }
    }

    /// Checks that these weights are exactly what `graph` reads: every tensor present with its
    /// shape, nothing extra, no NaN or infinity. `source_name` (a file, or "seeded weights")
    /// starts every message.
    pub fn validate(&self, graph: &Graph, source_name: &str) -> Result<(), WeightsError> {
        self.validate_with(graph, source_name, &|name| format!("`{name}`"))
    }

    /// `validate`, with `spell` turning a canonical tensor name into how the message shows it
    /// (a checkpoint loader shows the file's own spelling beside the canonical one).
    pub fn validate_with(
        &self,
        graph: &Graph,
        source_name: &str,
        spell: &dyn Fn(&str) -> String,
    ) -> Result<(), WeightsError> {
        let params = graph.params();
        let expected: BTreeMap<String, Vec<usize>> = params
            .iter()
            .map(|(name, spec)| (name.clone(), spec.shape.clone()))
            .collect();
        let missing: Vec<_> = expected
            .keys()
            .filter(|k| !self.tensors.contains_key(*k))
            .collect();
        if let Some(first) = missing.first() {
            return Err(WeightsError::Missing {
                source_name: source_name.into(),
                name: spell(first),
                expected: expected[*first].clone(),
                more: and_more(missing.len()),
            });
        }
        let unexpected: Vec<_> = self
            .tensors
            .keys()
            .filter(|k| !expected.contains_key(*k))
            .collect();
        if let Some(first) = unexpected.first() {
            return Err(WeightsError::Unexpected {
                source_name: source_name.into(),
                name: spell(first),
                found: self.tensors[*first].shape().to_vec(),
                graph: graph.name().into(),
                more: and_more(unexpected.len()),
            });
        }
        for (name, shape) in &expected {
            let tensor = &self.tensors[name];
            if tensor.shape() != shape.as_slice() {
                return Err(WeightsError::ShapeMismatch {
                    source_name: source_name.into(),
                    name: spell(name),
                    expected: shape.clone(),
                    found: tensor.shape().to_vec(),
                });
            }
            if let Some((first, count)) = tensor.non_finite() {
                return Err(WeightsError::NonFinite {
                    source_name: source_name.into(),
                    name: spell(name),
                    count,
                    first,
                });
            }
        }
        for (name, spec) in &params {
            if spec.role == ParamRole::BnVar {
                check_variance(&self.tensors[name], source_name, &spell(name))?;
            }
        }
        Ok(())
    }
}

/// A BN running variance must be >= 0: a negative one folds into NaN scales (sqrt of a
/// negative), which ReLU would then hide as zeros.
fn check_variance<T: Element>(
    tensor: &Tensor<T>,
    source_name: &str,
    name: &str,
) -> Result<(), WeightsError> {
    let negative: Vec<(usize, f64)> = tensor
        .data()
        .iter()
        .enumerate()
        .map(|(i, v)| (i, v.to_f64()))
        .filter(|(_, v)| *v < 0.0)
        .collect();
    match negative.first() {
        None => Ok(()),
        Some(&(first, value)) => Err(WeightsError::NegativeVariance {
            source_name: source_name.into(),
            name: name.into(),
            count: negative.len(),
            first,
            value,
        }),
    }
}

fn and_more(count: usize) -> String {
    if count > 1 {
        format!(" (and {} more)", count - 1)
    } else {
        String::new()
    }
}

/// Seeded random weights for every parameter of `graph`, bit-identical on every platform.
///
/// Conv and linear weights are uniform with variance 2 / fan_in (He); biases are small. BN
/// statistics are deliberately non-trivial: gamma in [0.5, 1.5], beta in [-0.2, 0.2], running
/// mean in [-0.5, 0.5], running variance in [0.5, 2]. The gamma and beta of a BN whose output
/// is one of n summed branches are scaled by 1/sqrt(n), so a block's output keeps the scale of
/// its input and activations stay of order one through 40+ blocks. Each tensor draws from its
/// own stream seeded by (seed, tensor name), so adding a tensor never changes the others.
pub fn random_weights(graph: &Graph, seed: u64) -> Weights<f32> {
    let branches = branch_counts(graph);
    let mut weights = Weights::new();
    for node in graph.nodes() {
        let share = 1.0 / (branches.get(node.name.as_str()).copied().unwrap_or(1) as f32).sqrt();
        for (name, spec) in node.params() {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ fnv1a(&name));
            let n: usize = spec.shape.iter().product();
            let (lo, hi) = match spec.role {
                ParamRole::Weight { fan_in } => {
                    let bound = (6.0 / fan_in as f64).sqrt() as f32;
                    (-bound, bound)
                }
                ParamRole::Bias => (-0.1, 0.1),
                ParamRole::BnGamma => (0.5 * share, 1.5 * share),
                ParamRole::BnBeta => (-0.2 * share, 0.2 * share),
                ParamRole::BnMean => (-0.5, 0.5),
                ParamRole::BnVar => (0.5, 2.0),
            };
            let data = (0..n).map(|_| uniform(&mut rng, lo, hi)).collect();
            let tensor =
                Tensor::new(spec.shape, data).expect("spec shape matches its element count");
            weights.insert(name, tensor);
        }
    }
    weights
}

/// For each node whose output is one of the n inputs of an add, n.
fn branch_counts(graph: &Graph) -> BTreeMap<&str, usize> {
    use crate::graph::{Op, ValueId};
    let nodes = graph.nodes();
    let mut counts = BTreeMap::new();
    for node in nodes.iter().filter(|n| matches!(n.op, Op::Add)) {
        for input in &node.inputs {
            if let ValueId::Node(i) = input {
                counts.insert(nodes[*i].name.as_str(), node.inputs.len());
            }
        }
    }
    counts
}

/// A tensor of seeded uniform values in [lo, hi): inputs for checks and benchmarks.
pub fn seeded_uniform(shape: Vec<usize>, seed: u64, lo: f32, hi: f32) -> Tensor<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    let data = (0..n).map(|_| uniform(&mut rng, lo, hi)).collect();
    Tensor::new(shape, data).expect("sized from the shape")
}

/// A uniform f32 in [lo, hi) from 24 random bits: exact, so identical everywhere.
fn uniform(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    let unit = (rng.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32);
    lo + (hi - lo) * unit
}

/// FNV-1a: a stable 64-bit hash of a tensor name (std's hasher is not stable across releases).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mobileone::{build, Variant};
    use crate::model::{Form, InputSize};
    use crate::testing::assert_contains;

    fn s0_unfused() -> Graph {
        build(Variant::S0, Form::Unfused, InputSize::IMAGENET).unwrap()
    }

    #[test]
    fn random_weights_are_valid_and_deterministic() {
        let g = s0_unfused();
        let a = random_weights(&g, 7);
        a.validate(&g, "seeded weights").unwrap();
        assert_eq!(a, random_weights(&g, 7));
        assert_ne!(a, random_weights(&g, 8));
        // Pinned bits: the stream must not change across platforms or dependency releases.
        let stem = a.get("stage0.rbr_conv.0.conv.weight").unwrap().data();
        assert_eq!(
            [stem[0].to_bits(), stem[1].to_bits()],
            [0xbea9_097c, 0xbd58_7b60]
        );
        let var = a.get("stage1.1.rbr_skip.running_var").unwrap();
        assert!(var.data().iter().all(|v| (0.5..2.0).contains(v)));
    }

    #[test]
    fn validate_names_the_problem() {
        let g = s0_unfused();
        let mut w = random_weights(&g, 1);
        let removed = w.remove("stage2.3.rbr_conv.1.bn.running_var").unwrap();
        let err = w.validate(&g, "ckpt.safetensors").unwrap_err().to_string();
        assert_contains(
            &err,
            &[
                "ckpt.safetensors",
                "missing tensor `stage2.3.rbr_conv.1.bn.running_var`",
            ],
        );

        w.insert("stage2.3.rbr_conv.1.bn.running_var", removed);
        w.insert("extra.weight", Tensor::zeros(vec![2]));
        let err = w.validate(&g, "f").unwrap_err().to_string();
        assert_contains(&err, &["unexpected tensor `extra.weight`"]);

        w.remove("extra.weight");
        w.insert("linear.bias", Tensor::zeros(vec![999]));
        let err = w.validate(&g, "f").unwrap_err().to_string();
        assert_contains(&err, &["`linear.bias` has shape [999], expected [1000]"]);

        let mut bad = vec![0.0f32; 1000];
        bad[3] = f32::NAN;
        w.insert("linear.bias", Tensor::new(vec![1000], bad).unwrap());
        let err = w.validate(&g, "f").unwrap_err();
        assert!(
            matches!(
                err,
                WeightsError::NonFinite {
                    count: 1,
                    first: 3,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn uniform_draws_stay_in_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..10_000 {
            let v = uniform(&mut rng, 0.5, 2.0);
            assert!((0.5..2.0).contains(&v));
        }
    }
}
