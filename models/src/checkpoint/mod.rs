//! Checkpoint files: reading safetensors and zip-based PyTorch files (through candle-core's
//! pickle reader) into float32 tensors, mapping their names onto our canonical (Apple) names,
//! checking them against a model, and writing safetensors atomically.

pub mod fixtures;
pub mod naming;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::DType;
use half::{bf16, f16};
use safetensors::tensor::{Dtype, TensorView};

pub use naming::Naming;

use crate::mobileone::{build, Variant};
use crate::model::{Form, InputSize};
use crate::tensor::Tensor;
use crate::weights::{Weights, WeightsError};

/// Everything that can be wrong with a checkpoint file; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: cannot read: {error}")]
    Io {
        path: PathBuf,
        /// Not a `source` (the message already says it; a chained source would print twice).
        error: std::io::Error,
    },
    #[error("{path}: not a safetensors file nor a zip-based PyTorch checkpoint ({found})")]
    UnknownFormat { path: PathBuf, found: String },
    #[error("{path}: a legacy (pre-1.6, non-zip) PyTorch file, which is not supported; re-save it with torch.save in PyTorch >= 1.6 or convert it to safetensors")]
    LegacyPyTorch { path: PathBuf },
    #[error("{path}: corrupt or truncated {format} file: {reason}")]
    Corrupt {
        path: PathBuf,
        format: &'static str,
        reason: String,
    },
    #[error("{path}: tensor `{tensor}` has dtype {dtype}; supported: float32, float16, bfloat16, float64")]
    UnsupportedDtype {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },
    #[error("{path}: holds no tensors{hint}")]
    Empty { path: PathBuf, hint: String },
    #[error("{path}: tensor names follow none of the known schemes (apple, timm, mmpretrain); first name: `{first}`")]
    UnknownNaming { path: PathBuf, first: String },
    #[error("{path}: unexpected key `{key}`: not a MobileOne tensor name in the {naming} scheme (found {recognized} of {total} names in that scheme{hint})")]
    UnexpectedKey {
        path: PathBuf,
        key: String,
        naming: Naming,
        recognized: usize,
        total: usize,
        hint: String,
    },
    #[error("{path}: expected a {expected} checkpoint, but this looks like {looks_like}")]
    WrongModel {
        path: PathBuf,
        expected: String,
        looks_like: String,
    },
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("{inner} ({note})")]
    Noted {
        inner: Box<CheckpointError>,
        note: String,
    },
    #[error("{path}: cannot write: {reason}")]
    Write { path: PathBuf, reason: String },
}

/// The tensors of a checkpoint file as stored: float32, names after wrapper and `module.`
/// prefix removal, `num_batches_tracked` dropped.
#[derive(Debug, Clone)]
pub struct RawCheckpoint {
    pub path: PathBuf,
    pub format: &'static str,
    pub tensors: BTreeMap<String, Tensor<f32>>,
}

/// Weights loaded for a model, with what was detected on the way.
#[derive(Debug, Clone)]
pub struct LoadedWeights {
    pub weights: Weights<f32>,
    pub naming: Naming,
    pub format: &'static str,
}

/// Reads a safetensors or PyTorch file, recognized by its content, not its extension.
pub fn read_checkpoint(path: &Path) -> Result<RawCheckpoint, CheckpointError> {
    let io = |error| CheckpointError::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut head = [0u8; 9];
    let n = {
        let mut file = std::fs::File::open(path).map_err(io)?;
        read_up_to(&mut file, &mut head).map_err(io)?
    };
    let head = &head[..n];
    let (format, tensors) = if head.starts_with(b"PK\x03\x04") {
        ("PyTorch", read_pytorch(path)?)
    } else if head.len() == 9 && head[8] == b'{' {
        ("safetensors", read_safetensors(path)?)
    } else if head.first() == Some(&0x80) {
        return Err(CheckpointError::LegacyPyTorch {
            path: path.to_path_buf(),
        });
    } else {
        return Err(CheckpointError::UnknownFormat {
            path: path.to_path_buf(),
            found: if n == 0 {
                "the file is empty".into()
            } else {
                format!("first bytes {head:02x?}")
            },
        });
    };
    let tensors = tensors
        .into_iter()
        .filter(|(name, _)| !name.ends_with("num_batches_tracked"))
        .map(|(name, t)| {
            (
                name.strip_prefix("module.")
                    .map(str::to_string)
                    .unwrap_or(name),
                t,
            )
        })
        .collect();
    Ok(RawCheckpoint {
        path: path.to_path_buf(),
        format,
        tensors,
    })
}

fn read_up_to(r: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor<f32>)>, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|error| CheckpointError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    parse_safetensors(path, &bytes)
}

/// The float32 tensors of a safetensors file's bytes; `path` names it in errors.
pub fn parse_safetensors(
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<(String, Tensor<f32>)>, CheckpointError> {
    let file =
        safetensors::SafeTensors::deserialize(bytes).map_err(|e| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            format: "safetensors",
            reason: safetensors_problem(bytes).unwrap_or_else(|| e.to_string()),
        })?;
    let mut out = Vec::new();
    for (name, view) in file.tensors() {
        if name.ends_with("num_batches_tracked") {
            continue;
        }
        let data = decode_safetensors(&view).ok_or_else(|| CheckpointError::UnsupportedDtype {
            path: path.to_path_buf(),
            tensor: name.clone(),
            dtype: format!("{:?}", view.dtype()),
        })?;
        let tensor =
            Tensor::new(view.shape().to_vec(), data).map_err(|e| CheckpointError::Corrupt {
                path: path.to_path_buf(),
                format: "safetensors",
                reason: format!("tensor `{name}`: {e}"),
            })?;
        out.push((name, tensor));
    }
    Ok(out)
}

/// The safetensors crate says "invalid shape, data type, or offset for tensor" without naming
/// it: read the header again and name the first tensor whose size disagrees with its offsets.
fn safetensors_problem(bytes: &[u8]) -> Option<String> {
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let end = 8usize.checked_add(usize::try_from(len).ok()?)?;
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(bytes.get(8..end)?).ok()?;
    let data_len = bytes.len() - end;
    header
        .iter()
        .filter(|(name, _)| *name != "__metadata__")
        .find_map(|(name, info)| {
            tensor_entry_problem(info, data_len).map(|p| format!("tensor `{name}`: {p}"))
        })
}

/// What is wrong with one safetensors header entry, if anything.
fn tensor_entry_problem(info: &serde_json::Value, data_len: usize) -> Option<String> {
    let dtype = info.get("dtype").and_then(|d| d.as_str()).unwrap_or("?");
    let bytes_per = match dtype {
        "F64" | "I64" | "U64" => 8,
        "F32" | "I32" | "U32" => 4,
        "F16" | "BF16" | "I16" | "U16" => 2,
        "I8" | "U8" | "BOOL" | "F8_E4M3" | "F8_E5M2" => 1,
        _ => return Some(format!("data type `{dtype}` is not known")),
    };
    let shape: Option<Vec<usize>> = info
        .get("shape")?
        .as_array()?
        .iter()
        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
        .collect();
    let Some(shape) = shape else {
        return Some(format!("shape {} is not a list of sizes", info["shape"]));
    };
    let offsets: Option<Vec<usize>> = info
        .get("data_offsets")?
        .as_array()?
        .iter()
        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
        .collect();
    let [start, end] = offsets.as_deref()? else {
        return Some("data_offsets is not [start, end]".into());
    };
    let needed = crate::tensor::checked_numel(&shape).and_then(|n| n.checked_mul(bytes_per));
    match needed {
        None => Some(format!("shape {shape:?} of {dtype} overflows")),
        Some(n) if end < start || end - start != n => Some(format!(
            "shape {shape:?} of {dtype} needs {n} bytes, but data_offsets [{start}, {end}] give {}",
            end.saturating_sub(*start)
        )),
        Some(_) if *end > data_len => Some(format!(
            "data_offsets [{start}, {end}] run past the end of the data ({data_len} bytes)"
        )),
        Some(_) => None,
    }
}

fn decode_safetensors(view: &TensorView<'_>) -> Option<Vec<f32>> {
    let bytes = view.data();
    let pairs = || bytes.chunks_exact(2).map(|c| [c[0], c[1]]);
    Some(match view.dtype() {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => pairs().map(|b| f16::from_le_bytes(b).to_f32()).collect(),
        Dtype::BF16 => pairs().map(|b| bf16::from_le_bytes(b).to_f32()).collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        _ => return None,
    })
}

/// Reads a zip-based `torch.save` file: a bare state dict, or one wrapped in `state_dict` or `model`.
fn read_pytorch(path: &Path) -> Result<Vec<(String, Tensor<f32>)>, CheckpointError> {
    let corrupt = |e: candle_core::Error| pth_corrupt(path, candle_message(&e));
    let mut chosen = None;
    for key in [None, Some("state_dict"), Some("model")] {
        match unpanicked(path, || {
            candle_core::pickle::read_pth_tensor_info(path, false, key)
        })? {
            Ok(infos) if !infos.is_empty() => {
                chosen = Some(key);
                break;
            }
            Ok(_) => {}
            // A wrapper key that is absent is not an error; a broken file is.
            Err(e) if key.is_some() && e.to_string().contains("not found") => {}
            Err(e) => return Err(corrupt(e)),
        }
    }
    let Some(key) = chosen else {
        return Err(CheckpointError::Empty {
            path: path.to_path_buf(),
            hint: " (looked at the top level and under `state_dict` and `model`)".into(),
        });
    };
    let file =
        unpanicked(path, || candle_core::pickle::PthTensors::new(path, key))?.map_err(corrupt)?;
    check_pth_storage(path, file.tensor_infos())?;
    let mut out = Vec::new();
    let mut names: Vec<_> = file.tensor_infos().keys().cloned().collect();
    names.sort();
    for name in names {
        if name.ends_with("num_batches_tracked") {
            continue;
        }
        let dtype = file.tensor_infos()[&name].dtype;
        if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16 | DType::F64) {
            return Err(CheckpointError::UnsupportedDtype {
                path: path.to_path_buf(),
                tensor: name,
                dtype: format!("{dtype:?}"),
            });
        }
        let tensor = unpanicked(path, || file.get(&name))?
            .map_err(corrupt)?
            .ok_or_else(|| {
                pth_corrupt(
                    path,
                    format!("tensor `{name}` is listed but cannot be read"),
                )
            })?;
        let shape = tensor.dims().to_vec();
        let data = tensor
            .to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(corrupt)?;
        let tensor = Tensor::new(shape, data)
            .map_err(|e| pth_corrupt(path, format!("tensor `{name}`: {e}")))?;
        out.push((name, tensor));
    }
    Ok(out)
}

/// candle's message without the backtrace it appends when RUST_BACKTRACE is set, and without
/// its own copy of the path (our message names the file already).
fn candle_message(e: &candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. }
        | candle_core::Error::WithPath { inner, .. } => candle_message(inner),
        other => other.to_string(),
    }
}

fn pth_corrupt(path: &Path, reason: String) -> CheckpointError {
    CheckpointError::Corrupt {
        path: path.to_path_buf(),
        format: "PyTorch",
        reason,
    }
}

/// candle's pickle reader is a parser of untrusted bytes: a panic inside it (an index out of
/// range on a crafted file) becomes a "corrupt file" error instead of ending the process.
fn unpanicked<T>(path: &Path, read: impl FnOnce() -> T) -> Result<T, CheckpointError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).map_err(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the pickle reader failed".into());
        pth_corrupt(path, what)
    })
}

/// Every tensor's claimed shape must fit in its storage record and in the bytes its zip entry
/// really holds, before candle allocates a buffer of the claimed size (a `[100000, 100000]`
/// shape over a few bytes would otherwise abort the process).
fn check_pth_storage(
    path: &Path,
    infos: &std::collections::HashMap<String, candle_core::pickle::TensorInfo>,
) -> Result<(), CheckpointError> {
    let entry_sizes = zip_entry_sizes(path)?;
    let mut names: Vec<&String> = infos.keys().collect();
    names.sort();
    for name in names {
        let info = &infos[name];
        let dims = info.layout.dims();
        let bytes_per = info.dtype.size_in_bytes();
        let needed = crate::tensor::checked_numel(dims)
            .and_then(|n| n.checked_add(info.layout.start_offset()))
            .filter(|&n| n <= info.storage_size)
            .ok_or_else(|| {
                pth_corrupt(
                    path,
                    format!(
                        "tensor `{name}` claims shape {dims:?} (offset {}) over a storage of {} elements",
                        info.layout.start_offset(),
                        info.storage_size
                    ),
                )
            })?;
        let held = entry_sizes.get(&info.path).copied().unwrap_or(0);
        let bytes = (needed as u64).saturating_mul(bytes_per as u64);
        crate::memory::check_fits(bytes, &format!("tensor `{name}`"))
            .map_err(|e| pth_corrupt(path, e))?;
        if (needed as u64).saturating_mul(bytes_per as u64) > held {
            return Err(pth_corrupt(
                path,
                format!(
                    "tensor `{name}` needs {} bytes of {:?} data, but its storage `{}` holds {held}",
                    needed.saturating_mul(bytes_per),
                    info.dtype,
                    info.path
                ),
            ));
        }
    }
    Ok(())
}

/// Uncompressed size of every entry of a zip file, as its central directory states them.
fn zip_entry_sizes(path: &Path) -> Result<BTreeMap<String, u64>, CheckpointError> {
    let file = std::fs::File::open(path).map_err(|error| CheckpointError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| pth_corrupt(path, e.to_string()))?;
    let mut sizes = BTreeMap::new();
    for i in 0..zip.len() {
        let entry = zip
            .by_index_raw(i)
            .map_err(|e| pth_corrupt(path, e.to_string()))?;
        let name = entry
            .name()
            .map_err(|e| pth_corrupt(path, e.to_string()))?
            .to_string();
        sizes.insert(name, entry.size());
    }
    Ok(sizes)
}

/// Loads a checkpoint as the weights of `variant` in `form`. The naming scheme is detected
/// unless given. Errors name the file and the tensor; a checkpoint of another variant or form
/// says which one it looks like.
pub fn load_weights(
    path: &Path,
    variant: Variant,
    form: Form,
    naming: Option<Naming>,
) -> Result<LoadedWeights, CheckpointError> {
    weights_from_raw(&read_checkpoint(path)?, variant, form, naming)
}

/// `load_weights` on tensors already read: naming detection, renaming and the check against
/// the model, with the same errors.
pub fn weights_from_raw(
    raw: &RawCheckpoint,
    variant: Variant,
    form: Form,
    naming: Option<Naming>,
) -> Result<LoadedWeights, CheckpointError> {
    let path = raw.path.as_path();
    let (naming, weights) = to_canonical(raw, naming)?;
    let source = path.display().to_string();
    let graph = build(variant, form, InputSize::IMAGENET).expect("valid by construction");
    let spell = |name: &str| match naming.from_canonical(name) {
        Some(n) if n != name => format!("`{n}` (canonical `{name}`)"),
        _ => format!("`{name}`"),
    };
    if let Err(err) = weights.validate_with(&graph, &source, &spell) {
        if let Some((v, f)) = identify(&weights).or_else(|| identify_by_names(&weights)) {
            if (v, f) != (variant, form) {
                return Err(CheckpointError::WrongModel {
                    path: path.to_path_buf(),
                    expected: format!("{variant} {form}"),
                    looks_like: format!("{v} {f}"),
                });
            }
        }
        return Err(err.into());
    }
    Ok(LoadedWeights {
        weights,
        naming,
        format: raw.format,
    })
}

/// Where a model's weights came from, for results and messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightsOrigin {
    /// `seed N` or the checkpoint path.
    pub source: String,
    pub naming: Option<Naming>,
    /// True when an unfused checkpoint was folded at load time for the reparameterized form.
    pub folded_at_load: bool,
}

/// Loads `path` as weights for `variant` in `form`. When the reparameterized form is asked for
/// and the file holds the unfused form of the same variant, it is folded at load time.
pub fn load_model_weights(
    path: &Path,
    variant: Variant,
    form: Form,
    naming: Option<Naming>,
) -> Result<(Weights<f32>, WeightsOrigin), CheckpointError> {
    let origin = |naming, folded_at_load| WeightsOrigin {
        source: path.display().to_string(),
        naming: Some(naming),
        folded_at_load,
    };
    match load_weights(path, variant, form, naming) {
        Ok(loaded) => Ok((loaded.weights, origin(loaded.naming, false))),
        Err(CheckpointError::WrongModel { .. }) if form == Form::Reparameterized => {
            let loaded =
                load_weights(path, variant, Form::Unfused, naming).map_err(|e| match e {
                    CheckpointError::WrongModel { .. } => e,
                    other => CheckpointError::Noted {
                        inner: Box::new(other),
                        note: format!(
                            "the file's tensor names are those of an unfused {variant} checkpoint; it was read as that form, to be folded"
                        ),
                    },
                })?;
            let folded =
                crate::reparameterize(variant, &loaded.weights, &path.display().to_string())?;
            Ok((folded, origin(loaded.naming, true)))
        }
        Err(e) => Err(e),
    }
}

/// Renames the tensors of a raw checkpoint to canonical names.
pub fn to_canonical(
    raw: &RawCheckpoint,
    naming: Option<Naming>,
) -> Result<(Naming, Weights<f32>), CheckpointError> {
    let path = raw.path.clone();
    let Some(first) = raw.tensors.keys().next() else {
        return Err(CheckpointError::Empty {
            path,
            hint: String::new(),
        });
    };
    let names = raw.tensors.keys().map(String::as_str);
    let (detected, _) = naming::detect(names.clone());
    let naming = naming.unwrap_or(detected);
    let recognized = names.filter(|k| naming.to_canonical(k).is_some()).count();
    if recognized == 0 {
        return Err(CheckpointError::UnknownNaming {
            path,
            first: first.clone(),
        });
    }
    let mut weights = Weights::new();
    for (name, tensor) in &raw.tensors {
        let Some(canonical) = naming.to_canonical(name) else {
            let hint = if detected != naming {
                format!("; the names look like the {detected} scheme")
            } else {
                String::new()
            };
            return Err(CheckpointError::UnexpectedKey {
                path,
                key: name.clone(),
                naming,
                recognized,
                total: raw.tensors.len(),
                hint,
            });
        };
        weights.insert(canonical, tensor.clone());
    }
    Ok((naming, weights))
}

/// Which MobileOne variant and form these canonical weights are exactly (names and shapes).
pub fn identify(weights: &Weights<f32>) -> Option<(Variant, Form)> {
    identify_where(weights, true)
}

/// Which MobileOne variant and form have exactly these canonical tensor names (shapes aside):
/// a file with one misshapen tensor is still recognized as what it is.
pub fn identify_by_names(weights: &Weights<f32>) -> Option<(Variant, Form)> {
    identify_where(weights, false)
}

fn identify_where(weights: &Weights<f32>, shapes_too: bool) -> Option<(Variant, Form)> {
    Variant::ALL
        .into_iter()
        .flat_map(|v| Form::ALL.into_iter().map(move |f| (v, f)))
        .find(|&(v, f)| {
            let graph = build(v, f, InputSize::IMAGENET).expect("valid by construction");
            let params = graph.params();
            params.len() == weights.len()
                && params.iter().all(|(name, spec)| {
                    weights
                        .get(name)
                        .is_some_and(|t| !shapes_too || t.shape() == spec.shape)
                })
        })
}

/// Writes weights as a float32 safetensors file, atomically (temp file, then rename).
pub fn save_safetensors(weights: &Weights<f32>, path: &Path) -> Result<(), CheckpointError> {
    let write_err = |reason: String| CheckpointError::Write {
        path: path.to_path_buf(),
        reason,
    };
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = weights
        .iter()
        .map(|(name, t)| {
            let raw = t.data().iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.clone(), raw, t.shape().to_vec())
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(name, raw, shape)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), raw).expect("sizes agree");
            (name.clone(), view)
        })
        .collect();
    let mut metadata = std::collections::HashMap::new();
    metadata.insert("format".to_string(), "pt".to_string());
    metadata.insert(
        "naming".to_string(),
        "apple (onebench canonical)".to_string(),
    );
    let serialized =
        safetensors::serialize(views, Some(metadata)).map_err(|e| write_err(e.to_string()))?;
    write_atomically(path, &serialized).map_err(|e| write_err(e.to_string()))
}

/// Writes a file through a temporary file in the same folder and a rename, so a reader never
/// sees half of it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "a file path has a name")
    })?;
    write_all_atomically(dir, &[(name, bytes)])
}

/// Writes several files into `dir` together: every one is written to a temporary file first,
/// and only when all of them are written and synced are they renamed into place. A failure
/// (a full disk) leaves every earlier file as it was and no temporary file behind.
pub fn write_all_atomically(
    dir: &Path,
    files: &[(&std::ffi::OsStr, &[u8])],
) -> std::io::Result<()> {
    use std::io::Write;
    let mut written = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(bytes)?;
        // Temporary files are private (0600); what we write is for reading and sharing.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))?;
        }
        tmp.as_file().sync_all()?;
        written.push((tmp, dir.join(name)));
    }
    for (tmp, path) in written {
        tmp.persist(path).map_err(|e| e.error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn atomic_writes_replace_the_file_and_are_readable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        super::write_atomically(&path, b"first").unwrap();
        super::write_atomically(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
    }
}
