//! The LiteRT backend (`litert`, cargo feature `litert`): each plan is our graph exported as a
//! TFLite flatbuffer (`models::tflite`, NHWC) and compiled by LiteRT's C API (`libLiteRt.so`
//! from PyPI's ai-edge-litert, opened at run time from `LITERT_LIB_PATH`, see
//! scripts/setup-litert.sh) for its CPU accelerator, XNNPACK, with the plan's thread count.
//! Input and output live in 64-byte aligned host buffers LiteRT reads and writes in place.
//! Without the feature a stub takes its place and reports "not compiled in".

use models::{Graph, Precision, Weights};

use crate::backend::{Availability, Backend, BackendError, PrepareOptions, Prepared};

/// Why the backend is missing from a build without the feature.
pub const NOT_COMPILED_IN: &str = "not compiled in (build with --features litert)";

/// LiteRT (TFLite's successor) on its XNNPACK CPU accelerator; a stub without the feature.
pub struct LiteRtBackend;

impl Backend for LiteRtBackend {
    fn name(&self) -> &'static str {
        "litert"
    }

    fn version(&self) -> String {
        #[cfg(feature = "litert")]
        return engine::version();
        #[cfg(not(feature = "litert"))]
        "litert (not compiled in)".to_string()
    }

    fn availability(&self) -> Availability {
        #[cfg(feature = "litert")]
        return match engine::api() {
            Ok(_) => Availability::Available,
            Err(reason) => Availability::Unavailable(reason),
        };
        #[cfg(not(feature = "litert"))]
        Availability::Unavailable(NOT_COMPILED_IN.into())
    }

    fn compiled_in(&self) -> bool {
        cfg!(feature = "litert")
    }

    fn multithreaded(&self) -> bool {
        true
    }

    /// fp32 only: the exporter writes float32 models. XNNPACK has no bfloat16 convolutions,
    /// and runs fp16 only on CPUs with fp16 arithmetic from an fp16-marked model, which is
    /// not written.
    fn supports(&self, precision: Precision) -> Result<(), String> {
        match precision {
            Precision::Fp32 => Ok(()),
            Precision::Bf16 => Err("LiteRT's CPU accelerator (XNNPACK) has no bfloat16 convolutions".into()),
            Precision::Fp16 => Err(
                "litert runs the float32 TFLite export only (an fp16 model for XNNPACK's fp16 path, which needs fp16 arithmetic such as ARMv8.2's, is not written)".into(),
            ),
            Precision::Int8 => Err(
                "litert runs the float32 TFLite export only (a quantized TFLite export for XNNPACK's QS8 path is not written yet)".into(),
            ),
        }
    }

    fn prepare(
        &self,
        graph: &Graph,
        weights: &Weights,
        options: &PrepareOptions,
    ) -> Result<Box<dyn Prepared>, BackendError> {
        crate::require_precision(self, options)?;
        models::tflite::check_exportable(graph).map_err(unexportable)?;
        #[cfg(feature = "litert")]
        return Ok(Box::new(engine::LiteRtPlan::prepare(
            graph, weights, options,
        )?));
        #[cfg(not(feature = "litert"))]
        {
            let _ = (weights, options);
            Err(BackendError::unavailable(self.name(), NOT_COMPILED_IN))
        }
    }
}

/// A graph the TFLite exporter cannot write: an unsupported-op cell naming the node.
fn unexportable(error: models::tflite::TfliteError) -> BackendError {
    match error {
        models::tflite::TfliteError::UnsupportedOp {
            node, op, reason, ..
        } => BackendError::UnsupportedOp {
            backend: "litert".into(),
            op: format!("{op} as TFLite: {reason}"),
            node,
        },
        other => BackendError::failed("litert", other),
    }
}

#[cfg(feature = "litert")]
mod engine;

#[cfg(test)]
mod tests {
    use super::*;
    use models::graph::{Conv2d, GraphBuilder};
    use models::{Op, ValueId};

    #[test]
    fn only_fp32_runs_and_the_others_say_why() {
        assert!(LiteRtBackend.supports(Precision::Fp32).is_ok());
        let bf16 = LiteRtBackend.supports(Precision::Bf16).unwrap_err();
        assert!(bf16.contains("no bfloat16"), "{bf16}");
        let fp16 = LiteRtBackend.supports(Precision::Fp16).unwrap_err();
        assert!(fp16.contains("float32 TFLite export only"), "{fp16}");
    }

    #[test]
    fn a_grouped_convolution_is_an_unsupported_op_naming_its_node() {
        let conv = Conv2d {
            in_channels: 4,
            out_channels: 8,
            kernel: 3,
            stride: 1,
            padding: 1,
            groups: 2,
            bias: false,
        };
        let mut b = GraphBuilder::new("grouped", vec![1, 4, 8, 8]).unwrap();
        let out = b.add("g", Op::Conv2d(conv), &[ValueId::Input]).unwrap();
        let graph = b.finish(out);
        let weights = models::random_weights(&graph, 0);
        let err = LiteRtBackend
            .prepare(&graph, &weights, &PrepareOptions::default())
            .err()
            .unwrap();
        match err {
            BackendError::UnsupportedOp { backend, op, node } => {
                assert_eq!((backend.as_str(), node.as_str()), ("litert", "g"));
                assert!(
                    op.contains("grouped convolution (2 groups over 4 channels)"),
                    "{op}"
                );
            }
            other => panic!("{other}"),
        }
    }
}
