// Shared by backends/build.rs and harness/build.rs (through `include!`): with the `tch` feature,
// writes libtorch's lib folder into the rpath of the package's binaries and tests, so they find
// libtorch without LD_LIBRARY_PATH, and returns the libtorch version the install reports.

/// `Some(version)` when the `tch` feature is on; exits with a clear message when LIBTORCH is unset.
fn libtorch_link_setup() -> Option<String> {
    std::env::var_os("CARGO_FEATURE_TCH")?;
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(root) = std::env::var_os("LIBTORCH").map(std::path::PathBuf::from) else {
        eprintln!(
            "error: the `tch` feature needs LIBTORCH; run: eval \"$(scripts/setup-libtorch.sh)\""
        );
        std::process::exit(1);
    };
    let lib = root.join("lib");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    // A PyPI wheel has version.py (`__version__ = '2.13.0+cu130'`); a libtorch zip has build-version.
    let from_py = std::fs::read_to_string(root.join("version.py"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("__version__ = "))
                .map(|v| v.trim_matches(|c| c == '\'' || c == '"').to_string())
        });
    let from_zip = || {
        std::fs::read_to_string(root.join("build-version"))
            .ok()
            .map(|v| v.trim().to_string())
    };
    Some(from_py.or_else(from_zip).unwrap_or_else(|| "unknown".into()))
}
