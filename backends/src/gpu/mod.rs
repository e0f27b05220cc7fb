//! The GPU backend (cargo feature `gpu`): our own WGSL compute kernels on wgpu, so Metal on
//! Apple machines, Vulkan on Linux, DX12 on Windows. Registered twice: `gpu` takes whatever
//! adapter wgpu finds, `metal` only a Metal one. Without the feature a stub reports "not
//! compiled in", so listings and the CLI always build.

#[cfg(feature = "gpu")]
mod engine;
#[cfg(feature = "gpu")]
pub mod plan;

#[cfg(feature = "gpu")]
pub use plan::PointwiseKernel;

use std::fmt;

use models::{Graph, Precision, Weights};

use crate::backend::{Availability, Backend, BackendError, PrepareOptions, Prepared};

/// What a GPU backend reports when wgpu finds no adapter at all.
pub const NO_ADAPTER: &str = "no GPU adapter found";

/// Why the backend is missing from a build without the feature.
pub const NOT_COMPILED_IN: &str = "not compiled in (build with --features gpu)";

/// Which graphics APIs a GPU backend accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Whatever adapter wgpu finds (Vulkan, Metal or DX12).
    Any,
    /// Metal only (macOS, iOS).
    Metal,
}

impl Api {
    pub fn name(self) -> &'static str {
        match self {
            Api::Any => "gpu",
            Api::Metal => "metal",
        }
    }
}

/// The adapter a GPU backend runs on, as every result reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    pub name: String,
    /// The graphics API: `Vulkan`, `Metal`, `Dx12`.
    pub api: String,
    pub driver: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `Cpu` (a software rasterizer such as lavapipe), ...
    pub device_type: String,
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, driver {}, {})",
            self.name, self.api, self.driver, self.device_type
        )
    }
}

/// Our WGSL kernels on wgpu; a stub when the `gpu` feature is off.
pub struct GpuBackend {
    api: Api,
    /// The 1x1 kernel, when pinned; by default the adapter's kind decides.
    #[cfg(feature = "gpu")]
    pointwise: Option<PointwiseKernel>,
}

impl GpuBackend {
    /// The `gpu` backend: any adapter.
    pub fn any() -> Self {
        Self::new(Api::Any)
    }

    /// The `metal` backend: a Metal adapter only.
    pub fn metal() -> Self {
        Self::new(Api::Metal)
    }

    fn new(api: Api) -> Self {
        Self {
            api,
            #[cfg(feature = "gpu")]
            pointwise: None,
        }
    }

    /// Pins the kernel for 1x1 convolutions (tests run the tiled GPU kernel on lavapipe).
    #[cfg(feature = "gpu")]
    pub fn with_pointwise(mut self, kernel: PointwiseKernel) -> Self {
        self.pointwise = Some(kernel);
        self
    }

    #[cfg(feature = "gpu")]
    fn adapter(&self) -> Result<AdapterSummary, String> {
        match engine::context(self.api) {
            Ok(context) => Ok(context.adapter.clone()),
            Err(reason) if self.api == Api::Metal => Err(metal_missing(reason)),
            Err(reason) => Err(reason),
        }
    }

    #[cfg(not(feature = "gpu"))]
    fn adapter(&self) -> Result<AdapterSummary, String> {
        Err(NOT_COMPILED_IN.into())
    }
}

/// Why `metal` is unavailable: the API this machine has instead, and that `gpu` runs there.
#[cfg(feature = "gpu")]
fn metal_missing(reason: String) -> String {
    match engine::any_adapter() {
        Some(other) => format!(
            "no Metal adapter: Metal needs macOS or iOS; this machine's GPU API is {} on {}, \
             which the `gpu` backend runs",
            other.api, other.name
        ),
        None if reason == NO_ADAPTER => "no Metal adapter, and no other GPU adapter either".into(),
        None => format!("no Metal adapter ({reason}), and no other GPU adapter either"),
    }
}

impl GpuBackend {
    /// Whether this backend's adapter offers f16 in shaders (wgpu's `SHADER_F16`).
    fn offers_shader_f16(&self) -> bool {
        #[cfg(feature = "gpu")]
        return engine::context(self.api).is_ok_and(|c| c.offers_shader_f16());
        #[cfg(not(feature = "gpu"))]
        false
    }

    /// Whether this adapter offers f16 arithmetic in shaders, in words.
    fn shader_f16_offer(&self) -> String {
        #[cfg(feature = "gpu")]
        if let Ok(context) = engine::context(self.api) {
            let offers = match context.offers_shader_f16() {
                true => "offers",
                false => "does not offer",
            };
            return format!("the adapter {} {offers} SHADER_F16", context.adapter.name);
        }
        "no adapter to ask for SHADER_F16".into()
    }
}

impl Backend for GpuBackend {
    fn name(&self) -> &'static str {
        self.api.name()
    }

    fn version(&self) -> String {
        let wgpu = format!("wgpu {}", env!("ONEBENCH_WGPU_VERSION"));
        if cfg!(feature = "gpu") {
            wgpu
        } else {
            "wgpu (not compiled in)".into()
        }
    }

    fn compiled_in(&self) -> bool {
        cfg!(feature = "gpu")
    }

    fn device(&self) -> Option<String> {
        self.adapter().ok().map(|a| a.to_string())
    }

    fn availability(&self) -> Availability {
        match self.adapter() {
            Ok(_) => Availability::Available,
            Err(reason) => Availability::Unavailable(reason),
        }
    }

    /// With timestamp queries: a profiling plan runs each dispatch in a pass of its own
    /// between two timestamps.
    fn reports_layer_times(&self) -> bool {
        #[cfg(feature = "gpu")]
        return engine::context(self.api).is_ok_and(|c| c.has_timestamps());
        #[cfg(not(feature = "gpu"))]
        false
    }

    /// fp32, and fp16 where the adapter offers `SHADER_F16` (f16 buffers, f32 sums); never
    /// bf16, which WGSL has no type for.
    fn supports(&self, precision: Precision) -> Result<(), String> {
        match precision {
            Precision::Fp32 => Ok(()),
            Precision::Bf16 => Err(format!(
                "{} has no bf16 path (WGSL has no bf16 type)",
                self.name()
            )),
            Precision::Fp16 if self.offers_shader_f16() => Ok(()),
            Precision::Fp16 => Err(format!(
                "{} runs fp16 only with f16 in shaders: {}",
                self.name(),
                self.shader_f16_offer()
            )),
            Precision::Int8 => Err(format!(
                "{} has no int8 kernels (WGSL's integer dot products are not written)",
                self.name()
            )),
        }
    }

    /// Kernels are checked in f32 with sums in a different order from the reference (tiled
    /// matrix products, tree reductions), and GELU uses an erf approximation.
    fn tolerance(&self) -> f64 {
        1e-3
    }

    fn prepare(
        &self,
        graph: &Graph,
        weights: &Weights,
        options: &PrepareOptions,
    ) -> Result<Box<dyn Prepared>, BackendError> {
        crate::require_precision(self, options)?;
        if let Err(reason) = self.adapter() {
            return Err(BackendError::unavailable(self.name(), reason));
        }
        #[cfg(feature = "gpu")]
        return Ok(Box::new(engine::GpuRun::prepare(
            self.api,
            self.pointwise,
            graph,
            weights,
            options,
        )?));
        #[cfg(not(feature = "gpu"))]
        {
            let _ = (graph, weights, options);
            Err(BackendError::unavailable(self.name(), NOT_COMPILED_IN))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::testing::assert_contains;

    #[test]
    fn the_two_names_and_the_stub() {
        assert_eq!(GpuBackend::any().name(), "gpu");
        assert_eq!(GpuBackend::metal().name(), "metal");
        if !cfg!(feature = "gpu") {
            let Availability::Unavailable(reason) = GpuBackend::any().availability() else {
                panic!("the stub is never available");
            };
            assert_contains(&reason, &["--features gpu"]);
        }
    }

    #[cfg(all(feature = "gpu", not(target_os = "macos")))]
    #[test]
    fn metal_off_apple_names_the_api_this_machine_has() {
        let Availability::Unavailable(reason) = GpuBackend::metal().availability() else {
            panic!("there is no Metal off Apple platforms");
        };
        assert_contains(&reason, &["Metal needs macOS or iOS"]);
        if GpuBackend::any().availability() == Availability::Available {
            assert_contains(&reason, &["`gpu` backend runs"]);
        }
    }
}
