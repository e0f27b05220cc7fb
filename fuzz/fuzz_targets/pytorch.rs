//! libFuzzer entry for harness::fuzz::pytorch (see fuzz/Cargo.toml).
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: {
        // candle's pickle reader can panic on a crafted file; the loader catches that panic
        // (catch_unwind) and reports a corrupt file. libFuzzer's hook would abort on it first:
        // the default hook keeps the message, and an uncaught panic still aborts the target.
        let _ = std::panic::take_hook();
    },
    |data: &[u8]| harness::fuzz::pytorch(data)
);
