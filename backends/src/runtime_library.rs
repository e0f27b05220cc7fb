//! Where a runtime opened at run time lives (ONNX Runtime's `libonnxruntime`, OpenVINO's
//! `libopenvino_c`): the file an environment variable names, else the one it named when this
//! binary was built; checked to exist before anything tries to load it.

use std::path::PathBuf;

/// The library file named by `var` now, or by `built_with` (the same variable at build time);
/// the error says which variable and which setup script prints it.
pub fn locate(var: &str, built_with: Option<&str>, setup_script: &str) -> Result<PathBuf, String> {
    let path = std::env::var(var)
        .ok()
        .filter(|p| !p.is_empty())
        .or(built_with.filter(|p| !p.is_empty()).map(String::from))
        .ok_or_else(|| format!("{var} is not set (eval \"$({setup_script})\")"))?;
    let path = PathBuf::from(path);
    if !path.is_file() {
        return Err(format!("{var}={}: no such file", path.display()));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_library_is_found_by_the_build_time_path_and_a_missing_one_is_named() {
        let var = "ONEBENCH_TEST_RUNTIME_LIBRARY_UNSET";
        let err = locate(var, None, "scripts/setup-x.sh").unwrap_err();
        assert_eq!(
            err,
            format!("{var} is not set (eval \"$(scripts/setup-x.sh)\")")
        );
        let file = tempfile::NamedTempFile::new().unwrap();
        let path = file.path().to_str().unwrap();
        assert_eq!(locate(var, Some(path), "s").unwrap(), file.path());
        let err = locate(var, Some("/nonexistent/libx.so"), "s").unwrap_err();
        assert_eq!(err, format!("{var}=/nonexistent/libx.so: no such file"));
    }
}
