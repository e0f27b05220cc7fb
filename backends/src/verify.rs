//! Checking a backend against the reference executor before it is timed: one forward pass
//! each, compared by relative L2 error and the largest absolute difference.

use models::{relative_l2, Graph, Tensor, Weights};

use crate::backend::{Backend, BackendError, PrepareOptions};
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
    Ok(Agreement::measure(&output, expected, backend.tolerance()))
}
