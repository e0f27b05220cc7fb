// Element-wise kernels over NCHW tensors: the per-channel affine (batch norm) with an
// activation, the two-input combine and the in-place accumulate that together sum or max any
// number of branches, the [N, C, 1, 1] broadcast (squeeze-excite's scale, channel shift), and
// the channel copy behind concat, slice and channel shuffle.

const MODE_ADD: u32 = 0u;
const MODE_MAX: u32 = 1u;
const MODE_MUL: u32 = 2u;

struct Params {
    total: u32, spatial: u32, channels: u32, act: u32,
    mode: u32, affine: u32, v_image: u32, v_channel: u32,
}

fn combine(u: f32, v: f32, mode: u32) -> f32 {
    switch mode {
        case 1u: { return max(u, v); }
        case 2u: { return u * v; }
        default: { return u + v; }
    }
}

// y = act(a * b[c] + b[C + c]) with `affine` set (b holds scale then shift), else act(a).
@compute @workgroup_size(256)
fn unary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    var v = f32(a[i]);
    if (p.affine != 0u) {
        let c = (i / p.spatial) % p.channels;
        v = v * f32(b[c]) + f32(b[p.channels + c]);
    }
    y[i] = elem(activate(v, p.act));
}

// y = act(a op b).
@compute @workgroup_size(256)
fn binary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    y[i] = elem(activate(combine(f32(a[i]), f32(b[i]), p.mode), p.act));
}

// y = act(y op a): the third and later branches of a sum or max.
@compute @workgroup_size(256)
fn accumulate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    y[i] = elem(activate(combine(f32(y[i]), f32(a[i]), p.mode), p.act));
}

// y = act(a op b[n * v_image + c * v_channel]): b is [N, C, 1, 1] or [N, 1, 1, 1].
@compute @workgroup_size(256)
fn broadcast(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    let plane = i / p.spatial;
    let c = plane % p.channels;
    let n = plane / p.channels;
    y[i] = elem(activate(combine(f32(a[i]), f32(b[n * p.v_image + c * p.v_channel]), p.mode), p.act));
}
