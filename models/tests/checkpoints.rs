//! Checkpoint loading across the three published naming schemes, both forms, all variants,
//! with fixture files these tests write themselves (names and shapes from the published
//! key lists in tests/data/checkpoint-keys), and every error a user can meet.

use models::testing::assert_contains;
use std::path::{Path, PathBuf};

use models::checkpoint::fixtures::{write_torch_zip, FixtureTensor, StorageType};
use models::checkpoint::{identify, read_checkpoint, save_safetensors, CheckpointError, Naming};
use models::{load_weights, random_weights, Form, InputSize, Model, Variant, WeightsError};
use safetensors::tensor::{Dtype, TensorView};

/// (name, shape) lines of one published key list.
fn key_list(file: &str) -> Vec<(String, Vec<usize>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/checkpoint-keys")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .map(|line| {
            let (name, shape) = line.split_once('\t').unwrap();
            let dims = shape.trim_matches(['[', ']']);
            let shape = dims
                .split(',')
                .filter(|d| !d.trim().is_empty())
                .map(|d| d.trim().parse().unwrap())
                .collect();
            (name.to_string(), shape)
        })
        .collect()
}

/// Deterministic, distinct values for a tensor (exact in f32).
fn values(seed: usize, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((seed * 7919 + i * 31) % 1000) as f32 / 1000.0 + 0.25)
        .collect()
}

fn fixture_tensors(keys: &[(String, Vec<usize>)], prefix: &str) -> Vec<FixtureTensor> {
    keys.iter()
        .enumerate()
        .map(|(i, (name, shape))| FixtureTensor {
            name: format!("{prefix}{name}"),
            values: values(i, shape.iter().product()),
            shape: shape.clone(),
            storage: if name.ends_with("num_batches_tracked") {
                StorageType::Int64
            } else {
                StorageType::Float32
            },
        })
        .collect()
}

fn write_safetensors(path: &Path, tensors: &[FixtureTensor]) {
    let encoded: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|t| match t.storage {
            StorageType::Int64 => {
                let bytes = t
                    .values
                    .iter()
                    .flat_map(|v| (*v as i64).to_le_bytes())
                    .collect();
                (t.name.clone(), Dtype::I64, t.shape.clone(), bytes)
            }
            StorageType::Float16 => {
                let bytes = t
                    .values
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect();
                (t.name.clone(), Dtype::F16, t.shape.clone(), bytes)
            }
            _ => {
                let bytes = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
                (t.name.clone(), Dtype::F32, t.shape.clone(), bytes)
            }
        })
        .collect();
    let views: Vec<_> = encoded
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn parse_file_name(file: &str) -> (Naming, Variant, Form) {
    let stem = file.strip_suffix(".txt").unwrap();
    let parts: Vec<_> = stem.split('_').collect();
    let naming = parts[0].parse().unwrap();
    let variant = parts[1].parse().unwrap();
    let form = parts[2].parse().unwrap();
    (naming, variant, form)
}

#[test]
fn every_published_layout_loads_with_its_naming_detected() {
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<_> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/checkpoint-keys"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
    files.sort();
    assert_eq!(files.len(), 30);
    for file in files {
        let (naming, variant, form) = parse_file_name(&file);
        let keys = key_list(&file);
        // Each publisher's own format: Apple .pth.tar (from a DataParallel model), mmpretrain
        // .pth with a state_dict wrapper, timm safetensors.
        let path = dir.path().join(file.replace(".txt", ".ckpt"));
        let tensors = match naming {
            Naming::Apple => {
                let t = fixture_tensors(&keys, "module.");
                write_torch_zip(&path, &t, None).unwrap();
                t
            }
            Naming::Mmpretrain => {
                let t = fixture_tensors(&keys, "");
                write_torch_zip(&path, &t, Some("state_dict")).unwrap();
                t
            }
            Naming::Timm => {
                let t = fixture_tensors(&keys, "");
                write_safetensors(&path, &t);
                t
            }
        };
        let loaded =
            load_weights(&path, variant, form, None).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(loaded.naming, naming, "{file}");
        let graph = Model::MobileOne(variant)
            .build(form, InputSize::IMAGENET)
            .unwrap();
        assert_eq!(loaded.weights.len(), graph.params().len(), "{file}");
        // Every value lands under its canonical name.
        for t in tensors.iter().filter(|t| t.storage != StorageType::Int64) {
            let raw = t.name.strip_prefix("module.").unwrap_or(&t.name);
            let canonical = naming.to_canonical(raw).unwrap();
            let got = loaded.weights.get(&canonical).unwrap();
            assert_eq!(got.data(), t.values.as_slice(), "{file}: {raw}");
            assert_eq!(got.shape(), t.shape.as_slice(), "{file}: {raw}");
        }
        assert_eq!(identify(&loaded.weights), Some((variant, form)), "{file}");
    }
}

#[test]
fn half_precision_tensors_are_converted_to_f32() {
    let dir = tempfile::tempdir().unwrap();
    let keys = key_list("apple_s1_fused.txt");
    let mut tensors = fixture_tensors(&keys, "");
    for (i, t) in tensors.iter_mut().enumerate() {
        t.storage = if i % 2 == 0 {
            StorageType::Float16
        } else {
            StorageType::BFloat16
        };
    }
    let path = dir.path().join("half.pth");
    write_torch_zip(&path, &tensors, Some("model")).unwrap();
    let loaded = load_weights(&path, Variant::S1, Form::Reparameterized, None).unwrap();
    for t in &tensors {
        let got = loaded.weights.get(&t.name).unwrap().data();
        let expected: Vec<f32> = match t.storage {
            StorageType::Float16 => t
                .values
                .iter()
                .map(|v| half::f16::from_f32(*v).to_f32())
                .collect(),
            _ => t
                .values
                .iter()
                .map(|v| half::bf16::from_f32(*v).to_f32())
                .collect(),
        };
        assert_eq!(got, expected.as_slice(), "{}", t.name);
    }
    // And in safetensors.
    let mut tensors = fixture_tensors(&keys, "");
    tensors[0].storage = StorageType::Float16;
    let path = dir.path().join("half.safetensors");
    write_safetensors(&path, &tensors);
    let loaded = load_weights(&path, Variant::S1, Form::Reparameterized, None).unwrap();
    let expected: Vec<f32> = tensors[0]
        .values
        .iter()
        .map(|v| half::f16::from_f32(*v).to_f32())
        .collect();
    assert_eq!(
        loaded.weights.get(&tensors[0].name).unwrap().data(),
        expected.as_slice()
    );
}

#[test]
fn save_then_load_round_trips_exactly() {
    let dir = tempfile::tempdir().unwrap();
    for form in Form::ALL {
        let graph = Model::MobileOne(Variant::S0)
            .build(form, InputSize::IMAGENET)
            .unwrap();
        let weights = random_weights(&graph, 42);
        let path = dir.path().join(format!("s0-{form}.safetensors"));
        save_safetensors(&weights, &path).unwrap();
        let loaded = load_weights(&path, Variant::S0, form, None).unwrap();
        assert_eq!(loaded.weights, weights);
        assert_eq!(loaded.naming, Naming::Apple);
    }
    // Nothing but the file itself is left behind (the temp file was renamed).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

/// The fixture tensor called `name`.
fn named<'a>(tensors: &'a mut [FixtureTensor], name: &str) -> &'a mut FixtureTensor {
    tensors.iter_mut().find(|t| t.name == name).unwrap()
}

fn s0_fused_fixture(dir: &Path, edit: impl FnOnce(&mut Vec<FixtureTensor>)) -> PathBuf {
    let mut tensors = fixture_tensors(&key_list("timm_s0_fused.txt"), "");
    edit(&mut tensors);
    let path = dir.join("edited.safetensors");
    write_safetensors(&path, &tensors);
    path
}

fn load_err(path: &Path, variant: Variant, form: Form) -> String {
    load_weights(path, variant, form, None)
        .unwrap_err()
        .to_string()
}

#[test]
fn missing_unexpected_and_misshapen_tensors_are_named_in_the_files_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let path = s0_fused_fixture(dir.path(), |t| {
        t.retain(|t| t.name != "stages.2.4.reparam_conv.bias");
    });
    let err = load_err(&path, Variant::S0, Form::Reparameterized);
    assert_contains(&err, &["edited.safetensors"]);
    assert_contains(
        &err,
        &["missing tensor `stages.2.4.reparam_conv.bias` (canonical `stage3.4.reparam_conv.bias`"],
    );

    let path = s0_fused_fixture(dir.path(), |t| {
        let last = t.last().unwrap().clone();
        t.push(FixtureTensor {
            name: "head.fc.running_mean".into(),
            ..last
        });
    });
    let err = load_err(&path, Variant::S0, Form::Reparameterized);
    assert_contains(&err, &["unexpected key `head.fc.running_mean`"]);

    let path = s0_fused_fixture(dir.path(), |t| {
        let w = named(t, "stem.reparam_conv.weight");
        w.shape = vec![48, 3, 1, 9];
    });
    let err = load_err(&path, Variant::S0, Form::Reparameterized);
    assert_contains(&err, &["`stem.reparam_conv.weight` (canonical `stage0.reparam_conv.weight`) has shape [48, 3, 1, 9], expected [48, 3, 3, 3]"]);
}

#[test]
fn non_finite_weights_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = s0_fused_fixture(dir.path(), |t| {
        let w = named(t, "head.fc.bias");
        w.values[5] = f32::INFINITY;
        w.values[9] = f32::NAN;
    });
    let err = load_weights(&path, Variant::S0, Form::Reparameterized, None).unwrap_err();
    assert!(
        matches!(
            &err,
            CheckpointError::Weights(WeightsError::NonFinite {
                count: 2,
                first: 5,
                ..
            })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("`head.fc.bias`"), "{err}");
}

#[test]
fn a_checkpoint_of_another_variant_or_form_says_what_it_looks_like() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s1.pth");
    write_torch_zip(
        &path,
        &fixture_tensors(&key_list("apple_s1_unfused.txt"), ""),
        None,
    )
    .unwrap();
    let err = load_err(&path, Variant::S0, Form::Unfused);
    assert_contains(
        &err,
        &["expected a mobileone-s0 unfused checkpoint, but this looks like mobileone-s1 unfused"],
    );
    let err = load_err(&path, Variant::S1, Form::Reparameterized);
    assert_contains(&err, &["looks like mobileone-s1 unfused"]);
}

#[test]
fn unsupported_dtypes_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = s0_fused_fixture(dir.path(), |t| {
        named(t, "head.fc.weight").storage = StorageType::Int64;
    });
    let err = load_err(&path, Variant::S0, Form::Reparameterized);
    assert_contains(&err, &["tensor `head.fc.weight` has dtype I64"]);

    let mut tensors = fixture_tensors(&key_list("apple_s0_fused.txt"), "");
    tensors[3].storage = StorageType::Int64;
    let path = dir.path().join("int.pth");
    write_torch_zip(&path, &tensors, None).unwrap();
    let err = load_err(&path, Variant::S0, Form::Reparameterized);
    assert_contains(
        &err,
        &[&format!("tensor `{}` has dtype I64", tensors[3].name)],
    );
}

#[test]
fn truncated_corrupt_legacy_and_foreign_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = s0_fused_fixture(dir.path(), |_| {});
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_err(&cut, Variant::S0, Form::Reparameterized);
    assert_contains(
        &err,
        &["cut.safetensors: corrupt or truncated safetensors file"],
    );

    let pth = dir.path().join("good.pth");
    write_torch_zip(
        &pth,
        &fixture_tensors(&key_list("apple_s0_fused.txt"), ""),
        None,
    )
    .unwrap();
    let bytes = std::fs::read(&pth).unwrap();
    let cut = dir.path().join("cut.pth");
    std::fs::write(&cut, &bytes[..bytes.len() - 200]).unwrap();
    let err = load_err(&cut, Variant::S0, Form::Reparameterized);
    assert_contains(&err, &["cut.pth: corrupt or truncated PyTorch file"]);

    let legacy = dir.path().join("legacy.pth");
    std::fs::write(
        &legacy,
        [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20],
    )
    .unwrap();
    let err = load_err(&legacy, Variant::S0, Form::Reparameterized);
    assert_contains(&err, &["legacy (pre-1.6, non-zip) PyTorch file"]);

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello world, not a checkpoint").unwrap();
    let err = load_err(&text, Variant::S0, Form::Reparameterized);
    assert_contains(
        &err,
        &["notes.txt: not a safetensors file nor a zip-based PyTorch checkpoint"],
    );

    let empty = dir.path().join("empty.pth");
    std::fs::write(&empty, []).unwrap();
    assert!(load_err(&empty, Variant::S0, Form::Reparameterized).contains("the file is empty"));

    let missing = dir.path().join("absent.pth");
    let err = load_err(&missing, Variant::S0, Form::Reparameterized);
    assert_contains(&err, &["absent.pth: cannot read"]);
}

#[test]
fn an_explicit_naming_that_does_not_fit_says_what_the_names_look_like() {
    let dir = tempfile::tempdir().unwrap();
    let path = s0_fused_fixture(dir.path(), |_| {});
    let err = load_weights(
        &path,
        Variant::S0,
        Form::Reparameterized,
        Some(Naming::Mmpretrain),
    )
    .unwrap_err()
    .to_string();
    assert_contains(
        &err,
        &["in the mmpretrain scheme", "look like the timm scheme"],
    );
    let loaded = load_weights(
        &path,
        Variant::S0,
        Form::Reparameterized,
        Some(Naming::Timm),
    )
    .unwrap();
    assert_eq!(loaded.naming, Naming::Timm);
}

#[test]
fn raw_reading_drops_batch_counters_and_the_module_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("apple.pth.tar");
    write_torch_zip(
        &path,
        &fixture_tensors(&key_list("apple_s0_unfused.txt"), "module."),
        Some("state_dict"),
    )
    .unwrap();
    let raw = read_checkpoint(&path).unwrap();
    assert_eq!(raw.format, "PyTorch");
    assert!(raw
        .tensors
        .keys()
        .all(|k| !k.starts_with("module.") && !k.ends_with("num_batches_tracked")));
    assert_eq!(raw.tensors.len(), 1323 - 226);
}

#[test]
fn an_unfused_checkpoint_is_folded_when_the_reparameterized_form_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let unfused = Model::MobileOne(Variant::S2).seeded_weights(Form::Unfused, 9);
    let path = dir.path().join("s2-unfused.safetensors");
    save_safetensors(&unfused, &path).unwrap();
    let (weights, origin) =
        models::load_model_weights(&path, Variant::S2, Form::Reparameterized, None).unwrap();
    assert!(origin.folded_at_load);
    let expected = Model::MobileOne(Variant::S2).seeded_weights(Form::Reparameterized, 9);
    assert_eq!(weights, expected, "folding at load equals the seeded fold");
    // The other way round is refused: a fused checkpoint cannot be unfolded.
    let fused_path = dir.path().join("s2-fused.safetensors");
    save_safetensors(&expected, &fused_path).unwrap();
    let err =
        models::load_model_weights(&fused_path, Variant::S2, Form::Unfused, None).unwrap_err();
    assert!(
        err.to_string()
            .contains("looks like mobileone-s2 reparameterized"),
        "{err}"
    );
}

#[test]
fn a_pth_tensor_claiming_more_than_its_storage_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = fixture_tensors(&key_list("apple_s0_fused.txt"), "");
    // Four stored values under a [100000, 100000] shape: 40 GB claimed over 16 bytes.
    tensors[0].shape = vec![100_000, 100_000];
    tensors[0].values.truncate(4);
    let path = dir.path().join("huge.pth");
    write_torch_zip(&path, &tensors, None).unwrap();
    let err = load_err(&path, Variant::S0, Form::Reparameterized);
    assert!(
        err.contains("huge.pth: corrupt or truncated PyTorch file: tensor `")
            && err
                .contains("claims shape [100000, 100000] (offset 0) over a storage of 4 elements"),
        "{err}"
    );
    // 65536^4 = 2^64 elements: a wrapping product would be 0.
    tensors[0].shape = vec![65536; 4];
    write_torch_zip(&path, &tensors, None).unwrap();
    let err = load_err(&path, Variant::S0, Form::Reparameterized);
    assert_contains(&err, &["claims shape [65536, 65536, 65536, 65536]"]);
}

#[test]
fn a_safetensors_entry_whose_size_disagrees_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // `b`'s shape [2, 3] of F32 needs 24 bytes; its offsets give 16.
    let header = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2,3],"data_offsets":[8,24]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[0u8; 24]);
    let path = dir.path().join("bad.safetensors");
    std::fs::write(&path, &bytes).unwrap();
    let err = load_err(&path, Variant::S0, Form::Reparameterized);
    assert_contains(&err, &["bad.safetensors: corrupt or truncated safetensors file: tensor `b`: shape [2, 3] of F32 needs 24 bytes, but data_offsets [8, 24] give 16"]);
}

#[test]
fn an_unfused_file_with_one_wrong_shape_says_so_when_the_default_form_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = fixture_tensors(&key_list("apple_s0_unfused.txt"), "");
    let t = named(&mut tensors, "stage1.1.rbr_skip.weight");
    t.shape = vec![47];
    t.values.truncate(47);
    let path = dir.path().join("unfused.pth");
    write_torch_zip(&path, &tensors, None).unwrap();
    let err = models::load_model_weights(&path, Variant::S0, Form::Reparameterized, None)
        .unwrap_err()
        .to_string();
    assert_contains(
        &err,
        &[
            "tensor `stage1.1.rbr_skip.weight` has shape [47], expected [48]",
            "the file's tensor names are those of an unfused mobileone-s0 checkpoint",
        ],
    );
    assert!(!err.contains("missing tensor"), "{err}");
}

#[test]
fn a_negative_batch_norm_variance_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = fixture_tensors(&key_list("apple_s0_unfused.txt"), "");
    let var = named(&mut tensors, "stage1.1.rbr_skip.running_var");
    var.values[3] = -0.25;
    let path = dir.path().join("negvar.pth");
    write_torch_zip(&path, &tensors, None).unwrap();
    let err = load_err(&path, Variant::S0, Form::Unfused);
    assert_contains(&err, &["negvar.pth: batch-norm variance `stage1.1.rbr_skip.running_var` has 1 negative values (first -0.25 at flat index 3)"]);
}
