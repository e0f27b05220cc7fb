//! The GPU plan, before any GPU object exists: which kernel runs each op (with batch norm,
//! bias and the activation fused into the op before them), each dispatch's parameters and
//! workgroup counts, the constants to upload, and which activation buffer every value lives in
//! (buffers are reused once their value is dead). Pure data, so it is tested without an adapter.

use models::graph::{Conv2d, Linear, MaxPool2d, Op, ValueId};
use models::{Graph, Weights};

use crate::backend::BackendError;
use crate::lower::{assign_buffers, lifetimes, Lowered};

/// One compiled compute kernel (a WGSL entry point).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kernel {
    /// Direct convolution: any kernel, stride, padding and groups (stem, dense, grouped).
    Conv,
    /// Depthwise 3x3, stride 1 or 2.
    Depthwise3x3,
    /// 1x1 convolution as a tiled matrix product in workgroup memory.
    Pointwise,
    /// 1x1 convolution, 4x4 outputs per invocation, no workgroup memory (CPU adapters).
    PointwiseDirect,
    /// Fully connected (and 1x1 convolution on a 1x1 map).
    Linear,
    /// Per-channel affine (batch norm) and/or activation.
    Unary,
    /// Two-input sum, max or product.
    Binary,
    /// In-place sum or max of one more input.
    Accumulate,
    /// [N, C, H, W] with [N, C, 1, 1] (or [N, 1, 1, 1]).
    Broadcast,
    GlobalAverage,
    MaxWindow,
    /// Channel copy (concat, slice, channel shuffle).
    Copy,
}

/// A WGSL source file, the bindings it is compiled with, and the size of its uniform block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Module {
    pub name: &'static str,
    pub source: &'static str,
    /// Read-only storage buffers after the uniform (binding 0); the written one comes last.
    pub reads: usize,
    /// Size of the uniform block in u32 words.
    pub words: usize,
}

pub const PRELUDE: &str = include_str!("shaders/prelude.wgsl");

/// What a plan's buffers hold, the kernels' `elem`: f32, or f16 in an fp16 plan (weights and
/// activations stored and moved as f16; the kernels widen every load to f32, where the
/// products of two f16 values are exact, and sum in f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Elem {
    F32,
    F16,
}

impl Elem {
    pub const ALL: [Elem; 2] = [Elem::F32, Elem::F16];

    /// Bytes of one element.
    pub fn bytes(self) -> usize {
        match self {
            Elem::F32 => 4,
            Elem::F16 => 2,
        }
    }

    /// The WGSL that opens every module: the f16 extension where needed, and `elem`.
    fn header(self) -> &'static str {
        match self {
            Elem::F32 => "alias elem = f32;\n",
            Elem::F16 => "enable f16;\nalias elem = f16;\n",
        }
    }
}

impl Module {
    /// The whole WGSL text for buffers of `elem`: the header, the shared prelude, the bindings
    /// for `reads` inputs, the kernels.
    pub fn wgsl(&self, elem: Elem) -> String {
        let bindings = match self.reads {
            1 => include_str!("shaders/bindings_one.wgsl"),
            2 => include_str!("shaders/bindings_two.wgsl"),
            _ => include_str!("shaders/bindings_conv.wgsl"),
        };
        format!("{}{PRELUDE}\n{bindings}\n{}", elem.header(), self.source)
    }
}

impl Kernel {
    pub const ALL: [Kernel; 12] = [
        Kernel::Conv,
        Kernel::Depthwise3x3,
        Kernel::Pointwise,
        Kernel::PointwiseDirect,
        Kernel::Linear,
        Kernel::Unary,
        Kernel::Binary,
        Kernel::Accumulate,
        Kernel::Broadcast,
        Kernel::GlobalAverage,
        Kernel::MaxWindow,
        Kernel::Copy,
    ];

    pub fn module(self) -> Module {
        let (name, source, reads, words) = match self {
            Kernel::Conv => ("conv", include_str!("shaders/conv.wgsl"), 4, 16),
            Kernel::Depthwise3x3 => (
                "depthwise3x3",
                include_str!("shaders/depthwise3x3.wgsl"),
                4,
                12,
            ),
            Kernel::Pointwise | Kernel::PointwiseDirect => {
                ("pointwise", include_str!("shaders/pointwise.wgsl"), 4, 8)
            }
            Kernel::Linear => ("linear", include_str!("shaders/linear.wgsl"), 4, 4),
            Kernel::Unary | Kernel::Binary | Kernel::Accumulate | Kernel::Broadcast => (
                "elementwise",
                include_str!("shaders/elementwise.wgsl"),
                2,
                8,
            ),
            Kernel::GlobalAverage | Kernel::MaxWindow => {
                ("pool", include_str!("shaders/pool.wgsl"), 1, 12)
            }
            Kernel::Copy => ("copy", include_str!("shaders/copy.wgsl"), 1, 12),
        };
        Module {
            name,
            source,
            reads,
            words,
        }
    }

    pub fn entry_point(self) -> &'static str {
        match self {
            Kernel::Unary => "unary",
            Kernel::Binary => "binary",
            Kernel::Accumulate => "accumulate",
            Kernel::Broadcast => "broadcast",
            Kernel::GlobalAverage => "global_average",
            Kernel::MaxWindow => "max_window",
            Kernel::PointwiseDirect => "direct",
            _ => "main",
        }
    }

    /// The op kind for grouping per-layer times (the native backend's names where they match).
    pub fn kind(self) -> &'static str {
        match self {
            Kernel::Conv => "conv",
            Kernel::Depthwise3x3 => "depthwise",
            Kernel::Pointwise | Kernel::PointwiseDirect => "gemm",
            Kernel::Linear => "gemm",
            Kernel::Unary | Kernel::Binary | Kernel::Accumulate | Kernel::Broadcast => {
                "elementwise"
            }
            Kernel::GlobalAverage | Kernel::MaxWindow => "pool",
            Kernel::Copy => "layout",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Conv => "conv-direct",
            Kernel::Depthwise3x3 => "depthwise-3x3",
            Kernel::Pointwise => "pointwise-tiled",
            Kernel::PointwiseDirect => "pointwise-direct",
            Kernel::Linear => "linear",
            Kernel::Unary => "unary",
            Kernel::Binary => "binary",
            Kernel::Accumulate => "accumulate",
            Kernel::Broadcast => "broadcast",
            Kernel::GlobalAverage => "global-average",
            Kernel::MaxWindow => "max-pool",
            Kernel::Copy => "channel-copy",
        }
    }
}

/// Where a dispatch reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferRef {
    /// The graph input (uploaded before each run).
    Input,
    /// An activation buffer (index into `GpuPlan::activation_sizes`).
    Activation(usize),
    /// An uploaded constant (index into `GpuPlan::constants`).
    Constant(usize),
}

/// One kernel launch.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatch {
    pub kernel: Kernel,
    /// The uniform block, as u32 words (padded to a multiple of 4).
    pub params: Vec<u32>,
    pub reads: Vec<BufferRef>,
    pub write: BufferRef,
    pub workgroups: [u32; 3],
    /// The graph nodes this dispatch carries out, joined by `+`.
    pub label: String,
}

/// A graph lowered to dispatches over numbered buffers.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuPlan {
    /// The backend it was lowered for (`gpu` or `metal`), for its errors.
    pub backend: &'static str,
    pub dispatches: Vec<Dispatch>,
    pub constants: Vec<Vec<f32>>,
    /// Size in elements of each activation buffer.
    pub activation_sizes: Vec<usize>,
    pub input_len: usize,
    pub output: BufferRef,
    pub output_len: usize,
}

/// Activation codes shared with `prelude.wgsl`.
fn activation_code(op: &Op) -> Option<u32> {
    Some(match op {
        Op::Relu => 1,
        Op::Relu6 => 2,
        Op::Sigmoid => 3,
        Op::HardSigmoid => 4,
        Op::HardSwish => 5,
        Op::Silu => 6,
        Op::Gelu => 7,
        _ => return None,
    })
}

const WORKGROUP: usize = 256;
const MAX_GROUPS: usize = 65_535;

/// Workgroup counts covering `groups` workgroups in x, spilling into y.
fn spread(groups: usize) -> Result<[u32; 3], String> {
    let groups = groups.max(1);
    let x = groups.min(MAX_GROUPS);
    let y = groups.div_ceil(x);
    if y > MAX_GROUPS {
        return Err(format!("{groups} workgroups exceed the dispatch limit"));
    }
    Ok([x as u32, y as u32, 1])
}

fn u32_of(values: &[usize]) -> Result<Vec<u32>, String> {
    values
        .iter()
        .map(|&v| u32::try_from(v).map_err(|_| format!("size {v} exceeds u32")))
        .collect()
}

/// How the element-wise kernels combine two values (`MODE_*` in `elementwise.wgsl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Combine {
    Add = 0,
    Max = 1,
    Mul = 2,
}

/// The parameters every element-wise kernel reads (`Params` in `elementwise.wgsl`), by name.
#[derive(Debug, Clone, Copy)]
struct Elementwise {
    /// Elements of the output, and its spatial size and channels (NCHW).
    len: usize,
    spatial: usize,
    channels: usize,
    /// The activation code run on the result (0: none).
    act: u32,
    combine: Combine,
    /// The second operand holds a per-channel scale then shift.
    affine: bool,
    /// The second operand's strides per image and per channel (broadcast).
    v_strides: [usize; 2],
}

impl Elementwise {
    /// Over a tensor of `shape`: no activation, adding, no affine, no broadcast.
    fn over(shape: &[usize]) -> Self {
        Self {
            len: models::tensor::numel(shape),
            spatial: shape
                .get(2..)
                .map_or(1, |s| s.iter().product::<usize>().max(1)),
            channels: shape.get(1).copied().unwrap_or(1),
            act: 0,
            combine: Combine::Add,
            affine: false,
            v_strides: [0, 0],
        }
    }

    fn words(&self) -> Result<Vec<u32>, String> {
        let sizes = u32_of(&[self.len, self.spatial, self.channels])?;
        let strides = u32_of(&self.v_strides)?;
        let flags = [self.act, self.combine as u32, self.affine as u32];
        Ok([&sizes[..], &flags, &strides].concat())
    }
}

/// A value's producer in the lowered plan, before buffers are assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Input,
    Value(usize),
    Constant(usize),
}

struct PendingDispatch {
    kernel: Kernel,
    params: Vec<u32>,
    reads: Vec<Slot>,
    write: usize,
    workgroups: [u32; 3],
    label: String,
}

/// What the plan is lowered for, where kernels differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The backend's name (`gpu` or `metal`), for its errors.
    pub backend: &'static str,
    /// The kernel for 1x1 convolutions.
    pub pointwise: PointwiseKernel,
}

impl Default for Target {
    fn default() -> Self {
        Self {
            backend: "gpu",
            pointwise: PointwiseKernel::default(),
        }
    }
}

/// Which kernel runs 1x1 convolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PointwiseKernel {
    /// Tiled in workgroup memory: the GPU kernel.
    #[default]
    Tiled,
    /// Barrier-free: for CPU adapters (lavapipe, SwiftShader), where a workgroup barrier
    /// switches between every invocation of the workgroup (2.3x faster there on S1).
    Direct,
}

/// Which activations the GPU kernels run as an epilogue: any the prelude has a code for,
/// after a kernel that writes through the fused epilogue.
fn activation_epilogue(producer: &Op, activation: &Op) -> bool {
    activation_code(activation).is_some()
        && matches!(
            producer,
            Op::Conv2d(_)
                | Op::Linear(_)
                | Op::BatchNorm(_)
                | Op::Add
                | Op::Max
                | Op::ChannelMul
                | Op::ChannelAdd
        )
}

/// Lowers `graph` with `weights` into a plan for `target`.
pub fn lower(graph: &Graph, weights: &Weights, target: Target) -> Result<GpuPlan, BackendError> {
    let lowered = Lowered::new(graph, weights, target.backend, activation_epilogue)?;
    let mut lowering = Lowering::new(&lowered, target);
    for i in 0..lowered.nodes().len() {
        lowering.lower_node(i)?;
    }
    lowering.finish()
}

struct Lowering<'a> {
    lowered: &'a Lowered,
    graph: &'a Graph,
    target: Target,
    /// For each node, the value that holds its output (a fused node shares its producer's).
    value_of: Vec<Option<usize>>,
    value_len: Vec<usize>,
    constants: Vec<Vec<f32>>,
    pending: Vec<PendingDispatch>,
}

impl<'a> Lowering<'a> {
    fn new(lowered: &'a Lowered, target: Target) -> Self {
        let graph = &lowered.graph;
        Self {
            lowered,
            graph,
            target,
            value_of: vec![None; graph.nodes().len()],
            value_len: Vec::new(),
            constants: Vec::new(),
            pending: Vec::new(),
        }
    }

    fn param(&self, i: usize, suffix: &str) -> Result<&'a [f32], BackendError> {
        self.lowered.param(i, suffix)
    }

    fn constant(&mut self, data: Vec<f32>) -> Slot {
        self.constants.push(data);
        Slot::Constant(self.constants.len() - 1)
    }

    fn slot(&self, id: ValueId) -> Slot {
        match id {
            ValueId::Input => Slot::Input,
            ValueId::Node(j) => Slot::Value(self.value_of[j].expect("producers come first")),
        }
    }

    fn new_value(&mut self, len: usize) -> usize {
        self.value_len.push(len);
        self.value_len.len() - 1
    }

    /// The activation node `i` runs as its epilogue: (activation code, last node).
    fn fuse_activation(&self, i: usize) -> (u32, usize) {
        match self.lowered.epilogue(i) {
            Some(j) => (
                activation_code(&self.graph.nodes()[j].op).expect("an activation"),
                j,
            ),
            None => (0, i),
        }
    }

    fn label(&self, first: usize, last: usize) -> String {
        match first == last {
            true => self.lowered.label(first).to_string(),
            false => format!("{}+{}", self.lowered.label(first), self.lowered.label(last)),
        }
    }

    fn push(
        &mut self,
        kernel: Kernel,
        params: Vec<u32>,
        reads: Vec<Slot>,
        write: usize,
        groups: [u32; 3],
        label: String,
    ) {
        self.pending.push(PendingDispatch {
            kernel,
            params: {
                let mut params = params;
                params.resize(kernel.module().words.max(params.len()), 0);
                params
            },
            reads,
            write,
            workgroups: groups,
            label,
        });
    }

    /// Lowers node `i` (and the activation in its epilogue).
    fn lower_node(&mut self, i: usize) -> Result<(), BackendError> {
        let nodes = self.graph.nodes();
        let node = &nodes[i];
        if self.lowered.in_epilogue(i) {
            return Ok(());
        }
        let x = self.slot(node.inputs[0]);
        let in_shape = self.graph.value_shape(node.inputs[0]).to_vec();
        let len = models::tensor::numel(&node.shape);
        match &node.op {
            Op::Conv2d(conv) => self.lower_conv(i, conv, x, &in_shape)?,
            Op::Linear(linear) => self.lower_linear(i, linear)?,
            Op::BatchNorm(_) => self.lower_batch_norm(i)?,
            op if activation_code(op).is_some() => {
                let act = activation_code(op).expect("checked");
                let params = Elementwise {
                    act,
                    ..Elementwise::over(&in_shape)
                };
                self.elementwise((i, i), Kernel::Unary, [x, x], params)?;
            }
            Op::Add | Op::Max => self.lower_sum(i)?,
            Op::ChannelMul | Op::ChannelAdd => self.lower_channel_op(i)?,
            Op::GlobalAvgPool => {
                // One workgroup per plane.
                let planes = in_shape[0] * in_shape[1];
                let out = self.output(i, i, len);
                let (params, invocations) =
                    ([planes, in_shape[2], in_shape[3]], planes * WORKGROUP);
                self.dispatch(
                    (i, i),
                    Kernel::GlobalAverage,
                    &params,
                    vec![x],
                    out,
                    invocations,
                )?;
            }
            Op::MaxPool2d(pool) => self.lower_max_pool(i, pool)?,
            Op::Concat => self.lower_concat(i)?,
            Op::Slice { start, end } => {
                let out = self.output(i, i, len);
                self.copy(
                    i,
                    x,
                    out,
                    end - start,
                    [in_shape[1], *start, 1],
                    [node.shape[1], 0, 1],
                )?;
            }
            Op::ChannelShuffle { groups } => {
                let out = self.output(i, i, len);
                let per_group = in_shape[1] / groups;
                for g in 0..*groups {
                    let src = [in_shape[1], g * per_group, 1];
                    self.copy(i, x, out, per_group, src, [in_shape[1], g, *groups])?;
                }
            }
            Op::Flatten => self.lower_flatten(i)?,
            other => return Err(self.lowered.unsupported(i, other.kind())),
        }
        Ok(())
    }

    /// A fully connected layer, its activation fused.
    fn lower_linear(&mut self, i: usize, linear: &Linear) -> Result<(), BackendError> {
        let node = &self.graph.nodes()[i];
        let x = self.slot(node.inputs[0]);
        let in_shape = self.graph.value_shape(node.inputs[0]).to_vec();
        let len = models::tensor::numel(&node.shape);
        let shift = (self.lowered).bias_or_zeros(i, linear.bias, linear.out_features)?;
        let reads = self.with_parameters(i, x, shift)?;
        let (act, last) = self.fuse_activation(i);
        let (batch, features) = (in_shape[0], [linear.in_features, linear.out_features]);
        let out = self.output(i, last, len);
        let params = [batch, features[0], features[1], act as usize];
        // One workgroup per output.
        let invocations = batch * features[1] * WORKGROUP;
        self.dispatch((i, last), Kernel::Linear, &params, reads, out, invocations)
    }

    /// The reads of a conv or linear: its input `x`, then its weight, a per-channel scale of
    /// ones and `shift` (its bias) as constants.
    fn with_parameters(
        &mut self,
        i: usize,
        x: Slot,
        shift: Vec<f32>,
    ) -> Result<Vec<Slot>, BackendError> {
        let weight = self.param(i, "weight")?.to_vec();
        let scale = vec![1.0; shift.len()];
        Ok(vec![
            x,
            self.constant(weight),
            self.constant(scale),
            self.constant(shift),
        ])
    }

    /// A batch norm that no conv took: a per-channel affine, its activation fused.
    fn lower_batch_norm(&mut self, i: usize) -> Result<(), BackendError> {
        let node = &self.graph.nodes()[i];
        let x = self.slot(node.inputs[0]);
        let in_shape = self.graph.value_shape(node.inputs[0]).to_vec();
        let (scale, shift) = self.lowered.batch_norm_affine(i)?;
        let (act, last) = self.fuse_activation(i);
        let affine = self.constant([scale, shift].concat());
        let params = Elementwise {
            act,
            affine: true,
            ..Elementwise::over(&in_shape)
        };
        self.elementwise((i, last), Kernel::Unary, [x, affine], params)
    }

    /// An element-wise sum or max of two or more inputs: one binary dispatch, then one
    /// accumulating dispatch per further input; the activation fused into the last.
    fn lower_sum(&mut self, i: usize) -> Result<(), BackendError> {
        let node = &self.graph.nodes()[i];
        let len = models::tensor::numel(&node.shape);
        let geometry = |e: String| self.lowered.error(i, e);
        let combine = match node.op {
            Op::Add => Combine::Add,
            _ => Combine::Max,
        };
        let (act, last) = self.fuse_activation(i);
        let out = self.output(i, last, len);
        let inputs: Vec<Slot> = node.inputs.iter().map(|v| self.slot(*v)).collect();
        let label = self.label(i, last);
        let groups = spread(len.div_ceil(WORKGROUP)).map_err(geometry)?;
        for (k, input) in inputs.iter().enumerate().skip(1) {
            // Flat over `len` elements: one spatial position, one channel.
            let params = Elementwise {
                spatial: 1,
                channels: 1,
                act: if k + 1 == inputs.len() { act } else { 0 },
                combine,
                ..Elementwise::over(&node.shape)
            };
            let (kernel, reads) = match k {
                1 => (Kernel::Binary, vec![inputs[0], *input]),
                _ => (Kernel::Accumulate, vec![*input, *input]),
            };
            let words = params.words().map_err(geometry)?;
            self.push(kernel, words, reads, out, groups, label.clone());
        }
        Ok(())
    }

    /// x times (or plus) a per-image, per-channel operand, its activation fused.
    fn lower_channel_op(&mut self, i: usize) -> Result<(), BackendError> {
        let node = &self.graph.nodes()[i];
        let x = self.slot(node.inputs[0]);
        let in_shape = self.graph.value_shape(node.inputs[0]).to_vec();
        let combine = match node.op {
            Op::ChannelMul => Combine::Mul,
            _ => Combine::Add,
        };
        let v = self.slot(node.inputs[1]);
        let v_shape = self.graph.value_shape(node.inputs[1]);
        let strides = if v_shape[1] == 1 {
            [1, 0]
        } else {
            [in_shape[1], 1]
        };
        let (act, last) = self.fuse_activation(i);
        let params = Elementwise {
            act,
            combine,
            v_strides: strides,
            ..Elementwise::over(&in_shape)
        };
        self.elementwise((i, last), Kernel::Broadcast, [x, v], params)
    }

    /// Max pooling over windows.
    fn lower_max_pool(&mut self, i: usize, pool: &MaxPool2d) -> Result<(), BackendError> {
        let node = &self.graph.nodes()[i];
        let x = self.slot(node.inputs[0]);
        let in_shape = self.graph.value_shape(node.inputs[0]).to_vec();
        let len = models::tensor::numel(&node.shape);
        let out = self.output(i, i, len);
        let (s, p, planes) = (&node.shape, pool, node.shape[0] * node.shape[1]);
        let params = [
            planes,
            in_shape[2],
            in_shape[3],
            s[2],
            s[3],
            p.kernel,
            p.stride,
            p.padding,
            len,
        ];
        self.dispatch((i, i), Kernel::MaxWindow, &params, vec![x], out, len)
    }

    /// Channel concatenation: one channel copy per input.
    fn lower_concat(&mut self, i: usize) -> Result<(), BackendError> {
        let node = &self.graph.nodes()[i];
        let len = models::tensor::numel(&node.shape);
        let out = self.output(i, i, len);
        let mut offset = 0;
        for input in &node.inputs {
            let channels = self.graph.value_shape(*input)[1];
            let src = self.slot(*input);
            self.copy(
                i,
                src,
                out,
                channels,
                [channels, 0, 1],
                [node.shape[1], offset, 1],
            )?;
            offset += channels;
        }
        Ok(())
    }

    /// Flatten: its input's value under the new shape (the same elements in the same order).
    fn lower_flatten(&mut self, i: usize) -> Result<(), BackendError> {
        let Slot::Value(v) = self.slot(self.graph.nodes()[i].inputs[0]) else {
            let reason = "flatten of the graph input is not supported";
            return Err(self.lowered.error(i, reason));
        };
        self.value_of[i] = Some(v);
        Ok(())
    }

    /// A new value of `len` floats holding the output of nodes `first..=last`.
    fn output(&mut self, first: usize, last: usize, len: usize) -> usize {
        let value = self.new_value(len);
        self.value_of[first] = Some(value);
        self.value_of[last] = Some(value);
        value
    }

    fn lower_conv(
        &mut self,
        i: usize,
        conv: &Conv2d,
        x: Slot,
        in_shape: &[usize],
    ) -> Result<(), BackendError> {
        let node = &self.graph.nodes()[i];
        let geometry = |e: String| self.lowered.error(i, e);
        let shift = (self.lowered).bias_or_zeros(i, conv.bias, conv.out_channels)?;
        let reads = self.with_parameters(i, x, shift)?;
        let (act, last) = self.fuse_activation(i);
        let out_shape = &node.shape;
        let len = models::tensor::numel(out_shape);
        let out = self.output(i, last, len);
        let label = self.label(i, last);
        let (kernel, params, groups) = self
            .conv_kernel(conv, in_shape, out_shape, act)
            .map_err(geometry)?;
        self.push(kernel, params, reads, out, groups, label);
        Ok(())
    }

    /// The kernel, its parameters and its workgroups for a conv from `in_shape` to
    /// `out_shape` with activation `act` in its epilogue.
    fn conv_kernel(
        &self,
        conv: &Conv2d,
        in_shape: &[usize],
        out_shape: &[usize],
        act: u32,
    ) -> Result<(Kernel, Vec<u32>, [u32; 3]), String> {
        let len = models::tensor::numel(out_shape);
        let (n, hout, wout) = (out_shape[0], out_shape[2], out_shape[3]);
        let (hin, win) = (in_shape[2], in_shape[3]);
        let pointwise =
            conv.kernel == 1 && conv.stride == 1 && conv.padding == 0 && conv.groups == 1;
        Ok(if pointwise && hin * win == 1 {
            let params = u32_of(&[n, conv.in_channels, conv.out_channels, act as usize]);
            (Kernel::Linear, params?, spread(n * conv.out_channels)?)
        } else if pointwise {
            let spatial = hin * win;
            let (cout, cin) = (conv.out_channels, conv.in_channels);
            let params = u32_of(&[cout, cin, spatial, act as usize, n]);
            if self.target.pointwise == PointwiseKernel::Direct {
                let invocations = n * cout.div_ceil(4) * spatial.div_ceil(4);
                let groups = spread(invocations.div_ceil(WORKGROUP));
                (Kernel::PointwiseDirect, params?, groups?)
            } else {
                let groups = [spatial.div_ceil(64), cout.div_ceil(64), n];
                let groups = u32_of(&groups).map(|g| [g[0], g[1], g[2]]);
                (Kernel::Pointwise, params?, groups?)
            }
        } else if conv.is_depthwise() && conv.kernel == 3 && conv.stride <= 2 {
            let params = u32_of(&[
                n,
                conv.out_channels,
                hin,
                win,
                hout,
                wout,
                conv.stride,
                conv.padding,
                act as usize,
                len,
            ]);
            (
                Kernel::Depthwise3x3,
                params?,
                spread(len.div_ceil(WORKGROUP))?,
            )
        } else {
            let params = u32_of(&[
                n,
                conv.in_channels,
                hin,
                win,
                conv.out_channels,
                hout,
                wout,
                conv.kernel,
                conv.stride,
                conv.padding,
                conv.groups,
                act as usize,
                len,
            ]);
            (Kernel::Conv, params?, spread(len.div_ceil(WORKGROUP))?)
        })
    }

    /// An element-wise dispatch over nodes `first..=last` reading `[a, b]`.
    fn elementwise(
        &mut self,
        (first, last): (usize, usize),
        kernel: Kernel,
        reads: [Slot; 2],
        params: Elementwise,
    ) -> Result<(), BackendError> {
        let geometry = |e: String| self.lowered.error(first, e);
        let out = self.output(first, last, params.len);
        let words = params.words().map_err(geometry)?;
        let groups = spread(params.len.div_ceil(WORKGROUP)).map_err(geometry)?;
        let label = self.label(first, last);
        self.push(kernel, words, reads.to_vec(), out, groups, label);
        Ok(())
    }

    /// Copies `count` channels: `src`/`dst` are [channels, offset, step].
    fn copy(
        &mut self,
        i: usize,
        x: Slot,
        out: usize,
        count: usize,
        src: [usize; 3],
        dst: [usize; 3],
    ) -> Result<(), BackendError> {
        let node = &self.graph.nodes()[i];
        let spatial: usize = node.shape[2..].iter().product();
        let total = node.shape[0] * count * spatial;
        let params = [
            total, spatial, count, src[0], src[1], src[2], dst[0], dst[1], dst[2],
        ];
        self.dispatch((i, i), Kernel::Copy, &params, vec![x], out, total)
    }

    /// Pushes `kernel` for nodes `first..=last` with `params`, over `invocations` threads in
    /// workgroups of `WORKGROUP`; sizes that do not fit the shader's u32 are an error.
    fn dispatch(
        &mut self,
        (first, last): (usize, usize),
        kernel: Kernel,
        params: &[usize],
        reads: Vec<Slot>,
        out: usize,
        invocations: usize,
    ) -> Result<(), BackendError> {
        let geometry = |e: String| self.lowered.error(first, e);
        let params = u32_of(params).map_err(geometry)?;
        let groups = spread(invocations.div_ceil(WORKGROUP)).map_err(geometry)?;
        let label = self.label(first, last);
        self.push(kernel, params, reads, out, groups, label);
        Ok(())
    }

    /// Assigns buffers: a value lives from the dispatch that first writes it to the last that
    /// reads or writes it (the output to the end), then its buffer goes to the next value
    /// that fits it best.
    fn finish(self) -> Result<GpuPlan, BackendError> {
        let output_value = match self.graph.output() {
            ValueId::Input => {
                let reason = "the graph output is its input; nothing to run";
                return Err(self.lowered.error_of_graph(reason));
            }
            ValueId::Node(j) => self.value_of[j].expect("every node was lowered"),
        };
        let touched = self.pending.iter().map(|d| {
            let reads = d.reads.iter().filter_map(|s| match s {
                Slot::Value(v) => Some(*v),
                _ => None,
            });
            reads.chain([d.write])
        });
        let mut lifetimes = lifetimes(&self.value_len, touched);
        if let Some(life) = lifetimes[output_value].as_mut() {
            life.last = self.pending.len();
        }
        let buffers = assign_buffers(&lifetimes);
        let buffer_ref = |slot: &Slot| match slot {
            Slot::Input => BufferRef::Input,
            Slot::Constant(c) => BufferRef::Constant(*c),
            Slot::Value(v) => BufferRef::Activation(buffers.buffer_of[*v]),
        };
        let dispatches = self
            .pending
            .iter()
            .map(|pending| Dispatch {
                kernel: pending.kernel,
                params: pending.params.clone(),
                reads: pending.reads.iter().map(buffer_ref).collect(),
                write: buffer_ref(&Slot::Value(pending.write)),
                workgroups: pending.workgroups,
                label: pending.label.clone(),
            })
            .collect();
        Ok(GpuPlan {
            backend: self.target.backend,
            dispatches,
            constants: self.constants,
            activation_sizes: buffers.sizes,
            input_len: models::tensor::numel(self.graph.input_shape()),
            output: BufferRef::Activation(buffers.buffer_of[output_value]),
            output_len: models::tensor::numel(self.graph.output_shape()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::{Form, InputSize, Model, Variant};

    fn plan_of(model: Model, form: Form) -> (Graph, GpuPlan) {
        let size = InputSize::square(1, 224);
        let graph = model.build(form, size).unwrap();
        let plan = lower(&graph, &model.seeded_weights(form, 1), Target::default()).unwrap();
        (graph, plan)
    }

    fn count(graph: &Graph, pick: impl Fn(&Op) -> bool) -> usize {
        graph.nodes().iter().filter(|n| pick(&n.op)).count()
    }

    #[test]
    fn reparameterized_mobileone_is_one_dispatch_per_conv_with_relu_fused() {
        let (graph, plan) = plan_of(Model::MobileOne(Variant::S0), Form::Reparameterized);
        let convs = count(&graph, |op| matches!(op, Op::Conv2d(_)));
        let kernels: Vec<Kernel> = plan.dispatches.iter().map(|d| d.kernel).collect();
        assert!(!kernels.contains(&Kernel::Unary), "every ReLU is fused");
        let conv_dispatches = kernels
            .iter()
            .filter(|k| {
                matches!(
                    k,
                    Kernel::Conv | Kernel::Depthwise3x3 | Kernel::Pointwise | Kernel::Linear
                )
            })
            .count();
        // Every conv, plus the classifier (linear).
        assert_eq!(conv_dispatches, convs + 1);
        assert!(kernels.contains(&Kernel::Pointwise) && kernels.contains(&Kernel::Depthwise3x3));
        // A chain needs two buffers in turn (plus the SE-free pool and classifier outputs).
        assert!(
            plan.activation_sizes.len() <= 3,
            "{:?}",
            plan.activation_sizes
        );
    }

    #[test]
    fn unfused_mobileone_runs_every_branch_with_its_batch_norm_fused() {
        let (graph, plan) = plan_of(Model::MobileOne(Variant::S0), Form::Unfused);
        let nodes = graph.nodes();
        let identity_bns = nodes
            .iter()
            .filter(|n| {
                matches!(n.op, Op::BatchNorm(_))
                    && !matches!(n.inputs[0], ValueId::Node(j) if matches!(nodes[j].op, Op::Conv2d(_)))
            })
            .count();
        let unary = plan.dispatches.iter().filter(|d| d.kernel == Kernel::Unary);
        assert_eq!(
            unary.count(),
            identity_bns,
            "only the identity branches' batch norms run alone"
        );
        let convs = count(&graph, |op| matches!(op, Op::Conv2d(_)));
        let branches = plan
            .dispatches
            .iter()
            .filter(|d| d.kernel != Kernel::Linear && d.label.contains("conv"));
        assert_eq!(branches.count(), convs, "one dispatch per conv branch");
        let adds = count(&graph, |op| *op == Op::Add);
        let binary = plan
            .dispatches
            .iter()
            .filter(|d| d.kernel == Kernel::Binary);
        assert_eq!(binary.count(), adds);
        assert!(
            plan.dispatches.iter().any(|d| d.label.ends_with("relu")
                && matches!(d.kernel, Kernel::Binary | Kernel::Accumulate)),
            "the block's ReLU is fused into its last sum"
        );
        let values: usize = nodes.iter().map(|n| models::tensor::numel(&n.shape)).sum();
        let allocated: usize = plan.activation_sizes.iter().sum();
        assert!(
            allocated * 4 < values,
            "buffers are reused: {allocated} of {values}"
        );
    }

    #[test]
    fn channel_shuffle_interleaves_the_groups() {
        let (graph, plan) = plan_of(Model::ShuffleNetV2x2, Form::Reparameterized);
        let shuffle = graph
            .nodes()
            .iter()
            .find(|n| matches!(n.op, Op::ChannelShuffle { .. }))
            .unwrap();
        let copies: Vec<&Dispatch> = plan
            .dispatches
            .iter()
            .filter(|d| d.label == shuffle.name)
            .collect();
        let channels = shuffle.shape[1] as u32;
        assert_eq!(copies.len(), 2);
        for (g, d) in copies.iter().enumerate() {
            // [total, spatial, count, src_channels, src_offset, src_step, dst_channels,
            //  dst_offset, dst_step]
            assert_eq!(d.params[2], channels / 2);
            assert_eq!(
                &d.params[3..9],
                &[channels, g as u32 * channels / 2, 1, channels, g as u32, 2]
            );
        }
    }

    #[test]
    fn large_dispatches_spill_into_y() {
        assert_eq!(spread(10).unwrap(), [10, 1, 1]);
        assert_eq!(spread(70_000).unwrap(), [65_535, 2, 1]);
        assert!(spread(65_535 * 65_536).is_err());
    }
}
