//! Records and their envelopes: what a store keeps of a notification.

use std::fmt;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::error::{StoreError, StoreErrorKind};
use super::query::Attempt;

/// A stored notification's id, unique within its store.
pub type RecordId = u64;

/// What the receiver knew of a request besides its body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Envelope {
    /// When the request arrived, in milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    /// The peer address of the connection, when the server told it.
    pub peer: Option<String>,
    /// The headers that matter: `content-type`, `user-agent`, `content-length`.
    pub headers: Vec<(String, String)>,
    /// The name of the receiver that took it in (its [`name`](crate::ReceiverBuilder::name)),
    /// so that receivers sharing a store each hand on their own records. `None` in records
    /// stored before kinds existed: those are task notifications ([`DEFAULT_KIND`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// The kind of a record stored without one: the task notification receiver's default name.
pub const DEFAULT_KIND: &str = "task_notification";

/// The de-duplication key a record of `kind` is stored under: the event's key mixed with the
/// kind (SHA-256 of the kind, a zero byte and the key), so that receivers sharing a store never
/// take each other's notifications for duplicates. The default kind keeps the bare key, as
/// stored before kinds existed.
pub fn kind_key(kind: &str, key: [u8; 32]) -> [u8; 32] {
    if kind == DEFAULT_KIND {
        return key;
    }
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(kind.as_bytes());
    hasher.update([0]);
    hasher.update(key);
    hasher.finalize().into()
}

impl Envelope {
    /// An envelope (for a [`Store`](crate::store::Store) implementation reading one back).
    pub fn new(
        received_at: SystemTime,
        peer: Option<String>,
        headers: Vec<(String, String)>,
    ) -> Self {
        Self {
            received_at_ms: millis(received_at),
            peer,
            headers,
            kind: None,
        }
    }

    /// The same envelope, of the receiver named `kind`.
    pub fn with_kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// The record's kind: the name of the receiver that took it in ([`DEFAULT_KIND`] for a
    /// record stored without one).
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or(DEFAULT_KIND)
    }

    /// When the request arrived.
    pub fn received_at(&self) -> SystemTime {
        from_millis(self.received_at_ms)
    }
}

pub(crate) fn millis(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

pub(crate) fn from_millis(ms: i64) -> SystemTime {
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        SystemTime::UNIX_EPOCH + magnitude
    } else {
        SystemTime::UNIX_EPOCH - magnitude
    }
}

/// A notification to store.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewRecord {
    /// The de-duplication key.
    pub key: [u8; 32],
    /// The body as decoded (after the body hook, if any).
    pub body: Bytes,
    /// The request's envelope.
    pub envelope: Envelope,
    /// The event's id (a task id, a session id), kept beside the body so that records can be
    /// found by it without reading bodies.
    pub task_id: Option<String>,
    /// Whether the receiver hands it to its handler at once: the store counts the first
    /// attempt as started and holds the record for this receiver (see
    /// [`Store::claim`](crate::store::Store::claim)). Otherwise it waits, due at once, for a
    /// worker to claim it.
    pub started: bool,
    /// The key it is ordered by ([`ReceiverBuilder::ordered_by`](crate::ReceiverBuilder::ordered_by)):
    /// a store hands out a record of a key only when no record of the same kind and key
    /// stored before it is still pending (nor a dead letter, when
    /// [`order_holds`](Self::order_holds)). `None`: not ordered.
    pub order_key: Option<String>,
    /// Whether this record, as a dead letter, holds back the later records of its key (until
    /// it is replayed or purged).
    pub order_holds: bool,
}

impl NewRecord {
    /// A notification to store under its de-duplication key, due at once, waiting for a
    /// receiver to [claim](crate::store::Store::claim) it (see [`started`](Self::started)).
    pub fn new(key: [u8; 32], body: Bytes, envelope: Envelope) -> Self {
        Self {
            key,
            body,
            envelope,
            task_id: None,
            started: false,
            order_key: None,
            order_holds: false,
        }
    }

    /// The same notification, ordered by `key` (see [`order_key`](Self::order_key)); when
    /// `dead_letter_holds`, as a dead letter it holds back the later records of its key.
    #[must_use]
    pub fn ordered(mut self, key: impl Into<String>, dead_letter_holds: bool) -> Self {
        self.order_key = Some(key.into());
        self.order_holds = dead_letter_holds;
        self
    }

    /// The same notification, with the event's id.
    #[must_use]
    pub fn with_task_id(mut self, task_id: impl Into<String>) -> Self {
        self.task_id = Some(task_id.into());
        self
    }

    /// The same notification, handed to the handler at once by the receiver that stores it
    /// (`true`: its first attempt counted and held for that receiver), or left in the store
    /// for a claim (`false`, the default).
    #[must_use]
    pub fn started(mut self, started: bool) -> Self {
        self.started = started;
        self
    }
}

/// What [`Store::append`](crate::store::Store::append) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored under this id, durably.
    Stored(RecordId),
    /// The key was already claimed: the notification was stored before (under this id).
    Duplicate(RecordId),
}

/// The state of a stored notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum RecordState {
    /// Waiting for the handler (until its due time), or being handled.
    Pending,
    /// The handler failed every attempt: kept until replayed or purged.
    Dead,
    /// The handler succeeded: kept for the retention window, to be found and replayed.
    Handled,
}

impl RecordState {
    /// Its name, as the admin API and the CLI show it: `pending`, `dead`, `handled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Dead => "dead",
            Self::Handled => "handled",
        }
    }
}

impl std::str::FromStr for RecordState {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "pending" => Ok(Self::Pending),
            "dead" => Ok(Self::Dead),
            "handled" => Ok(Self::Handled),
            _ => Err(StoreError::new(
                StoreErrorKind::Invalid,
                "a state is one of pending, dead, handled",
            )),
        }
    }
}

/// A stored notification.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Record {
    /// Its id.
    pub id: RecordId,
    /// Pending, dead or handled.
    pub state: RecordState,
    /// Attempts started so far, across restarts.
    pub attempts: u32,
    /// The error of the last failed attempt.
    pub last_error: Option<String>,
    /// The request's envelope.
    pub envelope: Envelope,
    /// The body.
    pub body: Bytes,
    /// The event's id (a task id, a session id), when it has one.
    pub task_id: Option<String>,
    /// When a pending record is next due, in milliseconds since the Unix epoch (for another
    /// state, when it last changed state).
    pub due_at_ms: i64,
    /// Its finished attempts, oldest first: the first and the newest, at most
    /// [`MAX_HISTORY`](crate::store::MAX_HISTORY).
    pub history: Vec<Attempt>,
    /// The key it is ordered by, if any ([`NewRecord::order_key`]).
    pub order_key: Option<String>,
}

impl Record {
    /// A record (for a [`Store`](crate::store::Store) implementation reading one back).
    pub fn new(
        id: RecordId,
        state: RecordState,
        attempts: u32,
        last_error: Option<String>,
        envelope: Envelope,
        body: Bytes,
    ) -> Self {
        let due_at_ms = envelope.received_at_ms;
        Self {
            id,
            state,
            attempts,
            last_error,
            envelope,
            body,
            task_id: None,
            due_at_ms,
            history: Vec::new(),
            order_key: None,
        }
    }

    /// The same record, ordered by this key.
    #[must_use]
    pub fn with_order_key(mut self, order_key: Option<String>) -> Self {
        self.order_key = order_key;
        self
    }

    /// The same record, with the event's id.
    #[must_use]
    pub fn with_task_id(mut self, task_id: Option<String>) -> Self {
        self.task_id = task_id;
        self
    }

    /// The same record, next due at `due_at_ms`.
    #[must_use]
    pub fn with_due_at_ms(mut self, due_at_ms: i64) -> Self {
        self.due_at_ms = due_at_ms;
        self
    }

    /// The same record, with its attempts' history.
    #[must_use]
    pub fn with_history(mut self, history: Vec<Attempt>) -> Self {
        self.history = history;
        self
    }

    /// When a pending record is next due.
    pub fn due_at(&self) -> SystemTime {
        from_millis(self.due_at_ms)
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body holds personal data: its size only.
        f.debug_struct("Record")
            .field("id", &self.id)
            .field("state", &self.state)
            .field("attempts", &self.attempts)
            .field("last_error", &self.last_error)
            .field("due_at_ms", &self.due_at_ms)
            .field("history", &self.history.len())
            .field("envelope", &self.envelope)
            .field("body_len", &self.body.len())
            .finish()
    }
}
