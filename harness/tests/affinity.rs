//! An engine that pins the measuring thread to one CPU (as OpenVINO's CPU pinning does) must
//! not slow the cells measured after it: the run puts the thread's affinity back and the cell
//! says its engine changed it.

use backends::{Availability, Backend, BackendError, PrepareOptions, Prepared};
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
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    assert_eq!(unsafe { libc::sched_getaffinity(0, size, &mut set) }, 0);
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

fn pin_to_first_cpu() {
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpus()[0], &mut set) };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    assert_eq!(unsafe { libc::sched_setaffinity(0, size, &set) }, 0);
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
