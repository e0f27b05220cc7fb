//! Depthwise KxK convolution on NHWC activations (K = 1, 3, 5 ... 11; any stride and
//! padding), fused with its bias, an optional accumulate into the output (a branch of a
//! summed block) and ReLU. Each channel vector keeps its K*K weights in registers while it
//! sweeps a row. Input and output are each stored as floats or bf16 (math in f32).

use crate::native::simd::{Bf16, Elem, Isa, Scalar, Simd, Storage};
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
/// The pair copies hold the same values with the channels of each block of two vectors
/// reordered, even channels first, then odd: the order in which bf16 pairs load.
pub struct PackedDepthwise {
    pub shape: DepthwiseShape,
    pub isa: Isa,
    weights: AlignedBuffer,
    bias: AlignedBuffer,
    pair_weights: AlignedBuffer,
    pair_bias: AlignedBuffer,
    zero_row: AlignedBuffer,
}

impl PackedDepthwise {
    /// Packs PyTorch-layout weights [C, 1, K, K] and an optional bias.
    pub fn pack(isa: Isa, shape: DepthwiseShape, weight: &[f32], bias: Option<&[f32]>) -> Self {
        let (c, k) = (shape.channels, shape.kernel);
        let mut weights = vec![0.0; k * k * c];
        for ch in 0..c {
            for tap in 0..k * k {
                weights[tap * c + ch] = weight[ch * k * k + tap];
            }
        }
        let bias = bias.map_or_else(|| vec![0.0; c], <[f32]>::to_vec);
        let order = pair_order(c, lanes(isa));
        let reordered = |from: &[f32]| -> Vec<f32> {
            from.chunks_exact(c.max(1))
                .flat_map(|row| order.iter().map(|&ch| row[ch]))
                .collect()
        };
        Self {
            shape,
            isa,
            pair_weights: AlignedBuffer::from_slice(&reordered(&weights)),
            pair_bias: AlignedBuffer::from_slice(&reordered(&bias)),
            weights: AlignedBuffer::from_slice(&weights),
            bias: AlignedBuffer::from_slice(&bias),
            zero_row: AlignedBuffer::zeros(shape.width * c + c),
        }
    }
}

/// Floats per vector of the kernels `isa` dispatches to.
fn lanes(isa: Isa) -> usize {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 | Isa::Avx512Bf16 => 16,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => 8,
        #[cfg(target_arch = "aarch64")]
        Isa::Neon | Isa::NeonBf16 => 4,
        _ => 1,
    }
}

/// For each position of the pair layout, the channel it holds: in each whole block of
/// `2 * lanes` channels the even ones, then the odd ones; the channels after the last whole
/// block in place.
fn pair_order(channels: usize, lanes: usize) -> Vec<usize> {
    let block = 2 * lanes;
    let whole = channels / block * block;
    (0..channels)
        .map(|p| match p < whole {
            true => p / block * block + 2 * (p % block % lanes) + p % block / lanes,
            false => p,
        })
        .collect()
}

/// Where a depthwise layer reads and writes, each in its storage (bf16 values are 16-bit
/// elements at the same positions as floats would be).
#[derive(Clone, Copy)]
pub struct DepthwiseIo {
    pub input: *const f32,
    pub input_storage: Storage,
    pub output: *mut f32,
    pub output_storage: Storage,
    pub accumulate: bool,
    pub relu: bool,
}

/// Runs thread `t`'s share (of `threads`) of the output rows.
///
/// # Safety
/// `io.input` must hold batch x H x W x C elements of its storage and `io.output` batch x OH
/// x OW x C; the CPU must support `packed.isa`; K must be one of `SUPPORTED_KERNELS`.
pub unsafe fn depthwise(packed: &PackedDepthwise, io: &DepthwiseIo, t: usize, threads: usize) {
    unsafe {
        match (io.input_storage, io.output_storage) {
            (Storage::F32, Storage::F32) => rows::<f32, f32>(packed, io, t, threads),
            (Storage::F32, Storage::Bf16) => rows::<f32, Bf16>(packed, io, t, threads),
            (Storage::Bf16, Storage::F32) => rows::<Bf16, f32>(packed, io, t, threads),
            (Storage::Bf16, Storage::Bf16) => rows::<Bf16, Bf16>(packed, io, t, threads),
        }
    }
}

unsafe fn rows<I: Elem, O: Elem>(
    packed: &PackedDepthwise,
    io: &DepthwiseIo,
    t: usize,
    threads: usize,
) {
    let s = &packed.shape;
    let rows = s.batch * s.out_height;
    let row = Row::<I, O> {
        packed,
        input: io.input as *const I,
        output: io.output as *mut O,
        zero_row: packed.zero_row.as_ptr() as *const I,
        accumulate: io.accumulate,
        relu: io.relu,
    };
    // AVX512_BF16 keeps its own instantiation (its bf16 stores round in one instruction);
    // any other bf16 extension changes nothing here.
    let isa = match packed.isa {
        Isa::Avx512Bf16 => Isa::Avx512Bf16,
        other => other.f32_kernels(),
    };
    for r in rows * t / threads..rows * (t + 1) / threads {
        unsafe { dispatch(isa, s.kernel, &row, r) };
    }
}

struct Row<'a, I, O> {
    packed: &'a PackedDepthwise,
    input: *const I,
    output: *mut O,
    /// Zeros standing in for input rows in the padding.
    zero_row: *const I,
    accumulate: bool,
    relu: bool,
}

unsafe fn dispatch<I: Elem, O: Elem>(isa: Isa, k: usize, row: &Row<I, O>, r: usize) {
    unsafe {
        match (isa, k) {
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512Bf16, 1) => avx512bf16::row::<1, I, O>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512Bf16, 3) => avx512bf16::row::<3, I, O>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512Bf16, 5) => avx512bf16::row::<5, I, O>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512Bf16, 7) => avx512bf16::row::<7, I, O>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512Bf16, 9) => avx512bf16::row::<9, I, O>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512Bf16, 11) => avx512bf16::row::<11, I, O>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, 1) => avx512::row::<1, I, O>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, 3) => avx512::row::<3, I, O>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, 5) => avx512::row::<5, I, O>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, 7) => avx512::row::<7, I, O>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, 9) => avx512::row::<9, I, O>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, 11) => avx512::row::<11, I, O>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, 1) => avx2::row::<1, I, O>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, 3) => avx2::row::<3, I, O>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, 5) => avx2::row::<5, I, O>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, 7) => avx2::row::<7, I, O>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, 9) => avx2::row::<9, I, O>(row, r),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, 11) => avx2::row::<11, I, O>(row, r),
            #[cfg(target_arch = "aarch64")]
            (Isa::Neon, 1) => neon::row::<1, I, O>(row, r),
            #[cfg(target_arch = "aarch64")]
            (Isa::Neon, 3) => neon::row::<3, I, O>(row, r),
            #[cfg(target_arch = "aarch64")]
            (Isa::Neon, 5) => neon::row::<5, I, O>(row, r),
            #[cfg(target_arch = "aarch64")]
            (Isa::Neon, 7) => neon::row::<7, I, O>(row, r),
            #[cfg(target_arch = "aarch64")]
            (Isa::Neon, 9) => neon::row::<9, I, O>(row, r),
            #[cfg(target_arch = "aarch64")]
            (Isa::Neon, 11) => neon::row::<11, I, O>(row, r),
            (_, 1) => output_row::<Scalar, 1, I, O>(row, r),
            (_, 3) => output_row::<Scalar, 3, I, O>(row, r),
            (_, 5) => output_row::<Scalar, 5, I, O>(row, r),
            (_, 7) => output_row::<Scalar, 7, I, O>(row, r),
            (_, 9) => output_row::<Scalar, 9, I, O>(row, r),
            (_, 11) => output_row::<Scalar, 11, I, O>(row, r),
            _ => unreachable!("depthwise kernel size {k} is rejected when the plan is built"),
        }
    }
}

/// One output row: whole vectors of channels with `S`, the remaining channels one at a time.
#[inline(always)]
unsafe fn output_row<S: Simd, const K: usize, I: Elem, O: Elem>(row: &Row<I, O>, r: usize) {
    let s = &row.packed.shape;
    let (b, y) = (r / s.out_height, r % s.out_height);
    let rows: [*const I; K] = std::array::from_fn(|kh| {
        let ih = (y * s.stride + kh) as isize - s.padding as isize;
        if ih >= 0 && (ih as usize) < s.height {
            unsafe {
                row.input
                    .add((b * s.height + ih as usize) * s.width * s.channels)
            }
        } else {
            row.zero_row
        }
    });
    let out = unsafe { row.output.add(r * s.out_width * s.channels) };
    let vectors = s.channels / S::LANES * S::LANES;
    let unit = s.stride == 1;
    let mut c = 0;
    if I::BF16 && O::BF16 && !row.accumulate {
        // bf16 in and out: two vectors of channels per load, split without a shuffle.
        let pairs = s.channels / (2 * S::LANES) * (2 * S::LANES);
        while c < pairs {
            match unit {
                true => unsafe { channel_pair_block::<S, K, I, O, true>(row, &rows, out, c) },
                false => unsafe { channel_pair_block::<S, K, I, O, false>(row, &rows, out, c) },
            }
            c += 2 * S::LANES;
        }
    }
    while c < vectors {
        match unit {
            true => unsafe { channel_block::<S, K, I, O, true>(row, &rows, out, c) },
            false => unsafe { channel_block::<S, K, I, O, false>(row, &rows, out, c) },
        }
        c += S::LANES;
    }
    while c < s.channels {
        match unit {
            true => unsafe { channel_block::<Scalar, K, I, O, true>(row, &rows, out, c) },
            false => unsafe { channel_block::<Scalar, K, I, O, false>(row, &rows, out, c) },
        }
        c += 1;
    }
}

/// Channels [c, c + LANES) of one output row.
#[inline(always)]
unsafe fn channel_block<S: Simd, const K: usize, I: Elem, O: Elem, const UNIT: bool>(
    row: &Row<I, O>,
    rows: &[*const I; K],
    out: *mut O,
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
                if UNIT {
                    // Stride 1: neighbouring pixels share input columns; each column is loaded
                    // once and feeds every pixel it is under (the same sums in the same order).
                    for col in 0..PIXELS + K - 1 {
                        let v = unsafe { I::load::<S>(rows[kh].add(base + col * ch)) };
                        for (j, a) in acc.iter_mut().enumerate() {
                            if col >= j && col - j < K {
                                *a = unsafe { S::fma(v, weights[kh][col - j], *a) };
                            }
                        }
                    }
                    continue;
                }
                for kw in 0..K {
                    for (j, a) in acc.iter_mut().enumerate() {
                        let v = unsafe { I::load::<S>(rows[kh].add(base + j * step + kw * ch)) };
                        *a = unsafe { S::fma(v, weights[kh][kw], *a) };
                    }
                }
            }
            for (j, a) in acc.into_iter().enumerate() {
                unsafe { finish::<S, I, O>(row, out.add((x + j) * ch + c), a, zero) };
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
                let v = unsafe { I::load::<S>(rows[kh].add(iw as usize * ch + c)) };
                partial[kh] = unsafe { S::fma(v, weights[kh][kw], partial[kh]) };
            }
        }
        let acc = partial
            .into_iter()
            .fold(bias, |a, p| unsafe { S::add(a, p) });
        unsafe { finish::<S, I, O>(row, out.add(x * ch + c), acc, zero) };
        x += 1;
    }
}

/// Output pixels computed together in the interior of a row.
const PIXELS: usize = 4;

/// Channels [c, c + 2 * LANES) of one output row with bf16 input and output: each load
/// brings both vectors' channels as bf16 pairs, split into even and odd channels by a shift
/// and a mask (the pair weights are in that order), and each store puts them back
/// interleaved. The same sums in the same order as `channel_block`, channel by channel.
#[inline(always)]
unsafe fn channel_pair_block<S: Simd, const K: usize, I: Elem, O: Elem, const UNIT: bool>(
    row: &Row<I, O>,
    rows: &[*const I; K],
    out: *mut O,
    c: usize,
) {
    let s = &row.packed.shape;
    let ch = s.channels;
    let w = row.packed.pair_weights.as_ptr();
    let weights = |half: usize| -> [[S::V; K]; K] {
        std::array::from_fn(|kh| {
            std::array::from_fn(|kw| unsafe {
                S::load(w.add((kh * K + kw) * ch + c + half * S::LANES))
            })
        })
    };
    let (we, wo) = (weights(0), weights(1));
    let bias = row.packed.pair_bias.as_ptr();
    let (be, bo) = unsafe { (S::load(bias.add(c)), S::load(bias.add(c + S::LANES))) };
    let zero = unsafe { S::zero() };
    let load = |p: *const I| unsafe { S::load_bf16_pairs(p as *const u16) };
    let store = |x: usize, mut e: S::V, mut o: S::V| {
        if row.relu {
            (e, o) = unsafe { (S::max(e, zero), S::max(o, zero)) };
        }
        unsafe { S::store_bf16_pairs(out.add(x * ch + c) as *mut u16, e, o) };
    };
    let interior = |x: usize| {
        let iw0 = (x * s.stride) as isize - s.padding as isize;
        iw0 >= 0 && iw0 as usize + K <= s.width
    };
    let mut x = 0;
    while x < s.out_width {
        if x + PIXELS <= s.out_width && interior(x) && interior(x + PIXELS - 1) {
            let base = (x * s.stride - s.padding) * ch + c;
            let step = s.stride * ch;
            let (mut ae, mut ao) = ([be; PIXELS], [bo; PIXELS]);
            for kh in 0..K {
                if UNIT {
                    // Stride 1: every column once, for every pixel it is under.
                    for col in 0..PIXELS + K - 1 {
                        let (ve, vo) = load(unsafe { rows[kh].add(base + col * ch) });
                        for j in 0..PIXELS {
                            if col >= j && col - j < K {
                                ae[j] = unsafe { S::fma(ve, we[kh][col - j], ae[j]) };
                                ao[j] = unsafe { S::fma(vo, wo[kh][col - j], ao[j]) };
                            }
                        }
                    }
                    continue;
                }
                for kw in 0..K {
                    for j in 0..PIXELS {
                        let (ve, vo) = load(unsafe { rows[kh].add(base + j * step + kw * ch) });
                        ae[j] = unsafe { S::fma(ve, we[kh][kw], ae[j]) };
                        ao[j] = unsafe { S::fma(vo, wo[kh][kw], ao[j]) };
                    }
                }
            }
            for j in 0..PIXELS {
                store(x + j, ae[j], ao[j]);
            }
            x += PIXELS;
            continue;
        }
        let iw0 = (x * s.stride) as isize - s.padding as isize;
        let (mut pe, mut po) = ([zero; K], [zero; K]);
        for kw in 0..K {
            let iw = iw0 + kw as isize;
            if iw < 0 || iw as usize >= s.width {
                continue;
            }
            for kh in 0..K {
                let (ve, vo) = load(unsafe { rows[kh].add(iw as usize * ch + c) });
                pe[kh] = unsafe { S::fma(ve, we[kh][kw], pe[kh]) };
                po[kh] = unsafe { S::fma(vo, wo[kh][kw], po[kh]) };
            }
        }
        let sum =
            |bias, parts: [S::V; K]| parts.into_iter().fold(bias, |a, p| unsafe { S::add(a, p) });
        store(x, sum(be, pe), sum(bo, po));
        x += 1;
    }
}

/// The epilogue: accumulate into what is there, ReLU, store.
#[inline(always)]
unsafe fn finish<S: Simd, I, O: Elem>(row: &Row<I, O>, p: *mut O, mut acc: S::V, zero: S::V) {
    if row.accumulate {
        acc = unsafe { S::add(acc, O::load::<S>(p)) };
    }
    if row.relu {
        acc = unsafe { S::max(acc, zero) };
    }
    unsafe { O::store::<S>(p, acc) };
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Row;
    use crate::native::simd::{Avx512, Elem};

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn row<const K: usize, I: Elem, O: Elem>(row: &Row<I, O>, r: usize) {
        unsafe { super::output_row::<Avx512, K, I, O>(row, r) }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512bf16 {
    use super::Row;
    use crate::native::simd::{Avx512Dot, Elem};

    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn row<const K: usize, I: Elem, O: Elem>(row: &Row<I, O>, r: usize) {
        unsafe { super::output_row::<Avx512Dot, K, I, O>(row, r) }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Row;
    use crate::native::simd::{Avx2, Elem};

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn row<const K: usize, I: Elem, O: Elem>(row: &Row<I, O>, r: usize) {
        unsafe { super::output_row::<Avx2, K, I, O>(row, r) }
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use super::Row;
    use crate::native::simd::{Elem, Neon};

    #[target_feature(enable = "neon")]
    pub(super) unsafe fn row<const K: usize, I: Elem, O: Elem>(row: &Row<I, O>, r: usize) {
        unsafe { super::output_row::<Neon, K, I, O>(row, r) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::simd::bf16_bits;

    fn widen(h: u16) -> f32 {
        f32::from_bits(u32::from(h) << 16)
    }

    fn shape(channels: usize, side: usize, kernel: usize, stride: usize) -> DepthwiseShape {
        let padding = kernel / 2;
        let out = (side + 2 * padding - kernel) / stride + 1;
        DepthwiseShape {
            batch: 2,
            channels,
            height: side,
            width: side + 1,
            kernel,
            stride,
            padding,
            out_height: out,
            out_width: (side + 1 + 2 * padding - kernel) / stride + 1,
        }
    }

    /// Runs one layer single-threaded with its input and output in the given storages; the
    /// output starts as `old` (for the accumulate case).
    fn run(
        packed: &PackedDepthwise,
        input: &[f32],
        (from, to): (Storage, Storage),
        old: &[f32],
        (accumulate, relu): (bool, bool),
    ) -> Vec<f32> {
        let input16: Vec<u16> = input.iter().map(|&x| bf16_bits(x)).collect();
        let mut out32 = old.to_vec();
        let mut out16: Vec<u16> = old.iter().map(|&x| bf16_bits(x)).collect();
        let io = DepthwiseIo {
            input: match from {
                Storage::F32 => input.as_ptr(),
                Storage::Bf16 => input16.as_ptr() as *const f32,
            },
            input_storage: from,
            output: match to {
                Storage::F32 => out32.as_mut_ptr(),
                Storage::Bf16 => out16.as_mut_ptr() as *mut f32,
            },
            output_storage: to,
            accumulate,
            relu,
        };
        unsafe { depthwise(packed, &io, 0, 1) };
        match to {
            Storage::F32 => out32,
            Storage::Bf16 => out16.into_iter().map(widen).collect(),
        }
    }

    /// Every store to bf16 rounds as `bf16_bits` does (ties to even, the largest finite
    /// float to infinity, NaN quiet) and every load widens exactly, on every instruction
    /// set: a 1x1 depthwise of weight 1 and no bias copies its input.
    #[test]
    fn bf16_loads_and_stores_round_like_bf16_bits_on_every_isa() {
        let special: Vec<f32> = [
            0x3f80_8000u32, // a tie, to the even 1.0
            0x3f81_8000,    // a tie, up to the even neighbour
            0x3f80_7fff,
            0x3f80_8001,
            0x7f7f_ffff, // the largest float: rounds to infinity
            0x7f80_0000,
            0xff80_0000,
            0x7f80_0001, // a signalling NaN: stays NaN
            0x0000_0001, // the smallest subnormal
            0x8080_0000,
            0x4049_0fdb,
        ]
        .into_iter()
        .map(f32::from_bits)
        .collect();
        let channels = 37; // two AVX-512 vectors and a scalar tail, etc.
        let input: Vec<f32> = (0..2 * 3 * channels)
            .map(|i| special[i % special.len()])
            .collect();
        let s = DepthwiseShape {
            batch: 2,
            channels,
            height: 1,
            width: 3,
            kernel: 1,
            stride: 1,
            padding: 0,
            out_height: 1,
            out_width: 3,
        };
        for isa in Isa::supported() {
            let packed = PackedDepthwise::pack(isa, s, &vec![1.0; channels], None);
            let zeros = vec![0.0; input.len()];
            let stored = run(
                &packed,
                &input,
                (Storage::F32, Storage::Bf16),
                &zeros,
                (false, false),
            );
            for (x, y) in input.iter().zip(&stored) {
                // vcvtneps2bf16 reads a subnormal float as zero (of its sign).
                let flushed = isa == Isa::Avx512Bf16 && x.is_subnormal();
                let x = if flushed { 0.0f32.copysign(*x) } else { *x };
                assert_eq!(bf16_bits(*y), bf16_bits(x), "{isa}: {:#x}", x.to_bits());
                assert_eq!(y.to_bits() & 0xffff, 0);
            }
            // bf16 in and out (the pair path): the stored input comes back as it was, but a
            // subnormal one on AVX512_BF16.
            let both = run(
                &packed,
                &input,
                (Storage::Bf16, Storage::Bf16),
                &zeros,
                (false, false),
            );
            for (x, y) in input.iter().zip(&both) {
                let x = widen(bf16_bits(*x));
                let flushed = isa == Isa::Avx512Bf16 && x.is_subnormal();
                let x = if flushed { 0.0f32.copysign(x) } else { x };
                assert_eq!(
                    bf16_bits(*y),
                    bf16_bits(x),
                    "{isa} pairs: {:#x}",
                    x.to_bits()
                );
            }
            let loaded = run(
                &packed,
                &input,
                (Storage::Bf16, Storage::F32),
                &zeros,
                (false, false),
            );
            for (x, y) in input.iter().zip(&loaded) {
                let want = widen(bf16_bits(*x));
                assert!(
                    y.to_bits() == want.to_bits() || (y.is_nan() && want.is_nan()),
                    "{isa}: {:#x}",
                    x.to_bits()
                );
            }
        }
    }

    #[test]
    fn pair_weights_hold_even_channels_then_odd_per_block_of_two_vectors() {
        assert_eq!(pair_order(8, 2), [0, 2, 1, 3, 4, 6, 5, 7]);
        assert_eq!(pair_order(7, 2), [0, 2, 1, 3, 4, 5, 6]);
        assert_eq!(pair_order(5, 1), [0, 1, 2, 3, 4]);
        let order = pair_order(70, 16);
        assert_eq!(&order[..4], [0, 2, 4, 6]);
        assert_eq!(&order[16..18], [1, 3]);
        assert_eq!(&order[64..], [64, 65, 66, 67, 68, 69]);
    }

    /// With bf16 input, output or both, the kernel computes what the float kernel computes
    /// on the bf16 values, rounded once at the store: bit for bit, on every instruction set,
    /// on awkward shapes (channel tails, borders, stride 2, K = 3 and 5), with and without
    /// the epilogue.
    #[test]
    fn bf16_storage_is_the_float_kernel_on_bf16_values_on_every_isa() {
        let storages = [Storage::F32, Storage::Bf16];
        for isa in Isa::supported() {
            for (n, &(c, side, k, stride)) in
                [(37, 7, 3, 1), (64, 9, 3, 2), (19, 6, 5, 1), (48, 5, 3, 1)]
                    .iter()
                    .enumerate()
            {
                let s = shape(c, side, k, stride);
                let values = |len, seed| models::seeded_uniform(vec![len], seed, -2.0, 2.0);
                let w = values(c * k * k, n as u64);
                let b = values(c, 10 + n as u64);
                let packed = PackedDepthwise::pack(isa, s, w.data(), Some(b.data()));
                let x = values(s.batch * s.height * s.width * c, 20 + n as u64);
                let x16: Vec<f32> = x.data().iter().map(|&v| widen(bf16_bits(v))).collect();
                let old = values(s.batch * s.out_height * s.out_width * c, 30 + n as u64);
                let old16: Vec<f32> = old.data().iter().map(|&v| widen(bf16_bits(v))).collect();
                for epilogue in [(false, false), (false, true), (true, true)] {
                    for from in storages {
                        for to in storages {
                            let got = run(&packed, x.data(), (from, to), old.data(), epilogue);
                            let input = if from == Storage::Bf16 {
                                &x16
                            } else {
                                x.data()
                            };
                            let start = if to == Storage::Bf16 {
                                &old16
                            } else {
                                old.data()
                            };
                            let mut want = run(
                                &packed,
                                input,
                                (Storage::F32, Storage::F32),
                                start,
                                epilogue,
                            );
                            if to == Storage::Bf16 {
                                want.iter_mut().for_each(|v| *v = widen(bf16_bits(*v)));
                            }
                            let differs = got.iter().zip(&want).position(|(a, b)| a != b);
                            assert_eq!(differs, None, "{isa} {s:?} {from:?}->{to:?} {epilogue:?}");
                        }
                    }
                }
            }
        }
    }
}
