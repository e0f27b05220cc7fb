//! The wgpu side of the GPU backend: one shared device per API (adapter found once, kernels
//! compiled once), and `GpuRun`, a prepared plan whose weights and buffers live on the GPU,
//! that records the whole forward pass into one compute pass and one submission.

use std::collections::BTreeMap;
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use half::f16;
use models::{Graph, Precision, Tensor, Weights};
use wgpu::util::DeviceExt;

use super::plan::{self, BufferRef, Dispatch, Elem, GpuPlan, Kernel, PointwiseKernel};
use super::{AdapterSummary, Api};
use crate::backend::{check_run_shapes, BackendError, LayerTime, PrepareOptions, Prepared};

/// A device with every kernel compiled.
pub struct Context {
    pub adapter: AdapterSummary,
    device: wgpu::Device,
    queue: wgpu::Queue,
    timestamps: bool,
    /// The adapter offers f16 in shaders (`SHADER_F16`): the device has it and every kernel
    /// is compiled for f16 buffers too.
    shader_f16: bool,
    pipelines: BTreeMap<(Kernel, Elem), (wgpu::ComputePipeline, wgpu::BindGroupLayout)>,
    /// Errors wgpu reports outside an error scope (kept, never a panic).
    uncaptured: Arc<Mutex<Vec<String>>>,
}

static ANY: OnceLock<Result<Arc<Context>, String>> = OnceLock::new();
static METAL: OnceLock<Result<Arc<Context>, String>> = OnceLock::new();

/// The shared context for `api`, created on first use.
pub fn context(api: Api) -> Result<Arc<Context>, String> {
    let cell = match api {
        Api::Any => &ANY,
        Api::Metal => &METAL,
    };
    cell.get_or_init(|| Context::new(api).map(Arc::new)).clone()
}

/// The first adapter wgpu finds for any API, described (for the `metal` backend's message).
pub fn any_adapter() -> Option<AdapterSummary> {
    context(Api::Any).ok().map(|c| c.adapter.clone())
}

fn summarize(info: &wgpu::AdapterInfo) -> AdapterSummary {
    AdapterSummary {
        name: info.name.clone(),
        api: format!("{:?}", info.backend),
        driver: [info.driver.as_str(), info.driver_info.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" "),
        device_type: format!("{:?}", info.device_type),
    }
}

impl Context {
    fn new(api: Api) -> Result<Self, String> {
        let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        // WGPU_BACKEND (read by `from_env`) can narrow the choice further.
        descriptor.backends &= match api {
            Api::Any => wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12,
            Api::Metal => wgpu::Backends::METAL,
        };
        let instance = wgpu::Instance::new(descriptor);
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        };
        let adapter = pollster::block_on(instance.request_adapter(&options))
            .map_err(|_| super::NO_ADAPTER.to_string())?;
        let summary = summarize(&adapter.get_info());
        let timestamps = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let shader_f16 = adapter.features().contains(wgpu::Features::SHADER_F16);
        let mut required_features = wgpu::Features::empty();
        if timestamps {
            required_features |= wgpu::Features::TIMESTAMP_QUERY;
        }
        if shader_f16 {
            required_features |= wgpu::Features::SHADER_F16;
        }
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("onebench"),
            required_features,
            required_limits: adapter.limits(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&descriptor))
            .map_err(|e| format!("adapter {} refused a device: {e}", summary.name))?;
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&uncaptured);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut errors) = sink.lock() {
                errors.push(e.to_string());
            }
        }));
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let elems: &[Elem] = match shader_f16 {
            true => &Elem::ALL,
            false => &[Elem::F32],
        };
        let pipelines = Kernel::ALL
            .iter()
            .flat_map(|&k| elems.iter().map(move |&e| (k, e)))
            .map(|(k, e)| ((k, e), compile(&device, k, e)))
            .collect();
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(format!(
                "the kernels did not compile on {}: {e}",
                summary.name
            ));
        }
        Ok(Self {
            adapter: summary,
            device,
            queue,
            timestamps,
            shader_f16,
            pipelines,
            uncaptured,
        })
    }

    /// Whether the adapter has timestamp queries (GPU time, per-layer times).
    pub fn has_timestamps(&self) -> bool {
        self.timestamps
    }

    pub fn offers_shader_f16(&self) -> bool {
        self.shader_f16
    }

    fn take_uncaptured(&self) -> Option<String> {
        let mut errors = self.uncaptured.lock().ok()?;
        (!errors.is_empty()).then(|| errors.drain(..).collect::<Vec<_>>().join("; "))
    }
}

fn compile(
    device: &wgpu::Device,
    kernel: Kernel,
    elem: Elem,
) -> (wgpu::ComputePipeline, wgpu::BindGroupLayout) {
    let module = kernel.module();
    let source = module.wgsl(elem);
    let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(module.name),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let storage = |binding: u32, read_only: bool| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    };
    let mut entries = vec![wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }];
    for r in 0..module.reads {
        entries.push(storage(1 + r as u32, true));
    }
    entries.push(storage(1 + module.reads as u32, false));
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(module.name),
        entries: &entries,
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(module.name),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(kernel.name()),
        layout: Some(&pipeline_layout),
        module: &shader,
        entry_point: Some(kernel.entry_point()),
        compilation_options: Default::default(),
        cache: None,
    });
    (pipeline, layout)
}

/// One recorded dispatch: pipeline, bind group and workgroup counts.
struct Recorded {
    kernel: Kernel,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
}

/// GPU timestamps: around the one compute pass, or (in a profiling plan) around each
/// dispatch, each then in a pass of its own.
struct Timestamps {
    queries: wgpu::QuerySet,
    count: u32,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    period_ns: f64,
    per_dispatch: bool,
}

/// wgpu's limit on the queries in one query set.
const MAX_QUERIES: usize = 4096;

/// A prepared plan on the GPU.
pub struct GpuRun {
    /// `gpu` or `metal`, for errors.
    backend: &'static str,
    context: Arc<Context>,
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
    input: wgpu::Buffer,
    output: wgpu::Buffer,
    output_bytes: u64,
    /// What the buffers hold (f16 in an fp16 plan).
    elem: Elem,
    /// The input as f16 bits, reused each run (fp16 plans).
    staging: Vec<u16>,
    readback: wgpu::Buffer,
    recorded: Vec<Recorded>,
    timestamps: Option<Timestamps>,
    last_gpu_seconds: Option<f64>,
    /// Per-dispatch GPU seconds summed over the runs (profiling plans only), and the runs.
    layer_seconds: Vec<f64>,
    layer_runs: u64,
    labels: Vec<(String, Kernel)>,
    description: String,
    // Kept alive for the bind groups.
    _buffers: Vec<wgpu::Buffer>,
}

fn bytes(data: &[f32]) -> &[u8] {
    bytemuck::cast_slice(data)
}

/// Bytes of a buffer of `len` elements: at least one element, a multiple of 4 (wgpu's copy
/// and binding granularity).
fn buffer_bytes(len: usize, elem: Elem) -> u64 {
    (len.max(1) * elem.bytes()).next_multiple_of(4) as u64
}

/// Values as f16 bits, padded to a multiple of 4 bytes.
fn f16_bits(data: &[f32]) -> Vec<u16> {
    let mut bits: Vec<u16> = data.iter().map(|&v| f16::from_f32(v).to_bits()).collect();
    bits.resize(data.len().max(1).next_multiple_of(2), 0);
    bits
}

impl GpuRun {
    pub fn prepare(
        api: Api,
        pointwise: Option<PointwiseKernel>,
        graph: &Graph,
        weights: &Weights,
        options: &PrepareOptions,
    ) -> Result<Self, BackendError> {
        let context =
            context(api).map_err(|reason| BackendError::unavailable(api.name(), reason))?;
        let cpu_adapter = context.adapter.device_type == "Cpu";
        let target = plan::Target {
            backend: api.name(),
            pointwise: pointwise.unwrap_or(if cpu_adapter {
                PointwiseKernel::Direct
            } else {
                PointwiseKernel::Tiled
            }),
        };
        let plan = plan::lower(graph, weights, target)?;
        let elem = match options.precision {
            Precision::Fp16 if context.shader_f16 => Elem::F16,
            Precision::Fp32 => Elem::F32,
            other => {
                let reason = match other {
                    Precision::Bf16 => "WGSL has no bf16 type".to_string(),
                    _ => format!("the adapter {} has no f16 shaders", context.adapter.name),
                };
                return Err(BackendError::UnsupportedPrecision {
                    backend: api.name().into(),
                    precision: other,
                    reason,
                });
            }
        };
        let scope = context
            .device
            .push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = context
            .device
            .push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let run = Self::upload(
            context.clone(),
            graph,
            &plan,
            elem,
            options.per_layer_timing,
        );
        if let Some(e) = pollster::block_on(oom.pop()) {
            return Err(BackendError::failed(
                api.name(),
                format!("out of GPU memory while preparing: {e}"),
            ));
        }
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(BackendError::failed(
                api.name(),
                format!("preparing the plan: {e}"),
            ));
        }
        run
    }

    fn upload(
        context: Arc<Context>,
        graph: &Graph,
        plan: &GpuPlan,
        elem: Elem,
        per_layer: bool,
    ) -> Result<Self, BackendError> {
        let device = &context.device;
        let memory = DeviceBuffers::new(device, plan, elem)?;
        let buffer = |r: BufferRef| memory.get(r);
        let mut uniforms = Vec::with_capacity(plan.dispatches.len());
        let mut recorded = Vec::with_capacity(plan.dispatches.len());
        for d in &plan.dispatches {
            let (uniform, bind_group) = bind(&context, d, elem, &buffer);
            recorded.push(Recorded {
                kernel: d.kernel,
                bind_group,
                workgroups: d.workgroups,
            });
            uniforms.push(uniform);
        }
        let output_bytes = buffer_bytes(plan.output_len, elem);
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: output_bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let per_dispatch = per_layer && 2 * plan.dispatches.len() <= MAX_QUERIES;
        let count = if per_dispatch {
            2 * plan.dispatches.len() as u32
        } else {
            2
        };
        let timestamps = context
            .timestamps
            .then(|| Timestamps::new(&context, count, per_dispatch));
        let description = describe(&context.adapter, plan, elem, timestamps.is_some());
        let output = buffer(plan.output).clone();
        let layers = if per_dispatch {
            plan.dispatches.len()
        } else {
            0
        };
        let DeviceBuffers {
            input,
            activations: mut buffers,
            constants,
        } = memory;
        buffers.extend(constants);
        buffers.extend(uniforms);
        Ok(Self {
            backend: plan.backend,
            context,
            input_shape: graph.input_shape().to_vec(),
            output_shape: graph.output_shape().to_vec(),
            input,
            output,
            output_bytes,
            elem,
            staging: Vec::new(),
            readback,
            recorded,
            layer_seconds: vec![0.0; layers],
            layer_runs: 0,
            labels: plan
                .dispatches
                .iter()
                .map(|d| (d.label.clone(), d.kernel))
                .collect(),
            timestamps,
            last_gpu_seconds: None,
            description,
            _buffers: buffers,
        })
    }

    /// Records the forward pass: every dispatch in one compute pass (in a profiling plan, each
    /// dispatch in a pass of its own between two timestamps), then the copies out.
    fn record(&self) -> wgpu::CommandBuffer {
        let device = &self.context.device;
        let mut encoder =
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        let per_dispatch = self.timestamps.as_ref().is_some_and(|t| t.per_dispatch);
        let passes: Vec<&[Recorded]> = if per_dispatch {
            self.recorded.chunks(1).collect()
        } else {
            vec![&self.recorded]
        };
        for (p, dispatches) in passes.into_iter().enumerate() {
            let timestamp_writes =
                self.timestamps
                    .as_ref()
                    .map(|t| wgpu::ComputePassTimestampWrites {
                        query_set: &t.queries,
                        beginning_of_pass_write_index: Some(2 * p as u32),
                        end_of_pass_write_index: Some(2 * p as u32 + 1),
                    });
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("forward"),
                timestamp_writes,
            });
            for r in dispatches {
                pass.set_pipeline(&self.context.pipelines[&(r.kernel, self.elem)].0);
                pass.set_bind_group(0, &r.bind_group, &[]);
                pass.dispatch_workgroups(r.workgroups[0], r.workgroups[1], r.workgroups[2]);
            }
        }
        if let Some(t) = &self.timestamps {
            let bytes = 8 * t.count as u64;
            encoder.resolve_query_set(&t.queries, 0..t.count, &t.resolve, 0);
            encoder.copy_buffer_to_buffer(&t.resolve, 0, &t.readback, 0, bytes);
        }
        encoder.copy_buffer_to_buffer(&self.output, 0, &self.readback, 0, self.output_bytes);
        encoder.finish()
    }

    /// Writes the input to the GPU as the plan's element type.
    fn upload_input(&mut self, input: &Tensor) {
        let queue = &self.context.queue;
        match self.elem {
            Elem::F32 => queue.write_buffer(&self.input, 0, bytes(input.data())),
            Elem::F16 => {
                self.staging.clear();
                let bits = input.data().iter().map(|&v| f16::from_f32(v).to_bits());
                self.staging.extend(bits);
                self.staging
                    .resize(self.staging.len().next_multiple_of(2), 0);
                queue.write_buffer(&self.input, 0, bytemuck::cast_slice(&self.staging));
            }
        }
    }

    /// Maps `buffer` for reading and waits until the GPU is done with it.
    fn map(&self, buffer: &wgpu::Buffer) -> Result<(), BackendError> {
        let (sender, receiver) = mpsc::channel();
        buffer.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = sender.send(r);
        });
        self.context
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(Duration::from_secs(120)),
            })
            .map_err(|e| BackendError::failed(self.backend, format!("waiting for the GPU: {e}")))?;
        match receiver.recv_timeout(Duration::from_secs(1)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(BackendError::failed(
                self.backend,
                format!("reading results back: {e}"),
            )),
            Err(_) => Err(BackendError::failed(
                self.backend,
                "reading results back: the mapping never completed",
            )),
        }
    }

    /// Reads the timestamps of the last run: the whole forward's GPU seconds, and in a
    /// profiling plan adds each dispatch's to its total.
    fn read_timestamps(&mut self) -> Result<Option<f64>, BackendError> {
        let Some(t) = &self.timestamps else {
            return Ok(None);
        };
        self.map(&t.readback)?;
        let seconds = {
            let view = t.readback.get_mapped_range(..).map_err(|e| {
                BackendError::failed(self.backend, format!("reading timestamps: {e}"))
            })?;
            let ticks: &[u64] = bytemuck::cast_slice(&view);
            let scale = t.period_ns * 1e-9;
            for (layer, pair) in self.layer_seconds.iter_mut().zip(ticks.chunks(2)) {
                *layer += pair[1].saturating_sub(pair[0]) as f64 * scale;
            }
            ticks[ticks.len() - 1].saturating_sub(ticks[0]) as f64 * scale
        };
        t.readback.unmap();
        if t.per_dispatch {
            self.layer_runs += 1;
        }
        Ok(Some(seconds))
    }
}

/// A dispatch's uniform block and its bind group: the uniform at binding 0, the buffers it
/// reads after it, the one it writes last.
fn bind<'a>(
    context: &Context,
    d: &Dispatch,
    elem: Elem,
    buffer: &impl Fn(BufferRef) -> &'a wgpu::Buffer,
) -> (wgpu::Buffer, wgpu::BindGroup) {
    let device = &context.device;
    let uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(&d.label),
        contents: bytemuck::cast_slice(&d.params),
        usage: wgpu::BufferUsages::UNIFORM,
    });
    let (_, layout) = &context.pipelines[&(d.kernel, elem)];
    let mut entries = vec![wgpu::BindGroupEntry {
        binding: 0,
        resource: uniform.as_entire_binding(),
    }];
    for (k, r) in d.reads.iter().chain([&d.write]).enumerate() {
        entries.push(wgpu::BindGroupEntry {
            binding: 1 + k as u32,
            resource: buffer(*r).as_entire_binding(),
        });
    }
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(&d.label),
        layout,
        entries: &entries,
    });
    (uniform, bind_group)
}

impl Timestamps {
    /// A query set of `count` timestamps with its resolve and readback buffers.
    fn new(context: &Context, count: u32, per_dispatch: bool) -> Self {
        let device = &context.device;
        let buffer = |label: &str, usage: wgpu::BufferUsages| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: 8 * count as u64,
                usage,
                mapped_at_creation: false,
            })
        };
        Timestamps {
            queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count,
            }),
            count,
            resolve: buffer(
                "timestamps",
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            ),
            readback: buffer(
                "timestamps readback",
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
            period_ns: context.queue.get_timestamp_period() as f64,
            per_dispatch,
        }
    }
}

fn describe(adapter: &AdapterSummary, plan: &GpuPlan, elem: Elem, timestamps: bool) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &plan.dispatches {
        *counts.entry(d.kernel.name()).or_default() += 1;
    }
    let kernels = counts
        .iter()
        .map(|(k, n)| format!("{k} x{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mb = |elements: usize| (elements * elem.bytes()) as f64 / 1e6;
    let activation_mb = mb(plan.activation_sizes.iter().sum::<usize>());
    let weights_mb = mb(plan.constants.iter().map(Vec::len).sum::<usize>());
    let storage = match elem {
        Elem::F32 => "f32 buffers",
        Elem::F16 => {
            "f16 buffers (weights and activations; every load widened to f32, sums in f32)"
        }
    };
    format!(
        "wgpu on {adapter}; {} dispatches in one compute pass, one submission per run ({kernels}); \
         batch norm, bias and activation fused into the op before them; {storage}; {} activation buffers \
         ({activation_mb:.1} MB), weights {weights_mb:.1} MB uploaded at prepare; GPU timestamps: {}",
        plan.dispatches.len(),
        plan.activation_sizes.len(),
        if timestamps { "yes" } else { "not supported by the adapter" }
    )
}

impl Prepared for GpuRun {
    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn run(&mut self, input: &Tensor, output: &mut Tensor) -> Result<(), BackendError> {
        check_run_shapes(
            self.backend,
            (&self.input_shape, &self.output_shape),
            input,
            output,
        )?;
        self.upload_input(input);
        let commands = self.record();
        self.context.queue.submit([commands]);
        self.map(&self.readback)?;
        {
            let view = self.readback.get_mapped_range(..).map_err(|e| {
                BackendError::failed(self.backend, format!("reading the output: {e}"))
            })?;
            let out = output.data_mut();
            match self.elem {
                Elem::F32 => out.copy_from_slice(&bytemuck::cast_slice(&view)[..out.len()]),
                Elem::F16 => {
                    let bits: &[u16] = bytemuck::cast_slice(&view);
                    for (o, &b) in out.iter_mut().zip(bits) {
                        *o = f16::from_bits(b).to_f32();
                    }
                }
            }
        }
        self.readback.unmap();
        self.last_gpu_seconds = self.read_timestamps()?;
        if let Some(e) = self.context.take_uncaptured() {
            return Err(BackendError::failed(self.backend, e));
        }
        Ok(())
    }

    fn gpu_seconds(&self) -> Option<f64> {
        self.last_gpu_seconds
    }

    fn layer_times(&self) -> Vec<LayerTime> {
        self.labels
            .iter()
            .zip(&self.layer_seconds)
            .map(|((name, kernel), &seconds)| LayerTime {
                name: name.clone(),
                kind: kernel.kind().into(),
                kernel: format!("wgsl {}", kernel.name()),
                seconds,
                runs: self.layer_runs,
            })
            .collect()
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

/// A plan's storage buffers on the device: the input, the activations and the constants.
struct DeviceBuffers {
    input: wgpu::Buffer,
    activations: Vec<wgpu::Buffer>,
    constants: Vec<wgpu::Buffer>,
}

impl DeviceBuffers {
    /// Creates them for elements of `elem`, each checked against the adapter's storage
    /// binding limit; constants are converted to f16 for an f16 plan.
    fn new(device: &wgpu::Device, plan: &GpuPlan, elem: Elem) -> Result<Self, BackendError> {
        let limit = device.limits().max_storage_buffer_binding_size;
        let storage = |label: &str, len: usize, extra: wgpu::BufferUsages| {
            let size = buffer_bytes(len, elem);
            if size > limit {
                return Err(BackendError::failed(plan.backend, format!(
                    "{label} needs {size} bytes, over the adapter's storage binding limit of {limit}"
                )));
            }
            Ok(device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: wgpu::BufferUsages::STORAGE | extra,
                mapped_at_creation: false,
            }))
        };
        let constant = |data: &Vec<f32>| {
            let halves;
            let contents = match elem {
                Elem::F32 => bytes(data),
                Elem::F16 => {
                    halves = f16_bits(data);
                    bytemuck::cast_slice(&halves)
                }
            };
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("constant"),
                contents,
                usage: wgpu::BufferUsages::STORAGE,
            })
        };
        Ok(Self {
            input: storage("input", plan.input_len, wgpu::BufferUsages::COPY_DST)?,
            activations: (plan.activation_sizes.iter())
                .map(|&len| storage("activation", len, wgpu::BufferUsages::COPY_SRC))
                .collect::<Result<_, _>>()?,
            constants: plan.constants.iter().map(constant).collect(),
        })
    }

    fn get(&self, r: BufferRef) -> &wgpu::Buffer {
        match r {
            BufferRef::Input => &self.input,
            BufferRef::Activation(i) => &self.activations[i],
            BufferRef::Constant(i) => &self.constants[i],
        }
    }
}
