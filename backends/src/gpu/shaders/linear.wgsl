// Fully connected layer (and 1x1 convs on 1x1 maps, as in squeeze-excite): one 64-wide
// workgroup per output, each invocation summing a strided part of the dot product, then a
// tree reduction in workgroup memory. Per-output scale and shift and the activation fused.

struct Params {
    batch: u32, inputs: u32, outputs: u32, act: u32,
}

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let out = wid.x + wid.y * nwg.x;
    let valid = out < p.batch * p.outputs;
    let o = out % p.outputs;
    let n = out / p.outputs;
    var acc = 0.0;
    if (valid) {
        for (var i = lane; i < p.inputs; i += 64u) {
            acc += f32(w[o * p.inputs + i]) * f32(x[n * p.inputs + i]);
        }
    }
    partial[lane] = acc;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half >>= 1u) {
        if (lane < half) { partial[lane] += partial[lane + half]; }
        workgroupBarrier();
    }
    if (valid && lane == 0u) {
        y[out] = elem(activate(partial[0] * f32(scale[o]) + f32(shift[o]), p.act));
    }
}
