//! The machine's measured ceilings: a short FMA probe (peak fp32 GFLOP/s, with AVX-512, AVX2+FMA
//! or portable code picked at run time) and a read-bandwidth probe (GB/s), at 1 thread and at
//! every core, cached per machine fingerprint so every run compares against the same numbers.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reports::results::MachinePeak;

const PROBE_TIME: Duration = Duration::from_millis(150);
const CHAINS: usize = 12;

/// The peak for this machine: from the cache when present, else probed (about 2 s) and cached.
pub fn peak(fingerprint: &str, max_threads: usize) -> MachinePeak {
    let cache = cache_path(fingerprint);
    if let Some(peak) = cache
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice::<MachinePeak>(&b).ok())
    {
        if peak.gflops.iter().any(|(t, _)| *t == max_threads) {
            return peak;
        }
    }
    let peak = probe(max_threads);
    if let Some(path) = cache {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = models::checkpoint::write_atomically(
            &path,
            serde_json::to_string_pretty(&peak)
                .unwrap_or_default()
                .as_bytes(),
        );
    }
    peak
}

fn cache_path(fingerprint: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(
        base.join("onebench")
            .join(format!("peak-{fingerprint}.json")),
    )
}

/// Probes at 1 thread and at `max_threads`.
pub fn probe(max_threads: usize) -> MachinePeak {
    let mut counts = vec![1];
    if max_threads > 1 {
        counts.push(max_threads);
    }
    MachinePeak {
        gflops: counts
            .iter()
            .map(|&t| (t, parallel(t, fma_gflops)))
            .collect(),
        gbps: counts
            .iter()
            .map(|&t| (t, parallel(t, read_gbps)))
            .collect(),
        isa: isa().into(),
    }
}

/// Runs `probe` on `threads` threads at once and adds their rates.
fn parallel(threads: usize, probe: fn() -> f64) -> f64 {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(probe)).collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
    })
}

fn isa() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512f";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "avx2+fma";
        }
    }
    "portable"
}

/// fp32 GFLOP/s of independent FMA chains on one thread.
fn fma_gflops() -> f64 {
    let kernel: fn(u64) -> (f32, u64) = match isa() {
        #[cfg(target_arch = "x86_64")]
        "avx512f" => |n| unsafe { x86::fma_avx512(n) },
        #[cfg(target_arch = "x86_64")]
        "avx2+fma" => |n| unsafe { x86::fma_avx2(n) },
        _ => fma_portable,
    };
    rate(|iters| kernel(iters).1 as f64, 1e9)
}

/// Repeats `work(iters)` (returning the units of work done) with growing iteration counts until
/// a run lasts PROBE_TIME; returns units per second / `scale`.
fn rate(work: impl Fn(u64) -> f64, scale: f64) -> f64 {
    let mut iters = 1024u64;
    loop {
        let t = Instant::now();
        let units = std::hint::black_box(work(iters));
        let elapsed = t.elapsed();
        if elapsed >= PROBE_TIME {
            return units / elapsed.as_secs_f64() / scale;
        }
        iters *= 2;
    }
}

fn fma_portable(iters: u64) -> (f32, u64) {
    let mut acc = [[0.0f32; 8]; CHAINS];
    for _ in 0..iters {
        for chain in acc.iter_mut() {
            for v in chain.iter_mut() {
                *v = *v * 0.999_999 + 1e-7;
            }
        }
    }
    let sum = acc.iter().flatten().sum();
    (sum, iters * (CHAINS * 8 * 2) as u64)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::CHAINS;
    use std::arch::x86_64::*;

    // Twelve independent accumulators held in registers (an array would live on the stack and
    // make every FMA wait on a store), so the FMA units, not latency, set the pace.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma_avx512(iters: u64) -> (f32, u64) {
        let a = _mm512_set1_ps(0.999_999);
        let b = _mm512_set1_ps(1e-7);
        let z = _mm512_setzero_ps();
        let (mut r0, mut r1, mut r2, mut r3, mut r4, mut r5) = (z, z, z, z, z, z);
        let (mut r6, mut r7, mut r8, mut r9, mut r10, mut r11) = (z, z, z, z, z, z);
        for _ in 0..iters {
            r0 = _mm512_fmadd_ps(r0, a, b);
            r1 = _mm512_fmadd_ps(r1, a, b);
            r2 = _mm512_fmadd_ps(r2, a, b);
            r3 = _mm512_fmadd_ps(r3, a, b);
            r4 = _mm512_fmadd_ps(r4, a, b);
            r5 = _mm512_fmadd_ps(r5, a, b);
            r6 = _mm512_fmadd_ps(r6, a, b);
            r7 = _mm512_fmadd_ps(r7, a, b);
            r8 = _mm512_fmadd_ps(r8, a, b);
            r9 = _mm512_fmadd_ps(r9, a, b);
            r10 = _mm512_fmadd_ps(r10, a, b);
            r11 = _mm512_fmadd_ps(r11, a, b);
        }
        let all = [r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11];
        let sum = all.iter().map(|r| _mm512_reduce_add_ps(*r)).sum();
        (sum, iters * (CHAINS * 16 * 2) as u64)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma_avx2(iters: u64) -> (f32, u64) {
        let a = _mm256_set1_ps(0.999_999);
        let b = _mm256_set1_ps(1e-7);
        let z = _mm256_setzero_ps();
        let (mut r0, mut r1, mut r2, mut r3, mut r4, mut r5) = (z, z, z, z, z, z);
        let (mut r6, mut r7, mut r8, mut r9, mut r10, mut r11) = (z, z, z, z, z, z);
        for _ in 0..iters {
            r0 = _mm256_fmadd_ps(r0, a, b);
            r1 = _mm256_fmadd_ps(r1, a, b);
            r2 = _mm256_fmadd_ps(r2, a, b);
            r3 = _mm256_fmadd_ps(r3, a, b);
            r4 = _mm256_fmadd_ps(r4, a, b);
            r5 = _mm256_fmadd_ps(r5, a, b);
            r6 = _mm256_fmadd_ps(r6, a, b);
            r7 = _mm256_fmadd_ps(r7, a, b);
            r8 = _mm256_fmadd_ps(r8, a, b);
            r9 = _mm256_fmadd_ps(r9, a, b);
            r10 = _mm256_fmadd_ps(r10, a, b);
            r11 = _mm256_fmadd_ps(r11, a, b);
        }
        let mut lanes = [0.0f32; 8];
        let mut sum = 0.0;
        for r in [r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11] {
            _mm256_storeu_ps(lanes.as_mut_ptr(), r);
            sum += lanes.iter().sum::<f32>();
        }
        (sum, iters * (CHAINS * 8 * 2) as u64)
    }
}

/// GB/s reading a 256 MiB buffer (beyond any cache) on one thread.
fn read_gbps() -> f64 {
    let data = vec![1u64; 32 << 20];
    rate(
        |iters| {
            let passes = (iters / 1024).max(1);
            let mut total = 0u64;
            for _ in 0..passes {
                total = data.iter().fold(total, |a, &b| a.wrapping_add(b));
            }
            std::hint::black_box(total);
            (passes * (data.len() * 8) as u64) as f64
        },
        1e9,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fma_kernels_count_the_same_work() {
        let (portable, n) = fma_portable(10);
        assert_eq!(n, 10 * 12 * 8 * 2);
        assert!(portable > 0.0);
        #[cfg(target_arch = "x86_64")]
        if isa() == "avx512f" {
            let (_, n) = unsafe { x86::fma_avx512(10) };
            assert_eq!(n, 10 * 12 * 16 * 2);
        }
    }

    #[test]
    fn probe_gives_positive_rates() {
        let p = probe(1);
        assert_eq!(p.gflops.len(), 1);
        assert!(p.gflops[0].1 > 0.1 && p.gbps[0].1 > 0.1, "{p:?}");
    }
}
