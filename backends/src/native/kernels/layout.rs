//! Memory movement with no arithmetic worth a SIMD version (the compiler vectorizes the copies):
//! NCHW <-> NHWC transposes at the plan's edges, im2col for dense convolutions that are not
//! 1x1 stride 1, and the element-wise sigmoid of squeeze-excite's gate.

/// NCHW [batch, C, H*W] -> NHWC [batch, H*W, C]; thread `t` takes a share of the pixel rows.
///
/// # Safety
/// Both pointers valid for batch * channels * pixels floats.
pub unsafe fn nchw_to_nhwc(
    batch: usize,
    channels: usize,
    pixels: usize,
    src: *const f32,
    dst: *mut f32,
    t: usize,
    threads: usize,
) {
    let rows = batch * pixels;
    for r in rows * t / threads..rows * (t + 1) / threads {
        let (b, p) = (r / pixels, r % pixels);
        for c in 0..channels {
            unsafe { *dst.add(r * channels + c) = *src.add((b * channels + c) * pixels + p) };
        }
    }
}

/// NHWC -> NCHW; thread `t` takes a share of the channel planes.
///
/// # Safety
/// Both pointers valid for batch * channels * pixels floats.
pub unsafe fn nhwc_to_nchw(
    batch: usize,
    channels: usize,
    pixels: usize,
    src: *const f32,
    dst: *mut f32,
    t: usize,
    threads: usize,
) {
    let planes = batch * channels;
    for plane in planes * t / threads..planes * (t + 1) / threads {
        let (b, c) = (plane / channels, plane % channels);
        for p in 0..pixels {
            unsafe { *dst.add(plane * pixels + p) = *src.add((b * pixels + p) * channels + c) };
        }
    }
}

/// The geometry of a dense convolution lowered to im2col + GEMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Im2col {
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

impl Im2col {
    /// Columns of the patch matrix: K * K * C, in (kh, kw, c) order.
    pub fn patch_len(&self) -> usize {
        self.kernel * self.kernel * self.channels
    }

    pub fn rows(&self) -> usize {
        self.batch * self.out_height * self.out_width
    }
}

/// Writes the patch matrix [rows, K*K*C] of NHWC `src` (zeros in the padding); thread `t`
/// takes a share of the rows.
///
/// # Safety
/// `src` valid for the input, `dst` for rows * patch_len floats.
pub unsafe fn im2col(g: &Im2col, src: *const f32, dst: *mut f32, t: usize, threads: usize) {
    let rows = g.rows();
    let (k, c) = (g.kernel, g.channels);
    for r in rows * t / threads..rows * (t + 1) / threads {
        let b = r / (g.out_height * g.out_width);
        let (y, x) = ((r / g.out_width) % g.out_height, r % g.out_width);
        let patch = unsafe { dst.add(r * g.patch_len()) };
        for kh in 0..k {
            for kw in 0..k {
                let ih = (y * g.stride + kh) as isize - g.padding as isize;
                let iw = (x * g.stride + kw) as isize - g.padding as isize;
                let to = unsafe { patch.add((kh * k + kw) * c) };
                if ih < 0 || iw < 0 || ih as usize >= g.height || iw as usize >= g.width {
                    unsafe { std::ptr::write_bytes(to, 0, c) };
                } else {
                    let from = unsafe {
                        src.add(((b * g.height + ih as usize) * g.width + iw as usize) * c)
                    };
                    unsafe { std::ptr::copy_nonoverlapping(from, to, c) };
                }
            }
        }
    }
}

/// dst = 1 / (1 + exp(-src)) for `len` floats; thread `t` takes a share.
///
/// # Safety
/// `src` and `dst` valid for `len` floats.
pub unsafe fn sigmoid(src: *const f32, dst: *mut f32, len: usize, t: usize, threads: usize) {
    for i in len * t / threads..len * (t + 1) / threads {
        unsafe { *dst.add(i) = 1.0 / (1.0 + (-*src.add(i)).exp()) };
    }
}
