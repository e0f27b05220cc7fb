// Bindings of the element-wise kernels: `Params`, two inputs, the output (of the storage type
// `elem`).
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<elem>;
@group(0) @binding(2) var<storage, read> b: array<elem>;
@group(0) @binding(3) var<storage, read_write> y: array<elem>;
