//! The harness's own cost per sample: the measurement loop driving an empty plan (a run that
//! does nothing). Criterion reports the time per `turn` of 1000 samples; divided by 1000 it is
//! the per-sample overhead (clock reads, recording, the stopping rule), to compare with the
//! fastest model's latency.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use backends::{BackendError, Prepared};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use harness::measure::{Budget, CellTimer};
use models::Tensor;

struct Empty;

impl Prepared for Empty {
    fn input_shape(&self) -> &[usize] {
        &[1]
    }
    fn output_shape(&self) -> &[usize] {
        &[1]
    }
    fn run(&mut self, _: &Tensor, _: &mut Tensor) -> Result<(), BackendError> {
        Ok(())
    }
    fn describe(&self) -> String {
        "empty".into()
    }
}

const SAMPLES: usize = 1000;

fn overhead(c: &mut Criterion) {
    let budget = Budget {
        warmup_runs: 1,
        warmup_min: Duration::ZERO,
        min_runs: SAMPLES,
        max_runs: SAMPLES,
        min_time: Duration::ZERO,
        max_time: Duration::from_secs(60),
        target_ci: Some(0.02),
    };
    let (input, mut output) = (Tensor::zeros(vec![1]), Tensor::zeros(vec![1]));
    let interrupt = AtomicBool::new(false);
    let mut group = c.benchmark_group("measurement loop");
    group.throughput(Throughput::Elements(SAMPLES as u64));
    group.bench_function("1000 samples of an empty plan", |b| {
        b.iter(|| {
            let mut timer = CellTimer::new();
            timer
                .turn(&mut Empty, &input, &mut output, &budget, None, &interrupt)
                .unwrap();
            timer.samples_ms.len()
        })
    });
    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
