//! The threads that do RSA work (a cache miss: verify, then one private-key operation).
//!
//! Not tokio's blocking pool: that one grows to hundreds of threads, and a burst of new tokens
//! then gets as many runnable threads as it has requests, each with the event loop's share of
//! the CPU, so every other client's cache hits wait behind them. Here a fixed set of threads
//! (one per core the process may run on) takes jobs from a bounded queue: a burst of new tokens
//! queues, the event loop keeps its share of the CPU, and when the queue is full a new token
//! gets 503 at once instead of an unbounded wait.
//!
//! The workers run at the event loop's priority. A lower one (nice +5, measured with
//! `bench/run --only cold`) cost a fifth of the new tokens per second at 1024 bits, every
//! wake-up of the event loop preempting the RSA thread, and did not improve other clients' p99.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// Jobs waiting per worker thread before new ones are refused.
const QUEUE_PER_THREAD: usize = 256;

/// Why a job did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerError {
    /// The queue is full: too many new tokens at once.
    Busy,
    /// The job panicked or the pool is gone.
    Lost,
}

/// A fixed set of threads behind a bounded queue.
#[derive(Debug)]
pub struct Workers {
    queue: SyncSender<Job>,
}

impl Workers {
    /// The process-wide pool, started on first use.
    pub fn global() -> &'static Self {
        static POOL: OnceLock<Workers> = OnceLock::new();
        POOL.get_or_init(|| {
            let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
            Self::start(threads)
        })
    }

    /// Starts `threads` workers.
    pub fn start(threads: usize) -> Self {
        let threads = threads.max(1);
        let (queue, jobs) = mpsc::sync_channel::<Job>(threads * QUEUE_PER_THREAD);
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..threads {
            let jobs = Arc::clone(&jobs);
            let spawned =
                std::thread::Builder::new().name(format!("route-rsa-{i}")).spawn(move || run(&jobs));
            if let Err(err) = spawned {
                tracing::error!(error = %err, "cannot start an RSA worker thread");
            }
        }
        Self { queue }
    }

    /// Runs `job` on a worker and waits for its answer.
    pub async fn run<T, F>(&self, job: F) -> Result<T, WorkerError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.submit(job)?.await.map_err(|_| WorkerError::Lost)
    }

    /// Queues `job`; its answer arrives on the receiver.
    pub fn submit<T, F>(&self, job: F) -> Result<oneshot::Receiver<T>, WorkerError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The waiter may have gone (client disconnected): nothing to tell it.
            let _ = tx.send(job());
        });
        match self.queue.try_send(job) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(WorkerError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(WorkerError::Lost),
        }
    }
}

fn run(jobs: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job, never while one runs.
        let job = match jobs.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        // A panic in one job (a bug, never input: the RSA code returns errors) must not take
        // the thread with it; its waiter sees `Lost`.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_and_a_full_queue_refuses() {
        let workers = Workers::start(1);
        assert_eq!(workers.run(|| 40 + 2).await, Ok(42));
        // Hold the only worker, fill the queue behind it, and one more is refused.
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let blocker = workers.submit(move || {
            let _ = started_tx.send(());
            let _ = held.recv();
        });
        assert!(started.recv().is_ok());
        let queued: Vec<_> = (0..QUEUE_PER_THREAD).map(|_| workers.submit(|| ())).collect();
        assert!(queued.iter().all(Result::is_ok));
        assert_eq!(workers.submit(|| ()).err(), Some(WorkerError::Busy));
        release.send(()).ok();
        if let Ok(blocker) = blocker {
            assert_eq!(blocker.await, Ok(()));
        } else {
            panic!("the first job was refused");
        }
        for job in queued.into_iter().flatten() {
            assert_eq!(job.await, Ok(()));
        }
    }

    #[tokio::test]
    async fn a_panicking_job_loses_only_itself() {
        let workers = Workers::start(1);
        assert_eq!(workers.run(|| -> u8 { panic!("bug") }).await, Err(WorkerError::Lost));
        assert_eq!(workers.run(|| 7).await, Ok(7));
    }
}
