//! The harness binary as a user runs it: inspect, infer, reparameterize, list, and the clear
//! one-line errors for bad arguments and bad files.

mod common;
use common::{assert_contains, harness};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use npyz::WriterBuilder;

use models::checkpoint::fixtures::{write_torch_zip, FixtureTensor, StorageType};
use models::{load_weights, seeded_uniform, Form, InputSize, Model, Naming, Tensor, Variant};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_npy(path: &Path, shape: &[u64], data: &[f32]) {
    let mut bytes = Vec::new();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut bytes)
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn read_npy(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let file = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = file.shape().to_vec();
    (shape, file.into_vec().unwrap())
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn inspect_json_reports_the_published_counts() {
    let published = [
        (2_078_504, 274_136_576),
        (4_764_840, 823_839_744),
        (14_838_352u64, 2_979_222_528u64),
    ];
    for (model, (params, macs)) in ["s0", "s1", "s4"].into_iter().zip(published) {
        let out = harness(&["inspect", model, "--json", "--per-layer"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["params"], params);
        assert_eq!(v["macs_fvcore"], macs);
        for key in [
            "model",
            "form",
            "macs",
            "flops",
            "memory_traffic_bytes",
            "peak_activation_bytes",
            "ops",
        ] {
            assert!(!v[key].is_null(), "missing key {key}");
        }
        assert_eq!(
            v["layers"].as_array().unwrap().len() as u64,
            v["ops"].as_u64().unwrap()
        );
        assert_eq!(v["form"], "reparameterized");
    }
    let out = harness(&["inspect", "mobileone-s0", "--form", "unfused", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["params"], 5_293_272);
    assert!(v.get("layers").is_none());
}

#[test]
fn inspect_tables_and_input_sizes() {
    let out = harness(&[
        "inspect",
        "s2",
        "--per-layer",
        "--input-size",
        "256x192",
        "--batch",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_contains(&text, &["[2, 3, 256, 192]", "stage4.1.reparam_conv"]);
    let out = harness(&["inspect", "s2", "--input-size", "16"]);
    assert!(!out.status.success());
    assert_contains(&stderr(&out), &["too small"]);
}

/// Runs `infer` on a seeded 2x3x64x64 input; returns the logits.
fn infer(dir: &Path, extra: &[&str]) -> Vec<f32> {
    let input = dir.join("in.npy");
    let x = seeded_uniform(vec![2, 3, 64, 64], 1, -2.0, 2.0);
    write_npy(&input, &[2, 3, 64, 64], x.data());
    let output = dir.join("out.npy");
    let mut args = vec!["infer", "--input", p(&input), "--output", p(&output)];
    args.extend_from_slice(extra);
    let out = harness(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let (shape, logits) = read_npy(&output);
    assert_eq!(shape, [2, 1000]);
    logits
}

#[test]
fn infer_matches_the_reference_and_both_forms_agree() {
    let dir = tempfile::tempdir().unwrap();
    let unfused = infer(
        dir.path(),
        &["--model", "s1", "--form", "unfused", "--seed", "3"],
    );
    let fused = infer(
        dir.path(),
        &["--model", "mobileone-s1", "--form", "fused", "--seed", "3"],
    );
    assert!(models::relative_l2(&fused, &unfused) < 1e-4);
    // The same computation done in-process.
    let weights = Model::MobileOne(Variant::S1).seeded_weights(Form::Unfused, 3);
    let size = InputSize::square(2, 64);
    let graph = Model::MobileOne(Variant::S1)
        .build(Form::Unfused, size)
        .unwrap();
    let x = seeded_uniform(size.shape(), 1, -2.0, 2.0);
    let expected = backends::reference_output(&graph, &weights, &x).unwrap();
    assert_eq!(unfused, expected.data());
    // Different images give different logits.
    assert_ne!(unfused[..1000], unfused[1000..]);
}

#[test]
fn infer_refuses_bad_inputs_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out_path = d.join("out.npy");
    let run = |input: &Path, extra: &[&str]| {
        let mut args = vec![
            "infer",
            "--model",
            "s0",
            "--input",
            p(input),
            "--output",
            p(&out_path),
        ];
        args.extend_from_slice(extra);
        harness(&args)
    };

    // float64 input.
    let f64_path = d.join("f64.npy");
    let mut bytes = Vec::new();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[1, 3, 32, 32])
        .writer(&mut bytes)
        .begin_nd()
        .unwrap();
    w.extend(std::iter::repeat_n(0.5f64, 3 * 32 * 32)).unwrap();
    w.finish().unwrap();
    std::fs::write(&f64_path, bytes).unwrap();
    let out = run(&f64_path, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_contains(
        &stderr(&out),
        &["f64.npy: dtype is '<f8', expected float32"],
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));

    // Wrong shape.
    let gray = d.join("gray.npy");
    write_npy(&gray, &[1, 1, 64, 64], &[0.0; 64 * 64]);
    let err = stderr(&run(&gray, &[]));
    assert_contains(
        &err,
        &["gray.npy: shape is [1, 1, 64, 64], expected [N, 3, H, W]"],
    );

    // Not a .npy, and a missing file.
    let junk = d.join("junk.npy");
    std::fs::write(&junk, "not numpy").unwrap();
    assert!(stderr(&run(&junk, &[])).contains("junk.npy: not a valid .npy file"));
    assert!(stderr(&run(&d.join("absent.npy"), &[])).contains("absent.npy: cannot read"));

    let good = d.join("good.npy");
    write_npy(&good, &[1, 3, 32, 32], &[0.1; 3 * 32 * 32]);
    assert!(stderr(&run(&good, &["--backend", "tensorrt"])).contains("unknown backend `tensorrt`"));
    assert!(stderr(&run(&good, &["--form", "folded"])).contains("unknown form `folded`"));
    let both = run(&good, &["--seed", "1", "--weights", "w.pth"]);
    assert_eq!(
        both.status.code(),
        Some(2),
        "clap refuses --seed with --weights"
    );
    let err = stderr(&run(&good, &["--weights", p(&junk)]));
    assert_contains(
        &err,
        &["junk.npy: not a safetensors file nor a zip-based PyTorch checkpoint"],
    );
    assert!(!out_path.exists(), "no output is written on failure");

    // An unwritable output leaves nothing behind.
    let out = harness(&[
        "infer",
        "--model",
        "s0",
        "--input",
        p(&good),
        "--output",
        p(&d.join("no/such/dir/out.npy")),
    ]);
    assert_contains(&stderr(&out), &["cannot write"]);
}

/// An unfused checkpoint in mmpretrain's layout, from seeded weights.
fn mmpretrain_checkpoint(dir: &Path, variant: Variant, seed: u64) -> PathBuf {
    let weights = Model::MobileOne(variant).seeded_weights(Form::Unfused, seed);
    let tensors: Vec<FixtureTensor> = weights
        .iter()
        .map(|(name, t): (&String, &Tensor)| FixtureTensor {
            name: Naming::Mmpretrain.from_canonical(name).unwrap(),
            shape: t.shape().to_vec(),
            values: t.data().to_vec(),
            storage: StorageType::Float32,
        })
        .collect();
    let path = dir.join("mobileone-unfused.pth");
    write_torch_zip(&path, &tensors, Some("state_dict")).unwrap();
    path
}

#[test]
fn reparameterize_folds_a_foreign_checkpoint_and_the_result_runs() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = mmpretrain_checkpoint(dir.path(), Variant::S0, 21);
    let fused_path = dir.path().join("fused.safetensors");
    let out = harness(&[
        "reparameterize",
        "--model",
        "s0",
        "--weights",
        p(&ckpt),
        "--output",
        p(&fused_path),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_contains(&stderr(&out), &["fold checked: relative L2"]);
    assert_contains(&stderr(&out), &["mmpretrain naming"]);
    let loaded = load_weights(&fused_path, Variant::S0, Form::Reparameterized, None).unwrap();
    assert_eq!(loaded.naming, Naming::Apple);
    assert_eq!(
        loaded.weights,
        Model::MobileOne(Variant::S0).seeded_weights(Form::Reparameterized, 21)
    );

    // The folded file and the unfused original compute the same logits.
    let from_fused = infer(dir.path(), &["--model", "s0", "--weights", p(&fused_path)]);
    let from_unfused = infer(
        dir.path(),
        &["--model", "s0", "--form", "unfused", "--weights", p(&ckpt)],
    );
    assert!(models::relative_l2(&from_fused, &from_unfused) < 1e-4);

    // A fused checkpoint cannot be folded again.
    let again = harness(&[
        "reparameterize",
        "--model",
        "s0",
        "--weights",
        p(&fused_path),
        "--output",
        p(&dir.path().join("x.safetensors")),
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert_contains(
        &stderr(&again),
        &["looks like mobileone-s0 reparameterized"],
    );
    assert!(!dir.path().join("x.safetensors").exists());
}

#[test]
fn list_shows_backends_with_availability_and_precisions() {
    let out = harness(&["list"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_contains(&text, &["mobileone-s4", "reparameterized"]);
    let line = |name: &str| {
        let found = text.lines().find(|l| l.starts_with(&format!("  {name} ")));
        found
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .to_string()
    };
    assert!(line("reference").ends_with("available (fp32)"), "{text}");
    // fp16 only where the CPU has fp16 arithmetic.
    let native = match backends::native::Isa::best().has_fp16_arith() {
        true => "available (fp32, bf16, fp16, int8)",
        false => "available (fp32, bf16, int8)",
    };
    assert!(line("native").ends_with(native), "{text}");
    assert!(line("candle").ends_with("available (fp32, fp16)"), "{text}");
}

#[test]
fn every_command_explains_every_flag() {
    let cases: [(&str, &[&str]); 4] = [
        (
            "inspect",
            &["--form", "--input-size", "--batch", "--per-layer", "--json"],
        ),
        (
            "infer",
            &[
                "--model",
                "--form",
                "--weights",
                "--seed",
                "--naming",
                "--backend",
                "--threads",
                "--input",
                "--output",
            ],
        ),
        (
            "reparameterize",
            &[
                "--model",
                "--weights",
                "--output",
                "--naming",
                "--no-verify",
            ],
        ),
        ("run", &["<SCENARIO>"]),
    ];
    for (command, flags) in cases {
        let out = harness(&[command, "--help"]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        for flag in flags {
            let line = text
                .lines()
                .find(|l| l.contains(flag))
                .unwrap_or_else(|| panic!("{command}: {flag} missing"));
            let explained = line.trim().len() > flag.len() + 12
                || text.contains(&format!("{flag}\n          "));
            assert!(explained, "{command}: {flag} has no explanation:\n{text}");
        }
    }
}

#[test]
fn no_arguments_is_an_error_not_a_panic() {
    let out = harness(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("harness --help"));
}

#[test]
fn verify_checks_every_backend_and_prints_a_table() {
    let out = harness(&["verify", "--models", "s0", "--input-size", "32"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for backend in ["reference", "candle", "candle-dw-unrolled"] {
        let rows = text
            .lines()
            .filter(|l| l.contains(&format!(" {backend} ")) && l.contains("pass"))
            .count();
        assert_eq!(rows, 2, "{backend}: one passing row per form\n{text}");
    }
    let bad = harness(&["verify", "--backends", "tensorrt"]);
    assert_contains(&stderr(&bad), &["unknown backend `tensorrt`"]);
}

#[test]
fn corrupt_checkpoints_are_one_line_even_with_rust_backtrace_set() {
    let dir = tempfile::tempdir().unwrap();
    let good = mmpretrain_checkpoint(dir.path(), Variant::S0, 1);
    let bytes = std::fs::read(&good).unwrap();
    for (name, cut) in [("cut.pth", bytes.len() - 200), ("head.pth", 600)] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_harness"))
            .env("RUST_BACKTRACE", "1")
            .args(["reparameterize", "--model", "s0", "--weights", p(&path)])
            .args(["--output", p(&dir.path().join("out.safetensors"))])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        let err = stderr(&o);
        assert_contains(
            &err,
            &[&format!("{name}: corrupt or truncated PyTorch file")],
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            !err.contains("backtrace") && !err.contains("path: \""),
            "{err}"
        );
    }
    // An OS error is said once, not once in the message and again as its cause.
    let o = harness(&[
        "reparameterize",
        "--model",
        "s0",
        "--weights",
        "/no/such.pth",
        "--output",
        "x",
    ]);
    let err = stderr(&o);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

#[test]
fn each_bad_count_flag_is_named_on_its_own() {
    let o = harness(&[
        "classify", "--model", "s0", "--seed", "1", "--top", "0", "x.jpg",
    ]);
    assert_eq!(stderr(&o).trim(), "error: --top 0: show at least 1 class");
    let o = harness(&[
        "classify",
        "--model",
        "s0",
        "--seed",
        "1",
        "--threads",
        "100000",
        "x.jpg",
    ]);
    assert!(
        stderr(&o).starts_with("error: --threads: 100000 is more than this machine's"),
        "{}",
        stderr(&o)
    );
    let o = harness(&["profile", "--model", "s0", "--runs", "0"]);
    assert_eq!(stderr(&o).trim(), "error: --runs 0: time at least 1 run");
}

#[test]
fn export_writes_an_onnx_or_tflite_model_of_the_requested_size_or_the_graph_json() {
    use models::onnx::proto::{ModelProto, ValueInfoProto};
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s0");
    let args = [
        "export",
        "--model",
        "s0",
        "--form",
        "reparameterized",
        "--format",
        "onnx",
    ];
    let o = harness(
        &[
            &args[..],
            &["--batch", "2", "--input-size", "64", "--out", p(&out)],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_contains(&stderr(&o), &["wrote model.onnx"]);
    let model =
        ModelProto::decode(std::fs::read(out.join("model.onnx")).unwrap().as_slice()).unwrap();
    let graph = model.graph.unwrap();
    let dims = |v: &ValueInfoProto| -> Vec<i64> {
        let t = v.r#type.as_ref().unwrap().tensor_type.as_ref().unwrap();
        t.shape
            .as_ref()
            .unwrap()
            .dim
            .iter()
            .map(|d| d.dim_value)
            .collect()
    };
    assert_eq!(
        (graph.input[0].name.as_str(), dims(&graph.input[0])),
        ("input", vec![2, 3, 64, 64])
    );
    assert_eq!(dims(&graph.output[0]), [2, 1000]);
    assert!(
        !graph.node.iter().any(|n| n.op_type == "BatchNormalization"),
        "folded"
    );

    let json = dir.path().join("json");
    let o = harness(&[
        "export",
        "--model",
        "s0",
        "--form",
        "unfused",
        "--out",
        p(&json),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(json.join("graph.json").is_file() && json.join("weights.safetensors").is_file());
    let tflite = dir.path().join("tflite");
    let o = harness(&[
        "export",
        "--model",
        "s1",
        "--form",
        "unfused",
        "--format",
        "tflite",
        "--input-size",
        "64",
        "--out",
        p(&tflite),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_contains(&stderr(&o), &["wrote model.tflite"]);
    let bytes = std::fs::read(tflite.join("model.tflite")).unwrap();
    assert_eq!(&bytes[4..8], b"TFL3", "TFLite's file identifier");
    let model = models::Model::MobileOne(models::Variant::S1);
    let graph = model
        .build(models::Form::Unfused, models::InputSize::square(1, 64))
        .unwrap();
    let weights = model.seeded_weights(models::Form::Unfused, 0);
    let expected = models::tflite::export(
        &graph,
        &weights,
        "mobileone-s1 unfused, exported by onebench",
    );
    assert!(
        bytes == expected.unwrap(),
        "the file is the exporter's bytes"
    );
    // int8: the int8 cell's model as QDQ ONNX; int8 in another format is refused.
    let qdq = dir.path().join("qdq");
    let int8 = [
        "export",
        "--model",
        "s0",
        "--precision",
        "int8",
        "--input-size",
        "32",
    ];
    let o = harness(&[&int8[..], &["--format", "onnx", "--out", p(&qdq)]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_contains(&stderr(&o), &["wrote model.onnx (int8, QDQ"]);
    let model = ModelProto::decode(std::fs::read(qdq.join("model.onnx")).unwrap().as_slice());
    let nodes = model.unwrap().graph.unwrap().node;
    assert!(
        nodes
            .iter()
            .filter(|n| n.op_type == "QuantizeLinear")
            .count()
            > 20
    );
    let o = harness(&[&int8[..], &["--format", "tflite", "--out", p(&qdq)]].concat());
    assert!(!o.status.success());
    assert_contains(
        &stderr(&o),
        &["--precision int8", "QDQ ONNX (--format onnx)"],
    );
    let o = harness(&[
        "export",
        "--model",
        "s0",
        "--format",
        "coreml",
        "--out",
        p(&json),
    ]);
    assert_contains(
        &stderr(&o),
        &[
            "invalid value 'coreml' for '--format",
            "onnx",
            "tflite",
            "graph-json",
        ],
    );
}

#[test]
fn quantize_reports_the_int8_error_of_both_forms_and_refuses_bad_calibration() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("q.json");
    let o = harness(&[
        "quantize",
        "--model",
        "s0",
        "--input-size",
        "32",
        "--calibration-inputs",
        "2",
        "--held-out",
        "2",
        "--per-layer",
        "--json",
        p(&json),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_contains(
        &out,
        &[
            "int8 post-training quantization of mobileone-s0 at 32x32",
            "2 held out",
            "stage0.rbr_conv.0.conv",
        ],
    );
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let forms = doc["forms"].as_array().unwrap();
    assert_eq!(forms.len(), 2);
    for form in forms {
        for set in form["sets"].as_array().unwrap() {
            let errors = set["relative_l2"].as_array().unwrap();
            assert_eq!(errors.len(), 2);
            assert!(
                errors
                    .iter()
                    .all(|e| e.as_f64().unwrap() > 0.0 && e.as_f64().unwrap() < 0.5),
                "{set}"
            );
        }
    }
    // Unfused S0 has four branches per block, each its own quantized conv.
    assert!(
        forms[0]["layers"].as_array().unwrap().len()
            > 2 * forms[1]["layers"].as_array().unwrap().len()
    );
    let o = harness(&["quantize", "--model", "s0", "--calibration-inputs", "0"]);
    assert_contains(&stderr(&o), &["--calibration-inputs 0"]);
    let o = harness(&["quantize", "--model", "s0", "--calibration", p(dir.path())]);
    assert_contains(&stderr(&o), &["no .jpg, .jpeg, .png, .webp or .npy files"]);
    std::fs::write(
        dir.path().join("a.png"),
        b"not read: the size is refused first",
    )
    .unwrap();
    let o = harness(&[
        "quantize",
        "--model",
        "s0",
        "--input-size",
        "64",
        "--calibration",
        p(dir.path()),
    ]);
    assert_contains(&stderr(&o), &["use --input-size 224"]);
    let o = harness(&["quantize", "--model", "mixnet-s", "--input-size", "32"]);
    assert!(!o.status.success());
    assert_contains(&stderr(&o), &["no int8 form yet"]);
}

#[test]
fn a_saved_quantized_model_runs_and_exports_as_it_was_quantized() {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("s0.int8.safetensors");
    let quantize = [
        "quantize",
        "--model",
        "s0",
        "--input-size",
        "64",
        "--calibration-inputs",
        "2",
        "--held-out",
        "0",
        "--save",
        p(&saved),
    ];
    let o = harness(&quantize);
    assert_contains(&stderr(&o), &["--save", "one file holds one form"]);
    let o = harness(&[&quantize[..], &["--forms", "reparameterized"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    // A batch of 2 at the saved 64x64: the graph the file was quantized for.
    let graph = Model::MobileOne(Variant::S0)
        .build(Form::Reparameterized, InputSize::square(2, 64))
        .unwrap();
    let model = models::quantized::QuantizedModel::load(&graph, &saved).unwrap();
    let run = [
        "--model",
        "s0",
        "--backend",
        "native",
        "--precision",
        "int8",
    ];
    let logits = infer(
        dir.path(),
        &[&run[..], &["--quantized", p(&saved)]].concat(),
    );
    // Native is code for code with the quantized reference on the saved model.
    let x = seeded_uniform(vec![2, 3, 64, 64], 1, -2.0, 2.0);
    let expected = backends::quantized_reference::run(&model, &x).unwrap();
    assert_eq!(logits, expected.data());

    let out = dir.path().join("qdq");
    let export = [
        "export",
        "--model",
        "s0",
        "--input-size",
        "64",
        "--format",
        "onnx",
        "--out",
        p(&out),
    ];
    let o = harness(
        &[
            &export[..],
            &["--precision", "int8", "--quantized", p(&saved)],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_contains(
        &stderr(&o),
        &["quantized as saved", "wrote model.onnx (int8, QDQ)"],
    );
    let graph = graph.with_input_shape(vec![1, 3, 64, 64]).unwrap();
    let model = models::quantized::QuantizedModel::load(&graph, &saved).unwrap();
    let bytes = models::onnx::export_quantized(&model, env!("CARGO_PKG_VERSION")).unwrap();
    assert!(std::fs::read(out.join("model.onnx")).unwrap() == bytes);

    // Another form or size, or a float precision, is refused by name.
    let o = harness(
        &[
            &export[..],
            &["--precision", "fp32", "--quantized", p(&saved)],
        ]
        .concat(),
    );
    assert_contains(&stderr(&o), &["runs at --precision int8, not fp32"]);
    let (x, y) = (dir.path().join("in.npy"), dir.path().join("o.npy"));
    let unfused = [
        &["infer"][..],
        &run[..],
        &[
            "--form",
            "unfused",
            "--quantized",
            p(&saved),
            "--input",
            p(&x),
        ],
        &["--output", p(&y)],
    ];
    let o = harness(&unfused.concat());
    assert_contains(
        &stderr(&o),
        &["metadata `graph` is `mobileone-s0-reparameterized`"],
    );
}

#[test]
fn quantize_calibrates_on_npy_tensors_as_on_the_same_seeded_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let calibration = dir.path().join("calibration");
    std::fs::create_dir(&calibration).unwrap();
    // The two seeded inputs `--calibration-inputs 2` draws, as one file of two and ...
    let seeded: Vec<Tensor> = (0..2)
        .map(|i| seeded_uniform(vec![1, 3, 32, 32], i, -1.0, 1.0))
        .collect();
    let both: Vec<f32> = seeded.iter().flat_map(|t| t.data().to_vec()).collect();
    write_npy(&calibration.join("a.npy"), &[2, 3, 32, 32], &both);
    let save = |name: &str, extra: &[&str]| {
        let path = dir.path().join(name);
        let args = [
            &[
                "quantize",
                "--model",
                "s0",
                "--forms",
                "unfused",
                "--input-size",
                "32",
            ][..],
            &["--held-out", "0", "--save", p(&path)],
            extra,
        ];
        let o = harness(&args.concat());
        (o, path)
    };
    let (o, from_npy) = save("npy.safetensors", &["--calibration", p(&calibration)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_contains(
        &String::from_utf8_lossy(&o.stdout),
        &["2 inputs of 1 .npy files"],
    );
    let (o, from_seeds) = save("seeded.safetensors", &["--calibration-inputs", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let graph = Model::MobileOne(Variant::S0)
        .build(Form::Unfused, InputSize::square(1, 32))
        .unwrap();
    let load = |path: &Path| models::quantized::QuantizedModel::load(&graph, path).unwrap();
    assert!(load(&from_npy) == load(&from_seeds));

    // ... refused: another size, NaN.
    write_npy(&calibration.join("b.npy"), &[1, 3, 16, 16], &[0.5; 768]);
    let (o, _) = save("bad.safetensors", &["--calibration", p(&calibration)]);
    assert_contains(
        &stderr(&o),
        &["b.npy: shape [1, 3, 16, 16], expected [N, 3, 32, 32]"],
    );
    let mut nan = vec![0.0f32; 3 * 32 * 32];
    nan[5] = f32::NAN;
    write_npy(&calibration.join("b.npy"), &[1, 3, 32, 32], &nan);
    let (o, _) = save("bad.safetensors", &["--calibration", p(&calibration)]);
    assert_contains(
        &stderr(&o),
        &["b.npy: 1 NaN or infinite values (first at flat index 5)"],
    );
}
