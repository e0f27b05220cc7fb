//! A quantized model through safetensors and back, and the files it must refuse: another
//! graph or input size, a missing, extra, mistyped or misshapen tensor, a scale that is not
//! positive, a bias that can overflow the sums, bytes that are not safetensors.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::graph::ValueId;
use crate::quantize::ValueRanges;
use crate::quantized::{QuantizedModel, QuantizedOp};
use crate::{random_weights, Form, Graph, InputSize, Model, Variant};

const PATH: &str = "s4.int8.safetensors";

fn graph(variant: Variant, size: usize) -> Graph {
    Model::MobileOne(variant)
        .build(Form::Unfused, InputSize::square(1, size))
        .unwrap()
}

/// `graph` quantized as `quantize` does (batch norms folded into their convs first) on
/// made-up ranges (each node's a little different), its weights seeded.
fn quantized(graph: &Graph) -> QuantizedModel {
    let weights = crate::fold_batch_norm_weights(graph, &random_weights(graph, 5), "w").unwrap();
    let graph = &crate::fold_batch_norms_graph(graph, graph.name()).unwrap();
    let mut ranges = ValueRanges::new(graph.nodes().len());
    ranges.input.observe([-2.0, 2.5]);
    for i in 0..graph.nodes().len() {
        let r = ranges.of_mut(ValueId::Node(i)).unwrap();
        r.observe([-1.0 - i as f64 * 0.01, 3.0 + i as f64 * 0.02]);
    }
    QuantizedModel::new(graph, &weights, &ranges).unwrap()
}

/// The file's tensors and metadata, changed by `edit`, written again.
fn rewrite(
    bytes: &[u8],
    edit: impl FnOnce(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>, &mut HashMap<String, String>),
) -> Vec<u8> {
    let file = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
    let mut metadata = meta.metadata().clone().unwrap_or_default();
    let mut entries: Vec<_> = file
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut entries, &mut metadata);
    let views = entries
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()));
    safetensors::serialize(views.collect::<Vec<_>>(), Some(metadata)).unwrap()
}

fn load(graph: &Graph, bytes: &[u8]) -> String {
    match QuantizedModel::from_safetensors(graph, bytes, Path::new(PATH)) {
        Ok(_) => panic!("the file was read"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_quantized_model_reads_back_equal_with_every_kind_of_op() {
    // S4 unfused: convs, batch norms (the skip branches, with no conv to fold into), adds,
    // fused ReLUs, squeeze-excite (mean, table, channel
    // product), flatten, the classifier.
    let graph = graph(Variant::S4, 32);
    let model = quantized(&graph);
    for kind in [
        "gemm",
        "table",
        "fused",
        "add",
        "mean",
        "channel_mul",
        "reshape",
    ] {
        let has = |op: &QuantizedOp| match op {
            QuantizedOp::Gemm { .. } => kind == "gemm",
            QuantizedOp::Table(_) => kind == "table",
            QuantizedOp::Fused => kind == "fused",
            QuantizedOp::Add { .. } => kind == "add",
            QuantizedOp::Mean(_) => kind == "mean",
            QuantizedOp::ChannelMul { .. } => kind == "channel_mul",
            QuantizedOp::Reshape => kind == "reshape",
        };
        assert!(model.ops.iter().any(has), "no {kind} op in the test model");
    }
    let bytes = model.to_safetensors(&[("calibration", "made up")]).unwrap();
    let back = QuantizedModel::from_safetensors(&graph, &bytes, Path::new(PATH)).unwrap();
    assert_eq!(back, model);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    model.save(&path, &[]).unwrap();
    assert_eq!(QuantizedModel::load(&graph, &path).unwrap(), model);
}

#[test]
fn a_file_of_another_graph_or_input_size_is_refused() {
    let s4 = graph(Variant::S4, 32);
    let bytes = quantized(&s4).to_safetensors(&[]).unwrap();
    let err = load(&graph(Variant::S0, 32), &bytes);
    assert!(
        err.contains(PATH) && err.contains("metadata `graph`"),
        "{err}"
    );
    let err = load(&graph(Variant::S4, 64), &bytes);
    assert!(
        err.contains("`input_size` is `32x32`, expected `64x64`"),
        "{err}"
    );
    let unversioned = rewrite(&bytes, |_, m| {
        m.remove("version");
    });
    assert!(load(&s4, &unversioned).contains("`version` is missing"));
}

#[test]
fn a_missing_extra_mistyped_or_misshapen_tensor_is_named() {
    let graph = graph(Variant::S4, 32);
    let bytes = quantized(&graph).to_safetensors(&[]).unwrap();
    let name = "stage1.2.rbr_skip.weight_scale";
    let missing = rewrite(&bytes, |e, _| e.retain(|t| t.0 != name));
    assert!(load(&graph, &missing).contains(&format!("`{name}`: missing")));

    let extra = rewrite(&bytes, |e, _| {
        e.push(("stowaway".into(), Dtype::U8, vec![1], vec![0]))
    });
    let err = load(&graph, &extra);
    assert!(err.contains("`stowaway` is not part of"), "{err}");

    let bias = "linear.bias";
    let retyped = rewrite(&bytes, |e, _| {
        let t = e.iter_mut().find(|t| t.0 == bias).unwrap();
        t.1 = Dtype::F32;
    });
    let err = load(&graph, &retyped);
    assert!(
        err.contains(&format!("`{bias}`: data type F32, expected I32")),
        "{err}"
    );

    let reshaped = rewrite(&bytes, |e, _| {
        let t = e
            .iter_mut()
            .find(|t| t.0 == "stage0.rbr_conv.0.conv.weight")
            .unwrap();
        t.2 = vec![t.3.len()];
    });
    assert!(load(&graph, &reshaped).contains("expected [64, 3, 3, 3]"));
}

#[test]
fn bad_values_are_refused_with_the_tensor_and_the_value() {
    let graph = graph(Variant::S4, 32);
    let model = quantized(&graph);
    let bytes = model.to_safetensors(&[]).unwrap();
    let set_f32 = |name: &'static str, value: f32| {
        rewrite(&bytes, move |e, _| {
            let t = e.iter_mut().find(|t| t.0 == name).unwrap();
            t.3[..4].copy_from_slice(&value.to_le_bytes());
        })
    };
    let err = load(&graph, &set_f32("input.scale", 0.0));
    assert!(err.contains("`input.scale`: 0 is not a positive"), "{err}");
    let err = load(&graph, &set_f32("linear.rescale", f32::NAN));
    assert!(err.contains("`linear.rescale`: element 0 is NaN"), "{err}");

    let clamp = rewrite(&bytes, |e, _| {
        let t = e.iter_mut().find(|t| t.0 == "linear.clamp").unwrap();
        t.3 = vec![200, 100];
    });
    assert!(load(&graph, &clamp).contains("[200, 100] is not low <= high"));

    let bias = rewrite(&bytes, |e, _| {
        let t = e.iter_mut().find(|t| t.0 == "linear.bias").unwrap();
        t.3[..4].copy_from_slice(&i32::MAX.to_le_bytes());
    });
    let err = load(&graph, &bias);
    assert!(
        err.contains("`linear.bias`: channel 0") && err.contains("overflow"),
        "{err}"
    );

    // A fused ReLU's value must be its producer's.
    let relu = model
        .graph
        .nodes()
        .iter()
        .position(|n| n.op == crate::Op::Relu)
        .unwrap();
    assert_eq!(model.ops[relu], QuantizedOp::Fused);
    let scale = format!("{}.output.scale", model.graph.nodes()[relu].name);
    let moved = rewrite(&bytes, |e, _| {
        let t = e.iter_mut().find(|t| t.0 == scale).unwrap();
        t.3 = 7.0f32.to_le_bytes().to_vec();
    });
    let err = load(&graph, &moved);
    assert!(
        err.contains(&scale) && err.contains("differs from its input"),
        "{err}"
    );

    let err = load(&graph, &bytes[..bytes.len() / 2]);
    assert!(err.contains("not a safetensors file"), "{err}");
}
