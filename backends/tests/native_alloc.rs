//! One run of a prepared native plan allocates nothing on the heap: a counting global allocator
//! watches every thread (this file holds one test so no other test allocates meanwhile).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use backends::native::NativeBackend;
use backends::{Backend, PrepareOptions};
use models::zoo::Activation;
use models::{seeded_uniform, Form, InputSize, Model, Precision, Tensor, Variant};

/// Counts allocations while `COUNTING` is on (any thread).
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SIZE: InputSize = InputSize::square(1, 64);

#[test]
fn a_run_allocates_nothing_on_the_heap() {
    // MobileOne, and zoo models with every other step kind: element-wise max and per-image
    // broadcast (dynamic ReLU-A, shift-max), channel copies (ShuffleNet, MixNet), max pool.
    let dynamic = |activation| Model::Plain30 {
        activation,
        skip: false,
    };
    for (variant, form) in [
        (Model::MobileOne(Variant::S0), Form::Unfused),
        (Model::MobileOne(Variant::S4), Form::Reparameterized),
        (dynamic(Activation::DynamicReluA), Form::Reparameterized),
        (dynamic(Activation::DynamicShiftMax), Form::Reparameterized),
        (Model::ShuffleNetV2x2, Form::Reparameterized),
        (Model::MixNetS, Form::Unfused),
    ] {
        // int8 covers MobileOne's ops (the zoo's concat, slice and max have no int8 form).
        let int8 = matches!(variant, Model::MobileOne(_));
        let int8_runs = [(1, Precision::Int8), (2, Precision::Int8)];
        for (threads, precision) in [
            (1, Precision::Fp32),
            (2, Precision::Fp32),
            (2, Precision::Bf16),
        ]
        .into_iter()
        .chain(int8_runs.into_iter().filter(|_| int8))
        {
            for per_layer_timing in [false, true] {
                let graph = variant.build(form, SIZE).unwrap();
                let weights = variant.seeded_weights(form, 0);
                let options = PrepareOptions {
                    threads,
                    per_layer_timing,
                    precision,
                };
                let mut plan = NativeBackend::new()
                    .prepare(&graph, &weights, &options)
                    .unwrap();
                let input = seeded_uniform(SIZE.shape(), 1, -1.0, 1.0);
                let mut output = Tensor::zeros(plan.output_shape().to_vec());
                plan.run(&input, &mut output).unwrap();
                ALLOCATIONS.store(0, Ordering::Relaxed);
                COUNTING.store(true, Ordering::Relaxed);
                for _ in 0..5 {
                    plan.run(&input, &mut output).unwrap();
                }
                COUNTING.store(false, Ordering::Relaxed);
                let count = ALLOCATIONS.load(Ordering::Relaxed);
                assert_eq!(count, 0, "{variant} {form} {precision}, {threads} threads, per-layer timing {per_layer_timing}: {count} allocations in 5 runs");
            }
        }
    }
    // The counter works: a plain Vec counts.
    COUNTING.store(true, Ordering::Relaxed);
    let v: Vec<u8> = Vec::with_capacity(10);
    COUNTING.store(false, Ordering::Relaxed);
    assert!(ALLOCATIONS.load(Ordering::Relaxed) >= 1, "{}", v.capacity());
}
