//! `harness export`: writes a model as a standard ONNX file (`models::onnx`), a TFLite
//! flatbuffer (`models::tflite`), or its graph as JSON and its weights as safetensors, so tools
//! outside Rust (ONNX Runtime, OpenVINO, LiteRT, Netron, the comparison scripts) run exactly
//! the graph we run.

use anyhow::{Context, Result};
use models::checkpoint::{save_safetensors, write_atomically};
use models::{Graph, Op, ValueId};
use serde_json::{json, Value};

use super::build_model;
use crate::cli::{ExportArgs, ExportFormat};

pub fn run(args: &ExportArgs) -> Result<()> {
    let m = build_model(&args.model)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create the folder", args.out.display()))?;
    let precision = super::parse_precision(&args.precision)?;
    if precision != models::Precision::Fp32 {
        return export_quantized(args, &m);
    }
    if let Some(file) = &args.quantized {
        super::load_quantized(file, &m.graph, &precision)?;
    }
    let written = match args.format {
        ExportFormat::Onnx => {
            let path = args.out.join("model.onnx");
            let bytes = models::onnx::export(&m.graph, &m.weights, env!("CARGO_PKG_VERSION"))
                .with_context(|| format!("{} {}", m.model, m.form))?;
            write_atomically(&path, &bytes)
                .with_context(|| format!("{}: cannot write", path.display()))?;
            "model.onnx"
        }
        ExportFormat::Tflite => {
            let path = args.out.join("model.tflite");
            let description = format!("{} {}, exported by onebench", m.model, m.form);
            let bytes = models::tflite::export(&m.graph, &m.weights, &description)
                .with_context(|| format!("{} {}", m.model, m.form))?;
            write_atomically(&path, &bytes)
                .with_context(|| format!("{}: cannot write", path.display()))?;
            "model.tflite"
        }
        ExportFormat::GraphJson => {
            let text = serde_json::to_string_pretty(&graph_json(&m.graph))?;
            let graph_path = args.out.join("graph.json");
            write_atomically(&graph_path, text.as_bytes())
                .with_context(|| format!("{}: cannot write", graph_path.display()))?;
            save_safetensors(&m.weights, &args.out.join("weights.safetensors"))?;
            "graph.json and weights.safetensors"
        }
    };
    eprintln!(
        "{} {} (weights: {}): wrote {written} to {}",
        m.model,
        m.form,
        m.origin.source,
        args.out.display()
    );
    Ok(())
}

/// `--precision int8 --format onnx`: the model quantized as an int8 cell is, as QDQ ONNX.
fn export_quantized(args: &ExportArgs, m: &super::BuiltModel) -> Result<()> {
    if args.precision.parse() != Ok(models::Precision::Int8) || args.format != ExportFormat::Onnx {
        anyhow::bail!(
            "--precision {}: export writes fp32 in every format, and int8 as QDQ ONNX (--format onnx)",
            args.precision
        );
    }
    let path = args.out.join("model.onnx");
    let (quantized, source) = match &args.quantized {
        Some(file) => (
            super::load_quantized(file, &m.graph, &models::Precision::Int8)?,
            format!("{}, quantized as saved", file.display()),
        ),
        None => (
            backends::quantized_reference::quantize_seeded(&m.graph, &m.weights)
                .with_context(|| format!("quantizing {} {}", m.model, m.form))?,
            format!(
                "{}, calibrated on {} seeded inputs",
                m.origin.source,
                backends::quantized_reference::CALIBRATION_INPUTS
            ),
        ),
    };
    let bytes = models::onnx::export_quantized(&quantized, env!("CARGO_PKG_VERSION"))
        .with_context(|| format!("{} {}", m.model, m.form))?;
    write_atomically(&path, &bytes).with_context(|| format!("{}: cannot write", path.display()))?;
    eprintln!(
        "{} {} (weights: {source}): wrote model.onnx (int8, QDQ) to {}",
        m.model,
        m.form,
        args.out.display()
    );
    Ok(())
}

/// The graph as JSON: input shape, output name, and every node with its attributes.
pub fn graph_json(graph: &Graph) -> Value {
    let name_of = |v: ValueId| match v {
        ValueId::Input => "input".to_string(),
        ValueId::Node(i) => graph.nodes()[i].name.clone(),
    };
    let nodes: Vec<Value> = graph
        .nodes()
        .iter()
        .map(|n| {
            let attributes = match &n.op {
                Op::Conv2d(c) => json!({
                    "in_channels": c.in_channels, "out_channels": c.out_channels, "kernel": c.kernel,
                    "stride": c.stride, "padding": c.padding, "groups": c.groups, "bias": c.bias,
                }),
                Op::BatchNorm(b) => json!({ "channels": b.channels, "eps": b.eps }),
                Op::Linear(l) => json!({ "in_features": l.in_features, "out_features": l.out_features, "bias": l.bias }),
                _ => json!({}),
            };
            let op = match &n.op {
                Op::Conv2d(_) => "conv2d",
                other => other.kind(),
            };
            json!({
                "name": n.name,
                "op": op,
                "attributes": attributes,
                "inputs": n.inputs.iter().map(|&v| name_of(v)).collect::<Vec<_>>(),
                "shape": n.shape,
            })
        })
        .collect();
    json!({
        "name": graph.name(),
        "input_shape": graph.input_shape(),
        "output": name_of(graph.output()),
        "nodes": nodes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::{Form, InputSize, Model, Variant};

    #[test]
    fn every_node_is_exported_with_its_inputs_and_attributes() {
        let graph = Model::MobileOne(Variant::S0)
            .build(Form::Unfused, InputSize::IMAGENET)
            .unwrap();
        let v = graph_json(&graph);
        let nodes = v["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), graph.nodes().len());
        assert_eq!(v["input_shape"], json!([1, 3, 224, 224]));
        assert_eq!(v["output"], "linear");
        let stem = nodes
            .iter()
            .find(|n| n["name"] == "stage0.rbr_conv.0.conv")
            .unwrap();
        assert_eq!(stem["inputs"], json!(["input"]));
        assert_eq!(stem["attributes"]["stride"], 2);
        assert_eq!(stem["attributes"]["out_channels"], 48);
        let add = nodes.iter().find(|n| n["name"] == "stage1.0.add").unwrap();
        // S0's depthwise block: 4 conv branches and the 1x1 scale branch (stride 2: no skip).
        assert_eq!(add["inputs"].as_array().unwrap().len(), 5);
    }
}
