//! The aarch64 int8 GEMM on the dot product (`dotprod`, Armv8.2+: Cortex-A55/A76 and later,
//! Apple M1 and later): SDOT by element, four i8 x i8 products summed into each int32 lane,
//! over the same packed weights as the x86 kernels (a 16-channel block is four vectors). SDOT
//! is signed on both sides, so the uint8 codes are read as `code - 128` (their top bit
//! flipped) and 128 x the channel's weight sum is added back before the f32 rescale of
//! `models::quantize::Rescale::apply`.

use std::arch::aarch64::*;
use std::arch::asm;

use super::{GemmIo, PackedInt8Gemm, Requantization, LANES};

/// Rows per micro-tile: 4 rows x 4 vectors of accumulators, the rows' 16 codes and a block's
/// four weight vectors fit the 32 registers.
const MR: usize = 4;

/// `acc` + the dot products of `w`'s four-byte groups with the four bytes at element `I` of
/// `x` (stable Rust has no dot-product intrinsics, so the instruction is written out).
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn sdot<const I: i32>(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    unsafe {
        asm!(
            "sdot {c:v}.4s, {w:v}.16b, {x:v}.4b[{i}]",
            c = inout(vreg) acc,
            w = in(vreg) w,
            x = in(vreg) x,
            i = const I,
            options(pure, nomem, nostack)
        )
    };
    acc
}

/// One tile: `rows` rows from m0, `cols` channels from n0, one 16-channel block at a time.
#[target_feature(enable = "neon,dotprod")]
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
            3 => block_of::<3>(packed, req, io, m, (c, count)),
            2 => block_of::<2>(packed, req, io, m, (c, count)),
            _ => block_of::<1>(packed, req, io, m, (c, count)),
        }
    }
}

/// The four weight vectors of 16-channel block `panel` at k group `kk`.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn weights(panel: *const i8, kk: usize) -> [int8x16_t; 4] {
    let at = panel.add(kk * LANES * 4);
    [
        vld1q_s8(at),
        vld1q_s8(at.add(16)),
        vld1q_s8(at.add(32)),
        vld1q_s8(at.add(48)),
    ]
}

/// Each of the R rows' accumulators plus the dot products of the block's weights at one k
/// group with that row's codes at element `I` of its vector.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn step<const R: usize, const I: i32>(
    acc: &mut [[int32x4_t; 4]; R],
    w: &[int8x16_t; 4],
    x: &[int8x16_t; R],
) {
    for (row, &xr) in acc.iter_mut().zip(x) {
        for (sum, &wj) in row.iter_mut().zip(w) {
            *sum = sdot::<I>(*sum, wj, xr);
        }
    }
}

/// R rows x one 16-channel block from channel c (`count` of them stored): 16 codes of each
/// row at a time (four k groups, one per element), the last k groups four codes at a time
/// (reads stay within 3 bytes of a row's end), then bias, rescale and store.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn block_of<const R: usize>(
    packed: &PackedInt8Gemm,
    req: &Requantization,
    io: &GemmIo,
    m0: usize,
    (c, count): (usize, usize),
) {
    let k4 = packed.k4;
    let panel = packed.data.as_ptr().add(c / LANES * k4 * LANES * 4);
    let mut acc = [[vdupq_n_s32(0); 4]; R];
    let a = io.a.add(m0 * io.lda);
    let flip = vdupq_n_u8(0x80);
    let row = |i: usize, kk: usize| a.add(i * io.lda + kk * 4);
    let mut kk = 0;
    while kk + 4 <= k4 {
        let x: [int8x16_t; R] =
            std::array::from_fn(|i| vreinterpretq_s8_u8(veorq_u8(vld1q_u8(row(i, kk)), flip)));
        step::<R, 0>(&mut acc, &weights(panel, kk), &x);
        step::<R, 1>(&mut acc, &weights(panel, kk + 1), &x);
        step::<R, 2>(&mut acc, &weights(panel, kk + 2), &x);
        step::<R, 3>(&mut acc, &weights(panel, kk + 3), &x);
        kk += 4;
    }
    while kk < k4 {
        let x: [int8x16_t; R] = std::array::from_fn(|i| {
            let word = (row(i, kk) as *const u32).read_unaligned();
            vreinterpretq_s8_u8(veorq_u8(vreinterpretq_u8_u32(vdupq_n_u32(word)), flip))
        });
        step::<R, 0>(&mut acc, &weights(panel, kk), &x);
        kk += 1;
    }
    let start: [int32x4_t; 4] = std::array::from_fn(|j| {
        let at = c + 4 * j;
        let bias = vld1q_s32(req.bias.as_ptr().add(at));
        vaddq_s32(bias, vld1q_s32(packed.flip_correction.as_ptr().add(at)))
    });
    for (i, sums) in acc.iter().enumerate() {
        let sums: [int32x4_t; 4] = std::array::from_fn(|j| vaddq_s32(sums[j], start[j]));
        store(req, c, sums, io.out.add((m0 + i) * io.ldo + c), count);
    }
}

/// Channels c..c+16: sums times their scales in f32, clamped to the code range less the zero
/// point, rounded to nearest (ties to even), plus the zero point, the first `count` stored.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn store(req: &Requantization, c: usize, sums: [int32x4_t; 4], out: *mut u8, count: usize) {
    let low = vdupq_n_f32((req.low - req.zero_point) as f32);
    let high = vdupq_n_f32((req.high - req.zero_point) as f32);
    let zero_point = vdupq_n_s32(req.zero_point);
    let codes: [int32x4_t; 4] = std::array::from_fn(|j| {
        let scale = vld1q_f32(req.scale.as_ptr().add(c + 4 * j));
        let value = vmulq_f32(vcvtq_f32_s32(sums[j]), scale);
        let value = vminq_f32(vmaxq_f32(value, low), high);
        vaddq_s32(vcvtnq_s32_f32(value), zero_point)
    });
    let low_half = vcombine_s16(vqmovn_s32(codes[0]), vqmovn_s32(codes[1]));
    let high_half = vcombine_s16(vqmovn_s32(codes[2]), vqmovn_s32(codes[3]));
    let bytes = vcombine_u8(vqmovun_s16(low_half), vqmovun_s16(high_half));
    if count >= LANES {
        vst1q_u8(out, bytes);
    } else {
        let mut lanes = [0u8; LANES];
        vst1q_u8(lanes.as_mut_ptr(), bytes);
        std::ptr::copy_nonoverlapping(lanes.as_ptr(), out, count);
    }
}
