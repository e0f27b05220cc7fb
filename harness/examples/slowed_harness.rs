//! A test-only build of `harness run` whose backends are all slowed down by a known factor
//! (`ONEBENCH_SLOWDOWN`, default 1.2: 20% slower), by busy-waiting after each forward pass for
//! the extra fraction of the time it took. It is the "known slower build" the gate's
//! calibration (scripts/calibrate-gate.sh) compares against; production builds never contain
//! it. Usage: the same as `harness run SCENARIO [--models ...] [--out DIR]`.

use std::process::ExitCode;
use std::time::Instant;

use backends::{Availability, Backend, BackendError, PrepareOptions, Prepared};
use clap::Parser;
use harness::cli::{Cli, Command};
use harness::scenario::Scenario;
use models::{Graph, Tensor, Weights};

struct Slowed {
    inner: Box<dyn Backend>,
    factor: f64,
}

struct SlowedPlan {
    inner: Box<dyn Prepared>,
    factor: f64,
}

impl Backend for Slowed {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn version(&self) -> String {
        format!("{} slowed x{}", self.inner.version(), self.factor)
    }
    fn availability(&self) -> Availability {
        self.inner.availability()
    }
    // Every hook forwards: a wrapper that kept a default would lose what the engine reports.
    fn compiled_in(&self) -> bool {
        self.inner.compiled_in()
    }
    fn device(&self) -> Option<String> {
        self.inner.device()
    }
    fn multithreaded(&self) -> bool {
        self.inner.multithreaded()
    }
    fn reports_layer_times(&self) -> bool {
        self.inner.reports_layer_times()
    }
    fn tolerance(&self) -> f64 {
        self.inner.tolerance()
    }
    fn supports(&self, precision: models::Precision) -> Result<(), String> {
        self.inner.supports(precision)
    }
    fn tolerance_at(&self, precision: models::Precision) -> f64 {
        self.inner.tolerance_at(precision)
    }
    fn prepare(
        &self,
        graph: &Graph,
        weights: &Weights,
        options: &PrepareOptions,
    ) -> Result<Box<dyn Prepared>, BackendError> {
        Ok(Box::new(SlowedPlan {
            inner: self.inner.prepare(graph, weights, options)?,
            factor: self.factor,
        }))
    }
}

impl Prepared for SlowedPlan {
    fn input_shape(&self) -> &[usize] {
        self.inner.input_shape()
    }
    fn output_shape(&self) -> &[usize] {
        self.inner.output_shape()
    }
    fn run(&mut self, input: &Tensor, output: &mut Tensor) -> Result<(), BackendError> {
        let start = Instant::now();
        self.inner.run(input, output)?;
        let until = start.elapsed().mul_f64(self.factor);
        while start.elapsed() < until {
            std::hint::spin_loop();
        }
        Ok(())
    }
    fn describe(&self) -> String {
        format!("{} (slowed x{})", self.inner.describe(), self.factor)
    }
    fn layer_times(&self) -> Vec<backends::LayerTime> {
        self.inner.layer_times()
    }
    fn gpu_seconds(&self) -> Option<f64> {
        self.inner.gpu_seconds()
    }
}

fn main() -> ExitCode {
    let factor: f64 = std::env::var("ONEBENCH_SLOWDOWN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.2);
    let cli = Cli::parse();
    let Some(Command::Run { scenario, options }) = &cli.command else {
        eprintln!("slowed_harness supports only `run SCENARIO [options]`");
        return ExitCode::from(2);
    };
    let overrides = options.overrides();
    let registry: Vec<Box<dyn Backend>> = backends::all()
        .into_iter()
        .map(|inner| Box::new(Slowed { inner, factor }) as Box<dyn Backend>)
        .collect();
    match Scenario::load(scenario, &overrides)
        .and_then(|s| harness::runner::run_scenario_with(&s, registry))
    {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
