//! The native backend's int8 plan: a `models::quantized::QuantizedModel` compiled into int8
//! kernel calls on NHWC uint8 buffers (weights packed, the input zero point folded into GEMM
//! biases, buffers allocated once). A run quantizes the input, walks the steps on the thread
//! pool and dequantizes the output; every step's codes equal the quantized reference's.

use std::time::Instant;

use models::graph::{Conv2d, Op, ValueId};
use models::quantized::{QuantizedModel, QuantizedOp};
use models::Tensor;

use super::kernels::int8::{
    self, AddParams, DepthwiseIo, GemmIo, Int8Isa, PackedInt8Depthwise, PackedInt8Gemm,
    Requantization, MAX_ADD_INPUTS, MAX_TAPS,
};
use super::pool::ThreadPool;
use super::{AlignedBuffer, NAME};
use crate::backend::{check_run_shapes, LayerTime};
use crate::{BackendError, Prepared};

/// Bytes readable past the end of every buffer (vector loads of the last pixel's channels).
const SLACK: usize = 64;

/// A byte buffer that never moves (page aligned when a page or more).
struct Bytes(AlignedBuffer);

impl Bytes {
    fn new(len: usize) -> Bytes {
        Bytes(AlignedBuffer::zeros((len + SLACK).div_ceil(4)))
    }

    fn ptr(&self) -> *mut u8 {
        self.0.as_ptr() as *mut u8
    }
}

/// NHWC extents of a value: (batch, height, width, channels); a 2-D value is 1x1.
fn nhwc(shape: &[usize]) -> (usize, usize, usize, usize) {
    match shape {
        [n, c, h, w] => (*n, *h, *w, *c),
        [n, f] => (*n, 1, 1, *f),
        _ => (1, 1, 1, shape.iter().product()),
    }
}

/// An im2col: each output pixel's window (ky, kx, ci), taps outside the input as the zero
/// point, rows `row` bytes apart.
struct Im2col {
    src: usize,
    zero_point: u8,
    conv: Conv2d,
    input: (usize, usize, usize, usize),
    output: (usize, usize),
    row: usize,
}

enum StepOp {
    Im2col(Im2col),
    Gemm {
        packed: PackedInt8Gemm,
        req: Requantization,
        /// The A operand: a value's buffer, or the im2col scratch.
        a: Option<usize>,
        lda: usize,
        m: usize,
        out: usize,
    },
    Depthwise {
        packed: PackedInt8Depthwise,
        req: Requantization,
        src: usize,
        zero_point: i32,
        input: (usize, usize, usize),
        output: (usize, usize),
        out: usize,
    },
    Add {
        params: AddParams,
        srcs: Vec<usize>,
        len: usize,
        out: usize,
    },
    Mean {
        req: Requantization,
        src: usize,
        zero_point: i32,
        dims: (usize, usize, usize),
        out: usize,
    },
    ChannelMul {
        req: Requantization,
        x: (usize, i32),
        gate: (usize, i32, usize),
        dims: (usize, usize, usize),
        out: usize,
    },
    Table {
        table: Box<[u8; 256]>,
        src: usize,
        len: usize,
        out: usize,
    },
}

impl StepOp {
    fn kind(&self) -> &'static str {
        match self {
            StepOp::Im2col(_) => "im2col",
            StepOp::Gemm { .. } => "gemm",
            StepOp::Depthwise { .. } => "depthwise",
            StepOp::Add { .. } => "add",
            StepOp::Mean { .. } => "mean",
            StepOp::ChannelMul { .. } => "channel_mul",
            StepOp::Table { .. } => "table",
        }
    }

    fn kernel(&self, isa: Int8Isa) -> String {
        match self {
            StepOp::Gemm { packed, m, .. } => format!(
                "int8 gemm {m}x{}x{} ({isa:?}, u8 x i8, i32 sums, requantized)",
                packed.k, packed.n
            ),
            StepOp::Depthwise { packed, .. } => format!(
                "int8 depthwise {k}x{k} stride {} ({isa:?})",
                packed.stride,
                k = packed.kernel
            ),
            other => format!("int8 {} ({isa:?})", other.kind()),
        }
    }
}

struct Step {
    label: String,
    op: StepOp,
}

/// A prepared int8 plan.
pub struct Int8Plan {
    isa: Int8Isa,
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
    input: models::quantize::ActivationQuant,
    output: (usize, models::quantize::ActivationQuant),
    steps: Vec<Step>,
    buffers: Vec<Bytes>,
    scratch: Bytes,
    /// The buffer and shape of the input and of each node.
    value_buffer: Vec<usize>,
    value_shapes: Vec<Vec<usize>>,
    pool: ThreadPool,
    times: Option<Vec<f64>>,
    runs: u64,
}

/// Compiles `model` for `isa` on a pool of `threads`.
pub fn prepare(
    model: &QuantizedModel,
    isa: Int8Isa,
    threads: usize,
    per_layer_timing: bool,
) -> Result<Int8Plan, BackendError> {
    let graph = &model.graph;
    let mut compiler = Compiler::new(model);
    for i in 0..graph.nodes().len() {
        compiler.node(i)?;
    }
    let pool = ThreadPool::new(threads.max(1))
        .map_err(|e| BackendError::failed(NAME, format!("cannot start {threads} threads: {e}")))?;
    let output = compiler.buffer_of(graph.output());
    Ok(Int8Plan {
        isa,
        input_shape: graph.input_shape().to_vec(),
        output_shape: graph.output_shape().to_vec(),
        input: model.input,
        output: (output, model.quant(graph.output())),
        times: per_layer_timing.then(|| vec![0.0; compiler.steps.len()]),
        steps: compiler.steps,
        buffers: compiler.sizes.iter().map(|&n| Bytes::new(n)).collect(),
        scratch: Bytes::new(compiler.scratch),
        value_shapes: std::iter::once(graph.input_shape().to_vec())
            .chain(graph.nodes().iter().map(|n| n.shape.clone()))
            .collect(),
        value_buffer: compiler.value_buffer,
        pool,
        runs: 0,
    })
}

/// Walks the graph once: a buffer per value (fused activations and flattens share their
/// producer's), a step per op.
struct Compiler<'a> {
    model: &'a QuantizedModel,
    /// Buffer of the input and of each node.
    value_buffer: Vec<usize>,
    sizes: Vec<usize>,
    scratch: usize,
    steps: Vec<Step>,
}

impl<'a> Compiler<'a> {
    fn new(model: &'a QuantizedModel) -> Self {
        let input = model.graph.input_shape().iter().product();
        Compiler {
            model,
            value_buffer: vec![0],
            sizes: vec![input],
            scratch: 0,
            steps: Vec::new(),
        }
    }

    fn buffer_of(&self, v: ValueId) -> usize {
        match v {
            ValueId::Input => self.value_buffer[0],
            ValueId::Node(i) => self.value_buffer[i + 1],
        }
    }

    fn unsupported(&self, i: usize, what: &str) -> BackendError {
        let node = &self.model.graph.nodes()[i];
        BackendError::UnsupportedOp {
            backend: NAME.into(),
            op: format!("{} at int8 ({what})", node.op.kind()),
            node: node.name.clone(),
        }
    }

    fn node(&mut self, i: usize) -> Result<(), BackendError> {
        let model: &'a QuantizedModel = self.model;
        let graph = &model.graph;
        let node = &graph.nodes()[i];
        let x = node.inputs[0];
        let (src, xq) = (self.buffer_of(x), self.model.quant(x));
        let out_q = self.model.values[i];
        let len: usize = node.shape.iter().product();
        let op = match (&model.ops[i], &node.op) {
            (QuantizedOp::Fused, _) => return self.alias(src),
            (QuantizedOp::Reshape, _) => {
                let (_, h, w, _) = nhwc(graph.value_shape(x));
                if h * w != 1 {
                    return Err(self.unsupported(i, "a flatten of a map larger than 1x1"));
                }
                return self.alias(src);
            }
            (
                QuantizedOp::Gemm {
                    weights,
                    weight_scales: _,
                    bias,
                    rescale,
                    low,
                    high,
                },
                op,
            ) => {
                let req = |bias: Vec<i32>| {
                    Requantization::new(bias, rescale, out_q.zero_point, *low, *high)
                };
                let zx = i32::from(xq.zero_point);
                match op {
                    Op::Conv2d(c) => self.conv(i, c, weights, bias, req, xq.zero_point)?,
                    Op::Linear(l) => {
                        let k = l.in_features;
                        let packed =
                            PackedInt8Gemm::pack(k, l.out_features, |r, col| weights[col * k + r]);
                        let bias = corrected(bias, &packed, zx);
                        let m = node.shape[0];
                        StepOp::Gemm {
                            packed,
                            req: req(bias),
                            a: Some(src),
                            lda: k,
                            m,
                            out: 0,
                        }
                    }
                    _ => {
                        let (n, h, w, c) = nhwc(graph.value_shape(x));
                        StepOp::Depthwise {
                            packed: PackedInt8Depthwise::pack(c, (1, 1, 0), weights, zx),
                            req: req(bias.clone()),
                            src,
                            zero_point: zx,
                            input: (n, h, w),
                            output: (h, w),
                            out: 0,
                        }
                    }
                }
            }
            (QuantizedOp::Table(table), _) => StepOp::Table {
                table: table.clone(),
                src,
                len,
                out: 0,
            },
            (QuantizedOp::Add { inputs, low, high }, _) => {
                if inputs.len() > MAX_ADD_INPUTS {
                    return Err(self.unsupported(i, "an add of more than 8 inputs"));
                }
                let params = AddParams {
                    inputs: node
                        .inputs
                        .iter()
                        .zip(inputs)
                        .map(|(&v, r)| (i32::from(self.model.quant(v).zero_point), *r))
                        .collect(),
                    // Only the zero point and clamp are used: each input has its multiplier.
                    output: Requantization::new(
                        vec![0],
                        &[inputs[0]],
                        out_q.zero_point,
                        *low,
                        *high,
                    ),
                };
                let srcs = node.inputs.iter().map(|&v| self.buffer_of(v)).collect();
                StepOp::Add {
                    params,
                    srcs,
                    len,
                    out: 0,
                }
            }
            (QuantizedOp::Mean(rescale), _) => {
                let (n, h, w, c) = nhwc(graph.value_shape(x));
                let req = Requantization::new(vec![0], &[*rescale], out_q.zero_point, 0, 255);
                StepOp::Mean {
                    req,
                    src,
                    zero_point: i32::from(xq.zero_point),
                    dims: (n, h * w, c),
                    out: 0,
                }
            }
            (QuantizedOp::ChannelMul { rescale, low, high }, _) => {
                let (n, h, w, c) = nhwc(graph.value_shape(x));
                let g = node.inputs[1];
                let gq = self.model.quant(g);
                let gate_channels = graph.value_shape(g)[1];
                let req = Requantization::new(vec![0], &[*rescale], out_q.zero_point, *low, *high);
                StepOp::ChannelMul {
                    req,
                    x: (src, i32::from(xq.zero_point)),
                    gate: (self.buffer_of(g), i32::from(gq.zero_point), gate_channels),
                    dims: (n, h * w, c),
                    out: 0,
                }
            }
        };
        self.push(i, op, len);
        Ok(())
    }

    /// The node's value shares `src`'s buffer.
    fn alias(&mut self, src: usize) -> Result<(), BackendError> {
        self.value_buffer.push(src);
        Ok(())
    }

    /// Adds the node's output buffer and its step (whose `out` is set here).
    fn push(&mut self, i: usize, mut op: StepOp, len: usize) {
        let out = self.sizes.len();
        self.sizes.push(len);
        self.value_buffer.push(out);
        match &mut op {
            StepOp::Gemm { out: o, .. }
            | StepOp::Depthwise { out: o, .. }
            | StepOp::Add { out: o, .. }
            | StepOp::Mean { out: o, .. }
            | StepOp::ChannelMul { out: o, .. }
            | StepOp::Table { out: o, .. } => *o = out,
            StepOp::Im2col(_) => {}
        }
        let label = self.model.graph.nodes()[i].name.clone();
        self.steps.push(Step { label, op });
    }

    /// A convolution: depthwise, a direct GEMM (1x1, stride 1, no padding) or an im2col and
    /// a GEMM; grouped convolutions that are neither are refused.
    fn conv(
        &mut self,
        i: usize,
        c: &Conv2d,
        weights: &[i8],
        bias: &[i32],
        req: impl Fn(Vec<i32>) -> Requantization,
        zero_point: u8,
    ) -> Result<StepOp, BackendError> {
        let model: &'a QuantizedModel = self.model;
        let graph = &model.graph;
        let node = &graph.nodes()[i];
        let x = node.inputs[0];
        let src = self.buffer_of(x);
        let (n, h, w, cin) = nhwc(graph.value_shape(x));
        let (hout, wout) = (node.shape[2], node.shape[3]);
        let zx = i32::from(zero_point);
        if c.groups == c.in_channels && c.groups == c.out_channels && c.groups > 1 {
            if c.kernel * c.kernel > MAX_TAPS {
                return Err(self.unsupported(i, "a depthwise kernel larger than 7x7"));
            }
            return Ok(StepOp::Depthwise {
                packed: PackedInt8Depthwise::pack(
                    cin,
                    (c.kernel, c.stride, c.padding),
                    weights,
                    zx,
                ),
                req: req(bias.to_vec()),
                src,
                zero_point: zx,
                input: (n, h, w),
                output: (hout, wout),
                out: 0,
            });
        }
        if c.groups != 1 {
            return Err(self.unsupported(i, "a grouped convolution that is not depthwise"));
        }
        let (k, taps) = (c.kernel, c.kernel * c.kernel);
        let depth = cin * taps;
        let packed = PackedInt8Gemm::pack(depth, c.out_channels, |r, co| {
            let (tap, ci) = (r / cin, r % cin);
            weights[(co * cin + ci) * taps + tap]
        });
        let req = req(corrected(bias, &packed, zx));
        let m = n * hout * wout;
        if k == 1 && c.stride == 1 && c.padding == 0 {
            return Ok(StepOp::Gemm {
                packed,
                req,
                a: Some(src),
                lda: cin,
                m,
                out: 0,
            });
        }
        let row = int8::round_up(depth, 4);
        self.scratch = self.scratch.max(m * row);
        self.steps.push(Step {
            label: format!("{} (im2col)", node.name),
            op: StepOp::Im2col(Im2col {
                src,
                zero_point,
                conv: *c,
                input: (n, h, w, cin),
                output: (hout, wout),
                row,
            }),
        });
        Ok(StepOp::Gemm {
            packed,
            req,
            a: None,
            lda: row,
            m,
            out: 0,
        })
    }
}

/// Biases less the input zero point times each channel's weight sum: the GEMM then sums raw
/// codes times weights (exact, as every tap reads a real code or the zero point).
fn corrected(bias: &[i32], packed: &PackedInt8Gemm, zero_point: i32) -> Vec<i32> {
    bias.iter()
        .zip(&packed.column_sums)
        .map(|(&b, &s)| b.wrapping_sub(zero_point.wrapping_mul(s)))
        .collect()
}

impl Int8Plan {
    fn buffer(&self, b: usize) -> *mut u8 {
        self.buffers[b].ptr()
    }

    /// Thread `t`'s share of one step.
    unsafe fn execute(&self, op: &StepOp, t: usize, threads: usize) {
        let isa = self.isa;
        match op {
            StepOp::Im2col(s) => im2col(s, self.buffer(s.src), self.scratch.ptr(), t, threads),
            StepOp::Gemm {
                packed,
                req,
                a,
                lda,
                m,
                out,
            } => {
                let a = a.map_or(self.scratch.ptr(), |b| self.buffer(b));
                let io = GemmIo {
                    a,
                    lda: *lda,
                    m: *m,
                    out: self.buffer(*out),
                    ldo: packed.n,
                };
                int8::gemm(isa, packed, req, &io, t, threads)
            }
            StepOp::Depthwise {
                packed,
                req,
                src,
                zero_point,
                input,
                output,
                out,
            } => {
                let io = DepthwiseIo {
                    x: self.buffer(*src),
                    zero_point: *zero_point,
                    batch: input.0,
                    hin: input.1,
                    win: input.2,
                    out: self.buffer(*out),
                    hout: output.0,
                    wout: output.1,
                };
                int8::depthwise(isa, packed, req, &io, t, threads)
            }
            StepOp::Add {
                params,
                srcs,
                len,
                out,
            } => {
                let mut inputs = [std::ptr::null::<u8>(); MAX_ADD_INPUTS];
                for (input, &b) in inputs.iter_mut().zip(srcs) {
                    *input = self.buffer(b);
                }
                let inputs = &inputs[..srcs.len()];
                int8::add(isa, params, inputs, self.buffer(*out), *len, t, threads)
            }
            StepOp::Mean {
                req,
                src,
                zero_point,
                dims,
                out,
            } => int8::mean(
                req,
                (self.buffer(*src), *zero_point),
                self.buffer(*out),
                *dims,
                t,
                threads,
            ),
            StepOp::ChannelMul {
                req,
                x,
                gate,
                dims,
                out,
            } => int8::channel_mul(
                isa,
                req,
                (
                    (self.buffer(x.0) as *const u8, x.1),
                    (self.buffer(gate.0) as *const u8, gate.1, gate.2),
                ),
                self.buffer(*out),
                *dims,
                t,
                threads,
            ),
            StepOp::Table {
                table,
                src,
                len,
                out,
            } => {
                let (from, to) = (self.buffer(*src), self.buffer(*out));
                for j in len * t / threads..len * (t + 1) / threads {
                    *to.add(j) = table[usize::from(*from.add(j))];
                }
            }
        }
    }

    /// The float NCHW input as NHWC codes in buffer 0, by rows of (image, y).
    unsafe fn quantize_input(&self, input: &[f32], t: usize, threads: usize) {
        const CHUNK: usize = 64;
        const CHANNELS: usize = 4;
        let (n, h, w, c) = nhwc(&self.input_shape);
        let to = self.buffer(0);
        let mut codes = [[0u8; CHUNK]; CHANNELS];
        for r in n * h * t / threads..n * h * (t + 1) / threads {
            let (b, y) = (r / h, r % h);
            let row = |ch: usize| &input[((b * c + ch) * h + y) * w..][..w];
            for x0 in (0..w).step_by(CHUNK) {
                let width = CHUNK.min(w - x0);
                let first = to.add(((b * h + y) * w + x0) * c);
                if c > CHANNELS {
                    for ch in 0..c {
                        let part = &row(ch)[x0..x0 + width];
                        int8::quantize_plane(self.isa, self.input, part, &mut codes[0]);
                        for (x, &q) in codes[0][..width].iter().enumerate() {
                            *first.add(x * c + ch) = q;
                        }
                    }
                    continue;
                }
                for (ch, plane) in codes.iter_mut().enumerate().take(c) {
                    int8::quantize_plane(self.isa, self.input, &row(ch)[x0..x0 + width], plane);
                }
                // Few channels (images): interleave in order, one pixel after another.
                let out = std::slice::from_raw_parts_mut(first, width * c);
                for (x, pixel) in out.chunks_exact_mut(c).enumerate() {
                    for (ch, q) in pixel.iter_mut().enumerate() {
                        *q = codes[ch][x];
                    }
                }
            }
        }
    }

    /// The output codes dequantized, NHWC to the graph's NCHW.
    fn dequantize_output(&self, output: &mut [f32]) {
        let (n, h, w, c) = nhwc(&self.output_shape);
        let (buffer, quant) = self.output;
        let from = self.buffer(buffer);
        for b in 0..n {
            for ch in 0..c {
                for p in 0..h * w {
                    let q = unsafe { *from.add((b * h * w + p) * c + ch) };
                    output[(b * c + ch) * h * w + p] = quant.dequantize(q);
                }
            }
        }
    }

    /// Every node's codes after one run, in node order (NCHW, as the reference keeps them),
    /// for tests that compare each layer with the quantized reference.
    pub fn values(&mut self, input: &Tensor) -> Result<Vec<Vec<u8>>, BackendError> {
        let mut out = Tensor::zeros(self.output_shape.clone());
        self.run(input, &mut out)?;
        let nodes = self.value_buffer.iter().zip(&self.value_shapes).skip(1);
        Ok(nodes
            .map(|(&b, shape)| {
                let (n, h, w, c) = nhwc(shape);
                let from = self.buffer(b);
                let mut codes = vec![0u8; n * c * h * w];
                for (j, code) in codes.iter_mut().enumerate() {
                    let (b, ch, p) = (j / (c * h * w), j / (h * w) % c, j % (h * w));
                    *code = unsafe { *from.add((b * h * w + p) * c + ch) };
                }
                codes
            })
            .collect())
    }
}

/// Copies `dst.len()` bytes from `from`: short runs (a stem's 9-byte window rows) as two
/// overlapping 8-byte moves instead of a `memcpy` call.
unsafe fn small_copy(from: *const u8, dst: &mut [u8]) {
    let n = dst.len();
    if (8..=16).contains(&n) {
        let head = (from as *const u64).read_unaligned();
        let tail = (from.add(n - 8) as *const u64).read_unaligned();
        (dst.as_mut_ptr() as *mut u64).write_unaligned(head);
        (dst.as_mut_ptr().add(n - 8) as *mut u64).write_unaligned(tail);
    } else {
        dst.copy_from_slice(std::slice::from_raw_parts(from, n));
    }
}

/// Thread `t`'s share of an im2col's rows: a window's row of taps is contiguous in NHWC, so
/// each is one copy; taps outside the input are the zero point.
unsafe fn im2col(s: &Im2col, x: *const u8, to: *mut u8, t: usize, threads: usize) {
    let (n, h, w, cin) = s.input;
    let (hout, wout) = s.output;
    let (k, stride, pad) = (s.conv.kernel, s.conv.stride, s.conv.padding);
    let rows = n * hout * wout;
    let first = rows * t / threads;
    // (image, output row, output column) of row r, advanced without dividing per row.
    let (mut b, mut oy, mut ox) = (first / (hout * wout), first / wout % hout, first % wout);
    for r in first..rows * (t + 1) / threads {
        if r > first {
            ox += 1;
            if ox == wout {
                (ox, oy) = (0, oy + 1);
                if oy == hout {
                    (oy, b) = (0, b + 1);
                }
            }
        }
        let row = std::slice::from_raw_parts_mut(to.add(r * s.row), s.row);
        let x0 = (ox * stride) as isize - pad as isize;
        let inside_x = x0 >= 0 && x0 as usize + k <= w;
        match inside_x {
            true => row[k * k * cin..].fill(s.zero_point),
            false => row.fill(s.zero_point),
        }
        for ky in 0..k {
            let dst = &mut row[ky * k * cin..(ky + 1) * k * cin];
            let Some(iy) = (oy * stride + ky).checked_sub(pad).filter(|&y| y < h) else {
                dst.fill(s.zero_point);
                continue;
            };
            let line = x.add((b * h + iy) * w * cin);
            if inside_x {
                small_copy(line.add(x0 as usize * cin), dst);
                continue;
            }
            for kx in 0..k {
                let ix = x0 + kx as isize;
                if ix >= 0 && (ix as usize) < w {
                    let from = std::slice::from_raw_parts(line.add(ix as usize * cin), cin);
                    dst[kx * cin..(kx + 1) * cin].copy_from_slice(from);
                }
            }
        }
    }
}

impl Prepared for Int8Plan {
    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn run(&mut self, input: &Tensor, output: &mut Tensor) -> Result<(), BackendError> {
        check_run_shapes(NAME, (&self.input_shape, &self.output_shape), input, output)?;
        let threads = self.pool.threads();
        let panicked = |what: &str| {
            BackendError::failed(NAME, format!("a worker thread panicked in `{what}`"))
        };
        let data = input.data();
        self.pool
            .run(&|t| unsafe { self.quantize_input(data, t, threads) })
            .map_err(|_| panicked("quantize input"))?;
        let mut times = self.times.take();
        for (s, step) in self.steps.iter().enumerate() {
            let start = times.as_ref().map(|_| Instant::now());
            self.pool
                .run(&|t| unsafe { self.execute(&step.op, t, threads) })
                .map_err(|_| panicked(&step.label))?;
            if let (Some(times), Some(start)) = (times.as_mut(), start) {
                times[s] += start.elapsed().as_secs_f64();
            }
        }
        self.times = times;
        self.dequantize_output(output.data_mut());
        self.runs += 1;
        Ok(())
    }

    fn describe(&self) -> String {
        let bytes: usize = self.buffers.iter().map(|b| b.0.len() * 4).sum();
        let weights: usize = self
            .steps
            .iter()
            .map(|s| match &s.op {
                StepOp::Gemm { packed, .. } => packed.bytes(),
                _ => 0,
            })
            .sum();
        let mut text = format!(
            "native: layout NHWC, int8 (uint8 activations, per-channel int8 weights, int32 sums, requantized as the quantized reference), kernels {}, {} threads, {} steps, {} activation buffers ({:.1} MiB), {:.1} MiB of packed GEMM weights",
            self.isa.name(),
            self.pool.threads(),
            self.steps.len(),
            self.buffers.len(),
            bytes as f64 / (1 << 20) as f64,
            weights as f64 / (1 << 20) as f64,
        );
        for step in &self.steps {
            text.push_str(&format!("\n  {}: {}", step.label, step.op.kernel(self.isa)));
        }
        text
    }

    fn layer_times(&self) -> Vec<LayerTime> {
        let Some(times) = &self.times else {
            return Vec::new();
        };
        self.steps
            .iter()
            .zip(times)
            .map(|(step, &seconds)| LayerTime {
                name: step.label.clone(),
                kind: step.op.kind().to_string(),
                kernel: step.op.kernel(self.isa),
                seconds,
                runs: self.runs,
            })
            .collect()
    }
}
