//! The GPU backend at the paper's input: S0-S4 in both forms at 224x224 on whatever adapter
//! wgpu finds (lavapipe in CI), equal to the reference executor within relative L2 1e-3; and
//! the plan it records: one compute pass, timestamps reported apart from wall time.
#![cfg(feature = "gpu")]

use backends::gpu::PointwiseKernel;
mod common;

use backends::{Backend, CheckOutcome, GpuBackend, PrepareOptions};
use common::checked_in_both_forms;
use models::testing::assert_contains;
use models::{Form, InputSize, Model, Precision, Variant};

/// Both 1x1 kernels: the tiled one real GPUs run, and the barrier-free one CPU adapters get.
fn both_pointwise_kernels() -> Vec<Box<dyn Backend>> {
    [PointwiseKernel::Tiled, PointwiseKernel::Direct]
        .map(|k| Box::new(GpuBackend::any().with_pointwise(k)) as Box<dyn Backend>)
        .into()
}

#[test]
fn s0_to_s4_both_forms_at_224_match_the_reference() {
    let mobileone = Variant::ALL.map(Model::MobileOne);
    let size = (InputSize::square(1, 224), 7);
    let hint = "\n(is a Vulkan driver installed? Debian: mesa-vulkan-drivers)";
    let options = PrepareOptions::default();
    let checked =
        checked_in_both_forms(&both_pointwise_kernels(), &mobileone, size, &options, hint);
    assert_eq!(checked, 20, "{hint}");
    assert!(GpuBackend::any().tolerance() <= 1e-3);
}

/// Channel counts that are not multiples of the tiles (24, 40, 72, 112, 120, ...), odd maps.
#[test]
fn both_pointwise_kernels_handle_ragged_tiles() {
    let models = [
        Model::MobileNetV3Large,
        Model::EfficientNetB0,
        Model::ShuffleNetV2x2,
    ];
    let size = (InputSize::square(2, 72), 5);
    let options = PrepareOptions::default();
    let checked = checked_in_both_forms(&both_pointwise_kernels(), &models, size, &options, "");
    assert_eq!(checked, 12);
}

#[test]
fn a_run_reports_the_adapter_and_gpu_time_apart_from_wall_time() {
    let backend = GpuBackend::any();
    let device = backend.device().expect("an adapter");
    assert_contains(&device, &["driver"]);
    let model = Model::MobileOne(Variant::S0);
    let size = InputSize::square(1, 64);
    let graph = model.build(Form::Reparameterized, size).unwrap();
    let weights = model.seeded_weights(Form::Reparameterized, 3);
    let mut plan = backend
        .prepare(&graph, &weights, &PrepareOptions::default())
        .unwrap();
    assert_contains(&plan.describe(), &[&device]);
    assert!(plan.describe().contains("one compute pass"));
    assert_eq!(plan.gpu_seconds(), None, "nothing has run yet");
    let input = models::Tensor::zeros(graph.input_shape().to_vec());
    let start = std::time::Instant::now();
    plan.forward(&input).unwrap();
    let wall = start.elapsed().as_secs_f64();
    if plan.describe().contains("GPU timestamps: yes") {
        let gpu = plan.gpu_seconds().expect("timestamps were recorded");
        assert!(gpu > 0.0 && gpu <= wall, "gpu {gpu} s, wall {wall} s");
    }
}

/// A profiling plan times each dispatch between two timestamps; the timed plan never does.
#[test]
fn a_profiling_plan_reports_per_dispatch_gpu_times() {
    let backend = GpuBackend::any();
    if !backend.reports_layer_times() {
        eprintln!("this adapter has no timestamp queries: nothing to check");
        return;
    }
    let model = Model::MobileOne(Variant::S0);
    let size = InputSize::square(1, 64);
    let graph = model.build(Form::Unfused, size).unwrap();
    let weights = model.seeded_weights(Form::Unfused, 3);
    let profiling = PrepareOptions {
        per_layer_timing: true,
        ..PrepareOptions::with_threads(1)
    };
    let mut plan = backend.prepare(&graph, &weights, &profiling).unwrap();
    let input = models::Tensor::zeros(graph.input_shape().to_vec());
    let start = std::time::Instant::now();
    for _ in 0..2 {
        plan.forward(&input).unwrap();
    }
    let wall = start.elapsed().as_secs_f64();
    let layers = plan.layer_times();
    assert!(
        layers.len() > 100,
        "one entry per dispatch: {}",
        layers.len()
    );
    assert!(layers.iter().all(|l| l.runs == 2 && l.seconds >= 0.0));
    assert!(layers
        .iter()
        .any(|l| l.kind == "depthwise" && l.seconds > 0.0));
    let total: f64 = layers.iter().map(|l| l.seconds).sum();
    assert!(
        total > 0.0 && total <= wall,
        "{total} s of GPU time in {wall} s"
    );
    let mut timed = backend
        .prepare(&graph, &weights, &PrepareOptions::default())
        .unwrap();
    timed.forward(&input).unwrap();
    assert!(timed.layer_times().is_empty());
}

/// fp16 where the adapter offers f16 in shaders (lavapipe does): S0-S4 in both forms at 224
/// within the fp16 tolerance, with the error of f16 storage (not an f32 run under the name),
/// both 1x1 kernels, and a plan that says what it stores. Elsewhere the cell is refused with
/// the reason.
#[test]
fn fp16_plans_store_f16_where_the_adapter_offers_shader_f16() {
    let gpu = GpuBackend::any();
    if let Err(reason) = gpu.supports(Precision::Fp16) {
        assert_contains(&reason, &["does not offer SHADER_F16"]);
        return;
    }
    let options = PrepareOptions::default().at(Precision::Fp16);
    let mobileone = Variant::ALL.map(Model::MobileOne);
    let size = InputSize::square(1, 224);
    let checks = backends::conformance(
        &both_pointwise_kernels(),
        &mobileone,
        &Form::ALL,
        size,
        7,
        &options,
        |_| {},
    )
    .unwrap();
    assert_eq!(checks.len(), 20);
    for check in &checks {
        let CheckOutcome::Checked(agreement) = &check.outcome else {
            panic!("{check:?}");
        };
        assert!(agreement.passed(), "{check:?}");
        assert!(
            agreement.relative_l2 > 1e-4,
            "f16 rounding shows: {check:?}"
        );
    }
    let model = Model::MobileOne(Variant::S0);
    let graph = model.build(Form::Reparameterized, size).unwrap();
    let weights = model.seeded_weights(Form::Reparameterized, 3);
    let plan = gpu.prepare(&graph, &weights, &options).unwrap();
    assert_contains(&plan.describe(), &["f16 buffers", "sums in f32"]);
    let bf16 = gpu.supports(Precision::Bf16).unwrap_err();
    assert_contains(&bf16, &["no bf16 type"]);
}
