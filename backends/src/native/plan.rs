//! Compiles a graph into the native backend's plan: a list of kernel calls (steps) on NHWC
//! buffers. Batch norms fold into the conv before them; a ReLU fuses into the epilogue of the
//! step that last writes its input; the branches of an Add stay separate kernel calls that
//! accumulate into one buffer (so the unfused form pays for every branch). Buffers are shared
//! between values whose lifetimes do not overlap. At bf16, conv and linear weights are stored
//! rounded to bf16 and every GEMM's activation operand is rounded to bf16 first (as pairs for
//! the dot-product kernel); products are exact and sums f32. At fp16 the GEMMs' weights and
//! operands are fp16 and so are their sums over blocks of k (the fp16 kernel), depthwise
//! weights are rounded to fp16; everything else, activations between ops included, stays f32.

use std::collections::HashMap;

use models::graph::{Conv2d, Linear, MaxPool2d};
use models::{Graph, Op, Precision, ValueId, Weights};

use super::buffer::AlignedBuffer;
use super::kernels::convert::{Narrow, ToHalf};
use super::kernels::depthwise::{DepthwiseShape, PackedDepthwise, SUPPORTED_KERNELS};
use super::kernels::gemm::{ConvGeometry, PackedGemm, Packing};
use super::kernels::layout::{ChannelCopy, Pad, Unary};
use super::simd::{Isa, Storage};
use crate::lower::{assign_buffers, lifetimes, value_index, Lowered};
use crate::BackendError;

/// A float buffer slot in the plan (several slots may share one physical buffer).
pub(crate) type Loc = usize;

/// Where squeeze-excite style scaling takes its per-channel factors from.
pub(crate) enum Scale {
    Owned(AlignedBuffer),
    /// Per image, read from a slot at run time (the gate of squeeze-excite).
    Gate(Loc),
}

/// Where a step reads: a slot, or the caller's NCHW input tensor.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    GraphInput,
    Slot(Loc),
}

pub(crate) enum StepOp {
    ToNhwc {
        batch: usize,
        channels: usize,
        pixels: usize,
        dst: Loc,
    },
    Pad {
        geometry: Pad,
        src: Source,
        dst: Loc,
    },
    /// A GEMM operand rounded to bf16 or fp16.
    ToHalf {
        geometry: ToHalf,
        src: Source,
        dst: Loc,
    },
    /// A dense convolution as an implicit GEMM on its (padded) source.
    Conv(ConvStep),
    Gemm(GemmStep),
    Depthwise(DepthwiseStep),
    Affine(AffineStep),
    Pool(PoolStep),
    Unary {
        op: Unary,
        src: Loc,
        dst: Loc,
        len: usize,
    },
    Max {
        srcs: Vec<Loc>,
        dst: Loc,
        len: usize,
    },
    MaxPool {
        shape: DepthwiseShape,
        src: Loc,
        dst: Loc,
    },
    /// Channel runs copied between NHWC tensors (concat, slice, shuffle).
    CopyChannels {
        geometry: ChannelCopy,
        src: Loc,
        dst: Loc,
    },
    /// A [N, 1] per-image value repeated over C channels.
    Broadcast {
        batch: usize,
        channels: usize,
        src: Loc,
        dst: Loc,
    },
    /// NHWC -> NCHW into a slot, or into the caller's output tensor when `dst` is None.
    ToNchw {
        batch: usize,
        channels: usize,
        pixels: usize,
        src: Loc,
        dst: Option<Loc>,
    },
}

/// A dense convolution as an implicit GEMM on its (padded) source.
pub(crate) struct ConvStep {
    pub packed: PackedGemm,
    pub geometry: ConvGeometry,
    /// The source is the (padded) NCHW graph input rather than an NHWC activation.
    pub nchw: bool,
    pub src: Source,
    pub c: Loc,
    pub c_storage: Storage,
    pub accumulate: bool,
    pub relu: bool,
}

pub(crate) struct GemmStep {
    pub packed: PackedGemm,
    pub m: usize,
    pub a: Loc,
    pub lda: usize,
    pub c: Loc,
    pub ldc: usize,
    pub c_storage: Storage,
    pub accumulate: bool,
    pub relu: bool,
}

pub(crate) struct DepthwiseStep {
    pub packed: PackedDepthwise,
    pub src: Loc,
    pub src_storage: Storage,
    pub dst: Loc,
    pub dst_storage: Storage,
    pub accumulate: bool,
    pub relu: bool,
}

pub(crate) struct AffineStep {
    pub batch: usize,
    pub pixels: usize,
    pub channels: usize,
    pub x: Loc,
    pub out: Loc,
    pub scale: Scale,
    pub shift: Scale,
    pub accumulate: bool,
    pub relu: bool,
}

pub(crate) struct PoolStep {
    pub batch: usize,
    pub pixels: usize,
    pub channels: usize,
    pub src: Loc,
    pub dst: Loc,
}

impl StepOp {
    /// The slots a step reads, and the one it writes (none for the copy to the output).
    fn slots(&self) -> (Vec<Loc>, Option<Loc>) {
        let one = |src: &Loc, dst: &Loc| (vec![*src], Some(*dst));
        match self {
            StepOp::ToNhwc { dst, .. } => (Vec::new(), Some(*dst)),
            StepOp::Pad { src, dst, .. } | StepOp::ToHalf { src, dst, .. } => {
                (slots(*src).collect(), Some(*dst))
            }
            StepOp::Conv(s) => (slots(s.src).collect(), Some(s.c)),
            StepOp::Depthwise(s) => one(&s.src, &s.dst),
            StepOp::Pool(s) => one(&s.src, &s.dst),
            StepOp::Unary { src, dst, .. }
            | StepOp::MaxPool { src, dst, .. }
            | StepOp::CopyChannels { src, dst, .. }
            | StepOp::Broadcast { src, dst, .. } => one(src, dst),
            StepOp::Max { srcs, dst, .. } => (srcs.clone(), Some(*dst)),
            StepOp::Gemm(s) => one(&s.a, &s.c),
            StepOp::Affine(s) => {
                let gates = [&s.scale, &s.shift].into_iter().filter_map(|s| match s {
                    Scale::Gate(g) => Some(*g),
                    Scale::Owned(_) => None,
                });
                (std::iter::once(s.x).chain(gates).collect(), Some(s.out))
            }
            StepOp::ToNchw { src, dst, .. } => (vec![*src], *dst),
        }
    }

    /// Sets the fused ReLU; false when this step has no ReLU epilogue or already has one.
    fn fuse_relu(&mut self) -> bool {
        let relu = match self {
            StepOp::Gemm(s) => &mut s.relu,
            StepOp::Conv(s) => &mut s.relu,
            StepOp::Depthwise(s) => &mut s.relu,
            StepOp::Affine(s) => &mut s.relu,
            _ => return false,
        };
        !std::mem::replace(relu, true)
    }

    /// What runs, for the plan description and per-layer timing.
    pub(crate) fn kernel(&self) -> String {
        let epilogue = |accumulate: bool, relu: bool| {
            format!(
                "{}{}",
                if accumulate { " +=" } else { "" },
                if relu { " +relu" } else { "" }
            )
        };
        let stored = |storage: Storage| match storage {
            Storage::F32 => "",
            Storage::Bf16 => " ->bf16",
        };
        match self {
            StepOp::ToNhwc { .. } => "layout nchw->nhwc".into(),
            StepOp::Pad { geometry, src, .. } => {
                format!("zero pad {} ({})", geometry.padding, source_layout(*src))
            }
            StepOp::ToHalf { geometry, .. } => match geometry.to {
                Narrow::Bf16 => "round to bf16 pairs".into(),
                Narrow::Bf16AsF32 => "round to bf16 (as f32)".into(),
                Narrow::Fp16 => "round to fp16".into(),
            },
            StepOp::Conv(s) => {
                let (p, g, tail) = (&s.packed, &s.geometry, epilogue(s.accumulate, s.relu));
                let m = g.batch * g.out_height * g.out_width;
                let input = if s.nchw { "nchw input" } else { "nhwc" };
                let (isa, mr, nr, k, n) = (p.kernel_name(), p.tile.mr, p.tile.nr, p.k, p.n);
                let out = stored(s.c_storage);
                format!("conv as implicit gemm {isa} {mr}x{nr} on {input} m={m} k={k} n={n} +bias{tail}{out}")
            }
            StepOp::Gemm(s) => {
                let (p, m, tail) = (&s.packed, s.m, epilogue(s.accumulate, s.relu));
                let (isa, mr, nr, k, n) = (p.kernel_name(), p.tile.mr, p.tile.nr, p.k, p.n);
                let out = stored(s.c_storage);
                format!("gemm {isa} {mr}x{nr} m={m} k={k} n={n} +bias{tail}{out}")
            }
            StepOp::Depthwise(s) => {
                let (shape, isa) = (&s.packed.shape, s.packed.isa);
                let (k, stride, c) = (shape.kernel, shape.stride, shape.channels);
                let tail = epilogue(s.accumulate, s.relu);
                let io = match (s.src_storage, s.dst_storage) {
                    (Storage::F32, Storage::F32) => String::new(),
                    (from, to) => format!(" {}->{}", from.name(), to.name()),
                };
                format!("depthwise {k}x{k} s{stride} {isa} c={c}{io} +bias{tail}")
            }
            StepOp::Affine(s) => {
                let what = match s.scale {
                    Scale::Owned(_) => "channel affine",
                    Scale::Gate(_) => "channel scale by gate",
                };
                format!("{what}{}", epilogue(s.accumulate, s.relu))
            }
            StepOp::Pool(_) => "global average pool".into(),
            StepOp::Unary { op, .. } => op.name().into(),
            StepOp::Max { srcs, .. } => format!("element-wise max of {}", srcs.len()),
            StepOp::MaxPool { shape, .. } => format!(
                "max pool {0}x{0} stride {1} (nhwc)",
                shape.kernel, shape.stride
            ),
            StepOp::CopyChannels { geometry, .. } => format!(
                "channel copy, {} runs per pixel (nhwc)",
                geometry.runs.len()
            ),
            StepOp::Broadcast { .. } => "broadcast per image".into(),
            StepOp::ToNchw { dst: None, .. } => "copy to output (nchw)".into(),
            StepOp::ToNchw { .. } => "layout nhwc->nchw".into(),
        }
    }

    /// The kind used to group per-layer times.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            StepOp::ToNhwc { .. } | StepOp::ToNchw { .. } => "layout",
            StepOp::Pad { .. } => "layout",
            StepOp::ToHalf { .. } => "convert",
            StepOp::Gemm(_) | StepOp::Conv(_) => "gemm",
            StepOp::Depthwise(_) => "depthwise",
            StepOp::Affine(_) => "channelwise",
            StepOp::Pool(_) | StepOp::MaxPool { .. } => "pool",
            StepOp::Unary { .. } | StepOp::Max { .. } => "elementwise",
            StepOp::CopyChannels { .. } | StepOp::Broadcast { .. } => "layout",
        }
    }
}

pub(crate) struct Step {
    /// The graph nodes this step carries out, joined by `+`.
    pub label: String,
    pub op: StepOp,
}

/// The compiled plan: steps, and the physical buffer of every slot.
pub(crate) struct Plan {
    pub steps: Vec<Step>,
    pub buffers: Vec<AlignedBuffer>,
    pub loc_buffer: Vec<usize>,
    pub fusions: Fusions,
}

/// Counts of what the compiler fused, for the plan description.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Fusions {
    pub batch_norms_into_conv: usize,
    pub relus_into_epilogue: usize,
    pub adds_into_accumulation: usize,
    /// Activations a producer writes in bf16 for consumers that read bf16 (no conversion
    /// step between them).
    pub bf16_activations: usize,
}

/// NHWC view of a value: batch, channels, pixels (H * W, or 1 for [N, F]).
fn dims(shape: &[usize]) -> (usize, usize, usize) {
    match shape {
        [n, c, h, w] => (*n, *c, h * w),
        [n, f] => (*n, *f, 1),
        _ => (1, shape.iter().product(), 1),
    }
}

fn slots(src: Source) -> impl Iterator<Item = Loc> {
    match src {
        Source::Slot(loc) => Some(loc),
        Source::GraphInput => None,
    }
    .into_iter()
}

fn source_layout(src: Source) -> &'static str {
    match src {
        Source::GraphInput => "nchw input",
        Source::Slot(_) => "nhwc",
    }
}

struct Compiler<'a> {
    lowered: &'a Lowered,
    graph: &'a Graph,
    /// The instruction set of the f32 kernels.
    isa: Isa,
    precision: Precision,
    /// The instruction set as chosen: AVX512_BF16 runs bf16 GEMMs on its dot product.
    chosen: Isa,
    steps: Vec<Step>,
    loc_len: Vec<usize>,
    /// Slot of each value (input first, then nodes), once written.
    value_loc: Vec<Option<Loc>>,
    /// Per slot, the last step that wrote it.
    last_writer: Vec<Option<usize>>,
    /// value -> the Add node it is accumulated into.
    accumulate_into: HashMap<usize, usize>,
    /// How each value (input first, then nodes) is stored once written.
    value_storage: Vec<Storage>,
    fusions: Fusions,
}

/// Which activations the native kernels run as an epilogue: a ReLU after a kernel that
/// writes through the bias-and-ReLU epilogue.
fn relu_epilogue(producer: &Op, activation: &Op) -> bool {
    *activation == Op::Relu
        && matches!(
            producer,
            Op::Conv2d(_)
                | Op::BatchNorm(_)
                | Op::Add
                | Op::ChannelMul
                | Op::ChannelAdd
                | Op::Linear(_)
        )
}

pub(crate) fn compile(
    graph: &Graph,
    weights: &Weights,
    isa: Isa,
    precision: Precision,
) -> Result<Plan, BackendError> {
    let lowered = Lowered::new(graph, weights, super::NAME, relu_epilogue)?;
    let graph = &lowered.graph;
    let mut c = Compiler::new(&lowered, isa, precision);
    for i in 0..graph.nodes().len() {
        c.node(i)?;
    }
    let out_loc = c.loc_of(graph.output());
    let (batch, channels, pixels) = dims(graph.output_shape());
    c.push(
        "output".into(),
        StepOp::ToNchw {
            batch,
            channels,
            pixels,
            src: out_loc,
            dst: None,
        },
    );
    Ok(c.finish())
}

impl<'a> Compiler<'a> {
    fn new(lowered: &'a Lowered, chosen: Isa, precision: Precision) -> Self {
        let graph = &lowered.graph;
        let mut accumulate_into = HashMap::new();
        let mut fusions = Fusions {
            batch_norms_into_conv: lowered.folded_batch_norms,
            ..Fusions::default()
        };
        for (a, node) in graph.nodes().iter().enumerate() {
            if lowered.sums_in_place(a) {
                for &v in &node.inputs {
                    accumulate_into.insert(value_index(v), a);
                }
                fusions.adds_into_accumulation += 1;
            }
        }
        Self {
            lowered,
            graph,
            isa: chosen.f32_kernels(),
            precision,
            chosen,
            steps: Vec::new(),
            loc_len: Vec::new(),
            value_loc: vec![None; graph.nodes().len() + 1],
            last_writer: Vec::new(),
            accumulate_into,
            value_storage: vec![Storage::F32; graph.nodes().len() + 1],
            fusions,
        }
    }

    fn nodes(&self) -> &'a [models::Node] {
        self.graph.nodes()
    }

    fn new_loc(&mut self, value: ValueId) -> Loc {
        let len = self.graph.value_shape(value).iter().product();
        let loc = self.scratch(len);
        self.value_loc[value_index(value)] = Some(loc);
        loc
    }

    fn scratch(&mut self, len: usize) -> Loc {
        self.loc_len.push(len);
        self.last_writer.push(None);
        self.loc_len.len() - 1
    }

    /// The slot holding `value` in NHWC; the graph input is transposed on first use.
    fn loc_of(&mut self, value: ValueId) -> Loc {
        if value == ValueId::Input && self.value_loc[0].is_none() {
            let (batch, channels, pixels) = dims(self.graph.input_shape());
            let dst = self.new_loc(ValueId::Input);
            let op = StepOp::ToNhwc {
                batch,
                channels,
                pixels,
                dst,
            };
            self.push("input".into(), op);
        }
        self.value_loc[value_index(value)].expect("values are written before they are read")
    }

    /// The slot a step producing `value` writes, and whether it adds into what is there.
    fn target(&mut self, value: ValueId) -> (Loc, bool) {
        if let Some(&add) = self.accumulate_into.get(&value_index(value)) {
            let add_value = ValueId::Node(add);
            let loc = match self.value_loc[value_index(add_value)] {
                Some(loc) => loc,
                None => self.new_loc(add_value),
            };
            self.value_loc[value_index(value)] = Some(loc);
            let accumulate = self.last_writer[loc].is_some();
            return (loc, accumulate);
        }
        (self.new_loc(value), false)
    }

    fn push(&mut self, label: String, op: StepOp) {
        let index = self.steps.len();
        if let (_, Some(dst)) = op.slots() {
            self.last_writer[dst] = Some(index);
        }
        self.steps.push(Step { label, op });
    }

    fn node(&mut self, i: usize) -> Result<(), BackendError> {
        let node = &self.nodes()[i];
        let value = ValueId::Node(i);
        match &node.op {
            Op::Conv2d(conv) => self.conv(i, *conv),
            Op::BatchNorm(_) => self.batch_norm(i),
            Op::Relu => self.relu(i),
            Op::Add => {
                if self.value_loc[value_index(value)].is_none() {
                    let inputs = node.inputs.clone();
                    self.copy_channels(i, &inputs, false);
                }
                Ok(())
            }
            Op::Sigmoid | Op::Relu6 | Op::HardSigmoid | Op::HardSwish | Op::Silu | Op::Gelu => {
                self.unary(i)
            }
            Op::Max => {
                let srcs = node.inputs.iter().map(|&v| self.loc_of(v)).collect();
                let dst = self.new_loc(value);
                let len = node.shape.iter().product();
                self.push(node.name.clone(), StepOp::Max { srcs, dst, len });
                Ok(())
            }
            Op::MaxPool2d(p) => self.max_pool(i, *p),
            Op::Concat => self.concat(i),
            Op::Slice { start, end } => {
                let runs = vec![(*start, 0, end - start)];
                self.channel_copy(i, runs);
                Ok(())
            }
            Op::ChannelShuffle { groups } => {
                let channels = node.shape[1];
                let per_group = channels / groups;
                let runs = (0..channels)
                    .map(|c| ((c % groups) * per_group + c / groups, c, 1))
                    .collect();
                self.channel_copy(i, runs);
                Ok(())
            }
            Op::GlobalAvgPool => self.global_pool(i),
            Op::ChannelMul | Op::ChannelAdd => self.channel_affine(i),
            Op::Flatten => self.flatten(i),
            Op::Linear(l) => self.linear(i, *l),
        }
    }

    /// A batch norm that no conv took: a per-channel affine step.
    fn batch_norm(&mut self, i: usize) -> Result<(), BackendError> {
        let node = &self.nodes()[i];
        let (scale, shift) = self.lowered.batch_norm_affine(i)?;
        let x = self.loc_of(node.inputs[0]);
        let (out, accumulate) = self.target(ValueId::Node(i));
        let (batch, channels, pixels) = dims(&node.shape);
        let op = StepOp::Affine(AffineStep {
            batch,
            pixels,
            channels,
            x,
            out,
            scale: Scale::Owned(AlignedBuffer::from_slice(&scale)),
            shift: Scale::Owned(AlignedBuffer::from_slice(&shift)),
            accumulate,
            relu: false,
        });
        self.push(node.name.clone(), op);
        Ok(())
    }

    /// A ReLU: in the epilogue of the step that last wrote its input, when the lowering put it
    /// there; else a step of its own.
    fn relu(&mut self, i: usize) -> Result<(), BackendError> {
        let node = &self.nodes()[i];
        let input = node.inputs[0];
        let loc = self.loc_of(input);
        let last = self.last_writer[loc];
        if let (true, Some(step)) = (self.lowered.in_epilogue(i), last) {
            if self.steps[step].op.fuse_relu() {
                self.steps[step].label.push_str(&format!("+{}", node.name));
                self.value_loc[value_index(ValueId::Node(i))] = Some(loc);
                self.value_storage[value_index(ValueId::Node(i))] =
                    self.value_storage[value_index(input)];
                self.fusions.relus_into_epilogue += 1;
                return Ok(());
            }
        }
        if self.value_storage[value_index(input)] != Storage::F32 {
            let reason = "a ReLU planned into a bf16 producer's epilogue could not be fused";
            return Err(self.lowered.error(i, reason));
        }
        self.copy_channels(i, &[input], true);
        Ok(())
    }

    /// An element-wise activation other than ReLU.
    fn unary(&mut self, i: usize) -> Result<(), BackendError> {
        let node = &self.nodes()[i];
        let op = match node.op {
            Op::Sigmoid => Unary::Sigmoid,
            Op::Relu6 => Unary::Relu6,
            Op::HardSigmoid => Unary::HardSigmoid,
            Op::HardSwish => Unary::HardSwish,
            Op::Silu => Unary::Silu,
            _ => Unary::Gelu,
        };
        let src = self.loc_of(node.inputs[0]);
        let dst = self.new_loc(ValueId::Node(i));
        let len = node.shape.iter().product();
        self.push(node.name.clone(), StepOp::Unary { op, src, dst, len });
        Ok(())
    }

    /// Max pooling over windows (NHWC).
    fn max_pool(&mut self, i: usize, p: MaxPool2d) -> Result<(), BackendError> {
        let node = &self.nodes()[i];
        let x = self.graph.value_shape(node.inputs[0]);
        let shape = DepthwiseShape {
            batch: x[0],
            channels: x[1],
            height: x[2],
            width: x[3],
            kernel: p.kernel,
            stride: p.stride,
            padding: p.padding,
            out_height: node.shape[2],
            out_width: node.shape[3],
        };
        let src = self.loc_of(node.inputs[0]);
        let dst = self.new_loc(ValueId::Node(i));
        self.push(node.name.clone(), StepOp::MaxPool { shape, src, dst });
        Ok(())
    }

    /// Channel concatenation: one channel copy per input.
    fn concat(&mut self, i: usize) -> Result<(), BackendError> {
        let node = &self.nodes()[i];
        let (batch, channels, pixels) = dims(&node.shape);
        let dst = self.new_loc(ValueId::Node(i));
        let mut to = 0;
        for &input in &node.inputs.clone() {
            let part = self.graph.value_shape(input)[1];
            let geometry = ChannelCopy {
                rows: batch * pixels,
                src_channels: part,
                dst_channels: channels,
                runs: vec![(0, to, part)],
            };
            let src = self.loc_of(input);
            self.push(
                node.name.clone(),
                StepOp::CopyChannels { geometry, src, dst },
            );
            to += part;
        }
        Ok(())
    }

    /// Global average pooling.
    fn global_pool(&mut self, i: usize) -> Result<(), BackendError> {
        let node = &self.nodes()[i];
        let (batch, channels, pixels) = dims(self.graph.value_shape(node.inputs[0]));
        let src = self.loc_of(node.inputs[0]);
        let dst = self.new_loc(ValueId::Node(i));
        self.push(
            node.name.clone(),
            StepOp::Pool(PoolStep {
                batch,
                pixels,
                channels,
                src,
                dst,
            }),
        );
        Ok(())
    }

    /// x times (or plus) a per-image, per-channel operand: squeeze-excite's scaling.
    fn channel_affine(&mut self, i: usize) -> Result<(), BackendError> {
        let node = &self.nodes()[i];
        let (batch, channels, pixels) = dims(&node.shape);
        let x = self.loc_of(node.inputs[0]);
        let operand = self.per_channel_operand(i);
        let out = self.new_loc(ValueId::Node(i));
        let (scale, shift) = if node.op == Op::ChannelMul {
            (
                Scale::Gate(operand),
                Scale::Owned(AlignedBuffer::zeros(channels)),
            )
        } else {
            let ones = AlignedBuffer::from_slice(&vec![1.0; channels]);
            (Scale::Owned(ones), Scale::Gate(operand))
        };
        let op = StepOp::Affine(AffineStep {
            batch,
            pixels,
            channels,
            x,
            out,
            scale,
            shift,
            accumulate: false,
            relu: false,
        });
        self.push(node.name.clone(), op);
        Ok(())
    }

    /// Flatten: free when the map is 1x1 (it shares the slot), else back to NCHW order.
    fn flatten(&mut self, i: usize) -> Result<(), BackendError> {
        let node = &self.nodes()[i];
        let value = ValueId::Node(i);
        let (batch, channels, pixels) = dims(self.graph.value_shape(node.inputs[0]));
        let src = self.loc_of(node.inputs[0]);
        if pixels == 1 {
            self.value_loc[value_index(value)] = Some(src);
        } else {
            let dst = self.new_loc(value);
            self.push(
                node.name.clone(),
                StepOp::ToNchw {
                    batch,
                    channels,
                    pixels,
                    src,
                    dst: Some(dst),
                },
            );
        }
        Ok(())
    }

    /// A fully connected layer as a GEMM.
    fn linear(&mut self, i: usize, l: Linear) -> Result<(), BackendError> {
        let node = &self.nodes()[i];
        let value = ValueId::Node(i);
        let w = self.lowered.param(i, "weight")?;
        let bias = l.bias.then(|| self.lowered.param(i, "bias")).transpose()?;
        let (k, n) = (l.in_features, l.out_features);
        let packed = self.pack_gemm(k, n, |kk, col| w[col * k + kk], bias, (true, Storage::F32));
        let m = node.shape[0];
        let input = self.loc_of(node.inputs[0]);
        let (a, lda) = self.gemm_operand(i, input, m, k);
        let (c, accumulate) = self.target(value);
        self.push(
            node.name.clone(),
            StepOp::Gemm(GemmStep {
                packed,
                m,
                a,
                lda,
                c,
                ldc: n,
                c_storage: Storage::F32,
                accumulate,
                relu: false,
            }),
        );
        Ok(())
    }

    /// The slot of node `i`'s second input as one value per image and channel: a [N, 1, 1, 1]
    /// operand is broadcast over the channels first.
    fn per_channel_operand(&mut self, i: usize) -> Loc {
        let node = &self.nodes()[i];
        let (batch, channels) = (node.shape[0], node.shape[1]);
        let operand = node.inputs[1];
        let src = self.loc_of(operand);
        if self.graph.value_shape(operand)[1] == channels {
            return src;
        }
        let dst = self.scratch(batch * channels);
        let op = StepOp::Broadcast {
            batch,
            channels,
            src,
            dst,
        };
        self.push(format!("{}.broadcast", node.name), op);
        dst
    }

    /// Node `i` as per-pixel channel runs copied from its first input.
    fn channel_copy(&mut self, i: usize, runs: Vec<(usize, usize, usize)>) {
        let node = &self.nodes()[i];
        let input = node.inputs[0];
        let (batch, channels, pixels) = dims(&node.shape);
        let geometry = ChannelCopy {
            rows: batch * pixels,
            src_channels: self.graph.value_shape(input)[1],
            dst_channels: channels,
            runs,
        };
        let src = self.loc_of(input);
        let dst = self.new_loc(ValueId::Node(i));
        self.push(
            node.name.clone(),
            StepOp::CopyChannels { geometry, src, dst },
        );
    }

    /// out = sum of `inputs` (each scaled by 1), then an optional ReLU: an unfused Add or ReLU.
    fn copy_channels(&mut self, i: usize, inputs: &[ValueId], relu: bool) {
        let node = &self.nodes()[i];
        let (batch, channels, pixels) = dims(&node.shape);
        let out = self.new_loc(ValueId::Node(i));
        for (j, &input) in inputs.iter().enumerate() {
            let x = self.loc_of(input);
            let op = StepOp::Affine(AffineStep {
                batch,
                pixels,
                channels,
                x,
                out,
                scale: Scale::Owned(AlignedBuffer::from_slice(&vec![1.0; channels])),
                shift: Scale::Owned(AlignedBuffer::zeros(channels)),
                accumulate: j > 0,
                relu: relu && j + 1 == inputs.len(),
            });
            self.push(node.name.clone(), op);
        }
    }

    /// `weight` as the plan stores it: rounded to the plan's precision.
    fn stored(&self, weight: &[f32]) -> Vec<f32> {
        weight.iter().map(|&w| self.precision.round(w)).collect()
    }

    /// B of a GEMM packed in the plan's precision: as bf16 pairs for the dot-product kernel
    /// when `pairs_ok` (a plain GEMM), as fp16 at fp16, else as floats (rounded to bf16 at
    /// bf16) for the f32 kernels, on the chosen set when C is stored as bf16 (AVX512_BF16
    /// rounds it in one instruction).
    fn pack_gemm(
        &self,
        k: usize,
        n: usize,
        b: impl Fn(usize, usize) -> f32,
        bias: Option<&[f32]>,
        (pairs_ok, c_storage): (bool, Storage),
    ) -> PackedGemm {
        match self.packing(pairs_ok) {
            Packing::Bf16Pairs => return PackedGemm::pack_bf16_pairs(self.chosen, k, n, b, bias),
            Packing::Fp16 => return PackedGemm::pack_fp16(self.isa, k, n, b, bias),
            Packing::F32 => {}
        }
        let isa = match c_storage {
            Storage::Bf16 => self.chosen,
            Storage::F32 => self.isa,
        };
        let precision = self.precision;
        PackedGemm::pack(isa, k, n, |r, c| precision.round(b(r, c)), bias)
    }

    /// How this plan packs a GEMM's weights; `pairs_ok`: the GEMM reads plain rows (the bf16
    /// dot kernel reads no implicit-GEMM source).
    fn packing(&self, pairs_ok: bool) -> Packing {
        match self.precision {
            Precision::Bf16 if pairs_ok && self.chosen.has_bf16_dot() => Packing::Bf16Pairs,
            Precision::Fp16 => Packing::Fp16,
            _ => Packing::F32,
        }
    }

    /// What a GEMM operand is converted to at this plan's precision, if anything.
    fn narrow(&self, pairs_ok: bool) -> Option<Narrow> {
        match (self.precision, self.packing(pairs_ok)) {
            (Precision::Fp32, _) => None,
            (_, Packing::F32) => Some(Narrow::Bf16AsF32),
            (_, Packing::Bf16Pairs) => Some(Narrow::Bf16),
            (_, Packing::Fp16) => Some(Narrow::Fp16),
        }
    }

    /// The A operand of node `i`'s GEMM, `rows` rows of `cols` floats in slot `a`, in the
    /// plan's precision: `a` itself at fp32; at bf16 and fp16 a scratch slot it is converted
    /// into first. Returns the slot and its row stride (in 16-bit values for the 16-bit
    /// kernels).
    fn gemm_operand(&mut self, i: usize, a: Loc, rows: usize, cols: usize) -> (Loc, usize) {
        let Some(to) = self.narrow(true) else {
            return (a, cols);
        };
        let geometry = ToHalf { rows, cols, to };
        (
            self.half_copy(i, Source::Slot(a), geometry),
            geometry.out_stride(),
        )
    }

    /// The (padded) source of node `i`'s implicit GEMM (`len` floats) in the plan's
    /// precision: at bf16 and fp16 converted into a scratch slot (in the same layout, in the
    /// kernel's format).
    fn rounded_source(&mut self, i: usize, src: Source, len: usize) -> Source {
        let Some(to) = self.narrow(false) else {
            return src;
        };
        Source::Slot(self.half_copy(
            i,
            src,
            ToHalf {
                rows: 1,
                cols: len,
                to,
            },
        ))
    }

    /// A step of node `i` converting `src` to bf16 or fp16 into a new scratch slot.
    fn half_copy(&mut self, i: usize, src: Source, geometry: ToHalf) -> Loc {
        let dst = self.scratch(geometry.out_len());
        let op = StepOp::ToHalf { geometry, src, dst };
        let suffix = match geometry.to {
            Narrow::Fp16 => "to_fp16",
            _ => "to_bf16",
        };
        self.push(format!("{}.{suffix}", self.nodes()[i].name), op);
        dst
    }

    /// A conv (its batch norm already folded in by the lowering): depthwise, a 1x1 as a
    /// GEMM, or any other dense conv as an implicit GEMM.
    fn conv(&mut self, i: usize, conv: Conv2d) -> Result<(), BackendError> {
        let weight = self.lowered.param(i, "weight")?;
        let bias = self
            .lowered
            .bias_or_zeros(i, conv.bias, conv.out_channels)?;
        if conv.is_depthwise() {
            self.depthwise(i, conv, weight, &bias)
        } else if conv.groups != 1 {
            let op = format!("grouped conv2d (groups = {})", conv.groups);
            Err(self.lowered.unsupported(i, op))
        } else if self.runs_as_pointwise(i, conv) {
            self.pointwise(i, conv, weight, &bias);
            Ok(())
        } else {
            self.implicit_gemm(i, conv, weight, &bias);
            Ok(())
        }
    }

    /// Whether conv node `i` runs as a plain GEMM over pixels: a 1x1 conv, stride 1, no
    /// padding, on an NHWC activation.
    fn runs_as_pointwise(&self, i: usize, conv: Conv2d) -> bool {
        let from_input = self.nodes()[i].inputs[0] == ValueId::Input;
        conv.groups == 1 && conv.kernel == 1 && conv.stride == 1 && conv.padding == 0 && !from_input
    }

    /// Whether node `i` reads its input as bf16 when it is stored so: a depthwise conv (its
    /// kernel loads bf16), or a pointwise conv on the bf16 dot kernel whose rows of K values
    /// are the bf16 pairs it reads (K even).
    fn reads_bf16(&self, i: usize) -> bool {
        match self.nodes()[i].op {
            Op::Conv2d(c) if c.is_depthwise() => SUPPORTED_KERNELS.contains(&c.kernel),
            Op::Conv2d(c) => self.runs_as_pointwise(i, c) && c.in_channels % 2 == 0,
            _ => false,
        }
    }

    /// How node `i` stores its result: bf16 when this plan keeps activations in bf16 (bf16 on
    /// a dot-product kernel, whose operands are bf16 anyway), node `i` alone writes its
    /// output (no branch adds into it), the result (after a fused ReLU) is not the graph's
    /// output, and every reader reads bf16; floats otherwise.
    fn output_storage(&self, i: usize) -> Storage {
        if self.narrow(true) != Some(Narrow::Bf16)
            || self
                .accumulate_into
                .contains_key(&value_index(ValueId::Node(i)))
        {
            return Storage::F32;
        }
        let result = self.lowered.epilogue(i).unwrap_or(i);
        let readers = self.lowered.readers(ValueId::Node(result));
        if self.graph.output() == ValueId::Node(result)
            || readers.is_empty()
            || !readers.iter().all(|&r| self.reads_bf16(r))
        {
            return Storage::F32;
        }
        Storage::Bf16
    }

    /// Records how node `i`'s result is stored.
    fn stores(&mut self, i: usize, storage: Storage) -> Storage {
        self.value_storage[value_index(ValueId::Node(i))] = storage;
        if storage == Storage::Bf16 {
            self.fusions.bf16_activations += 1;
        }
        storage
    }

    /// The conv's (batch, in height, in width, out height, out width).
    fn conv_dims(&self, i: usize) -> (usize, usize, usize, usize, usize) {
        let node = &self.nodes()[i];
        let x = self.graph.value_shape(node.inputs[0]);
        (x[0], x[2], x[3], node.shape[2], node.shape[3])
    }

    fn depthwise(
        &mut self,
        i: usize,
        conv: Conv2d,
        weight: &[f32],
        bias: &[f32],
    ) -> Result<(), BackendError> {
        if !SUPPORTED_KERNELS.contains(&conv.kernel) {
            let reason = format!(
                "depthwise kernel {0}x{0} has no native kernel (supported: {SUPPORTED_KERNELS:?})",
                conv.kernel
            );
            return Err(self.lowered.error(i, reason));
        }
        let (batch, height, width, out_height, out_width) = self.conv_dims(i);
        let shape = DepthwiseShape {
            batch,
            channels: conv.in_channels,
            height,
            width,
            kernel: conv.kernel,
            stride: conv.stride,
            padding: conv.padding,
            out_height,
            out_width,
        };
        let weight = self.stored(weight);
        let input = self.nodes()[i].inputs[0];
        let src = self.loc_of(input);
        let src_storage = self.value_storage[value_index(input)];
        let (dst, accumulate) = self.target(ValueId::Node(i));
        let dst_storage = self.stores(i, self.output_storage(i));
        // A layer with bf16 storage runs on the chosen set (AVX512_BF16 rounds in one step).
        let isa = match (src_storage, dst_storage) {
            (Storage::F32, Storage::F32) => self.isa,
            _ => self.chosen,
        };
        let packed = PackedDepthwise::pack(isa, shape, &weight, Some(bias));
        let op = StepOp::Depthwise(DepthwiseStep {
            packed,
            src,
            src_storage,
            dst,
            dst_storage,
            accumulate,
            relu: false,
        });
        self.push(self.lowered.label(i).to_string(), op);
        Ok(())
    }

    /// A 1x1 conv on an NHWC activation: a plain GEMM over pixels.
    fn pointwise(&mut self, i: usize, conv: Conv2d, weight: &[f32], bias: &[f32]) {
        let (k, n) = (conv.in_channels, conv.out_channels);
        let w = |row: usize, col: usize| weight[col * k + row];
        let packed = self.pack_gemm(k, n, w, Some(bias), (true, Storage::F32));
        let (batch, _, _, out_height, out_width) = self.conv_dims(i);
        let m = batch * out_height * out_width;
        let input = self.nodes()[i].inputs[0];
        let loc = self.loc_of(input);
        // A bf16 input is already the bf16 rows the dot kernel reads.
        let (a, lda) = match self.value_storage[value_index(input)] {
            Storage::Bf16 => (loc, k),
            Storage::F32 => self.gemm_operand(i, loc, m, k),
        };
        let (c, accumulate) = self.target(ValueId::Node(i));
        let c_storage = self.stores(i, self.output_storage(i));
        let op = StepOp::Gemm(GemmStep {
            packed,
            m,
            a,
            lda,
            c,
            ldc: n,
            c_storage,
            accumulate,
            relu: false,
        });
        self.push(self.lowered.label(i).to_string(), op);
    }

    /// Any other dense conv: an implicit GEMM on the zero-padded source. The graph input is
    /// read in NCHW (patch order c, kh, kw: PyTorch's weight order), slots in NHWC (patch
    /// order kh, kw, c).
    fn implicit_gemm(&mut self, i: usize, conv: Conv2d, weight: &[f32], bias: &[f32]) {
        let node = &self.nodes()[i];
        let from_input = node.inputs[0] == ValueId::Input;
        let (batch, height, width, out_height, out_width) = self.conv_dims(i);
        let (cin, kernel, kk2) = (conv.in_channels, conv.kernel, conv.kernel * conv.kernel);
        let (k, n) = (cin * kk2, conv.out_channels);
        let (src, pixel, planes) = if from_input {
            (Source::GraphInput, 1, batch * cin)
        } else {
            (Source::Slot(self.loc_of(node.inputs[0])), cin, batch)
        };
        let pad = Pad {
            planes,
            height,
            width,
            pixel,
            padding: conv.padding,
        };
        let (hp, wp) = (pad.padded_height(), pad.padded_width());
        let offset = |kk: usize| {
            if from_input {
                let (c, kh, kw) = (kk / kk2, kk % kk2 / kernel, kk % kernel);
                (c * hp + kh) * wp + kw
            } else {
                let (kh, kw, c) = (kk / cin / kernel, kk / cin % kernel, kk % cin);
                (kh * wp + kw) * cin + c
            }
        };
        let geometry = ConvGeometry {
            batch,
            out_height,
            out_width,
            image_stride: hp * wp * cin,
            row_stride: conv.stride * wp * pixel,
            col_stride: conv.stride * pixel,
            offsets: (0..k).map(offset).collect(),
        };
        let c_storage = self.output_storage(i);
        let packed = if from_input {
            let w = |row: usize, col: usize| weight[col * k + row];
            self.pack_gemm(k, n, w, Some(bias), (false, c_storage))
        } else {
            let w = |row: usize, col: usize| weight[col * k + (row % cin) * kk2 + row / cin];
            self.pack_gemm(k, n, w, Some(bias), (false, c_storage))
        };
        let src = if conv.padding == 0 {
            src
        } else {
            let dst = self.scratch(pad.padded_len());
            let op = StepOp::Pad {
                geometry: pad,
                src,
                dst,
            };
            self.push(format!("{}.pad", node.name), op);
            Source::Slot(dst)
        };
        let src = self.rounded_source(i, src, pad.padded_len());
        let (c, accumulate) = self.target(ValueId::Node(i));
        let c_storage = self.stores(i, c_storage);
        let op = StepOp::Conv(ConvStep {
            packed,
            geometry,
            nchw: from_input,
            src,
            c,
            c_storage,
            accumulate,
            relu: false,
        });
        self.push(self.lowered.label(i).to_string(), op);
    }

    /// Assigns slots to physical buffers: a slot lives from the first to the last step that
    /// touches it, and a buffer is reused once every slot in it is dead.
    fn finish(self) -> Plan {
        let touched = self.steps.iter().map(|step| {
            let (reads, write) = step.op.slots();
            reads.into_iter().chain(write)
        });
        let lifetimes = lifetimes(&self.loc_len, touched);
        let assignment = assign_buffers(&lifetimes);
        Plan {
            steps: self.steps,
            buffers: assignment
                .sizes
                .into_iter()
                .enumerate()
                .map(|(i, len)| AlignedBuffer::zeros(len + stagger(i)))
                .collect(),
            loc_buffer: assignment.buffer_of,
            fusions: self.fusions,
        }
    }
}

/// Floats to skip at the start of buffer `i`. Large buffers come page aligned, and NHWC rows
/// of 256, 512 or 1024 channels are 1, 2 or 4 KiB apart: a kernel's loads from one buffer
/// would then share their low 12 address bits with its stores to another, and the CPU stalls
/// them as possible conflicts (4K aliasing; it made depthwise layers 3x slower). Moving each
/// buffer by a different multiple of 64 bytes (16 floats) modulo 1 KiB avoids that.
pub(crate) fn stagger(i: usize) -> usize {
    16 * (i * 5 % 16)
}
