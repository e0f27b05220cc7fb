// Bindings of the conv-family kernels (conv, depthwise, pointwise, linear): each kernel's own
// uniform block `Params`, the input, the weights, the per-channel scale and shift, the output;
// `elem` is the storage type (f32, or f16 in an fp16 plan).
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<elem>;
@group(0) @binding(2) var<storage, read> w: array<elem>;
@group(0) @binding(3) var<storage, read> scale: array<elem>;
@group(0) @binding(4) var<storage, read> shift: array<elem>;
@group(0) @binding(5) var<storage, read_write> y: array<elem>;
