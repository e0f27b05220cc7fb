// Shared by every kernel: the fused activation and the flat index of a 1-D dispatch that may
// spill into y (a dimension holds at most 65535 workgroups).

const ACT_NONE: u32 = 0u;
const ACT_RELU: u32 = 1u;
const ACT_RELU6: u32 = 2u;
const ACT_SIGMOID: u32 = 3u;
const ACT_HARD_SIGMOID: u32 = 4u;
const ACT_HARD_SWISH: u32 = 5u;
const ACT_SILU: u32 = 6u;
const ACT_GELU: u32 = 7u;

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

// erf by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7); WGSL has no erf.
fn erf_approx(x: f32) -> f32 {
    let a = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let r = 1.0 - poly * exp(-a * a);
    return select(r, -r, x < 0.0);
}

fn activate(x: f32, act: u32) -> f32 {
    switch act {
        case 1u: { return max(x, 0.0); }
        case 2u: { return clamp(x, 0.0, 6.0); }
        case 3u: { return sigmoid(x); }
        case 4u: { return clamp(x + 3.0, 0.0, 6.0) / 6.0; }
        case 5u: { return x * clamp(x + 3.0, 0.0, 6.0) / 6.0; }
        case 6u: { return x * sigmoid(x); }
        case 7u: { return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752)); }
        default: { return x; }
    }
}

const WG: u32 = 256u;

fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}
