//! The CPU affinity of the measuring thread: remembered before any engine runs and put back
//! whenever an engine has changed it (OpenVINO's CPU pinning binds the calling thread), so
//! that no engine's settings leak into the cells measured after it. Linux only; elsewhere
//! there is nothing to guard.

/// The CPUs the measuring thread may run on, as it was when the run started.
pub struct AffinityGuard {
    original: Option<Vec<usize>>,
}

impl AffinityGuard {
    /// Remembers this thread's affinity.
    pub fn of_this_thread() -> Self {
        Self {
            original: cpus_of_this_thread(),
        }
    }

    /// Puts this thread's affinity back if it changed; returns what it had become.
    pub fn put_back(&self) -> Option<String> {
        let original = self.original.as_ref()?;
        let now = cpus_of_this_thread()?;
        if &now == original {
            return None;
        }
        set_cpus_of_this_thread(original);
        Some(format!(
            "CPUs {} instead of {}",
            cpu_list(&now),
            cpu_list(original)
        ))
    }
}

/// `0-3,6` style.
fn cpu_list(cpus: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        while i + 1 < cpus.len() && cpus[i + 1] == cpus[i] + 1 {
            i += 1;
        }
        parts.push(match cpus[i] == start {
            true => start.to_string(),
            false => format!("{start}-{}", cpus[i]),
        });
        i += 1;
    }
    parts.join(",")
}

/// The CPUs this thread may run on (None where that cannot be read).
#[cfg(target_os = "linux")]
pub fn cpus_of_this_thread() -> Option<Vec<usize>> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the call writes at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    if unsafe { libc::sched_getaffinity(0, size, &mut set) } != 0 {
        return None;
    }
    let cpus = (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect();
    Some(cpus)
}

/// Lets this thread run on `cpus` only (each below `libc::CPU_SETSIZE`).
#[cfg(target_os = "linux")]
pub fn set_cpus_of_this_thread(cpus: &[usize]) {
    // SAFETY: as above; every CPU index is below CPU_SETSIZE (it was read from such a set).
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    let size = std::mem::size_of::<libc::cpu_set_t>();
    unsafe { libc::sched_setaffinity(0, size, &set) };
}

#[cfg(not(target_os = "linux"))]
pub fn cpus_of_this_thread() -> Option<Vec<usize>> {
    None
}

#[cfg(not(target_os = "linux"))]
pub fn set_cpus_of_this_thread(_: &[usize]) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_changed_affinity_is_named_and_put_back() {
        // On a thread of its own: the test harness's threads keep theirs.
        std::thread::spawn(|| {
            let guard = AffinityGuard::of_this_thread();
            let all = cpus_of_this_thread().unwrap();
            assert_eq!(guard.put_back(), None);
            set_cpus_of_this_thread(&all[..1]);
            let change = guard.put_back();
            if all.len() > 1 {
                let want = format!("CPUs {} instead of {}", all[0], cpu_list(&all));
                assert_eq!(change, Some(want));
            }
            assert_eq!(cpus_of_this_thread().unwrap(), all);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn cpu_lists_read_as_the_kernel_writes_them() {
        assert_eq!(cpu_list(&[0, 1, 2, 3, 6, 8, 9]), "0-3,6,8-9");
        assert_eq!(cpu_list(&[5]), "5");
        assert_eq!(cpu_list(&[]), "");
    }
}
