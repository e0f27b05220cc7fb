//! A quantized model as a safetensors file: every integer parameter and every value's
//! quantization, so a model quantized once (on calibration images, say) is reloaded, run and
//! exported as it was, not calibrated again. The graph is not stored: the reader builds it
//! from the model, form and input size (height and width: a mean's rescale depends on them)
//! and the file must match it tensor for tensor.
//!
//! Tensors, per node `N`: `N.output.scale` (F32 [1]) and `N.output.zero_point` (U8 [1]) for
//! every node; a conv, linear or batch norm adds `N.weight` (I8, the graph's weight shape),
//! `N.weight_scale` (F32 [C]), `N.bias` (I32 [C]), `N.rescale` (F32 [C]) and `N.clamp` (U8
//! [low, high]); a table `N.table` (U8 [256]); an add `N.rescale` (F32, one per input) and
//! `N.clamp`; a mean `N.rescale` (F32 [1]); a channel product `N.rescale` (F32 [1]) and
//! `N.clamp`. The input's quantization is `input.scale` and `input.zero_point`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};

use super::{fused_activations, QuantizedModel, QuantizedOp};
use crate::graph::{Graph, Op, ValueId};
use crate::quantize::{ActivationQuant, Rescale};

/// The `format` metadata of these files, and the version this code writes and reads.
pub const FORMAT: &str = "onebench-int8";
pub const VERSION: &str = "1";

/// Why a quantized model file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoredError {
    #[error("{path}: not a safetensors file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: metadata `{field}` is {found}, expected {expected}")]
    Metadata {
        path: PathBuf,
        field: &'static str,
        found: String,
        expected: String,
    },
    #[error("{path}: tensor `{tensor}`: {reason}")]
    Tensor {
        path: PathBuf,
        tensor: String,
        reason: String,
    },
    #[error("{path}: tensor `{tensor}` is not part of the quantized `{graph}` (another model, form or file?)")]
    Unexpected {
        path: PathBuf,
        tensor: String,
        graph: String,
    },
    #[error("{path}: cannot write: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("graph `{graph}`: {reason}")]
    Graph { graph: String, reason: String },
}

/// One tensor to write: name, data type, shape, little-endian bytes.
type Entry = (String, Dtype, Vec<usize>, Vec<u8>);

fn f32s(name: String, values: &[f32]) -> Entry {
    let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    (name, Dtype::F32, vec![values.len()], bytes)
}

fn u8s(name: String, values: &[u8]) -> Entry {
    (name, Dtype::U8, vec![values.len()], values.to_vec())
}

fn quant_entries(prefix: &str, q: ActivationQuant) -> [Entry; 2] {
    [
        f32s(format!("{prefix}.scale"), &[q.scale]),
        u8s(format!("{prefix}.zero_point"), &[q.zero_point]),
    ]
}

fn scales(rescales: &[Rescale]) -> Vec<f32> {
    rescales.iter().map(|r| r.scale).collect()
}

/// The input's height x width, which the means' rescales depend on (the batch does not).
fn input_size(graph: &Graph) -> String {
    let shape = graph.input_shape();
    format!("{}x{}", shape[2], shape[3])
}

/// The shape node `op`'s int8 weights have in the file.
fn weight_shape(op: &Op, len: usize) -> Vec<usize> {
    match op {
        Op::Conv2d(c) => c.weight_shape(),
        Op::Linear(l) => vec![l.out_features, l.in_features],
        _ => vec![len],
    }
}

/// The tensors of one node's op.
fn op_entries(name: &str, op: &Op, q: &QuantizedOp) -> Vec<Entry> {
    let at = |suffix: &str| format!("{name}.{suffix}");
    match q {
        QuantizedOp::Gemm {
            weights,
            weight_scales,
            bias,
            rescale,
            low,
            high,
        } => vec![
            (
                at("weight"),
                Dtype::I8,
                weight_shape(op, weights.len()),
                weights.iter().map(|&w| w as u8).collect(),
            ),
            f32s(at("weight_scale"), weight_scales),
            (
                at("bias"),
                Dtype::I32,
                vec![bias.len()],
                bias.iter().flat_map(|b| b.to_le_bytes()).collect(),
            ),
            f32s(at("rescale"), &scales(rescale)),
            u8s(at("clamp"), &[*low, *high]),
        ],
        QuantizedOp::Table(table) => vec![u8s(at("table"), &table[..])],
        QuantizedOp::Add { inputs, low, high } => vec![
            f32s(at("rescale"), &scales(inputs)),
            u8s(at("clamp"), &[*low, *high]),
        ],
        QuantizedOp::Mean(r) => vec![f32s(at("rescale"), &[r.scale])],
        QuantizedOp::ChannelMul { rescale, low, high } => vec![
            f32s(at("rescale"), &[rescale.scale]),
            u8s(at("clamp"), &[*low, *high]),
        ],
        QuantizedOp::Fused | QuantizedOp::Reshape => Vec::new(),
    }
}

impl QuantizedModel {
    /// The model as safetensors bytes; `notes` go into the metadata beside the format, version
    /// and graph name (say, how it was calibrated).
    pub fn to_safetensors(&self, notes: &[(&str, &str)]) -> Result<Vec<u8>, String> {
        let mut entries: Vec<Entry> = quant_entries("input", self.input).into();
        let nodes = self.graph.nodes().iter().zip(&self.ops).zip(&self.values);
        for ((node, op), &value) in nodes {
            entries.extend(quant_entries(&format!("{}.output", node.name), value));
            entries.extend(op_entries(&node.name, &node.op, op));
        }
        let views = entries
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                let view = TensorView::new(*dtype, shape.clone(), bytes)
                    .map_err(|e| format!("tensor `{name}`: {e}"))?;
                Ok((name.clone(), view))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let mut metadata: HashMap<String, String> = notes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        metadata.insert("format".into(), FORMAT.into());
        metadata.insert("version".into(), VERSION.into());
        metadata.insert("graph".into(), self.graph.name().into());
        metadata.insert("input_size".into(), input_size(&self.graph));
        metadata.insert(
            "requantization".into(),
            "f32 (x scale, ties to even)".into(),
        );
        safetensors::serialize(views, Some(metadata)).map_err(|e| e.to_string())
    }

    /// Writes the model to `path` atomically (`to_safetensors`).
    pub fn save(&self, path: &Path, notes: &[(&str, &str)]) -> Result<(), StoredError> {
        let write = |reason: String| StoredError::Write {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = self.to_safetensors(notes).map_err(write)?;
        crate::checkpoint::write_atomically(path, &bytes).map_err(|e| write(e.to_string()))
    }

    /// Reads the quantized model of float `graph` (as built: its batch norms are folded into
    /// their convs here, as quantizing folds them) from safetensors `bytes` (`path` names them
    /// in errors), checking every tensor's presence, data type, shape and values (scales
    /// positive and finite, clamps ordered, a fused activation or flatten quantized as its
    /// input, no bias that can overflow the sums), and that nothing else is in the file.
    pub fn from_safetensors(
        graph: &Graph,
        bytes: &[u8],
        path: &Path,
    ) -> Result<QuantizedModel, StoredError> {
        let graph = &crate::fold_batch_norms_graph(graph, graph.name()).map_err(|e| {
            StoredError::Graph {
                graph: graph.name().to_string(),
                reason: e.to_string(),
            }
        })?;
        let file =
            safetensors::SafeTensors::deserialize(bytes).map_err(|e| StoredError::Corrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let (_, metadata) =
            safetensors::SafeTensors::read_metadata(bytes).map_err(|e| StoredError::Corrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let metadata = metadata.metadata().clone().unwrap_or_default();
        let reader = Reader {
            path,
            file: &file,
            used: Default::default(),
        };
        reader.metadata(&metadata, "format", FORMAT)?;
        reader.metadata(&metadata, "version", VERSION)?;
        reader.metadata(&metadata, "graph", graph.name())?;
        reader.metadata(&metadata, "input_size", &input_size(graph))?;
        let model = reader.model(graph)?;
        reader.nothing_else(graph)?;
        Ok(model)
    }

    /// Reads the file at `path` (`from_safetensors`).
    pub fn load(graph: &Graph, path: &Path) -> Result<QuantizedModel, StoredError> {
        let bytes = std::fs::read(path).map_err(|e| StoredError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        QuantizedModel::from_safetensors(graph, &bytes, path)
    }
}

/// Whether every channel's int32 sum (its bias plus codes of up to 255 times its weights, or
/// the weights times the zero-point-corrected codes) stays inside int32, as the kernels assume.
fn sums_fit(weights: &[i8], bias: &[i32]) -> Result<(), String> {
    let per_channel = weights.len() / bias.len().max(1);
    for (c, (w, &b)) in weights.chunks(per_channel.max(1)).zip(bias).enumerate() {
        let reach: i64 = w.iter().map(|&v| i64::from(v).abs() * 255).sum();
        if i64::from(b).abs() + reach > i64::from(i32::MAX) {
            return Err(format!(
                "channel {c}: a bias of {b} with these weights can overflow the int32 sums"
            ));
        }
    }
    Ok(())
}

/// Reads tensors by name, remembering which were read.
struct Reader<'a> {
    path: &'a Path,
    file: &'a safetensors::SafeTensors<'a>,
    used: std::cell::RefCell<std::collections::BTreeSet<String>>,
}

impl Reader<'_> {
    fn error(&self, tensor: &str, reason: String) -> StoredError {
        StoredError::Tensor {
            path: self.path.to_path_buf(),
            tensor: tensor.to_string(),
            reason,
        }
    }

    fn metadata(
        &self,
        metadata: &HashMap<String, String>,
        field: &'static str,
        expected: &str,
    ) -> Result<(), StoredError> {
        match metadata.get(field) {
            Some(v) if v == expected => Ok(()),
            found => Err(StoredError::Metadata {
                path: self.path.to_path_buf(),
                field,
                found: found.map_or("missing".into(), |v| format!("`{v}`")),
                expected: format!("`{expected}`"),
            }),
        }
    }

    /// Tensor `name`'s bytes, after checking its data type and shape.
    fn bytes(&self, name: &str, dtype: Dtype, shape: &[usize]) -> Result<&[u8], StoredError> {
        let view = self
            .file
            .tensor(name)
            .map_err(|_| self.error(name, "missing".into()))?;
        if view.dtype() != dtype {
            let found = view.dtype();
            return Err(self.error(name, format!("data type {found:?}, expected {dtype:?}")));
        }
        if view.shape() != shape {
            let found = view.shape();
            return Err(self.error(name, format!("shape {found:?}, expected {shape:?}")));
        }
        self.used.borrow_mut().insert(name.to_string());
        Ok(view.data())
    }

    fn f32s(&self, name: &str, len: usize) -> Result<Vec<f32>, StoredError> {
        let bytes = self.bytes(name, Dtype::F32, &[len])?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    fn u8s(&self, name: &str, len: usize) -> Result<Vec<u8>, StoredError> {
        Ok(self.bytes(name, Dtype::U8, &[len])?.to_vec())
    }

    fn rescales(&self, name: &str, len: usize) -> Result<Vec<Rescale>, StoredError> {
        self.f32s(name, len)?
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                Rescale::new(f64::from(s)).map_err(|_| {
                    self.error(
                        name,
                        format!("element {i} is {s}, not a positive finite scale"),
                    )
                })
            })
            .collect()
    }

    fn clamp(&self, name: &str) -> Result<(u8, u8), StoredError> {
        match self.u8s(name, 2)?[..] {
            [low, high] if low <= high => Ok((low, high)),
            [low, high] => Err(self.error(name, format!("[{low}, {high}] is not low <= high"))),
            _ => unreachable!("two elements checked"),
        }
    }

    fn quant(&self, prefix: &str) -> Result<ActivationQuant, StoredError> {
        let name = format!("{prefix}.scale");
        let scale = self.f32s(&name, 1)?[0];
        if !(scale > 0.0 && scale.is_finite()) {
            return Err(self.error(&name, format!("{scale} is not a positive finite scale")));
        }
        let zero_point = self.u8s(&format!("{prefix}.zero_point"), 1)?[0];
        Ok(ActivationQuant { scale, zero_point })
    }

    fn model(&self, graph: &Graph) -> Result<QuantizedModel, StoredError> {
        let input = self.quant("input")?;
        let fused = fused_activations(graph);
        let mut values = Vec::with_capacity(graph.nodes().len());
        let mut ops = Vec::with_capacity(graph.nodes().len());
        for (i, node) in graph.nodes().iter().enumerate() {
            let value = self.quant(&format!("{}.output", node.name))?;
            let source = match node.inputs[0] {
                ValueId::Input => input,
                ValueId::Node(p) => values[p],
            };
            let op = self.op(graph, i, fused[i])?;
            if matches!(op, QuantizedOp::Fused | QuantizedOp::Reshape) && value != source {
                return Err(self.error(
                    &format!("{}.output.scale", node.name),
                    format!("{value:?} differs from its input's {source:?}, which a fused activation or a flatten keeps"),
                ));
            }
            values.push(value);
            ops.push(op);
        }
        Ok(QuantizedModel {
            graph: graph.clone(),
            input,
            values,
            ops,
        })
    }

    /// Node i's op, read as the graph says it is quantized.
    fn op(&self, graph: &Graph, i: usize, fused: bool) -> Result<QuantizedOp, StoredError> {
        let node = &graph.nodes()[i];
        let at = |suffix: &str| format!("{}.{suffix}", node.name);
        Ok(match &node.op {
            _ if fused => QuantizedOp::Fused,
            Op::Conv2d(_) | Op::Linear(_) | Op::BatchNorm(_) => self.gemm(graph, i)?,
            Op::Add => {
                let inputs = self.rescales(&at("rescale"), node.inputs.len())?;
                let (low, high) = self.clamp(&at("clamp"))?;
                QuantizedOp::Add { inputs, low, high }
            }
            Op::GlobalAvgPool => QuantizedOp::Mean(self.rescales(&at("rescale"), 1)?[0]),
            Op::ChannelMul => {
                let rescale = self.rescales(&at("rescale"), 1)?[0];
                let (low, high) = self.clamp(&at("clamp"))?;
                QuantizedOp::ChannelMul { rescale, low, high }
            }
            Op::Flatten => QuantizedOp::Reshape,
            op if op.unary_f64().is_some() => {
                let table = self.u8s(&at("table"), 256)?;
                QuantizedOp::Table(Box::new(table.try_into().expect("256 checked")))
            }
            op => {
                return Err(self.error(&node.name, format!("a {} node has no int8 form", op.kind())))
            }
        })
    }

    fn gemm(&self, graph: &Graph, i: usize) -> Result<QuantizedOp, StoredError> {
        let node = &graph.nodes()[i];
        let at = |suffix: &str| format!("{}.{suffix}", node.name);
        let channels = match &node.op {
            Op::Conv2d(c) => c.out_channels,
            Op::Linear(l) => l.out_features,
            Op::BatchNorm(b) => b.channels,
            _ => unreachable!("called for conv-like ops"),
        };
        let shape = match &node.op {
            Op::BatchNorm(b) => vec![b.channels],
            op => weight_shape(op, 0),
        };
        let weights = self.bytes(&at("weight"), Dtype::I8, &shape)?;
        let weights: Vec<i8> = weights.iter().map(|&b| b as i8).collect();
        let weight_scales = self.f32s(&at("weight_scale"), channels)?;
        if let Some((c, s)) = weight_scales
            .iter()
            .enumerate()
            .find(|(_, s)| !(**s > 0.0 && s.is_finite()))
        {
            return Err(self.error(
                &at("weight_scale"),
                format!("channel {c} is {s}, not a positive finite scale"),
            ));
        }
        let bias = self.bytes(&at("bias"), Dtype::I32, &[channels])?;
        let bias: Vec<i32> = bias
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        sums_fit(&weights, &bias).map_err(|reason| self.error(&at("bias"), reason))?;
        let rescale = self.rescales(&at("rescale"), channels)?;
        let (low, high) = self.clamp(&at("clamp"))?;
        Ok(QuantizedOp::Gemm {
            weights,
            weight_scales,
            bias,
            rescale,
            low,
            high,
        })
    }

    /// Fails on the first tensor the graph did not read.
    fn nothing_else(&self, graph: &Graph) -> Result<(), StoredError> {
        let used = self.used.borrow();
        let mut names = self.file.names();
        names.sort_unstable();
        match names.into_iter().find(|n| !used.contains(*n)) {
            Some(tensor) => Err(StoredError::Unexpected {
                path: self.path.to_path_buf(),
                tensor: tensor.to_string(),
                graph: graph.name().to_string(),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
