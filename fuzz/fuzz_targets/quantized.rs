//! libFuzzer entry for harness::fuzz::quantized (see fuzz/Cargo.toml).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::fuzz::quantized(data));
