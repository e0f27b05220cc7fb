//! Depthwise KxK convolution on NHWC activations (K = 1, 3, 5 or 7; any stride and padding),
//! fused with its bias, an optional accumulate into the output (a branch of a summed block)
//! and ReLU. Each channel vector keeps its K*K weights in registers while it sweeps a row.

use crate::native::simd::{Isa, Scalar, Simd};
use crate::native::AlignedBuffer;

/// Kernel sizes with a compiled kernel.
pub const SUPPORTED_KERNELS: [usize; 6] = [1, 3, 5, 7, 9, 11];

/// The geometry of one depthwise layer (one image; the batch is `batch` images).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepthwiseShape {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub out_height: usize,
    pub out_width: usize,
}

/// Weights as [kh][kw][C] plus a bias, and a zero row standing in for rows in the padding.
pub struct PackedDepthwise {
    pub shape: DepthwiseShape,
    pub isa: Isa,
    weights: AlignedBuffer,
    bias: AlignedBuffer,
    zero_row: AlignedBuffer,
}

impl PackedDepthwise {
    /// Packs PyTorch-layout weights [C, 1, K, K] and an optional bias.
    pub fn pack(isa: Isa, shape: DepthwiseShape, weight: &[f32], bias: Option<&[f32]>) -> Self {
        let (c, k) = (shape.channels, shape.kernel);
        let mut weights = AlignedBuffer::zeros(k * k * c);
        let w = weights.as_mut_slice();
        for ch in 0..c {
            for tap in 0..k * k {
                w[tap * c + ch] = weight[ch * k * k + tap];
            }
        }
        let mut b = AlignedBuffer::zeros(c);
        if let Some(bias) = bias {
            b.as_mut_slice().copy_from_slice(bias);
        }
        Self {
            shape,
            isa,
            weights,
            bias: b,
            zero_row: AlignedBuffer::zeros(shape.width * c + c),
        }
    }
}

/// Runs thread `t`'s share (of `threads`) of the output rows.
///
/// # Safety
/// `input` must hold batch x H x W x C floats and `output` batch x OH x OW x C; the CPU must
/// support `packed.isa`; K must be one of `SUPPORTED_KERNELS`.
pub unsafe fn depthwise(
    packed: &PackedDepthwise,
    input: *const f32,
    output: *mut f32,
    accumulate: bool,
    relu: bool,
    t: usize,
    threads: usize,
) {
    let s = &packed.shape;
    let rows = s.batch * s.out_height;
    let row = Row {
        packed,
        input,
        output,
        accumulate,
        relu,
    };
    for r in rows * t / threads..rows * (t + 1) / threads {
        unsafe { dispatch(packed.isa, s.kernel, &row, r) };
    }
}

struct Row<'a> {
    packed: &'a PackedDepthwise,
    input: *const f32,
    output: *mut f32,
    accumulate: bool,
    relu: bool,
}

unsafe fn dispatch(isa: Isa, k: usize, row: &Row, r: usize) {
    unsafe {
        match (isa, k) {
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, 1) => avx512::row::<1>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, 3) => avx512::row::<3>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, 5) => avx512::row::<5>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, 7) => avx512::row::<7>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, 9) => avx512::row::<9>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, 11) => avx512::row::<11>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, 1) => avx2::row::<1>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, 3) => avx2::row::<3>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, 5) => avx2::row::<5>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, 7) => avx2::row::<7>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, 9) => avx2::row::<9>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, 11) => avx2::row::<11>(row, r),
            #[cfg(target_arch = "aarch64")]
            (Isa::Neon, 1) => neon::row::<1>(row, r),
            #[cfg(target_arch = "aarch64")]
            (Isa::Neon, 3) => neon::row::<3>(row, r),
            #[cfg(target_arch = "aarch64")]
            (Isa::Neon, 5) => neon::row::<5>(row, r),
            #[cfg(target_arch = "aarch64")]
            (Isa::Neon, 7) => neon::row::<7>(row, r),
            #[cfg(target_arch = "aarch64")]
            (Isa::Neon, 9) => neon::row::<9>(row, r),
            #[cfg(target_arch = "aarch64")]
            (Isa::Neon, 11) => neon::row::<11>(row, r),
            (_, 1) => output_row::<Scalar, 1>(row, r),
            (_, 3) => output_row::<Scalar, 3>(row, r),
            (_, 5) => output_row::<Scalar, 5>(row, r),
            (_, 7) => output_row::<Scalar, 7>(row, r),
            (_, 9) => output_row::<Scalar, 9>(row, r),
            (_, 11) => output_row::<Scalar, 11>(row, r),
            _ => unreachable!("depthwise kernel size {k} is rejected when the plan is built"),
        }
    }
}

/// One output row: whole vectors of channels with `S`, the remaining channels one at a time.
#[inline(always)]
unsafe fn output_row<S: Simd, const K: usize>(row: &Row, r: usize) {
    let s = &row.packed.shape;
    let (b, y) = (r / s.out_height, r % s.out_height);
    let rows: [*const f32; K] = std::array::from_fn(|kh| {
        let ih = (y * s.stride + kh) as isize - s.padding as isize;
        if ih >= 0 && (ih as usize) < s.height {
            unsafe {
                row.input
                    .add((b * s.height + ih as usize) * s.width * s.channels)
            }
        } else {
            row.packed.zero_row.as_ptr()
        }
    });
    let out = unsafe { row.output.add(r * s.out_width * s.channels) };
    let vectors = s.channels / S::LANES * S::LANES;
    let mut c = 0;
    while c < vectors {
        unsafe { channel_block::<S, K>(row, &rows, out, c) };
        c += S::LANES;
    }
    while c < s.channels {
        unsafe { channel_block::<Scalar, K>(row, &rows, out, c) };
        c += 1;
    }
}

/// Channels [c, c + LANES) of one output row.
#[inline(always)]
unsafe fn channel_block<S: Simd, const K: usize>(
    row: &Row,
    rows: &[*const f32; K],
    out: *mut f32,
    c: usize,
) {
    let s = &row.packed.shape;
    let ch = s.channels;
    let w = row.packed.weights.as_ptr();
    let weights: [[S::V; K]; K] = std::array::from_fn(|kh| {
        std::array::from_fn(|kw| unsafe { S::load(w.add((kh * K + kw) * ch + c)) })
    });
    let bias = unsafe { S::load(row.packed.bias.as_ptr().add(c)) };
    let zero = unsafe { S::zero() };
    let interior = |x: usize| {
        let iw0 = (x * s.stride) as isize - s.padding as isize;
        iw0 >= 0 && iw0 as usize + K <= s.width
    };
    let mut x = 0;
    while x < s.out_width {
        // Interior pixels four at a time: four independent FMA chains hide the FMA latency
        // that one chain of K*K dependent FMAs per pixel would wait on.
        if x + PIXELS <= s.out_width && interior(x) && interior(x + PIXELS - 1) {
            let base = (x * s.stride - s.padding) * ch + c;
            let step = s.stride * ch;
            let mut acc = [bias; PIXELS];
            for kh in 0..K {
                for kw in 0..K {
                    for (j, a) in acc.iter_mut().enumerate() {
                        let v = unsafe { S::load(rows[kh].add(base + j * step + kw * ch)) };
                        *a = unsafe { S::fma(v, weights[kh][kw], *a) };
                    }
                }
            }
            for (j, a) in acc.into_iter().enumerate() {
                unsafe { finish::<S>(row, out.add((x + j) * ch + c), a, zero) };
            }
            x += PIXELS;
            continue;
        }
        // A border pixel: one chain per kernel row (K short chains, not one long one).
        let iw0 = (x * s.stride) as isize - s.padding as isize;
        let mut partial = [zero; K];
        for kw in 0..K {
            let iw = iw0 + kw as isize;
            if iw < 0 || iw as usize >= s.width {
                continue;
            }
            for kh in 0..K {
                let v = unsafe { S::load(rows[kh].add(iw as usize * ch + c)) };
                partial[kh] = unsafe { S::fma(v, weights[kh][kw], partial[kh]) };
            }
        }
        let acc = partial
            .into_iter()
            .fold(bias, |a, p| unsafe { S::add(a, p) });
        unsafe { finish::<S>(row, out.add(x * ch + c), acc, zero) };
        x += 1;
    }
}

/// Output pixels computed together in the interior of a row.
const PIXELS: usize = 4;

/// The epilogue: accumulate into what is there, ReLU, store.
#[inline(always)]
unsafe fn finish<S: Simd>(row: &Row, p: *mut f32, mut acc: S::V, zero: S::V) {
    if row.accumulate {
        acc = unsafe { S::add(acc, S::load(p)) };
    }
    if row.relu {
        acc = unsafe { S::max(acc, zero) };
    }
    unsafe { S::store(p, acc) };
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Row;
    use crate::native::simd::Avx512;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn row<const K: usize>(row: &Row, r: usize) {
        unsafe { super::output_row::<Avx512, K>(row, r) }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Row;
    use crate::native::simd::Avx2;

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn row<const K: usize>(row: &Row, r: usize) {
        unsafe { super::output_row::<Avx2, K>(row, r) }
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use super::Row;
    use crate::native::simd::Neon;

    #[target_feature(enable = "neon")]
    pub(super) unsafe fn row<const K: usize>(row: &Row, r: usize) {
        unsafe { super::output_row::<Neon, K>(row, r) }
    }
}
