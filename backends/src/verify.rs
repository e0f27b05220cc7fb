//! Checking a backend against the reference executor before it is timed: one forward pass
//! each, compared by relative L2 error and the largest absolute difference; and the
//! conformance suite that runs that check for every backend, model and form.

use models::{relative_l2, seeded_uniform, Form, Graph, InputSize, Model, Tensor, Weights};

use crate::backend::{Availability, Backend, BackendError, PrepareOptions};
use crate::reference::evaluate;

/// How far a backend's output is from the reference's.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    pub relative_l2: f64,
    pub max_abs_diff: f64,
    pub tolerance: f64,
}

impl Agreement {
    /// Within tolerance, and no NaN anywhere (a NaN makes every comparison false).
    pub fn passed(&self) -> bool {
        self.relative_l2 <= self.tolerance
    }

    /// Compares an output with the reference output under a tolerance.
    pub fn measure(output: &Tensor, expected: &Tensor, tolerance: f64) -> Agreement {
        let max_abs_diff = output
            .data()
            .iter()
            .zip(expected.data())
            .map(|(a, b)| (a - b).abs() as f64)
            .fold(0.0, |m: f64, d| {
                if d.is_nan() || m.is_nan() {
                    f64::NAN
                } else {
                    m.max(d)
                }
            });
        let relative_l2 = match relative_l2(output.data(), expected.data()) {
            r if r.is_nan() => f64::INFINITY,
            r => r,
        };
        Agreement {
            relative_l2,
            max_abs_diff,
            tolerance,
        }
    }
}

/// The reference output for a graph, weights and input (float64 throughout, rounded to f32).
pub fn reference_output(
    graph: &Graph,
    weights: &Weights,
    input: &Tensor,
) -> Result<Tensor, BackendError> {
    Ok(evaluate(graph, &weights.cast::<f64>(), &input.cast::<f64>())?.cast())
}

/// Prepares `backend`, runs it once on `input` and compares with `expected`.
pub fn check_against_reference(
    backend: &dyn Backend,
    graph: &Graph,
    weights: &Weights,
    input: &Tensor,
    expected: &Tensor,
    options: &PrepareOptions,
) -> Result<Agreement, BackendError> {
    let mut plan = backend.prepare(graph, weights, options)?;
    let output = plan.forward(input)?;
    let tolerance = backend.tolerance_at(options.precision);
    Ok(Agreement::measure(&output, expected, tolerance))
}

/// The outcome of one backend on one model and form.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckOutcome {
    Checked(Agreement),
    /// The backend is unavailable here (the reason).
    Skipped(String),
    /// It failed to prepare or run (the error).
    Error(String),
}

/// One conformance check.
#[derive(Debug, Clone, PartialEq)]
pub struct ConformanceCheck {
    pub model: Model,
    pub form: Form,
    pub backend: String,
    pub outcome: CheckOutcome,
}

impl ConformanceCheck {
    /// Checked and within tolerance; a skipped backend is not a failure.
    pub fn failed(&self) -> bool {
        match &self.outcome {
            CheckOutcome::Checked(a) => !a.passed(),
            CheckOutcome::Skipped(_) => false,
            CheckOutcome::Error(_) => true,
        }
    }
}

/// The conformance suite: every backend on every model and form, with seeded weights and a
/// seeded input, against one reference output per model (computed on the reparameterized
/// graph: one seed gives the same function in both forms). `on_check` sees each check as it
/// completes.
pub fn conformance(
    backends: &[Box<dyn Backend>],
    models: &[Model],
    forms: &[Form],
    size: InputSize,
    seed: u64,
    options: &PrepareOptions,
    mut on_check: impl FnMut(&ConformanceCheck),
) -> Result<Vec<ConformanceCheck>, BackendError> {
    let input = seeded_uniform(size.shape(), seed, -2.0, 2.0);
    let graph_of = |m: Model, f| {
        m.build(f, size)
            .map_err(|e| BackendError::failed(crate::reference::NAME, e))
    };
    let mut checks = Vec::new();
    for &model in models {
        let fused = model.seeded_weights(Form::Reparameterized, seed);
        let expected = reference_output(&graph_of(model, Form::Reparameterized)?, &fused, &input)?;
        for &form in forms {
            let graph = graph_of(model, form)?;
            let weights = model.seeded_weights(form, seed);
            for backend in backends {
                let usable = match backend.availability() {
                    Availability::Unavailable(reason) => Err(reason),
                    Availability::Available => backend.supports(options.precision),
                };
                let outcome = match usable {
                    Err(reason) => CheckOutcome::Skipped(reason),
                    Ok(()) => match check_against_reference(
                        backend.as_ref(),
                        &graph,
                        &weights,
                        &input,
                        &expected,
                        options,
                    ) {
                        Ok(a) => CheckOutcome::Checked(a),
                        Err(e) => CheckOutcome::Error(e.to_string()),
                    },
                };
                let check = ConformanceCheck {
                    model,
                    form,
                    backend: backend.name().into(),
                    outcome,
                };
                on_check(&check);
                checks.push(check);
            }
        }
    }
    Ok(checks)
}
