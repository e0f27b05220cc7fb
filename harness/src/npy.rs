//! Reading float32 NCHW inputs from .npy files and writing logits to .npy, with errors that
//! name the file and what was found.

use std::path::Path;

use anyhow::{bail, Context, Result};
use models::Tensor;
use npyz::WriterBuilder;

/// Reads a float32 .npy file.
pub fn read_f32(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    parse_f32(path, &bytes)
}

/// Parses the bytes of a float32 .npy file; `path` only names it in errors.
pub fn parse_f32(path: &Path, bytes: &[u8]) -> Result<Tensor> {
    // npyz multiplies the shape out itself (overflowing on a hostile header): check first.
    if let Some(dims) = header_shape(bytes) {
        checked_shape(&dims, bytes.len())
            .map_err(|m| anyhow::anyhow!("{}: {m}", path.display()))?;
    }
    // A header our check cannot read is still multiplied out by npyz; where overflow checks
    // are on, that panics: caught here, it is a corrupt header like any other.
    let file = std::panic::catch_unwind(|| npyz::NpyFile::new(bytes))
        .map_err(|_| {
            anyhow::anyhow!(
                "{}: not a valid .npy file: its header's shape overflows",
                path.display()
            )
        })?
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
    let shape = checked_shape(file.shape(), bytes.len())
        .map_err(|m| anyhow::anyhow!("{}: {m}", path.display()))?;
    let data: Vec<f32> = file
        .into_vec()
        .with_context(|| format!("{}: corrupt or truncated .npy data", path.display()))?;
    let tensor = Tensor::new(shape, data)
        .with_context(|| format!("{}: data does not match its shape", path.display()))?;
    if let Some((first, count)) = tensor.non_finite() {
        bail!(
            "{}: {count} NaN or infinite values (first at flat index {first}); an input must be finite",
            path.display()
        );
    }
    Ok(tensor)
}

/// The `shape` tuple of a .npy header (versions 1 to 3), when it can be read as one; a header
/// it cannot read is left to npyz to refuse.
fn header_shape(bytes: &[u8]) -> Option<Vec<u64>> {
    let (len, start): (usize, usize) = match bytes.get(6)? {
        1 => (
            u16::from_le_bytes(bytes.get(8..10)?.try_into().ok()?).into(),
            10,
        ),
        _ => (
            u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?) as usize,
            12,
        ),
    };
    let header = std::str::from_utf8(bytes.get(start..start.checked_add(len)?)?).ok()?;
    let after = &header[header
        .find("'shape'")
        .or_else(|| header.find("\"shape\""))?..];
    let open = after.find('(')?;
    let close = open + after[open..].find(')')?;
    let tuple = &after[open + 1..close];
    tuple
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.trim_end_matches('L').parse().ok())
        .collect()
}

/// The header's shape, checked before anything is allocated: its element count must not
/// overflow, and its float32 data must fit in the file that claims it.
fn checked_shape(header: &[u64], file_len: usize) -> std::result::Result<Vec<usize>, String> {
    let shape: Vec<usize> = header
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("dimension {d} is too large")))
        .collect::<std::result::Result<_, _>>()?;
    // The non-zero dimensions too: a zero among them makes the count 0, but every stride
    // (a product of the dimensions after it) must still be addressable.
    let nonzero: Vec<usize> = shape.iter().copied().filter(|&d| d != 0).collect();
    let bytes = models::checked_numel(&nonzero)
        .and_then(|n| n.checked_mul(4))
        .and(models::checked_numel(&shape))
        .and_then(|n| n.checked_mul(4))
        .ok_or_else(|| {
            format!("shape {shape:?} has more elements than this machine can address")
        })?;
    if bytes > file_len {
        return Err(format!(
            "shape {shape:?} needs {bytes} bytes of float32 data, but the file holds {file_len} bytes in all (truncated, or a corrupt header)"
        ));
    }
    Ok(shape)
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

#[cfg(test)]
mod tests {
    use super::*;
    use models::testing::assert_contains;

    /// A float32 .npy file with a hand-written shape and `payload` data bytes.
    fn npy_with_header(shape: &str, payload: usize) -> Vec<u8> {
        crate::fuzz::npy_file(
            &format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}"),
            payload,
        )
    }

    fn read_bytes(bytes: &[u8]) -> Result<Tensor> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        std::fs::write(&path, bytes).unwrap();
        read_f32(&path)
    }

    #[test]
    fn a_shape_whose_product_overflows_is_refused_before_reading() {
        // (2^61 + 1) * 3 * 224 * 224 wraps to 3 * 224 * 224: a wrapping count would accept
        // this header over a real image's payload and read out of bounds.
        let bytes = npy_with_header("(2305843009213693953, 3, 224, 224)", 3 * 224 * 224 * 4);
        let e = format!("{:#}", read_bytes(&bytes).unwrap_err());
        assert_contains(&e, &["has more elements than this machine can address"]);
    }

    #[test]
    fn the_header_shape_is_read_before_npyz_multiplies_it_out() {
        let bytes = npy_with_header("(18446744073709551615, 3)", 8);
        assert_eq!(header_shape(&bytes), Some(vec![u64::MAX, 3]));
        let e = format!("{:#}", read_bytes(&bytes).unwrap_err());
        assert_contains(&e, &["more elements than this machine can address"]);
        assert_eq!(header_shape(&npy_with_header("(7,)", 28)), Some(vec![7]));
        // No elements, but strides of 2^63 * 4 bytes: refused too.
        let bytes = npy_with_header("(0, 9223372036854775808, 4)", 0);
        let e = format!("{:#}", read_bytes(&bytes).unwrap_err());
        assert_contains(&e, &["more elements than this machine can address"]);
        assert_eq!(header_shape(&npy_with_header("()", 4)), Some(vec![]));
        assert_eq!(header_shape(b"\x93NUMPY"), None);
        // A close before the open is no tuple (and no out-of-order slice).
        assert_eq!(header_shape(&npy_with_header(") (", 0)), None);
    }

    #[test]
    fn a_shape_larger_than_the_file_is_refused_before_allocating() {
        let bytes = npy_with_header("(1, 3, 4294967296, 4294967296)", 64);
        let e = format!("{:#}", read_bytes(&bytes).unwrap_err());
        assert_contains(&e, &["more elements than this machine can address"]);
        let bytes = npy_with_header("(1, 3, 1048576, 1048576)", 64);
        let e = format!("{:#}", read_bytes(&bytes).unwrap_err());
        assert_contains(
            &e,
            &["needs 13194139533312 bytes of float32 data, but the file holds"],
        );
    }

    #[test]
    fn nan_or_infinity_in_an_input_is_an_error() {
        let t = Tensor::new(vec![1, 4], vec![1.0, f32::NAN, f32::INFINITY, 0.0]).unwrap();
        let e = format!("{:#}", read_bytes(&encode_f32(&t).unwrap()).unwrap_err());
        assert_contains(&e, &["2 NaN or infinite values (first at flat index 1)"]);
        let ok = Tensor::new(vec![1, 2], vec![1.0, 2.0]).unwrap();
        assert_eq!(read_bytes(&encode_f32(&ok).unwrap()).unwrap(), ok);
    }
}
