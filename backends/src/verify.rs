//! Checking a backend against the reference executor before it is timed: one forward pass
//! each, compared by relative L2 error and the largest absolute difference; and the
//! conformance suite that runs that check for every backend, model and form.

use models::{relative_l2, seeded_uniform, Form, Graph, InputSize, Model, Tensor, Weights};

use models::quantized::QuantizedModel;

use crate::backend::{Availability, Backend, BackendError, PrepareOptions};
use crate::reference::evaluate;

/// How far a backend's output is from the reference's.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    pub relative_l2: f64,
    pub max_abs_diff: f64,
    pub tolerance: f64,
    /// At int8: the largest difference, in output codes, from the quantized reference.
    pub integer_codes_off: Option<u64>,
    /// At int8: how many codes off passes (`Backend::int8_codes_allowed`; None: not gated).
    pub codes_allowed: Option<u64>,
}

impl Agreement {
    /// Within tolerance, and no NaN anywhere (a NaN makes every comparison false); at int8
    /// also within the allowed codes of the quantized reference.
    pub fn passed(&self) -> bool {
        let codes = match (self.integer_codes_off, self.codes_allowed) {
            (Some(off), Some(allowed)) => off <= allowed,
            _ => true,
        };
        self.relative_l2 <= self.tolerance && codes
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
            integer_codes_off: None,
            codes_allowed: None,
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

/// The largest difference between an int8 output and the quantized reference's output for
/// `model`, in output codes (both dequantized with the same scale); `u64::MAX` for a NaN.
pub fn codes_off(output: &Tensor, integer: &Tensor, model: &QuantizedModel) -> u64 {
    let scale = f64::from(model.quant(model.graph.output()).scale);
    let most = output
        .data()
        .iter()
        .zip(integer.data())
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs())
        .fold(
            0.0,
            |m: f64, d| if d.is_nan() { f64::INFINITY } else { m.max(d) },
        );
    match most.is_finite() {
        true => (most / scale).round() as u64,
        false => u64::MAX,
    }
}

/// An int8 check: `graph` quantized on `seeded_calibration`, prepared from that model, its
/// output compared with `expected` (float64) and, code for code, with the quantized
/// reference's.
fn check_int8(
    backend: &dyn Backend,
    graph: &Graph,
    weights: &Weights,
    input: &Tensor,
    expected: &Tensor,
    options: &PrepareOptions,
) -> Result<Agreement, BackendError> {
    let model = crate::quantized_reference::quantize_seeded(graph, weights)?;
    let output = backend.prepare_quantized(&model, options)?.forward(input)?;
    let integer = crate::quantized_reference::run(&model, input)?;
    let tolerance = backend.tolerance_at(options.precision);
    Ok(Agreement {
        integer_codes_off: Some(codes_off(&output, &integer, &model)),
        codes_allowed: backend.int8_codes_allowed(),
        ..Agreement::measure(&output, expected, tolerance)
    })
}

/// Prepares `backend`, runs it once on `input` and compares with `expected` (at int8, also
/// with the quantized reference).
pub fn check_against_reference(
    backend: &dyn Backend,
    graph: &Graph,
    weights: &Weights,
    input: &Tensor,
    expected: &Tensor,
    options: &PrepareOptions,
) -> Result<Agreement, BackendError> {
    if options.precision == models::Precision::Int8 {
        return check_int8(backend, graph, weights, input, expected, options);
    }
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
