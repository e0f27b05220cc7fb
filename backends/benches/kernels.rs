//! The native backend's kernels one at a time, on the layer shapes MobileOne runs at 224x224,
//! for every instruction set this CPU supports, single-threaded: `cargo bench -p backends
//! --bench kernels`. Criterion's throughput is FLOPs (reported as elements/s = FLOP/s) for the
//! GEMM and depthwise kernels and bytes moved for the memory-bound ones.

use backends::native::kernels::{channelwise, depthwise, gemm};
use backends::native::simd::{bf16_bits, Storage};
use backends::native::Isa;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use models::seeded_uniform;

/// (pixels, in channels, out channels) of pointwise layers of S0, S1 and S4.
const POINTWISE: [(usize, usize, usize); 5] = [
    (112 * 112, 48, 48),
    (56 * 56, 48, 128),
    (28 * 28, 256, 256),
    (14 * 14, 512, 512),
    (7 * 7, 1024, 1024),
];

/// (side, channels, stride) of depthwise 3x3 layers, each in f32 and in bf16 storage.
const DEPTHWISE: [(usize, usize, usize); 4] =
    [(112, 48, 1), (112, 48, 2), (28, 256, 1), (14, 512, 1)];

/// The GEMMs in f32 on every instruction set, and in fp16 (A and B fp16, fp16 sums) on
/// those with fp16 arithmetic.
fn pointwise(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    group.sample_size(20);
    let fp16 = |isa: Isa| isa.has_fp16_arith().then_some((isa, true));
    let cases = Isa::supported()
        .into_iter()
        .map(|isa| (isa, false))
        .chain(Isa::supported().into_iter().filter_map(fp16));
    for (isa, half) in cases {
        for &(m, k, n) in &POINTWISE {
            let a = seeded_uniform(vec![m * k], 1, -1.0, 1.0);
            let w = seeded_uniform(vec![k * n], 2, -1.0, 1.0);
            let b = |kk: usize, col: usize| w.data()[kk * n + col];
            let (packed, a) = match half {
                false => (
                    gemm::PackedGemm::pack(isa, k, n, b, None),
                    a.data().to_vec(),
                ),
                true => (
                    gemm::PackedGemm::pack_fp16(isa, k, n, b, None),
                    fp16_words(a.data()),
                ),
            };
            let mut out = vec![0.0f32; m * n];
            let name = format!("{}{}", isa.name(), if half { " fp16" } else { "" });
            group.throughput(Throughput::Elements((2 * m * k * n) as u64));
            group.bench_function(BenchmarkId::new(name, format!("{m}x{k}x{n}")), |bench| {
                bench.iter(|| {
                    let args = gemm::GemmArgs {
                        m,
                        a: a.as_ptr(),
                        lda: k,
                        c: out.as_mut_ptr(),
                        ldc: n,
                        accumulate: false,
                        relu: true,
                        c_storage: Storage::F32,
                    };
                    unsafe { gemm::gemm(&packed, args, 0, 1) }
                })
            });
        }
    }
    group.finish();
}

/// `values` as fp16, two per float of storage (k is even in every shape here).
fn fp16_words(values: &[f32]) -> Vec<f32> {
    let bits = |x: f32| u32::from(half::f16::from_f32(x).to_bits());
    let pair = |p: &[f32]| f32::from_bits(bits(p[0]) | bits(p[1]) << 16);
    values.chunks(2).map(pair).collect()
}

fn depthwise3x3(c: &mut Criterion) {
    let mut group = c.benchmark_group("depthwise3x3");
    group.sample_size(20);
    for isa in Isa::supported() {
        for &(side, ch, stride) in &DEPTHWISE {
            let out_side = (side + 2 - 3) / stride + 1;
            let shape = depthwise::DepthwiseShape {
                batch: 1,
                channels: ch,
                height: side,
                width: side,
                kernel: 3,
                stride,
                padding: 1,
                out_height: out_side,
                out_width: out_side,
            };
            let w = seeded_uniform(vec![ch * 9], 3, -1.0, 1.0);
            let packed = depthwise::PackedDepthwise::pack(isa, shape, w.data(), None);
            let x = seeded_uniform(vec![side * side * ch], 4, -1.0, 1.0);
            let mut out = vec![0.0f32; out_side * out_side * ch];
            group.throughput(Throughput::Elements(
                (2 * 9 * out_side * out_side * ch) as u64,
            ));
            // Floats in and out, and bf16 in and out (what a bf16 plan stores between ops;
            // f32 math either way).
            let x16: Vec<u16> = x.data().iter().map(|&v| bf16_bits(v)).collect();
            for storage in [Storage::F32, Storage::Bf16] {
                let input = match storage {
                    Storage::F32 => x.data().as_ptr(),
                    Storage::Bf16 => x16.as_ptr() as *const f32,
                };
                let io = depthwise::DepthwiseIo {
                    input,
                    input_storage: storage,
                    output: out.as_mut_ptr(),
                    output_storage: storage,
                    accumulate: false,
                    relu: true,
                };
                let name = format!("{}-{}", isa.name(), storage.name());
                group.bench_function(
                    BenchmarkId::new(name, format!("{side}x{side}x{ch}/s{stride}")),
                    |b| b.iter(|| unsafe { depthwise::depthwise(&packed, &io, 0, 1) }),
                );
            }
        }
    }
    group.finish();
}

fn affine(c: &mut Criterion) {
    let mut group = c.benchmark_group("channel-affine");
    group.sample_size(20);
    let (pixels, ch) = (56 * 56, 128);
    let x = seeded_uniform(vec![pixels * ch], 5, -1.0, 1.0);
    let scale = vec![0.5f32; ch];
    let shift = vec![0.1f32; ch];
    let mut out = vec![0.0f32; pixels * ch];
    group.throughput(Throughput::Bytes((3 * 4 * pixels * ch) as u64));
    for isa in Isa::supported() {
        group.bench_function(
            BenchmarkId::new(isa.name(), format!("{pixels}x{ch}/accumulate")),
            |b| {
                b.iter(|| {
                    let args = channelwise::AffineArgs {
                        batch: 1,
                        pixels,
                        channels: ch,
                        x: x.data().as_ptr(),
                        out: out.as_mut_ptr(),
                        scale: scale.as_ptr(),
                        scale_stride: 0,
                        shift: shift.as_ptr(),
                        shift_stride: 0,
                        accumulate: true,
                        relu: true,
                    };
                    unsafe { channelwise::affine(isa, &args, 0, 1) }
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, pointwise, depthwise3x3, affine);
criterion_main!(benches);
