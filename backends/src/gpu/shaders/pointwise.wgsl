// Pointwise (1x1, stride 1, ungrouped) convolution as a tiled matrix product per image:
// Y[co, s] = sum_ci W[co, ci] X[ci, s]. A 16x16 workgroup computes a 64x64 tile of Y, 4x4
// outputs per invocation, staging 16-deep slices of W and X in workgroup memory.
// Per-channel scale and shift and the activation are fused.

struct Params {
    cout: u32, cin: u32, spatial: u32, act: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> scale: array<f32>;
@group(0) @binding(4) var<storage, read> shift: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

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
    var acc: array<f32, 16>;
    for (var k0 = 0u; k0 < p.cin; k0 += DEPTH) {
        for (var l = 0u; l < 4u; l++) {
            let e = t + l * 256u;
            let wm = e / DEPTH;
            let wk = e % DEPTH;
            var wv = 0.0;
            if (m0 + wm < p.cout && k0 + wk < p.cin) { wv = w[(m0 + wm) * p.cin + k0 + wk]; }
            w_tile[wk * TILE + wm] = wv;
            let xk = e / TILE;
            let xs = e % TILE;
            var xv = 0.0;
            if (k0 + xk < p.cin && s0 + xs < p.spatial) { xv = x[x_base + (k0 + xk) * p.spatial + s0 + xs]; }
            x_tile[xk * TILE + xs] = xv;
        }
        workgroupBarrier();
        for (var k = 0u; k < DEPTH; k++) {
            let a = vec4<f32>(w_tile[k * TILE + lid.y * 4u], w_tile[k * TILE + lid.y * 4u + 1u],
                              w_tile[k * TILE + lid.y * 4u + 2u], w_tile[k * TILE + lid.y * 4u + 3u]);
            let b = vec4<f32>(x_tile[k * TILE + lid.x * 4u], x_tile[k * TILE + lid.x * 4u + 1u],
                              x_tile[k * TILE + lid.x * 4u + 2u], x_tile[k * TILE + lid.x * 4u + 3u]);
            for (var r = 0u; r < 4u; r++) {
                acc[r * 4u] += a[r] * b.x;
                acc[r * 4u + 1u] += a[r] * b.y;
                acc[r * 4u + 2u] += a[r] * b.z;
                acc[r * 4u + 3u] += a[r] * b.w;
            }
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < 4u; r++) {
        let m = m0 + lid.y * 4u + r;
        if (m >= p.cout) { continue; }
        for (var c = 0u; c < 4u; c++) {
            let s = s0 + lid.x * 4u + c;
            if (s < p.spatial) {
                y[y_base + m * p.spatial + s] = activate(acc[r * 4u + c] * scale[m] + shift[m], p.act);
            }
        }
    }
}
