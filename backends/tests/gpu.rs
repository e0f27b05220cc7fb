//! The GPU backend at the paper's input: S0-S4 in both forms at 224x224 on whatever adapter
//! wgpu finds (lavapipe in CI), equal to the reference executor within relative L2 1e-3; and
//! the plan it records: one compute pass, timestamps reported apart from wall time.
#![cfg(feature = "gpu")]

use backends::{conformance, Backend, CheckOutcome, GpuBackend, PrepareOptions};
use models::{Form, InputSize, Model, Variant};

#[test]
fn s0_to_s4_both_forms_at_224_match_the_reference() {
    let gpu: Vec<Box<dyn Backend>> = vec![Box::new(GpuBackend::any())];
    let size = InputSize {
        batch: 1,
        height: 224,
        width: 224,
    };
    let checks = conformance(
        &gpu,
        &Variant::ALL.map(Model::MobileOne),
        &Form::ALL,
        size,
        7,
        &PrepareOptions::default(),
        |c| eprintln!("{} {} {}: {:?}", c.model, c.form, c.backend, c.outcome),
    )
    .unwrap();
    assert_eq!(checks.len(), 10);
    for c in &checks {
        let CheckOutcome::Checked(agreement) = &c.outcome else {
            panic!(
                "{} {}: {:?} (is a Vulkan driver installed? Debian: mesa-vulkan-drivers)",
                c.model, c.form, c.outcome
            );
        };
        assert!(agreement.tolerance <= 1e-3);
        assert!(agreement.passed(), "{} {}: {agreement:?}", c.model, c.form);
    }
}

#[test]
fn a_run_reports_the_adapter_and_gpu_time_apart_from_wall_time() {
    let backend = GpuBackend::any();
    let device = backend.device().expect("an adapter");
    assert!(device.contains("driver"), "{device}");
    let model = Model::MobileOne(Variant::S0);
    let size = InputSize {
        batch: 1,
        height: 64,
        width: 64,
    };
    let graph = model.build(Form::Reparameterized, size).unwrap();
    let weights = model.seeded_weights(Form::Reparameterized, 3);
    let mut plan = backend
        .prepare(&graph, &weights, &PrepareOptions::default())
        .unwrap();
    assert!(plan.describe().contains(&device), "{}", plan.describe());
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
