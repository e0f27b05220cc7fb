//! Image preprocessing for `harness classify`, as the published MobileOne checkpoints were
//! evaluated (timm's eval transform on a PIL image): decode, convert to RGB, resize the shorter
//! side to floor(224 / crop_pct) with Pillow's bilinear resampling, centre-crop 224x224, scale
//! to [0, 1] and normalize with the ImageNet mean and std, into an NCHW float tensor.

use std::path::Path;

use anyhow::{bail, Context, Result};
use image::RgbImage;
use models::Variant;

/// ImageNet-1k channel statistics (RGB), as every published MobileOne checkpoint expects.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The evaluation transform of one model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalTransform {
    /// Side of the square centre crop (the model's input size).
    pub crop: u32,
    /// Fraction of the resized image the crop keeps: 0.875 for S0, 0.9 for S1-S4 (timm's
    /// pretrained configs for the Apple checkpoints).
    pub crop_pct: f64,
}

impl EvalTransform {
    pub fn for_variant(variant: Variant) -> Self {
        let crop_pct = match variant {
            Variant::S0 => 0.875,
            _ => 0.9,
        };
        Self {
            crop: 224,
            crop_pct,
        }
    }

    /// The shorter side after resizing: floor(crop / crop_pct) (256 for S0, 248 for S1-S4).
    pub fn resize_short(&self) -> u32 {
        (self.crop as f64 / self.crop_pct).floor() as u32
    }

    /// The whole transform on a decoded RGB image: [3, crop, crop] values, channel-major.
    pub fn apply(&self, image: &RgbImage) -> Result<Vec<f32>> {
        let (w, h) = resized_size(image.width(), image.height(), self.resize_short())?;
        let resized = resize_bilinear(image, w, h);
        let cropped = center_crop(&resized, self.crop);
        Ok(normalize(&cropped))
    }
}

/// Decodes an image file (JPEG, PNG or WebP, recognized by content) and converts it to 8-bit
/// RGB: grayscale is replicated to three channels and an alpha channel is dropped, as PIL's
/// `convert("RGB")` does.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let reader = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .with_context(|| format!("{}: cannot read", path.display()))?;
    match reader.format() {
        None => bail!(
            "{}: not an image (expected JPEG, PNG or WebP)",
            path.display()
        ),
        Some(image::ImageFormat::Jpeg) if !jpeg_is_complete(&bytes) => bail!(
            "{}: truncated JPEG: its last scan has no end-of-image marker (the file was cut short)",
            path.display()
        ),
        Some(_) => {}
    }
    // The decoder's message already holds its cause: one line, not a chain that repeats it.
    let decoded = reader
        .decode()
        .map_err(|e| anyhow::anyhow!("{}: cannot decode the image: {e}", path.display()))?;
    Ok(decoded.to_rgb8())
}

/// A JPEG decoder fills a cut-short scan with grey and says nothing; a complete file has an
/// end-of-image marker (FF D9) after its last start-of-scan (FF DA). Entropy-coded data
/// cannot hold either marker (an FF there is followed by 00), so a file cut anywhere in or
/// before its last scan fails this check.
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let marker = |m: u8| move |w: &[u8]| w == [0xFF, m];
    let Some(last_scan) = bytes.windows(2).rposition(marker(0xDA)) else {
        return false;
    };
    bytes[last_scan..].windows(2).any(marker(0xD9))
}

/// The size after resizing the shorter side to `short`, keeping the aspect ratio the way
/// torchvision's `Resize(int)` does: the longer side is int(short * long / short_side).
pub fn resized_size(width: u32, height: u32, short: u32) -> Result<(u32, u32)> {
    if width == 0 || height == 0 {
        bail!("the image is empty ({width}x{height})");
    }
    let long_of = |long: u32, shorter: u32| (short as u64 * long as u64 / shorter as u64) as u32;
    let (w, h) = if width <= height {
        (short, long_of(height, width))
    } else {
        (long_of(width, height), short)
    };
    const MAX_SIDE: u32 = 1 << 15;
    if w > MAX_SIDE || h > MAX_SIDE {
        bail!(
            "the image's aspect ratio is too extreme ({width}x{height} would be resized to {w}x{h})"
        );
    }
    Ok((w, h))
}

/// Fixed-point bits of Pillow's 8-bit resampling coefficients (32 - 8 - 2).
const PRECISION_BITS: u32 = 22;

/// Pillow's filter taps for one axis: for each output index, the first input index and the
/// fixed-point weights of the inputs from there on.
struct AxisTaps {
    first: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

/// Pillow's `precompute_coeffs` for its bilinear (triangle) filter, support scaled by the
/// downscale factor (antialiasing), weights normalized then rounded to fixed point.
fn axis_taps(in_size: u32, out_size: u32) -> AxisTaps {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // bilinear support 1.0, scaled
    let ss = 1.0 / filterscale; // Pillow multiplies by the reciprocal: same rounding
    let mut first = Vec::with_capacity(out_size as usize);
    let mut weights = Vec::with_capacity(out_size as usize);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let raw: Vec<f64> = (xmin..xmax)
            .map(|x| {
                let t = ((x as f64 - center + 0.5) * ss).abs();
                if t < 1.0 {
                    1.0 - t
                } else {
                    0.0
                }
            })
            .collect();
        let total: f64 = raw.iter().sum();
        let fixed = raw
            .iter()
            .map(|&w| {
                let w = if total != 0.0 { w / total } else { w };
                let scaled = w * (1u32 << PRECISION_BITS) as f64;
                if scaled < 0.0 {
                    (scaled - 0.5) as i32
                } else {
                    (scaled + 0.5) as i32
                }
            })
            .collect();
        first.push(xmin);
        weights.push(fixed);
    }
    AxisTaps { first, weights }
}

/// Rounds a fixed-point accumulator to a byte, clamping like Pillow's `clip8`.
fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes to `width` x `height` with Pillow's `Image.resize(..., BILINEAR)` arithmetic: a
/// horizontal pass over the rows the vertical pass needs, rounded to bytes, then a vertical
/// pass, so the bytes equal Pillow's (which torchvision and timm use for evaluation).
pub fn resize_bilinear(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    if (width, height) == image.dimensions() {
        return image.clone();
    }
    let (in_w, in_h) = image.dimensions();
    let vertical = axis_taps(in_h, height);
    let row_first = vertical.first[0];
    let last = height as usize - 1;
    let row_end = vertical.first[last] + vertical.weights[last].len();
    let rows = row_end - row_first;
    // Horizontal pass (only when the width changes) over rows [row_first, row_end).
    let horizontal = (width != in_w).then(|| axis_taps(in_w, width));
    let temp_w = if horizontal.is_some() { width } else { in_w };
    let src = image.as_raw();
    let mut temp = vec![0u8; rows * temp_w as usize * 3];
    for y in 0..rows {
        let src_row = &src[(row_first + y) * in_w as usize * 3..][..in_w as usize * 3];
        let dst_row = &mut temp[y * temp_w as usize * 3..][..temp_w as usize * 3];
        match &horizontal {
            Some(taps) => {
                for (x, (start, ws)) in taps.first.iter().zip(&taps.weights).enumerate() {
                    for c in 0..3 {
                        let mut acc: i64 = 1 << (PRECISION_BITS - 1);
                        for (k, &w) in ws.iter().enumerate() {
                            acc += src_row[(start + k) * 3 + c] as i64 * w as i64;
                        }
                        dst_row[x * 3 + c] = clip8(acc);
                    }
                }
            }
            None => dst_row.copy_from_slice(src_row),
        }
    }
    if height == in_h {
        return RgbImage::from_raw(width, height, temp).expect("sized to the image");
    }
    let row_len = width as usize * 3;
    let mut out = vec![0u8; height as usize * row_len];
    for (y, (start, ws)) in vertical.first.iter().zip(&vertical.weights).enumerate() {
        let base = start - row_first;
        for i in 0..row_len {
            let mut acc: i64 = 1 << (PRECISION_BITS - 1);
            for (k, &w) in ws.iter().enumerate() {
                acc += temp[(base + k) * row_len + i] as i64 * w as i64;
            }
            out[y * row_len + i] = clip8(acc);
        }
    }
    RgbImage::from_raw(width, height, out).expect("sized to the image")
}

/// The centred `size` x `size` crop, with torchvision's offsets: round((side - size) / 2),
/// ties to even as Python's `round` does. The image must be at least `size` on both sides.
pub fn center_crop(image: &RgbImage, size: u32) -> RgbImage {
    let offset = |side: u32| ((side - size) as f64 / 2.0).round_ties_even() as u32;
    let (left, top) = (offset(image.width()), offset(image.height()));
    image::imageops::crop_imm(image, left, top, size, size).to_image()
}

/// [H, W, RGB] bytes -> [3, H, W] floats: (byte / 255 - mean) / std per channel.
pub fn normalize(image: &RgbImage) -> Vec<f32> {
    let plane = (image.width() * image.height()) as usize;
    let mut out = vec![0.0f32; 3 * plane];
    for (i, pixel) in image.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (pixel[c] as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_pct_gives_the_published_resize_sizes() {
        assert_eq!(EvalTransform::for_variant(Variant::S0).resize_short(), 256);
        for v in [Variant::S1, Variant::S2, Variant::S3, Variant::S4] {
            assert_eq!(EvalTransform::for_variant(v).resize_short(), 248);
        }
    }

    #[test]
    fn the_shorter_side_is_resized_and_the_longer_truncated() {
        assert_eq!(resized_size(500, 375, 256).unwrap(), (341, 256));
        assert_eq!(resized_size(375, 500, 256).unwrap(), (256, 341));
        assert_eq!(resized_size(100, 100, 248).unwrap(), (248, 248));
        assert!(resized_size(100_000, 1, 256).is_err());
    }

    #[test]
    fn taps_sum_to_one_and_identity_resizes_copy() {
        for (i, o) in [(500, 256), (100, 248), (7, 3), (3, 7)] {
            let taps = axis_taps(i, o);
            for ws in &taps.weights {
                let sum: i64 = ws.iter().map(|&w| w as i64).sum();
                assert!(
                    (sum - (1 << PRECISION_BITS)).abs() <= ws.len() as i64,
                    "{i}->{o}"
                );
            }
        }
        let img = RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8, y as u8, 7]));
        assert_eq!(resize_bilinear(&img, 5, 4), img);
    }

    #[test]
    fn a_constant_image_stays_constant_and_normalizes_to_known_values() {
        let img = RgbImage::from_pixel(37, 23, image::Rgb([255, 0, 128]));
        let resized = resize_bilinear(&img, 300, 224);
        assert!(resized.pixels().all(|p| p.0 == [255, 0, 128]));
        let t = EvalTransform::for_variant(Variant::S1).apply(&img).unwrap();
        assert_eq!(t.len(), 3 * 224 * 224);
        let plane = 224 * 224;
        assert!((t[0] - (1.0 - 0.485) / 0.229).abs() < 1e-6);
        assert!((t[plane] - (0.0 - 0.456) / 0.224).abs() < 1e-6);
        assert!((t[2 * plane + 5] - (128.0 / 255.0 - 0.406) / 0.225).abs() < 1e-6);
    }

    #[test]
    fn the_centre_crop_rounds_offsets_like_python() {
        // (261 - 224) / 2 = 18.5 -> 18 (ties to even); (262 - 224) / 2 = 19.
        let img = RgbImage::from_fn(261, 262, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let c = center_crop(&img, 224);
        assert_eq!(c.get_pixel(0, 0).0, [18, 19, 0]);
    }
}
