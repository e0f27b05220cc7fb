//! What the native backend's plan says on whole models: the unfused form keeps one kernel call
//! per branch, the reparameterized form one fused kernel per block, and per-layer timing covers
//! every planned op.

use backends::native::NativeBackend;
use backends::{Backend, PrepareOptions};
use models::testing::assert_contains;
use models::{seeded_uniform, Form, Graph, InputSize, Model, Node, Op, Variant};

const SIZE: InputSize = InputSize::square(1, 64);

/// S-`variant` in `form` at 64x64 with seeded weights, and how native describes its plan.
fn planned(variant: Variant, form: Form) -> (Graph, String) {
    let model = Model::MobileOne(variant);
    let graph = model.build(form, SIZE).unwrap();
    let weights = model.seeded_weights(form, 0);
    let plan = NativeBackend::new().prepare(&graph, &weights, &PrepareOptions::default());
    (graph, plan.unwrap().describe())
}

fn count_nodes(graph: &Graph, pick: impl Fn(&Node) -> bool) -> usize {
    graph.nodes().iter().filter(|n| pick(n)).count()
}

fn count_lines(text: &str, pick: impl Fn(&str) -> bool) -> usize {
    text.lines().filter(|l| pick(l)).count()
}

#[test]
fn the_unfused_plan_runs_every_branch_and_says_what_it_fused() {
    let (graph, text) = planned(Variant::S0, Form::Unfused);
    let convs = count_nodes(&graph, |n| matches!(n.op, Op::Conv2d(_)));
    let conv_steps = count_lines(&text, |l| {
        l.contains(": gemm ")
            || l.contains(": conv as implicit gemm ")
            || l.contains(": depthwise ")
    });
    // One kernel call per conv branch plus the classifier's GEMM: no branch is folded away.
    assert_eq!(conv_steps, convs + 1, "{text}");
    let skips = count_nodes(&graph, |n| n.name.ends_with("rbr_skip"));
    let skip_steps = count_lines(&text, |l| l.contains("rbr_skip: channel affine"));
    assert_eq!(skip_steps, skips, "{text}");
    assert!(text.starts_with("native: layout NHWC"), "{text}");
    let bns = count_nodes(&graph, |n| matches!(n.op, Op::BatchNorm(_)));
    assert_contains(
        &text,
        &[
            &format!("{} batch norms into convs", bns - skips),
            "43 ReLUs into epilogues",
            "43 adds into accumulating branches",
        ],
    );
}

#[test]
fn the_reparameterized_plan_is_one_fused_kernel_per_block() {
    let (_, text) = planned(Variant::S1, Form::Reparameterized);
    let fused = count_lines(&text, |l| {
        l.contains(".reparam_conv+") && l.contains(".relu:") && l.ends_with("+bias +relu")
    });
    assert_eq!(fused, 43, "{text}");
}

#[test]
fn per_layer_timing_covers_every_step() {
    let graph = Model::MobileOne(Variant::S0)
        .build(Form::Reparameterized, SIZE)
        .unwrap();
    let weights = Model::MobileOne(Variant::S0).seeded_weights(Form::Reparameterized, 0);
    let input = seeded_uniform(SIZE.shape(), 1, -1.0, 1.0);
    let options = PrepareOptions {
        per_layer_timing: true,
        ..PrepareOptions::with_threads(2)
    };
    let mut plan = NativeBackend::new()
        .prepare(&graph, &weights, &options)
        .unwrap();
    for _ in 0..3 {
        plan.forward(&input).unwrap();
    }
    let layers = plan.layer_times();
    let steps = plan.describe().lines().count() - 1;
    assert_eq!(layers.len(), steps);
    assert!(
        layers.iter().all(|l| l.runs == 3 && l.seconds > 0.0),
        "{layers:?}"
    );
    let gemm = layers
        .iter()
        .find(|l| l.name == "stage1.1.reparam_conv+stage1.1.relu")
        .unwrap();
    assert_eq!(gemm.kind, "gemm");
    let untimed = NativeBackend::new()
        .prepare(&graph, &weights, &PrepareOptions::default())
        .unwrap();
    assert!(untimed.layer_times().is_empty());
}

#[test]
fn whole_models_match_the_reference_on_this_cpus_best_instruction_set() {
    // The conformance suite covers every model on every backend; this repeats two of them here
    // so that runs of this file alone (CI's aarch64 run under qemu, and its runs with
    // ONEBENCH_NATIVE_ISA=portable or avx2) check those paths end to end.
    #[cfg(target_arch = "aarch64")]
    assert_eq!(
        backends::native::Isa::best().f32_kernels(),
        backends::native::Isa::Neon
    );
    for (variant, form) in [
        (Variant::S0, Form::Unfused),
        (Variant::S4, Form::Reparameterized),
    ] {
        let graph = Model::MobileOne(variant).build(form, SIZE).unwrap();
        let weights = Model::MobileOne(variant).seeded_weights(form, 0);
        let input = seeded_uniform(SIZE.shape(), 3, -2.0, 2.0);
        let expected = backends::reference_output(&graph, &weights, &input).unwrap();
        for threads in [1, 2] {
            let options = PrepareOptions::with_threads(threads);
            let mut plan = NativeBackend::new()
                .prepare(&graph, &weights, &options)
                .unwrap();
            let err = models::relative_l2(plan.forward(&input).unwrap().data(), expected.data());
            assert!(
                err < 1e-5,
                "{variant} {form} ({threads} threads): relative L2 {err:e}"
            );
        }
    }
}

/// At bf16 on a bf16 dot product, activations stay bf16 between the kernels that read them
/// so: the stem, every depthwise and every pointwise conv but the last (which the pooling
/// reads) write bf16, no conversion step runs before a pointwise conv (only before the
/// classifier), and the result is still within bf16's tolerance. Without a dot product, and
/// in the unfused form (whose branches add into one buffer), every activation stays f32.
#[test]
fn at_bf16_on_a_dot_product_activations_stay_bf16_between_kernels() {
    use backends::native::Isa;
    use models::Precision;
    let model = Model::MobileOne(Variant::S1);
    let input = seeded_uniform(SIZE.shape(), 3, -2.0, 2.0);
    for isa in Isa::supported() {
        let backend = NativeBackend::with_isa(isa);
        for form in [Form::Reparameterized, Form::Unfused] {
            let graph = model.build(form, SIZE).unwrap();
            let weights = model.seeded_weights(form, 0);
            let options = PrepareOptions::with_threads(2).at(Precision::Bf16);
            let mut plan = backend.prepare(&graph, &weights, &options).unwrap();
            let text = plan.describe();
            let converts = count_lines(&text, |l| l.contains(": round to bf16"));
            let depthwise_bf16 = count_lines(&text, |l| {
                l.contains(": depthwise ") && l.contains(" bf16->bf16 ")
            });
            if isa.has_bf16_dot() && form == Form::Reparameterized {
                assert_contains(
                    &text,
                    &["42 activations written in bf16 by their producers"],
                );
                assert_eq!(depthwise_bf16, 21, "{isa}: {text}");
                // The stem's rounded input (it runs on the f32 kernels) and the classifier's.
                assert_eq!(converts, 2, "{isa}: {text}");
                let expected = backends::reference_output(&graph, &weights, &input).unwrap();
                let err =
                    models::relative_l2(plan.forward(&input).unwrap().data(), expected.data());
                assert!(
                    err < backend.tolerance_at(Precision::Bf16),
                    "{isa}: {err:e}"
                );
            } else {
                assert_contains(&text, &["0 activations written in bf16 by their producers"]);
                assert_eq!(depthwise_bf16, 0, "{isa} {form}: {text}");
            }
        }
    }
}
