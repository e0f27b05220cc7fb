//! The real backend: LiteRT's C API opened with libloading; one environment per process, and a
//! model, compiled model and pair of host tensor buffers per plan, released in `Drop` in the
//! reverse order of creation.

use std::ffi::{c_char, c_int, c_void, CString};
use std::path::PathBuf;
use std::ptr::null_mut;
use std::sync::OnceLock;

use models::{Graph, Tensor, Weights};

use crate::backend::{check_run_shapes, BackendError, PrepareOptions, Prepared};

const NAME: &str = "litert";
/// Where the library is looked for when `LITERT_LIB_PATH` is unset at run time.
const BUILT_WITH: Option<&str> = option_env!("ONEBENCH_LITERT_LIB_PATH");
/// The wheel's version, as the setup script printed it when this binary was built.
const BUILT_VERSION: Option<&str> = option_env!("ONEBENCH_LITERT_VERSION");
/// `kLiteRtHwAcceleratorCpu`.
const ACCELERATOR_CPU: c_int = 1;
/// The identifier of the CPU accelerator's options (XNNPACK's), read as TOML.
const CPU_OPTIONS: &str = "xnnpack";
/// LiteRT's host buffers must start on this boundary.
const ALIGNMENT: usize = 64;

type Handle = *mut c_void;
type Status = c_int;

/// The entry points of the C API this backend calls.
pub struct Api {
    create_environment: unsafe extern "C" fn(c_int, *const c_void, *mut Handle) -> Status,
    create_model_from_buffer:
        unsafe extern "C" fn(Handle, *const c_void, usize, *mut Handle) -> Status,
    destroy_model: unsafe extern "C" fn(Handle),
    create_options: unsafe extern "C" fn(*mut Handle) -> Status,
    destroy_options: unsafe extern "C" fn(Handle),
    set_accelerators: unsafe extern "C" fn(Handle, c_int) -> Status,
    create_opaque_options: unsafe extern "C" fn(
        *const c_char,
        *mut c_void,
        Option<unsafe extern "C" fn(*mut c_void)>,
        *mut Handle,
    ) -> Status,
    add_opaque_options: unsafe extern "C" fn(Handle, Handle) -> Status,
    create_compiled_model: unsafe extern "C" fn(Handle, Handle, Handle, *mut Handle) -> Status,
    destroy_compiled_model: unsafe extern "C" fn(Handle),
    get_signature: unsafe extern "C" fn(Handle, usize, *mut Handle) -> Status,
    get_signature_input: unsafe extern "C" fn(Handle, usize, *mut Handle) -> Status,
    get_signature_output: unsafe extern "C" fn(Handle, usize, *mut Handle) -> Status,
    get_ranked_tensor_type: unsafe extern "C" fn(Handle, *mut c_void) -> Status,
    create_host_buffer: unsafe extern "C" fn(
        *const c_void,
        *mut c_void,
        usize,
        Option<unsafe extern "C" fn(*mut c_void)>,
        *mut Handle,
    ) -> Status,
    destroy_tensor_buffer: unsafe extern "C" fn(Handle),
    run: unsafe extern "C" fn(Handle, usize, usize, *mut Handle, usize, *mut Handle) -> Status,
    path: PathBuf,
    _library: libloading::Library,
}

/// A function of the library by name.
fn symbol<T: Copy>(
    library: &libloading::Library,
    name: &str,
    path: &std::path::Path,
) -> Result<T, String> {
    let name = format!("{name}\0");
    // SAFETY: every caller's `T` is the C API's declaration of this function (litert/c/*.h).
    let symbol = unsafe { library.get::<T>(name.as_bytes()) };
    symbol
        .map(|s| *s)
        .map_err(|e| format!("{}: not LiteRT's C API: {e}", path.display()))
}

fn library() -> Result<PathBuf, String> {
    crate::runtime_library::locate("LITERT_LIB_PATH", BUILT_WITH, "scripts/setup-litert.sh")
}

/// The library, loaded and its symbols resolved once per process.
pub fn api() -> Result<&'static Api, String> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn load() -> Result<Api, String> {
    let path = library()?;
    let cannot = |e: libloading::Error| format!("{}: cannot load LiteRT: {e}", path.display());
    // SAFETY: loading a shared library runs its initializers; libLiteRt.so's only set up
    // LiteRT's own state.
    let library = unsafe { libloading::Library::new(&path) }.map_err(cannot)?;
    Ok(Api {
        create_environment: symbol(&library, "LiteRtCreateEnvironment", &path)?,
        create_model_from_buffer: symbol(&library, "LiteRtCreateModelFromBuffer", &path)?,
        destroy_model: symbol(&library, "LiteRtDestroyModel", &path)?,
        create_options: symbol(&library, "LiteRtCreateOptions", &path)?,
        destroy_options: symbol(&library, "LiteRtDestroyOptions", &path)?,
        set_accelerators: symbol(&library, "LiteRtSetOptionsHardwareAccelerators", &path)?,
        create_opaque_options: symbol(&library, "LiteRtCreateOpaqueOptions", &path)?,
        add_opaque_options: symbol(&library, "LiteRtAddOpaqueOptions", &path)?,
        create_compiled_model: symbol(&library, "LiteRtCreateCompiledModel", &path)?,
        destroy_compiled_model: symbol(&library, "LiteRtDestroyCompiledModel", &path)?,
        get_signature: symbol(&library, "LiteRtGetModelSignature", &path)?,
        get_signature_input: symbol(&library, "LiteRtGetSignatureInputTensorByIndex", &path)?,
        get_signature_output: symbol(&library, "LiteRtGetSignatureOutputTensorByIndex", &path)?,
        get_ranked_tensor_type: symbol(&library, "LiteRtGetRankedTensorType", &path)?,
        create_host_buffer: symbol(&library, "LiteRtCreateTensorBufferFromHostMemory", &path)?,
        destroy_tensor_buffer: symbol(&library, "LiteRtDestroyTensorBuffer", &path)?,
        run: symbol(&library, "LiteRtRunCompiledModel", &path)?,
        path,
        _library: library,
    })
}

/// `kLiteRtEnvOptionTagMinLoggerSeverity`: LiteRT's log keeps errors only (its setup and
/// per-model INFO lines would fill the harness's output).
const ENV_MIN_LOGGER_SEVERITY: c_int = 25;
/// `kLiteRtAnyTypeInt` and `kLiteRtLogSeverityError`.
const ANY_INT: c_int = 2;
const LOG_SEVERITY_ERROR: i64 = 3;

/// `LiteRtAny` holding an integer.
#[repr(C)]
struct Any {
    kind: c_int,
    value: i64,
}

/// `LiteRtEnvOption`.
#[repr(C)]
struct EnvironmentOption {
    tag: c_int,
    value: Any,
}

/// The process's one LiteRT environment (its accelerator registry), made on first use and
/// kept for the life of the process, as an application would: LiteRT logs its setup once.
fn environment(api: &'static Api) -> Result<Handle, BackendError> {
    struct Environment(Handle);
    // SAFETY: LiteRT's environment is shared by the compiled models made from it; it is only
    // read after creation.
    unsafe impl Send for Environment {}
    unsafe impl Sync for Environment {}
    static ENVIRONMENT: OnceLock<Result<Environment, BackendError>> = OnceLock::new();
    let made = ENVIRONMENT.get_or_init(|| {
        let mut handle = null_mut();
        let options = [EnvironmentOption {
            tag: ENV_MIN_LOGGER_SEVERITY,
            value: Any {
                kind: ANY_INT,
                value: LOG_SEVERITY_ERROR,
            },
        }];
        // SAFETY: one option laid out as the C API's LiteRtEnvOption; a valid out-pointer.
        let mut status =
            unsafe { (api.create_environment)(1, options.as_ptr().cast(), &mut handle) };
        if status != 0 {
            // A library that does not know the option: its default log level, then.
            // SAFETY: no options; a valid out-pointer.
            status = unsafe { (api.create_environment)(0, std::ptr::null(), &mut handle) };
        }
        check(status, "LiteRtCreateEnvironment").map(|()| Environment(handle))
    });
    made.as_ref().map(|e| e.0).map_err(Clone::clone)
}

/// The wheel's version and the library's file.
pub fn version() -> String {
    let version = std::env::var("LITERT_VERSION")
        .ok()
        .or(BUILT_VERSION.map(String::from))
        .unwrap_or_else(|| "unknown version".into());
    match api() {
        Ok(api) => format!("litert {version} ({})", api.path.display()),
        Err(_) => format!("litert {version} (not loaded)"),
    }
}

/// A C API call's status as a result naming the call.
fn check(status: Status, call: &str) -> Result<(), BackendError> {
    let meaning = match status {
        0 => return Ok(()),
        1 => "invalid argument",
        2 => "memory allocation failure",
        3 => "runtime failure",
        4 => "missing input tensor",
        5 => "unsupported",
        6 => "not found",
        _ => "error",
    };
    Err(BackendError::failed(
        NAME,
        format!("{call} returned status {status} ({meaning}); LiteRT's log above says more"),
    ))
}

/// 64-byte aligned, zeroed memory of at least `bytes` bytes.
struct AlignedBuffer {
    blocks: Vec<Block>,
    bytes: usize,
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Block([u8; ALIGNMENT]);

impl AlignedBuffer {
    fn new(bytes: usize) -> Self {
        Self {
            blocks: vec![Block([0; ALIGNMENT]); bytes.div_ceil(ALIGNMENT).max(1)],
            bytes,
        }
    }

    fn from_bytes(data: &[u8]) -> Self {
        let mut buffer = Self::new(data.len());
        buffer.as_bytes_mut().copy_from_slice(data);
        buffer
    }

    fn as_ptr(&mut self) -> *mut c_void {
        self.blocks.as_mut_ptr().cast()
    }

    fn as_bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the blocks are plain bytes and hold at least `bytes` of them.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast(), self.bytes) }
    }

    fn floats(&mut self) -> &mut [f32] {
        // SAFETY: 64-byte aligned bytes, any bit pattern is an f32; bytes / 4 of them.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast(), self.bytes / 4) }
    }
}

/// Room for a `LiteRtRankedTensorType` (an element type and a layout of up to 8 dims and
/// strides: 72 bytes in the C API); filled by LiteRT, read by nobody but LiteRT.
#[repr(C, align(8))]
struct RankedTensorType([u8; 256]);

pub struct LiteRtPlan {
    api: &'static Api,
    environment: Handle,
    model: Handle,
    options: Handle,
    compiled: Handle,
    input_buffer: Handle,
    output_buffer: Handle,
    input: AlignedBuffer,
    output: AlignedBuffer,
    /// The flatbuffer the model reads from (LiteRT does not copy it).
    _flatbuffer: AlignedBuffer,
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
    threads: usize,
}

// SAFETY: a plan's LiteRT objects are used by one thread at a time (`run` takes `&mut self`),
// which the C API allows for a compiled model.
unsafe impl Send for LiteRtPlan {}

impl LiteRtPlan {
    pub fn prepare(
        graph: &Graph,
        weights: &Weights,
        options: &PrepareOptions,
    ) -> Result<Self, BackendError> {
        let api = api().map_err(|r| BackendError::unavailable(NAME, r))?;
        let bytes = models::tflite::export(graph, weights, "onebench")
            .map_err(|e| BackendError::weights(NAME, e))?;
        let numel = |shape: &[usize]| shape.iter().product::<usize>();
        let mut plan = Self {
            api,
            environment: environment(api)?,
            model: null_mut(),
            options: null_mut(),
            compiled: null_mut(),
            input_buffer: null_mut(),
            output_buffer: null_mut(),
            input: AlignedBuffer::new(4 * numel(graph.input_shape())),
            output: AlignedBuffer::new(4 * numel(graph.output_shape())),
            _flatbuffer: AlignedBuffer::from_bytes(&bytes),
            input_shape: graph.input_shape().to_vec(),
            output_shape: graph.output_shape().to_vec(),
            threads: options.threads,
        };
        plan.compile()?;
        plan.bind_buffers()?;
        Ok(plan)
    }

    /// Environment, model, options (CPU accelerator, thread count) and the compiled model.
    fn compile(&mut self) -> Result<(), BackendError> {
        let api = self.api;
        // SAFETY: each call gets valid out-pointers; the flatbuffer outlives the model.
        unsafe {
            let flatbuffer = self._flatbuffer.as_ptr();
            let len = self._flatbuffer.bytes;
            check(
                (api.create_model_from_buffer)(self.environment, flatbuffer, len, &mut self.model),
                "LiteRtCreateModelFromBuffer",
            )?;
            check(
                (api.create_options)(&mut self.options),
                "LiteRtCreateOptions",
            )?;
            check(
                (api.set_accelerators)(self.options, ACCELERATOR_CPU),
                "LiteRtSetOptionsHardwareAccelerators",
            )?;
            let cpu = cpu_options(api, self.threads)?;
            check(
                (api.add_opaque_options)(self.options, cpu),
                "LiteRtAddOpaqueOptions",
            )?;
            check(
                (api.create_compiled_model)(
                    self.environment,
                    self.model,
                    self.options,
                    &mut self.compiled,
                ),
                "LiteRtCreateCompiledModel",
            )
        }
    }

    /// Host buffers over `input` and `output`, typed as the signature's tensors.
    fn bind_buffers(&mut self) -> Result<(), BackendError> {
        let api = self.api;
        // SAFETY: out-pointers are valid; the host memory outlives the tensor buffers (both
        // are the plan's, and Drop destroys the buffers first).
        unsafe {
            let mut signature = null_mut();
            check(
                (api.get_signature)(self.model, 0, &mut signature),
                "LiteRtGetModelSignature",
            )?;
            let mut tensor = null_mut();
            check(
                (api.get_signature_input)(signature, 0, &mut tensor),
                "LiteRtGetSignatureInputTensorByIndex",
            )?;
            self.input_buffer = host_buffer(api, tensor, &mut self.input)?;
            check(
                (api.get_signature_output)(signature, 0, &mut tensor),
                "LiteRtGetSignatureOutputTensorByIndex",
            )?;
            self.output_buffer = host_buffer(api, tensor, &mut self.output)?;
        }
        Ok(())
    }
}

/// The CPU accelerator's options as LiteRT's opaque options: a TOML payload under the
/// `xnnpack` identifier, freed by LiteRT through `free_payload`.
fn cpu_options(api: &Api, threads: usize) -> Result<Handle, BackendError> {
    unsafe extern "C" fn free_payload(payload: *mut c_void) {
        // SAFETY: the payload is the CString given to LiteRtCreateOpaqueOptions below.
        drop(unsafe { CString::from_raw(payload.cast()) });
    }
    let payload = CString::new(format!("num_threads = {threads}\n")).expect("no NUL");
    let identifier = CString::new(CPU_OPTIONS).expect("no NUL");
    let mut opaque = null_mut();
    let payload = payload.into_raw();
    // SAFETY: LiteRT copies the identifier and owns the payload from here (freeing it with
    // `free_payload`); on failure the payload is freed here.
    let status = unsafe {
        (api.create_opaque_options)(
            identifier.as_ptr(),
            payload.cast(),
            Some(free_payload),
            &mut opaque,
        )
    };
    if status != 0 {
        // SAFETY: LiteRT did not take the payload.
        drop(unsafe { CString::from_raw(payload) });
    }
    check(status, "LiteRtCreateOpaqueOptions")?;
    Ok(opaque)
}

/// A tensor buffer over `memory`, with the type LiteRT gives `tensor`.
///
/// # Safety
/// `tensor` is a valid LiteRtTensor; `memory` outlives the returned buffer.
unsafe fn host_buffer(
    api: &Api,
    tensor: Handle,
    memory: &mut AlignedBuffer,
) -> Result<Handle, BackendError> {
    let mut ty = RankedTensorType([0; 256]);
    let mut buffer = null_mut();
    // SAFETY: as the function's contract says; `ty` has room for the C struct.
    unsafe {
        check(
            (api.get_ranked_tensor_type)(tensor, ty.0.as_mut_ptr().cast()),
            "LiteRtGetRankedTensorType",
        )?;
        let status = (api.create_host_buffer)(
            ty.0.as_ptr().cast(),
            memory.as_ptr(),
            memory.bytes,
            None,
            &mut buffer,
        );
        check(status, "LiteRtCreateTensorBufferFromHostMemory")?;
    }
    Ok(buffer)
}

impl Drop for LiteRtPlan {
    fn drop(&mut self) {
        let api = self.api;
        // SAFETY: each handle was created by the matching call and is destroyed once; null
        // handles (a failed prepare) are skipped.
        unsafe {
            for buffer in [self.input_buffer, self.output_buffer] {
                if !buffer.is_null() {
                    (api.destroy_tensor_buffer)(buffer);
                }
            }
            if !self.compiled.is_null() {
                (api.destroy_compiled_model)(self.compiled);
            }
            if !self.options.is_null() {
                (api.destroy_options)(self.options);
            }
            if !self.model.is_null() {
                (api.destroy_model)(self.model);
            }
        }
    }
}

impl Prepared for LiteRtPlan {
    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn run(&mut self, input: &Tensor, output: &mut Tensor) -> Result<(), BackendError> {
        check_run_shapes(NAME, (&self.input_shape, &self.output_shape), input, output)?;
        self.input.floats().copy_from_slice(input.data());
        let mut inputs = [self.input_buffer];
        let mut outputs = [self.output_buffer];
        // SAFETY: the compiled model and both buffers are this plan's and alive.
        let status = unsafe {
            (self.api.run)(
                self.compiled,
                0,
                1,
                inputs.as_mut_ptr(),
                1,
                outputs.as_mut_ptr(),
            )
        };
        check(status, "LiteRtRunCompiledModel")?;
        output.data_mut().copy_from_slice(self.output.floats());
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "litert: {}, CompiledModel on the CPU accelerator (XNNPACK), num_threads={}; the graph exported as TFLite (NHWC, batch norms after convs folded); the input copied into LiteRT's host buffer each run",
            version(),
            self.threads,
        )
    }
}
