// Pooling: the global average (one 64-wide workgroup per image and channel, reduced in
// workgroup memory) and the windowed max (one output per invocation; padding never wins).

struct Params {
    planes: u32, hin: u32, win: u32, hout: u32,
    wout: u32, k: u32, stride: u32, pad: u32,
    total: u32, _p0: u32, _p1: u32, _p2: u32,
}

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn global_average(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let plane = wid.x + wid.y * nwg.x;
    let valid = plane < p.planes;
    let size = p.hin * p.win;
    var acc = 0.0;
    if (valid) {
        for (var i = lane; i < size; i += 64u) { acc += f32(x[plane * size + i]); }
    }
    partial[lane] = acc;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half >>= 1u) {
        if (lane < half) { partial[lane] += partial[lane + half]; }
        workgroupBarrier();
    }
    if (valid && lane == 0u) { y[plane] = elem(partial[0] / f32(size)); }
}

@compute @workgroup_size(256)
fn max_window(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    let ox = i % p.wout;
    let oy = (i / p.wout) % p.hout;
    let plane = i / (p.wout * p.hout);
    let base = plane * p.hin * p.win;
    let iy0 = i32(oy * p.stride) - i32(p.pad);
    let ix0 = i32(ox * p.stride) - i32(p.pad);
    var best = -3.4028235e38;
    for (var ky = 0u; ky < p.k; ky++) {
        let iy = iy0 + i32(ky);
        if (iy < 0 || iy >= i32(p.hin)) { continue; }
        for (var kx = 0u; kx < p.k; kx++) {
            let ix = ix0 + i32(kx);
            if (ix < 0 || ix >= i32(p.win)) { continue; }
            best = max(best, f32(x[base + u32(iy) * p.win + u32(ix)]));
        }
    }
    y[i] = elem(best);
}
