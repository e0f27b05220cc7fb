//! The fuzz targets of `harness::fuzz` (every reader of untrusted bytes), driven for a bounded
//! time by seeded random inputs: ONEBENCH_FUZZ_SECONDS per target (default 8) and
//! ONEBENCH_FUZZ_SEED (default: one per target). A panic saves its input under
//! target/fuzz-failures/ and fails the test. For long coverage-guided runs by hand, `fuzz/`
//! runs the same targets under libFuzzer (README, "Bad input and faults").

use std::time::{Duration, Instant};

use rand_chacha::rand_core::{Rng, SeedableRng};

fn drive(name: &str, default_seed: u64, target: fn(&[u8])) {
    let env = |key: &str| std::env::var(key).ok().and_then(|v| v.parse::<u64>().ok());
    let seconds = env("ONEBENCH_FUZZ_SECONDS").unwrap_or(8);
    let seed = env("ONEBENCH_FUZZ_SEED").unwrap_or(default_seed);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut inputs = 0u64;
    while Instant::now() < deadline {
        let len = (rng.next_u32() % 4096) as usize;
        let mut bytes = vec![0u8; len];
        rng.fill_bytes(&mut bytes);
        let outcome = std::panic::catch_unwind(|| target(&bytes));
        if let Err(panic) = outcome {
            let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../fuzz-failures");
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("{name}-seed{seed}-input{inputs}.bin"));
            let _ = std::fs::write(&file, &bytes);
            eprintln!(
                "fuzz {name}: input {inputs} (seed {seed}) panicked; saved to {}",
                file.display()
            );
            std::panic::resume_unwind(panic);
        }
        inputs += 1;
    }
    eprintln!("fuzz {name}: {inputs} inputs in {seconds} s (seed {seed}), no panic");
    assert!(inputs > 0);
}

#[test]
fn fuzz_npy() {
    drive("npy", 1, harness::fuzz::npy);
}

#[test]
fn fuzz_safetensors() {
    drive("safetensors", 2, harness::fuzz::safetensors);
}

#[test]
fn fuzz_pytorch() {
    drive("pytorch", 3, harness::fuzz::pytorch);
}

#[test]
fn fuzz_scenario() {
    drive("scenario", 4, harness::fuzz::scenario);
}

#[test]
fn fuzz_results() {
    drive("results", 5, harness::fuzz::results);
}

#[test]
fn fuzz_quantized() {
    drive("quantized", 6, harness::fuzz::quantized);
}
