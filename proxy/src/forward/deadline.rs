//! Upstream response deadlines from timers kept per serving thread.
//!
//! A fresh tokio timer per request is inserted into the timer wheel on its first poll and
//! taken out when dropped, under the wheel's lock: some 1,200 instructions of a cache hit's
//! 44,000. A kept timer whose deadline only moves later is re-armed by one atomic store
//! (tokio moves it in the wheel only when the old deadline comes round), so each serving
//! thread keeps a few and lends them out. Outside a serving thread, a timer is made per use.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Timers kept per serving thread: about the requests one thread has waiting upstream at once.
const KEPT: usize = 256;

type Timer = Pin<Box<Sleep>>;

thread_local! {
    /// This thread's kept timers; `None` unless a serving runtime runs here ([`keep`]).
    static KEPT_TIMERS: RefCell<Option<Vec<Timer>>> = const { RefCell::new(None) };
}

/// Keeps timers on this thread until the guard drops. The guard must drop before the runtime
/// the timers belong to: a kept timer polled on another runtime would be one of a dead driver.
#[must_use = "timers are kept while the guard lives"]
pub struct Kept(());

pub fn keep() -> Kept {
    KEPT_TIMERS.with(|kept| *kept.borrow_mut() = Some(Vec::new()));
    Kept(())
}

impl Drop for Kept {
    fn drop(&mut self) {
        let _ = KEPT_TIMERS.try_with(|kept| kept.borrow_mut().take());
    }
}

/// A deadline `after` from now: completes when it passes.
pub struct Deadline {
    timer: Option<Timer>,
}

impl Deadline {
    pub fn after(after: Duration) -> Self {
        let at = Instant::now() + after;
        let kept = KEPT_TIMERS.try_with(|kept| kept.borrow_mut().as_mut().and_then(Vec::pop)).ok().flatten();
        let timer = match kept {
            Some(mut timer) => {
                timer.as_mut().reset(at);
                timer
            }
            None => Box::pin(tokio::time::sleep_until(at)),
        };
        Self { timer: Some(timer) }
    }
}

impl Future for Deadline {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.timer.as_mut() {
            Some(timer) => timer.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        let Some(timer) = self.timer.take() else { return };
        // A timer that fired has left the wheel: re-arming it would cost a fresh one's insert.
        if timer.is_elapsed() {
            return;
        }
        let _ = KEPT_TIMERS.try_with(|kept| {
            if let Some(kept) = kept.borrow_mut().as_mut()
                && kept.len() < KEPT
            {
                kept.push(timer);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept_count() -> usize {
        KEPT_TIMERS.with(|kept| kept.borrow().as_ref().map_or(0, Vec::len))
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_timer_keeps_its_new_deadline() {
        let _kept = keep();
        // Armed for 1 s and polled (in the wheel), then dropped early: kept.
        let waited =
            tokio::time::timeout(Duration::from_millis(10), Deadline::after(Duration::from_secs(1))).await;
        assert!(waited.is_err());
        assert_eq!(kept_count(), 1);
        // Re-armed for 10 s: not at the old 1 s, but at 10 s.
        let started = Instant::now();
        let mut later = Deadline::after(Duration::from_secs(10));
        assert_eq!(kept_count(), 0, "the kept timer was not reused");
        let early = tokio::time::timeout(Duration::from_secs(5), &mut later).await;
        assert!(early.is_err(), "fired at the kept timer's previous deadline");
        later.await;
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        // A timer that fired is not kept.
        assert_eq!(kept_count(), 0);
        // A kept timer armed far out, then for less: it fires at the nearer deadline.
        let waited =
            tokio::time::timeout(Duration::from_millis(10), Deadline::after(Duration::from_secs(3600))).await;
        assert!(waited.is_err());
        assert_eq!(kept_count(), 1);
        let started = Instant::now();
        Deadline::after(Duration::from_secs(2)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn without_kept_timers_a_deadline_still_passes() {
        let started = Instant::now();
        Deadline::after(Duration::from_millis(1500)).await;
        assert_eq!(started.elapsed(), Duration::from_millis(1500));
        assert_eq!(kept_count(), 0);
    }
}
