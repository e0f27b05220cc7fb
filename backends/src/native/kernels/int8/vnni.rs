//! The AVX512-VNNI int8 kernels: 16 int32 lanes; the GEMM on `vpdpbusd`, the rescale on
//! 64-bit products rounded once, exactly as `models::quantize::Rescale::apply`.

use std::arch::x86_64::*;

use models::quantize::ActivationQuant;

use super::{
    AddParams, DepthwiseIo, GemmIo, PackedInt8Depthwise, PackedInt8Gemm, Requantization, TapList,
    LANES, MR, NB,
};

/// One 16-channel block's rescale: f32 scales, the clamp (in f32, before rounding, to the
/// code range less the zero point) and the zero point added after it.
#[derive(Clone, Copy)]
struct Lanes {
    scale: __m512,
    low: __m512,
    high: __m512,
    zero_point: __m512i,
}

/// Channels c..c+16 of `req`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn lanes_at(req: &Requantization, c: usize) -> Lanes {
    Lanes {
        scale: _mm512_loadu_ps(req.scale.as_ptr().add(c)),
        ..clamp_of(req)
    }
}

/// `req`'s clamp and zero point, with a scale of 1.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn clamp_of(req: &Requantization) -> Lanes {
    Lanes {
        scale: _mm512_set1_ps(1.0),
        low: _mm512_set1_ps((req.low - req.zero_point) as f32),
        high: _mm512_set1_ps((req.high - req.zero_point) as f32),
        zero_point: _mm512_set1_epi32(req.zero_point),
    }
}

/// `acc` x each lane's scale in f32, clamped, rounded to the nearest integer (ties to even,
/// the default rounding mode): `Rescale::apply` and the store's clamp in one.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn rescale(acc: __m512i, l: &Lanes) -> __m512i {
    let value = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), l.scale);
    _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(value, l.low), l.high))
}

/// Rescaled, clamped values plus the zero point, stored as codes (the first `count` lanes).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn store(value: __m512i, l: &Lanes, out: *mut u8, count: usize) {
    let bytes = _mm512_cvtepi32_epi8(_mm512_add_epi32(value, l.zero_point));
    let keep = if count >= LANES {
        0xFFFF
    } else {
        (1u16 << count) - 1
    };
    _mm_mask_storeu_epi8(out as *mut i8, keep, bytes);
}

/// `rescale` applied to 16 values, clamped to +-2^30 (for tests against `Rescale::apply`).
#[cfg(test)]
pub(super) unsafe fn rescale_lanes(values: [i32; 16], r: models::quantize::Rescale) -> [i32; 16] {
    let bound = (1u32 << 30) as f32;
    let l = Lanes {
        scale: _mm512_set1_ps(r.scale),
        low: _mm512_set1_ps(-bound),
        high: _mm512_set1_ps(bound),
        zero_point: _mm512_setzero_si512(),
    };
    let out = rescale(_mm512_loadu_si512(values.as_ptr() as *const _), &l);
    let mut lanes = [0i32; 16];
    _mm512_storeu_si512(lanes.as_mut_ptr() as *mut _, out);
    lanes
}

/// One tile: `rows` (<= MR) rows from m0, `cols` (<= NB x 16) channels from n0.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn tile(
    packed: &PackedInt8Gemm,
    req: &Requantization,
    io: &GemmIo,
    (m0, rows): (usize, usize),
    (n0, cols): (usize, usize),
) {
    let blocks = cols.div_ceil(LANES);
    let at = (m0, n0, cols);
    match (rows, blocks) {
        (MR, NB) => tile_of::<MR, NB>(packed, req, io, at),
        (MR, 3) => tile_of::<MR, 3>(packed, req, io, at),
        (MR, 2) => tile_of::<MR, 2>(packed, req, io, at),
        (MR, _) => tile_of::<MR, 1>(packed, req, io, at),
        _ => {
            for m in m0..m0 + rows {
                let at = (m, n0, cols);
                match blocks {
                    4 => tile_of::<1, 4>(packed, req, io, at),
                    3 => tile_of::<1, 3>(packed, req, io, at),
                    2 => tile_of::<1, 2>(packed, req, io, at),
                    _ => tile_of::<1, 1>(packed, req, io, at),
                }
            }
        }
    }
}

/// R rows x B blocks of 16 channels: the k loop on `vpdpbusd` (a row's four codes broadcast,
/// each block's packed weights loaded once per step), then the epilogue block by block.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_of<const R: usize, const B: usize>(
    packed: &PackedInt8Gemm,
    req: &Requantization,
    io: &GemmIo,
    (m0, n0, cols): (usize, usize, usize),
) {
    let k4 = packed.k4;
    let panel = packed.data.as_ptr().add(n0 / LANES * k4 * LANES * 4);
    let mut acc = [[_mm512_setzero_si512(); B]; R];
    let a = io.a.add(m0 * io.lda);
    for kk in 0..k4 {
        let mut b = [_mm512_setzero_si512(); B];
        for (j, bj) in b.iter_mut().enumerate() {
            *bj = _mm512_loadu_si512(panel.add((j * k4 + kk) * LANES * 4) as *const _);
        }
        for (i, row) in acc.iter_mut().enumerate() {
            let word = (a.add(i * io.lda + kk * 4) as *const i32).read_unaligned();
            let x = _mm512_set1_epi32(word);
            for (sum, bj) in row.iter_mut().zip(&b) {
                *sum = _mm512_dpbusd_epi32(*sum, x, *bj);
            }
        }
    }
    for j in 0..B {
        let c = n0 + j * LANES;
        let lanes = lanes_at(req, c);
        let bias = _mm512_loadu_si512(req.bias.as_ptr().add(c) as *const _);
        let count = (cols - j * LANES).min(LANES);
        for (i, row) in acc.iter().enumerate() {
            let value = rescale(_mm512_add_epi32(row[j], bias), &lanes);
            store(value, &lanes, io.out.add((m0 + i) * io.ldo + c), count);
        }
    }
}

/// One output pixel whose window may leave the input: each valid tap's codes less the zero
/// point, times the weights, summed in int32.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn depthwise_pixel(
    p: &PackedInt8Depthwise,
    req: &Requantization,
    io: &DepthwiseIo,
    x: *const u8,
    taps: &TapList,
    out: *mut u8,
) {
    let padded = p.padded();
    let zero = _mm512_set1_epi32(io.zero_point);
    for c in (0..p.channels).step_by(LANES) {
        let mut acc = _mm512_loadu_si512(req.bias.as_ptr().add(c) as *const _);
        for &(tap, pixel) in taps.as_slice() {
            let bytes = _mm_loadu_si128(x.add(pixel * p.channels + c) as *const _);
            let q = _mm512_sub_epi32(_mm512_cvtepu8_epi32(bytes), zero);
            let w = _mm512_loadu_si512(p.weights.as_ptr().add(tap * padded + c) as *const _);
            acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(q, w));
        }
        let lanes = lanes_at(req, c);
        store(rescale(acc, &lanes), &lanes, out.add(c), p.channels - c);
    }
}

/// `count` consecutive output pixels whose windows lie wholly inside the input, `first` the
/// top-left tap of the first: raw codes times weights, the zero point's share subtracted
/// once; channel blocks outermost so a block's weights and rescale stay in registers.
/// The products are `vpmaddwd` on dwords whose high 16 bits are 0 on the code's side (raw codes
/// are 0..255, zero-extended), so each dword is code x weight exactly, and cheaper than
/// `vpmulld`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
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
    for c in (0..ch).step_by(LANES) {
        let lanes = lanes_at(req, c);
        let load = |v: &[i32]| _mm512_loadu_si512(v.as_ptr().add(c) as *const _);
        let start = _mm512_sub_epi32(load(&req.bias), load(&p.correction));
        let weight = |tap: usize| load(&p.weights[tap * padded..]);
        let x = first.add(c);
        if k == 3 && p.stride == 1 {
            let w: [__m512i; 9] = std::array::from_fn(weight);
            slide_3x3(
                &w,
                (x, win * ch, ch),
                count,
                start,
                &lanes,
                (out.add(c), ch - c),
            );
        } else if k == 3 {
            let w: [__m512i; 9] = std::array::from_fn(weight);
            for px in 0..count {
                let at = x.add(px * step);
                let mut acc = start;
                for (wt, &off) in w.iter().zip(offsets) {
                    let q = _mm512_cvtepu8_epi32(_mm_loadu_si128(at.add(off) as *const _));
                    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(q, *wt));
                }
                store(rescale(acc, &lanes), &lanes, out.add(px * ch + c), ch - c);
            }
        } else {
            for px in 0..count {
                let at = x.add(px * step);
                let mut acc = start;
                for (tap, &off) in offsets.iter().enumerate() {
                    let q = _mm512_cvtepu8_epi32(_mm_loadu_si128(at.add(off) as *const _));
                    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(q, weight(tap)));
                }
                store(rescale(acc, &lanes), &lanes, out.add(px * ch + c), ch - c);
            }
        }
    }
}

/// A stride-1 3x3 window sliding along a row: each input column's three codes (rows 0..3,
/// `row` bytes apart) are widened once and kept for the three outputs that read them, so an
/// output loads one new column instead of nine taps. `x` is the first window's top-left code
/// of this channel block, `pixel` the bytes between columns.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn slide_3x3(
    w: &[__m512i; 9],
    (x, row, pixel): (*const u8, usize, usize),
    count: usize,
    start: __m512i,
    lanes: &Lanes,
    (out, channels): (*mut u8, usize),
) {
    let column = |ix: usize| -> [__m512i; 3] {
        std::array::from_fn(|ky| {
            let at = x.add(ky * row + ix * pixel);
            _mm512_cvtepu8_epi32(_mm_loadu_si128(at as *const _))
        })
    };
    let (mut left, mut middle) = (column(0), column(1));
    for px in 0..count {
        let right = column(px + 2);
        let mut acc = start;
        for ky in 0..3 {
            acc = _mm512_add_epi32(acc, _mm512_madd_epi16(left[ky], w[3 * ky]));
            acc = _mm512_add_epi32(acc, _mm512_madd_epi16(middle[ky], w[3 * ky + 1]));
            acc = _mm512_add_epi32(acc, _mm512_madd_epi16(right[ky], w[3 * ky + 2]));
        }
        store(rescale(acc, lanes), lanes, out.add(px * pixel), channels);
        (left, middle) = (middle, right);
    }
}

/// One output row of a 3x3, stride-1 convolution padded by 1 on every side (as large as its
/// input): every pixel on the sliding window, the padding read as columns and rows of the input zero point
/// (whose products the `correction` already takes away, as for a real code), so border pixels
/// need no path of their own. `rows` are the input rows under the window's three rows (None:
/// padding).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn depthwise_padded_3x3_row(
    p: &PackedInt8Depthwise,
    req: &Requantization,
    io: &DepthwiseIo,
    rows: [Option<*const u8>; 3],
    out: *mut u8,
) {
    let (ch, padded) = (p.channels, p.padded());
    let zero = _mm512_set1_epi32(io.zero_point);
    for c in (0..ch).step_by(LANES) {
        let lanes = lanes_at(req, c);
        let load = |v: &[i32]| _mm512_loadu_si512(v.as_ptr().add(c) as *const _);
        let start = _mm512_sub_epi32(load(&req.bias), load(&p.correction));
        let w: [__m512i; 9] = std::array::from_fn(|tap| load(&p.weights[tap * padded..]));
        let window = Window {
            rows: rows.map(|r| r.map(|r| r.add(c))),
            pixel: ch,
            real: 0..io.win as isize,
            zero,
        };
        slide_padded_3x3(&w, &window, io.wout, start, &lanes, (out.add(c), ch - c));
    }
}

/// Where a sliding 3x3 window reads: each of its rows' column 0 (None: a row of padding), the
/// bytes between columns, which columns are real (others are padding), and the code of
/// padding.
struct Window {
    rows: [Option<*const u8>; 3],
    pixel: usize,
    real: std::ops::Range<isize>,
    zero: __m512i,
}

impl Window {
    /// Column `ix` of the three rows, widened to int32.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn column(&self, ix: isize) -> [__m512i; 3] {
        let inside = self.real.contains(&ix);
        self.rows.map(|row| match row {
            Some(row) if inside => {
                let at = row.offset(ix * self.pixel as isize);
                _mm512_cvtepu8_epi32(_mm_loadu_si128(at as *const _))
            }
            _ => self.zero,
        })
    }
}

/// `slide_3x3` over a `Window` whose edges may be padding: output `px` reads columns px - 1,
/// px and px + 1, each widened once for its three outputs; products on `vpdpwssd` (multiply and
/// add in one), one accumulator chain per column.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn slide_padded_3x3(
    w: &[__m512i; 9],
    window: &Window,
    count: usize,
    start: __m512i,
    lanes: &Lanes,
    (out, channels): (*mut u8, usize),
) {
    let (mut left, mut middle) = (window.column(-1), window.column(0));
    for px in 0..count {
        let right = window.column(px as isize + 1);
        let acc = window_sum(w, [&left, &middle, &right], start);
        store(
            rescale(acc, lanes),
            lanes,
            out.add(px * window.pixel),
            channels,
        );
        (left, middle) = (middle, right);
    }
}

/// `start` plus the window's three columns times their weights: one chain per column, so the
/// three run side by side.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn window_sum(w: &[__m512i; 9], columns: [&[__m512i; 3]; 3], start: __m512i) -> __m512i {
    let [left, middle, right] = columns;
    let (mut a, mut b, mut c) = (start, _mm512_setzero_si512(), _mm512_setzero_si512());
    for ky in 0..3 {
        a = _mm512_dpwssd_epi32(a, left[ky], w[3 * ky]);
        b = _mm512_dpwssd_epi32(b, middle[ky], w[3 * ky + 1]);
        c = _mm512_dpwssd_epi32(c, right[ky], w[3 * ky + 2]);
    }
    _mm512_add_epi32(_mm512_add_epi32(a, b), c)
}

/// Codes `range` of the add: each input centred, converted to f32, times its multiplier,
/// summed in input order (`models::quantized::add_sum`), clamped and rounded.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn add(
    params: &AddParams,
    inputs: &[*const u8],
    out: *mut u8,
    range: std::ops::Range<usize>,
) {
    let mut terms = [(_mm512_setzero_si512(), _mm512_setzero_ps()); super::MAX_ADD_INPUTS];
    for (term, (z, r)) in terms.iter_mut().zip(&params.inputs) {
        *term = (_mm512_set1_epi32(*z), _mm512_set1_ps(r.scale));
    }
    let terms = &terms[..params.inputs.len()];
    let output = clamp_of(&params.output);
    for j in range.clone().step_by(LANES) {
        let mut sum = _mm512_setzero_ps();
        for (x, (zero, scale)) in inputs.iter().zip(terms) {
            let bytes = _mm_loadu_si128(x.add(j) as *const _);
            let centred = _mm512_sub_epi32(_mm512_cvtepu8_epi32(bytes), *zero);
            sum = _mm512_add_ps(sum, _mm512_mul_ps(_mm512_cvtepi32_ps(centred), *scale));
        }
        let value = _mm512_min_ps(_mm512_max_ps(sum, output.low), output.high);
        store(
            _mm512_cvtps_epi32(value),
            &output,
            out.add(j),
            range.end - j,
        );
    }
}

/// One pixel's channels of x times the gate: (x - zx)(g - zg) rescaled; a gate of one
/// channel (`gate.2`) is broadcast.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn channel_mul_row(
    req: &Requantization,
    (x, zx): (*const u8, i32),
    (gate, zg, single): (*const u8, i32, bool),
    out: *mut u8,
    channels: usize,
) {
    // One rescale, padded to every lane.
    let lanes = lanes_at(req, 0);
    let (zx, zg) = (_mm512_set1_epi32(zx), _mm512_set1_epi32(zg));
    for c in (0..channels).step_by(LANES) {
        let q = _mm512_cvtepu8_epi32(_mm_loadu_si128(x.add(c) as *const _));
        let g = match single {
            true => _mm512_set1_epi32(i32::from(*gate)),
            false => _mm512_cvtepu8_epi32(_mm_loadu_si128(gate.add(c) as *const _)),
        };
        let product = _mm512_mullo_epi32(_mm512_sub_epi32(q, zx), _mm512_sub_epi32(g, zg));
        store(rescale(product, &lanes), &lanes, out.add(c), channels - c);
    }
}

/// `plane` quantized: x / scale rounded half away from zero (truncate, then step away when
/// the dropped fraction is at least a half), plus the zero point, clamped to 0..=255 (a NaN
/// to 0, as the scalar cast does).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn quantize(quant: ActivationQuant, plane: &[f32], out: &mut [u8]) {
    let scale = _mm512_set1_ps(quant.scale);
    let zero_point = _mm512_set1_ps(f32::from(quant.zero_point));
    let (half, one) = (_mm512_set1_ps(0.5), _mm512_set1_ps(1.0));
    let (low, high) = (_mm512_setzero_ps(), _mm512_set1_ps(255.0));
    let sign = _mm512_set1_ps(-0.0);
    let n = plane.len().min(out.len());
    for j in (0..n).step_by(LANES) {
        let count = (n - j).min(LANES);
        let keep = if count >= LANES {
            0xFFFF
        } else {
            (1u16 << count) - 1
        };
        let v = _mm512_maskz_loadu_ps(keep, plane.as_ptr().add(j));
        let t = _mm512_div_ps(v, scale);
        let whole = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(t);
        let fraction = _mm512_abs_ps(_mm512_sub_ps(t, whole));
        let away = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(fraction, half);
        let step = _mm512_or_ps(one, _mm512_and_ps(t, sign));
        let rounded = _mm512_mask_add_ps(whole, away, whole, step);
        let q = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(rounded, zero_point), low), high);
        let bytes = _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(q));
        _mm_mask_storeu_epi8(out.as_mut_ptr().add(j) as *mut i8, keep, bytes);
    }
}
