//! The measurement loop: warm-up, then timed samples of one synchronized forward pass each,
//! until the budget or the confidence target says stop. A cell is measured in turns, so the
//! sequential and interleaved orders share this code. Only `Prepared::run` is inside the timed
//! region; book-keeping happens between samples.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use backends::{BackendError, Prepared};
use models::Tensor;

use crate::load::{snapshot, LoadWindow};
use crate::stats::{order_statistic_median_ci, relative_half_width};

/// When to stop warming up and measuring.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub warmup_runs: usize,
    pub warmup_min: Duration,
    pub min_runs: usize,
    pub max_runs: usize,
    pub min_time: Duration,
    pub max_time: Duration,
    /// Stop once the 95% interval of the median is within ± this fraction of the median.
    pub target_ci: Option<f64>,
}

/// Why a cell stopped sampling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    TargetReached,
    /// min runs and min time done, no target set.
    MinimumDone,
    MaxRuns,
    MaxTime,
    Interrupted,
}

/// The timing state of one cell across its turns.
#[derive(Debug, Clone, Default)]
pub struct CellTimer {
    pub samples_ms: Vec<f64>,
    /// The GPU time of each sample, for plans that report one (timestamp queries).
    pub gpu_samples_ms: Vec<f64>,
    sorted_ms: Vec<f64>,
    pub warmup_runs: usize,
    warmup_elapsed: Duration,
    measured: Duration,
    pub stopped: Option<StopReason>,
    /// Foreign CPU load over this cell's turns.
    pub load: LoadWindow,
}

impl CellTimer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_done(&self) -> bool {
        self.stopped.is_some()
    }

    /// Measures for up to `slice` (None: until done). A turn after the first starts with one
    /// untimed run to bring the cell's weights back into cache, when a run is short next to the
    /// slice (under a tenth of it; for longer runs the cache state is noise and the extra run
    /// would only double the cost). Returns whether the cell is done. The foreign CPU load
    /// while the turn's samples were taken is added to `load`.
    pub fn turn(
        &mut self,
        plan: &mut dyn Prepared,
        input: &Tensor,
        output: &mut Tensor,
        budget: &Budget,
        slice: Option<Duration>,
        interrupt: &AtomicBool,
    ) -> Result<bool, BackendError> {
        let turn_start = Instant::now();
        let in_slice = || slice.is_none_or(|s| turn_start.elapsed() < s);
        if self.warmup_runs < budget.warmup_runs.max(1) || self.warmup_elapsed < budget.warmup_min {
            while (self.warmup_runs < budget.warmup_runs.max(1)
                || self.warmup_elapsed < budget.warmup_min)
                && self.warmup_elapsed < budget.max_time
            {
                if interrupt.load(Ordering::Relaxed) {
                    self.stopped = Some(StopReason::Interrupted);
                    return Ok(true);
                }
                let t = Instant::now();
                plan.run(input, output)?;
                self.warmup_elapsed += t.elapsed();
                self.warmup_runs += 1;
            }
        } else if let (Some(slice), Some(last)) = (slice, self.samples_ms.last()) {
            if *last < slice.as_secs_f64() * 1e3 / 10.0 {
                plan.run(input, output)?;
            }
        }
        let before = snapshot();
        let sampled = self.sample(plan, input, output, budget, in_slice, interrupt);
        if let (Some(before), Some(after)) = (before, snapshot()) {
            self.load.add(before, after);
        }
        sampled?;
        Ok(self.is_done())
    }

    /// Takes timed samples until the cell stops or the turn's slice is over.
    fn sample(
        &mut self,
        plan: &mut dyn Prepared,
        input: &Tensor,
        output: &mut Tensor,
        budget: &Budget,
        in_slice: impl Fn() -> bool,
        interrupt: &AtomicBool,
    ) -> Result<(), BackendError> {
        while self.stopped.is_none() {
            if interrupt.load(Ordering::Relaxed) {
                self.stopped = Some(StopReason::Interrupted);
                break;
            }
            if !in_slice() && !self.samples_ms.is_empty() {
                break;
            }
            let t = Instant::now();
            plan.run(input, output)?;
            let elapsed = t.elapsed();
            self.record(elapsed);
            if let Some(seconds) = plan.gpu_seconds() {
                self.gpu_samples_ms.push(seconds * 1e3);
            }
            self.stopped = self.stop_reason(budget);
        }
        Ok(())
    }

    fn record(&mut self, elapsed: Duration) {
        let ms = elapsed.as_secs_f64() * 1e3;
        self.measured += elapsed;
        self.samples_ms.push(ms);
        let at = self.sorted_ms.partition_point(|&x| x < ms);
        self.sorted_ms.insert(at, ms);
    }

    /// The stopping rule, checked after every sample: `min_runs` is a hard minimum and
    /// `max_runs` a hard maximum; between them, stop at `max_time`, or once `min_time` has passed
    /// and the confidence target (if any) is reached.
    pub fn stop_reason(&self, budget: &Budget) -> Option<StopReason> {
        let n = self.samples_ms.len();
        if n >= budget.max_runs {
            return Some(StopReason::MaxRuns);
        }
        if n < budget.min_runs {
            return None;
        }
        if self.measured >= budget.max_time {
            return Some(StopReason::MaxTime);
        }
        if self.measured < budget.min_time {
            return None;
        }
        match budget.target_ci {
            None => Some(StopReason::MinimumDone),
            Some(target) => {
                let ci = order_statistic_median_ci(&self.sorted_ms)?;
                let median = self.sorted_ms[n / 2];
                (relative_half_width(ci, median) <= target).then_some(StopReason::TargetReached)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backends::BackendError;

    /// A plan whose runs take a fixed time: sleeps, so the clock sees real elapsed time.
    struct Sleeper {
        runs: usize,
        nap: Duration,
    }

    impl Sleeper {
        fn new(nap: Duration) -> Self {
            Self { runs: 0, nap }
        }
    }

    impl Prepared for Sleeper {
        fn input_shape(&self) -> &[usize] {
            &[1]
        }
        fn output_shape(&self) -> &[usize] {
            &[1]
        }
        fn run(&mut self, _: &Tensor, _: &mut Tensor) -> Result<(), BackendError> {
            self.runs += 1;
            std::thread::sleep(self.nap);
            Ok(())
        }
        fn describe(&self) -> String {
            "sleeper".into()
        }
    }

    fn budget() -> Budget {
        Budget {
            warmup_runs: 2,
            warmup_min: Duration::ZERO,
            min_runs: 5,
            max_runs: 8,
            min_time: Duration::ZERO,
            max_time: Duration::from_secs(10),
            target_ci: None,
        }
    }

    fn run(plan: &mut Sleeper, budget: &Budget, slice: Option<Duration>) -> CellTimer {
        let mut timer = CellTimer::new();
        let (x, mut y) = (Tensor::zeros(vec![1]), Tensor::zeros(vec![1]));
        while !timer
            .turn(plan, &x, &mut y, budget, slice, &AtomicBool::new(false))
            .unwrap()
        {}
        timer
    }

    #[test]
    fn warms_up_then_stops_at_the_minimum_without_a_target() {
        let mut plan = Sleeper::new(Duration::from_micros(200));
        let t = run(&mut plan, &budget(), None);
        assert_eq!((t.warmup_runs, t.samples_ms.len(), plan.runs), (2, 5, 7));
        assert_eq!(t.stopped, Some(StopReason::MinimumDone));
        assert!(
            t.samples_ms.iter().all(|&ms| ms >= 0.2),
            "{:?}",
            t.samples_ms
        );
    }

    #[test]
    fn stops_at_max_runs_when_the_target_is_out_of_reach() {
        let mut plan = Sleeper::new(Duration::from_micros(100));
        let b = Budget {
            target_ci: Some(1e-9),
            ..budget()
        };
        let t = run(&mut plan, &b, None);
        assert_eq!(
            (t.samples_ms.len(), t.stopped),
            (8, Some(StopReason::MaxRuns))
        );
    }

    #[test]
    fn stops_at_max_time() {
        let mut plan = Sleeper::new(Duration::from_millis(5));
        let b = Budget {
            max_runs: 1000,
            min_runs: 1,
            max_time: Duration::from_millis(40),
            target_ci: Some(1e-9),
            ..budget()
        };
        let t = run(&mut plan, &b, None);
        assert_eq!(t.stopped, Some(StopReason::MaxTime));
        assert!(
            (8..=9).contains(&t.samples_ms.len()),
            "{}",
            t.samples_ms.len()
        );
    }

    /// Runs `timer` in turns of `slice` until done; returns the number of turns after the first.
    fn in_turns(plan: &mut Sleeper, b: &Budget, slice: Duration) -> (CellTimer, usize) {
        let mut timer = CellTimer::new();
        let (x, mut y) = (Tensor::zeros(vec![1]), Tensor::zeros(vec![1]));
        let mut turns = 0;
        while !timer
            .turn(plan, &x, &mut y, b, Some(slice), &AtomicBool::new(false))
            .unwrap()
        {
            turns += 1;
        }
        (timer, turns)
    }

    #[test]
    fn turns_resume_where_they_left_off_and_rewarm_short_runs() {
        // 1 ms runs in 60 ms turns: short next to the slice (under its tenth, 6 ms, even on a
        // loaded CI machine), so each later turn re-warms once.
        let mut plan = Sleeper::new(Duration::from_millis(1));
        let b = Budget {
            min_runs: 150,
            max_runs: 150,
            ..budget()
        };
        let (timer, turns) = in_turns(&mut plan, &b, Duration::from_millis(60));
        assert!(turns >= 2, "several turns were needed");
        assert_eq!(timer.samples_ms.len(), 150);
        assert_eq!(plan.runs, 2 + 150 + turns);
    }

    #[test]
    fn long_runs_are_not_rewarmed() {
        // 4 ms runs in 5 ms turns: a re-warm would double the cost, so there is none.
        let mut plan = Sleeper::new(Duration::from_millis(4));
        let b = Budget {
            min_runs: 6,
            max_runs: 6,
            ..budget()
        };
        let (timer, turns) = in_turns(&mut plan, &b, Duration::from_millis(5));
        assert!(turns >= 2);
        assert_eq!((timer.samples_ms.len(), plan.runs), (6, 2 + 6));
    }

    #[test]
    fn min_runs_win_over_max_time() {
        let mut plan = Sleeper::new(Duration::from_millis(3));
        let b = Budget {
            min_runs: 4,
            max_time: Duration::from_millis(1),
            ..budget()
        };
        let t = run(&mut plan, &b, None);
        assert_eq!(
            (t.samples_ms.len(), t.stopped),
            (4, Some(StopReason::MaxTime))
        );
    }

    #[test]
    fn an_interrupt_stops_at_once() {
        let mut plan = Sleeper::new(Duration::from_micros(10));
        let mut timer = CellTimer::new();
        let (x, mut y) = (Tensor::zeros(vec![1]), Tensor::zeros(vec![1]));
        let done = timer
            .turn(
                &mut plan,
                &x,
                &mut y,
                &budget(),
                None,
                &AtomicBool::new(true),
            )
            .unwrap();
        assert!(done && timer.stopped == Some(StopReason::Interrupted) && plan.runs == 0);
    }

    #[test]
    fn the_target_rule_uses_the_interval_of_the_median() {
        let b = Budget {
            target_ci: Some(0.02),
            min_runs: 6,
            ..budget()
        };
        let mut t = CellTimer::new();
        for ms in [10.0, 10.01, 10.02, 9.99, 9.98, 10.0, 10.01] {
            t.record(Duration::from_secs_f64(ms / 1e3));
        }
        assert_eq!(t.stop_reason(&b), Some(StopReason::TargetReached));
        let mut noisy = CellTimer::new();
        for ms in [10.0, 14.0, 6.0, 12.0, 8.0, 13.0, 7.0] {
            noisy.record(Duration::from_secs_f64(ms / 1e3));
        }
        assert_eq!(noisy.stop_reason(&b), None);
    }
}
