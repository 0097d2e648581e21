//! The log of failed attempts, kept readable through an outage: while a team's service is
//! down every notification fails, again at each retry, and a WARN line each would bury the
//! log. At most one failure per [`INTERVAL`] is logged at WARN, with how many were not
//! (`suppressed`, as the refusals' lines say it); the others go to DEBUG. The first success
//! after suppressed failures says how many there were.

use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// At most one WARN for failed attempts this often, per receiver.
pub(crate) const INTERVAL: Duration = Duration::from_secs(10);

/// One receiver's failed attempts, for its log.
#[derive(Debug)]
pub(crate) struct Failures {
    epoch: Instant,
    /// The interval of the last WARN, counted from 1 (0: never).
    logged_in: AtomicU64,
    /// Failures logged at DEBUG only since the last WARN.
    suppressed: AtomicU64,
}

impl Default for Failures {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            logged_in: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }
}

impl Failures {
    /// Whether this failure gets the WARN line of its interval, and how many were suppressed
    /// before it; `None` (and counted) when another had it.
    fn turn(&self) -> Option<u64> {
        let now = (self.epoch.elapsed().as_secs() / INTERVAL.as_secs()) + 1;
        let last = self.logged_in.load(Ordering::Relaxed);
        let mine = last < now
            && self
                .logged_in
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if mine {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// A failed attempt that is retried after `wait`.
    pub(crate) fn retrying(&self, err: &dyn Display, wait: Duration) {
        match self.turn() {
            Some(suppressed) => tracing::warn!(
                error = %err,
                ?wait,
                suppressed,
                "handler failed; trying again after the wait"
            ),
            None => {
                tracing::debug!(error = %err, ?wait, "handler failed; trying again after the wait")
            }
        }
    }

    /// A failed attempt answered 503, for the sender to retry.
    pub(crate) fn answered_503(&self, err: &dyn Display) {
        match self.turn() {
            Some(suppressed) => tracing::warn!(
                error = %err,
                suppressed,
                "handler failed; answering 503 so that the sender retries"
            ),
            None => {
                tracing::debug!(error = %err, "handler failed; answering 503 so that the sender retries")
            }
        }
    }

    /// A handled notification: after failures suppressed from the WARN lines, says how many,
    /// once.
    pub(crate) fn succeeded(&self) {
        if self.suppressed.load(Ordering::Relaxed) == 0 {
            return;
        }
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        if suppressed > 0 {
            tracing::info!(
                suppressed,
                "handler succeeded again, after failed attempts logged at DEBUG only"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_interval_and_the_rest_counted() {
        let failures = Failures::default();
        assert_eq!(failures.turn(), Some(0));
        for _ in 0..5 {
            assert_eq!(failures.turn(), None);
        }
        assert_eq!(failures.suppressed.load(Ordering::Relaxed), 5);
        // The next interval: the next failure warns and says how many were suppressed.
        failures.logged_in.fetch_sub(1, Ordering::Relaxed);
        assert_eq!(failures.turn(), Some(5));
        assert_eq!(failures.turn(), None);
        failures.succeeded();
        assert_eq!(failures.suppressed.load(Ordering::Relaxed), 0);
    }
}
