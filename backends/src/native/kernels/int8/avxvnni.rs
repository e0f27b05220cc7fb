//! The AVX-VNNI int8 kernels (AVX2 CPUs with the VEX-encoded `vpdpbusd`: Alder Lake and later,
//! Zen 5): 8 int32 lanes; the GEMM on 256-bit `vpdpbusd` over the same packed weights as the
//! AVX512-VNNI one (a 16-channel block is two vectors), the depthwise convolution on
//! `vpmaddwd`, the add, channel product and input quantization as the AVX-512 ones do them,
//! and the f32 rescale of `models::quantize::Rescale::apply`.

use std::arch::x86_64::*;

use models::quantize::ActivationQuant;

use super::{
    AddParams, DepthwiseIo, GemmIo, PackedInt8Depthwise, PackedInt8Gemm, Requantization, TapList,
    LANES,
};

/// int32 lanes per vector.
const HALF: usize = 8;
/// Rows per micro-tile: 6 rows x 2 vectors of accumulators, 2 weight vectors and a broadcast
/// fit the 16 registers.
const MR: usize = 6;

/// Eight channels' rescale: f32 scales, the clamp (before rounding, to the code range less the
/// zero point) and the zero point added after it.
#[derive(Clone, Copy)]
struct Lanes {
    scale: __m256,
    low: __m256,
    high: __m256,
    zero_point: __m256i,
}

/// Channels c..c+8 of `req`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn lanes_at(req: &Requantization, c: usize) -> Lanes {
    Lanes {
        scale: _mm256_loadu_ps(req.scale.as_ptr().add(c)),
        low: _mm256_set1_ps((req.low - req.zero_point) as f32),
        high: _mm256_set1_ps((req.high - req.zero_point) as f32),
        zero_point: _mm256_set1_epi32(req.zero_point),
    }
}

/// `rescale_store`'s arithmetic on 8 values, clamped to +-2^30 and without the store (for
/// tests against `Rescale::apply`).
#[cfg(test)]
pub(super) unsafe fn rescale_lanes(values: [i32; 8], r: models::quantize::Rescale) -> [i32; 8] {
    let bound = (1u32 << 30) as f32;
    let value = _mm256_mul_ps(
        _mm256_cvtepi32_ps(_mm256_loadu_si256(values.as_ptr() as *const __m256i)),
        _mm256_set1_ps(r.scale),
    );
    let clamped = _mm256_min_ps(
        _mm256_max_ps(value, _mm256_set1_ps(-bound)),
        _mm256_set1_ps(bound),
    );
    let mut lanes = [0i32; 8];
    _mm256_storeu_si256(
        lanes.as_mut_ptr() as *mut __m256i,
        _mm256_cvtps_epi32(clamped),
    );
    lanes
}

/// `acc` times each lane's scale in f32, stored as codes (`store`).
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn rescale_store(acc: __m256i, l: &Lanes, out: *mut u8, count: usize) {
    store(
        _mm256_mul_ps(_mm256_cvtepi32_ps(acc), l.scale),
        l,
        out,
        count,
    );
}

/// Rescaled values clamped, rounded to nearest (ties to even), plus the zero point, stored as
/// codes (the first `count` lanes, at most 8).
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn store(value: __m256, l: &Lanes, out: *mut u8, count: usize) {
    let value = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(value, l.low), l.high));
    let codes = _mm256_add_epi32(value, l.zero_point);
    // Every lane is 0..=255 here, so the saturating packs keep it; they work within each
    // 128-bit half, leaving lanes 0-3 in the low half's first dword and 4-7 in the high's.
    let words = _mm256_packus_epi32(codes, codes);
    let bytes = _mm256_packus_epi16(words, words);
    let eight = _mm_unpacklo_epi32(
        _mm256_castsi256_si128(bytes),
        _mm256_extracti128_si256::<1>(bytes),
    );
    if count >= HALF {
        _mm_storel_epi64(out as *mut __m128i, eight);
    } else {
        let mut lanes = [0u8; 16];
        _mm_storeu_si128(lanes.as_mut_ptr() as *mut __m128i, eight);
        std::ptr::copy_nonoverlapping(lanes.as_ptr(), out, count);
    }
}

/// One tile: `rows` (<= 6 here) rows from m0, `cols` channels from n0, one 16-channel block
/// at a time (the rows' codes stay in L1 between blocks).
#[target_feature(enable = "avx2,fma,avxvnni")]
pub(super) unsafe fn tile(
    packed: &PackedInt8Gemm,
    req: &Requantization,
    io: &GemmIo,
    (m0, rows): (usize, usize),
    (n0, cols): (usize, usize),
) {
    for (m, r, c, count) in super::tile_blocks((m0, rows), (n0, cols), MR) {
        match r {
            MR => block_of::<MR>(packed, req, io, m, (c, count)),
            5 => block_of::<5>(packed, req, io, m, (c, count)),
            4 => block_of::<4>(packed, req, io, m, (c, count)),
            3 => block_of::<3>(packed, req, io, m, (c, count)),
            2 => block_of::<2>(packed, req, io, m, (c, count)),
            _ => block_of::<1>(packed, req, io, m, (c, count)),
        }
    }
}

/// R rows x one 16-channel block from channel c (`count` of them stored): the k loop on
/// `vpdpbusd` (a row's four codes broadcast against the block's two weight vectors), then
/// bias, rescale and store.
#[inline]
#[target_feature(enable = "avx2,fma,avxvnni")]
unsafe fn block_of<const R: usize>(
    packed: &PackedInt8Gemm,
    req: &Requantization,
    io: &GemmIo,
    m0: usize,
    (c, count): (usize, usize),
) {
    let k4 = packed.k4;
    let panel = packed.data.as_ptr().add(c / LANES * k4 * LANES * 4);
    let mut acc = [[_mm256_setzero_si256(); 2]; R];
    let a = io.a.add(m0 * io.lda);
    for kk in 0..k4 {
        let w = panel.add(kk * LANES * 4);
        let b0 = _mm256_loadu_si256(w as *const __m256i);
        let b1 = _mm256_loadu_si256(w.add(HALF * 4) as *const __m256i);
        for (i, row) in acc.iter_mut().enumerate() {
            let word = (a.add(i * io.lda + kk * 4) as *const i32).read_unaligned();
            let x = _mm256_set1_epi32(word);
            row[0] = _mm256_dpbusd_avx_epi32(row[0], x, b0);
            row[1] = _mm256_dpbusd_avx_epi32(row[1], x, b1);
        }
    }
    for h in 0..2 {
        if h * HALF >= count {
            break;
        }
        let ch = c + h * HALF;
        let lanes = lanes_at(req, ch);
        let bias = _mm256_loadu_si256(req.bias.as_ptr().add(ch) as *const __m256i);
        for (i, row) in acc.iter().enumerate() {
            let out = io.out.add((m0 + i) * io.ldo + ch);
            rescale_store(
                _mm256_add_epi32(row[h], bias),
                &lanes,
                out,
                count - h * HALF,
            );
        }
    }
}

/// Eight codes from `at`, zero-extended to int32.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn widen(at: *const u8) -> __m256i {
    _mm256_cvtepu8_epi32(_mm_loadl_epi64(at as *const __m128i))
}

/// One output pixel whose window may leave the input: each valid tap's codes less the zero
/// point, times the weights, summed in int32.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn depthwise_pixel(
    p: &PackedInt8Depthwise,
    req: &Requantization,
    io: &DepthwiseIo,
    x: *const u8,
    taps: &TapList,
    out: *mut u8,
) {
    let padded = p.padded();
    let zero = _mm256_set1_epi32(io.zero_point);
    for c in (0..p.channels).step_by(HALF) {
        let mut acc = _mm256_loadu_si256(req.bias.as_ptr().add(c) as *const __m256i);
        for &(tap, pixel) in taps.as_slice() {
            let q = _mm256_sub_epi32(widen(x.add(pixel * p.channels + c)), zero);
            let w = _mm256_loadu_si256(p.weights.as_ptr().add(tap * padded + c) as *const _);
            acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(q, w));
        }
        rescale_store(acc, &lanes_at(req, c), out.add(c), p.channels - c);
    }
}

/// `count` consecutive output pixels whose windows lie wholly inside the input, `first` the
/// top-left tap of the first: raw codes times weights on `vpmaddwd` (a code's high 16 bits
/// are 0, so each dword is code x weight), the zero point's share subtracted once.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn depthwise_span(
    p: &PackedInt8Depthwise,
    req: &Requantization,
    win: usize,
    first: *const u8,
    count: usize,
    out: *mut u8,
) {
    let (k, ch, padded) = (p.kernel, p.channels, p.padded());
    let mut offsets = [0usize; super::MAX_TAPS];
    for (tap, offset) in offsets.iter_mut().enumerate().take(k * k) {
        *offset = ((tap / k) * win + tap % k) * ch;
    }
    let offsets = &offsets[..k * k];
    let step = p.stride * ch;
    for c in (0..ch).step_by(HALF) {
        let lanes = lanes_at(req, c);
        let load = |v: &[i32]| _mm256_loadu_si256(v.as_ptr().add(c) as *const __m256i);
        let start = _mm256_sub_epi32(load(&req.bias), load(&p.correction));
        let x = first.add(c);
        for px in 0..count {
            let at = x.add(px * step);
            let mut acc = start;
            for (tap, &off) in offsets.iter().enumerate() {
                let w = load(&p.weights[tap * padded..]);
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(widen(at.add(off)), w));
            }
            rescale_store(acc, &lanes, out.add(px * ch + c), ch - c);
        }
    }
}

/// Codes `range` of the add: each input centred, converted to f32, times its multiplier,
/// summed in input order (`models::quantized::add_sum`), clamped and rounded.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn add(
    params: &AddParams,
    inputs: &[*const u8],
    out: *mut u8,
    range: std::ops::Range<usize>,
) {
    let mut terms = [(_mm256_setzero_si256(), _mm256_setzero_ps()); super::MAX_ADD_INPUTS];
    for (term, (z, r)) in terms.iter_mut().zip(&params.inputs) {
        *term = (_mm256_set1_epi32(*z), _mm256_set1_ps(r.scale));
    }
    let terms = &terms[..params.inputs.len()];
    let output = lanes_at(&params.output, 0);
    for j in range.clone().step_by(HALF) {
        let mut sum = _mm256_setzero_ps();
        for (x, (zero, scale)) in inputs.iter().zip(terms) {
            let centred = _mm256_sub_epi32(widen(x.add(j)), *zero);
            sum = _mm256_add_ps(sum, _mm256_mul_ps(_mm256_cvtepi32_ps(centred), *scale));
        }
        store(sum, &output, out.add(j), range.end - j);
    }
}

/// One pixel's channels of x times the gate: (x - zx)(g - zg) rescaled; a gate of one
/// channel (`gate.2`) is broadcast.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn channel_mul_row(
    req: &Requantization,
    (x, zx): (*const u8, i32),
    (gate, zg, single): (*const u8, i32, bool),
    out: *mut u8,
    channels: usize,
) {
    // One rescale, padded to every lane.
    let lanes = lanes_at(req, 0);
    let (zx, zg) = (_mm256_set1_epi32(zx), _mm256_set1_epi32(zg));
    for c in (0..channels).step_by(HALF) {
        let g = match single {
            true => _mm256_set1_epi32(i32::from(*gate)),
            false => widen(gate.add(c)),
        };
        let centred = _mm256_sub_epi32(widen(x.add(c)), zx);
        let product = _mm256_mullo_epi32(centred, _mm256_sub_epi32(g, zg));
        rescale_store(product, &lanes, out.add(c), channels - c);
    }
}

/// `plane` quantized: x / scale rounded half away from zero (truncate, then step away when
/// the dropped fraction is at least a half), plus the zero point, clamped to 0..=255 (a NaN
/// to 0, as the scalar cast does).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn quantize(quant: ActivationQuant, plane: &[f32], out: &mut [u8]) {
    let scale = _mm256_set1_ps(quant.scale);
    let zero_point = _mm256_set1_ps(f32::from(quant.zero_point));
    let (half, one) = (_mm256_set1_ps(0.5), _mm256_set1_ps(1.0));
    let sign = _mm256_set1_ps(-0.0);
    let clamp = Lanes {
        scale: one,
        low: _mm256_setzero_ps(),
        high: _mm256_set1_ps(255.0),
        zero_point: _mm256_setzero_si256(),
    };
    let n = plane.len().min(out.len());
    let mut tail = [0f32; HALF];
    for j in (0..n).step_by(HALF) {
        let count = (n - j).min(HALF);
        let v = if count == HALF {
            _mm256_loadu_ps(plane.as_ptr().add(j))
        } else {
            tail[..count].copy_from_slice(&plane[j..n]);
            _mm256_loadu_ps(tail.as_ptr())
        };
        let t = _mm256_div_ps(v, scale);
        let whole = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(t);
        let fraction = _mm256_andnot_ps(sign, _mm256_sub_ps(t, whole));
        let away = _mm256_cmp_ps::<_CMP_GE_OQ>(fraction, half);
        let step = _mm256_and_ps(away, _mm256_or_ps(one, _mm256_and_ps(t, sign)));
        // Whole numbers, so the store's rounding keeps them; its clamp takes NaN to 0.
        let q = _mm256_add_ps(_mm256_add_ps(whole, step), zero_point);
        store(q, &clamp, out.as_mut_ptr().add(j), count);
    }
}
