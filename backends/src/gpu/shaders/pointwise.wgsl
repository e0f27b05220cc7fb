// Pointwise (1x1, stride 1, ungrouped) convolution as a tiled matrix product per image:
// Y[co, s] = sum_ci W[co, ci] X[ci, s]. A 16x16 workgroup computes a 64x64 tile of Y, 4x4
// outputs per invocation, staging 16-deep slices of W and X in workgroup memory.
// Per-channel scale and shift and the activation are fused.

struct Params {
    cout: u32, cin: u32, spatial: u32, act: u32,
    images: u32, _p0: u32, _p1: u32, _p2: u32,
}

const TILE: u32 = 64u;
const DEPTH: u32 = 16u;

var<workgroup> w_tile: array<f32, 1024>; // [k][m]
var<workgroup> x_tile: array<f32, 1024>; // [k][s]

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let m0 = wid.y * TILE;
    let s0 = wid.x * TILE;
    let image = wid.z;
    let x_base = image * p.cin * p.spatial;
    let y_base = image * p.cout * p.spatial;
    let t = lid.y * 16u + lid.x;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.cin; k0 += DEPTH) {
        for (var l = 0u; l < 4u; l++) {
            let e = t + l * 256u;
            let wm = e / DEPTH;
            let wk = e % DEPTH;
            var wv = 0.0;
            if (m0 + wm < p.cout && k0 + wk < p.cin) { wv = f32(w[(m0 + wm) * p.cin + k0 + wk]); }
            w_tile[wk * TILE + wm] = wv;
            let xk = e / TILE;
            let xs = e % TILE;
            var xv = 0.0;
            if (k0 + xk < p.cin && s0 + xs < p.spatial) { xv = f32(x[x_base + (k0 + xk) * p.spatial + s0 + xs]); }
            x_tile[xk * TILE + xs] = xv;
        }
        workgroupBarrier();
        for (var k = 0u; k < DEPTH; k++) {
            let wr = k * TILE + lid.y * 4u;
            let xr = k * TILE + lid.x * 4u;
            let b = vec4<f32>(x_tile[xr], x_tile[xr + 1u], x_tile[xr + 2u], x_tile[xr + 3u]);
            acc0 += w_tile[wr] * b;
            acc1 += w_tile[wr + 1u] * b;
            acc2 += w_tile[wr + 2u] * b;
            acc3 += w_tile[wr + 3u] * b;
        }
        workgroupBarrier();
    }
    store_row(y_base, m0 + lid.y * 4u, s0 + lid.x * 4u, acc0);
    store_row(y_base, m0 + lid.y * 4u + 1u, s0 + lid.x * 4u, acc1);
    store_row(y_base, m0 + lid.y * 4u + 2u, s0 + lid.x * 4u, acc2);
    store_row(y_base, m0 + lid.y * 4u + 3u, s0 + lid.x * 4u, acc3);
}

// Four outputs of row m from column s, through the fused scale, shift and activation.
fn store_row(y_base: u32, m: u32, s: u32, v: vec4<f32>) {
    if (m >= p.cout) { return; }
    for (var c = 0u; c < 4u; c++) {
        if (s + c < p.spatial) {
            y[y_base + m * p.spatial + s + c] = elem(activate(v[c] * f32(scale[m]) + f32(shift[m]), p.act));
        }
    }
}

// The same product without workgroup memory or barriers: each invocation reads its 4 rows of W
// and 4 columns of X straight from memory. Chosen on CPU adapters (lavapipe), where a barrier
// costs a switch between every invocation of the workgroup.
@compute @workgroup_size(256)
fn direct(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let columns = (p.spatial + 3u) / 4u;
    let rows = (p.cout + 3u) / 4u;
    if (i >= p.images * rows * columns) { return; }
    let s = (i % columns) * 4u;
    let m = ((i / columns) % rows) * 4u;
    let image = i / (columns * rows);
    let x_base = image * p.cin * p.spatial;
    let y_base = image * p.cout * p.spatial;
    let m1 = min(m + 1u, p.cout - 1u);
    let m2 = min(m + 2u, p.cout - 1u);
    let m3 = min(m + 3u, p.cout - 1u);
    let full = s + 4u <= p.spatial;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k = 0u; k < p.cin; k++) {
        let xr = x_base + k * p.spatial + s;
        var b: vec4<f32>;
        if (full) {
            b = vec4<f32>(f32(x[xr]), f32(x[xr + 1u]), f32(x[xr + 2u]), f32(x[xr + 3u]));
        } else {
            b = vec4<f32>(f32(x[xr]), select(0.0, f32(x[xr + 1u]), s + 1u < p.spatial),
                          select(0.0, f32(x[xr + 2u]), s + 2u < p.spatial), select(0.0, f32(x[xr + 3u]), s + 3u < p.spatial));
        }
        acc0 += f32(w[m * p.cin + k]) * b;
        acc1 += f32(w[m1 * p.cin + k]) * b;
        acc2 += f32(w[m2 * p.cin + k]) * b;
        acc3 += f32(w[m3 * p.cin + k]) * b;
    }
    store_row(y_base, m, s, acc0);
    store_row(y_base, m + 1u, s, acc1);
    store_row(y_base, m + 2u, s, acc2);
    store_row(y_base, m + 3u, s, acc3);
}
