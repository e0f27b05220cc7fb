// Channel copy: `count` channels of each image, source channel src_offset + j * src_step to
// destination channel dst_offset + j * dst_step. Concat, slice and channel shuffle are made
// of these.

struct Params {
    total: u32, spatial: u32, count: u32, src_channels: u32,
    src_offset: u32, src_step: u32, dst_channels: u32, dst_offset: u32,
    dst_step: u32, _p0: u32, _p1: u32, _p2: u32,
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    let s = i % p.spatial;
    let j = (i / p.spatial) % p.count;
    let n = i / (p.spatial * p.count);
    let src = (n * p.src_channels + p.src_offset + j * p.src_step) * p.spatial + s;
    let dst = (n * p.dst_channels + p.dst_offset + j * p.dst_step) * p.spatial + s;
    y[dst] = x[src];
}
