//! The instruction sets the native kernels are written for, and the small vector trait the
//! kernels are generic over: one kernel body, instantiated for AVX-512, AVX2+FMA, NEON and a
//! plain portable (scalar) version. The set is picked at run time by CPU feature detection.

use std::fmt;
use std::str::FromStr;

/// An instruction set a kernel can be instantiated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Plain Rust, one float at a time: runs everywhere; the baseline SIMD paths are tested against.
    Portable,
    /// x86-64 AVX2 with FMA, 8 floats per vector.
    Avx2,
    /// x86-64 AVX-512F, 16 floats per vector.
    Avx512,
    /// AVX-512F with AVX512_BF16: the AVX-512 kernels, and bf16 GEMMs on `vdpbf16ps` (two
    /// bf16 products per float lane) where AVX-512 alone rounds to bf16 and multiplies in f32.
    Avx512Bf16,
    /// aarch64 Advanced SIMD, 4 floats per vector.
    Neon,
    /// NEON with BF16: the NEON kernels, and bf16 GEMMs on BFDOT (two bf16 products per float
    /// lane) where NEON alone rounds to bf16 and multiplies in f32.
    NeonBf16,
}

impl Isa {
    pub const ALL: [Isa; 6] = [
        Isa::Portable,
        Isa::Avx2,
        Isa::Avx512,
        Isa::Avx512Bf16,
        Isa::Neon,
        Isa::NeonBf16,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Avx512Bf16 => "avx512bf16",
            Isa::Neon => "neon",
            Isa::NeonBf16 => "neonbf16",
        }
    }

    /// Whether this CPU can run kernels built for `self`.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Bf16 => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512bf16")
            }
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[cfg(target_arch = "aarch64")]
            Isa::NeonBf16 => {
                std::arch::is_aarch64_feature_detected!("neon")
                    && std::arch::is_aarch64_feature_detected!("bf16")
            }
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Every instruction set this CPU supports, portable first.
    pub fn supported() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_supported()).collect()
    }

    /// The instruction set of the f32 kernels: `self`, but AVX-512 for AVX512_BF16 and NEON
    /// for NEON with BF16 (the extension only changes the bf16 GEMMs).
    pub fn f32_kernels(self) -> Isa {
        match self {
            Isa::Avx512Bf16 => Isa::Avx512,
            Isa::NeonBf16 => Isa::Neon,
            other => other,
        }
    }

    /// Whether bf16 GEMMs run on bf16 dot-product instructions (else: operands rounded to bf16,
    /// multiplied and summed in f32 by the f32 kernels, which gives the same products).
    pub fn has_bf16_dot(self) -> bool {
        matches!(self, Isa::Avx512Bf16 | Isa::NeonBf16)
    }

    /// Whether fp16 GEMMs can run on this CPU's fp16 multiply-adds from `self`'s kernels:
    /// AVX512-FP16 with AVX-512, FP16 arithmetic with NEON. (F16C or plain NEON only convert,
    /// which is no fp16 engine.)
    pub fn has_fp16_arith(self) -> bool {
        match self.f32_kernels() {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                self.is_supported()
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512fp16")
            }
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => self.is_supported() && std::arch::is_aarch64_feature_detected!("fp16"),
            _ => false,
        }
    }

    /// The fastest instruction set this CPU supports: a bf16 dot-product extension only where
    /// its dot product outruns the f32 FMA (`bf16_dot_speedup`), else the f32 kernels round
    /// bf16 operands instead.
    pub fn best() -> Isa {
        let pays = |isa: &Isa| !isa.has_bf16_dot() || bf16_dot_speedup() > 1.1;
        *Isa::supported()
            .iter()
            .rfind(|isa| pays(isa))
            .expect("portable is always supported")
    }
}

/// Multiply-adds per second of the bf16 dot product (`vdpbf16ps`, BFDOT: two bf16 products
/// per f32 lane) over those of the f32 FMA on this CPU, measured once per process in a few
/// milliseconds; 0 without one. About 2 where the CPU issues it as often as an FMA; on the Intel
/// Xeon this was written on (family 6, model 207) 0.53, the same as its bf16 GEMM against its
/// f32 one: there a bf16 GEMM is faster as f32 FMAs over bf16-rounded operands.
pub fn bf16_dot_speedup() -> f64 {
    static SPEEDUP: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *SPEEDUP.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if Isa::Avx512Bf16.is_supported() {
            return x86::dot_over_fma();
        }
        #[cfg(target_arch = "aarch64")]
        if Isa::NeonBf16.is_supported() {
            return arm::dot_over_fma();
        }
        0.0
    })
}

/// Multiply-adds per second of the fp16 FMA (`vfmadd231ph`, FMLA .8h: twice the lanes) over
/// those of the f32 FMA on this CPU, measured once per process in a few milliseconds; 0 without
/// fp16 arithmetic. 2.0 on the Intel Xeon this was written on.
pub fn fp16_fma_speedup() -> f64 {
    static SPEEDUP: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *SPEEDUP.get_or_init(|| {
        if !Isa::supported().iter().any(|isa| isa.has_fp16_arith()) {
            return 0.0;
        }
        #[cfg(target_arch = "x86_64")]
        return x86::fp16_over_fma();
        #[cfg(target_arch = "aarch64")]
        return arm::fp16_over_fma();
        #[allow(unreachable_code)]
        0.0
    })
}

/// The multiply-add rate this CPU reaches at `precision` over its f32 FMA rate, with the
/// fastest instructions native has for it; None where native cannot compute in it. bf16 is at
/// least 1 (f32 FMAs on rounded operands), more where the dot product outruns them.
pub fn precision_rate(precision: models::Precision) -> Option<f64> {
    match precision {
        models::Precision::Fp32 => Some(1.0),
        models::Precision::Bf16 => Some(bf16_dot_speedup().max(1.0)),
        models::Precision::Fp16 => Some(fp16_fma_speedup()).filter(|r| *r > 0.0),
        // Integer multiply-adds are not float operations: int8 cells have no FLOP peak here.
        models::Precision::Int8 => None,
    }
}

/// Best of five timings of `run`, in seconds.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn best_of_five(run: &dyn Fn() -> f32) -> f64 {
    (0..5)
        .map(|_| {
            let start = std::time::Instant::now();
            std::hint::black_box(run());
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Isa {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        Isa::ALL
            .into_iter()
            .find(|i| i.name() == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = Isa::ALL.iter().map(|i| i.name()).collect();
                format!(
                    "unknown instruction set `{s}` (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// A vector of `LANES` floats. Every method is `unsafe` because the caller must run on a CPU
/// that has the instruction set (checked once, when a plan picks its `Isa`), and pointers must
/// be valid for `LANES` floats.
pub(crate) trait Simd: Copy {
    const LANES: usize;
    type V: Copy;
    unsafe fn zero() -> Self::V;
    unsafe fn splat(x: f32) -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// a * b + c.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    /// `LANES` bf16 values widened to floats (exactly).
    unsafe fn load_bf16(p: *const u16) -> Self::V;
    /// `LANES` floats rounded to bf16 as [`bf16_bits`] does (ties to even, NaN stays NaN).
    unsafe fn store_bf16(p: *mut u16, v: Self::V);
    /// `2 * LANES` bf16 values widened to two float vectors, the even elements (0, 2, ...) and
    /// the odd ones: a shift and a mask of 32-bit lanes, no shuffle.
    unsafe fn load_bf16_pairs(p: *const u16) -> (Self::V, Self::V);
    /// Two float vectors rounded as `store_bf16` rounds, interleaved into `2 * LANES` bf16
    /// values: `even` to elements 0, 2, ..., `odd` to 1, 3, ...
    unsafe fn store_bf16_pairs(p: *mut u16, even: Self::V, odd: Self::V);
}

/// The bf16 nearest to `x` (ties to even; a NaN stays a quiet NaN), as its bits. Branch-free,
/// so loops over it vectorize; every vector `store_bf16` rounds the same way.
#[inline(always)]
pub fn bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounded = bits.wrapping_add(0x7fff + (bits >> 16 & 1));
    let quiet_nan = bits | 0x0040_0000;
    ((if x.is_nan() { quiet_nan } else { rounded }) >> 16) as u16
}

/// How an activation is stored between two kernels: floats, or bf16 values (half the bytes;
/// at bf16 between a producer and consumers that read it so).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    #[default]
    F32,
    Bf16,
}

impl Storage {
    pub fn name(self) -> &'static str {
        match self {
            Storage::F32 => "f32",
            Storage::Bf16 => "bf16",
        }
    }
}

/// An element type a kernel reads and writes activations in, loaded into and stored from
/// float vectors: `f32`, or [`Bf16`].
pub(crate) trait Elem: Copy {
    /// Whether this is bf16 (kernels choose their pair path on it at compile time).
    const BF16: bool;
    /// `S::LANES` elements at `p` as floats.
    unsafe fn load<S: Simd>(p: *const Self) -> S::V;
    unsafe fn store<S: Simd>(p: *mut Self, v: S::V);
}

/// A bf16 value, as its bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub(crate) struct Bf16(pub u16);

impl Elem for f32 {
    const BF16: bool = false;
    #[inline(always)]
    unsafe fn load<S: Simd>(p: *const f32) -> S::V {
        unsafe { S::load(p) }
    }
    #[inline(always)]
    unsafe fn store<S: Simd>(p: *mut f32, v: S::V) {
        unsafe { S::store(p, v) }
    }
}

impl Elem for Bf16 {
    const BF16: bool = true;
    #[inline(always)]
    unsafe fn load<S: Simd>(p: *const Bf16) -> S::V {
        unsafe { S::load_bf16(p as *const u16) }
    }
    #[inline(always)]
    unsafe fn store<S: Simd>(p: *mut Bf16, v: S::V) {
        unsafe { S::store_bf16(p as *mut u16, v) }
    }
}

/// The plain scalar instantiation.
#[derive(Clone, Copy)]
pub(crate) struct Scalar;

impl Simd for Scalar {
    const LANES: usize = 1;
    type V = f32;
    #[inline(always)]
    unsafe fn zero() -> f32 {
        0.0
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> f32 {
        x
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> f32 {
        unsafe { *p }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: f32) {
        unsafe { *p = v }
    }
    #[inline(always)]
    unsafe fn fma(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
    #[inline(always)]
    unsafe fn add(a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    unsafe fn mul(a: f32, b: f32) -> f32 {
        a * b
    }
    #[inline(always)]
    unsafe fn max(a: f32, b: f32) -> f32 {
        if a > b {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const u16) -> f32 {
        f32::from_bits(u32::from(unsafe { *p }) << 16)
    }
    #[inline(always)]
    unsafe fn store_bf16(p: *mut u16, v: f32) {
        unsafe { *p = bf16_bits(v) }
    }
    #[inline(always)]
    unsafe fn load_bf16_pairs(p: *const u16) -> (f32, f32) {
        let bits = unsafe { (p as *const u32).read_unaligned() };
        (
            f32::from_bits(bits << 16),
            f32::from_bits(bits & 0xffff_0000),
        )
    }
    #[inline(always)]
    unsafe fn store_bf16_pairs(p: *mut u16, even: f32, odd: f32) {
        let bits = u32::from(bf16_bits(even)) | u32::from(bf16_bits(odd)) << 16;
        unsafe { (p as *mut u32).write_unaligned(bits) }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512, Avx512Dot};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Simd;
    use std::arch::x86_64::*;

    /// Multiply-adds per second of `vdpbf16ps` over `vfmadd231ps`, each timed on 12
    /// independent accumulators (enough to hide either's latency), best of five.
    pub(super) fn dot_over_fma() -> f64 {
        const ROUNDS: usize = 20_000;
        let fma = super::best_of_five(&|| unsafe { fma_chains(ROUNDS) });
        let dot = super::best_of_five(&|| unsafe { dot_chains(ROUNDS) });
        // A dot instruction does 32 multiply-adds, an FMA 16.
        (32.0 / dot) / (16.0 / fma)
    }

    /// Multiply-adds per second of `vfmadd231ph` over `vfmadd231ps`, as `dot_over_fma`.
    pub(super) fn fp16_over_fma() -> f64 {
        const ROUNDS: usize = 20_000;
        let fma = super::best_of_five(&|| unsafe { fma_chains(ROUNDS) });
        let half = super::best_of_five(&|| unsafe { fp16_chains(ROUNDS) });
        // An fp16 FMA does 32 multiply-adds, an f32 one 16.
        (32.0 / half) / (16.0 / fma)
    }

    #[target_feature(enable = "avx512f,avx512fp16")]
    fn fp16_chains(rounds: usize) -> f32 {
        // fp16 1.0 and 1/1024 in every lane.
        let a = std::hint::black_box(_mm512_set1_epi16(0x3c00));
        let b = std::hint::black_box(_mm512_set1_epi16(0x1400));
        let mut acc = [_mm512_setzero_si512(); 12];
        for _ in 0..rounds {
            for v in acc.iter_mut() {
                // Stable Rust has no fp16 intrinsics.
                unsafe {
                    std::arch::asm!(
                        "vfmadd231ph {c}, {a}, {b}",
                        c = inout(zmm_reg) *v,
                        a = in(zmm_reg) a,
                        b = in(zmm_reg) b,
                        options(pure, nomem, nostack)
                    )
                };
            }
        }
        acc.iter().map(|&v| _mm512_reduce_add_epi32(v) as f32).sum()
    }

    #[target_feature(enable = "avx512f")]
    fn fma_chains(rounds: usize) -> f32 {
        let a = std::hint::black_box(_mm512_set1_ps(1.0));
        let b = std::hint::black_box(_mm512_set1_ps(1e-3));
        let mut acc = [_mm512_setzero_ps(); 12];
        for _ in 0..rounds {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(a, b, *v);
            }
        }
        acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    fn dot_chains(rounds: usize) -> f32 {
        let ones = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1.0), _mm512_set1_ps(1.0));
        let ones = std::hint::black_box(ones);
        let small = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3), _mm512_set1_ps(1e-3));
        let small = std::hint::black_box(small);
        let mut acc = [_mm512_setzero_ps(); 12];
        for _ in 0..rounds {
            for v in acc.iter_mut() {
                *v = _mm512_dpbf16_ps(*v, ones, small);
            }
        }
        acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
    }

    #[derive(Clone, Copy)]
    pub(crate) struct Avx512;

    impl Simd for Avx512 {
        const LANES: usize = 16;
        type V = __m512;
        #[inline(always)]
        unsafe fn zero() -> __m512 {
            unsafe { _mm512_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> __m512 {
            unsafe { _mm512_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512) {
            unsafe { _mm512_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn add(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_add_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn mul(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_mul_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn max(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_max_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn load_bf16(p: *const u16) -> __m512 {
            unsafe {
                let half = _mm256_loadu_si256(p as *const __m256i);
                _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(half), 16))
            }
        }
        #[inline(always)]
        unsafe fn store_bf16(p: *mut u16, v: __m512) {
            unsafe {
                let half = _mm512_cvtepi32_epi16(_mm512_srli_epi32(rounded_512(v), 16));
                _mm256_storeu_si256(p as *mut __m256i, half)
            }
        }
        #[inline(always)]
        unsafe fn load_bf16_pairs(p: *const u16) -> (__m512, __m512) {
            unsafe {
                let v = _mm512_loadu_si512(p as *const _);
                let high = _mm512_set1_epi32(0xffff_0000u32 as i32);
                let even = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
                (even, _mm512_castsi512_ps(_mm512_and_si512(v, high)))
            }
        }
        #[inline(always)]
        unsafe fn store_bf16_pairs(p: *mut u16, even: __m512, odd: __m512) {
            unsafe {
                let high = _mm512_set1_epi32(0xffff_0000u32 as i32);
                let low = _mm512_srli_epi32(rounded_512(even), 16);
                let both = _mm512_or_si512(low, _mm512_and_si512(rounded_512(odd), high));
                _mm512_storeu_si512(p as *mut _, both)
            }
        }
    }

    /// Word `i` of the result is word `INTERLEAVE_HALVES[i]` of the source: the two 16-word
    /// halves interleaved (0, 16, 1, 17, ...).
    const INTERLEAVE_HALVES: [i16; 32] = [
        0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23, 8, 24, 9, 25, 10, 26, 11, 27, 12,
        28, 13, 29, 14, 30, 15, 31,
    ];

    /// `v`'s bits rounded to bf16 in their upper 16 (ties to even; a NaN made quiet).
    #[inline(always)]
    unsafe fn rounded_512(v: __m512) -> __m512i {
        unsafe {
            let bits = _mm512_castps_si512(v);
            let odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
            let bias = _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff));
            let rounded = _mm512_add_epi32(bits, bias);
            let quiet_nan = _mm512_or_si512(bits, _mm512_set1_epi32(0x0040_0000));
            let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
            _mm512_mask_blend_epi32(nan, rounded, quiet_nan)
        }
    }

    /// `v`'s bits rounded to bf16 in their upper 16, as `rounded_512`.
    #[inline(always)]
    unsafe fn rounded_256(v: __m256) -> __m256i {
        unsafe {
            let bits = _mm256_castps_si256(v);
            let odd = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
            let bias = _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff));
            let rounded = _mm256_add_epi32(bits, bias);
            let quiet_nan = _mm256_or_si256(bits, _mm256_set1_epi32(0x0040_0000));
            let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
            _mm256_blendv_epi8(rounded, quiet_nan, nan)
        }
    }

    /// AVX-512 with AVX512_BF16: the AVX-512 vector, whose bf16 stores round with one
    /// `vcvtneps2bf16` (ties to even, NaN quiet, like `bf16_bits`, except that it reads a
    /// subnormal float as zero, as the bf16 dot product does) instead of the seven integer
    /// operations the plain AVX-512 store needs. Only kernels compiled with `avx512bf16` use it.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512Dot;

    impl Simd for Avx512Dot {
        const LANES: usize = 16;
        type V = __m512;
        #[inline(always)]
        unsafe fn zero() -> __m512 {
            unsafe { Avx512::zero() }
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> __m512 {
            unsafe { Avx512::splat(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            unsafe { Avx512::load(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512) {
            unsafe { Avx512::store(p, v) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            unsafe { Avx512::fma(a, b, c) }
        }
        #[inline(always)]
        unsafe fn add(a: __m512, b: __m512) -> __m512 {
            unsafe { Avx512::add(a, b) }
        }
        #[inline(always)]
        unsafe fn mul(a: __m512, b: __m512) -> __m512 {
            unsafe { Avx512::mul(a, b) }
        }
        #[inline(always)]
        unsafe fn max(a: __m512, b: __m512) -> __m512 {
            unsafe { Avx512::max(a, b) }
        }
        #[inline(always)]
        unsafe fn load_bf16(p: *const u16) -> __m512 {
            unsafe { Avx512::load_bf16(p) }
        }
        #[inline(always)]
        unsafe fn store_bf16(p: *mut u16, v: __m512) {
            unsafe {
                let half = std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(v));
                _mm256_storeu_si256(p as *mut __m256i, half)
            }
        }
        #[inline(always)]
        unsafe fn load_bf16_pairs(p: *const u16) -> (__m512, __m512) {
            unsafe { Avx512::load_bf16_pairs(p) }
        }
        #[inline(always)]
        unsafe fn store_bf16_pairs(p: *mut u16, even: __m512, odd: __m512) {
            unsafe {
                // [even 0..16, odd 0..16] as bf16, then interleaved by one word permute.
                let halves =
                    std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(odd, even));
                let order = _mm512_loadu_si512(INTERLEAVE_HALVES.as_ptr() as *const _);
                _mm512_storeu_si512(p as *mut _, _mm512_permutexvar_epi16(order, halves))
            }
        }
    }

    #[derive(Clone, Copy)]
    pub(crate) struct Avx2;

    impl Simd for Avx2 {
        const LANES: usize = 8;
        type V = __m256;
        #[inline(always)]
        unsafe fn zero() -> __m256 {
            unsafe { _mm256_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> __m256 {
            unsafe { _mm256_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m256) {
            unsafe { _mm256_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn add(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_add_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn mul(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_mul_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn max(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_max_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn load_bf16(p: *const u16) -> __m256 {
            unsafe {
                let half = _mm_loadu_si128(p as *const __m128i);
                _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(half), 16))
            }
        }
        #[inline(always)]
        unsafe fn store_bf16(p: *mut u16, v: __m256) {
            unsafe {
                let high = _mm256_srli_epi32(rounded_256(v), 16);
                // Each 128-bit half packs to four u16 (twice); gather the two 64-bit results.
                let packed = _mm256_packus_epi32(high, high);
                let ordered = _mm256_permute4x64_epi64::<0b1000>(packed);
                _mm_storeu_si128(p as *mut __m128i, _mm256_castsi256_si128(ordered))
            }
        }
        #[inline(always)]
        unsafe fn load_bf16_pairs(p: *const u16) -> (__m256, __m256) {
            unsafe {
                let v = _mm256_loadu_si256(p as *const __m256i);
                let high = _mm256_set1_epi32(0xffff_0000u32 as i32);
                let even = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
                (even, _mm256_castsi256_ps(_mm256_and_si256(v, high)))
            }
        }
        #[inline(always)]
        unsafe fn store_bf16_pairs(p: *mut u16, even: __m256, odd: __m256) {
            unsafe {
                let high = _mm256_set1_epi32(0xffff_0000u32 as i32);
                let low = _mm256_srli_epi32(rounded_256(even), 16);
                let both = _mm256_or_si256(low, _mm256_and_si256(rounded_256(odd), high));
                _mm256_storeu_si256(p as *mut __m256i, both)
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
pub(crate) use arm::{bfdot, Neon};

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::Simd;
    use std::arch::aarch64::*;
    use std::arch::asm;

    /// Multiply-adds per second of BFDOT over FMLA (.4s), each timed on 12 independent
    /// accumulators, best of five.
    pub(super) fn dot_over_fma() -> f64 {
        const ROUNDS: usize = 20_000;
        let fma = super::best_of_five(&|| unsafe { fma_chains(ROUNDS) });
        let dot = super::best_of_five(&|| unsafe { dot_chains(ROUNDS) });
        // A dot instruction does 8 multiply-adds, an FMLA 4.
        (8.0 / dot) / (4.0 / fma)
    }

    #[target_feature(enable = "neon")]
    fn fma_chains(rounds: usize) -> f32 {
        let a = std::hint::black_box(vdupq_n_f32(1.0));
        let b = std::hint::black_box(vdupq_n_f32(1e-3));
        let mut acc = [vdupq_n_f32(0.0); 12];
        for _ in 0..rounds {
            for v in acc.iter_mut() {
                *v = vfmaq_f32(*v, a, b);
            }
        }
        acc.iter().map(|&v| vaddvq_f32(v)).sum()
    }

    /// Multiply-adds per second of FMLA .8h (fp16) over FMLA .4s, as `dot_over_fma`.
    pub(super) fn fp16_over_fma() -> f64 {
        const ROUNDS: usize = 20_000;
        let fma = super::best_of_five(&|| unsafe { fma_chains(ROUNDS) });
        let half = super::best_of_five(&|| unsafe { fp16_chains(ROUNDS) });
        (8.0 / half) / (4.0 / fma)
    }

    #[target_feature(enable = "neon,fp16")]
    fn fp16_chains(rounds: usize) -> f32 {
        // fp16 1.0 and 1/1024 in every lane.
        let a = std::hint::black_box(vdupq_n_u16(0x3c00));
        let b = std::hint::black_box(vdupq_n_u16(0x1400));
        let mut acc = [vdupq_n_u16(0); 12];
        for _ in 0..rounds {
            for v in acc.iter_mut() {
                // Stable Rust has no fp16 intrinsics.
                unsafe {
                    asm!(
                        "fmla {c:v}.8h, {a:v}.8h, {b:v}.8h",
                        c = inout(vreg) *v,
                        a = in(vreg) a,
                        b = in(vreg) b,
                        options(pure, nomem, nostack)
                    )
                };
            }
        }
        acc.iter().map(|&v| f32::from(vaddvq_u16(v))).sum()
    }

    #[target_feature(enable = "neon,bf16")]
    fn dot_chains(rounds: usize) -> f32 {
        // bf16 1.0 and 1/1024 in every lane.
        let a = std::hint::black_box(vdupq_n_u16(0x3f80));
        let b = std::hint::black_box(vdupq_n_u16(0x3a80));
        let mut acc = [vdupq_n_f32(0.0); 12];
        for _ in 0..rounds {
            for v in acc.iter_mut() {
                *v = unsafe { bfdot(*v, a, b) };
            }
        }
        acc.iter().map(|&v| vaddvq_f32(v)).sum()
    }

    /// c + the pairwise dot products of a and b (bf16 pairs) per float lane (stable Rust has no
    /// bf16 intrinsics, so the instruction is written out).
    #[inline]
    #[target_feature(enable = "neon,bf16")]
    pub(crate) unsafe fn bfdot(c: float32x4_t, a: uint16x8_t, b: uint16x8_t) -> float32x4_t {
        let mut c = c;
        unsafe {
            asm!(
                "bfdot {c:v}.4s, {a:v}.8h, {b:v}.8h",
                c = inout(vreg) c,
                a = in(vreg) a,
                b = in(vreg) b,
                options(pure, nomem, nostack)
            )
        };
        c
    }

    /// `v`'s bits rounded to bf16 in their upper 16 (ties to even; a NaN made quiet).
    #[inline(always)]
    unsafe fn rounded_neon(v: float32x4_t) -> uint32x4_t {
        unsafe {
            let bits = vreinterpretq_u32_f32(v);
            let odd = vandq_u32(vshrq_n_u32::<16>(bits), vdupq_n_u32(1));
            let rounded = vaddq_u32(bits, vaddq_u32(odd, vdupq_n_u32(0x7fff)));
            let quiet_nan = vorrq_u32(bits, vdupq_n_u32(0x0040_0000));
            vbslq_u32(vceqq_f32(v, v), rounded, quiet_nan)
        }
    }

    #[derive(Clone, Copy)]
    pub(crate) struct Neon;

    impl Simd for Neon {
        const LANES: usize = 4;
        type V = float32x4_t;
        #[inline(always)]
        unsafe fn zero() -> float32x4_t {
            unsafe { vdupq_n_f32(0.0) }
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> float32x4_t {
            unsafe { vdupq_n_f32(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> float32x4_t {
            unsafe { vld1q_f32(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: float32x4_t) {
            unsafe { vst1q_f32(p, v) }
        }
        #[inline(always)]
        unsafe fn fma(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
            unsafe { vfmaq_f32(c, a, b) }
        }
        #[inline(always)]
        unsafe fn add(a: float32x4_t, b: float32x4_t) -> float32x4_t {
            unsafe { vaddq_f32(a, b) }
        }
        #[inline(always)]
        unsafe fn mul(a: float32x4_t, b: float32x4_t) -> float32x4_t {
            unsafe { vmulq_f32(a, b) }
        }
        #[inline(always)]
        unsafe fn max(a: float32x4_t, b: float32x4_t) -> float32x4_t {
            unsafe { vmaxq_f32(a, b) }
        }
        #[inline(always)]
        unsafe fn load_bf16(p: *const u16) -> float32x4_t {
            unsafe { vreinterpretq_f32_u32(vshll_n_u16::<16>(vld1_u16(p))) }
        }
        #[inline(always)]
        unsafe fn store_bf16(p: *mut u16, v: float32x4_t) {
            unsafe { vst1_u16(p, vshrn_n_u32::<16>(rounded_neon(v))) }
        }
        #[inline(always)]
        unsafe fn load_bf16_pairs(p: *const u16) -> (float32x4_t, float32x4_t) {
            unsafe {
                let v = vld1q_u32(p as *const u32);
                let even = vreinterpretq_f32_u32(vshlq_n_u32::<16>(v));
                (
                    even,
                    vreinterpretq_f32_u32(vandq_u32(v, vdupq_n_u32(0xffff_0000))),
                )
            }
        }
        #[inline(always)]
        unsafe fn store_bf16_pairs(p: *mut u16, even: float32x4_t, odd: float32x4_t) {
            unsafe {
                let low = vshrq_n_u32::<16>(rounded_neon(even));
                let high = vandq_u32(rounded_neon(odd), vdupq_n_u32(0xffff_0000));
                vst1q_u32(p as *mut u32, vorrq_u32(low, high))
            }
        }
    }
}
