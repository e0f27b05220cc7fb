//! The parts of TFLite's flatbuffer schema (`schema.fbs`, version 3) the exporter writes: the
//! builtin operator codes, the option tables' union tags and each table's field slots. Values
//! are the schema's; a field's slot is its index in the table (the vtable offset is 4 + 2 x slot).

/// The file identifier of a TFLite flatbuffer.
pub const FILE_IDENTIFIER: &str = "TFL3";
/// The schema version a model declares.
pub const SCHEMA_VERSION: u32 = 3;

/// `TensorType`.
pub const FLOAT32: i8 = 0;
pub const INT32: i8 = 2;

/// `Padding`.
pub const SAME: i8 = 0;
pub const VALID: i8 = 1;

/// Builtin operator codes (`BuiltinOperator`) the exporter uses.
pub mod op {
    pub const ADD: i32 = 0;
    pub const CONCATENATION: i32 = 2;
    pub const CONV_2D: i32 = 3;
    pub const DEPTHWISE_CONV_2D: i32 = 4;
    pub const FULLY_CONNECTED: i32 = 9;
    pub const LOGISTIC: i32 = 14;
    pub const MAX_POOL_2D: i32 = 17;
    pub const MUL: i32 = 18;
    pub const RELU: i32 = 19;
    pub const RELU6: i32 = 21;
    pub const RESHAPE: i32 = 22;
    pub const PAD: i32 = 34;
    pub const TRANSPOSE: i32 = 39;
    pub const MEAN: i32 = 40;
    pub const MAXIMUM: i32 = 55;
    pub const PADV2: i32 = 60;
    pub const SLICE: i32 = 65;
    pub const HARD_SWISH: i32 = 117;
    /// Codes above this one are written as this in the old byte field, and in full in the
    /// int32 `builtin_code` field.
    pub const PLACEHOLDER_FOR_GREATER_OP_CODES: i32 = 127;
    pub const GELU: i32 = 150;
}

/// `BuiltinOptions` union tags (0 is NONE).
pub mod options {
    pub const CONV_2D: u8 = 1;
    pub const DEPTHWISE_CONV_2D: u8 = 2;
    pub const POOL_2D: u8 = 5;
    pub const FULLY_CONNECTED: u8 = 8;
    pub const CONCATENATION: u8 = 10;
    pub const ADD: u8 = 11;
    pub const RESHAPE: u8 = 17;
    pub const MUL: u8 = 21;
    pub const PAD: u8 = 22;
    pub const TRANSPOSE: u8 = 26;
    pub const REDUCER: u8 = 27;
    pub const MAXIMUM_MINIMUM: u8 = 39;
    pub const PADV2: u8 = 43;
    pub const SLICE: u8 = 48;
    pub const HARD_SWISH: u8 = 91;
    pub const GELU: u8 = 116;
}

/// The vtable offset of field number `slot` of a table.
pub const fn field(slot: u16) -> u16 {
    4 + 2 * slot
}

/// Field slots of each table written.
pub mod slot {
    pub const MODEL_VERSION: u16 = 0;
    pub const MODEL_OPERATOR_CODES: u16 = 1;
    pub const MODEL_SUBGRAPHS: u16 = 2;
    pub const MODEL_DESCRIPTION: u16 = 3;
    pub const MODEL_BUFFERS: u16 = 4;
    pub const MODEL_SIGNATURE_DEFS: u16 = 7;

    pub const OPERATOR_CODE_DEPRECATED_BUILTIN: u16 = 0;
    pub const OPERATOR_CODE_VERSION: u16 = 2;
    pub const OPERATOR_CODE_BUILTIN: u16 = 3;

    pub const SUBGRAPH_TENSORS: u16 = 0;
    pub const SUBGRAPH_INPUTS: u16 = 1;
    pub const SUBGRAPH_OUTPUTS: u16 = 2;
    pub const SUBGRAPH_OPERATORS: u16 = 3;
    pub const SUBGRAPH_NAME: u16 = 4;

    pub const TENSOR_SHAPE: u16 = 0;
    pub const TENSOR_TYPE: u16 = 1;
    pub const TENSOR_BUFFER: u16 = 2;
    pub const TENSOR_NAME: u16 = 3;

    pub const BUFFER_DATA: u16 = 0;

    pub const OPERATOR_OPCODE_INDEX: u16 = 0;
    pub const OPERATOR_INPUTS: u16 = 1;
    pub const OPERATOR_OUTPUTS: u16 = 2;
    pub const OPERATOR_OPTIONS_TYPE: u16 = 3;
    pub const OPERATOR_OPTIONS: u16 = 4;

    pub const SIGNATURE_INPUTS: u16 = 0;
    pub const SIGNATURE_OUTPUTS: u16 = 1;
    pub const SIGNATURE_KEY: u16 = 2;
    pub const SIGNATURE_SUBGRAPH_INDEX: u16 = 4;

    pub const TENSOR_MAP_NAME: u16 = 0;
    pub const TENSOR_MAP_TENSOR_INDEX: u16 = 1;

    /// Conv2DOptions, DepthwiseConv2DOptions and Pool2DOptions share their first three.
    pub const PADDING: u16 = 0;
    pub const STRIDE_W: u16 = 1;
    pub const STRIDE_H: u16 = 2;
    pub const DEPTH_MULTIPLIER: u16 = 3;
    pub const FILTER_WIDTH: u16 = 3;
    pub const FILTER_HEIGHT: u16 = 4;

    pub const CONCATENATION_AXIS: u16 = 0;
    pub const RESHAPE_NEW_SHAPE: u16 = 0;
    pub const REDUCER_KEEP_DIMS: u16 = 0;
    pub const GELU_APPROXIMATE: u16 = 0;
}
