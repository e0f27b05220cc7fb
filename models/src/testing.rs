//! What the workspace's tests share: checks whose failure shows what was checked, and the
//! small real model the engines' own tests run. Not used by the suite itself.

/// Asserts that `text` contains every one of `needles`, showing the text when one is missing.
#[track_caller]
pub fn assert_contains(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "`{needle}` missing from:\n{text}");
    }
}

/// A conv with a bias: `cin` to `cout` channels, a `k`x`k` kernel, `stride`, `padding` on
/// every side and `groups`.
pub fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    padding: usize,
    groups: usize,
) -> crate::graph::Conv2d {
    crate::graph::Conv2d {
        in_channels: cin,
        out_channels: cout,
        kernel: k,
        stride,
        padding,
        groups,
        bias: true,
    }
}

/// MobileOne S0 reparameterized at `size`x`size`, batch 1, with seeded weights (seed 0) and a
/// seeded input in [-2, 2): the small real model the engines' own tests run.
pub fn small_s0(size: usize) -> (crate::Graph, crate::Weights, crate::Tensor) {
    use crate::{seeded_uniform, Form, InputSize, Model, Variant};
    let model = Model::MobileOne(Variant::S0);
    let graph = model
        .build(Form::Reparameterized, InputSize::square(1, size))
        .expect("S0 builds at any size from 32");
    let weights = model.seeded_weights(Form::Reparameterized, 0);
    let input = seeded_uniform(graph.input_shape().to_vec(), 0, -2.0, 2.0);
    (graph, weights, input)
}
