//! One forward pass of each model and form per backend (batch 1, 3x224x224, seeded weights,
//! 1 thread), for `cargo bench -p backends --bench forward`. Criterion reports time per pass
//! and GFLOP/s (FLOPs from the cost counter). The reference executor is left out: it is the
//! correctness oracle, not an engine. Filter with criterion's usual argument, e.g.
//! `cargo bench -p backends --bench forward -- candle-dw-unrolled/mobileone-s0`.

use backends::{Availability, PrepareOptions};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use models::{model_cost, seeded_uniform, Form, InputSize, Model, Variant};

fn forward(c: &mut Criterion) {
    let size = InputSize::IMAGENET;
    let input = seeded_uniform(size.shape(), 0, -2.0, 2.0);
    let options = PrepareOptions::with_threads(1);
    for backend in backends::all()
        .into_iter()
        .filter(|b| b.name() != "reference")
    {
        if let Availability::Unavailable(reason) = backend.availability() {
            eprintln!("{}: skipped: {reason}", backend.name());
            continue;
        }
        let mut group = c.benchmark_group(backend.name());
        group.sample_size(10);
        for variant in Variant::ALL {
            for form in Form::ALL {
                let graph = Model::MobileOne(variant)
                    .build(form, size)
                    .expect("valid graph");
                let weights = Model::MobileOne(variant).seeded_weights(form, 0);
                let mut plan = backend
                    .prepare(&graph, &weights, &options)
                    .expect("prepares");
                let mut output = models::Tensor::zeros(plan.output_shape().to_vec());
                group.throughput(Throughput::Elements(model_cost(&graph).totals.flops));
                group.bench_function(format!("{variant}/{form}"), |b| {
                    b.iter(|| plan.run(&input, &mut output).expect("runs"))
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, forward);
criterion_main!(benches);
