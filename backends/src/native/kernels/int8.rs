//! int8 kernels on NHWC uint8 activations, bit for bit what the quantized reference computes:
//! the u8 x i8 GEMM with int32 sums (pointwise and im2col'd convolutions, the classifier), the
//! depthwise convolution, the element-wise add and channel product, and the requantizing
//! epilogue of `models::quantize::Rescale`. A portable version of each beside the AVX512-VNNI
//! ones (`vpdpbusd`: four u8 x i8 products summed into each int32 lane), the AVX-VNNI ones
//! (the same on 8 lanes, for AVX2 CPUs) and the aarch64 dot-product GEMM (SDOT), chosen at run
//! time.

use models::quantize::Rescale;
use models::quantized::add_sum;

use crate::native::simd::Isa;

/// Which int8 kernels run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Int8Isa {
    /// Plain Rust, one value at a time.
    Portable,
    /// AVX-512 (F, BW, VL) with VNNI: 16 int32 lanes, `vpdpbusd` in the GEMM.
    Avx512Vnni,
    /// AVX2 with AVX-VNNI: 8 int32 lanes, the VEX `vpdpbusd` in the GEMM, `vpmaddwd` in the
    /// depthwise.
    AvxVnni,
    /// aarch64 NEON with the dot product (`dotprod`): SDOT in the GEMM; the other kernels are
    /// the portable ones.
    NeonDot,
}

impl Int8Isa {
    pub fn name(self) -> &'static str {
        match self {
            Int8Isa::Portable => "portable",
            Int8Isa::Avx512Vnni => "avx512vnni",
            Int8Isa::AvxVnni => "avxvnni",
            Int8Isa::NeonDot => "neondot",
        }
    }

    /// The int8 kernels that go with the f32 instruction set `isa`: AVX512-VNNI where `isa` is
    /// AVX-512 and the CPU has VNNI; AVX-VNNI where `isa` is AVX2 (or AVX-512 without its VNNI)
    /// and the CPU has it; else the portable ones (NEON has no int8 kernels of its own yet).
    pub fn for_isa(isa: Isa) -> Int8Isa {
        let f32_kernels = isa.f32_kernels();
        if !isa.is_supported() {
            return Int8Isa::Portable;
        }
        if f32_kernels == Isa::Avx512 && Int8Isa::Avx512Vnni.is_supported() {
            return Int8Isa::Avx512Vnni;
        }
        if matches!(f32_kernels, Isa::Avx2 | Isa::Avx512) && Int8Isa::AvxVnni.is_supported() {
            return Int8Isa::AvxVnni;
        }
        if f32_kernels == Isa::Neon && Int8Isa::NeonDot.is_supported() {
            return Int8Isa::NeonDot;
        }
        Int8Isa::Portable
    }

    /// Whether this CPU runs these kernels.
    pub fn is_supported(self) -> bool {
        match self {
            Int8Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Int8Isa::Avx512Vnni => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "x86_64")]
            Int8Isa::AvxVnni => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("avxvnni")
            }
            #[cfg(target_arch = "aarch64")]
            Int8Isa::NeonDot => {
                std::arch::is_aarch64_feature_detected!("neon")
                    && std::arch::is_aarch64_feature_detected!("dotprod")
            }
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Every int8 instruction set this CPU runs, portable first.
    pub fn supported() -> Vec<Int8Isa> {
        [
            Int8Isa::Portable,
            Int8Isa::AvxVnni,
            Int8Isa::Avx512Vnni,
            Int8Isa::NeonDot,
        ]
        .into_iter()
        .filter(|isa| isa.is_supported())
        .collect()
    }
}

/// Channels padded to a multiple of this (one vector of int32 lanes).
pub const LANES: usize = 16;

/// Rounds `n` up to a multiple of `m`.
pub fn round_up(n: usize, m: usize) -> usize {
    n.div_ceil(m) * m
}

/// How int32 sums become output codes, per output channel: the bias added, the rescale
/// applied (`Rescale::apply`: in f32, ties to even), the output zero point added and the clamp
/// to `low..=high`. The vector form of the scales is padded to a multiple of `LANES` channels.
#[derive(Debug, Clone)]
pub struct Requantization {
    pub bias: Vec<i32>,
    rescales: Vec<Rescale>,
    /// Read by the vector kernels only.
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        allow(dead_code)
    )]
    scale: Vec<f32>,
    pub zero_point: i32,
    pub low: i32,
    pub high: i32,
}

impl Requantization {
    /// Per channel: `bias[c]` and `rescale[c]` (one rescale for every channel if only one is
    /// given).
    pub fn new(bias: Vec<i32>, rescale: &[Rescale], zero_point: u8, low: u8, high: u8) -> Self {
        let channels = bias.len();
        let padded = round_up(channels.max(1), LANES);
        let at = |c: usize| {
            rescale[if rescale.len() == 1 || c >= channels {
                0
            } else {
                c
            }]
        };
        let mut bias = bias;
        bias.resize(padded, 0);
        Requantization {
            bias,
            rescales: (0..channels.max(1)).map(at).collect(),
            scale: (0..padded).map(|c| at(c).scale).collect(),
            zero_point: i32::from(zero_point),
            low: i32::from(low),
            high: i32::from(high),
        }
    }

    /// Channel c's code for the sum `acc` (the bias not yet added).
    pub fn code(&self, c: usize, acc: i32) -> u8 {
        let rescale = self.rescales[c.min(self.rescales.len() - 1)];
        store(
            rescale.apply(acc.wrapping_add(self.bias[c])),
            self.zero_point,
            self.low,
            self.high,
        )
    }

    /// The code of an add's value (`models::quantized::add_sum`).
    pub fn add_code(&self, value: i32) -> u8 {
        store(value, self.zero_point, self.low, self.high)
    }
}

/// A rescaled value offset by the zero point and clamped, as the reference stores it.
fn store(value: i32, zero_point: i32, low: i32, high: i32) -> u8 {
    value.saturating_add(zero_point).clamp(low, high) as u8
}

/// GEMM weights packed for `vpdpbusd`: blocks of 16 output channels, each `[k4][16][4]` (four
/// consecutive k of one channel in one int32 lane); k padded to a multiple of 4 and channels
/// to a multiple of 16 with zeros. `column_sums` are each channel's sum of weights (for the
/// input zero point's correction).
#[derive(Debug, Clone)]
pub struct PackedInt8Gemm {
    pub k: usize,
    pub n: usize,
    k4: usize,
    data: Vec<i8>,
    pub column_sums: Vec<i32>,
    /// 128 x each channel's sum of weights, padded to 16 channels: what the SDOT kernel adds
    /// back after reading codes as code - 128.
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    flip_correction: Vec<i32>,
}

impl PackedInt8Gemm {
    /// Packs the k x n matrix whose element (k, n) is `w(k, n)`.
    pub fn pack(k: usize, n: usize, w: impl Fn(usize, usize) -> i8) -> Self {
        let k4 = k.div_ceil(4);
        let blocks = n.div_ceil(LANES);
        let mut data = vec![0i8; blocks * k4 * LANES * 4];
        let mut column_sums = vec![0i32; n];
        for (col, sum) in column_sums.iter_mut().enumerate() {
            let (block, lane) = (col / LANES, col % LANES);
            for row in 0..k {
                let v = w(row, col);
                data[((block * k4 + row / 4) * LANES + lane) * 4 + row % 4] = v;
                *sum += i32::from(v);
            }
        }
        let mut flip_correction: Vec<i32> = column_sums.iter().map(|&s| 128 * s).collect();
        flip_correction.resize(blocks * LANES, 0);
        PackedInt8Gemm {
            k,
            n,
            k4,
            data,
            column_sums,
            flip_correction,
        }
    }

    fn at(&self, row: usize, col: usize) -> i8 {
        let (block, lane) = (col / LANES, col % LANES);
        self.data[((block * self.k4 + row / 4) * LANES + lane) * 4 + row % 4]
    }

    /// Bytes of packed weights.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }
}

/// One GEMM's operands: `m` rows of `a` (k codes each, `lda` apart; reads may run up to 3
/// bytes past a row's k, which the weights' zero padding cancels) into `m` rows of `out`
/// (`ldo` apart, n codes each).
#[derive(Clone, Copy)]
pub struct GemmIo {
    pub a: *const u8,
    pub lda: usize,
    pub m: usize,
    pub out: *mut u8,
    pub ldo: usize,
}

/// Rows per micro-tile and 16-channel blocks per group (6 x 4 accumulators of 16 lanes).
const MR: usize = 6;
const NB: usize = 4;

/// Thread `t`'s share (of `threads`) of the GEMM: tiles of MR rows x NB blocks, groups of
/// channels outermost (a group's weights stay in cache while the rows stream past).
///
/// # Safety
/// `io` must describe buffers that hold what it says (plus 3 readable bytes after the last
/// row of `a`), and no two threads' shares may be run on overlapping outputs.
pub unsafe fn gemm(
    isa: Int8Isa,
    packed: &PackedInt8Gemm,
    req: &Requantization,
    io: &GemmIo,
    t: usize,
    threads: usize,
) {
    let groups = packed.n.div_ceil(LANES * NB);
    let tiles = io.m.div_ceil(MR);
    let items = groups * tiles;
    for item in items * t / threads..items * (t + 1) / threads {
        let (group, tile) = (item / tiles, item % tiles);
        let (m0, n0) = (tile * MR, group * NB * LANES);
        let rows = MR.min(io.m - m0);
        let cols = (NB * LANES).min(packed.n - n0);
        match isa {
            #[cfg(target_arch = "x86_64")]
            Int8Isa::Avx512Vnni => vnni::tile(packed, req, io, (m0, rows), (n0, cols)),
            #[cfg(target_arch = "x86_64")]
            Int8Isa::AvxVnni => avxvnni::tile(packed, req, io, (m0, rows), (n0, cols)),
            #[cfg(target_arch = "aarch64")]
            Int8Isa::NeonDot => neondot::tile(packed, req, io, (m0, rows), (n0, cols)),
            _ => portable_tile(packed, req, io, m0, rows, n0, cols),
        }
    }
}

/// A tile's blocks for kernels of 16-channel blocks and `mr` rows: (first row, rows, first
/// channel, channels), channel blocks outermost so the rows' codes stay in L1 between blocks.
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
fn tile_blocks(
    (m0, rows): (usize, usize),
    (n0, cols): (usize, usize),
    mr: usize,
) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    (n0..n0 + cols).step_by(LANES).flat_map(move |c| {
        let count = (n0 + cols - c).min(LANES);
        (m0..m0 + rows)
            .step_by(mr)
            .map(move |m| (m, mr.min(m0 + rows - m), c, count))
    })
}

unsafe fn portable_tile(
    packed: &PackedInt8Gemm,
    req: &Requantization,
    io: &GemmIo,
    m0: usize,
    rows: usize,
    n0: usize,
    cols: usize,
) {
    for m in m0..m0 + rows {
        let a = std::slice::from_raw_parts(io.a.add(m * io.lda), packed.k);
        for n in n0..n0 + cols {
            let acc = a.iter().enumerate().fold(0i32, |acc, (k, &x)| {
                acc.wrapping_add(i32::from(x) * i32::from(packed.at(k, n)))
            });
            *io.out.add(m * io.ldo + n) = req.code(n, acc);
        }
    }
}

/// The depthwise convolution's weights, `[tap][channel]` as int32 (channels padded to 16),
/// and per channel the input zero point times the sum of its weights (what a window that is
/// wholly inside the input subtracts once instead of per tap).
#[derive(Debug, Clone)]
pub struct PackedInt8Depthwise {
    pub channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    weights: Vec<i32>,
    /// Read by the vector kernels only.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    correction: Vec<i32>,
}

impl PackedInt8Depthwise {
    /// From weights laid out `[channel][ky][kx]`, for an input of zero point `zero_point`.
    pub fn pack(
        channels: usize,
        (kernel, stride, padding): (usize, usize, usize),
        w: &[i8],
        zero_point: i32,
    ) -> Self {
        let padded = round_up(channels, LANES);
        let taps = kernel * kernel;
        let mut weights = vec![0i32; taps * padded];
        let mut correction = vec![0i32; padded];
        for c in 0..channels {
            for tap in 0..taps {
                weights[tap * padded + c] = i32::from(w[c * taps + tap]);
                correction[c] += zero_point * i32::from(w[c * taps + tap]);
            }
        }
        PackedInt8Depthwise {
            channels,
            kernel,
            stride,
            padding,
            weights,
            correction,
        }
    }

    fn padded(&self) -> usize {
        round_up(self.channels, LANES)
    }
}

/// A depthwise convolution's input and output, NHWC codes.
#[derive(Clone, Copy)]
pub struct DepthwiseIo {
    pub x: *const u8,
    pub zero_point: i32,
    pub batch: usize,
    pub hin: usize,
    pub win: usize,
    pub out: *mut u8,
    pub hout: usize,
    pub wout: usize,
}

/// The output columns whose windows lie wholly inside the input (along one axis).
fn interior(out: usize, input: usize, p: &PackedInt8Depthwise) -> std::ops::Range<usize> {
    let first = p.padding.div_ceil(p.stride);
    let end = match (input + p.padding).checked_sub(p.kernel) {
        Some(last_start) => (last_start / p.stride + 1).min(out),
        None => 0,
    };
    first.min(end)..end
}

/// The most bytes of three input rows and one output row for which a depthwise conv slides
/// over whole padded rows (about the L1 data cache).
const PADDED_ROWS_MAX_BYTES: usize = 32 * 1024;

/// Thread `t`'s share of the output rows. Taps outside the input are skipped (real 0);
/// windows wholly inside take the vector kernels' fast path where there is one.
///
/// # Safety
/// `io` must describe NHWC buffers of its sizes and the packed channels, with 16 readable
/// bytes after every pixel's channels.
pub unsafe fn depthwise(
    isa: Int8Isa,
    packed: &PackedInt8Depthwise,
    req: &Requantization,
    io: &DepthwiseIo,
    t: usize,
    threads: usize,
) {
    let rows = io.batch * io.hout;
    let (inside_y, inside_x) = (
        interior(io.hout, io.hin, packed),
        interior(io.wout, io.win, packed),
    );
    let c = packed.channels;
    // A 3x3, stride-1 conv padded by 1 slides over whole rows, borders included, where the
    // rows it reads and writes fit L1 (measured on S0-S4: faster up to 28 KiB of rows, slower
    // from 36 KiB, e.g. S3's 14x14x768, than the per-pixel borders; stride 2 was slower too).
    let padded_3x3 = packed.kernel == 3
        && packed.padding == 1
        && packed.stride == 1
        && 4 * io.win * c <= PADDED_ROWS_MAX_BYTES;
    for r in rows * t / threads..rows * (t + 1) / threads {
        let (b, oy) = (r / io.hout, r % io.hout);
        let x = io.x.add(b * io.hin * io.win * c);
        let out = io.out.add((b * io.hout + oy) * io.wout * c);
        #[cfg(target_arch = "x86_64")]
        if padded_3x3 && isa == Int8Isa::Avx512Vnni {
            let rows: [Option<*const u8>; 3] = std::array::from_fn(|ky| {
                let iy = (oy + ky).checked_sub(1);
                Some(x.add(iy.filter(|&iy| iy < io.hin)? * io.win * c))
            });
            vnni::depthwise_padded_3x3_row(packed, req, io, rows, out);
            continue;
        }
        let _ = padded_3x3;
        let span = match (isa, inside_y.contains(&oy)) {
            (Int8Isa::Avx512Vnni | Int8Isa::AvxVnni, true) => inside_x.clone(),
            _ => 0..0,
        };
        for ox in (0..io.wout).filter(|ox| !span.contains(ox)) {
            let taps = valid_taps(packed, io, oy, ox);
            let out = out.add(ox * c);
            match isa {
                #[cfg(target_arch = "x86_64")]
                Int8Isa::Avx512Vnni => vnni::depthwise_pixel(packed, req, io, x, &taps, out),
                #[cfg(target_arch = "x86_64")]
                Int8Isa::AvxVnni => avxvnni::depthwise_pixel(packed, req, io, x, &taps, out),
                _ => portable_depthwise_pixel(packed, req, io, x, &taps, out),
            }
        }
        #[cfg(target_arch = "x86_64")]
        if !span.is_empty() {
            let (iy, ix) = (
                oy * packed.stride - packed.padding,
                span.start * packed.stride - packed.padding,
            );
            let first = x.add((iy * io.win + ix) * c);
            let (count, out) = (span.len(), out.add(span.start * c));
            match isa {
                Int8Isa::AvxVnni => avxvnni::depthwise_span(packed, req, io.win, first, count, out),
                _ => vnni::depthwise_span(packed, req, io.win, first, count, out),
            }
        }
    }
}

/// The taps of output pixel (oy, ox) that land inside the input: (tap, input pixel index).
fn valid_taps(p: &PackedInt8Depthwise, io: &DepthwiseIo, oy: usize, ox: usize) -> TapList {
    let mut list = TapList::default();
    for ky in 0..p.kernel {
        let Some(iy) = (oy * p.stride + ky).checked_sub(p.padding) else {
            continue;
        };
        if iy >= io.hin {
            continue;
        }
        for kx in 0..p.kernel {
            let Some(ix) = (ox * p.stride + kx).checked_sub(p.padding) else {
                continue;
            };
            if ix < io.win {
                list.push(ky * p.kernel + kx, iy * io.win + ix);
            }
        }
    }
    list
}

/// The most taps a depthwise kernel may have (7x7); the plan refuses larger kernels.
pub const MAX_TAPS: usize = 49;

/// The valid taps of one output pixel, without allocating.
struct TapList {
    taps: [(usize, usize); MAX_TAPS],
    len: usize,
}

impl Default for TapList {
    fn default() -> Self {
        TapList {
            taps: [(0, 0); MAX_TAPS],
            len: 0,
        }
    }
}

impl TapList {
    fn push(&mut self, tap: usize, pixel: usize) {
        self.taps[self.len] = (tap, pixel);
        self.len += 1;
    }

    fn as_slice(&self) -> &[(usize, usize)] {
        &self.taps[..self.len]
    }
}

unsafe fn portable_depthwise_pixel(
    p: &PackedInt8Depthwise,
    req: &Requantization,
    io: &DepthwiseIo,
    x: *const u8,
    taps: &TapList,
    out: *mut u8,
) {
    let padded = p.padded();
    for c in 0..p.channels {
        let acc = taps.as_slice().iter().fold(0i32, |acc, &(tap, pixel)| {
            let q = i32::from(*x.add(pixel * p.channels + c)) - io.zero_point;
            acc + p.weights[tap * padded + c] * q
        });
        *out.add(c) = req.code(c, acc);
    }
}

/// The most inputs an add may have (the plan keeps their pointers on the stack).
pub const MAX_ADD_INPUTS: usize = 8;

/// An element-wise add's inputs (each code's zero point and multiplier, its scale over the
/// output's), and the output's zero point and clamp (`output`'s scales are unused).
#[derive(Debug, Clone)]
pub struct AddParams {
    pub inputs: Vec<(i32, Rescale)>,
    pub output: Requantization,
}

/// Thread `t`'s share of an add of `len` codes from each of `inputs` (at most
/// `MAX_ADD_INPUTS`) into `out`.
///
/// # Safety
/// Every pointer must hold `len` codes (plus 16 readable bytes after them).
pub unsafe fn add(
    isa: Int8Isa,
    params: &AddParams,
    inputs: &[*const u8],
    out: *mut u8,
    len: usize,
    t: usize,
    threads: usize,
) {
    let blocks = len.div_ceil(LANES);
    let start = blocks * t / threads * LANES;
    let end = (blocks * (t + 1) / threads * LANES).min(len);
    match isa {
        #[cfg(target_arch = "x86_64")]
        Int8Isa::Avx512Vnni => vnni::add(params, inputs, out, start..end),
        #[cfg(target_arch = "x86_64")]
        Int8Isa::AvxVnni => avxvnni::add(params, inputs, out, start..end),
        _ => {
            for j in start..end {
                let terms = inputs.iter().zip(&params.inputs);
                let value = add_sum(terms.map(|(x, (z, r))| (i32::from(*x.add(j)) - z, *r)));
                *out.add(j) = params.output.add_code(value);
            }
        }
    }
}

/// x [N, H, W, C] and its zero point; the gate [N, C] (or [N, 1]: `gate.2` is its channels)
/// and its zero point.
pub type ChannelMulIo = ((*const u8, i32), (*const u8, i32, usize));

/// Thread `t`'s share of x times gate: (x - zx)(g - zg) requantized into `out`.
///
/// # Safety
/// `x` and `out` hold `batch * area * channels` codes (plus 16 readable bytes), the gate
/// `batch * gate_channels`.
pub unsafe fn channel_mul(
    isa: Int8Isa,
    req: &Requantization,
    (x, gate): ChannelMulIo,
    out: *mut u8,
    (batch, area, channels): (usize, usize, usize),
    t: usize,
    threads: usize,
) {
    let rows = batch * area;
    for r in rows * t / threads..rows * (t + 1) / threads {
        let g = (gate.0.add(r / area * gate.2), gate.1, gate.2 == 1);
        let (xr, or) = ((x.0.add(r * channels), x.1), out.add(r * channels));
        match isa {
            #[cfg(target_arch = "x86_64")]
            Int8Isa::Avx512Vnni => vnni::channel_mul_row(req, xr, g, or, channels),
            #[cfg(target_arch = "x86_64")]
            Int8Isa::AvxVnni => avxvnni::channel_mul_row(req, xr, g, or, channels),
            _ => {
                for c in 0..channels {
                    let gc = i32::from(*g.0.add(if g.2 { 0 } else { c })) - g.1;
                    let product = (i32::from(*xr.0.add(c)) - xr.1) * gc;
                    *or.add(c) = req.code(0, product);
                }
            }
        }
    }
}

/// Thread `t`'s share (by channel) of the mean over each image's `area` pixels of NHWC
/// codes: the sum of (q - zero point) per channel, requantized, into `out` [N, C].
///
/// # Safety
/// `x` holds `batch * area * channels` codes and `out` `batch * channels`.
pub unsafe fn mean(
    req: &Requantization,
    (x, zero_point): (*const u8, i32),
    out: *mut u8,
    (batch, area, channels): (usize, usize, usize),
    t: usize,
    threads: usize,
) {
    const CHUNK: usize = 64;
    let (c0, c1) = (channels * t / threads, channels * (t + 1) / threads);
    for b in 0..batch {
        for start in (c0..c1).step_by(CHUNK) {
            let width = CHUNK.min(c1 - start);
            let mut sums = [0i32; CHUNK];
            for p in 0..area {
                let row =
                    std::slice::from_raw_parts(x.add((b * area + p) * channels + start), width);
                for (sum, &q) in sums.iter_mut().zip(row) {
                    *sum += i32::from(q) - zero_point;
                }
            }
            for (c, &sum) in (start..start + width).zip(&sums) {
                *out.add(b * channels + c) = req.code(0, sum);
            }
        }
    }
}

/// `plane` quantized as `models::quantize::ActivationQuant::quantize` does, into `out`.
pub fn quantize_plane(
    isa: Int8Isa,
    quant: models::quantize::ActivationQuant,
    plane: &[f32],
    out: &mut [u8],
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Int8Isa::Avx512Vnni => unsafe { vnni::quantize(quant, plane, out) },
        #[cfg(target_arch = "x86_64")]
        Int8Isa::AvxVnni => unsafe { avxvnni::quantize(quant, plane, out) },
        _ => {
            for (q, &v) in out.iter_mut().zip(plane) {
                *q = quant.quantize(v);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avxvnni;
#[cfg(target_arch = "aarch64")]
mod neondot;
#[cfg(target_arch = "x86_64")]
mod vnni;

#[cfg(test)]
mod tests;
