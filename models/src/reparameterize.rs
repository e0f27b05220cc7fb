//! Structural reparameterization: folds every train-time MobileOne block (k conv+BN branches,
//! a 1x1 scale branch, a BN identity branch) into one conv with bias. The arithmetic runs in
//! f64 whatever the element type, so an f32 fold is rounded once and an f64 fold is exact.

use std::collections::BTreeMap;

use crate::graph::{Conv2d, Graph, GraphBuilder, GraphError, Op, ValueId};
use crate::mobileone::{block_plan, build, BlockSpec, Variant, BN_EPS};
use crate::model::{Form, InputSize};
use crate::tensor::{Element, Tensor};
use crate::weights::{Weights, WeightsError};

/// Folds unfused weights of `variant` into the weights of its reparameterized graph.
/// The input is validated against the unfused graph first; SE and classifier tensors are copied.
pub fn reparameterize<T: Element>(
    variant: Variant,
    unfused: &Weights<T>,
    source_name: &str,
) -> Result<Weights<T>, WeightsError> {
    let graph = build(variant, Form::Unfused, InputSize::IMAGENET)
        .expect("the MobileOne graphs are valid by construction");
    fold_blocks(&block_plan(variant), &graph, unfused, source_name)
}

/// Folds the blocks of any block-stack model (MobileOne, RepVGG) given its unfused graph.
pub(crate) fn fold_blocks<T: Element>(
    blocks: &[BlockSpec],
    graph: &crate::Graph,
    unfused: &Weights<T>,
    source_name: &str,
) -> Result<Weights<T>, WeightsError> {
    unfused.validate(graph, source_name)?;
    let mut fused = Weights::new();
    for block in blocks {
        let (kernel, bias) = fold_block(block, unfused);
        let n = &block.name;
        let wshape = block.conv(block.kernel, true).weight_shape();
        fused.insert(
            format!("{n}.reparam_conv.weight"),
            to_tensor(wshape, kernel),
        );
        fused.insert(
            format!("{n}.reparam_conv.bias"),
            to_tensor(vec![block.out_channels], bias),
        );
        if block.se {
            for part in [
                "se.reduce.weight",
                "se.reduce.bias",
                "se.expand.weight",
                "se.expand.bias",
            ] {
                let name = format!("{n}.{part}");
                fused.insert(name.clone(), unfused.get(&name).expect("validated").clone());
            }
        }
    }
    for name in ["linear.weight", "linear.bias"] {
        fused.insert(name, unfused.get(name).expect("validated").clone());
    }
    check_folded(&fused, source_name)?;
    Ok(fused)
}

fn to_tensor<T: Element>(shape: Vec<usize>, data: Vec<f64>) -> Tensor<T> {
    let data = data.into_iter().map(T::from_f64).collect();
    Tensor::new(shape, data).expect("fold output matches its shape")
}

/// A BN as per-channel (scale, shift): y = x * scale + shift.
struct FoldedBn {
    scale: Vec<f64>,
    shift: Vec<f64>,
}

fn bn_affine<T: Element>(w: &Weights<T>, prefix: &str) -> FoldedBn {
    bn_affine_eps(w, prefix, BN_EPS)
}

fn bn_affine_eps<T: Element>(w: &Weights<T>, prefix: &str, eps: f64) -> FoldedBn {
    let get = |suffix: &str| {
        w.get(&format!("{prefix}.{suffix}"))
            .expect("validated")
            .data()
    };
    let (scale, shift) = batch_norm_affine(
        get("weight"),
        get("bias"),
        get("running_mean"),
        get("running_var"),
        eps,
    );
    FoldedBn { scale, shift }
}

/// An inference batch norm as per-channel (scale, shift), y = x * scale + shift, in f64: the
/// one place every engine and fold computes it.
pub fn batch_norm_affine<T: Element>(
    gamma: &[T],
    beta: &[T],
    mean: &[T],
    var: &[T],
    eps: f64,
) -> (Vec<f64>, Vec<f64>) {
    let scale: Vec<f64> = gamma
        .iter()
        .zip(var)
        .map(|(g, v)| g.to_f64() / (v.to_f64() + eps).sqrt())
        .collect();
    let shift = beta
        .iter()
        .zip(mean)
        .zip(&scale)
        .map(|((b, m), s)| b.to_f64() - m.to_f64() * s)
        .collect();
    (scale, shift)
}

/// The fold of finite weights can still overflow (a huge gamma over a tiny variance): every
/// folded tensor must be finite, or the fold is refused, whatever a later check of the
/// outputs would see (ReLU hides NaN as zero).
fn check_folded<T: Element>(fused: &Weights<T>, source_name: &str) -> Result<(), WeightsError> {
    for (name, tensor) in fused.iter() {
        if let Some((first, count)) = tensor.non_finite() {
            return Err(WeightsError::NonFinite {
                source_name: format!("{source_name} (after folding)"),
                name: format!("`{name}`"),
                count,
                first,
            });
        }
    }
    Ok(())
}

/// Kernel [out, in/groups, k, k] and bias [out] of one folded block.
fn fold_block<T: Element>(block: &BlockSpec, w: &Weights<T>) -> (Vec<f64>, Vec<f64>) {
    let k = block.kernel;
    let per_group_in = block.in_channels / block.groups;
    let out = block.out_channels;
    let taps = per_group_in * k * k;
    let mut kernel = vec![0.0f64; out * taps];
    let mut bias = vec![0.0f64; out];
    let centre = k / 2;

    // Adds BN-scaled `source` (a kernel of size ks x ks, centred) into the block kernel.
    let mut add_branch =
        |source: &dyn Fn(usize, usize, usize, usize) -> f64, ks: usize, bn: &FoldedBn| {
            let offset = centre - ks / 2;
            for (o, b) in bias.iter_mut().enumerate() {
                for i in 0..per_group_in {
                    for y in 0..ks {
                        for x in 0..ks {
                            let at = ((o * per_group_in + i) * k + y + offset) * k + x + offset;
                            kernel[at] += source(o, i, y, x) * bn.scale[o];
                        }
                    }
                }
                *b += bn.shift[o];
            }
        };

    let conv_weights = |name: String, ks: usize| {
        let data: Vec<f64> = w
            .get(&name)
            .expect("validated")
            .data()
            .iter()
            .map(|v| v.to_f64())
            .collect();
        move |o: usize, i: usize, y: usize, x: usize| {
            data[((o * per_group_in + i) * ks + y) * ks + x]
        }
    };

    let n = &block.name;
    for b in 0..block.conv_branches {
        let src = conv_weights(format!("{n}.rbr_conv.{b}.conv.weight"), k);
        add_branch(&src, k, &bn_affine(w, &format!("{n}.rbr_conv.{b}.bn")));
    }
    if block.has_scale() {
        let src = conv_weights(format!("{n}.rbr_scale.conv.weight"), 1);
        add_branch(&src, 1, &bn_affine(w, &format!("{n}.rbr_scale.bn")));
    }
    if block.has_identity() {
        // Identity as a kernel: 1 at [o, o mod (in/groups), centre, centre].
        let identity = |o: usize, i: usize, _y: usize, _x: usize| {
            if i == o % per_group_in {
                1.0
            } else {
                0.0
            }
        };
        add_branch(&identity, 1, &bn_affine(w, &format!("{n}.rbr_skip")));
    }
    (kernel, bias)
}

/// For every batch norm that reads a conv nothing else reads: (conv node, BN node).
/// The convs whose batch norm folds into them (read only by it), as conv node -> batch norm
/// node: the pairs `fold_batch_norms_graph` merges.
pub fn foldable_batch_norms(graph: &Graph) -> BTreeMap<usize, usize> {
    let mut readers = vec![0usize; graph.nodes().len()];
    for node in graph.nodes() {
        for input in &node.inputs {
            if let ValueId::Node(p) = input {
                readers[*p] += 1;
            }
        }
    }
    graph
        .nodes()
        .iter()
        .enumerate()
        .filter_map(|(i, node)| match (&node.op, node.inputs[0]) {
            (Op::BatchNorm(_), ValueId::Node(p))
                if readers[p] == 1 && matches!(graph.nodes()[p].op, Op::Conv2d(_)) =>
            {
                Some((p, i))
            }
            _ => None,
        })
        .collect()
}

/// The inference graph of any model: each conv followed by its own batch norm becomes one
/// conv with bias, keeping the conv's name; every other node is kept as it is.
pub fn fold_batch_norms_graph(graph: &Graph, name: &str) -> Result<Graph, GraphError> {
    let pairs = foldable_batch_norms(graph);
    let folded_bns: BTreeMap<usize, usize> = pairs.iter().map(|(&c, &b)| (b, c)).collect();
    let mut b = GraphBuilder::new(name, graph.input_shape().to_vec())?;
    let mut map: Vec<ValueId> = Vec::with_capacity(graph.nodes().len());
    let remap = |map: &Vec<ValueId>, v: ValueId| match v {
        ValueId::Input => ValueId::Input,
        ValueId::Node(i) => map[i],
    };
    for (i, node) in graph.nodes().iter().enumerate() {
        if let Some(&conv) = folded_bns.get(&i) {
            map.push(map[conv]);
            continue;
        }
        let op = match &node.op {
            Op::Conv2d(c) if pairs.contains_key(&i) => Op::Conv2d(Conv2d { bias: true, ..*c }),
            op => op.clone(),
        };
        let inputs: Vec<ValueId> = node.inputs.iter().map(|&v| remap(&map, v)).collect();
        map.push(b.add(&node.name, op, &inputs)?);
    }
    let output = remap(&map, graph.output());
    Ok(b.finish(output))
}

/// The weights of `fold_batch_norms_graph(graph)` from weights of `graph` (folded in f64).
pub fn fold_batch_norm_weights<T: Element>(
    graph: &Graph,
    unfused: &Weights<T>,
    source_name: &str,
) -> Result<Weights<T>, WeightsError> {
    unfused.validate(graph, source_name)?;
    let pairs = foldable_batch_norms(graph);
    let nodes = graph.nodes();
    let folded_bn_names: Vec<&str> = pairs.values().map(|&b| nodes[b].name.as_str()).collect();
    let mut fused = Weights::new();
    for (name, tensor) in unfused.iter() {
        let owner = name.rsplit_once('.').map_or("", |(owner, _)| owner);
        if !folded_bn_names.contains(&owner) {
            fused.insert(name.clone(), tensor.clone());
        }
    }
    for (&conv, &bn) in &pairs {
        let (c, n) = (&nodes[conv], &nodes[bn].name);
        let Op::BatchNorm(norm) = nodes[bn].op else {
            unreachable!("a foldable pair ends in a batch norm")
        };
        let affine = bn_affine_eps(unfused, n, norm.eps);
        let weight = unfused
            .get(&format!("{}.weight", c.name))
            .expect("validated");
        let out = affine.scale.len();
        let per_out = weight.numel() / out;
        let kernel: Vec<f64> = weight
            .data()
            .iter()
            .enumerate()
            .map(|(j, w)| w.to_f64() * affine.scale[j / per_out])
            .collect();
        let old_bias = unfused.get(&format!("{}.bias", c.name));
        let bias: Vec<f64> = (0..out)
            .map(|o| {
                let b = old_bias.map_or(0.0, |t| t.data()[o].to_f64());
                b * affine.scale[o] + affine.shift[o]
            })
            .collect();
        fused.insert(
            format!("{}.weight", c.name),
            to_tensor(weight.shape().to_vec(), kernel),
        );
        fused.insert(format!("{}.bias", c.name), to_tensor(vec![out], bias));
    }
    check_folded(&fused, source_name)?;
    Ok(fused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::random_weights;

    #[test]
    fn fused_weights_fit_the_reparameterized_graph() {
        for v in Variant::ALL {
            let unfused_graph = build(v, Form::Unfused, InputSize::IMAGENET).unwrap();
            let fused_graph = build(v, Form::Reparameterized, InputSize::IMAGENET).unwrap();
            let w = random_weights(&unfused_graph, 11);
            let fused = reparameterize(v, &w, "seeded").unwrap();
            fused.validate(&fused_graph, "fused").unwrap();
        }
    }

    #[test]
    fn a_negative_variance_is_refused_and_an_overflowing_fold_too() {
        let graph = build(Variant::S0, Form::Unfused, InputSize::IMAGENET).unwrap();
        let mut w = random_weights(&graph, 3);
        let name = "stage1.1.rbr_skip.running_var";
        let mut var = w.get(name).unwrap().clone();
        var.data_mut()[2] = -0.5;
        w.insert(name, var);
        let e = reparameterize(Variant::S0, &w, "bad.pth").unwrap_err();
        assert!(
            matches!(
                e,
                WeightsError::NegativeVariance {
                    first: 2,
                    count: 1,
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string().starts_with(
                "bad.pth: batch-norm variance `stage1.1.rbr_skip.running_var` has 1 negative"
            ),
            "{e}"
        );

        // Finite but absurd: gamma 1e38 over a variance of 0 gives 1e38 / sqrt(1e-5) = inf.
        let mut w = random_weights(&graph, 3);
        let gamma = "stage1.1.rbr_skip.weight";
        let mut g = w.get(gamma).unwrap().clone();
        g.data_mut()[0] = 1e38;
        w.insert(gamma, g);
        let mut var = w.get(name).unwrap().clone();
        var.data_mut()[0] = 0.0;
        w.insert(name, var);
        let e = reparameterize(Variant::S0, &w, "big.pth").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("big.pth (after folding): tensor `stage1.1.reparam_conv"),
            "{e}"
        );
    }

    #[test]
    fn identity_only_fold_is_the_bn_as_a_kernel() {
        // A depthwise stride-1 block with no conv branch would be pure BN; check the identity
        // and scale taps land at the kernel centre with the BN's scale.
        let block = BlockSpec {
            name: "b".into(),
            in_channels: 2,
            out_channels: 2,
            kernel: 3,
            stride: 1,
            groups: 2,
            conv_branches: 0,
            se: false,
        };
        let mut w = Weights::<f64>::new();
        let t = |v: Vec<f64>| Tensor::new(vec![v.len()], v).unwrap();
        w.insert("b.rbr_skip.weight", t(vec![2.0, 3.0]));
        w.insert("b.rbr_skip.bias", t(vec![0.5, -1.0]));
        w.insert("b.rbr_skip.running_mean", t(vec![1.0, 2.0]));
        w.insert(
            "b.rbr_skip.running_var",
            t(vec![4.0 - BN_EPS, 1.0 - BN_EPS]),
        );
        w.insert(
            "b.rbr_scale.conv.weight",
            Tensor::new(vec![2, 1, 1, 1], vec![10.0, 20.0]).unwrap(),
        );
        w.insert("b.rbr_scale.bn.weight", t(vec![1.0, 1.0]));
        w.insert("b.rbr_scale.bn.bias", t(vec![0.0, 0.0]));
        w.insert("b.rbr_scale.bn.running_mean", t(vec![0.0, 0.0]));
        w.insert(
            "b.rbr_scale.bn.running_var",
            t(vec![1.0 - BN_EPS, 1.0 - BN_EPS]),
        );
        let (kernel, bias) = fold_block(&block, &w);
        // Channel 0: identity scale 2 / sqrt(4) = 1, scale branch 10 -> centre 11.
        // Channel 1: identity scale 3 / 1 = 3, scale branch 20 -> centre 23.
        let mut expected = vec![0.0; 18];
        expected[4] = 11.0;
        expected[13] = 23.0;
        for (a, e) in kernel.iter().zip(&expected) {
            assert!((a - e).abs() < 1e-12, "{kernel:?}");
        }
        // Bias: beta - mean * scale = 0.5 - 1 * 1 = -0.5; -1 - 2 * 3 = -7.
        assert!(
            (bias[0] + 0.5).abs() < 1e-12 && (bias[1] + 7.0).abs() < 1e-12,
            "{bias:?}"
        );
    }

    #[test]
    fn wrong_input_weights_are_refused() {
        let g = build(Variant::S1, Form::Unfused, InputSize::IMAGENET).unwrap();
        let mut w = random_weights(&g, 2);
        w.remove("stage0.rbr_scale.bn.weight");
        let err = reparameterize(Variant::S1, &w, "x.pth").unwrap_err();
        assert!(
            err.to_string().contains("stage0.rbr_scale.bn.weight"),
            "{err}"
        );
    }
}
