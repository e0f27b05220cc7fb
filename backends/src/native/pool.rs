//! The native backend's persistent thread pool: workers spin briefly, then park, waiting for
//! the next op; `run` hands every thread (the caller is thread 0) the same job with its index
//! and returns when all have finished. Dispatching a job allocates nothing.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

/// How many times an idle worker polls for new work before it parks.
const SPINS_BEFORE_PARK: u32 = 1 << 16;

type JobRef = *const (dyn Fn(usize) + Sync);

/// The pool's state. The counters the threads spin on sit on cache-line pairs of their own
/// (128 bytes: the adjacent-line prefetcher moves lines in pairs): the caller writes `epoch`,
/// the workers write `pending`, and neither may share a line with each other or with whatever
/// the allocator puts next to the pool (plan data both threads read), or every poll would pull
/// that line away from the thread using it, by an amount that depends on where memory lands.
#[repr(C, align(128))]
struct Shared {
    epoch: Padded<AtomicU64>,
    pending: Padded<AtomicUsize>,
    job: UnsafeCell<Option<JobRef>>,
    panicked: AtomicBool,
    shutdown: AtomicBool,
}

/// A value alone on a 128-byte line pair.
#[repr(C, align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

// The job cell is written only by the caller of `run` before it publishes a new epoch (Release)
// and read by workers after they observe it (Acquire); `run` waits until every worker is done
// before the job (a borrowed closure) goes out of scope.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

/// A fixed set of worker threads, plus the calling thread.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

/// A worker panicked while running a job.
#[derive(Debug)]
pub struct WorkerPanicked;

impl ThreadPool {
    /// A pool that runs jobs on `threads` threads in all (the caller and `threads - 1` workers).
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            job: UnsafeCell::new(None),
            epoch: Padded(AtomicU64::new(0)),
            pending: Padded(AtomicUsize::new(0)),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
        });
        let workers = (1..threads.max(1))
            .map(|index| {
                let shared = Arc::clone(&shared);
                thread::Builder::new()
                    .name(format!("onebench-native-{index}"))
                    .spawn(move || worker(&shared, index))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self { shared, workers })
    }

    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `job(i)` for every thread index i in 0..threads, the caller taking index 0, and
    /// returns when all are done.
    pub fn run(&self, job: &(dyn Fn(usize) + Sync)) -> Result<(), WorkerPanicked> {
        if self.workers.is_empty() {
            job(0);
            return Ok(());
        }
        let s = &*self.shared;
        // Erase the borrow's lifetime: the workers drop their use of it before `pending` hits 0.
        let erased: JobRef = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), JobRef>(job) };
        unsafe { *s.job.get() = Some(erased) };
        s.pending.store(self.workers.len(), Ordering::Relaxed);
        s.epoch.fetch_add(1, Ordering::Release);
        for w in &self.workers {
            w.thread().unpark();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| job(0)));
        let mut spins = 0u32;
        while s.pending.load(Ordering::Acquire) != 0 {
            if spins < SPINS_BEFORE_PARK {
                std::hint::spin_loop();
                spins += 1;
            } else {
                thread::yield_now();
            }
        }
        unsafe { *s.job.get() = None };
        if let Err(payload) = mine {
            std::panic::resume_unwind(payload);
        }
        if s.panicked.swap(false, Ordering::Relaxed) {
            return Err(WorkerPanicked);
        }
        Ok(())
    }
}

fn worker(s: &Shared, index: usize) {
    let mut seen = 0u64;
    loop {
        let mut spins = 0u32;
        loop {
            let epoch = s.epoch.load(Ordering::Acquire);
            if epoch != seen {
                seen = epoch;
                break;
            }
            if spins < SPINS_BEFORE_PARK {
                std::hint::spin_loop();
                spins += 1;
            } else {
                thread::park();
            }
        }
        if s.shutdown.load(Ordering::Acquire) {
            return;
        }
        if let Some(job) = unsafe { *s.job.get() } {
            let job = unsafe { &*job };
            if catch_unwind(AssertUnwindSafe(|| job(index))).is_err() {
                s.panicked.store(true, Ordering::Relaxed);
            }
        }
        s.pending.fetch_sub(1, Ordering::Release);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.epoch.fetch_add(1, Ordering::Release);
        for w in self.workers.drain(..) {
            w.thread().unpark();
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_index_runs_once_per_job() {
        let pool = ThreadPool::new(3).unwrap();
        let counts: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
        for _ in 0..1000 {
            pool.run(&|i| {
                counts[i].fetch_add(1, Ordering::Relaxed);
            })
            .unwrap();
        }
        let counts: Vec<usize> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(counts, vec![1000, 1000, 1000]);
    }

    #[test]
    fn the_spun_on_counters_have_line_pairs_of_their_own() {
        let pool = ThreadPool::new(2).unwrap();
        let s = &*pool.shared;
        let at = |p: *const u8| p as usize;
        let (epoch, pending) = (
            at(&s.epoch as *const _ as _),
            at(&s.pending as *const _ as _),
        );
        assert_eq!(epoch % 128, 0);
        assert_eq!(pending % 128, 0);
        assert!(pending - epoch >= 128);
        assert!(at(&s.job as *const _ as _) - pending >= 128);
    }

    #[test]
    fn work_runs_on_distinct_threads() {
        let pool = ThreadPool::new(2).unwrap();
        let ids = std::sync::Mutex::new(Vec::new());
        pool.run(&|_| ids.lock().unwrap().push(thread::current().id()))
            .unwrap();
        let ids = ids.into_inner().unwrap();
        assert_eq!(ids.len(), 2);
        assert_ne!(ids[0], ids[1]);
    }

    #[test]
    fn a_panicking_worker_is_reported_not_hung() {
        let pool = ThreadPool::new(2).unwrap();
        let result = pool.run(&|i| {
            if i == 1 {
                panic!("worker fails on purpose");
            }
        });
        assert!(result.is_err());
        // The pool still works afterwards.
        assert!(pool.run(&|_| {}).is_ok());
    }
}
