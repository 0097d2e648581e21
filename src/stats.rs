//! The one place where every outcome is counted: each answer by its status and reason, each
//! notification by what became of it. Read them with [`Receiver::stats`](crate::Receiver::stats).

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::StatusCode;

use crate::meters::{AttemptResult, Meters};
use crate::rejection::{self, CODE_COUNT, Rejection};

/// A snapshot of the receiver's counters, from [`Receiver::stats`](crate::Receiver::stats).
///
/// The counters live in memory and count from the moment the receiver was built: a restart
/// starts them at 0 (what the store holds is [`StoreSummary`](crate::store::StoreSummary)'s).
/// They come in two families:
///
/// - What became of the notifications: a worker *takes* one ([`queued`](Self::queued)), and
///   each take ends in one of [`handled`](Self::handled), [`failed`](Self::failed) or
///   [`returned`](Self::returned); the takes not ended yet are [`pending`](Self::pending).
///   With [`AckPolicy::Durable`](crate::AckPolicy::Durable) a notification is taken once per
///   attempt: one that fails twice and then succeeds is queued 3 times, returned twice and
///   handled once.
/// - How requests were answered: [`refused`](Self::refused), [`unavailable`](Self::unavailable)
///   and [`duplicates`](Self::duplicates) sum up [`answers`](Self::answers), which has every
///   reason (`accepted`, `unauthorized`, `queue_full`, …) with its status.
#[allow(deprecated)] // the derives read the old name of `refused`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Notifications taken for handling. With the memory and "handled" acks, each accepted
    /// notification once, as it is queued (its retries, memory ack, happen within the take).
    /// With the durable ack, each attempt: a stored notification is taken when a worker starts
    /// it (at once if one is free when it is stored, else when the store hands it on), and
    /// again for each retry, after a restart or a lapsed claim, and after a replay; those
    /// waiting in the store are not counted until taken.
    pub queued: u64,
    /// Takes that ended with the handler's success: notifications handled (a replayed or
    /// redelivered one counts each time it succeeds).
    pub handled: u64,
    /// Takes that ended in giving up: the dead letters. The handler failed its last attempt
    /// (the retries spent or, durable ack, the policy's `retry_for` past) or returned
    /// [`GiveUp`](crate::GiveUp); with the durable ack also a notification whose attempts kept
    /// ending in crashes, or whose stored body no longer decodes. Each but the last is passed
    /// to the failed hook. Never with the "handled" ack: its failures are answered 503.
    pub failed: u64,
    /// Takes that ended without an outcome, the notification to be tried again later or
    /// elsewhere. With the durable ack: a failed attempt put back in the store until its next
    /// try (the usual case: one per retry), a notification no longer this receiver's when its
    /// attempt began (handled meanwhile, or taken over by a receiver sharing the store after
    /// this one's claim lapsed), or one left stored at shutdown. With the "handled" ack: a
    /// failed or timed-out attempt answered 503 (the sender retries), or a request that went
    /// away before a worker took it. Never with the memory ack.
    pub returned: u64,
    /// Requests whose body was refused: 400 (empty, unreadable, malformed JSON, too deep, …),
    /// 408 (too slow), 413 (too large), 422 (valid JSON of the wrong shape). A refused token
    /// (401), address (403), method (405), content type (415) or head (431) is not counted
    /// here: see [`answers`](Self::answers).
    pub refused: u64,
    /// [`refused`](Self::refused), under its old name.
    #[deprecated(since = "0.2.0", note = "renamed to `refused`")]
    pub rejected: u64,
    /// Requests answered 503, whatever the cause: the queue full, the store failing, too many
    /// bodies in flight, the receiver stopping, and with the "handled" ack the handler failing
    /// or timing out (each cause apart in [`answers`](Self::answers)).
    pub unavailable: u64,
    /// Requests answered 200 for a notification already stored, which is not handled again
    /// (the durable ack's de-duplication; always 0 with the other acks). Also in
    /// [`answers`](Self::answers), as `duplicate`.
    pub duplicates: u64,
    answers: Answers,
}

impl Stats {
    /// Takes not ended yet: [`queued`](Self::queued) less [`handled`](Self::handled),
    /// [`failed`](Self::failed) and [`returned`](Self::returned). Notifications in the queue or
    /// in a handler (with the memory ack, also those waiting between retries). With the
    /// durable ack, those waiting in the store (a backlog, or a retry's due time) are not
    /// counted: the store's own count is
    /// [`StoreSummary::pending`](crate::store::StoreSummary::pending).
    pub fn pending(&self) -> u64 {
        self.queued
            .saturating_sub(self.handled + self.failed + self.returned)
    }

    /// Every answer given, by status and reason.
    pub fn answers(&self) -> &Answers {
        &self.answers
    }
}

/// How many requests were answered, by reason: `accepted` and `duplicate` (200), and each
/// refusal's [code](crate::Rejection::code) (`unauthorized`, `unsupported_media_type`,
/// `queue_full`, …).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Answers {
    accepted: u64,
    duplicate: u64,
    refused: [u64; CODE_COUNT],
}

/// One line of [`Answers`]: a status, a reason and how many requests got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Answer {
    /// The status of the answer.
    pub status: StatusCode,
    /// `accepted`, `duplicate`, or the refusal's code.
    pub reason: &'static str,
    /// How many requests were answered so.
    pub count: u64,
}

impl Answers {
    /// How many requests were answered for this reason (0 for an unknown one).
    pub fn get(&self, reason: &str) -> u64 {
        self.iter()
            .find(|answer| answer.reason == reason)
            .map_or(0, |answer| answer.count)
    }

    /// How many requests were answered with this status.
    pub fn with_status(&self, status: u16) -> u64 {
        self.iter()
            .filter(|answer| answer.status.as_u16() == status)
            .map(|answer| answer.count)
            .sum()
    }

    /// Every reason with its status and count, zeros included, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = Answer> + '_ {
        let ok = [("accepted", self.accepted), ("duplicate", self.duplicate)]
            .into_iter()
            .map(|(reason, count)| Answer {
                status: StatusCode::OK,
                reason,
                count,
            });
        let refused = rejection::all_codes()
            .zip(self.refused)
            .map(|((reason, status), count)| Answer {
                status,
                reason,
                count,
            });
        ok.chain(refused)
    }
}

impl fmt::Debug for Answers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .filter(|answer| answer.count > 0)
                    .map(|answer| (answer.reason, answer.count)),
            )
            .finish()
    }
}

/// What the request path accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accepted {
    /// A new notification, on its way to the handler.
    New,
    /// Already stored: answered 200, not handled again.
    Duplicate,
}

impl Accepted {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::New => "accepted",
            Self::Duplicate => "duplicate",
        }
    }
}

/// The live counters behind [`Stats`].
#[derive(Debug)]
pub(crate) struct Counters {
    queued: AtomicU64,
    handled: AtomicU64,
    failed: AtomicU64,
    returned: AtomicU64,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    refused: [AtomicU64; CODE_COUNT],
    /// When each refusal was last logged, in seconds since `epoch` (0: never).
    logged_at: [AtomicU64; CODE_COUNT],
    /// Refusals of each code not logged since the last line.
    suppressed: [AtomicU64; CODE_COUNT],
    epoch: Instant,
    /// The same outcomes, recorded through the `metrics` facade (feature `metrics`).
    meters: Meters,
    /// Woken when a notification settles (handled, failed, returned), while `idle_waiters`
    /// says someone waits: nobody waiting costs one atomic load.
    settled: tokio::sync::Notify,
    idle_waiters: AtomicUsize,
}

impl Default for Counters {
    fn default() -> Self {
        Self::new("default")
    }
}

impl Counters {
    /// Counters for the receiver named `receiver` (its `receiver` label in metrics).
    pub(crate) fn new(receiver: &str) -> Self {
        Self {
            queued: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            returned: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            refused: std::array::from_fn(|_| AtomicU64::new(0)),
            logged_at: std::array::from_fn(|_| AtomicU64::new(0)),
            suppressed: std::array::from_fn(|_| AtomicU64::new(0)),
            epoch: Instant::now(),
            meters: Meters::new(receiver),
            settled: tokio::sync::Notify::new(),
            idle_waiters: AtomicUsize::new(0),
        }
    }

    /// Waits until every notification counted as queued has settled: handled, failed or
    /// returned.
    pub(crate) async fn idle(&self) {
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.idle_waiters.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.idle_waiters);
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.snapshot().pending() == 0 {
                return;
            }
            settled.await;
        }
    }

    /// The metrics handles, for the background sampler.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn meters(&self) -> &Meters {
        &self.meters
    }
}

/// Where an answer stands in the fixed list of reasons (`accepted`, `duplicate`, then each
/// refusal's code in the table's order): the metrics' series are in this order too.
fn answer_slot(result: &Result<Accepted, Rejection>) -> usize {
    match result {
        Ok(Accepted::New) => 0,
        Ok(Accepted::Duplicate) => 1,
        Err(rejection) => 2 + rejection.code_index(),
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What became of a notification after it was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Put in the queue (or started at once).
    Queued,
    /// The handler succeeded.
    Handled,
    /// The handler failed every attempt.
    Failed,
    /// Given back: the sender will send it again, or another receiver took it.
    Returned,
}

impl Counters {
    /// Counts one notification's step.
    pub(crate) fn count(&self, fate: Fate) {
        if fate == Fate::Failed {
            self.meters.dead_letter();
        }
        bump(match fate {
            Fate::Queued => &self.queued,
            Fate::Handled => &self.handled,
            Fate::Failed => &self.failed,
            Fate::Returned => &self.returned,
        });
        if fate != Fate::Queued && self.idle_waiters.load(Ordering::SeqCst) > 0 {
            self.settled.notify_waiters();
        }
    }

    /// One handler attempt (not a notification's last word: see [`count`](Self::count)).
    pub(crate) fn attempt(&self, result: AttemptResult, elapsed: Duration) {
        self.meters.attempt(result, elapsed);
    }

    /// Stored notifications handed to the handler again (a restart, a lapsed claim).
    pub(crate) fn redelivered(&self, count: u64) {
        self.meters.redelivered(count);
    }

    /// One answer, given `elapsed` after the request came: counted, recorded in the metrics,
    /// and for a refusal logged. The three steps of every answer, in this one place.
    pub(crate) fn answered(&self, result: &Result<Accepted, Rejection>, elapsed: Duration) {
        self.count_answer(result);
        self.meters.answered(answer_slot(result), elapsed);
        if let Err(rejection) = result {
            self.log_refusal(rejection);
        }
    }

    /// Counts one answer by its reason.
    fn count_answer(&self, result: &Result<Accepted, Rejection>) {
        bump(match result {
            Ok(Accepted::New) => &self.accepted,
            Ok(Accepted::Duplicate) => &self.duplicates,
            Err(rejection) => &self.refused[rejection.code_index()],
        });
    }

    /// Logs a refusal at WARN: at most one line a second for each reason, saying how many were
    /// not logged since. The line holds the status, the code and the refusal's message, none
    /// of which carries a value from the body.
    fn log_refusal(&self, rejection: &Rejection) {
        let index = rejection.code_index();
        // Seconds from 1, so that 0 means "never logged".
        let now = self.epoch.elapsed().as_secs() + 1;
        let last = self.logged_at[index].load(Ordering::Relaxed);
        let turn = last < now
            && self.logged_at[index]
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if !turn {
            bump(&self.suppressed[index]);
            return;
        }
        let suppressed = self.suppressed[index].swap(0, Ordering::Relaxed);
        tracing::warn!(
            status = rejection.status().as_u16(),
            outcome = rejection.code(),
            path = rejection.path().map(crate::redact::log_field).as_deref(),
            suppressed,
            "refused: {}",
            crate::LogSafe::new(&rejection.to_string()).limit(1024)
        );
    }

    /// A snapshot.
    pub(crate) fn snapshot(&self) -> Stats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let answers = Answers {
            accepted: load(&self.accepted),
            duplicate: load(&self.duplicates),
            refused: std::array::from_fn(|i| load(&self.refused[i])),
        };
        let refused = rejection::all_codes()
            .zip(answers.refused)
            .filter(|((_, status), _)| rejection::refuses_the_body(*status))
            .map(|(_, count)| count)
            .sum();
        #[allow(deprecated)]
        Stats {
            queued: load(&self.queued),
            handled: load(&self.handled),
            failed: load(&self.failed),
            returned: load(&self.returned),
            refused,
            rejected: refused,
            unavailable: answers.with_status(503),
            duplicates: answers.duplicate,
            answers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_lands_on_its_reason_and_status() {
        let counters = Counters::default();
        counters.answered(&Ok(Accepted::New), Duration::ZERO);
        counters.answered(&Ok(Accepted::Duplicate), Duration::ZERO);
        counters.answered(&Err(Rejection::unsupported_media_type()), Duration::ZERO);
        counters.answered(&Err(Rejection::unsupported_media_type()), Duration::ZERO);
        counters.answered(&Err(Rejection::queue_full()), Duration::ZERO);
        counters.answered(&Err(Rejection::payload_too_large(1)), Duration::ZERO);
        let stats = counters.snapshot();
        let answers = stats.answers();
        assert_eq!(answers.get("accepted"), 1);
        assert_eq!(answers.get("duplicate"), 1);
        assert_eq!(answers.get("unsupported_media_type"), 2);
        assert_eq!(answers.with_status(415), 2);
        assert_eq!(answers.with_status(200), 2);
        assert_eq!(stats.unavailable, 1);
        assert_eq!(stats.refused, 1);
        assert_eq!(stats.duplicates, 1);
        assert_eq!(answers.get("no such reason"), 0);
        assert_eq!(
            format!("{answers:?}"),
            r#"{"accepted": 1, "duplicate": 1, "unsupported_media_type": 2, "payload_too_large": 1, "queue_full": 1}"#
        );
    }

    #[test]
    fn a_flood_of_one_refusal_logs_one_line_a_second() {
        let counters = Counters::default();
        for _ in 0..1000 {
            counters.answered(&Err(Rejection::method_not_allowed()), Duration::ZERO);
        }
        let index = Rejection::method_not_allowed().code_index();
        assert_eq!(counters.suppressed[index].load(Ordering::Relaxed), 999);
        assert_eq!(
            counters.snapshot().answers().get("method_not_allowed"),
            1000
        );
    }
}
