//! The log of failed attempts, kept readable through an outage: while a team's service is
//! down every notification fails, again at each retry, and a WARN line each would bury the
//! log. The first failure is a WARN; later ones within [`INTERVAL`] are logged at DEBUG and
//! counted, and the next WARN (or the first success after them) says how many there were.

use std::fmt::Display;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// At most one WARN per failure site this often.
pub(crate) const INTERVAL: Duration = Duration::from_secs(10);

/// One receiver's failed attempts, for its log.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    /// Failures logged at DEBUG since the last WARN.
    quiet: AtomicU64,
    /// When the last WARN was written.
    warned_at: Mutex<Option<Instant>>,
}

impl Failures {
    /// Whether this failure gets a WARN line, and how many were logged at DEBUG before it;
    /// `None` (and counted) when a WARN was written less than [`INTERVAL`] ago.
    fn warn_now(&self) -> Option<u64> {
        let mut warned_at = super::shared::lock(&self.warned_at);
        if warned_at.is_some_and(|at| at.elapsed() < INTERVAL) {
            self.quiet.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *warned_at = Some(Instant::now());
        Some(self.quiet.swap(0, Ordering::Relaxed))
    }

    /// A failed attempt that is retried after `wait`.
    pub(crate) fn retrying(&self, err: &dyn Display, wait: Duration) {
        match self.warn_now() {
            Some(0) => {
                tracing::warn!(error = %err, ?wait, "handler failed; trying again after the wait")
            }
            Some(quiet) => tracing::warn!(
                error = %err,
                ?wait,
                also_failed = quiet,
                "handler failed; trying again after the wait ({quiet} more failures since the last warning, logged at DEBUG)"
            ),
            None => {
                tracing::debug!(error = %err, ?wait, "handler failed; trying again after the wait")
            }
        }
    }

    /// A failed attempt answered 503, for the sender to retry.
    pub(crate) fn answered_503(&self, err: &dyn Display) {
        match self.warn_now() {
            Some(0) => {
                tracing::warn!(error = %err, "handler failed; answering 503 so that the sender retries")
            }
            Some(quiet) => tracing::warn!(
                error = %err,
                also_failed = quiet,
                "handler failed; answering 503 so that the sender retries ({quiet} more failures since the last warning, logged at DEBUG)"
            ),
            None => {
                tracing::debug!(error = %err, "handler failed; answering 503 so that the sender retries")
            }
        }
    }

    /// A handled notification: after failures logged at DEBUG alone, says how many, once.
    pub(crate) fn succeeded(&self) {
        if self.quiet.load(Ordering::Relaxed) == 0 {
            return;
        }
        let quiet = self.quiet.swap(0, Ordering::Relaxed);
        if quiet > 0 {
            tracing::info!(
                also_failed = quiet,
                "handler succeeded again, after {quiet} more failures since the last warning (logged at DEBUG)"
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
        assert_eq!(failures.warn_now(), Some(0));
        for _ in 0..5 {
            assert_eq!(failures.warn_now(), None);
        }
        assert_eq!(failures.quiet.load(Ordering::Relaxed), 5);
        // The interval over: the next failure warns and says how many came quietly.
        *super::super::shared::lock(&failures.warned_at) = Instant::now().checked_sub(INTERVAL);
        assert_eq!(failures.warn_now(), Some(5));
        assert_eq!(failures.warn_now(), None);
        failures.succeeded();
        assert_eq!(failures.quiet.load(Ordering::Relaxed), 0);
    }
}
