//! The native backend: onebench's own CPU engine. Prepare compiles the graph into a plan of
//! kernel calls on NHWC buffers (weights packed, buffers allocated once); a run walks the plan
//! on a persistent thread pool and allocates nothing.

mod buffer;
pub mod int8;
pub mod kernels;
mod plan;
mod pool;
pub mod simd;

use std::time::Instant;

/// The backend's name, in its listing and its errors.
pub const NAME: &str = "native";

use models::{Graph, Precision, Tensor, Weights};

pub(crate) use buffer::AlignedBuffer;
use kernels::{channelwise, convert, depthwise, gemm, layout};
use plan::{AffineStep, GemmStep, Plan, Scale, Source, StepOp};
use pool::ThreadPool;
pub use simd::Isa;

use crate::backend::{check_run_shapes, LayerTime};
use crate::{Availability, Backend, BackendError, PrepareOptions, Prepared};

/// Environment variable that pins the instruction set (portable, avx2, avx512, avx512bf16,
/// neon, neonbf16).
pub const ISA_ENV: &str = "ONEBENCH_NATIVE_ISA";

/// The native backend; by default it runs the fastest instruction set the CPU has.
pub struct NativeBackend {
    isa: Option<Isa>,
}

impl NativeBackend {
    /// Picks the instruction set at prepare time: `ONEBENCH_NATIVE_ISA` if set, else the best.
    pub fn new() -> Self {
        Self { isa: None }
    }

    /// Always uses `isa` (for tests that compare the SIMD paths with the portable one).
    pub fn with_isa(isa: Isa) -> Self {
        Self { isa: Some(isa) }
    }

    fn choose_isa(&self) -> Result<Isa, String> {
        let isa = match (self.isa, std::env::var(ISA_ENV)) {
            (Some(isa), _) => isa,
            (None, Ok(value)) => value
                .parse::<Isa>()
                .map_err(|e| format!("{ISA_ENV}: {e}"))?,
            (None, Err(_)) => Isa::best(),
        };
        if !isa.is_supported() {
            return Err(format!(
                "this CPU does not support {isa} (supported: {})",
                names(&Isa::supported())
            ));
        }
        Ok(isa)
    }
}

impl Default for NativeBackend {
    fn default() -> Self {
        Self::new()
    }
}

fn names(isas: &[Isa]) -> String {
    isas.iter().map(|i| i.name()).collect::<Vec<_>>().join(", ")
}

/// Why native does not run fp16 on `isa` here.
fn fp16_reason(isa: Isa) -> String {
    #[cfg(target_arch = "x86_64")]
    if !std::arch::is_x86_feature_detected!("avx512fp16") {
        return "this CPU has no fp16 arithmetic (x86 without AVX512-FP16; F16C only converts)"
            .into();
    }
    #[cfg(target_arch = "aarch64")]
    if !std::arch::is_aarch64_feature_detected!("fp16") {
        return "this CPU has no fp16 arithmetic (aarch64 without FP16)".into();
    }
    format!(
        "the {isa} kernels have no fp16 arithmetic (avx512 with AVX512-FP16 and neon with FP16 do)"
    )
}

impl Backend for NativeBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> String {
        match self.choose_isa() {
            Ok(isa) => format!("{} ({isa})", env!("CARGO_PKG_VERSION")),
            Err(_) => env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    fn availability(&self) -> Availability {
        match self.choose_isa() {
            Ok(_) => Availability::Available,
            Err(reason) => Availability::Unavailable(reason),
        }
    }

    fn multithreaded(&self) -> bool {
        true
    }

    fn reports_layer_times(&self) -> bool {
        true
    }

    /// bf16 everywhere (on AVX512_BF16's dot product, else on operands rounded to bf16 and
    /// the f32 kernels); fp16 where the CPU has fp16 multiply-adds (AVX512-FP16, aarch64
    /// FP16), never emulated.
    fn supports(&self, precision: Precision) -> Result<(), String> {
        match precision {
            Precision::Fp32 | Precision::Bf16 | Precision::Int8 => Ok(()),
            Precision::Fp16 => {
                let isa = self.choose_isa()?;
                match isa.has_fp16_arith() {
                    true => Ok(()),
                    false => Err(fp16_reason(isa)),
                }
            }
        }
    }

    /// Activations stay f32 between ops at every precision, and so do depthwise weights and
    /// biases; GEMM weights are 16-bit at fp16 and on a bf16 dot product (elsewhere bf16
    /// weights are f32 words holding bf16 values).
    fn storage(&self, precision: Precision) -> models::Storage {
        let sixteen_bit_gemm = match precision {
            Precision::Fp32 => false,
            Precision::Bf16 => self.choose_isa().is_ok_and(|isa| isa.has_bf16_dot()),
            Precision::Fp16 => true,
            Precision::Int8 => return models::Storage::uniform(1),
        };
        models::Storage {
            gemm_weights: if sixteen_bit_gemm { 2 } else { 4 },
            ..models::Storage::F32
        }
    }

    fn prepare_quantized(
        &self,
        model: &models::quantized::QuantizedModel,
        options: &PrepareOptions,
    ) -> Result<Box<dyn Prepared>, BackendError> {
        self.int8_plan(model, options)
    }

    fn prepare(
        &self,
        graph: &Graph,
        weights: &Weights,
        options: &PrepareOptions,
    ) -> Result<Box<dyn Prepared>, BackendError> {
        crate::require_precision(self, options)?;
        let isa = self
            .choose_isa()
            .map_err(|reason| BackendError::unavailable(NAME, reason))?;
        weights
            .validate(graph, "weights")
            .map_err(|e| BackendError::weights(NAME, e))?;
        if options.precision == Precision::Int8 {
            let model = crate::quantized_reference::quantize_seeded(graph, weights)?;
            return self.prepare_quantized(&model, options);
        }
        let plan = plan::compile(graph, weights, isa, options.precision)?;
        let threads = options.threads.max(1);
        let pool = ThreadPool::new(threads).map_err(|e| {
            BackendError::failed(NAME, format!("cannot start {threads} threads: {e}"))
        })?;
        let mut plan = NativePlan {
            input_shape: graph.input_shape().to_vec(),
            output_shape: graph.output_shape().to_vec(),
            // The bf16 extension only shows where it is used.
            isa: match options.precision {
                Precision::Bf16 => isa,
                _ => isa.f32_kernels(),
            },
            precision: options.precision,
            bases: Vec::new(),
            times: options
                .per_layer_timing
                .then(|| vec![0.0; plan.steps.len()]),
            runs: 0,
            plan,
            pool,
        };
        plan.bases = plan
            .plan
            .buffers
            .iter_mut()
            .enumerate()
            .map(|(i, b)| Ptr(unsafe { b.as_mut_ptr().add(plan::stagger(i)) }))
            .collect();
        Ok(Box::new(plan))
    }
}

impl NativeBackend {
    fn int8_plan(
        &self,
        model: &models::quantized::QuantizedModel,
        options: &PrepareOptions,
    ) -> Result<Box<dyn Prepared>, BackendError> {
        let isa = self
            .choose_isa()
            .map_err(|reason| BackendError::unavailable(NAME, reason))?;
        let kernels = kernels::int8::Int8Isa::for_isa(isa);
        let plan = int8::prepare(model, kernels, options.threads, options.per_layer_timing)?;
        Ok(Box::new(plan))
    }
}

/// A raw buffer pointer that threads share; every kernel writes a disjoint part.
#[derive(Clone, Copy)]
struct Ptr(*mut f32);
unsafe impl Send for Ptr {}
unsafe impl Sync for Ptr {}

/// A prepared native plan.
pub struct NativePlan {
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
    isa: Isa,
    precision: Precision,
    plan: Plan,
    /// Base pointer of every physical buffer (the buffers never move).
    bases: Vec<Ptr>,
    pool: ThreadPool,
    /// Seconds per step summed over runs, when per-layer timing is on.
    times: Option<Vec<f64>>,
    runs: u64,
}

/// What a step needs at run time besides itself.
struct RunContext<'a> {
    isa: Isa,
    bases: &'a [Ptr],
    loc_buffer: &'a [usize],
    input: Ptr,
    output: Ptr,
}

impl RunContext<'_> {
    fn at(&self, loc: plan::Loc) -> *mut f32 {
        self.bases[self.loc_buffer[loc]].0
    }

    fn source(&self, src: Source) -> *const f32 {
        match src {
            Source::GraphInput => self.input.0,
            Source::Slot(loc) => self.at(loc),
        }
    }
}

impl Prepared for NativePlan {
    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn run(&mut self, input: &Tensor, output: &mut Tensor) -> Result<(), BackendError> {
        check_run_shapes(NAME, (&self.input_shape, &self.output_shape), input, output)?;
        let ctx = RunContext {
            isa: self.isa.f32_kernels(),
            bases: &self.bases,
            loc_buffer: &self.plan.loc_buffer,
            input: Ptr(input.data().as_ptr() as *mut f32),
            output: Ptr(output.data_mut().as_mut_ptr()),
        };
        let threads = self.pool.threads();
        for (s, step) in self.plan.steps.iter().enumerate() {
            let start = self.times.as_ref().map(|_| Instant::now());
            self.pool
                .run(&|t| unsafe { execute(&step.op, &ctx, t, threads) })
                .map_err(|_| {
                    BackendError::failed(
                        NAME,
                        format!("a worker thread panicked in `{}`", step.label),
                    )
                })?;
            if let (Some(times), Some(start)) = (self.times.as_mut(), start) {
                times[s] += start.elapsed().as_secs_f64();
            }
        }
        self.runs += 1;
        Ok(())
    }

    fn describe(&self) -> String {
        let f = &self.plan.fusions;
        let bytes: usize = self.plan.buffers.iter().map(|b| b.len() * 4).sum();
        let mut text = format!(
            "native: layout NHWC, isa {}, {}, {} threads, {} steps, {} activation buffers ({:.1} MiB); fused: {} batch norms into convs, {} ReLUs into epilogues, {} adds into accumulating branches, {} activations written in bf16 by their producers",
            self.isa,
            match self.precision {
                Precision::Bf16 => "bf16 (weights and GEMM operands bf16, sums f32; activations bf16 between producers and consumers that read bf16, else f32)",
                Precision::Fp16 => "fp16 (weights, GEMM operands and GEMM sums fp16; depthwise sums and activations f32)",
                other => other.name(),
            },
            self.pool.threads(),
            self.plan.steps.len(),
            self.plan.buffers.len(),
            bytes as f64 / (1 << 20) as f64,
            f.batch_norms_into_conv,
            f.relus_into_epilogue,
            f.adds_into_accumulation,
            f.bf16_activations,
        );
        for step in &self.plan.steps {
            text.push_str(&format!("\n  {}: {}", step.label, step.op.kernel()));
        }
        text
    }

    fn layer_times(&self) -> Vec<LayerTime> {
        let Some(times) = &self.times else {
            return Vec::new();
        };
        self.plan
            .steps
            .iter()
            .zip(times)
            .map(|(step, &seconds)| LayerTime {
                name: step.label.clone(),
                kind: step.op.kind().to_string(),
                kernel: step.op.kernel(),
                seconds,
                runs: self.runs,
            })
            .collect()
    }
}

/// Runs thread `t`'s share of one step.
///
/// # Safety
/// The plan was compiled for these buffers and the CPU supports the plan's isa.
unsafe fn execute(op: &StepOp, ctx: &RunContext, t: usize, threads: usize) {
    unsafe {
        match op {
            StepOp::ToNhwc {
                batch,
                channels,
                pixels,
                dst,
            } => layout::transpose(
                *batch,
                *channels,
                *pixels,
                ctx.input.0,
                ctx.at(*dst),
                t,
                threads,
            ),
            StepOp::Pad { geometry, src, dst } => {
                layout::pad(geometry, ctx.source(*src), ctx.at(*dst), t, threads)
            }
            StepOp::ToHalf { geometry, src, dst } => convert::to_half(
                ctx.isa,
                geometry,
                ctx.source(*src),
                ctx.at(*dst),
                t,
                threads,
            ),
            StepOp::Conv(s) => {
                let src = ctx.source(s.src);
                let epilogue = (s.accumulate, s.relu, s.c_storage);
                gemm::conv(
                    &s.packed,
                    &s.geometry,
                    src,
                    ctx.at(s.c),
                    epilogue,
                    t,
                    threads,
                )
            }
            StepOp::Gemm(s) => gemm::gemm(&s.packed, s.args(ctx), t, threads),
            StepOp::Depthwise(s) => {
                let io = depthwise::DepthwiseIo {
                    input: ctx.at(s.src),
                    input_storage: s.src_storage,
                    output: ctx.at(s.dst),
                    output_storage: s.dst_storage,
                    accumulate: s.accumulate,
                    relu: s.relu,
                };
                depthwise::depthwise(&s.packed, &io, t, threads)
            }
            StepOp::Affine(s) => channelwise::affine(ctx.isa, &s.args(ctx), t, threads),
            StepOp::Pool(s) => {
                let (src, dst) = (ctx.at(s.src), ctx.at(s.dst));
                let (batch, pixels, channels) = (s.batch, s.pixels, s.channels);
                channelwise::global_avg_pool(ctx.isa, batch, pixels, channels, src, dst, t, threads)
            }
            StepOp::Unary { op, src, dst, len } => {
                layout::unary(*op, ctx.at(*src), ctx.at(*dst), *len, t, threads)
            }
            StepOp::Max { srcs, dst, len } => {
                // Pairwise into dst, each thread on its own share: no allocation per run.
                let out = ctx.at(*dst);
                layout::maximum(ctx.at(srcs[0]), ctx.at(srcs[1]), out, *len, t, threads);
                for &src in &srcs[2..] {
                    layout::maximum(out, ctx.at(src), out, *len, t, threads);
                }
            }
            StepOp::MaxPool { shape, src, dst } => {
                layout::max_pool(shape, ctx.at(*src), ctx.at(*dst), t, threads)
            }
            StepOp::CopyChannels { geometry, src, dst } => {
                layout::copy_channels(geometry, ctx.at(*src), ctx.at(*dst), t, threads)
            }
            StepOp::Broadcast {
                batch,
                channels,
                src,
                dst,
            } => {
                if t == 0 {
                    layout::broadcast(*batch, *channels, ctx.at(*src), ctx.at(*dst))
                }
            }
            StepOp::ToNchw {
                batch,
                channels,
                pixels,
                src,
                dst,
            } => {
                let to = dst.map_or(ctx.output.0, |d| ctx.at(d));
                layout::transpose(*batch, *pixels, *channels, ctx.at(*src), to, t, threads)
            }
        }
    }
}

impl GemmStep {
    /// The GEMM's operands in this run's buffers.
    fn args(&self, ctx: &RunContext) -> gemm::GemmArgs {
        gemm::GemmArgs {
            m: self.m,
            a: ctx.at(self.a),
            lda: self.lda,
            c: ctx.at(self.c),
            ldc: self.ldc,
            accumulate: self.accumulate,
            relu: self.relu,
            c_storage: self.c_storage,
        }
    }
}

impl AffineStep {
    /// The affine's operands in this run's buffers: a gate is read per image (stride C), an
    /// owned scale or shift is shared by every image (stride 0).
    fn args(&self, ctx: &RunContext) -> channelwise::AffineArgs {
        let operand = |s: &Scale| match s {
            Scale::Owned(b) => (b.as_ptr(), 0),
            Scale::Gate(loc) => (ctx.at(*loc) as *const f32, self.channels),
        };
        let ((scale, scale_stride), (shift, shift_stride)) =
            (operand(&self.scale), operand(&self.shift));
        channelwise::AffineArgs {
            batch: self.batch,
            pixels: self.pixels,
            channels: self.channels,
            x: ctx.at(self.x),
            out: ctx.at(self.out),
            scale,
            scale_stride,
            shift,
            shift_stride,
            accumulate: self.accumulate,
            relu: self.relu,
        }
    }
}
