//! Where RSA work runs (a cache miss: verify, then one private-key operation): on the serving
//! thread's own lane when it has one ([`super::lane`]), else on a fixed set of threads, started
//! at the first such job.
//!
//! Not tokio's blocking pool: that one grows to hundreds of threads, and a burst of new tokens
//! then gets as many runnable threads as it has requests, each with the event loop's share of
//! the CPU, so every other client's cache hits wait behind them. Here a fixed set of threads
//! takes jobs from a bounded queue: a burst of new tokens queues, the event loop keeps its
//! share of the CPU, and when the queue is full a new token gets 503 at once instead of an
//! unbounded wait.
//!
//! Answers go back in batches when jobs are short (1024-bit keys) and more are queued: one
//! wake-up of the event loop for several new tokens instead of one each (see [`BATCH_WAIT`]);
//! an answer waits at most half a millisecond for the others. The workers run at the event
//! loop's priority. The measurements behind these choices are in docs/performance.md
//! ("RSA workers").

use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, OnceLock, TryLockError};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use super::lane;

/// What a worker runs: the RSA work, returning how to hand its answer to the waiter.
pub(crate) type Job = Box<dyn FnOnce() -> Answer + Send>;
/// Hands one answer to its waiter (a oneshot send: wakes the waiting task).
type Answer = Box<dyn FnOnce() + Send>;

/// Jobs waiting per worker thread (or lane) before new ones are refused.
pub(crate) const QUEUE_PER_THREAD: usize = 256;

/// How long a finished answer may wait for the ones after it, so that the event loop is woken
/// once for several. Each wake-up from this thread preempts it (two context switches, about as
/// much as the rest of a 1024-bit token's request path); answers going back together cost one.
/// Only short jobs batch: one that would take the oldest answer past this goes after the flush.
const BATCH_WAIT: Duration = Duration::from_micros(500);

/// Answers at most in one batch.
const BATCH_MAX: usize = 32;

/// How much RSA work a worker does before it offers the core to the event loop. Woken by the
/// network while a worker runs, the event loop may otherwise wait out the worker's time slice
/// (milliseconds). Other clients' latency wins over new tokens per second: new tokens are a
/// login's, cache hits every request's (figures: docs/performance.md, "RSA workers").
const YIELD_EVERY: Duration = Duration::from_micros(500);

/// Why a job did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerError {
    /// The queue is full: too many new tokens at once.
    Busy,
    /// The job panicked or the pool is gone.
    Lost,
}

/// A job and the runtime of its waiter, where a batch of answers is handed out.
struct Queued {
    job: Job,
    runtime: Option<Handle>,
}

/// Serving threads' lanes, and a fixed set of threads behind a bounded queue for the others.
#[derive(Debug)]
pub struct Workers {
    threads: usize,
    queue: OnceLock<SyncSender<Queued>>,
}

impl Workers {
    /// Workers with `threads` threads, started at the first job that does not run on a lane
    /// (a caller outside a serving runtime, or a key too large for one).
    pub fn start(threads: usize) -> Self {
        Self { threads: threads.max(1), queue: OnceLock::new() }
    }

    fn queue(&self) -> &SyncSender<Queued> {
        self.queue.get_or_init(|| {
            let (queue, jobs) = mpsc::sync_channel::<Queued>(self.threads * QUEUE_PER_THREAD);
            let jobs = Arc::new(Mutex::new(jobs));
            for i in 0..self.threads {
                let jobs = Arc::clone(&jobs);
                let spawned =
                    std::thread::Builder::new().name(format!("route-rsa-{i}")).spawn(move || run(&jobs));
                if let Err(err) = spawned {
                    tracing::error!(error = %err, "cannot start an RSA worker thread");
                }
            }
            queue
        })
    }

    /// Runs `job` on this thread's lane if it has one, else on a worker thread, and waits for
    /// its answer.
    pub async fn run<T, F>(&self, job: F) -> Result<T, WorkerError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.submit(job)?.await.map_err(|_| WorkerError::Lost)
    }

    /// Runs `job` on a worker thread, never on the serving thread, and waits for its answer.
    pub async fn run_on_threads<T, F>(&self, job: F) -> Result<T, WorkerError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.queue_job(job, false)?.await.map_err(|_| WorkerError::Lost)
    }

    /// Queues `job` on this thread's lane if it has one, else for a worker thread; its answer
    /// arrives on the receiver.
    pub fn submit<T, F>(&self, job: F) -> Result<oneshot::Receiver<T>, WorkerError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.queue_job(job, true)
    }

    fn queue_job<T, F>(&self, job: F, here: bool) -> Result<oneshot::Receiver<T>, WorkerError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let value = job();
            Box::new(move || {
                // The waiter may have gone (client disconnected): nothing to tell it.
                let _ = tx.send(value);
            })
        });
        let job = if here {
            match lane::submit(job) {
                Ok(()) => return Ok(rx),
                Err(lane::Refused::Full) => return Err(WorkerError::Busy),
                Err(lane::Refused::NoLane(job)) => job,
            }
        } else {
            job
        };
        let queued = Queued { job, runtime: Handle::try_current().ok() };
        match self.queue().try_send(queued) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(WorkerError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(WorkerError::Lost),
        }
    }
}

/// Answers held back to go to the event loop together. Dropping a batch hands them out, so
/// none is lost whether the task carrying it runs or its runtime is gone.
struct Batch(Vec<Answer>);

impl Drop for Batch {
    fn drop(&mut self) {
        for answer in self.0.drain(..) {
            answer();
        }
    }
}

/// The answers a worker holds, since when, and where to send them.
struct Held {
    answers: Vec<Answer>,
    oldest: Instant,
    runtime: Option<Handle>,
    /// How long the last job took: the guess for the next.
    last_job: Duration,
}

impl Held {
    /// Hands the answers out: one directly, several in one task on the waiters' runtime (one
    /// wake-up of the event loop, then each waiter is woken from inside it).
    fn flush(&mut self) {
        let batch = Batch(std::mem::take(&mut self.answers));
        match (batch.0.len(), self.runtime.take()) {
            (0 | 1, _) | (_, None) => drop(batch),
            (_, Some(runtime)) => {
                runtime.spawn(async move { drop(batch) });
            }
        }
    }

    /// Whether the next job should wait for a flush first.
    fn full(&self) -> bool {
        self.answers.len() >= BATCH_MAX || self.oldest.elapsed() + self.last_job > BATCH_WAIT
    }
}

fn run(jobs: &Mutex<Receiver<Queued>>) {
    let mut held =
        Held { answers: Vec::new(), oldest: Instant::now(), runtime: None, last_job: Duration::ZERO };
    let mut last_yield = Instant::now();
    loop {
        if !held.answers.is_empty() && held.full() {
            held.flush();
        }
        // The lock is held only while taking the next job, never while one runs. With answers
        // held, an empty queue sends them at once: batching never waits for new work. A lock
        // held by another worker means it waits for a job: the queue is empty.
        let next = if held.answers.is_empty() {
            match jobs.lock() {
                Ok(receiver) => receiver.recv().map_err(|_| TryRecvError::Disconnected),
                Err(_) => Err(TryRecvError::Disconnected),
            }
        } else {
            match jobs.try_lock() {
                Ok(receiver) => receiver.try_recv(),
                Err(TryLockError::WouldBlock) => Err(TryRecvError::Empty),
                Err(TryLockError::Poisoned(_)) => Err(TryRecvError::Disconnected),
            }
        };
        let queued = match next {
            Ok(queued) => queued,
            Err(TryRecvError::Empty) => {
                held.flush();
                continue;
            }
            Err(TryRecvError::Disconnected) => {
                held.flush();
                return;
            }
        };
        let started = Instant::now();
        // A panic in one job (a bug, never input: the RSA code returns errors) must not take
        // the thread with it; its waiter sees `Lost`.
        let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(queued.job));
        let finished = Instant::now();
        held.last_job = finished - started;
        if finished - last_yield >= YIELD_EVERY {
            std::thread::yield_now();
            last_yield = Instant::now();
        }
        if let Ok(answer) = answer {
            if held.answers.is_empty() {
                held.oldest = finished;
            }
            held.answers.push(answer);
            if held.runtime.is_none() {
                held.runtime = queued.runtime;
            }
        }
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
    async fn a_burst_of_short_jobs_is_answered_in_full() {
        let workers = Workers::start(1);
        let waiting: Vec<_> = (0..200u32).map(|i| workers.submit(move || i * 2)).collect();
        for (i, waiter) in waiting.into_iter().enumerate() {
            let Ok(waiter) = waiter else { panic!("job {i} refused") };
            assert_eq!(waiter.await, Ok(u32::try_from(i).unwrap_or(0) * 2));
        }
    }

    #[tokio::test]
    async fn an_answer_never_waits_for_the_next_job() {
        // With two workers, one waits for jobs holding the queue's lock while the other
        // finishes: that answer must go out at once, not when another job frees the lock.
        let workers = Workers::start(2);
        for i in 0..20 {
            let answer =
                tokio::time::timeout(std::time::Duration::from_secs(5), workers.run(move || i)).await;
            assert_eq!(answer, Ok(Ok(i)), "job {i}");
        }
    }

    #[test]
    fn answers_arrive_when_the_runtime_of_their_batch_is_gone() {
        let workers = Workers::start(1);
        let current = || tokio::runtime::Builder::new_current_thread().enable_all().build();
        let (Ok(gone), Ok(alive)) = (current(), current()) else { panic!("no runtime") };
        let (release, held) = std::sync::mpsc::channel::<()>();
        // The first job holds the worker; the next two queue behind it and, being short, go
        // back in one batch, carried by a task on the runtime of the first of them.
        let (first, second) =
            gone.block_on(async { (workers.submit(move || held.recv().is_ok()), workers.submit(|| 2)) });
        let third = alive.block_on(async { workers.submit(|| 3) });
        drop((first, second, gone));
        release.send(()).ok();
        let Ok(third) = third else { panic!("refused") };
        assert_eq!(alive.block_on(third), Ok(3));
    }

    #[tokio::test]
    async fn a_panicking_job_loses_only_itself() {
        let workers = Workers::start(1);
        assert_eq!(workers.run(|| -> u8 { panic!("bug") }).await, Err(WorkerError::Lost));
        assert_eq!(workers.run(|| 7).await, Ok(7));
    }
}
