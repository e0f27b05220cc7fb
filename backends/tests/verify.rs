//! The check that runs before any timing: a correct backend passes, a wrong one is caught.

use backends::{
    check_against_reference, reference_output, Availability, Backend, BackendError, PrepareOptions,
    Prepared, ReferenceBackend,
};
use models::{random_weights, Form, Graph, InputSize, Model, Tensor, Variant, Weights};

/// A test-only backend that runs the reference and then scales its output.
struct Skewed(f32);

struct SkewedPlan(Box<dyn Prepared>, f32);

impl Backend for Skewed {
    fn name(&self) -> &'static str {
        "skewed"
    }
    fn version(&self) -> String {
        "test".into()
    }
    fn availability(&self) -> Availability {
        Availability::Available
    }
    fn prepare(
        &self,
        graph: &Graph,
        weights: &Weights,
        options: &PrepareOptions,
    ) -> Result<Box<dyn Prepared>, BackendError> {
        Ok(Box::new(SkewedPlan(
            ReferenceBackend.prepare(graph, weights, options)?,
            self.0,
        )))
    }
}

impl Prepared for SkewedPlan {
    fn input_shape(&self) -> &[usize] {
        self.0.input_shape()
    }
    fn output_shape(&self) -> &[usize] {
        self.0.output_shape()
    }
    fn run(&mut self, input: &Tensor, output: &mut Tensor) -> Result<(), BackendError> {
        self.0.run(input, output)?;
        output.data_mut().iter_mut().for_each(|v| *v *= self.1);
        Ok(())
    }
    fn describe(&self) -> String {
        "skewed".into()
    }
}

#[test]
fn a_skewed_backend_fails_and_the_reference_passes() {
    let size = InputSize::square(1, 32);
    let graph = Model::MobileOne(Variant::S0)
        .build(Form::Reparameterized, size)
        .unwrap();
    let weights = random_weights(&graph, 5);
    let input = Tensor::new(
        size.shape(),
        (0..3 * 32 * 32).map(|i| (i % 17) as f32 / 17.0).collect(),
    )
    .unwrap();
    let expected = reference_output(&graph, &weights, &input).unwrap();
    let options = PrepareOptions::default();
    let check = |backend: &dyn Backend| {
        check_against_reference(backend, &graph, &weights, &input, &expected, &options).unwrap()
    };

    let ok = check(&ReferenceBackend);
    assert!(ok.passed() && ok.relative_l2 == 0.0, "{ok:?}");

    let off = check(&Skewed(1.001));
    assert!(!off.passed(), "{off:?}");
    assert!((off.relative_l2 - 1e-3).abs() < 1e-5, "{off:?}");

    let nan = check(&Skewed(f32::NAN));
    assert!(!nan.passed() && nan.max_abs_diff.is_nan(), "{nan:?}");
}

#[test]
fn the_reference_backend_refuses_weights_that_do_not_fit() {
    let graph = Model::MobileOne(Variant::S0)
        .build(Form::Reparameterized, InputSize::IMAGENET)
        .unwrap();
    let other = Model::MobileOne(Variant::S1)
        .build(Form::Reparameterized, InputSize::IMAGENET)
        .unwrap();
    let err = ReferenceBackend
        .prepare(
            &graph,
            &random_weights(&other, 1),
            &PrepareOptions::default(),
        )
        .err()
        .unwrap();
    assert!(err.to_string().contains("shape"), "{err}");
}
