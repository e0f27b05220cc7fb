//! libFuzzer entry for harness::fuzz::npy (see fuzz/Cargo.toml).
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: {
        // npyz multiplies a header's shape out itself and panics on overflow where overflow
        // checks are on; the reader catches that panic and reports a corrupt header.
        // libFuzzer's hook would abort on it first: the default hook keeps the message, and
        // an uncaught panic still aborts the target.
        let _ = std::panic::take_hook();
    },
    |data: &[u8]| harness::fuzz::npy(data)
);
