//! Fuzz targets: one function per reader of untrusted bytes (scenario YAML, .npy,
//! safetensors, PyTorch zip, results.json, a saved int8 model). Each takes a fuzzer's raw bytes, turns them into
//! a raw, a hand-built or a mutated file, reads it, and must never panic, abort or hang: every
//! problem is a returned error. `tests/fuzz.rs` drives them for a bounded time under
//! `cargo test`; `fuzz/` runs the same functions under libFuzzer (`cargo fuzz`) for longer.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::Unstructured;
use models::checkpoint::fixtures::{
    torch_pickle, write_torch_zip_parts, FixtureTensor, StorageType,
};
use models::checkpoint::{parse_safetensors, weights_from_raw, RawCheckpoint};
use models::{Form, Tensor, Variant};
use reports::results::ResultsFile;

use crate::scenario::{Overrides, Scenario};

/// Values and tokens on the edges of what the readers check: overflowing, negative, huge,
/// tiny, not-a-number, wrongly typed.
const EDGE_TOKENS: [&str; 22] = [
    "0",
    "-1",
    "1e308",
    "-1e308",
    "1e-320",
    ".nan",
    "NaN",
    ".inf",
    "18446744073709551616",
    "18446744073709551615",
    "4294967296",
    "2305843009213693953",
    "100000",
    "\"1\"",
    "null",
    "[]",
    "{}",
    "[-1, 64]",
    "~",
    "'x'",
    "true",
    "\u{feff}",
];

/// Up to 8 mutations of `seed` chosen by `u`: byte flips, insertions, deletions, a
/// truncation, or an edge token spliced in over a few bytes. Positions fall in the first
/// `focus` bytes (a file's header) three times in four.
fn mutate(seed: &[u8], focus: usize, u: &mut Unstructured) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    let count = u.int_in_range(1..=8u8).unwrap_or(1);
    for _ in 0..count {
        let within = if u.ratio(3, 4).unwrap_or(true) {
            focus.min(bytes.len())
        } else {
            bytes.len()
        };
        let at = u.int_in_range(0..=within).unwrap_or(0);
        match u.int_in_range(0..=4u8).unwrap_or(0) {
            0 if at < bytes.len() => bytes[at] ^= u.arbitrary::<u8>().unwrap_or(1) | 1,
            1 => bytes.insert(at, u.arbitrary().unwrap_or(b'9')),
            2 if at < bytes.len() => {
                bytes.remove(at);
            }
            3 => bytes.truncate(at),
            _ => {
                let token = u.choose(&EDGE_TOKENS).unwrap_or(&"0");
                let cut = u.int_in_range(0..=6usize).unwrap_or(0);
                let end = (at + cut).min(bytes.len());
                bytes.splice(at..end, token.bytes());
            }
        }
    }
    bytes
}

/// A size for a hand-built header: small, or one on the edge of overflow.
fn edgy_size(u: &mut Unstructured) -> u64 {
    match u.int_in_range(0..=3u8).unwrap_or(0) {
        0 => u.int_in_range(0..=8u64).unwrap_or(1),
        1 => u.int_in_range(0..=300u64).unwrap_or(3),
        2 => *u
            .choose(&[1 << 31, 1 << 32, 1 << 61, (1 << 61) + 1, u64::MAX, 100_000])
            .unwrap_or(&1),
        _ => u.arbitrary().unwrap_or(0),
    }
}

/// `.npy` inputs: raw bytes, a hand-built header (any dtype, order and shape) over a small
/// payload, or a mutated valid file.
pub fn npy(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let bytes = match u.int_in_range(0..=2u8).unwrap_or(0) {
        0 => u.take_rest().to_vec(),
        1 => {
            let descr = u
                .choose(&["<f4", "<f8", "|u1", ">f4", "<f2", "O"])
                .unwrap_or(&"<f4");
            let fortran = if u.arbitrary().unwrap_or(false) {
                "True"
            } else {
                "False"
            };
            let rank = u.int_in_range(0..=5usize).unwrap_or(1);
            let dims: Vec<String> = (0..rank).map(|_| edgy_size(&mut u).to_string()).collect();
            let shape = if rank == 1 {
                format!("({},)", dims[0])
            } else {
                format!("({})", dims.join(", "))
            };
            let payload = u.int_in_range(0..=4096usize).unwrap_or(0);
            npy_file(
                &format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}"),
                payload,
            )
        }
        _ => {
            let valid = crate::npy::encode_f32(&Tensor::zeros(vec![1, 3, 4, 4])).expect("encodes");
            mutate(&valid, 128, &mut u)
        }
    };
    let _ = crate::npy::parse_f32(Path::new("fuzz.npy"), &bytes);
}

/// A .npy file with this header dictionary (any text) and `payload` zero bytes.
pub fn npy_file(header: &str, payload: usize) -> Vec<u8> {
    let mut header = header.to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.resize(bytes.len() + payload, 0);
    bytes
}

/// A few real MobileOne S0 tensors (names and shapes), small enough to read fast.
fn s0_tensors() -> &'static [FixtureTensor] {
    static TENSORS: OnceLock<Vec<FixtureTensor>> = OnceLock::new();
    TENSORS.get_or_init(|| {
        let weights =
            models::Model::MobileOne(Variant::S0).seeded_weights(Form::Reparameterized, 1);
        weights
            .iter()
            .filter(|(_, t)| t.numel() <= 4096)
            .take(8)
            .map(|(name, t)| FixtureTensor {
                name: name.clone(),
                shape: t.shape().to_vec(),
                values: t.data().to_vec(),
                storage: StorageType::Float32,
            })
            .collect()
    })
}

/// Reads tensors as a checkpoint of S0 would be read after the file format: names, shapes,
/// values against the model.
fn check_against_s0(path: &Path, format: &'static str, tensors: Vec<(String, Tensor)>) {
    let raw = RawCheckpoint {
        path: path.to_path_buf(),
        format,
        tensors: tensors.into_iter().collect(),
    };
    let _ = weights_from_raw(&raw, Variant::S0, Form::Reparameterized, None);
}

/// safetensors inputs: raw bytes, a hand-built header (any dtype, shape and offsets), or a
/// mutated valid file.
pub fn safetensors(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let bytes = match u.int_in_range(0..=2u8).unwrap_or(0) {
        0 => u.take_rest().to_vec(),
        1 => {
            let entries = u.int_in_range(0..=4usize).unwrap_or(1);
            let mut header = serde_json::Map::new();
            for i in 0..entries {
                let dtype = u
                    .choose(&["F32", "F16", "BF16", "F64", "I64", "U8", "BOOL", "X"])
                    .unwrap_or(&"F32");
                let rank = u.int_in_range(0..=4usize).unwrap_or(1);
                let shape: Vec<u64> = (0..rank).map(|_| edgy_size(&mut u)).collect();
                let offsets = [edgy_size(&mut u), edgy_size(&mut u)];
                header.insert(
                    format!("t{i}"),
                    serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": offsets}),
                );
            }
            let header = serde_json::Value::Object(header).to_string();
            let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
            bytes.extend_from_slice(header.as_bytes());
            bytes.resize(bytes.len() + u.int_in_range(0..=2048usize).unwrap_or(0), 0);
            bytes
        }
        _ => {
            let seed = valid_safetensors();
            mutate(seed, 8 + header_len(seed), &mut u)
        }
    };
    let path = Path::new("fuzz.safetensors");
    if let Ok(tensors) = parse_safetensors(path, &bytes) {
        check_against_s0(path, "safetensors", tensors);
    }
}

fn header_len(bytes: &[u8]) -> usize {
    bytes.get(..8).map_or(0, |b| {
        u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize
    })
}

fn valid_safetensors() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let mut weights = models::Weights::new();
        for t in s0_tensors() {
            weights.insert(
                t.name.clone(),
                Tensor::new(t.shape.clone(), t.values.clone()).expect("fits"),
            );
        }
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("seed.safetensors");
        models::save_safetensors(&weights, &path).expect("writes");
        std::fs::read(path).expect("reads")
    })
}

/// Saved int8 model inputs (`harness quantize --save`): raw bytes, or a mutated valid file of
/// S0 at 32x32; what reads is run by the quantized reference and the native int8 kernels.
pub fn quantized(data: &[u8]) {
    let (graph, seed) = valid_quantized();
    let mut u = Unstructured::new(data);
    let bytes = if u.ratio(1, 4).unwrap_or(false) {
        u.take_rest().to_vec()
    } else {
        // The header is long: mutations land in it or anywhere in the data.
        mutate(seed, seed.len(), &mut u)
    };
    let path = Path::new("fuzz.int8.safetensors");
    let Ok(model) = models::quantized::QuantizedModel::from_safetensors(graph, &bytes, path) else {
        return;
    };
    let input = models::seeded_uniform(graph.input_shape().to_vec(), 1, -3.0, 3.0);
    let _ = backends::quantized_reference::run(&model, &input);
    let native = backends::native::NativeBackend::default();
    let options = backends::PrepareOptions::with_threads(1).at(models::Precision::Int8);
    if let Ok(mut plan) = backends::Backend::prepare_quantized(&native, &model, &options) {
        let _ = plan.forward(&input);
    }
}

/// S0 reparameterized at 32x32 and its int8 model quantized on seeded inputs, saved.
fn valid_quantized() -> &'static (models::Graph, Vec<u8>) {
    static MODEL: OnceLock<(models::Graph, Vec<u8>)> = OnceLock::new();
    MODEL.get_or_init(|| {
        let model = models::Model::MobileOne(Variant::S0);
        let form = Form::Reparameterized;
        let graph = model
            .build(form, models::InputSize::square(1, 32))
            .expect("builds");
        let weights = model.seeded_weights(form, 1);
        let quantized =
            backends::quantized_reference::quantize_seeded(&graph, &weights).expect("quantizes");
        let bytes = quantized.to_safetensors(&[]).expect("writes");
        (graph, bytes)
    })
}

/// PyTorch zip inputs: raw bytes as the file, or a well-formed zip around a mutated pickle
/// and storages cut short (a zip checksum would refuse a mutated pickle inside a valid
/// zip before the pickle reader saw it).
pub fn pytorch(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let path = scratch_file("fuzz.pth");
    let written = if u.ratio(1, 4).unwrap_or(false) {
        std::fs::write(&path, u.take_rest())
    } else {
        let wrapper = *u
            .choose(&[None, Some("state_dict"), Some("model")])
            .unwrap_or(&None);
        let pickle = torch_pickle(s0_tensors(), wrapper);
        let pickle = mutate(&pickle, pickle.len(), &mut u);
        let storages: Vec<Vec<u8>> = s0_tensors()
            .iter()
            .map(|t| {
                let mut bytes = t.storage_bytes();
                if u.ratio(1, 8).unwrap_or(false) {
                    bytes.truncate(u.int_in_range(0..=bytes.len()).unwrap_or(0));
                }
                bytes
            })
            .collect();
        write_torch_zip_parts(&path, &pickle, &storages)
    };
    if written.is_ok() {
        if let Ok(raw) = models::checkpoint::read_checkpoint(&path) {
            let _ = weights_from_raw(&raw, Variant::S0, Form::Reparameterized, None);
        }
    }
}

/// A file in a temporary folder of this thread's own (the PyTorch reader takes a path).
fn scratch_file(name: &str) -> PathBuf {
    thread_local! {
        static DIR: tempfile::TempDir = tempfile::tempdir().expect("a temporary folder");
    }
    DIR.with(|d| d.path().join(name))
}

/// Scenario inputs: raw bytes, or a mutated shipped scenario (quick.yaml).
pub fn scenario(data: &[u8]) {
    const SEED: &str = include_str!("../../scenarios/quick.yaml");
    let mut u = Unstructured::new(data);
    let bytes = if u.ratio(1, 4).unwrap_or(false) {
        u.take_rest().to_vec()
    } else {
        mutate(SEED.as_bytes(), SEED.len(), &mut u)
    };
    let _ = Scenario::parse(Path::new("fuzz.yaml"), &bytes, &Overrides::default());
}

/// results.json inputs: raw bytes, or a mutated valid results file; what parses is rendered
/// (table, CSV, Markdown, HTML with plots) and gated against itself.
pub fn results(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let bytes = if u.ratio(1, 4).unwrap_or(false) {
        u.take_rest().to_vec()
    } else {
        let seed = valid_results();
        mutate(seed.as_bytes(), seed.len(), &mut u)
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return;
    };
    let Ok(results) = ResultsFile::parse("fuzz.json", text) else {
        return;
    };
    let _ = reports::summary::terminal_table(&results);
    let _ = reports::summary::csv(&results);
    let _ = reports::summary::markdown(&results);
    let _ = reports::html::html(&results);
    if let Ok(cells) = crate::compare::cells_by_key(&results.cells) {
        let problems = crate::compare::run_problems("candidate", results.interrupted, &cells);
        let report =
            crate::compare::compare(&cells, &cells, &crate::compare::GateSettings::default());
        let _ = crate::compare::Decision::of(&report, problems).exit_code();
    }
}

/// A small but complete results file: two measured cells with samples and layers, one failed.
fn valid_results() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        use reports::results::{CellKey, CellResult, CellStatus, LayerRecord};
        let cell = |model: &str, form: &str, ms: f64| {
            let key = CellKey {
                model: model.into(),
                form: form.into(),
                backend: "native".into(),
                precision: "fp32".into(),
                threads: 1,
                batch: 1,
                height: 64,
                width: 64,
            };
            let mut c = CellResult::unmeasured(key, Default::default());
            c.status = CellStatus::Ok;
            c.reason = None;
            c.samples_ms = (0..8).map(|i| ms * (1.0 + 0.01 * i as f64)).collect();
            c.latency = Some(crate::stats::summarize(&c.samples_ms, 0));
            c.cost.flops = 1_000_000;
            c.cost.params = 1000;
            c.achieved_gflops = 1.0;
            c.foreign_load = Some(0.01);
            c.layers = vec![LayerRecord {
                name: "stem".into(),
                kind: "conv".into(),
                kernel: "direct".into(),
                ms: ms / 2.0,
            }];
            c
        };
        let mut failed = cell("mobileone-s1", "unfused", 1.0);
        failed.status = CellStatus::Failed;
        failed.reason = Some("output differs".into());
        let cells = vec![
            cell("mobileone-s0", "unfused", 4.0),
            cell("mobileone-s0", "reparameterized", 2.0),
            failed,
        ];
        let results = ResultsFile {
            schema_version: reports::results::SCHEMA_VERSION,
            tool: "fuzz".into(),
            scenario: reports::results::ScenarioInfo {
                name: "fuzz".into(),
                path: "fuzz.yaml".into(),
                sha256: String::new(),
                quick: true,
                order: "interleaved".into(),
            },
            started_at: "2026-11-29T00:00:00Z".into(),
            duration_s: 1.0,
            interrupted: false,
            environment: crate::environment::capture(None),
            speedups: crate::runner::speedups(&cells),
            cells,
            device_profile: None,
            reference_measurements: None,
            warnings: Vec::new(),
        };
        results.to_json()
    })
}
