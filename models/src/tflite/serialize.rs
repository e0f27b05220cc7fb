//! A `ModelDef` written as TFLite's flatbuffer with the `flatbuffers` crate's builder (tables
//! by field slot, as generated code would): one subgraph, one signature, buffer data aligned
//! to 16 bytes as the schema asks (`force_align: 16`).

use flatbuffers::{FlatBufferBuilder, Push, PushAlignment, WIPOffset};

use super::schema::{self, field, slot};
use super::{opcode_table, ModelDef, OperatorDef, OptionField, TensorDef, SIGNATURE_KEY};

/// A byte of a buffer's data: a vector of them starts on a 16-byte boundary.
#[derive(Clone, Copy)]
struct AlignedByte(u8);

impl Push for AlignedByte {
    type Output = u8;

    unsafe fn push(&self, dst: &mut [u8], _written_len: usize) {
        dst[0] = self.0;
    }

    fn alignment() -> PushAlignment {
        PushAlignment::new(16)
    }
}

type Table = WIPOffset<flatbuffers::TableFinishedWIPOffset>;

/// The bytes of the `.tflite` file for this model.
pub fn serialize(model: &ModelDef, name: &str, description: &str) -> Vec<u8> {
    let mut b = FlatBufferBuilder::with_capacity(
        model.buffers.iter().map(Vec::len).sum::<usize>() + (1 << 16),
    );
    let buffers: Vec<Table> = model
        .buffers
        .iter()
        .map(|data| buffer(&mut b, data))
        .collect();
    let buffers = b.create_vector(&buffers);
    let (codes, index) = opcode_table(model);
    let codes: Vec<Table> = codes.iter().map(|&c| operator_code(&mut b, c)).collect();
    let codes = b.create_vector(&codes);
    let tensors: Vec<Table> = model.tensors.iter().map(|t| tensor(&mut b, t)).collect();
    let tensors = b.create_vector(&tensors);
    let operators: Vec<Table> = model
        .operators
        .iter()
        .map(|op| operator(&mut b, op, index[&op.code]))
        .collect();
    let operators = b.create_vector(&operators);
    let inputs = b.create_vector(&[model.input]);
    let outputs = b.create_vector(&[model.output]);
    let name = b.create_string(name);
    let start = b.start_table();
    b.push_slot_always(field(slot::SUBGRAPH_TENSORS), tensors);
    b.push_slot_always(field(slot::SUBGRAPH_INPUTS), inputs);
    b.push_slot_always(field(slot::SUBGRAPH_OUTPUTS), outputs);
    b.push_slot_always(field(slot::SUBGRAPH_OPERATORS), operators);
    b.push_slot_always(field(slot::SUBGRAPH_NAME), name);
    let subgraph = b.end_table(start);
    let subgraphs = b.create_vector(&[subgraph]);
    let signature = signature(&mut b, model);
    let signatures = b.create_vector(&[signature]);
    let description = b.create_string(description);
    let start = b.start_table();
    b.push_slot_always(field(slot::MODEL_VERSION), schema::SCHEMA_VERSION);
    b.push_slot_always(field(slot::MODEL_OPERATOR_CODES), codes);
    b.push_slot_always(field(slot::MODEL_SUBGRAPHS), subgraphs);
    b.push_slot_always(field(slot::MODEL_DESCRIPTION), description);
    b.push_slot_always(field(slot::MODEL_BUFFERS), buffers);
    b.push_slot_always(field(slot::MODEL_SIGNATURE_DEFS), signatures);
    let root = b.end_table(start);
    b.finish(root, Some(schema::FILE_IDENTIFIER));
    b.finished_data().to_vec()
}

fn buffer(b: &mut FlatBufferBuilder, data: &[u8]) -> Table {
    let data = (!data.is_empty()).then(|| {
        let bytes: Vec<AlignedByte> = data.iter().map(|&v| AlignedByte(v)).collect();
        b.create_vector(&bytes)
    });
    let start = b.start_table();
    if let Some(data) = data {
        b.push_slot_always(field(slot::BUFFER_DATA), data);
    }
    b.end_table(start)
}

fn operator_code(b: &mut FlatBufferBuilder, code: i32) -> Table {
    let old = code.min(schema::op::PLACEHOLDER_FOR_GREATER_OP_CODES) as i8;
    let start = b.start_table();
    b.push_slot_always(field(slot::OPERATOR_CODE_BUILTIN), code);
    b.push_slot_always(field(slot::OPERATOR_CODE_VERSION), 1i32);
    b.push_slot_always(field(slot::OPERATOR_CODE_DEPRECATED_BUILTIN), old);
    b.end_table(start)
}

fn tensor(b: &mut FlatBufferBuilder, t: &TensorDef) -> Table {
    let shape = b.create_vector(&t.shape);
    let name = b.create_string(&t.name);
    let start = b.start_table();
    b.push_slot_always(field(slot::TENSOR_SHAPE), shape);
    b.push_slot_always(field(slot::TENSOR_BUFFER), t.buffer);
    b.push_slot_always(field(slot::TENSOR_NAME), name);
    b.push_slot_always(field(slot::TENSOR_TYPE), t.ty);
    b.end_table(start)
}

fn operator(b: &mut FlatBufferBuilder, op: &OperatorDef, opcode_index: u32) -> Table {
    let options = (op.options_type != 0).then(|| options_table(b, &op.options));
    let inputs = b.create_vector(&op.inputs);
    let outputs = b.create_vector(&op.outputs);
    let start = b.start_table();
    b.push_slot_always(field(slot::OPERATOR_OPCODE_INDEX), opcode_index);
    b.push_slot_always(field(slot::OPERATOR_INPUTS), inputs);
    b.push_slot_always(field(slot::OPERATOR_OUTPUTS), outputs);
    if let Some(options) = options {
        b.push_slot_always(field(slot::OPERATOR_OPTIONS), options);
        b.push_slot_always(field(slot::OPERATOR_OPTIONS_TYPE), op.options_type);
    }
    b.end_table(start)
}

fn options_table(b: &mut FlatBufferBuilder, fields: &[OptionField]) -> Table {
    let vectors: Vec<_> = fields
        .iter()
        .filter_map(|f| match f {
            OptionField::Ints(s, v) => Some((*s, b.create_vector(v))),
            _ => None,
        })
        .collect();
    let start = b.start_table();
    for (s, v) in vectors {
        b.push_slot_always(field(s), v);
    }
    for f in fields {
        match *f {
            OptionField::Int(s, v) => b.push_slot_always(field(s), v),
            OptionField::Byte(s, v) => b.push_slot_always(field(s), v),
            OptionField::Bool(s, v) => b.push_slot_always(field(s), v),
            OptionField::Ints(..) => {}
        }
    }
    b.end_table(start)
}

/// The one signature: `input` and `output` of subgraph 0 under `serving_default`.
fn signature(b: &mut FlatBufferBuilder, model: &ModelDef) -> Table {
    let input = tensor_map(b, "input", model.input);
    let output = tensor_map(b, "output", model.output);
    let inputs = b.create_vector(&[input]);
    let outputs = b.create_vector(&[output]);
    let key = b.create_string(SIGNATURE_KEY);
    let start = b.start_table();
    b.push_slot_always(field(slot::SIGNATURE_INPUTS), inputs);
    b.push_slot_always(field(slot::SIGNATURE_OUTPUTS), outputs);
    b.push_slot_always(field(slot::SIGNATURE_KEY), key);
    b.push_slot_always(field(slot::SIGNATURE_SUBGRAPH_INDEX), 0u32);
    b.end_table(start)
}

fn tensor_map(b: &mut FlatBufferBuilder, name: &str, tensor: i32) -> Table {
    let name = b.create_string(name);
    let start = b.start_table();
    b.push_slot_always(field(slot::TENSOR_MAP_NAME), name);
    b.push_slot_always(field(slot::TENSOR_MAP_TENSOR_INDEX), tensor as u32);
    b.end_table(start)
}
