//! `harness classify`: the preprocessing equals Pillow's (reference tensors made once by
//! scripts/preprocess_fixtures.py from synthetic images this test recomputes), and the command
//! classifies deterministically, sorts, reports bad images one line each and keeps going.

mod common;
use common::{assert_contains, harness};

use std::path::Path;

use harness::preprocess::{load_rgb, EvalTransform};
use image::{DynamicImage, GrayAlphaImage, GrayImage, RgbImage, RgbaImage};
use models::Variant;

/// The synthetic pattern of scripts/preprocess_fixtures.py, channel `c` of pixel (x, y).
fn pattern(x: u32, y: u32, c: u32) -> u8 {
    let (x, y, c) = (x as u64, y as u64, c as u64);
    ((x * (3 + c) + y * (5 + 2 * c) + ((x * x + 7 * y * c + 11) % 31) * 4) % 256) as u8
}

fn synthetic(width: u32, height: u32, mode: &str) -> DynamicImage {
    match mode {
        "RGB" => RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([0, 1, 2].map(|c| pattern(x, y, c)))
        })
        .into(),
        "RGBA" => RgbaImage::from_fn(width, height, |x, y| {
            image::Rgba([0, 1, 2, 3].map(|c| pattern(x, y, c)))
        })
        .into(),
        "L" => GrayImage::from_fn(width, height, |x, y| image::Luma([pattern(x, y, 0)])).into(),
        "LA" => GrayAlphaImage::from_fn(width, height, |x, y| {
            image::LumaA([pattern(x, y, 0), pattern(x, y, 1)])
        })
        .into(),
        other => panic!("unknown mode {other}"),
    }
}

const GRID_STEP: usize = 4;

/// Rows and columns 0, 4, ..., 220 and 223, as the fixtures keep them.
fn grid() -> Vec<usize> {
    (0..224).step_by(GRID_STEP).chain([223]).collect()
}

#[test]
fn preprocessing_matches_pillow_and_torchvision_within_1e_3() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess");
    let cases = [
        ("landscape_rgb_s0", 320, 240, "RGB", Variant::S0),
        ("portrait_rgba_s1", 199, 301, "RGBA", Variant::S1),
        ("gray_s2", 500, 375, "L", Variant::S2),
        ("small_gray_alpha_s0", 60, 40, "LA", Variant::S0),
    ];
    let grid = grid();
    for (name, width, height, mode, variant) in cases {
        // Through a PNG file, as the command reads images.
        let path = dir.path().join(format!("{name}.png"));
        synthetic(width, height, mode).save(&path).unwrap();
        let tensor = EvalTransform::for_variant(variant)
            .apply(&load_rgb(&path).unwrap())
            .unwrap();
        assert_eq!(tensor.len(), 3 * 224 * 224);
        let expected = harness::npy::read_f32(&fixtures.join(format!("{name}.npy"))).unwrap();
        assert_eq!(expected.shape(), &[3, grid.len(), grid.len()]);
        let mut worst = 0.0f32;
        for c in 0..3 {
            for (i, &y) in grid.iter().enumerate() {
                for (j, &x) in grid.iter().enumerate() {
                    let ours = tensor[c * 224 * 224 + y * 224 + x];
                    let theirs = expected.data()[(c * grid.len() + i) * grid.len() + j];
                    worst = worst.max((ours - theirs).abs());
                }
            }
        }
        eprintln!("{name}: max abs difference {worst}");
        assert!(worst < 1e-3, "{name}: max abs difference {worst}");
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_seeded_model_classifies_deterministically_and_sorted() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("a.png");
    let jpg = dir.path().join("b.jpg");
    let webp = dir.path().join("c.webp");
    synthetic(320, 240, "RGB").save(&png).unwrap();
    synthetic(240, 320, "RGB").save(&jpg).unwrap();
    synthetic(100, 90, "RGBA").save(&webp).unwrap();
    let args = [
        "classify",
        "--model",
        "s0",
        "--seed",
        "3",
        "--top",
        "4",
        "--json",
        png.to_str().unwrap(),
        jpg.to_str().unwrap(),
        webp.to_str().unwrap(),
    ];
    let first = harness(&args);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let second = harness(&args);
    assert_eq!(
        first.stdout, second.stdout,
        "same seed, same images, same output"
    );

    let report: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let images = report.as_array().unwrap();
    assert_eq!(images.len(), 3);
    let labels = harness::imagenet::classes();
    for image in images {
        let top = image["top"].as_array().unwrap();
        assert_eq!(top.len(), 4);
        let scores: Vec<f64> = top.iter().map(|p| p["score"].as_f64().unwrap()).collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
        assert!(scores.iter().all(|&s| s > 0.0 && s < 1.0));
        let label = image["pred_label"].as_u64().unwrap() as usize;
        assert_eq!(label, top[0]["label"].as_u64().unwrap() as usize);
        assert_eq!(image["pred_score"].as_f64().unwrap(), scores[0]);
        assert_eq!(image["pred_class"].as_str().unwrap(), labels[label].name);
    }
    // The batch gives each image its own result: the two different pictures differ.
    assert_ne!(images[0]["top"], images[1]["top"]);

    // The text form names each image and its classes.
    let plain = harness(
        &args[..args.len() - 4]
            .iter()
            .copied()
            .chain([png.to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    let stdout = text(&plain.stdout);
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    assert_contains(&stdout, &["a.png", " 1. "]);
}

#[test]
fn bad_images_get_one_line_each_and_the_others_are_still_classified() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.png");
    synthetic(64, 64, "L").save(&good).unwrap();
    let not_image = dir.path().join("notes.txt");
    std::fs::write(&not_image, "not an image").unwrap();
    let truncated = dir.path().join("truncated.png");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let missing = dir.path().join("missing.jpg");
    let o = harness(&[
        "classify",
        "--model",
        "s0",
        "--seed",
        "0",
        "--json",
        good.to_str().unwrap(),
        not_image.to_str().unwrap(),
        truncated.to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = text(&o.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 3, "{stderr}");
    assert!(errors[0].contains("notes.txt") && errors[0].contains("not an image"));
    assert_contains(errors[1], &["truncated.png"]);
    assert!(errors[2].contains("missing.jpg") && errors[2].contains("cannot open"));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(report[0]["pred_class"].is_string());
    for i in 1..4 {
        assert!(report[i]["error"].is_string(), "{}", report[i]);
    }
}

#[test]
fn without_weights_it_refuses_and_a_missing_checkpoint_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("a.png");
    synthetic(32, 32, "RGB").save(&png).unwrap();
    let o = harness(&["classify", "--model", "s0", png.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_contains(&text(&o.stderr), &["random weights classify nothing"]);
    let missing = dir.path().join("nope.pth.tar");
    let o = harness(&[
        "classify",
        "--model",
        "s0",
        "--weights",
        missing.to_str().unwrap(),
        png.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = text(&o.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_contains(&stderr, &["nope.pth.tar"]);
}

#[test]
fn a_checkpoint_in_each_naming_and_both_forms_gives_the_same_classes() {
    // An unfused checkpoint saved in each naming scheme; the reparameterized form is folded at
    // load. All six runs must agree on the classes and (nearly) on the scores.
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("a.png");
    synthetic(300, 200, "RGB").save(&png).unwrap();
    let weights = models::Model::MobileOne(Variant::S1).seeded_weights(models::Form::Unfused, 7);
    let mut runs = Vec::new();
    for naming in [
        models::Naming::Apple,
        models::Naming::Timm,
        models::Naming::Mmpretrain,
    ] {
        let path = dir.path().join(format!("{naming}.safetensors"));
        let mut renamed = models::Weights::new();
        for (name, tensor) in weights.iter() {
            renamed.insert(naming.from_canonical(name).unwrap(), tensor.clone());
        }
        models::save_safetensors(&renamed, &path).unwrap();
        for form in ["unfused", "reparameterized"] {
            let o = harness(&[
                "classify",
                "--model",
                "s1",
                "--form",
                form,
                "--weights",
                path.to_str().unwrap(),
                "--json",
                png.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{naming} {form}: {}", text(&o.stderr));
            let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            runs.push((format!("{naming} {form}"), report[0]["top"].clone()));
        }
    }
    let (first_name, first) = &runs[0];
    for (name, top) in &runs[1..] {
        for (a, b) in first
            .as_array()
            .unwrap()
            .iter()
            .zip(top.as_array().unwrap())
        {
            assert_eq!(a["label"], b["label"], "{first_name} vs {name}");
            let (sa, sb) = (a["score"].as_f64().unwrap(), b["score"].as_f64().unwrap());
            assert!((sa - sb).abs() < 1e-4, "{first_name} {sa} vs {name} {sb}");
        }
    }
}

#[test]
fn a_truncated_jpeg_is_an_error_for_that_image() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.jpg");
    synthetic(240, 320, "RGB").save(&whole).unwrap();
    let bytes = std::fs::read(&whole).unwrap();
    assert!(harness::preprocess::jpeg_is_complete(&bytes));
    for (name, keep) in [
        ("half.jpg", bytes.len() / 2),
        ("nearly.jpg", bytes.len() - 2),
    ] {
        let cut = dir.path().join(name);
        std::fs::write(&cut, &bytes[..keep]).unwrap();
        let o = harness(&[
            "classify",
            "--model",
            "s0",
            "--seed",
            "1",
            cut.to_str().unwrap(),
            whole.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1));
        let err = text(&o.stderr);
        assert_contains(&err, &[&format!("{name}: truncated JPEG")]);
        // The whole image is still classified.
        assert_contains(&text(&o.stdout), &["whole.jpg"]);
    }
}
