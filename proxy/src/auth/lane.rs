//! RSA work on the serving thread itself, one job between two polls of the network.
//!
//! Each serving runtime is one thread on one core. An RSA thread beside it shares that core:
//! every answer, upstream reply and new request then preempts one for the other, and a new
//! token costs a third more than the private operation alone (docs/performance.md, "RSA
//! lane"). Here the runtime's own lane task takes the queued jobs one at a time and yields to
//! the network after each: other clients' requests wait for at most one job, and no new token
//! pays a context switch. Threads outside a serving runtime (tests, library use) fall back to
//! the [`Workers`](super::workers::Workers) threads.

use std::cell::RefCell;
use std::future::Future;

use tokio::sync::mpsc;

use super::workers::{Job, QUEUE_PER_THREAD};

thread_local! {
    /// The lane of the runtime this thread drives, if it serves.
    static LANE: RefCell<Option<mpsc::Sender<Job>>> = const { RefCell::new(None) };
}

/// Why a job did not go to this thread's lane.
pub(crate) enum Refused {
    /// The lane's queue is full: too many new tokens at once on this core.
    Full,
    /// This thread has no lane (or its runtime is gone): the job comes back.
    NoLane(Job),
}

/// Makes this thread's runtime take RSA work on its own lane. Returns the lane's task: spawn
/// it on the same runtime. Once it ends, submissions fall back to the worker threads.
pub fn install() -> impl Future<Output = ()> + Send + 'static {
    let (sender, mut jobs) = mpsc::channel::<Job>(QUEUE_PER_THREAD);
    LANE.with(|lane| *lane.borrow_mut() = Some(sender));
    async move {
        while let Some(job) = jobs.recv().await {
            // A panic in one job (a bug, never input) must not end the lane; its waiter sees
            // its answer dropped.
            if let Ok(answer) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)) {
                answer();
            }
            // After the network: tokio defers a yielded task past the next poll of the driver.
            tokio::task::yield_now().await;
        }
    }
}

/// Queues `job` on this thread's lane.
pub(crate) fn submit(job: Job) -> Result<(), Refused> {
    LANE.with(|lane| match lane.borrow().as_ref() {
        None => Err(Refused::NoLane(job)),
        Some(sender) => sender.try_send(job).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => Refused::Full,
            mpsc::error::TrySendError::Closed(job) => Refused::NoLane(job),
        }),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::super::workers::{WorkerError, Workers};

    fn current() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn jobs_run_on_the_serving_thread() {
        let runtime = current();
        let workers = Workers::start(1);
        let here = std::thread::current().id();
        let ran_on = runtime.block_on(async {
            tokio::spawn(super::install());
            workers.run(|| std::thread::current().id()).await
        });
        assert_eq!(ran_on, Ok(here));
        // A thread without a lane still gets its answer, from a worker thread.
        let elsewhere =
            std::thread::spawn(move || current().block_on(workers.run(|| std::thread::current().id())))
                .join()
                .unwrap_or_else(|_| panic!("the thread panicked"));
        assert!(matches!(elsewhere, Ok(id) if id != here));
    }

    #[test]
    fn the_network_is_polled_between_two_jobs() {
        // Two jobs queued at once; the first makes a socket readable. The task waiting on that
        // socket must run between the jobs, not after both.
        let runtime = current();
        let workers = Workers::start(1);
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = |what: &'static str| {
            let order = Arc::clone(&order);
            move || order.lock().map(|mut o| o.push(what)).unwrap_or(())
        };
        let (mut writer, reader) = std::os::unix::net::UnixStream::pair().unwrap_or_else(|e| panic!("{e}"));
        reader.set_nonblocking(true).unwrap_or_else(|e| panic!("{e}"));
        runtime.block_on(async {
            let reader = tokio::net::UnixStream::from_std(reader).unwrap_or_else(|e| panic!("{e}"));
            let network = tokio::spawn({
                let log = log("network");
                async move {
                    let _ = reader.readable().await;
                    log();
                }
            });
            tokio::spawn(super::install());
            // Lets the reader register its interest and the lane wait for work.
            tokio::task::yield_now().await;
            let first = workers.submit({
                let log = log("job");
                move || {
                    let _ = std::io::Write::write_all(&mut writer, b"x");
                    log();
                }
            });
            let second = workers.submit(log("job"));
            let (Ok(first), Ok(second)) = (first, second) else { panic!("refused") };
            let _ = tokio::join!(first, second, network);
        });
        let order = order.lock().map(|o| o.clone()).unwrap_or_default();
        assert_eq!(order, ["job", "network", "job"]);
    }

    #[test]
    fn a_full_lane_refuses_and_a_panicking_job_loses_only_itself() {
        let runtime = current();
        let workers = Workers::start(1);
        let done = Arc::new(AtomicUsize::new(0));
        runtime.block_on(async {
            tokio::spawn(super::install());
            // Nothing runs until this task yields: the lane fills, then refuses.
            let queued: Vec<_> = (0..super::QUEUE_PER_THREAD)
                .map(|_| {
                    let done = Arc::clone(&done);
                    workers.submit(move || done.fetch_add(1, Ordering::Relaxed))
                })
                .collect();
            assert!(queued.iter().all(Result::is_ok));
            assert_eq!(workers.submit(|| 0).err(), Some(WorkerError::Busy));
            for job in queued.into_iter().flatten() {
                assert!(job.await.is_ok());
            }
            assert_eq!(workers.run(|| -> u8 { panic!("bug") }).await, Err(WorkerError::Lost));
            assert_eq!(workers.run(|| 7).await, Ok(7));
        });
        assert_eq!(done.load(Ordering::Relaxed), super::QUEUE_PER_THREAD);
    }
}
