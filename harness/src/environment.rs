//! The environment a run is measured in: machine (via sysinfo), build (commit, rustc, profile,
//! opt-level, debug assertions) and backend versions, for every results file.

use reports::results::{BackendInfo, Environment, MachinePeak};
use sysinfo::System;

/// Captures the environment (the peak is filled in by the caller).
pub fn capture(peak: Option<MachinePeak>) -> Environment {
    let mut sys = System::new().ok();
    if let Some(sys) = sys.as_mut() {
        sys.refresh_cpu_all();
        sys.refresh_memory();
    }
    let cpus = sys.as_ref().map_or(&[][..], |s| s.cpus());
    let cpu = cpus
        .first()
        .map(|c| c.brand().trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let frequency = cpus.first().map(|c| c.frequency()).unwrap_or(0);
    let physical = System::physical_core_count().ok();
    let logical = cpus.len().max(1);
    let memory = sys.as_ref().map_or(0, |s| s.total_memory());
    Environment {
        machine_fingerprint: fingerprint(&cpu, logical, memory),
        cpu,
        physical_cores: physical,
        logical_cores: logical,
        cpu_frequency_mhz: frequency,
        memory_bytes: memory,
        os: System::long_os_version().unwrap_or_else(|_| std::env::consts::OS.into()),
        kernel: System::kernel_version().unwrap_or_default(),
        hostname: System::host_name().unwrap_or_default(),
        git_commit: env!("ONEBENCH_GIT_COMMIT").into(),
        git_branch: env!("ONEBENCH_GIT_BRANCH").into(),
        rustc: env!("ONEBENCH_RUSTC").into(),
        build_profile: env!("ONEBENCH_PROFILE").into(),
        opt_level: env!("ONEBENCH_OPT_LEVEL").into(),
        debug_assertions: cfg!(debug_assertions),
        backends: backends::all()
            .iter()
            .map(|b| BackendInfo {
                name: b.name().into(),
                version: b.version(),
                availability: b.availability().to_string(),
                device: b.device(),
            })
            .collect(),
        thread_env: thread_env(),
        peak,
    }
}

/// Environment variables that change how many threads libraries use.
const THREAD_VARIABLES: [&str; 4] = [
    "RAYON_NUM_THREADS",
    "CANDLE_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
];

fn thread_env() -> Vec<(String, String)> {
    THREAD_VARIABLES
        .iter()
        .filter_map(|name| std::env::var(name).ok().map(|v| (name.to_string(), v)))
        .collect()
}

/// CPU model, logical cores and memory rounded to GiB: the same for every machine of a kind.
pub fn fingerprint(cpu: &str, logical_cores: usize, memory_bytes: u64) -> String {
    let gib = (memory_bytes as f64 / (1u64 << 30) as f64).round() as u64;
    let cpu: String = cpu
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    format!("{cpu}-{logical_cores}c-{gib}g")
}

/// Resident memory of this process now, in bytes.
pub fn resident_bytes() -> u64 {
    let (Ok(pid), Ok(mut sys)) = (sysinfo::get_current_pid(), System::new()) else {
        return 0;
    };
    sys.refresh_processes(sysinfo::ProcessesToUpdate::Some(&[pid]), true);
    sys.process(pid).map_or(0, |p| p.memory())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_stable_and_plain() {
        assert_eq!(
            fingerprint("AMD EPYC 9R45 (Zen 5)", 2, 24 * (1 << 30) + 12345),
            "amd-epyc-9r45-zen-5-2c-24g"
        );
    }

    #[test]
    fn capture_describes_this_machine_and_build() {
        let env = capture(None);
        assert!(env.logical_cores >= 1 && env.memory_bytes > 0);
        assert!(env.rustc.starts_with("rustc "), "{}", env.rustc);
        assert!(!env.git_commit.is_empty());
        assert!(
            ["debug", "release"].contains(&env.build_profile.as_str()),
            "{}",
            env.build_profile
        );
        assert_eq!(env.opt_level, "3", "the workspace optimizes every profile");
        assert_eq!(env.debug_assertions, cfg!(debug_assertions));
        assert!(env.backends.iter().any(|b| b.name == "reference"));
        assert!(
            resident_bytes() > 1 << 20,
            "a running test process uses more than 1 MiB"
        );
    }
}
