//! How a failed handler is retried.

use std::time::Duration;

/// How the workers retry a handler that failed, with exponential backoff.
///
/// The default retries 3 times, waiting 1 s, then 2 s, then 4 s (doubling, at most 60 s).
/// After the last retry the notification goes to the [`OnFailed`](crate::OnFailed) hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    retry_for: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new(3)
    }
}

impl RetryPolicy {
    /// Retries a failed attempt up to `max_retries` times (so `max_retries + 1` attempts).
    pub fn new(max_retries: u32) -> Self {
        Self {
            max_retries,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            retry_for: None,
        }
    }

    /// Retries for `retry_for` after the notification was received, whatever the number of
    /// attempts: the relay's policy. See [`retry_for`](Self::retry_for).
    pub fn for_duration(retry_for: Duration) -> Self {
        Self::new(u32::MAX).retry_for(retry_for)
    }

    /// A deadline beside the count: no attempt starts after `retry_for` has passed since the
    /// notification was received, and the last wait is cut short so that one attempt comes
    /// at the deadline. A notification becomes a dead letter after an attempt at or past it
    /// (or after the last retry the count allows, whichever comes first).
    #[must_use]
    pub fn retry_for(mut self, retry_for: Duration) -> Self {
        self.retry_for = Some(retry_for);
        self
    }

    /// The deadline set by [`retry_for`](Self::retry_for), if any.
    pub fn deadline(&self) -> Option<Duration> {
        self.retry_for
    }

    /// When the attempt after failed attempt `attempt` should start, for a notification
    /// received at `received_at` whose attempt failed at `now` (`asked`: the wait the handler
    /// asked for, instead of the backoff); `None` when there is to be no next attempt (the
    /// count is spent, or the deadline had passed when this attempt failed).
    pub fn next_attempt(
        &self,
        attempt: u32,
        received_at: std::time::SystemTime,
        now: std::time::SystemTime,
        asked: Option<Duration>,
    ) -> Option<std::time::SystemTime> {
        if attempt > self.max_retries {
            return None;
        }
        let wait = asked.unwrap_or_else(|| self.backoff(attempt));
        // A wait past what a time can hold is "as late as can be", never "now".
        let next = now
            .checked_add(wait)
            .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
            .unwrap_or(now);
        match self
            .retry_for
            .and_then(|limit| received_at.checked_add(limit))
        {
            Some(deadline) if now >= deadline => None,
            Some(deadline) => Some(next.min(deadline)),
            None => Some(next),
        }
    }

    /// One attempt, no retry.
    pub fn never() -> Self {
        Self::new(0)
    }

    /// The wait before the first retry; it doubles for each retry after that.
    #[must_use]
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The longest wait between two attempts.
    #[must_use]
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// The number of retries after the first attempt.
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// The wait after failed attempt number `attempt` (from 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy::new(10)
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_millis(500));
        let waits: Vec<_> = (1..=5).map(|a| policy.backoff(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        assert_eq!(policy.backoff(u32::MAX), Duration::from_millis(500));
    }

    #[test]
    fn the_last_wait_ends_at_the_deadline_and_nothing_follows_it() {
        use std::time::SystemTime;
        let received = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let policy = RetryPolicy::for_duration(Duration::from_secs(25))
            .initial_backoff(Duration::from_secs(8))
            .max_backoff(Duration::from_secs(300));
        let at = |secs| received + Duration::from_secs(secs);
        assert_eq!(policy.next_attempt(1, received, at(1), None), Some(at(9)));
        // 16 s of backoff would reach t = 28: cut to the deadline, t = 25.
        assert_eq!(policy.next_attempt(2, received, at(12), None), Some(at(25)));
        assert_eq!(policy.next_attempt(3, received, at(25), None), None);
        assert_eq!(
            policy.next_attempt(1, received, at(2), Some(Duration::from_secs(3))),
            Some(at(5))
        );
        assert_eq!(
            RetryPolicy::new(1).next_attempt(2, received, at(1), None),
            None
        );
    }
}
