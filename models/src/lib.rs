//! onebench models: what the network is. The graph IR, MobileOne S0-S4 in both forms, the
//! reparameterization fold, cost counting, and weights (seeded init, checkpoint readers and
//! name mapping). Knows nothing of backends or timing.

pub mod checkpoint;
pub mod cost;
pub mod graph;
pub mod memory;
pub mod mobileone;
pub mod model;
pub mod onnx;
pub mod quantize;
pub mod quantized;
pub mod reparameterize;
pub mod tensor;
pub mod testing;
pub mod tflite;
pub mod weights;
pub mod zoo;

pub use checkpoint::{
    load_model_weights, load_weights, save_safetensors, CheckpointError, Naming, WeightsOrigin,
};
pub use cost::{model_cost, model_cost_at, CostTotals, ModelCost, OpCost, Storage};
pub use graph::{Graph, GraphBuilder, GraphError, Node, Op, ValueId};
pub use mobileone::Variant;
pub use model::{Form, InputSize, Model, Precision, UnknownName};
pub use reparameterize::{
    batch_norm_affine, fold_batch_norm_weights, fold_batch_norms_graph, foldable_batch_norms,
    reparameterize,
};
pub use tensor::{checked_numel, relative_l2, Element, Tensor};
pub use weights::{random_weights, seeded_uniform, Weights, WeightsError};
