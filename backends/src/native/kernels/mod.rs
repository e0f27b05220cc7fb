//! The native backend's kernels. Each is one generic body over `Simd`, instantiated for the
//! portable scalar path and for AVX-512, AVX2+FMA or NEON behind `#[target_feature]` wrappers,
//! and dispatched on the plan's `Isa`.

pub mod channelwise;
pub mod convert;
// Index loops over fixed-size register blocks ([[V; NV]; MR]) say what the micro-kernels do
// more plainly than iterator chains, and unroll the same.
#[allow(clippy::needless_range_loop)]
pub mod depthwise;
#[allow(clippy::needless_range_loop)]
pub mod gemm;
pub mod int8;
pub mod layout;
