// Depthwise 3x3 convolution (stride 1 or 2, any padding), one output per invocation with the
// nine taps unrolled; per-channel scale and shift and the activation fused.

struct Params {
    n: u32, c: u32, hin: u32, win: u32,
    hout: u32, wout: u32, stride: u32, pad: u32,
    act: u32, total: u32, _p0: u32, _p1: u32,
}

fn tap(base: u32, iy: i32, ix: i32) -> f32 {
    if (iy < 0 || iy >= i32(p.hin) || ix < 0 || ix >= i32(p.win)) { return 0.0; }
    return f32(x[base + u32(iy) * p.win + u32(ix)]);
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    let ox = i % p.wout;
    let oy = (i / p.wout) % p.hout;
    let plane = i / (p.wout * p.hout);
    let c = plane % p.c;
    let base = plane * p.hin * p.win;
    let iy = i32(oy * p.stride) - i32(p.pad);
    let ix = i32(ox * p.stride) - i32(p.pad);
    let wb = c * 9u;
    var acc = 0.0;
    for (var ky = 0; ky < 3; ky++) {
        acc += tap(base, iy + ky, ix) * f32(w[wb + u32(ky) * 3u])
             + tap(base, iy + ky, ix + 1) * f32(w[wb + u32(ky) * 3u + 1u])
             + tap(base, iy + ky, ix + 2) * f32(w[wb + u32(ky) * 3u + 2u]);
    }
    y[i] = elem(activate(acc * f32(scale[c]) + f32(shift[c]), p.act));
}
