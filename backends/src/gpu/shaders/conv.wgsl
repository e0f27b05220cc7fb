// Direct convolution, one output per invocation: any kernel size, stride, padding and groups
// (the stem, dense k x k, grouped and strided 1x1 convs). Per-channel scale and shift (bias,
// folded batch norm) and the activation are fused.

struct Params {
    n: u32, cin: u32, hin: u32, win: u32,
    cout: u32, hout: u32, wout: u32, k: u32,
    stride: u32, pad: u32, groups: u32, act: u32,
    total: u32, _p0: u32, _p1: u32, _p2: u32,
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    let ox = i % p.wout;
    let oy = (i / p.wout) % p.hout;
    let co = (i / (p.wout * p.hout)) % p.cout;
    let n = i / (p.wout * p.hout * p.cout);
    let cin_g = p.cin / p.groups;
    let g = co / (p.cout / p.groups);
    let iy0 = i32(oy * p.stride) - i32(p.pad);
    let ix0 = i32(ox * p.stride) - i32(p.pad);
    var acc = 0.0;
    for (var ci = 0u; ci < cin_g; ci++) {
        let xbase = (n * p.cin + g * cin_g + ci) * p.hin * p.win;
        let wbase = (co * cin_g + ci) * p.k * p.k;
        for (var ky = 0u; ky < p.k; ky++) {
            let iy = iy0 + i32(ky);
            if (iy < 0 || iy >= i32(p.hin)) { continue; }
            let row = xbase + u32(iy) * p.win;
            for (var kx = 0u; kx < p.k; kx++) {
                let ix = ix0 + i32(kx);
                if (ix < 0 || ix >= i32(p.win)) { continue; }
                acc += f32(x[row + u32(ix)]) * f32(w[wbase + ky * p.k + kx]);
            }
        }
    }
    y[i] = elem(activate(acc * f32(scale[co]) + f32(shift[co]), p.act));
}
