//! Records the versions of candle-core, tch, wgpu, ort and openvino this build links (read from
//! the workspace Cargo.lock), the ONNX Runtime, OpenVINO and LiteRT library paths it was built with,
//! and, with the `tch` feature, libtorch's version and rpath.

include!("build_libtorch.rs");

fn locked_version(lock: &str, package: &str) -> String {
    lock.split("[[package]]")
        .find(|block| block.contains(&format!("name = \"{package}\"")))
        .and_then(|block| block.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn main() {
    let lock = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    println!(
        "cargo:rustc-env=ONEBENCH_CANDLE_VERSION={}",
        locked_version(&text, "candle-core")
    );
    println!(
        "cargo:rustc-env=ONEBENCH_TCH_VERSION={}",
        locked_version(&text, "tch")
    );
    println!(
        "cargo:rustc-env=ONEBENCH_WGPU_VERSION={}",
        locked_version(&text, "wgpu")
    );
    println!(
        "cargo:rustc-env=ONEBENCH_ORT_VERSION={}",
        locked_version(&text, "ort")
    );
    // The ONNX Runtime library the `ort` backend opens when ORT_DYLIB_PATH is unset at run time.
    println!("cargo:rerun-if-env-changed=ORT_DYLIB_PATH");
    if let Ok(path) = std::env::var("ORT_DYLIB_PATH") {
        println!("cargo:rustc-env=ONEBENCH_ORT_DYLIB_PATH={path}");
    }
    println!(
        "cargo:rustc-env=ONEBENCH_OPENVINO_VERSION={}",
        locked_version(&text, "openvino")
    );
    // The OpenVINO C library the `openvino` backend opens when OPENVINO_LIB_PATH is unset.
    println!("cargo:rerun-if-env-changed=OPENVINO_LIB_PATH");
    if let Ok(path) = std::env::var("OPENVINO_LIB_PATH") {
        println!("cargo:rustc-env=ONEBENCH_OPENVINO_LIB_PATH={path}");
    }
    // The LiteRT library (and its wheel's version) the `litert` backend opens when
    // LITERT_LIB_PATH is unset at run time.
    for var in ["LITERT_LIB_PATH", "LITERT_VERSION"] {
        println!("cargo:rerun-if-env-changed={var}");
        if let Ok(value) = std::env::var(var) {
            println!("cargo:rustc-env=ONEBENCH_{var}={value}");
        }
    }
    if let Some(version) = libtorch_link_setup() {
        println!("cargo:rustc-env=ONEBENCH_LIBTORCH_VERSION={version}");
    }
}
