//! Number-format conversion before a 16-bit GEMM: rows of floats rounded to bf16 or fp16
//! (ties to even), written as 16-bit values for the bf16 dot-product and fp16 kernels (each
//! row zero-padded to an even length), or as floats that hold bf16-rounded values for the f32
//! kernels (exact products all the same).

use std::ops::Range;

use super::gemm::bf16_bits;
use crate::native::simd::Isa;

/// What a conversion writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Narrow {
    /// Floats holding the bf16-rounded values.
    Bf16AsF32,
    /// bf16 values (read in pairs by the dot kernel).
    Bf16,
    /// fp16 values.
    Fp16,
}

/// `rows` rows of `cols` floats to convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToHalf {
    pub rows: usize,
    pub cols: usize,
    pub to: Narrow,
}

impl ToHalf {
    fn sixteen_bit(&self) -> bool {
        self.to != Narrow::Bf16AsF32
    }

    /// The output's row stride in its own elements: 16-bit values (an even count) or floats.
    pub fn out_stride(&self) -> usize {
        match self.sixteen_bit() {
            true => self.cols.next_multiple_of(2),
            false => self.cols,
        }
    }

    /// Floats of storage the output takes.
    pub fn out_len(&self) -> usize {
        match self.sixteen_bit() {
            true => self.rows * self.out_stride() / 2,
            false => self.rows * self.cols,
        }
    }
}

/// Thread `t`'s share of the rows, converted from `src` to `dst`: a branch-free loop the
/// compiler vectorizes for `isa` (a pass over memory, beside the GEMM it feeds).
///
/// # Safety
/// `src` valid for rows x cols floats, `dst` for `g.out_len()` floats; the CPU supports `isa`.
pub unsafe fn to_half(
    isa: Isa,
    g: &ToHalf,
    src: *const f32,
    dst: *mut f32,
    t: usize,
    threads: usize,
) {
    let rows = g.rows * t / threads..g.rows * (t + 1) / threads;
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 | Isa::Avx512Bf16 if g.to == Narrow::Fp16 => {
                x86::fp16_avx512(g, src, dst, rows)
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 | Isa::Avx512Bf16 => x86::rows_avx512(g, src, dst, rows),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::rows_avx2(g, src, dst, rows),
            _ => convert_rows(g, src, dst, rows),
        }
    }
}

#[inline(always)]
unsafe fn convert_rows(g: &ToHalf, src: *const f32, dst: *mut f32, rows: Range<usize>) {
    let stride = g.out_stride();
    for r in rows {
        let row = unsafe { std::slice::from_raw_parts(src.add(r * g.cols), g.cols) };
        if g.sixteen_bit() {
            let out = unsafe { sixteen_bit_row(g, dst, r) };
            match g.to {
                Narrow::Fp16 => {
                    for (o, &x) in out.iter_mut().zip(row) {
                        *o = half::f16::from_f32(x).to_bits();
                    }
                }
                _ => {
                    for (o, &x) in out.iter_mut().zip(row) {
                        *o = bf16_bits(x);
                    }
                }
            }
            out[g.cols..].fill(0);
        } else {
            let out = unsafe { std::slice::from_raw_parts_mut(dst.add(r * stride), g.cols) };
            for (o, &x) in out.iter_mut().zip(row) {
                *o = f32::from_bits(u32::from(bf16_bits(x)) << 16);
            }
        }
    }
}

/// Row `r` of a 16-bit output, padding included.
///
/// # Safety
/// `dst` valid for `g.out_len()` floats and `r < g.rows`.
unsafe fn sixteen_bit_row<'a>(g: &ToHalf, dst: *mut f32, r: usize) -> &'a mut [u16] {
    let stride = g.out_stride();
    unsafe { std::slice::from_raw_parts_mut((dst as *mut u16).add(r * stride), stride) }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::ToHalf;

    /// fp16 with `vcvtps2ph` (ties to even), 16 values at a time.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fp16_avx512(
        g: &ToHalf,
        src: *const f32,
        dst: *mut f32,
        rows: Range<usize>,
    ) {
        const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
        for r in rows {
            let row = unsafe { src.add(r * g.cols) };
            let out = unsafe { super::sixteen_bit_row(g, dst, r) };
            let whole = g.cols / 16 * 16;
            for j in (0..whole).step_by(16) {
                let v = unsafe { _mm512_loadu_ps(row.add(j)) };
                let h = _mm512_cvtps_ph::<NEAREST>(v);
                unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(j) as *mut __m256i, h) };
            }
            for (j, o) in out.iter_mut().enumerate().take(g.cols).skip(whole) {
                *o = half::f16::from_f32(unsafe { *row.add(j) }).to_bits();
            }
            out[g.cols..].fill(0);
        }
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn rows_avx512(
        g: &ToHalf,
        src: *const f32,
        dst: *mut f32,
        rows: Range<usize>,
    ) {
        unsafe { super::convert_rows(g, src, dst, rows) }
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn rows_avx2(g: &ToHalf, src: *const f32, dst: *mut f32, rows: Range<usize>) {
        unsafe { super::convert_rows(g, src, dst, rows) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widen(half: u16) -> f32 {
        f32::from_bits(u32::from(half) << 16)
    }

    /// The float a 16-bit value of format `to` holds.
    fn value_of(to: Narrow, bits: u16) -> f32 {
        match to {
            Narrow::Fp16 => half::f16::from_bits(bits).to_f32(),
            _ => widen(bits),
        }
    }

    #[test]
    fn rows_round_to_bf16_or_fp16_ties_to_even_as_16_bit_values_or_floats() {
        // Ties: 1 + 2^-8 and 1 + 3 * 2^-8 in bf16 (to 1 and 1 + 2^-6), 1 + 2^-11 and
        // 1 + 3 * 2^-11 in fp16 (to 1 and 1 + 2^-9); 33 columns leave a tail and a pad.
        let cols = 33;
        let src: Vec<f32> = (0..2 * cols)
            .map(|i| match i % 5 {
                0 => 1.0 + 2f32.powi(-8),
                1 => 1.0 + 3.0 * 2f32.powi(-8),
                2 => 1.0 + 2f32.powi(-11),
                3 => 1.0 + 3.0 * 2f32.powi(-11),
                _ => -(i as f32) * 0.37,
            })
            .collect();
        let formats = [
            (Narrow::Bf16AsF32, models::Precision::Bf16),
            (Narrow::Bf16, models::Precision::Bf16),
            (Narrow::Fp16, models::Precision::Fp16),
        ];
        assert_eq!(models::Precision::Bf16.round(src[1]), 1.0 + 2f32.powi(-6));
        assert_eq!(models::Precision::Fp16.round(src[3]), 1.0 + 2f32.powi(-9));
        for isa in Isa::supported() {
            for (to, precision) in formats {
                let want: Vec<f32> = src.iter().map(|&x| precision.round(x)).collect();
                let g = ToHalf { rows: 2, cols, to };
                let mut dst = vec![f32::NAN; g.out_len()];
                unsafe { to_half(isa, &g, src.as_ptr(), dst.as_mut_ptr(), 0, 1) };
                let got: Vec<f32> = if to == Narrow::Bf16AsF32 {
                    dst
                } else {
                    let halves: Vec<u16> = dst
                        .iter()
                        .flat_map(|f| [f.to_bits() as u16, (f.to_bits() >> 16) as u16])
                        .collect();
                    assert_eq!((halves[cols], halves[2 * cols + 1]), (0, 0), "zero pads");
                    let rows = halves.chunks(g.out_stride());
                    rows.flat_map(|r| r[..cols].iter().map(|&h| value_of(to, h)))
                        .collect()
                };
                assert_eq!(got, want, "{isa}, {to:?}");
            }
        }
    }

    #[test]
    fn the_branch_free_rounding_is_the_half_crates() {
        let specials = [
            f32::MAX,
            f32::MIN_POSITIVE,
            1e-40,
            -0.0,
            f32::INFINITY,
            3.3895e38,
        ];
        let seeded = models::seeded_uniform(vec![4096], 3, -1e4, 1e4);
        for &x in specials.iter().chain(seeded.data()) {
            let want = models::Precision::Bf16.round(x);
            assert_eq!(widen(bf16_bits(x)).to_bits(), want.to_bits(), "{x:e}");
        }
        assert!(widen(bf16_bits(f32::NAN)).is_nan());
    }
}
