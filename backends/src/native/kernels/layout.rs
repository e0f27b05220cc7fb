//! Memory movement with no arithmetic worth a SIMD version (the compiler vectorizes the copies):
//! NCHW <-> NHWC transposes at the plan's edges, zero padding for dense convolutions (run as
//! implicit GEMMs on the padded source), and the element-wise sigmoid of squeeze-excite's gate.

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

/// dst = 1 / (1 + exp(-src)) for `len` floats; thread `t` takes a share.
///
/// # Safety
/// `src` and `dst` valid for `len` floats.
pub unsafe fn sigmoid(src: *const f32, dst: *mut f32, len: usize, t: usize, threads: usize) {
    for i in len * t / threads..len * (t + 1) / threads {
        unsafe { *dst.add(i) = 1.0 / (1.0 + (-*src.add(i)).exp()) };
    }
}
