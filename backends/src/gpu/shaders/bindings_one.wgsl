// Bindings of the one-input kernels (pooling, channel copy): `Params`, the input, the output
// (of the storage type `elem`).
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<elem>;
@group(0) @binding(2) var<storage, read_write> y: array<elem>;
