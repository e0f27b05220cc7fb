//! Test support: writes small PyTorch zip checkpoints the way `torch.save` lays them out
//! (`archive/data.pkl`, one storage file per tensor), so tests never need PyTorch or a
//! download. It writes only what a state dict needs; it is not a general pickler.

use std::io::Write;
use std::path::Path;

/// Storage element type of a fixture tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageType {
    Float32,
    Float16,
    BFloat16,
    Int64,
}

impl StorageType {
    fn class_name(self) -> &'static str {
        match self {
            StorageType::Float32 => "FloatStorage",
            StorageType::Float16 => "HalfStorage",
            StorageType::BFloat16 => "BFloat16Storage",
            StorageType::Int64 => "LongStorage",
        }
    }

    fn encode(self, values: &[f32]) -> Vec<u8> {
        match self {
            StorageType::Float32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            StorageType::Float16 => values
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
            StorageType::BFloat16 => values
                .iter()
                .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                .collect(),
            StorageType::Int64 => values
                .iter()
                .flat_map(|v| (*v as i64).to_le_bytes())
                .collect(),
        }
    }
}

/// One tensor of a fixture file.
#[derive(Debug, Clone)]
pub struct FixtureTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
    pub storage: StorageType,
}

impl FixtureTensor {
    /// The tensor's storage file as `torch.save` writes it.
    pub fn storage_bytes(&self) -> Vec<u8> {
        self.storage.encode(&self.values)
    }
}

/// Writes `tensors` as a `torch.save` zip file; with `wrapper = Some("state_dict")` the state
/// dict sits under that key beside an `epoch` entry, as training scripts save it.
pub fn write_torch_zip(
    path: &Path,
    tensors: &[FixtureTensor],
    wrapper: Option<&str>,
) -> std::io::Result<()> {
    let storages: Vec<Vec<u8>> = tensors.iter().map(FixtureTensor::storage_bytes).collect();
    write_torch_zip_parts(path, &torch_pickle(tensors, wrapper), &storages)
}

/// The `data.pkl` of a `torch.save` file holding `tensors` (storage i is `archive/data/i`).
pub fn torch_pickle(tensors: &[FixtureTensor], wrapper: Option<&str>) -> Vec<u8> {
    let mut pickle = vec![0x80, 0x02];
    if let Some(key) = wrapper {
        pickle.push(b'}');
        pickle.push(b'(');
        unicode(&mut pickle, "epoch");
        binint(&mut pickle, 300);
        unicode(&mut pickle, key);
    }
    global(&mut pickle, "collections", "OrderedDict");
    pickle.extend_from_slice(b")R(");
    for (i, t) in tensors.iter().enumerate() {
        unicode(&mut pickle, &t.name);
        tensor(&mut pickle, t, i);
    }
    pickle.push(b'u');
    if wrapper.is_some() {
        pickle.push(b'u');
    }
    pickle.push(b'.');
    pickle
}

/// Writes a `torch.save` zip from its parts: any pickle (a fuzzer's too) and storage files.
pub fn write_torch_zip_parts(
    path: &Path,
    pickle: &[u8],
    storages: &[Vec<u8>],
) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut zip = zip::ZipWriter::new(file);
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let to_io = |e: zip::result::ZipError| std::io::Error::other(e.to_string());
    zip.start_file("archive/data.pkl", options).map_err(to_io)?;
    zip.write_all(pickle)?;
    for (i, bytes) in storages.iter().enumerate() {
        zip.start_file(format!("archive/data/{i}"), options)
            .map_err(to_io)?;
        zip.write_all(bytes)?;
    }
    zip.start_file("archive/version", options).map_err(to_io)?;
    zip.write_all(b"3\n")?;
    zip.finish().map_err(to_io)?;
    Ok(())
}

fn unicode(out: &mut Vec<u8>, s: &str) {
    out.push(b'X');
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn binint(out: &mut Vec<u8>, v: i32) {
    out.push(b'J');
    out.extend_from_slice(&v.to_le_bytes());
}

fn global(out: &mut Vec<u8>, module: &str, name: &str) {
    out.push(b'c');
    out.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
}

/// `torch._utils._rebuild_tensor_v2(storage, 0, shape, stride, False, OrderedDict())`.
fn tensor(out: &mut Vec<u8>, t: &FixtureTensor, key: usize) {
    global(out, "torch._utils", "_rebuild_tensor_v2");
    out.push(b'(');
    // The persistent id: ('storage', torch.XStorage, key, 'cpu', numel).
    out.push(b'(');
    unicode(out, "storage");
    global(out, "torch", t.storage.class_name());
    unicode(out, &key.to_string());
    unicode(out, "cpu");
    binint(out, t.values.len() as i32);
    out.extend_from_slice(b"tQ");
    binint(out, 0);
    out.push(b'(');
    for d in &t.shape {
        binint(out, *d as i32);
    }
    out.push(b't');
    out.push(b'(');
    let mut stride = 1;
    let mut strides = vec![0; t.shape.len()];
    for (s, d) in strides.iter_mut().zip(&t.shape).rev() {
        *s = stride;
        stride *= d;
    }
    for s in strides {
        binint(out, s as i32);
    }
    out.push(b't');
    out.push(0x89);
    global(out, "collections", "OrderedDict");
    out.extend_from_slice(b")R");
    out.push(b't');
    out.push(b'R');
}
