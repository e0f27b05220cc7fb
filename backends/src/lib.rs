//! onebench backends: the `Backend` trait (prepare once, run many times), the registry of
//! backends by name, the float64 reference executor every backend is checked against, and the
//! check itself.

pub mod backend;
pub mod candle;
pub mod gpu;
pub mod interpret;
pub mod libtorch;
pub mod litert;
pub mod lower;
pub mod native;
pub mod onnxruntime;
pub mod openvino;
pub mod quantized_reference;
pub mod reference;
pub mod runtime_library;
pub mod verify;

pub use crate::candle::{CandleBackend, Depthwise};
pub use backend::{
    reduced_precision_tolerance, require_precision, Availability, Backend, BackendError, LayerTime,
    PrepareOptions, Prepared,
};
pub use gpu::GpuBackend;
pub use libtorch::TchBackend;
pub use litert::LiteRtBackend;
pub use native::NativeBackend;
pub use onnxruntime::OrtBackend;
pub use openvino::OpenVinoBackend;
pub use reference::{evaluate, ReferenceBackend};
pub use verify::{
    check_against_reference, conformance, reference_output, Agreement, CheckOutcome,
    ConformanceCheck,
};

/// Every backend this build knows, available or not, in listing order.
pub fn all() -> Vec<Box<dyn Backend>> {
    vec![
        Box::new(ReferenceBackend),
        Box::new(NativeBackend::new()),
        Box::new(CandleBackend::new(Depthwise::GroupedConv)),
        Box::new(CandleBackend::new(Depthwise::Unrolled)),
        Box::new(TchBackend),
        Box::new(OrtBackend),
        Box::new(OpenVinoBackend),
        Box::new(LiteRtBackend),
        Box::new(GpuBackend::any()),
        Box::new(GpuBackend::metal()),
    ]
}

/// The names of every backend, comma separated (for help texts and errors).
pub fn names() -> String {
    all()
        .iter()
        .map(|b| b.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The backend called `name`.
pub fn get(name: &str) -> Result<Box<dyn Backend>, BackendError> {
    all()
        .into_iter()
        .find(|b| b.name() == name.trim().to_ascii_lowercase())
        .ok_or_else(|| BackendError::UnknownBackend {
            name: name.to_string(),
            known: names(),
        })
}

#[cfg(test)]
mod tests {
    use models::testing::assert_contains;
    use models::{Form, InputSize, Model, Tensor, Variant};

    /// A wrong output tensor is an error naming both shapes on every engine, never a panic.
    #[test]
    fn every_backend_refuses_a_wrong_output_tensor() {
        let model = Model::MobileOne(Variant::S0);
        let size = InputSize::square(1, 32);
        let graph = model.build(Form::Reparameterized, size).unwrap();
        let weights = model.seeded_weights(Form::Reparameterized, 0);
        let input = Tensor::zeros(graph.input_shape().to_vec());
        for backend in super::all() {
            if backend.availability() != super::Availability::Available {
                continue;
            }
            let mut plan = backend
                .prepare(&graph, &weights, &super::PrepareOptions::default())
                .unwrap();
            let mut wrong = Tensor::zeros(vec![1, 999]);
            let err = plan.run(&input, &mut wrong).unwrap_err().to_string();
            assert!(
                err.contains("output tensor is [1, 999], the plan writes [1, 1000]"),
                "{}: {err}",
                backend.name()
            );
        }
    }

    #[test]
    fn get_finds_by_name_and_lists_the_known_ones() {
        assert_eq!(super::get("Reference").unwrap().name(), "reference");
        let err = super::get("tensorrt").err().unwrap().to_string();
        assert_contains(&err, &["unknown backend `tensorrt`", "reference"]);
    }
}
