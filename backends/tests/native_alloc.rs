//! One run of a prepared native plan allocates nothing on the heap: a counting global allocator
//! watches every thread (this file holds one test so no other test allocates meanwhile).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use backends::native::NativeBackend;
use backends::{Backend, PrepareOptions};
use models::{build, seeded_uniform, seeded_weights, Form, InputSize, Tensor, Variant};

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

const SIZE: InputSize = InputSize {
    batch: 1,
    height: 64,
    width: 64,
};

#[test]
fn a_run_allocates_nothing_on_the_heap() {
    for (variant, form) in [
        (Variant::S0, Form::Unfused),
        (Variant::S4, Form::Reparameterized),
    ] {
        for threads in [1, 2] {
            for per_layer_timing in [false, true] {
                let graph = build(variant, form, SIZE).unwrap();
                let (weights, _) = seeded_weights(variant, form, 0);
                let options = PrepareOptions {
                    threads,
                    per_layer_timing,
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
                assert_eq!(count, 0, "{variant} {form}, {threads} threads, per-layer timing {per_layer_timing}: {count} allocations in 5 runs");
            }
        }
    }
    // The counter works: a plain Vec counts.
    COUNTING.store(true, Ordering::Relaxed);
    let v: Vec<u8> = Vec::with_capacity(10);
    COUNTING.store(false, Ordering::Relaxed);
    assert!(ALLOCATIONS.load(Ordering::Relaxed) >= 1, "{}", v.capacity());
}
