//! An engine that pins the measuring thread to one CPU (as OpenVINO's CPU pinning does) must
//! not slow the cells measured after it: the run puts the thread's affinity back and the cell
//! says its engine changed it. (Linux: where a thread's affinity can be read and set.)
#![cfg(target_os = "linux")]

use backends::{Availability, Backend, BackendError, PrepareOptions, Prepared};
use harness::affinity::{cpus_of_this_thread, set_cpus_of_this_thread};
use harness::scenario::{Overrides, Scenario};
use models::{Graph, Weights};

/// The native backend, but preparing a plan pins the calling thread to its first CPU.
struct Pinning(Box<dyn Backend>);

impl Backend for Pinning {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn version(&self) -> String {
        self.0.version()
    }
    fn availability(&self) -> Availability {
        self.0.availability()
    }
    fn prepare(
        &self,
        graph: &Graph,
        weights: &Weights,
        options: &PrepareOptions,
    ) -> Result<Box<dyn Prepared>, BackendError> {
        pin_to_first_cpu();
        self.0.prepare(graph, weights, options)
    }
}

fn cpus() -> Vec<usize> {
    cpus_of_this_thread().expect("Linux reads a thread's affinity")
}

fn pin_to_first_cpu() {
    set_cpus_of_this_thread(&cpus()[..1]);
}

#[test]
fn an_engine_that_pins_the_measuring_thread_is_undone_and_named() {
    let before = cpus();
    if before.len() < 2 {
        eprintln!("one CPU: nothing to pin away from");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let yaml = "name: pin\nmodels: [s0]\nforms: [reparameterized]\nbackends: [native]\nthreads: [1]\ninput_size: 32\nmeasurement:\n  min_runs: 3\n  max_runs: 3\n";
    let overrides = Overrides {
        out: Some(out.path().to_path_buf()),
        history: Some("off".into()),
        ..Overrides::default()
    };
    let scenario = Scenario::parse("pin.yaml".as_ref(), yaml.as_bytes(), &overrides).unwrap();
    let native = backends::all()
        .into_iter()
        .find(|b| b.name() == "native")
        .unwrap();
    let outcome =
        harness::runner::run_scenario_with(&scenario, vec![Box::new(Pinning(native))]).unwrap();
    assert_eq!(cpus(), before, "the measuring thread's CPUs are put back");
    let cell = &outcome.results.cells[0];
    let want = format!(
        "native changed the measuring thread's CPU affinity (CPUs {} instead of",
        before[0]
    );
    assert!(
        cell.warnings.iter().any(|w| w.starts_with(&want)),
        "{:?}",
        cell.warnings
    );
}
