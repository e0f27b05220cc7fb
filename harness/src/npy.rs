//! Reading float32 NCHW inputs from .npy files and writing logits to .npy, with errors that
//! name the file and what was found.

use std::path::Path;

use anyhow::{bail, Context, Result};
use models::Tensor;
use npyz::WriterBuilder;

/// Reads a float32 .npy file.
pub fn read_f32(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let file = npyz::NpyFile::new(&bytes[..])
        .with_context(|| format!("{}: not a valid .npy file", path.display()))?;
    let dtype = file.dtype();
    let is_f32 = matches!(&dtype, npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Float && t.size_field() == 4);
    if !is_f32 {
        bail!(
            "{}: dtype is {}, expected float32 ('<f4'); convert with x.astype(np.float32)",
            path.display(),
            dtype.descr()
        );
    }
    if file.order() == npyz::Order::Fortran {
        bail!(
            "{}: Fortran-ordered arrays are not supported; save a C-ordered array",
            path.display()
        );
    }
    let shape: Vec<usize> = file.shape().iter().map(|&d| d as usize).collect();
    let data: Vec<f32> = file
        .into_vec()
        .with_context(|| format!("{}: corrupt or truncated .npy data", path.display()))?;
    Tensor::new(shape, data)
        .with_context(|| format!("{}: data does not match its shape", path.display()))
}

/// Encodes a float32 tensor as .npy bytes.
pub fn encode_f32(tensor: &Tensor) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let shape: Vec<u64> = tensor.shape().iter().map(|&d| d as u64).collect();
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(&mut bytes)
        .begin_nd()?;
    writer.extend(tensor.data().iter().copied())?;
    writer.finish()?;
    Ok(bytes)
}
