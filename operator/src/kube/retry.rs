//! When a watcher retries, and when it starts over from a list.
//!
//! kube-runtime's watcher resumes a failed watch at the last resourceVersion it saw and relists
//! only when the server answers 410 Gone. Some servers answer a watch resumed at a compacted
//! revision with another error on every retry (kube-apiserver 1.20 without the watch cache
//! answers `500 etcd event received with PrevKv=nil`): that watcher would retry forever at the
//! same revision and never see a change. So after [`RELIST_AFTER`] consecutive failures the
//! watcher is replaced by a new one, which lists first (one object, by name: a cheap request).
//!
//! The waits are kube-runtime's [`DefaultBackoff`] (client-go's: 0.8 s doubling to 30 s, with
//! jitter), kept across the restart and reset only by a success (a list completed or an event
//! received), so a server that stays down is asked no more often than kube-runtime alone would.

use std::time::Duration;

use kube::runtime::utils::Backoff as _;
use kube::runtime::watcher::DefaultBackoff;

/// Consecutive failures after which a watcher starts over from a list. One failure is often
/// transient (a dropped connection, a restarting server): the watch resumes. Three take at
/// least 0.8 + 1.6 + 3.2 s of waits.
pub(crate) const RELIST_AFTER: u32 = 3;

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Next {
    /// How long to wait before the next attempt.
    pub(crate) wait: Duration,
    /// Whether the next attempt starts over from a list.
    pub(crate) relist: bool,
    /// Failures in a row so far, this one included.
    pub(crate) failures: u32,
}

/// The retry state of one watcher.
#[derive(Default)]
pub(crate) struct Retry {
    backoff: DefaultBackoff,
    failures: u32,
}

impl Retry {
    /// The watcher failed again.
    pub(crate) fn failed(&mut self) -> Next {
        self.failures += 1;
        // DefaultBackoff never gives up; 30 s, its longest wait, should it ever.
        let wait = self.backoff.next().unwrap_or(Duration::from_secs(30));
        Next { wait, relist: self.failures.is_multiple_of(RELIST_AFTER), failures: self.failures }
    }

    /// The watcher listed or received an event: the next failure starts afresh.
    pub(crate) fn succeeded(&mut self) {
        if self.failures > 0 {
            self.failures = 0;
            self.backoff.reset();
        }
    }

    /// Failures in a row so far.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relists_after_every_third_failure_in_a_row() {
        let mut retry = Retry::default();
        let relists: Vec<bool> = (0..7).map(|_| retry.failed().relist).collect();
        assert_eq!(relists, [false, false, true, false, false, true, false]);
        retry.succeeded();
        assert_eq!(retry.failures(), 0);
        let relists: Vec<bool> = (0..3).map(|_| retry.failed().relist).collect();
        assert_eq!(relists, [false, false, true]);
    }

    #[test]
    fn waits_keep_growing_across_a_relist_and_restart_after_a_success() {
        let mut retry = Retry::default();
        let waits: Vec<Duration> = (0..8).map(|_| retry.failed().wait).collect();
        // 0.8 s doubling, jitter adding less than as much again, up to 30 s.
        let bases = [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0];
        for (wait, base) in waits.iter().zip(bases) {
            let secs = wait.as_secs_f64();
            assert!(
                (base * 0.99..base * 2.0 + 0.01).contains(&secs),
                "waited {secs} s, base {base} s: {waits:?}"
            );
        }
        retry.succeeded();
        let first = retry.failed().wait.as_secs_f64();
        assert!(
            (0.79..1.61).contains(&first),
            "after a success the first wait is 0.8 s again, not {first} s"
        );
    }
}
