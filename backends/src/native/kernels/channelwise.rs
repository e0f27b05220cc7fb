//! Per-channel kernels on NHWC activations: the affine map `out (=|+=) x * scale + shift`,
//! then an optional ReLU (it serves the identity-BN branch, squeeze-excite's channel scaling,
//! a standalone ReLU and an unfused Add), and the global average pool.

use crate::native::simd::{Isa, Scalar, Simd};

/// out[b, p, c] (=|+=) x[b, p, c] * scale[b * scale_stride + c] + shift[b * shift_stride + c],
/// then ReLU.
#[derive(Clone, Copy)]
pub struct AffineArgs {
    pub batch: usize,
    pub pixels: usize,
    pub channels: usize,
    pub x: *const f32,
    pub out: *mut f32,
    pub scale: *const f32,
    /// 0: one scale vector for every image; C: one per image (squeeze-excite's gate).
    pub scale_stride: usize,
    pub shift: *const f32,
    /// 0: one shift vector for every image; C: one per image (a dynamic activation's offset).
    pub shift_stride: usize,
    pub accumulate: bool,
    pub relu: bool,
}

/// Runs thread `t`'s share of the pixels.
///
/// # Safety
/// Pointers valid for the shapes in `args`; the CPU supports `isa`.
pub unsafe fn affine(isa: Isa, args: &AffineArgs, t: usize, threads: usize) {
    let rows = args.batch * args.pixels;
    let (start, end) = (rows * t / threads, rows * (t + 1) / threads);
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::affine_avx512(args, start, end),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::affine_avx2(args, start, end),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => arm::affine_neon(args, start, end),
            _ => affine_rows::<Scalar>(args, start, end),
        }
    }
}

#[inline(always)]
unsafe fn affine_rows<S: Simd>(args: &AffineArgs, start: usize, end: usize) {
    let ch = args.channels;
    let vectors = ch / S::LANES * S::LANES;
    for r in start..end {
        let b = r / args.pixels;
        let scale = unsafe { args.scale.add(b * args.scale_stride) };
        let shift = unsafe { args.shift.add(b * args.shift_stride) };
        let x = unsafe { args.x.add(r * ch) };
        let out = unsafe { args.out.add(r * ch) };
        let mut c = 0;
        while c < vectors {
            unsafe { affine_block::<S>(args, x, out, [scale, shift], c) };
            c += S::LANES;
        }
        while c < ch {
            unsafe { affine_block::<Scalar>(args, x, out, [scale, shift], c) };
            c += 1;
        }
    }
}

#[inline(always)]
unsafe fn affine_block<S: Simd>(
    args: &AffineArgs,
    x: *const f32,
    out: *mut f32,
    [scale, shift]: [*const f32; 2],
    c: usize,
) {
    unsafe {
        let mut v = S::fma(
            S::load(x.add(c)),
            S::load(scale.add(c)),
            S::load(shift.add(c)),
        );
        if args.accumulate {
            v = S::add(v, S::load(out.add(c)));
        }
        if args.relu {
            v = S::max(v, S::zero());
        }
        S::store(out.add(c), v);
    }
}

/// out[b, c] = mean over pixels of x[b, p, c]; thread `t` takes a share of the channels.
///
/// # Safety
/// `x` valid for batch x pixels x channels floats, `out` for batch x channels; the CPU
/// supports `isa`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn global_avg_pool(
    isa: Isa,
    batch: usize,
    pixels: usize,
    channels: usize,
    x: *const f32,
    out: *mut f32,
    t: usize,
    threads: usize,
) {
    let pool = Pool {
        batch,
        pixels,
        channels,
        x,
        out,
    };
    // Split on whole 16-channel groups so every thread's range stays vector aligned.
    let groups = channels.div_ceil(16);
    let (c0, c1) = (
        (groups * t / threads * 16).min(channels),
        (groups * (t + 1) / threads * 16).min(channels),
    );
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::pool_avx512(&pool, c0, c1),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::pool_avx2(&pool, c0, c1),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => arm::pool_neon(&pool, c0, c1),
            _ => pool_channels::<Scalar>(&pool, c0, c1),
        }
    }
}

struct Pool {
    batch: usize,
    pixels: usize,
    channels: usize,
    x: *const f32,
    out: *mut f32,
}

#[inline(always)]
unsafe fn pool_channels<S: Simd>(pool: &Pool, c0: usize, c1: usize) {
    let inv = unsafe { S::splat(1.0 / pool.pixels as f32) };
    for b in 0..pool.batch {
        let x = unsafe { pool.x.add(b * pool.pixels * pool.channels) };
        let out = unsafe { pool.out.add(b * pool.channels) };
        let mut c = c0;
        while c + S::LANES <= c1 {
            let mut acc = unsafe { S::zero() };
            for p in 0..pool.pixels {
                acc = unsafe { S::add(acc, S::load(x.add(p * pool.channels + c))) };
            }
            unsafe { S::store(out.add(c), S::mul(acc, inv)) };
            c += S::LANES;
        }
        while c < c1 {
            let sum: f32 = (0..pool.pixels)
                .map(|p| unsafe { *x.add(p * pool.channels + c) })
                .sum();
            unsafe { *out.add(c) = sum / pool.pixels as f32 };
            c += 1;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{AffineArgs, Pool};
    use crate::native::simd::{Avx2, Avx512};

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn affine_avx512(args: &AffineArgs, start: usize, end: usize) {
        unsafe { super::affine_rows::<Avx512>(args, start, end) }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn affine_avx2(args: &AffineArgs, start: usize, end: usize) {
        unsafe { super::affine_rows::<Avx2>(args, start, end) }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn pool_avx512(pool: &Pool, c0: usize, c1: usize) {
        unsafe { super::pool_channels::<Avx512>(pool, c0, c1) }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn pool_avx2(pool: &Pool, c0: usize, c1: usize) {
        unsafe { super::pool_channels::<Avx2>(pool, c0, c1) }
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::{AffineArgs, Pool};
    use crate::native::simd::Neon;

    #[target_feature(enable = "neon")]
    pub(super) unsafe fn affine_neon(args: &AffineArgs, start: usize, end: usize) {
        unsafe { super::affine_rows::<Neon>(args, start, end) }
    }

    #[target_feature(enable = "neon")]
    pub(super) unsafe fn pool_neon(pool: &Pool, c0: usize, c1: usize) {
        unsafe { super::pool_channels::<Neon>(pool, c0, c1) }
    }
}
