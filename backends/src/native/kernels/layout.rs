//! Memory movement with no arithmetic worth a SIMD version (the compiler vectorizes the copies):
//! NCHW <-> NHWC transposes at the plan's edges, zero padding for dense convolutions (run as
//! implicit GEMMs on the padded source), channel copies (concat, slice, shuffle), max pooling,
//! and the element-wise activations and maximum.

use super::depthwise::DepthwiseShape;

/// A batched transpose: `src` is [batch, rows, cols] and `dst` becomes [batch, cols, rows]
/// (NCHW -> NHWC with rows = C, cols = H*W; NHWC -> NCHW the other way round). Thread `t` takes
/// a share of the destination rows.
///
/// # Safety
/// Both pointers valid for batch * rows * cols floats.
pub unsafe fn transpose(
    batch: usize,
    rows: usize,
    cols: usize,
    src: *const f32,
    dst: *mut f32,
    t: usize,
    threads: usize,
) {
    let out_rows = batch * cols;
    for r in out_rows * t / threads..out_rows * (t + 1) / threads {
        let (b, col) = (r / cols, r % cols);
        for row in 0..rows {
            unsafe { *dst.add(r * rows + row) = *src.add((b * rows + row) * cols + col) };
        }
    }
}

/// A zero border around images: `planes` planes of height x width pixels of `pixel` floats
/// (NCHW: one plane per image and channel, pixel 1; NHWC: one per image, pixel C).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pad {
    pub planes: usize,
    pub height: usize,
    pub width: usize,
    pub pixel: usize,
    pub padding: usize,
}

impl Pad {
    pub fn padded_height(&self) -> usize {
        self.height + 2 * self.padding
    }

    pub fn padded_width(&self) -> usize {
        self.width + 2 * self.padding
    }

    pub fn padded_len(&self) -> usize {
        self.planes * self.padded_height() * self.padded_width() * self.pixel
    }
}

/// Copies `src` into the middle of `dst` and zeroes the border (every run: the buffer is
/// shared with other values); thread `t` takes a share of the padded rows.
///
/// # Safety
/// `src` valid for the unpadded images, `dst` for `g.padded_len()` floats.
pub unsafe fn pad(g: &Pad, src: *const f32, dst: *mut f32, t: usize, threads: usize) {
    let (hp, row) = (g.padded_height(), g.padded_width() * g.pixel);
    let rows = g.planes * hp;
    for r in rows * t / threads..rows * (t + 1) / threads {
        let (plane, y) = (r / hp, r % hp);
        let out = unsafe { dst.add(r * row) };
        if y < g.padding || y >= g.padding + g.height {
            unsafe { std::ptr::write_bytes(out, 0, row) };
            continue;
        }
        let edge = g.padding * g.pixel;
        let inner = g.width * g.pixel;
        let from = unsafe { src.add((plane * g.height + y - g.padding) * inner) };
        unsafe {
            std::ptr::write_bytes(out, 0, edge);
            std::ptr::copy_nonoverlapping(from, out.add(edge), inner);
            std::ptr::write_bytes(out.add(edge + inner), 0, edge);
        }
    }
}

/// An element-wise activation the native backend runs as its own pass (ReLU is fused instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unary {
    Relu,
    Relu6,
    Sigmoid,
    HardSigmoid,
    HardSwish,
    Silu,
    Gelu,
}

impl Unary {
    pub fn name(self) -> &'static str {
        match self {
            Unary::Relu => "relu",
            Unary::Relu6 => "relu6",
            Unary::Sigmoid => "sigmoid",
            Unary::HardSigmoid => "hard-sigmoid",
            Unary::HardSwish => "hard-swish",
            Unary::Silu => "silu",
            Unary::Gelu => "gelu",
        }
    }
}

#[inline(always)]
fn sigmoid_f32(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

#[inline(always)]
fn hard_sigmoid_f32(v: f32) -> f32 {
    (v + 3.0).clamp(0.0, 6.0) * (1.0 / 6.0)
}

/// dst = f(src) for `len` floats; thread `t` takes a share.
///
/// # Safety
/// `src` and `dst` valid for `len` floats (they may be the same buffer).
pub unsafe fn unary(
    op: Unary,
    src: *const f32,
    dst: *mut f32,
    len: usize,
    t: usize,
    threads: usize,
) {
    let range = len * t / threads..len * (t + 1) / threads;
    unsafe {
        match op {
            Unary::Relu => map(src, dst, range, |v| v.max(0.0)),
            Unary::Relu6 => map(src, dst, range, |v| v.clamp(0.0, 6.0)),
            Unary::Sigmoid => map(src, dst, range, sigmoid_f32),
            Unary::HardSigmoid => map(src, dst, range, hard_sigmoid_f32),
            Unary::HardSwish => map(src, dst, range, |v| v * hard_sigmoid_f32(v)),
            Unary::Silu => map(src, dst, range, |v| v * sigmoid_f32(v)),
            Unary::Gelu => map(src, dst, range, |v| {
                0.5 * v * (1.0 + libm::erff(v * std::f32::consts::FRAC_1_SQRT_2))
            }),
        }
    }
}

#[inline(always)]
unsafe fn map(
    src: *const f32,
    dst: *mut f32,
    range: std::ops::Range<usize>,
    f: impl Fn(f32) -> f32,
) {
    for i in range {
        unsafe { *dst.add(i) = f(*src.add(i)) };
    }
}

/// dst = max(a, b) element-wise over `len` floats; thread `t` takes a share. `dst` may be
/// `a` (an n-way max folds further inputs into the running result).
///
/// # Safety
/// Every pointer valid for `len` floats.
pub unsafe fn maximum(
    a: *const f32,
    b: *const f32,
    dst: *mut f32,
    len: usize,
    t: usize,
    threads: usize,
) {
    for i in len * t / threads..len * (t + 1) / threads {
        unsafe { *dst.add(i) = (*a.add(i)).max(*b.add(i)) };
    }
}

/// Channel runs copied per pixel between NHWC tensors: for every one of `rows` pixels,
/// `len` floats from channel `from` of `src` to channel `to` of `dst`, for each run. A concat
/// input or a slice is one run; a channel shuffle is one run per channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelCopy {
    pub rows: usize,
    pub src_channels: usize,
    pub dst_channels: usize,
    /// (from, to, len)
    pub runs: Vec<(usize, usize, usize)>,
}

/// # Safety
/// `src` valid for rows x src_channels floats, `dst` for rows x dst_channels.
pub unsafe fn copy_channels(
    g: &ChannelCopy,
    src: *const f32,
    dst: *mut f32,
    t: usize,
    threads: usize,
) {
    for r in g.rows * t / threads..g.rows * (t + 1) / threads {
        for &(from, to, len) in &g.runs {
            unsafe {
                std::ptr::copy_nonoverlapping(
                    src.add(r * g.src_channels + from),
                    dst.add(r * g.dst_channels + to),
                    len,
                )
            };
        }
    }
}

/// dst[b, c] = src[b] for `channels` channels: a per-image scalar made per-channel.
///
/// # Safety
/// `src` valid for `batch` floats, `dst` for batch x channels.
pub unsafe fn broadcast(batch: usize, channels: usize, src: *const f32, dst: *mut f32) {
    for b in 0..batch {
        for c in 0..channels {
            unsafe { *dst.add(b * channels + c) = *src.add(b) };
        }
    }
}

/// Max over each window of an NHWC tensor (padding never wins); thread `t` takes output rows.
/// The window geometry is the depthwise conv's (a max pool is a depthwise window op).
///
/// # Safety
/// `src` valid for the input, `dst` for the output.
pub unsafe fn max_pool(
    g: &DepthwiseShape,
    src: *const f32,
    dst: *mut f32,
    t: usize,
    threads: usize,
) {
    let rows = g.batch * g.out_height;
    let ch = g.channels;
    for r in rows * t / threads..rows * (t + 1) / threads {
        let (b, oy) = (r / g.out_height, r % g.out_height);
        for ox in 0..g.out_width {
            let out =
                unsafe { std::slice::from_raw_parts_mut(dst.add((r * g.out_width + ox) * ch), ch) };
            out.fill(f32::NEG_INFINITY);
            for ky in 0..g.kernel {
                let iy = (oy * g.stride + ky) as isize - g.padding as isize;
                if iy < 0 || iy as usize >= g.height {
                    continue;
                }
                for kx in 0..g.kernel {
                    let ix = (ox * g.stride + kx) as isize - g.padding as isize;
                    if ix < 0 || ix as usize >= g.width {
                        continue;
                    }
                    let pixel = (b * g.height + iy as usize) * g.width + ix as usize;
                    let input = unsafe { std::slice::from_raw_parts(src.add(pixel * ch), ch) };
                    for (o, &v) in out.iter_mut().zip(input) {
                        *o = if v > *o { v } else { *o };
                    }
                }
            }
        }
    }
}
