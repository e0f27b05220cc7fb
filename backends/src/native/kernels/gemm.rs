//! Pointwise (1x1) convolution, im2col'd dense convolution and the linear layer, as one GEMM:
//! C[M, N] (=|+=) A[M, K] · B[K, N] + bias, then an optional ReLU. B (the weights) is packed
//! once into panels of NR columns; a register-blocked MR x NR micro-kernel walks the whole K.
//! In bf16 on AVX512_BF16, B is packed as bf16 pairs (k, k+1) per column and A is bf16 rows,
//! and `vdpbf16ps` does two products per float lane, summed in f32. In fp16 (AVX512-FP16,
//! aarch64 FP16), B and A are fp16 and the sums too (`vfmadd231ph`, `fmla .8h`: twice the
//! lanes of f32), widened to f32 for the bias-and-ReLU epilogue.

use crate::native::simd::{Bf16, Elem, Isa, Scalar, Simd, Storage};
use crate::native::AlignedBuffer;

/// Largest panel width of any instantiation (the micro-kernel's tail buffer is this wide).
const MAX_NR: usize = 64;

/// The fp16 kernels sum this many products in fp16, then add the block's sums in f32.
const FP16_BLOCK: usize = 64;

/// The shape of one micro-kernel: MR rows by NV vectors of the ISA's width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileShape {
    pub mr: usize,
    pub nr: usize,
}

/// The tile shapes of the fp16 kernels (NR in fp16 columns), widest panel first; none where
/// the instruction set has no fp16 arithmetic.
pub fn fp16_tile_shapes(isa: Isa) -> &'static [TileShape] {
    match isa.f32_kernels() {
        // At most 16 accumulators: LLVM gives the outputs of inline assembly zmm0-15 only.
        Isa::Avx512 => &[TileShape { mr: 8, nr: 64 }, TileShape { mr: 14, nr: 32 }],
        Isa::Neon => &[TileShape { mr: 6, nr: 32 }, TileShape { mr: 8, nr: 16 }],
        _ => &[],
    }
}

/// The tile shapes each instruction set has, widest panel first.
pub fn tile_shapes(isa: Isa) -> &'static [TileShape] {
    match isa.f32_kernels() {
        Isa::Avx512 => &[
            TileShape { mr: 6, nr: 64 },
            TileShape { mr: 8, nr: 48 },
            TileShape { mr: 12, nr: 32 },
            TileShape { mr: 14, nr: 16 },
        ],
        Isa::Avx2 => &[TileShape { mr: 6, nr: 16 }, TileShape { mr: 8, nr: 8 }],
        Isa::Neon => &[TileShape { mr: 6, nr: 16 }, TileShape { mr: 8, nr: 8 }],
        Isa::Portable => &[TileShape { mr: 4, nr: 8 }],
        Isa::Avx512Bf16 | Isa::NeonBf16 => unreachable!("f32_kernels maps it to its base"),
    }
}

/// The tile shape for `n` output columns: the widest panel that wastes at most 3% of the work
/// on padding, else the one that wastes least.
pub fn choose_tile(isa: Isa, n: usize) -> TileShape {
    choose_among(tile_shapes(isa), n)
}

fn choose_among(shapes: &[TileShape], n: usize) -> TileShape {
    let efficiency = |s: &TileShape| n as f64 / (n.div_ceil(s.nr) * s.nr) as f64;
    shapes
        .iter()
        .find(|s| efficiency(s) >= 0.97)
        .or_else(|| {
            shapes
                .iter()
                .max_by(|a, b| efficiency(a).total_cmp(&efficiency(b)))
        })
        .copied()
        .expect("every isa has a tile shape")
}

/// How a packed B holds its weights, and so what A the kernel reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// f32 per column and k; A is f32 (at bf16, both hold bf16-rounded values).
    F32,
    /// bf16 pairs (k, k+1) per column; A is bf16 rows (lda in bf16 values, even): the dot
    /// kernel.
    Bf16Pairs,
    /// fp16 per column and k; A is fp16 (lda in fp16 values): the fp16 FMA kernel.
    Fp16,
}

impl Packing {
    /// Whether A is read as 16-bit values rather than floats.
    pub fn sixteen_bit_a(self) -> bool {
        self != Packing::F32
    }

    /// Columns of B per 32-bit word of a panel.
    fn columns_per_word(self) -> usize {
        match self {
            Packing::Fp16 => 2,
            _ => 1,
        }
    }
}

/// Weights packed for the micro-kernel: panel p holds columns [p*NR, p*NR+NR) for every k,
/// NR floats per k, zero-padded past N; the bias is zero-padded to whole panels. Packed as
/// bf16 pairs, a panel holds per pair of k (k, k+1) NR columns of two bf16 values each (the
/// same NR floats of storage), zero-padded past K; as fp16, NR fp16 values per k.
pub struct PackedGemm {
    pub k: usize,
    pub n: usize,
    pub tile: TileShape,
    pub isa: Isa,
    pub packing: Packing,
    panels: AlignedBuffer,
    bias: AlignedBuffer,
}

impl PackedGemm {
    /// Packs B given as `b(k, n)` (any layout) and an optional bias of length n.
    pub fn pack(
        isa: Isa,
        k: usize,
        n: usize,
        b: impl Fn(usize, usize) -> f32,
        bias: Option<&[f32]>,
    ) -> Self {
        // AVX512_BF16 keeps an instantiation of its own (its bf16 stores of C round in one
        // instruction); any other bf16 extension runs its base set's f32 kernels.
        let isa = match isa {
            Isa::Avx512Bf16 => isa,
            other => other.f32_kernels(),
        };
        let tile = choose_tile(isa, n);
        Self::with_panels(isa, tile, (k, n, k), Packing::F32, b, bias)
    }

    /// Packs B as fp16 for the fp16 kernel (`isa` must have fp16 arithmetic); each weight is
    /// rounded to fp16 (ties to even).
    pub fn pack_fp16(
        isa: Isa,
        k: usize,
        n: usize,
        b: impl Fn(usize, usize) -> f32,
        bias: Option<&[f32]>,
    ) -> Self {
        assert!(isa.has_fp16_arith(), "{isa} has no fp16 arithmetic");
        let half = |kk, col: usize| match col < n {
            true => u32::from(half::f16::from_f32(b(kk, col)).to_bits()),
            false => 0,
        };
        let pair = |kk, col| f32::from_bits(half(kk, col) | half(kk, col + 1) << 16);
        let tile = choose_among(fp16_tile_shapes(isa), n);
        Self::with_panels(
            isa.f32_kernels(),
            tile,
            (k, n, k),
            Packing::Fp16,
            pair,
            bias,
        )
    }

    /// Packs B as bf16 pairs for the AVX512_BF16 dot kernel (`isa` must have it); each
    /// weight is rounded to bf16 (ties to even).
    pub fn pack_bf16_pairs(
        isa: Isa,
        k: usize,
        n: usize,
        b: impl Fn(usize, usize) -> f32,
        bias: Option<&[f32]>,
    ) -> Self {
        assert!(isa.has_bf16_dot(), "{isa} has no bf16 dot product");
        let half = |kk: usize, col| match kk < k {
            true => u32::from(bf16_bits(b(kk, col))),
            false => 0,
        };
        let pair = |kp: usize, col| f32::from_bits(half(2 * kp, col) | half(2 * kp + 1, col) << 16);
        let isa = isa.f32_kernels();
        let tile = choose_tile(isa, n);
        let rows = (k, n, k.div_ceil(2));
        Self::with_panels(isa, tile, rows, Packing::Bf16Pairs, pair, bias)
    }

    /// Panels of NR columns of `rows` words each (`word(row, first column of the word)`),
    /// zero past N.
    fn with_panels(
        isa: Isa,
        tile: TileShape,
        (k, n, rows): (usize, usize, usize),
        packing: Packing,
        word: impl Fn(usize, usize) -> f32,
        bias: Option<&[f32]>,
    ) -> Self {
        let per_word = packing.columns_per_word();
        let words = tile.nr / per_word;
        let panels_n = n.div_ceil(tile.nr);
        let mut panels = AlignedBuffer::zeros(panels_n * rows * words);
        let data = panels.as_mut_slice();
        for p in 0..panels_n {
            let cols = tile.nr.min(n - p * tile.nr);
            for r in 0..rows {
                for j in 0..cols.div_ceil(per_word) {
                    data[(p * rows + r) * words + j] = word(r, p * tile.nr + j * per_word);
                }
            }
        }
        let mut padded_bias = AlignedBuffer::zeros(panels_n * tile.nr);
        if let Some(bias) = bias {
            padded_bias.as_mut_slice()[..n].copy_from_slice(bias);
        }
        Self {
            k,
            n,
            tile,
            isa,
            packing,
            panels,
            bias: padded_bias,
        }
    }

    /// The kernel's name in plan descriptions: the ISA, and the 16-bit arithmetic if any.
    pub fn kernel_name(&self) -> String {
        match self.packing {
            Packing::F32 => self.isa.to_string(),
            Packing::Bf16Pairs => format!("{}bf16 bf16-dot", self.isa),
            Packing::Fp16 => format!("{} fp16-fma", self.isa),
        }
    }

    pub fn panels(&self) -> usize {
        self.n.div_ceil(self.tile.nr)
    }

    /// Floats of storage per panel.
    fn panel_len(&self) -> usize {
        let rows = match self.packing {
            Packing::Bf16Pairs => self.k.div_ceil(2),
            _ => self.k,
        };
        rows * self.tile.nr / self.packing.columns_per_word()
    }
}

pub use crate::native::simd::bf16_bits;

/// Where a GEMM reads A and writes C, and what it does at the end.
#[derive(Clone, Copy)]
pub struct GemmArgs {
    pub m: usize,
    pub a: *const f32,
    pub lda: usize,
    pub c: *mut f32,
    pub ldc: usize,
    /// Add into C instead of overwriting it (a branch of a summed multi-branch block).
    pub accumulate: bool,
    pub relu: bool,
    /// How C is stored: floats, or bf16 values (`ldc` then counts bf16 values).
    pub c_storage: Storage,
}

/// A dense convolution as an implicit GEMM: output pixel (y, x) is GEMM row y*OW + x, and its
/// patch element kk lies at `row_base(y, x) + offsets[kk]` in a (padded) source, so no patch
/// matrix is written. The source may be NCHW (the graph input) or NHWC.
pub struct ConvGeometry {
    pub batch: usize,
    pub out_height: usize,
    pub out_width: usize,
    /// Floats between consecutive images of the source.
    pub image_stride: usize,
    /// Floats between the first elements of the patches of vertically adjacent output pixels.
    pub row_stride: usize,
    /// Floats between the first elements of the patches of horizontally adjacent output pixels.
    pub col_stride: usize,
    /// Offset of each patch element from the patch's first element, in packed-K order.
    pub offsets: Vec<usize>,
}

/// `a` advanced by `elements` values of A as the packing reads it (floats or 16-bit values).
///
/// # Safety
/// The result stays inside A's buffer.
unsafe fn a_at(packing: Packing, a: *const f32, elements: usize) -> *const f32 {
    match packing.sixteen_bit_a() {
        true => unsafe { (a as *const u16).add(elements) as *const f32 },
        false => unsafe { a.add(elements) },
    }
}

/// `c` advanced by `elements` values of C in its storage.
///
/// # Safety
/// The result stays inside C's buffer.
unsafe fn c_at(storage: Storage, c: *mut f32, elements: usize) -> *mut f32 {
    match storage {
        Storage::Bf16 => unsafe { (c as *mut u16).add(elements) as *mut f32 },
        Storage::F32 => unsafe { c.add(elements) },
    }
}

/// Runs thread `t`'s share of a convolution lowered to an implicit GEMM; the epilogue is
/// (accumulate into C, ReLU, C's storage). The source is in A's format (fp16 for the fp16
/// kernel).
///
/// # Safety
/// `src` valid for the geometry's source, `c` for batch x OH x OW rows of N floats; the CPU
/// supports `packed.isa`.
pub unsafe fn conv(
    packed: &PackedGemm,
    g: &ConvGeometry,
    src: *const f32,
    c: *mut f32,
    (accumulate, relu, c_storage): (bool, bool, Storage),
    t: usize,
    threads: usize,
) {
    let rows = g.batch * g.out_height;
    let jobs = rows * packed.panels();
    let n = packed.n;
    for job in jobs * t / threads..jobs * (t + 1) / threads {
        let (row, panel) = (job / packed.panels(), job % packed.panels());
        let (b, y) = (row / g.out_height, row % g.out_height);
        let args = GemmArgs {
            m: g.out_width,
            a: unsafe { a_at(packed.packing, src, b * g.image_stride + y * g.row_stride) },
            lda: g.col_stride,
            c: unsafe { c_at(c_storage, c, row * g.out_width * n) },
            ldc: n,
            accumulate,
            relu,
            c_storage,
        };
        unsafe { gemm_rows(packed, &args, panel, 0, g.out_width, g.offsets.as_ptr()) };
    }
}

/// Rows per unit of work handed to a thread (a whole number of micro-tiles).
fn rows_per_job(tile: TileShape) -> usize {
    tile.mr * 8
}

/// Runs thread `t`'s share (of `threads`) of C = A·B.
///
/// # Safety
/// A must be valid for M rows of K floats at stride lda, C for M rows of N floats at stride
/// ldc, and the threads' shares of C are disjoint; the CPU must support `packed.isa`.
pub unsafe fn gemm(packed: &PackedGemm, args: GemmArgs, t: usize, threads: usize) {
    let block_rows = rows_per_job(packed.tile);
    let jobs_m = args.m.div_ceil(block_rows);
    if jobs_m >= 2 * threads && args.m >= packed.n {
        // More activations than weights: each thread takes an equal run of whole micro-tile
        // rows (all panels), so the next layer, split by rows too, finds its rows in its own
        // core's cache.
        let mr = packed.tile.mr;
        let tiles = args.m.div_ceil(mr);
        let r0 = (tiles * t / threads * mr).min(args.m);
        let r1 = (tiles * (t + 1) / threads * mr).min(args.m);
        let mut b0 = r0;
        while b0 < r1 {
            let b1 = (b0 + block_rows).min(r1);
            for panel in 0..packed.panels() {
                unsafe { gemm_rows(packed, &args, panel, b0, b1, std::ptr::null()) };
            }
            b0 = b1;
        }
        return;
    }
    // More weights than activations (the later stages, matrix-vector products): split by
    // panels, so each core streams only its share of the weights.
    let jobs = jobs_m * packed.panels();
    for job in jobs * t / threads..jobs * (t + 1) / threads {
        let (block, panel) = (job % jobs_m, job / jobs_m);
        unsafe { gemm_job(packed, &args, panel, block) };
    }
}

unsafe fn gemm_job(packed: &PackedGemm, args: &GemmArgs, panel: usize, block: usize) {
    let rows = rows_per_job(packed.tile);
    let (r0, r1) = (block * rows, ((block + 1) * rows).min(args.m));
    unsafe { gemm_rows(packed, args, panel, r0, r1, std::ptr::null()) }
}

/// Rows [r0, r1) of one panel; `offsets` (null for a plain GEMM) makes A indirect.
unsafe fn gemm_rows(
    packed: &PackedGemm,
    args: &GemmArgs,
    panel: usize,
    r0: usize,
    r1: usize,
    offsets: *const usize,
) {
    let TileShape { mr, nr } = packed.tile;
    let n0 = panel * nr;
    let job = Job {
        k: packed.k,
        b: unsafe { packed.panels.as_ptr().add(panel * packed.panel_len()) },
        bias: unsafe { packed.bias.as_ptr().add(n0) },
        n: (packed.n - n0).min(nr),
        lda: args.lda,
        ldc: args.ldc,
        accumulate: args.accumulate,
        relu: args.relu,
        offsets,
    };
    let mut r = r0;
    while r < r1 {
        // A leftover of one or two rows (or a matrix-vector product) runs the one-row kernel,
        // which costs a fraction of a full tile.
        let single_rows = r1 - r <= 2.min(mr - 1);
        let m = if single_rows { 1 } else { (r1 - r).min(mr) };
        let c = unsafe { c_at(args.c_storage, args.c, r * args.ldc + n0) };
        let a = unsafe { a_at(packed.packing, args.a, r * args.lda) };
        let tile = packed.tile;
        // C's storage is a type of the kernel (a run-time choice inside it spilled its
        // accumulators: 2.8x slower).
        let (isa, one) = (packed.isa, single_rows);
        let c16 = c as *mut Bf16;
        unsafe {
            match (packed.packing, args.c_storage) {
                (Packing::F32, Storage::F32) => dispatch_tile(isa, tile, one, &job, a, c, m),
                (Packing::F32, Storage::Bf16) => dispatch_tile(isa, tile, one, &job, a, c16, m),
                (Packing::Bf16Pairs, Storage::F32) => dispatch_bf16_tile(tile, one, &job, a, c, m),
                (Packing::Bf16Pairs, Storage::Bf16) => {
                    dispatch_bf16_tile(tile, one, &job, a, c16, m)
                }
                (Packing::Fp16, Storage::F32) => dispatch_fp16_tile(isa, tile, one, &job, a, c, m),
                (Packing::Fp16, Storage::Bf16) => {
                    unreachable!("fp16 plans store activations as floats")
                }
            }
        }
        r += m;
    }
}

/// One panel's invariants for the micro-kernel.
struct Job {
    k: usize,
    b: *const f32,
    bias: *const f32,
    n: usize,
    lda: usize,
    ldc: usize,
    accumulate: bool,
    relu: bool,
    /// Null: row i, element kk at a + i*lda + kk. Otherwise at a + i*lda + offsets[kk].
    offsets: *const usize,
}

unsafe fn dispatch_tile<E: Elem>(
    isa: Isa,
    shape: TileShape,
    single: bool,
    job: &Job,
    a: *const f32,
    c: *mut E,
    m: usize,
) {
    unsafe {
        match (isa, shape.mr, shape.nr, single) {
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512Bf16, _, 64, true) => avx512dot::tile::<1, 4, E>(job, a, c, m),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512Bf16, _, 64, false) => avx512dot::tile::<6, 4, E>(job, a, c, m),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512Bf16, _, 48, true) => avx512dot::tile::<1, 3, E>(job, a, c, m),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512Bf16, _, 48, false) => avx512dot::tile::<8, 3, E>(job, a, c, m),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512Bf16, _, 32, true) => avx512dot::tile::<1, 2, E>(job, a, c, m),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512Bf16, _, 32, false) => avx512dot::tile::<12, 2, E>(job, a, c, m),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512Bf16, _, 16, true) => avx512dot::tile::<1, 1, E>(job, a, c, m),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512Bf16, _, 16, false) => avx512dot::tile::<14, 1, E>(job, a, c, m),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, _, 64, true) => avx512::tile::<1, 4, E>(job, a, c, m),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, _, 64, false) => avx512::tile::<6, 4, E>(job, a, c, m),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, _, 48, true) => avx512::tile::<1, 3, E>(job, a, c, m),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, _, 48, false) => avx512::tile::<8, 3, E>(job, a, c, m),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, _, 32, true) => avx512::tile::<1, 2, E>(job, a, c, m),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, _, 32, false) => avx512::tile::<12, 2, E>(job, a, c, m),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, _, 16, true) => avx512::tile::<1, 1, E>(job, a, c, m),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, _, 16, false) => avx512::tile::<14, 1, E>(job, a, c, m),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, _, 16, true) => avx2::tile::<1, 2, E>(job, a, c, m),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, _, 16, false) => avx2::tile::<6, 2, E>(job, a, c, m),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, _, 8, true) => avx2::tile::<1, 1, E>(job, a, c, m),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, _, 8, false) => avx2::tile::<8, 1, E>(job, a, c, m),
            #[cfg(target_arch = "aarch64")]
            (Isa::Neon, _, 16, true) => neon::tile::<1, 4, E>(job, a, c, m),
            #[cfg(target_arch = "aarch64")]
            (Isa::Neon, _, 16, false) => neon::tile::<6, 4, E>(job, a, c, m),
            #[cfg(target_arch = "aarch64")]
            (Isa::Neon, _, 8, true) => neon::tile::<1, 2, E>(job, a, c, m),
            #[cfg(target_arch = "aarch64")]
            (Isa::Neon, _, 8, false) => neon::tile::<8, 2, E>(job, a, c, m),
            (_, _, _, true) => tile::<Scalar, 1, 8, E>(job, a, c, m),
            _ => tile::<Scalar, 4, 8, E>(job, a, c, m),
        }
    }
}

/// The micro-kernel: an MR x (NV vectors) block of C from MR rows of A (rows past `m` repeat
/// the last valid row and are not stored) and one packed panel of B.
#[inline(always)]
unsafe fn tile<S: Simd, const MR: usize, const NV: usize, E: Elem>(
    job: &Job,
    a: *const f32,
    c: *mut E,
    m: usize,
) {
    // Two instantiations, so each keeps its accumulators in registers across one loop.
    if job.offsets.is_null() {
        unsafe { tile_body::<S, MR, NV, false, E>(job, a, c, m) }
    } else {
        unsafe { tile_body::<S, MR, NV, true, E>(job, a, c, m) }
    }
}

#[inline(always)]
unsafe fn tile_body<S: Simd, const MR: usize, const NV: usize, const INDIRECT: bool, E: Elem>(
    job: &Job,
    a: *const f32,
    c: *mut E,
    m: usize,
) {
    let nr = NV * S::LANES;
    let rows: [*const f32; MR] = std::array::from_fn(|i| unsafe { a.add(i.min(m - 1) * job.lda) });
    let mut acc = [[unsafe { S::zero() }; NV]; MR];
    let mut b = job.b;
    for kk in 0..job.k {
        let at = if INDIRECT {
            unsafe { *job.offsets.add(kk) }
        } else {
            kk
        };
        let bv: [S::V; NV] = std::array::from_fn(|j| unsafe { S::load(b.add(j * S::LANES)) });
        for i in 0..MR {
            let av = unsafe { S::splat(*rows[i].add(at)) };
            for j in 0..NV {
                acc[i][j] = unsafe { S::fma(av, bv[j], acc[i][j]) };
            }
        }
        b = unsafe { b.add(nr) };
    }
    unsafe { store_tile::<S, MR, NV, E>(job, &acc, c, m) }
}

/// The epilogue of a tile: rows `0..m` of `acc` plus the bias, added to C when the job
/// accumulates, through the ReLU when it has one, stored as C's elements (only the panel's
/// valid columns).
#[inline(always)]
unsafe fn store_tile<S: Simd, const MR: usize, const NV: usize, E: Elem>(
    job: &Job,
    acc: &[[S::V; NV]; MR],
    c: *mut E,
    m: usize,
) {
    let nr = NV * S::LANES;
    let bias: [S::V; NV] = std::array::from_fn(|j| unsafe { S::load(job.bias.add(j * S::LANES)) });
    let zero = unsafe { S::zero() };
    for i in 0..MR.min(m) {
        let out = unsafe { c.add(i * job.ldc) };
        if job.n == nr {
            for j in 0..NV {
                let p = unsafe { out.add(j * S::LANES) };
                let mut v = unsafe { S::add(acc[i][j], bias[j]) };
                if job.accumulate {
                    v = unsafe { S::add(v, E::load::<S>(p)) };
                }
                if job.relu {
                    v = unsafe { S::max(v, zero) };
                }
                unsafe { E::store::<S>(p, v) };
            }
        } else {
            let mut row = [0.0f32; MAX_NR];
            for j in 0..NV {
                unsafe {
                    S::store(
                        row.as_mut_ptr().add(j * S::LANES),
                        S::add(acc[i][j], bias[j]),
                    )
                };
            }
            for (j, &value) in row.iter().enumerate().take(job.n) {
                let p = unsafe { out.add(j) };
                let mut v = value;
                if job.accumulate {
                    v += unsafe { E::load::<Scalar>(p) };
                }
                if job.relu {
                    v = v.max(0.0);
                }
                unsafe { E::store::<Scalar>(p, v) };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Job;
    use crate::native::simd::{Avx512, Elem};

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile<const MR: usize, const NV: usize, E: Elem>(
        job: &Job,
        a: *const f32,
        c: *mut E,
        m: usize,
    ) {
        unsafe { super::tile::<Avx512, MR, NV, E>(job, a, c, m) }
    }
}

/// The f32 kernels compiled with AVX512_BF16 too, for GEMMs that store C as bf16 (the
/// rounding is one instruction there).
#[cfg(target_arch = "x86_64")]
mod avx512dot {
    use super::Job;
    use crate::native::simd::{Avx512Dot, Elem};

    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn tile<const MR: usize, const NV: usize, E: Elem>(
        job: &Job,
        a: *const f32,
        c: *mut E,
        m: usize,
    ) {
        unsafe { super::tile::<Avx512Dot, MR, NV, E>(job, a, c, m) }
    }
}

/// A tile of the bf16 dot kernel; `a` points at bf16 rows (`job.lda` bf16 elements apart).
unsafe fn dispatch_bf16_tile<E: Elem>(
    shape: TileShape,
    single: bool,
    job: &Job,
    a: *const f32,
    c: *mut E,
    m: usize,
) {
    assert!(
        job.offsets.is_null(),
        "the bf16 dot kernel reads plain rows"
    );
    #[cfg(target_arch = "x86_64")]
    unsafe {
        match (shape.nr, single) {
            (64, true) => avx512bf16::tile::<1, 4, E>(job, a, c, m),
            (64, false) => avx512bf16::tile::<6, 4, E>(job, a, c, m),
            (48, true) => avx512bf16::tile::<1, 3, E>(job, a, c, m),
            (48, false) => avx512bf16::tile::<8, 3, E>(job, a, c, m),
            (32, true) => avx512bf16::tile::<1, 2, E>(job, a, c, m),
            (32, false) => avx512bf16::tile::<12, 2, E>(job, a, c, m),
            (_, true) => avx512bf16::tile::<1, 1, E>(job, a, c, m),
            (_, false) => avx512bf16::tile::<14, 1, E>(job, a, c, m),
        }
    }
    #[cfg(target_arch = "aarch64")]
    unsafe {
        match (shape.nr, single) {
            (16, true) => neonbf16::tile::<1, 4, E>(job, a, c, m),
            (16, false) => neonbf16::tile::<6, 4, E>(job, a, c, m),
            (_, true) => neonbf16::tile::<1, 2, E>(job, a, c, m),
            (_, false) => neonbf16::tile::<8, 2, E>(job, a, c, m),
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    unreachable!(
        "bf16 pairs are packed only for a bf16 dot product ({shape:?}, {single}, {a:?}, {c:?}, {m}, {:?})",
        job.k
    );
}

/// The bf16 dot kernel's operations on one instruction set: a vector `P` of bf16 pairs (one
/// per float lane of `F`), and the dot product adding both products of each pair to a lane.
trait Bf16DotOps {
    type F: Simd;
    type P: Copy;
    unsafe fn load(p: *const u32) -> Self::P;
    unsafe fn splat(pair: u32) -> Self::P;
    unsafe fn dot(acc: <Self::F as Simd>::V, a: Self::P, b: Self::P) -> <Self::F as Simd>::V;
}

/// The bf16 dot micro-kernel: per pair of k, NV vectors of B (F::LANES columns x 2 bf16 each)
/// and one broadcast bf16 pair of A per row, dot-added into f32 lanes; then the epilogue. `a`
/// points at bf16 rows (`job.lda` bf16 values apart, even).
#[inline(always)]
unsafe fn bf16_dot_tile<T: Bf16DotOps, const MR: usize, const NV: usize, E: Elem>(
    job: &Job,
    a: *const f32,
    c: *mut E,
    m: usize,
) {
    let a = a as *const u16;
    let rows: [*const u32; MR] =
        std::array::from_fn(|i| unsafe { a.add(i.min(m - 1) * job.lda) } as *const u32);
    let mut acc = [[unsafe { T::F::zero() }; NV]; MR];
    let mut b = job.b as *const u32;
    let lanes = <T::F as Simd>::LANES;
    for kp in 0..job.k.div_ceil(2) {
        let bv: [T::P; NV] = std::array::from_fn(|j| unsafe { T::load(b.add(j * lanes)) });
        for i in 0..MR {
            let av = unsafe { T::splat(rows[i].add(kp).read_unaligned()) };
            for j in 0..NV {
                acc[i][j] = unsafe { T::dot(acc[i][j], av, bv[j]) };
            }
        }
        b = unsafe { b.add(NV * lanes) };
    }
    unsafe { store_tile::<T::F, MR, NV, E>(job, &acc, c, m) }
}

/// The bf16 dot operations on aarch64 BF16: BFDOT (its intermediate rounding is Arm's, not
/// IEEE's: within the bf16 tolerance).
#[cfg(target_arch = "aarch64")]
mod neonbf16 {
    use std::arch::aarch64::*;

    use super::{Bf16DotOps, Job};
    use crate::native::simd::{bfdot, Elem, Neon};

    pub(super) struct NeonBf16;

    impl Bf16DotOps for NeonBf16 {
        type F = Neon;
        type P = uint16x8_t;
        #[inline(always)]
        unsafe fn load(p: *const u32) -> uint16x8_t {
            unsafe { vld1q_u16(p as *const u16) }
        }
        #[inline(always)]
        unsafe fn splat(pair: u32) -> uint16x8_t {
            unsafe { vreinterpretq_u16_u32(vdupq_n_u32(pair)) }
        }
        #[inline(always)]
        unsafe fn dot(acc: float32x4_t, a: uint16x8_t, b: uint16x8_t) -> float32x4_t {
            unsafe { bfdot(acc, a, b) }
        }
    }

    #[target_feature(enable = "neon,bf16")]
    pub(super) unsafe fn tile<const MR: usize, const NV: usize, E: Elem>(
        job: &Job,
        a: *const f32,
        c: *mut E,
        m: usize,
    ) {
        unsafe { super::bf16_dot_tile::<NeonBf16, MR, NV, E>(job, a, c, m) }
    }
}

/// The bf16 dot operations on AVX512_BF16: `vdpbf16ps`.
#[cfg(target_arch = "x86_64")]
mod avx512bf16 {
    use std::arch::x86_64::*;

    use super::{Bf16DotOps, Job};
    use crate::native::simd::{Avx512Dot, Elem};

    pub(super) struct Avx512Bf16;

    impl Bf16DotOps for Avx512Bf16 {
        type F = Avx512Dot;
        type P = __m512bh;
        #[inline(always)]
        unsafe fn load(p: *const u32) -> __m512bh {
            unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(p as *const _)) }
        }
        #[inline(always)]
        unsafe fn splat(pair: u32) -> __m512bh {
            unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(pair as i32)) }
        }
        #[inline(always)]
        unsafe fn dot(acc: __m512, a: __m512bh, b: __m512bh) -> __m512 {
            unsafe { _mm512_dpbf16_ps(acc, a, b) }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn tile<const MR: usize, const NV: usize, E: Elem>(
        job: &Job,
        a: *const f32,
        c: *mut E,
        m: usize,
    ) {
        unsafe { super::bf16_dot_tile::<Avx512Bf16, MR, NV, E>(job, a, c, m) }
    }
}

/// A tile of the fp16 kernel; `a` points at fp16 rows (`job.lda` fp16 values apart) or, with
/// offsets, at an fp16 source.
unsafe fn dispatch_fp16_tile(
    isa: Isa,
    shape: TileShape,
    single: bool,
    job: &Job,
    a: *const f32,
    c: *mut f32,
    m: usize,
) {
    unsafe {
        match (isa, shape.nr, single) {
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, 64, true) => avx512fp16::tile::<1, 2, 4>(job, a, c, m),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, 64, false) => avx512fp16::tile::<8, 2, 4>(job, a, c, m),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, _, true) => avx512fp16::tile::<1, 1, 2>(job, a, c, m),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, _, false) => avx512fp16::tile::<14, 1, 2>(job, a, c, m),
            #[cfg(target_arch = "aarch64")]
            (Isa::Neon, 32, true) => neonfp16::tile::<1, 4, 8>(job, a, c, m),
            #[cfg(target_arch = "aarch64")]
            (Isa::Neon, 32, false) => neonfp16::tile::<6, 4, 8>(job, a, c, m),
            #[cfg(target_arch = "aarch64")]
            (Isa::Neon, _, true) => neonfp16::tile::<1, 2, 4>(job, a, c, m),
            #[cfg(target_arch = "aarch64")]
            (Isa::Neon, _, false) => neonfp16::tile::<8, 2, 4>(job, a, c, m),
            _ => unreachable!("fp16 is packed only where {isa} has fp16 arithmetic ({shape:?})"),
        }
    }
}

/// The fp16 kernel's operations on one instruction set: sum vectors `H` of `LANES` fp16
/// values, widened into the f32 epilogue's vectors (`F`).
trait Fp16Ops {
    type F: Simd;
    type H: Copy;
    const LANES: usize;
    unsafe fn zero() -> Self::H;
    unsafe fn load(p: *const u16) -> Self::H;
    /// acc[j] += row[at] * b[j] for the NV vectors, one rounding per multiply-add.
    unsafe fn fma_row<const NV: usize>(
        row: *const u16,
        at: usize,
        b: &[Self::H; NV],
        acc: &mut [Self::H; NV],
    );
    /// The low (`high` false) or high half of `v`'s lanes as floats.
    unsafe fn widen(v: Self::H, high: bool) -> <Self::F as Simd>::V;
}

/// The fp16 micro-kernel: per k, NV vectors of B and one fp16 value of A per row into fp16
/// sums; per block of FP16_BLOCK k the sums widened to NW = 2 NV float vectors and added in
/// f32; then the f32 epilogue. `a` points at fp16 rows, or an fp16 source with offsets.
#[inline(always)]
unsafe fn fp16_tile<T: Fp16Ops, const MR: usize, const NV: usize, const NW: usize>(
    job: &Job,
    a: *const f32,
    c: *mut f32,
    m: usize,
) {
    let a = a as *const u16;
    if job.offsets.is_null() {
        unsafe { fp16_body::<T, MR, NV, NW, false>(job, a, c, m) }
    } else {
        unsafe { fp16_body::<T, MR, NV, NW, true>(job, a, c, m) }
    }
}

#[inline(always)]
unsafe fn fp16_body<
    T: Fp16Ops,
    const MR: usize,
    const NV: usize,
    const NW: usize,
    const INDIRECT: bool,
>(
    job: &Job,
    a: *const u16,
    c: *mut f32,
    m: usize,
) {
    let rows: [*const u16; MR] = std::array::from_fn(|i| unsafe { a.add(i.min(m - 1) * job.lda) });
    let mut wide = [[unsafe { T::F::zero() }; NW]; MR];
    let mut b = job.b as *const u16;
    let mut k0 = 0;
    while k0 < job.k {
        let k1 = (k0 + FP16_BLOCK).min(job.k);
        let mut acc = [[unsafe { T::zero() }; NV]; MR];
        for kk in k0..k1 {
            let at = match INDIRECT {
                true => unsafe { *job.offsets.add(kk) },
                false => kk,
            };
            let bv: [T::H; NV] = std::array::from_fn(|j| unsafe { T::load(b.add(j * T::LANES)) });
            for i in 0..MR {
                unsafe { T::fma_row::<NV>(rows[i], at, &bv, &mut acc[i]) };
            }
            b = unsafe { b.add(NV * T::LANES) };
        }
        for i in 0..MR {
            for w in 0..NW {
                let part = unsafe { T::widen(acc[i][w / 2], w % 2 == 1) };
                wide[i][w] = unsafe { T::F::add(wide[i][w], part) };
            }
        }
        k0 = k1;
    }
    unsafe { store_tile::<T::F, MR, NW, f32>(job, &wide, c, m) }
}

/// The fp16 operations on AVX512-FP16: `vfmadd231ph` on 32 lanes, `vcvtph2ps` to widen.
#[cfg(target_arch = "x86_64")]
mod avx512fp16 {
    use std::arch::asm;
    use std::arch::x86_64::*;

    use super::{Fp16Ops, Job};
    use crate::native::simd::Avx512;

    pub(super) struct Avx512Fp16;

    /// One row's step: c[j] += row[at] * b[j] on 32 fp16 lanes for the NV vectors, row[at]
    /// broadcast by the load itself (a separate 16-bit broadcast would take the shuffle port
    /// the second FMA unit shares). Stable Rust has no fp16 intrinsics, so the instructions
    /// are written out, one block per row (one per FMA leaves LLVM shuffling accumulators).
    #[inline]
    #[target_feature(enable = "avx512f,avx512fp16")]
    unsafe fn fma_row<const NV: usize>(
        row: *const u16,
        at: usize,
        b: &[__m512i; NV],
        c: &mut [__m512i; NV],
    ) {
        if NV == 1 {
            unsafe {
                asm!(
                    "vfmadd231ph {c0}, {b0}, word ptr [{row} + 2*{at}]{{1to32}}",
                    c0 = inout(zmm_reg) c[0],
                    b0 = in(zmm_reg) b[0],
                    row = in(reg) row,
                    at = in(reg) at,
                    options(pure, readonly, nostack, preserves_flags)
                )
            };
        } else {
            unsafe {
                asm!(
                    "vfmadd231ph {c0}, {b0}, word ptr [{row} + 2*{at}]{{1to32}}",
                    "vfmadd231ph {c1}, {b1}, word ptr [{row} + 2*{at}]{{1to32}}",
                    c0 = inout(zmm_reg) c[0],
                    c1 = inout(zmm_reg) c[1],
                    b0 = in(zmm_reg) b[0],
                    b1 = in(zmm_reg) b[1],
                    row = in(reg) row,
                    at = in(reg) at,
                    options(pure, readonly, nostack, preserves_flags)
                )
            };
        }
    }

    impl Fp16Ops for Avx512Fp16 {
        type F = Avx512;
        type H = __m512i;
        const LANES: usize = 32;
        #[inline(always)]
        unsafe fn zero() -> __m512i {
            unsafe { _mm512_setzero_si512() }
        }
        #[inline(always)]
        unsafe fn load(p: *const u16) -> __m512i {
            unsafe { _mm512_loadu_si512(p as *const _) }
        }
        #[inline(always)]
        unsafe fn fma_row<const NV: usize>(
            row: *const u16,
            at: usize,
            b: &[__m512i; NV],
            acc: &mut [__m512i; NV],
        ) {
            unsafe { fma_row::<NV>(row, at, b, acc) }
        }
        #[inline(always)]
        unsafe fn widen(v: __m512i, high: bool) -> __m512 {
            unsafe {
                match high {
                    false => _mm512_cvtph_ps(_mm512_castsi512_si256(v)),
                    true => _mm512_cvtph_ps(_mm512_extracti64x4_epi64::<1>(v)),
                }
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512fp16")]
    pub(super) unsafe fn tile<const MR: usize, const NV: usize, const NW: usize>(
        job: &Job,
        a: *const f32,
        c: *mut f32,
        m: usize,
    ) {
        unsafe { super::fp16_tile::<Avx512Fp16, MR, NV, NW>(job, a, c, m) }
    }
}

/// The fp16 operations on aarch64 FP16: `fmla .8h` on 8 lanes, `fcvtl`/`fcvtl2` to widen.
#[cfg(target_arch = "aarch64")]
mod neonfp16 {
    use std::arch::aarch64::*;
    use std::arch::asm;

    use super::{Fp16Ops, Job};
    use crate::native::simd::Neon;

    pub(super) struct NeonFp16;

    /// c + a * b on 8 fp16 lanes (stable Rust has no fp16 intrinsics).
    #[inline]
    #[target_feature(enable = "neon,fp16")]
    unsafe fn fma_h(a: uint16x8_t, b: uint16x8_t, c: uint16x8_t) -> uint16x8_t {
        let mut c = c;
        unsafe {
            asm!(
                "fmla {c:v}.8h, {a:v}.8h, {b:v}.8h",
                c = inout(vreg) c,
                a = in(vreg) a,
                b = in(vreg) b,
                options(pure, nomem, nostack)
            )
        };
        c
    }

    /// The low (`HIGH` false) or high four fp16 lanes of `v` as floats.
    #[inline]
    #[target_feature(enable = "neon,fp16")]
    unsafe fn widen<const HIGH: bool>(v: uint16x8_t) -> float32x4_t {
        let out: float32x4_t;
        unsafe {
            match HIGH {
                false => {
                    asm!("fcvtl {o:v}.4s, {v:v}.4h", o = out(vreg) out, v = in(vreg) v, options(pure, nomem, nostack))
                }
                true => {
                    asm!("fcvtl2 {o:v}.4s, {v:v}.8h", o = out(vreg) out, v = in(vreg) v, options(pure, nomem, nostack))
                }
            }
        };
        out
    }

    impl Fp16Ops for NeonFp16 {
        type F = Neon;
        type H = uint16x8_t;
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn zero() -> uint16x8_t {
            unsafe { vdupq_n_u16(0) }
        }
        #[inline(always)]
        unsafe fn load(p: *const u16) -> uint16x8_t {
            unsafe { vld1q_u16(p) }
        }
        #[inline(always)]
        unsafe fn fma_row<const NV: usize>(
            row: *const u16,
            at: usize,
            b: &[uint16x8_t; NV],
            acc: &mut [uint16x8_t; NV],
        ) {
            let av = unsafe { vld1q_dup_u16(row.add(at)) };
            for j in 0..NV {
                acc[j] = unsafe { fma_h(av, b[j], acc[j]) };
            }
        }
        #[inline(always)]
        unsafe fn widen(v: uint16x8_t, high: bool) -> float32x4_t {
            unsafe {
                match high {
                    false => widen::<false>(v),
                    true => widen::<true>(v),
                }
            }
        }
    }

    #[target_feature(enable = "neon,fp16")]
    pub(super) unsafe fn tile<const MR: usize, const NV: usize, const NW: usize>(
        job: &Job,
        a: *const f32,
        c: *mut f32,
        m: usize,
    ) {
        unsafe { super::fp16_tile::<NeonFp16, MR, NV, NW>(job, a, c, m) }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Job;
    use crate::native::simd::{Avx2, Elem};

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile<const MR: usize, const NV: usize, E: Elem>(
        job: &Job,
        a: *const f32,
        c: *mut E,
        m: usize,
    ) {
        unsafe { super::tile::<Avx2, MR, NV, E>(job, a, c, m) }
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use super::Job;
    use crate::native::simd::{Elem, Neon};

    #[target_feature(enable = "neon")]
    pub(super) unsafe fn tile<const MR: usize, const NV: usize, E: Elem>(
        job: &Job,
        a: *const f32,
        c: *mut E,
        m: usize,
    ) {
        unsafe { super::tile::<Neon, MR, NV, E>(job, a, c, m) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    /// C of the fp16 kernel as its stated arithmetic gives it: per block of FP16_BLOCK k, an
    /// fp16 sum of fp16 products (each multiply-add rounded once, emulated exactly in f64),
    /// the blocks added in f32 in order, then the f32 bias, the old C and the ReLU.
    fn fp16_expected(
        a: &[f16],
        b: &[f16],
        bias: &[f32],
        old: &[f32],
        (m, k, n): (usize, usize, usize),
        (acc, relu): (bool, bool),
    ) -> Vec<f32> {
        let mut c = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut sum = 0.0f32;
                for block in (0..k).step_by(FP16_BLOCK) {
                    let mut h = f16::ZERO;
                    for kk in block..(block + FP16_BLOCK).min(k) {
                        let exact = a[i * k + kk].to_f64() * b[kk * n + j].to_f64() + h.to_f64();
                        h = nearest_f16(exact);
                    }
                    sum += h.to_f32();
                }
                let mut v = sum + bias[j];
                if acc {
                    v += old[i * n + j];
                }
                c[i * n + j] = if relu { v.max(0.0) } else { v };
            }
        }
        c
    }

    /// The fp16 nearest to `x`, ties to even (`half`'s conversion from f64 may go through
    /// f32 and round twice).
    fn nearest_f16(x: f64) -> f16 {
        let guess = f16::from_f64(x);
        let neighbours = [
            guess.to_bits().wrapping_sub(1),
            guess.to_bits().wrapping_add(1),
        ];
        let candidates = neighbours
            .into_iter()
            .map(f16::from_bits)
            .filter(|c| c.is_finite());
        let distance = |c: f16| (c.to_f64() - x).abs();
        candidates.fold(guess, |best, c| {
            let (d, best_d) = (distance(c), distance(best));
            let even = c.to_bits() & 1 == 0;
            if d < best_d || (d == best_d && even) {
                c
            } else {
                best
            }
        })
    }

    /// C stored as bf16 is the float C rounded to bf16 (ties to even), bit for bit, on every
    /// instruction set, on the f32 kernels and on the bf16 dot kernel where the CPU has it,
    /// on awkward shapes (partial panels, leftover rows), with and without the epilogue.
    #[test]
    fn a_bf16_c_is_the_float_c_rounded_on_every_isa_and_kernel() {
        let shapes = [
            (1, 2, 1),
            (5, 18, 31),
            (7, 64, 33),
            (13, 66, 64),
            (17, 130, 100),
        ];
        let mut kernels = Vec::new();
        for isa in Isa::supported() {
            // `pack` keeps AVX512_BF16 (its f32 tiles round a bf16 C in one instruction).
            kernels.push((isa, false));
            if isa.has_bf16_dot() {
                kernels.push((isa, true));
            }
        }
        for (isa, dot) in kernels {
            for (s, &(m, k, n)) in shapes.iter().enumerate() {
                let values = |len, seed| models::seeded_uniform(vec![len], seed, -1.0, 1.0);
                let a = values(m * k, s as u64);
                let b = values(k * n, 100 + s as u64);
                let bias = values(n, 200 + s as u64);
                let old = values(m * n, 300 + s as u64);
                let at = |kk: usize, j: usize| b.data()[kk * n + j];
                let packed = match dot {
                    true => PackedGemm::pack_bf16_pairs(isa, k, n, at, Some(bias.data())),
                    false => PackedGemm::pack(isa, k, n, at, Some(bias.data())),
                };
                // The dot kernel reads A as bf16 rows (k is even in every shape here).
                let a16: Vec<u16> = a.data().iter().map(|&x| bf16_bits(x)).collect();
                let a_ptr = match dot {
                    true => a16.as_ptr() as *const f32,
                    false => a.data().as_ptr(),
                };
                let old16: Vec<u16> = old.data().iter().map(|&x| bf16_bits(x)).collect();
                let widened: Vec<f32> = old16
                    .iter()
                    .map(|&h| f32::from_bits(u32::from(h) << 16))
                    .collect();
                for (accumulate, relu) in [(false, false), (false, true), (true, true)] {
                    let run = |c: *mut f32, c_storage| {
                        let args = GemmArgs {
                            m,
                            a: a_ptr,
                            lda: k,
                            c,
                            ldc: n,
                            accumulate,
                            relu,
                            c_storage,
                        };
                        unsafe { gemm(&packed, args, 0, 1) };
                    };
                    // The float C starts from the bf16 old C, as the bf16 C does.
                    let mut c32 = widened.clone();
                    run(c32.as_mut_ptr(), Storage::F32);
                    let mut c16 = old16.clone();
                    run(c16.as_mut_ptr() as *mut f32, Storage::Bf16);
                    let want: Vec<u16> = c32.iter().map(|&x| bf16_bits(x)).collect();
                    let case =
                        format!("{isa} dot={dot} m={m} k={k} n={n} acc={accumulate} relu={relu}");
                    let differs = c16.iter().zip(&want).position(|(a, b)| a != b);
                    assert_eq!(differs, None, "{case}");
                }
            }
        }
    }

    #[test]
    fn the_fp16_kernel_is_bit_exact_on_awkward_shapes_on_every_isa_with_fp16() {
        let isas: Vec<Isa> = Isa::supported()
            .into_iter()
            .filter(|i| i.has_fp16_arith())
            .collect();
        if isas.is_empty() {
            // Nothing to check on a CPU without fp16 arithmetic (CI checks NEON under qemu).
            eprintln!("no instruction set here has fp16 arithmetic: fp16 kernel not checked");
            return;
        }
        let shapes = [
            (1, 1, 1),
            (2, 27, 31),
            (7, 64, 33),
            (13, 65, 64),
            (17, 130, 100),
            (30, 200, 65),
        ];
        for isa in isas {
            for (s, &(m, k, n)) in shapes.iter().enumerate() {
                let values = |len, seed| models::seeded_uniform(vec![len], seed, -1.0, 1.0);
                let a32 = values(m * k, s as u64);
                let b32 = values(k * n, 100 + s as u64);
                let bias = values(n, 200 + s as u64);
                let old = values(m * n, 300 + s as u64);
                let a: Vec<f16> = a32.data().iter().map(|&x| f16::from_f32(x)).collect();
                let b: Vec<f16> = b32.data().iter().map(|&x| f16::from_f32(x)).collect();
                let packed = PackedGemm::pack_fp16(
                    isa,
                    k,
                    n,
                    |kk, j| b32.data()[kk * n + j],
                    Some(bias.data()),
                );
                // A as fp16 rows of an even stride, two values per float of storage.
                let lda = k.next_multiple_of(2);
                let mut a_rows = vec![0u16; m * lda];
                for i in 0..m {
                    for kk in 0..k {
                        a_rows[i * lda + kk] = a[i * k + kk].to_bits();
                    }
                }
                for epilogue in [(false, false), (true, true)] {
                    let mut c = old.data().to_vec();
                    let args = GemmArgs {
                        m,
                        a: a_rows.as_ptr() as *const f32,
                        lda,
                        c: c.as_mut_ptr(),
                        ldc: n,
                        accumulate: epilogue.0,
                        relu: epilogue.1,
                        c_storage: Storage::F32,
                    };
                    unsafe { gemm(&packed, args, 0, 1) };
                    let want = fp16_expected(&a, &b, bias.data(), old.data(), (m, k, n), epilogue);
                    assert_eq!(c, want, "{isa} m={m} k={k} n={n} {epilogue:?}");
                }
            }
        }
    }
}
