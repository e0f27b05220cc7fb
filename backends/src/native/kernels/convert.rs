//! Number-format conversion before a bf16 GEMM: rows of floats rounded to bf16 (ties to even),
//! written as bf16 pairs for the dot-product kernel (each row zero-padded to an even length),
//! or as floats that hold the rounded values for the f32 kernels (exact products all the same).

use std::ops::Range;

use super::gemm::bf16_bits;
use crate::native::simd::Isa;

/// `rows` rows of `cols` floats to convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToBf16 {
    pub rows: usize,
    pub cols: usize,
    /// Write bf16 pairs (2-byte values) rather than floats holding the rounded values.
    pub pairs: bool,
}

impl ToBf16 {
    /// The output's row stride in its own elements: bf16 values (an even count) or floats.
    pub fn out_stride(&self) -> usize {
        match self.pairs {
            true => self.cols.next_multiple_of(2),
            false => self.cols,
        }
    }

    /// Floats of storage the output takes.
    pub fn out_len(&self) -> usize {
        match self.pairs {
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
pub unsafe fn to_bf16(
    isa: Isa,
    g: &ToBf16,
    src: *const f32,
    dst: *mut f32,
    t: usize,
    threads: usize,
) {
    let rows = g.rows * t / threads..g.rows * (t + 1) / threads;
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 | Isa::Avx512Bf16 => x86::rows_avx512(g, src, dst, rows),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::rows_avx2(g, src, dst, rows),
            _ => convert_rows(g, src, dst, rows),
        }
    }
}

#[inline(always)]
unsafe fn convert_rows(g: &ToBf16, src: *const f32, dst: *mut f32, rows: Range<usize>) {
    let stride = g.out_stride();
    for r in rows {
        let row = unsafe { std::slice::from_raw_parts(src.add(r * g.cols), g.cols) };
        if g.pairs {
            let out = unsafe { (dst as *mut u16).add(r * stride) };
            let out = unsafe { std::slice::from_raw_parts_mut(out, stride) };
            for (o, &x) in out.iter_mut().zip(row) {
                *o = bf16_bits(x);
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

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::ops::Range;

    use super::ToBf16;

    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn rows_avx512(
        g: &ToBf16,
        src: *const f32,
        dst: *mut f32,
        rows: Range<usize>,
    ) {
        unsafe { super::convert_rows(g, src, dst, rows) }
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn rows_avx2(g: &ToBf16, src: *const f32, dst: *mut f32, rows: Range<usize>) {
        unsafe { super::convert_rows(g, src, dst, rows) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widen(half: u16) -> f32 {
        f32::from_bits(u32::from(half) << 16)
    }

    #[test]
    fn rows_round_to_bf16_ties_to_even_as_pairs_or_floats() {
        // 1 + 2^-8 is a tie (to 1), 1 + 3 * 2^-8 one too (to 1 + 2^-6); an odd row to pad.
        let cols = 33;
        let src: Vec<f32> = (0..2 * cols)
            .map(|i| match i % 3 {
                0 => 1.0 + 2f32.powi(-8),
                1 => 1.0 + 3.0 * 2f32.powi(-8),
                _ => -(i as f32) * 0.37,
            })
            .collect();
        let want: Vec<f32> = src
            .iter()
            .map(|&x| models::Precision::Bf16.round(x))
            .collect();
        assert_eq!((want[0], want[1]), (1.0, 1.0 + 2f32.powi(-6)));
        let cases = Isa::supported()
            .into_iter()
            .flat_map(|i| [(i, false), (i, true)]);
        for (isa, pairs) in cases {
            let g = ToBf16 {
                rows: 2,
                cols,
                pairs,
            };
            let mut dst = vec![f32::NAN; g.out_len()];
            unsafe { to_bf16(isa, &g, src.as_ptr(), dst.as_mut_ptr(), 0, 1) };
            let got: Vec<f32> = if pairs {
                let halves: Vec<u16> = dst
                    .iter()
                    .flat_map(|f| [f.to_bits() as u16, (f.to_bits() >> 16) as u16])
                    .collect();
                assert_eq!((halves[cols], halves[2 * cols + 1]), (0, 0), "zero pads");
                let rows = halves.chunks(g.out_stride());
                rows.flat_map(|r| r[..cols].iter().map(|&h| widen(h)))
                    .collect()
            } else {
                dst
            };
            assert_eq!(got, want, "{isa}, pairs {pairs}");
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
