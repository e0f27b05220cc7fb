//! Foreign CPU load while a cell is timed: the busy time of the CPUs this process may run on
//! (/proc/stat), minus this process's own CPU time (/proc/self/stat), over the wall time.
//! Linux only; elsewhere, or over too short a window to resolve, there is no reading.

use std::time::{Duration, Instant};

/// Clock ticks per second of /proc/stat and /proc/self/stat (USER_HZ, 100 on every Linux
/// architecture the suite builds for).
const TICKS_PER_SECOND: f64 = 100.0;

/// Below this much timed wall time the tick counters are too coarse to tell load apart.
pub const MIN_WINDOW: Duration = Duration::from_millis(100);

/// The counters at one instant.
#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    /// Busy ticks (user, nice, system, irq, softirq, steal) of the CPUs we may run on.
    busy: u64,
    /// This process's user + system ticks, all threads.
    own: u64,
    /// How many CPUs `busy` sums.
    cpus: u64,
    at: Instant,
}

/// Reads the counters now (None where /proc cannot be read).
pub fn snapshot() -> Option<CpuSnapshot> {
    let allowed = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| allowed_cpus(&s));
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let own = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (busy, cpus) = busy_ticks(&stat, allowed.as_deref())?;
    Some(CpuSnapshot {
        busy,
        cpus,
        own: own_ticks(&own)?,
        at: Instant::now(),
    })
}

/// Foreign ticks and wall time between two snapshots, accumulated over a cell's turns.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadWindow {
    foreign_ticks: u64,
    /// Ticks the counters may have rounded away, summed over the intervals: each interval's
    /// busy sum can be a tick off per CPU, its own time a tick.
    slack_ticks: u64,
    wall: Duration,
}

impl LoadWindow {
    /// Adds the interval between `before` and `after`.
    pub fn add(&mut self, before: CpuSnapshot, after: CpuSnapshot) {
        let busy = after.busy.saturating_sub(before.busy);
        let own = after.own.saturating_sub(before.own);
        self.foreign_ticks += busy.saturating_sub(own);
        self.slack_ticks += after.cpus + 1;
        self.wall += after.at.saturating_duration_since(before.at);
    }

    /// Adds another window (a run's window is the sum of its cells').
    pub fn merge(&mut self, other: &LoadWindow) {
        self.foreign_ticks += other.foreign_ticks;
        self.slack_ticks += other.slack_ticks;
        self.wall += other.wall;
    }

    /// Average busy cores of other processes, a lower bound (the rounding slack taken off, so
    /// an idle machine reads 0, never a false load), when the window is long enough.
    pub fn cores(&self) -> Option<f64> {
        (self.wall >= MIN_WINDOW).then(|| {
            let sure = self.foreign_ticks.saturating_sub(self.slack_ticks);
            sure as f64 / TICKS_PER_SECOND / self.wall.as_secs_f64()
        })
    }
}

/// `Cpus_allowed_list` of /proc/self/status, e.g. "0-3,8".
fn allowed_cpus(status: &str) -> Option<Vec<usize>> {
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
        .trim();
    let mut cpus = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.trim().parse::<usize>().ok()?..=b.trim().parse().ok()?),
            None => cpus.push(part.trim().parse().ok()?),
        }
    }
    Some(cpus)
}

/// Busy ticks summed over the `cpuN` lines of /proc/stat whose N is allowed (all when None),
/// and how many CPUs that is.
fn busy_ticks(stat: &str, allowed: Option<&[usize]>) -> Option<(u64, u64)> {
    let mut total = 0u64;
    let mut seen = 0u64;
    for line in stat.lines() {
        // "cpuN ..." lines only; the aggregate "cpu  ..." line has a space after "cpu".
        let Some(rest) = line
            .strip_prefix("cpu")
            .filter(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let Ok(n) = fields.next()?.parse::<usize>() else {
            continue;
        };
        if allowed.is_some_and(|a| !a.contains(&n)) {
            continue;
        }
        let v: Vec<u64> = fields.map(|f| f.parse().unwrap_or(0)).collect();
        // user nice system idle iowait irq softirq steal ...
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        total += at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
        seen += 1;
    }
    (seen > 0).then_some((total, seen))
}

/// utime + stime of /proc/self/stat (fields 14 and 15, counted after the `(comm)` field,
/// which may itself hold spaces and parentheses).
fn own_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // after_comm starts at field 3 (state): utime is field 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_cpu_lists_are_expanded() {
        let status = "Name:\tx\nCpus_allowed:\t3\nCpus_allowed_list:\t0-2,5\n";
        assert_eq!(allowed_cpus(status), Some(vec![0, 1, 2, 5]));
        assert_eq!(allowed_cpus("Name: x\n"), None);
    }

    #[test]
    fn busy_ticks_count_only_allowed_cpus_and_not_idle() {
        let stat = "cpu  100 0 50 9000 5 0 0 0 0 0\n\
                    cpu0 10 1 5 4000 2 1 1 2 0 0\n\
                    cpu1 20 0 10 4000 3 0 0 0 0 0\n\
                    cpu2 99 0 0 0 0 0 0 0 0 0\n\
                    intr 1 2 3\n";
        // cpu0: 10 + 1 + 5 + 1 + 1 + 2 = 20; cpu1: 30; idle and iowait never count.
        assert_eq!(busy_ticks(stat, Some(&[0, 1])), Some((50, 2)));
        assert_eq!(busy_ticks(stat, None), Some((149, 3)));
        assert_eq!(busy_ticks("intr 1\n", None), None);
    }

    #[test]
    fn own_ticks_survive_a_command_name_with_spaces_and_parentheses() {
        let stat = "42 (my (odd) name) R 1 42 42 0 -1 4194304 100 0 0 0 70 30 0 0 20 0 3 0";
        assert_eq!(own_ticks(stat), Some(100));
    }

    #[test]
    fn a_window_reports_foreign_cores_only_when_long_enough() {
        let t0 = Instant::now();
        let snap = |busy, own, ms| CpuSnapshot {
            busy,
            own,
            cpus: 2,
            at: t0 + Duration::from_millis(ms),
        };
        let mut w = LoadWindow::default();
        // 1 s on 2 CPUs: 183 busy ticks of which 50 are ours -> 133 foreign, less the
        // 3 ticks of rounding slack -> 1.3 cores of others.
        w.add(snap(1000, 200, 0), snap(1183, 250, 1000));
        assert!((w.cores().unwrap() - 1.3).abs() < 1e-9, "{:?}", w.cores());
        // Rounding alone (3 foreign ticks in 0.2 s) reads as no load.
        let mut idle = LoadWindow::default();
        idle.add(snap(0, 0, 0), snap(43, 40, 200));
        assert_eq!(idle.cores(), Some(0.0));
        let mut short = LoadWindow::default();
        short.add(snap(0, 0, 0), snap(3, 0, 50));
        assert_eq!(short.cores(), None);
        // Two short windows merge into one long enough to read.
        short.merge(&idle);
        assert_eq!(short.cores(), Some(0.0));
    }

    #[test]
    fn this_machine_gives_a_reading_on_linux() {
        if cfg!(target_os = "linux") {
            let (a, b) = (snapshot().unwrap(), snapshot().unwrap());
            assert!(b.busy >= a.busy && b.own >= a.own);
        }
    }
}
