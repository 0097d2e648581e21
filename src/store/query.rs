//! What a store keeps of each attempt, and how its records are listed: by page, with filters,
//! without their bodies.

use std::fmt;
use std::time::{Duration, SystemTime};

use super::record::{RecordId, RecordState, from_millis, millis};

/// How many attempts a record keeps in its history: the first one and the newest ones. A
/// notification retried for days keeps its first outcome and its last
/// `MAX_HISTORY - 1`, so that a record's size does not grow with its retries.
pub const MAX_HISTORY: usize = 20;

/// The longest error text kept per attempt, in bytes (cut at a character boundary).
pub const MAX_ERROR_LEN: usize = 1024;

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// The handler succeeded.
    Ok,
    /// The handler returned an error.
    Error,
    /// The handler did not finish within its timeout.
    Timeout,
    /// The handler panicked.
    Panic,
}

impl AttemptOutcome {
    /// Its name, as stored and shown: `ok`, `error`, `timeout`, `panic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Panic => "panic",
        }
    }
}

impl fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One attempt at handing a notification on, as its record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Attempt {
    /// When it started, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// How long it ran.
    pub duration_ms: u64,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The status the handler reported ([`Delivery::report_status`](crate::Delivery::report_status);
    /// for the relay, the service's HTTP status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The error, for a failed attempt (at most [`MAX_ERROR_LEN`] bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Which attempt it was, counting from 1 (0: not said, as in attempts kept before 0.3).
    /// A store writing an attempt's outcome makes the record's
    /// [`attempts`](super::Record::attempts) at least this: an attempt the claim did not count
    /// (claimed ahead of the workers, see [`Store::claim_and_begin`](super::Store::claim_and_begin))
    /// is counted by its outcome's write.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub number: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Attempt {
    /// An attempt that started at `at`, ran for `duration` and ended as `outcome`.
    pub fn new(at: SystemTime, duration: Duration, outcome: AttemptOutcome) -> Self {
        Self {
            at_ms: millis(at),
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            outcome,
            status: None,
            error: None,
            number: 0,
        }
    }

    /// Which attempt this was, counting from 1 (see [`number`](Self::number)).
    #[must_use]
    pub fn with_number(mut self, number: u32) -> Self {
        self.number = number;
        self
    }

    /// A failed attempt's error (cut to [`MAX_ERROR_LEN`] bytes).
    #[must_use]
    pub fn with_error(mut self, error: impl Into<String>) -> Self {
        let mut error = error.into();
        if error.len() > MAX_ERROR_LEN {
            let cut = crate::redact::prefix(&error, MAX_ERROR_LEN).len();
            error.truncate(cut);
        }
        self.error = Some(error);
        self
    }

    /// The status the handler reported.
    #[must_use]
    pub fn with_status(mut self, status: Option<u16>) -> Self {
        self.status = status;
        self
    }

    /// A failed attempt now, with no duration: for a record that could not be handed to the
    /// handler at all (a stored body that no longer decodes).
    pub fn failed_now(error: impl Into<String>) -> Self {
        Self::new(SystemTime::now(), Duration::ZERO, AttemptOutcome::Error).with_error(error)
    }

    /// When it started.
    pub fn at(&self) -> SystemTime {
        from_millis(self.at_ms)
    }
}

/// Adds `attempt` to `history`, keeping the first attempt and the newest ones, at most
/// [`MAX_HISTORY`] in all: what every store does with a finished attempt.
pub fn push_attempt(history: &mut Vec<Attempt>, attempt: Attempt) {
    if history.len() >= MAX_HISTORY {
        // Keep the first; drop the oldest after it.
        history.remove(1.min(history.len() - 1));
    }
    history.push(attempt);
}

/// Which records to list, and which page: see [`Store::list`](crate::store::Store::list).
///
/// Records come in id order (the order they were stored), ids after [`after`](Self::after),
/// at most [`limit`](Self::limit). Every filter set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordQuery {
    /// Only records in this state.
    pub state: Option<RecordState>,
    /// Only records of this kind ([`Envelope::kind`](crate::store::Envelope::kind)).
    pub kind: Option<String>,
    /// Only the notifications of this task (the event's id: a task id, a session id).
    pub task_id: Option<String>,
    /// Only records received at or after this time (milliseconds since the Unix epoch).
    pub since_ms: Option<i64>,
    /// Only records received before this time (milliseconds since the Unix epoch).
    pub until_ms: Option<i64>,
    /// Only records whose last error contains this text (case-sensitive).
    pub error: Option<String>,
    /// Ids after this one (0 for the first page; the last id of a page for the next).
    pub after: RecordId,
    /// At most this many records (0 means [`RecordQuery::DEFAULT_LIMIT`]).
    pub limit: usize,
}

impl RecordQuery {
    /// The page size when none is given.
    pub const DEFAULT_LIMIT: usize = 100;
    /// The largest page a store lists at once.
    pub const MAX_LIMIT: usize = 1000;

    /// Every record, first page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only records in `state`.
    #[must_use]
    pub fn state(mut self, state: RecordState) -> Self {
        self.state = Some(state);
        self
    }

    /// Only records of `kind`.
    #[must_use]
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// Only the notifications of `task_id`.
    #[must_use]
    pub fn task_id(mut self, task_id: impl Into<String>) -> Self {
        self.task_id = Some(task_id.into());
        self
    }

    /// Only records received at or after `since`.
    #[must_use]
    pub fn since(mut self, since: SystemTime) -> Self {
        self.since_ms = Some(millis(since));
        self
    }

    /// Only records received before `until`.
    #[must_use]
    pub fn until(mut self, until: SystemTime) -> Self {
        self.until_ms = Some(millis(until));
        self
    }

    /// Only records whose last error contains `text`.
    #[must_use]
    pub fn error(mut self, text: impl Into<String>) -> Self {
        self.error = Some(text.into());
        self
    }

    /// Ids after `after`.
    #[must_use]
    pub fn after(mut self, after: RecordId) -> Self {
        self.after = after;
        self
    }

    /// At most `limit` records (capped at [`MAX_LIMIT`](Self::MAX_LIMIT)).
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// The page size this query asks for: its limit, or the default, at most the cap.
    pub fn page_size(&self) -> usize {
        match self.limit {
            0 => Self::DEFAULT_LIMIT,
            limit => limit.min(Self::MAX_LIMIT),
        }
    }

    /// Whether `summary` passes every filter (not `after`): for a store that filters as it
    /// reads.
    pub fn matches(&self, summary: &RecordSummary) -> bool {
        self.state.is_none_or(|state| state == summary.state)
            && self.kind.as_deref().is_none_or(|kind| kind == summary.kind)
            && self
                .task_id
                .as_deref()
                .is_none_or(|id| summary.task_id.as_deref() == Some(id))
            && self
                .since_ms
                .is_none_or(|since| summary.received_at_ms >= since)
            && self
                .until_ms
                .is_none_or(|until| summary.received_at_ms < until)
            && self.error.as_deref().is_none_or(|text| {
                summary
                    .last_error
                    .as_deref()
                    .is_some_and(|error| error.contains(text))
            })
    }
}

/// A stored notification without its body or history: one row of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordSummary {
    /// Its id.
    pub id: RecordId,
    /// Its kind ([`Envelope::kind`](crate::store::Envelope::kind)).
    pub kind: String,
    /// Pending, dead or handled.
    pub state: RecordState,
    /// The event's id (a task id, a session id), when it has one.
    pub task_id: Option<String>,
    /// When it was received, in milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    /// Attempts started so far.
    pub attempts: u32,
    /// The last failed attempt's error.
    pub last_error: Option<String>,
    /// When a pending record is next due, in milliseconds since the Unix epoch.
    pub due_at_ms: i64,
    /// Its body's size in bytes.
    pub body_len: u64,
    /// The key it is ordered by, if any: a pending record waits for the records of the same
    /// key stored before it.
    pub order_key: Option<String>,
    /// For a pending ordered record waiting its turn, the record that holds its key back: the
    /// first of the key still pending (or a dead letter that holds). Filled by lists
    /// ([`Store::list`](super::Store::list)) of the bundled stores.
    pub held_back_by: Option<RecordId>,
}

impl RecordSummary {
    /// When it was received.
    pub fn received_at(&self) -> SystemTime {
        from_millis(self.received_at_ms)
    }

    /// When a pending record is next due.
    pub fn due_at(&self) -> SystemTime {
        from_millis(self.due_at_ms)
    }
}

impl From<&super::record::Record> for RecordSummary {
    fn from(record: &super::record::Record) -> Self {
        Self {
            id: record.id,
            kind: record.envelope.kind().to_owned(),
            state: record.state,
            task_id: record.task_id.clone(),
            received_at_ms: record.envelope.received_at_ms,
            attempts: record.attempts,
            last_error: record.last_error.clone(),
            due_at_ms: record.due_at_ms,
            body_len: record.body.len() as u64,
            order_key: record.order_key.clone(),
            held_back_by: None,
        }
    }
}

/// One page of a [`list`](crate::store::Store::list): its rows, and where the next page starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordPage {
    /// The matching records, in id order, at most the query's
    /// [`page_size`](RecordQuery::page_size).
    pub items: Vec<RecordSummary>,
    /// The id to ask the next page after ([`RecordQuery::after`]); `None` when no record after
    /// this page matches. A store that bounds each page's work may end a page early, shorter
    /// than asked for (even empty) with `Some`: carry on until `None`, not until a short page.
    pub next_after: Option<RecordId>,
}

impl RecordPage {
    /// A page of `items`, the next one after `next_after`.
    pub fn new(items: Vec<RecordSummary>, next_after: Option<RecordId>) -> Self {
        Self { items, next_after }
    }

    /// The page of `query` from `rows`: the matches after `query.after`, in id order, read up
    /// to one beyond its page size (the extra one says that another page follows, and is not
    /// kept).
    pub fn from_rows(query: &RecordQuery, mut rows: Vec<RecordSummary>) -> Self {
        let limit = query.page_size();
        let next_after = (rows.len() > limit).then(|| {
            rows.truncate(limit);
            rows.last().map_or(query.after, |last| last.id)
        });
        Self::new(rows, next_after)
    }

    /// The number of rows on this page.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether this page has no rows (more may follow: see [`next_after`](Self::next_after)).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl IntoIterator for RecordPage {
    type Item = RecordSummary;
    type IntoIter = std::vec::IntoIter<RecordSummary>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl<'a> IntoIterator for &'a RecordPage {
    type Item = &'a RecordSummary;
    type IntoIter = std::slice::Iter<'a, RecordSummary>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_first_attempt_and_the_newest() {
        let mut history = Vec::new();
        for n in 0..(MAX_HISTORY as u64 + 5) {
            let attempt = Attempt::new(
                SystemTime::UNIX_EPOCH + Duration::from_secs(n),
                Duration::ZERO,
                AttemptOutcome::Error,
            );
            push_attempt(&mut history, attempt);
        }
        assert_eq!(history.len(), MAX_HISTORY);
        assert_eq!(history[0].at_ms, 0);
        assert_eq!(history[1].at_ms, 6_000);
        assert_eq!(
            history.last().unwrap().at_ms,
            (MAX_HISTORY as i64 + 4) * 1000
        );
    }

    #[test]
    fn a_long_error_is_cut_at_a_character_boundary() {
        let attempt = Attempt::failed_now("é".repeat(MAX_ERROR_LEN));
        let error = attempt.error.unwrap();
        assert!(error.len() <= MAX_ERROR_LEN);
        assert!(error.chars().all(|c| c == 'é'));
    }
}
