//! Durable storage: nothing acknowledged is lost, nothing is handled twice.
//!
//! With [`ReceiverBuilder::durable`](crate::ReceiverBuilder::durable), the receiver writes each
//! notification to a [`Store`] **before** it answers 200, and feeds the handler from there.
//!
//! ```
//! use airudder_webhook::store::{RedbStore, Store};
//! use airudder_webhook::{Delivery, Receiver, model::TaskNotification};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("airudder-doc-{}", std::process::id()));
//! let store = RedbStore::open(&dir)?;
//! let receiver = Receiver::builder(|d: Delivery<TaskNotification>| async move {
//!     println!("attempt {} of task {}", d.attempt(), d.task_id);
//!     Ok::<_, std::io::Error>(())
//! })
//! .allow_unauthenticated()
//! .durable(store.clone())
//! .build()?;
//! # let _ = receiver.shutdown_handle().shutdown(std::time::Duration::from_secs(1)).await;
//! assert!(store.dead_letters().await?.is_empty());
//! # drop((receiver, store));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! - **Acknowledged means on disk.** The body (as the [body hook](crate::DecodeBody) returned
//!   it) and its [`Envelope`] (receive time, peer address, `content-type`, `user-agent`,
//!   `content-length` and the headers named in
//!   [`keep_headers`](crate::ReceiverBuilder::keep_headers)) are written and fsynced before the
//!   200. Concurrent requests commit together (group commit): durability costs one fsync per
//!   group, not per request.
//! - **Redelivery.** After a restart every stored notification not yet handled goes to the
//!   handler again; [`Delivery::attempt`](crate::Delivery::attempt) counts attempts across
//!   restarts (each is counted before the handler runs, so a crash mid-attempt counts). A
//!   failure is retried with backoff ([`retry`](crate::ReceiverBuilder::retry)), then becomes a
//!   **dead letter**, kept with its last error. A notification whose attempts keep ending in
//!   crashes becomes a dead letter too, instead of crashing the receiver forever.
//! - **Replay.** [`Receiver::replay`](crate::Receiver::replay) hands a dead letter to the
//!   handler again. Bodies refused with a 400, 408, 413 or 422 are kept with their raw bytes,
//!   within [limits](#refused-bodies-are-bounded) ([`Store::rejected_page`] lists them,
//!   [`Store::get_rejected`] reads one);
//!   [`Receiver::replay_rejected`](crate::Receiver::replay_rejected) runs one through intake
//!   again, the current body hook included, once the cause is fixed.
//! - **De-duplication.** The [key](crate::Event::dedup_key) is the SHA-256 of the notification
//!   serialized again by this crate: members in one fixed order, no white space. A retry of the
//!   same notification gets the same key; a later notification about the same task (another
//!   status, another round) gets another. The key is claimed in the same transaction as the
//!   record, so two identical requests at the same instant give one delivery. Keys are kept
//!   for the [de-duplication window](crate::ReceiverBuilder::dedup_window) after the
//!   notification is handled; a duplicate answers 200 and is counted as `duplicate`.
//! - **Faults** are answered 503, never 200: the sender retries, and nothing is acknowledged
//!   that is not stored. What each does, and what the operator sees:
//!
//! | fault | what the receiver does | what the operator sees |
//! | --- | --- | --- |
//! | the disk fills; the file system fails or turns read-only | 503 `store_unavailable` while the store reopens itself (backoff 100 ms to 5 s, no restart); 200 again as soon as the disk allows. A notification handled meanwhile keeps its "done" mark in memory until it can be written, so it is not handled again | one ERROR `the store failed` when it starts, one INFO `the store is open again` with `down_ms` when it ends; [`RedbStore::is_recovering`], [`RedbStore::recoveries`]; `store_unavailable` in [`Stats::answers`](crate::Stats::answers) |
//! | a record's bytes change on disk (after a clean stop redb checks nothing) | its CRC-32 fails when it is read: set aside with its raw bytes, never handed to the handler; the others carry on | an ERROR naming the record; [`RedbStore::quarantined`]; the record among the [rejected](Store::rejected) bodies, reason `corrupt stored record N` |
//! | a file damaged beyond redb's repair | [`RedbStore::open`] fails with [`StoreErrorKind::Corrupt`] | the receiver does not start |
//! | the sender hangs up while the store is slow | storing and handing on run in a task the request cannot cancel: stored means handled | nothing: its retry is a `duplicate` |
//! | PostgreSQL restarts or is unreachable | 503 within `PostgresOptions::timeout`; the pool reconnects by itself; "done" marks are retried | ERROR `could not store a notification`; `store_unavailable` |
//!
//!   The embedded store's memory is its page cache, bounded ([`RedbOptions::cache_size`],
//!   8 MiB by default): a 24-hour window of keys stays on disk, not in memory.
//! - **The seam.** [`Store`] is a trait (append with atomic de-duplication, attempts, dead
//!   letters, refused bodies, replay, prune, and for a shared store claims with a lease): a
//!   backend of your own plugs in without touching the service.
//!
//! # Refused bodies are bounded
//!
//! Refused bodies come from senders that got something wrong, in any number and size, so a
//! store keeps at most [`RejectedLimits::max_bytes`] of them in all (64 MiB by default; each
//! counted with its record, at least 4 KiB, so that empty bodies are bounded too) and
//! none received more than [`RejectedLimits::max_age`] ago (7 days; on PostgreSQL, stored
//! more than that ago), set with [`RedbOptions::keep_rejected`] (or
//! `PostgresOptions::keep_rejected`). A new refused body that takes the total over the cap
//! pushes the oldest out; those past the age go at the next refusal and at the hourly prune.
//! Each drop is counted ([`RedbStore::rejected_dropped`], `PostgresStore::rejected_dropped`)
//! and logged in a WARN line with how many, how many bytes and why. A body over the cap on its
//! own is not kept (the receiver still answers it; its log line says why). Lists page through
//! [`Store::rejected_page`] without reading a single body.
//!
//! # Files
//!
//! The embedded store holds every body, phone numbers included: [`RedbStore::open`] creates
//! its directory `0700` and keeps its file `0600` (set at every open). A directory you made
//! is left as it is, with a WARN once when other users may enter or read it.
//!
//! # One receiver, or several on PostgreSQL
//!
//! | setup | what it guarantees | what it costs |
//! | --- | --- | --- |
//! | one receiver, [`RedbStore`] (a database file and a `rejected/` folder in a directory) | acknowledged means fsynced on this machine's disk; a restart redelivers | nothing to run beside it; but while the receiver is down the sender's 5 retries are all there is, and a dead disk takes its notifications with it |
//! | several receivers, `PostgresStore` (feature `postgres`) | acknowledged means committed (`synchronous_commit` on); a retry that lands on another receiver is still a duplicate; a receiver that dies loses its claims after the lease and the others handle its notifications | a database round trip per request and per handled notification; while PostgreSQL is unreachable every receiver answers 503 and recovers by itself |
//!
//! ```no_run
//! # #[cfg(feature = "postgres")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//!
//! use airudder_webhook::store::{PostgresOptions, PostgresStore};
//! use airudder_webhook::{Delivery, Receiver, auth::QueryToken, model::TaskNotification};
//!
//! let store = PostgresStore::connect_with(
//!     &std::env::var("AIRUDDER_DATABASE_URL")?, // postgres://user:password@host/db
//!     PostgresOptions::default()
//!         .schema("airudder")? // created and migrated at connect
//!         .lease(Duration::from_secs(15)), // a dead receiver's claims lapse after this
//! )
//! .await?;
//! let receiver = Receiver::builder(|d: Delivery<TaskNotification>| async move {
//!     // At least once: key your writes on task_id + call id.
//!     let _ = d.attempt();
//!     Ok::<_, std::io::Error>(())
//! })
//! .authorize(QueryToken::new([std::env::var("AIRUDDER_TOKEN")?])?)
//! .durable(store)
//! .build()?;
//! # drop(receiver);
//! # Ok(())
//! # }
//! ```
//!
//! How the receivers share the work:
//!
//! - **De-duplication across receivers.** An append is one `INSERT … ON CONFLICT DO NOTHING`
//!   on the key's unique index. Keys of handled notifications are pruned after the window,
//!   hourly, by every receiver.
//! - **Claims.** The receiver that stores a notification claims it for a lease and hands it to
//!   its own handler at once. Every receiver renews its claims every third of the lease and,
//!   once a second, claims (`FOR UPDATE SKIP LOCKED`) the pending notifications whose claim
//!   lapsed. A receiver cut off longer than the lease stands down; one that stops cleanly
//!   releases its claims, so the others take them at once.
//! - **Schema.** Tables live in their own schema, created and migrated at connect in one
//!   transaction under an advisory lock, so receivers may start at the same instant; a schema
//!   newer than the crate is refused.
//! - **Faults.** Every operation is bounded by `PostgresOptions::timeout` (5 s): an unreachable
//!   or restarting database answers 503, never 200; the pool replaces broken connections.
//! - **TLS.** `PostgresStore::connect` speaks plain TCP; `connect_config` takes any
//!   `tokio-postgres` TLS connector, so this crate pulls no TLS stack.
//!
//! # Several callbacks, one store
//!
//! An app that receives several of Airudder's callbacks (the task notification, a workflow's,
//! the chatbot's, raw ones) mounts a receiver for each, each with its handler and event type,
//! and gives them all the one store:
//!
//! - **Each record knows its kind**: the name of the receiver that stored it
//!   ([`ReceiverBuilder::name`](crate::ReceiverBuilder::name), by default the event's name:
//!   `task_notification`, `chatbot_session_end`, …), in [`Envelope::kind`]. Receivers sharing a
//!   store need distinct names. A record stored before kinds existed is a task notification's
//!   ([`DEFAULT_KIND`]).
//! - **Each receiver hands on only its own**: at start it redelivers only the pending records of
//!   its kind, on PostgreSQL it [claims](Store::claim) only those, and
//!   [`Receiver::replay`](crate::Receiver::replay) refuses another kind's record, naming the
//!   kind to replay it with.
//! - **Duplicates stay within a kind**: the de-duplication key of every kind but the default is
//!   mixed with the kind, so that one body at two paths is two notifications.
//! - **The embedded store** is shared by cloning the [`RedbStore`] (one database, one writer);
//!   **PostgreSQL** by giving each receiver
//!   [`PostgresStore::for_another_receiver`](PostgresStore::for_another_receiver): the same
//!   pool, claims of its own, so that one receiver's shutdown never releases another's claims.

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
mod postgres_batch;
mod redb;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

#[cfg(feature = "postgres")]
pub use self::postgres::{PostgresOptions, PostgresStore};
pub use self::redb::{RedbOptions, RedbStore};

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
    /// An envelope (for a [`Store`] implementation reading one back).
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
}

impl NewRecord {
    /// A notification to store under its de-duplication key.
    pub fn new(key: [u8; 32], body: Bytes, envelope: Envelope) -> Self {
        Self {
            key,
            body,
            envelope,
        }
    }
}

/// What [`Store::append`] did.
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
    /// Waiting for the handler, or being handled.
    Pending,
    /// The handler failed every attempt: kept until replayed.
    Dead,
}

/// A stored notification.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Record {
    /// Its id.
    pub id: RecordId,
    /// Pending or dead.
    pub state: RecordState,
    /// Attempts started so far, across restarts.
    pub attempts: u32,
    /// The error of the last failed attempt.
    pub last_error: Option<String>,
    /// The request's envelope.
    pub envelope: Envelope,
    /// The body.
    pub body: Bytes,
}

impl Record {
    /// A record (for a [`Store`] implementation reading one back).
    pub fn new(
        id: RecordId,
        state: RecordState,
        attempts: u32,
        last_error: Option<String>,
        envelope: Envelope,
        body: Bytes,
    ) -> Self {
        Self {
            id,
            state,
            attempts,
            last_error,
            envelope,
            body,
        }
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
            .field("envelope", &self.envelope)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// A body refused with a 4xx, kept so that it can be recovered.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RejectedRecord {
    /// Its id.
    pub id: RecordId,
    /// The status it was answered with.
    pub status: u16,
    /// Why, as answered (never a value from the body).
    pub reason: String,
    /// The request's envelope.
    pub envelope: Envelope,
    /// The raw bytes, as received.
    pub body: Bytes,
}

impl RejectedRecord {
    /// A kept refused body (for a [`Store`] implementation reading one back).
    pub fn new(id: RecordId, status: u16, reason: String, envelope: Envelope, body: Bytes) -> Self {
        Self {
            id,
            status,
            reason,
            envelope,
            body,
        }
    }
}

impl fmt::Debug for RejectedRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RejectedRecord")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("reason", &self.reason)
            .field("envelope", &self.envelope)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// A kept refused body without its bytes: what a list shows ([`Store::rejected_page`]). Fetch
/// the bytes of one with [`Store::get_rejected`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RejectedSummary {
    /// Its id.
    pub id: RecordId,
    /// The status it was answered with (0 for a corrupt record set aside by the store).
    pub status: u16,
    /// Why, as answered (never a value from the body).
    pub reason: String,
    /// The request's envelope.
    pub envelope: Envelope,
    /// The length of the kept body, in bytes; it counts toward [`RejectedLimits::max_bytes`]
    /// with its record.
    pub bytes: u64,
}

impl RejectedSummary {
    /// A summary (for a [`Store`] implementation listing its refused bodies).
    pub fn new(id: RecordId, status: u16, reason: String, envelope: Envelope, bytes: u64) -> Self {
        Self {
            id,
            status,
            reason,
            envelope,
            bytes,
        }
    }
}

impl From<RejectedRecord> for RejectedSummary {
    fn from(record: RejectedRecord) -> Self {
        Self {
            bytes: record.body.len() as u64,
            id: record.id,
            status: record.status,
            reason: record.reason,
            envelope: record.envelope,
        }
    }
}

/// How much of the refused bodies a store keeps: at most [`max_bytes`](Self::max_bytes) of
/// them in all, none received more than [`max_age`](Self::max_age) ago. See the
/// [module guide](self#refused-bodies-are-bounded).
///
/// When a new refused body takes the total over the cap, the oldest go first; bodies past
/// the age go at the next refusal and at the hourly prune. Each drop is counted and logged.
/// A body larger than the cap on its own is not kept at all, and a cap of 0 keeps none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RejectedLimits {
    /// The most bytes of refused bodies kept, in all (default
    /// [`DEFAULT_MAX_BYTES`](Self::DEFAULT_MAX_BYTES)), counted as each body's bytes plus its
    /// record, at least 4 KiB an entry ([`ENTRY_COST`](Self::ENTRY_COST)), so that tiny bodies
    /// are bounded too: a flood of empty ones keeps at most `max_bytes / 4 KiB` of them.
    pub max_bytes: u64,
    /// How long after it was received a refused body is kept at most (default
    /// [`DEFAULT_MAX_AGE`](Self::DEFAULT_MAX_AGE)).
    pub max_age: Duration,
}

impl RejectedLimits {
    /// 64 MiB: two of the largest bodies the receiver takes by default
    /// ([`BODY_LIMIT`](crate::receiver::defaults::BODY_LIMIT)), or thousands of ordinary ones.
    pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
    /// 7 days: a week to notice and fix what refused them.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

    /// What each kept refused body counts toward [`max_bytes`](Self::max_bytes) beyond its
    /// bytes and its record (status, reason, envelope): a file, an inode, an index entry.
    pub const ENTRY_COST: u64 = 4096;

    /// Limits of `max_bytes` in all and `max_age` each.
    pub fn new(max_bytes: u64, max_age: Duration) -> Self {
        Self { max_bytes, max_age }
    }

    /// What a body of `body` bytes with a record of `record` bytes counts toward the cap.
    pub(crate) fn charge(body: u64, record: u64) -> u64 {
        body.saturating_add(record).saturating_add(Self::ENTRY_COST)
    }

    /// Whether a body of `len` bytes, charged `charge` with its record, may be kept at all;
    /// the error says why not.
    pub(crate) fn admit(&self, len: u64, charge: u64) -> Result<(), StoreError> {
        if self.max_bytes == 0 {
            return Err(StoreError::new(
                StoreErrorKind::Invalid,
                "the refused bodies' cap is 0 bytes: not kept",
            ));
        }
        if charge > self.max_bytes {
            return Err(StoreError::new(
                StoreErrorKind::Invalid,
                format!(
                    "a refused body of {len} bytes ({charge} with its record) is over the \
                     refused bodies' cap of {} bytes: not kept",
                    self.max_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Bodies received before this instant, in milliseconds since the epoch, are too old.
    pub(crate) fn oldest_kept_ms(&self, now: SystemTime) -> i64 {
        let age = i64::try_from(self.max_age.as_millis()).unwrap_or(i64::MAX);
        millis(now).saturating_sub(age)
    }
}

impl Default for RejectedLimits {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_BYTES, Self::DEFAULT_MAX_AGE)
    }
}

/// Refused bodies a store dropped for its limits in one go: `(count, bytes)` for each cause,
/// logged and counted once what dropped them is committed.
#[derive(Debug, Default)]
pub(crate) struct RejectedDrops {
    pub(crate) over_cap: (u64, u64),
    pub(crate) too_old: (u64, u64),
}

impl RejectedDrops {
    /// Logs what was dropped, a WARN line for each cause (counts and sizes, never a value from
    /// a body), and adds it to `counter`.
    pub(crate) fn report(&self, limits: &RejectedLimits, counter: &AtomicU64) {
        let (count, bytes) = self.over_cap;
        if count > 0 {
            tracing::warn!(
                count,
                bytes,
                max_bytes = limits.max_bytes,
                "dropped the oldest refused bodies: over the refused bodies' cap"
            );
        }
        let (old, old_bytes) = self.too_old;
        if old > 0 {
            tracing::warn!(
                count = old,
                bytes = old_bytes,
                max_age_s = limits.max_age.as_secs(),
                "dropped refused bodies received longer ago than they are kept"
            );
        }
        counter.fetch_add(count + old, Ordering::Relaxed);
    }
}

/// What a store holds and how it is, in numbers: what [`Store::summary`] answers, for gauges
/// and probes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreSummary {
    /// Pending records: stored, not handled yet.
    pub pending: u64,
    /// Dead letters.
    pub dead_letters: u64,
    /// When the oldest pending record arrived.
    pub oldest_pending: Option<SystemTime>,
    /// How many times the store recovered from a fault by itself (the embedded store's
    /// reopens; 0 for a store that does not).
    pub recoveries: u64,
    /// Whether the store is down and recovering.
    pub recovering: bool,
}

impl StoreSummary {
    /// A summary (for a [`Store`] implementation).
    pub fn new(pending: u64, dead_letters: u64, oldest_pending: Option<SystemTime>) -> Self {
        Self {
            pending,
            dead_letters,
            oldest_pending,
            ..Self::default()
        }
    }

    /// With the store's recoveries and whether it is recovering now.
    pub fn with_recovery(mut self, recoveries: u64, recovering: bool) -> Self {
        self.recoveries = recoveries;
        self.recovering = recovering;
        self
    }
}

/// A store that could not do what was asked.
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    source: Option<crate::BoxError>,
}

/// The class of a [`StoreError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The storage failed: I/O, disk full, read-only, a lock held by another process.
    Unavailable,
    /// A record or the file is corrupt: reported, never skipped.
    Corrupt,
    /// No record has this id (or it is not in a state that allows the operation).
    NotFound,
    /// The store was closed.
    Closed,
    /// A stored body is not a valid notification (it became a dead letter).
    Invalid,
}

impl StoreError {
    /// A new error of this kind, caused by `source`.
    pub fn new(kind: StoreErrorKind, source: impl Into<crate::BoxError>) -> Self {
        Self {
            kind,
            source: Some(source.into()),
        }
    }

    pub(crate) fn bare(kind: StoreErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// The class of the error.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            StoreErrorKind::Unavailable => "the store is unavailable",
            StoreErrorKind::Corrupt => "the store holds a corrupt record",
            StoreErrorKind::NotFound => "no such record in that state",
            StoreErrorKind::Closed => "the store is closed",
            StoreErrorKind::Invalid => "the stored body is not a valid notification",
        };
        match &self.source {
            Some(source) => write!(f, "{what}: {source}"),
            None => f.write_str(what),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// Where the durable receiver keeps notifications. See the [module guide](self).
///
/// Every method that changes the store is durable when its future completes. Implementations
/// must make [`append`](Store::append) atomic: of two appends with the same key, at the same
/// instant or not, one stores and the other reports [`Appended::Duplicate`].
pub trait Store: Send + Sync + 'static {
    /// Stores a notification unless its key is already claimed. A stored notification counts
    /// its first attempt as started (the receiver hands it to the handler at once).
    fn append(
        &self,
        record: NewRecord,
    ) -> impl Future<Output = Result<Appended, StoreError>> + Send;

    /// Counts a started attempt after the first (a retry, or a redelivery after a restart, so
    /// that a crash mid-attempt still counts); returns the attempt number.
    fn begin_attempt(&self, id: RecordId) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// The handler succeeded: the record is done (its key stays claimed). The receiver does not
    /// wait for this one: lost to a crash, it means one more delivery, never a lost one.
    fn complete(&self, id: RecordId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// [`complete`](Store::complete) for several records, ideally in one write. The default
    /// starts every completion before it awaits any, so a store that commits in groups commits
    /// them together. A record already done is no error.
    fn complete_all(
        &self,
        ids: Vec<RecordId>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let writes: Vec<_> = ids.into_iter().map(|id| self.complete(id)).collect();
        async move {
            let mut first_error = None;
            for write in writes {
                match write.await {
                    Err(err) if err.kind() != StoreErrorKind::NotFound => {
                        first_error.get_or_insert(err);
                    }
                    _ => {}
                }
            }
            first_error.map_or(Ok(()), Err)
        }
    }

    /// An attempt failed; the record stays pending, with the error kept.
    fn fail(
        &self,
        id: RecordId,
        error: String,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The last attempt failed: the record becomes a dead letter, with the error kept.
    fn dead_letter(
        &self,
        id: RecordId,
        error: String,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every pending record, oldest first: what a restart hands to the handler again.
    fn pending(&self) -> impl Future<Output = Result<Vec<Record>, StoreError>> + Send;

    /// Every dead letter, oldest first.
    fn dead_letters(&self) -> impl Future<Output = Result<Vec<Record>, StoreError>> + Send;

    /// How many records are pending and dead, and since when the oldest pending one waits. The
    /// receiver samples it in the background for its gauges (feature `metrics`). The default
    /// reads [`pending`](Store::pending) and [`dead_letters`](Store::dead_letters); a store
    /// that can count without reading bodies should.
    fn summary(&self) -> impl Future<Output = Result<StoreSummary, StoreError>> + Send {
        async {
            let pending = self.pending().await?;
            let dead = self.dead_letters().await?;
            let oldest = pending
                .iter()
                .map(|record| record.envelope.received_at())
                .min();
            Ok(StoreSummary::new(
                pending.len() as u64,
                dead.len() as u64,
                oldest,
            ))
        }
    }

    /// One record, pending or dead.
    fn get(&self, id: RecordId) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send;

    /// Makes a dead letter pending again, attempts reset; returns it.
    fn replay(&self, id: RecordId) -> impl Future<Output = Result<Record, StoreError>> + Send;

    /// Keeps a refused body. A store with [limits](RejectedLimits) drops the oldest kept ones
    /// to make room, and refuses a body over its cap on its own with
    /// [`StoreErrorKind::Invalid`].
    fn reject(
        &self,
        status: u16,
        reason: String,
        envelope: Envelope,
        body: Bytes,
    ) -> impl Future<Output = Result<RecordId, StoreError>> + Send;

    /// Every kept refused body, oldest first, bytes included: it reads every body, so it
    /// suits tests and small stores. A list for people pages with
    /// [`rejected_page`](Store::rejected_page) instead.
    fn rejected(&self) -> impl Future<Output = Result<Vec<RejectedRecord>, StoreError>> + Send;

    /// Up to `limit` kept refused bodies with ids after `after`, oldest first, without their
    /// bytes: pass 0 for the first page, then the last id of each page.
    ///
    /// The default filters [`rejected`](Store::rejected), reading every body; a store that
    /// can list without reading bodies should (the bundled stores do).
    fn rejected_page(
        &self,
        after: RecordId,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RejectedSummary>, StoreError>> + Send {
        async move {
            Ok(self
                .rejected()
                .await?
                .into_iter()
                .filter(|kept| kept.id > after)
                .take(limit)
                .map(RejectedSummary::from)
                .collect())
        }
    }

    /// One kept refused body, bytes included; `None` when none has this id.
    ///
    /// The default finds it in [`rejected`](Store::rejected), reading every body; a store
    /// that can read one by its id should (the bundled stores do).
    fn get_rejected(
        &self,
        id: RecordId,
    ) -> impl Future<Output = Result<Option<RejectedRecord>, StoreError>> + Send {
        async move {
            Ok(self
                .rejected()
                .await?
                .into_iter()
                .find(|kept| kept.id == id))
        }
    }

    /// Forgets a kept refused body (after it was recovered).
    fn remove_rejected(&self, id: RecordId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets de-duplication keys of done notifications claimed before `before`; returns how
    /// many.
    fn prune(&self, before: SystemTime) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// How long a claim lasts, for a store that several receivers share (`None`, the
    /// default, for a store of one receiver alone).
    ///
    /// A shared store's records are claimed: [`append`](Store::append) and
    /// [`replay`](Store::replay) claim for this store, [`begin_attempt`](Store::begin_attempt)
    /// fails with [`StoreErrorKind::NotFound`] once the claim was taken over. The receiver
    /// then [renews](Store::renew) its claims every third of the lease,
    /// [claims](Store::claim) the records whose claim lapsed (instead of reading
    /// [`pending`](Store::pending) once at start), and [releases](Store::release) its claims
    /// when it shuts down.
    fn lease(&self) -> Option<Duration> {
        None
    }

    /// Claims up to `max` pending records of `kind` ([`Envelope::kind`]) that nobody holds a
    /// live claim on, oldest first: each receiver of a shared store claims only its own.
    fn claim(
        &self,
        kind: &str,
        max: usize,
    ) -> impl Future<Output = Result<Vec<Record>, StoreError>> + Send {
        let _ = (kind, max);
        async { Ok(Vec::new()) }
    }

    /// Extends every claim this store holds by one lease; returns how many.
    fn renew(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        async { Ok(0) }
    }

    /// Gives up every claim this store holds (at shutdown), so that another receiver, or
    /// this one started again, takes them at once; returns how many.
    fn release(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        async { Ok(0) }
    }
}

/// The object-safe form of [`Store`], so that the receiver is not generic over it.
pub(crate) trait ErasedStore: Send + Sync + 'static {
    fn append(&self, record: NewRecord) -> BoxFuture<'_, Result<Appended, StoreError>>;
    fn begin_attempt(&self, id: RecordId) -> BoxFuture<'_, Result<u32, StoreError>>;
    fn complete_all(&self, ids: Vec<RecordId>) -> BoxFuture<'_, Result<(), StoreError>>;
    fn fail(&self, id: RecordId, error: String) -> BoxFuture<'_, Result<(), StoreError>>;
    fn dead_letter(&self, id: RecordId, error: String) -> BoxFuture<'_, Result<(), StoreError>>;
    fn pending(&self) -> BoxFuture<'_, Result<Vec<Record>, StoreError>>;
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    fn summary(&self) -> BoxFuture<'_, Result<StoreSummary, StoreError>>;
    fn get(&self, id: RecordId) -> BoxFuture<'_, Result<Option<Record>, StoreError>>;
    fn replay(&self, id: RecordId) -> BoxFuture<'_, Result<Record, StoreError>>;
    fn get_rejected(
        &self,
        id: RecordId,
    ) -> BoxFuture<'_, Result<Option<RejectedRecord>, StoreError>>;
    fn remove_rejected(&self, id: RecordId) -> BoxFuture<'_, Result<(), StoreError>>;
    fn reject(
        &self,
        status: u16,
        reason: String,
        envelope: Envelope,
        body: Bytes,
    ) -> BoxFuture<'_, Result<RecordId, StoreError>>;
    fn prune(&self, before: SystemTime) -> BoxFuture<'_, Result<u64, StoreError>>;
    fn lease(&self) -> Option<Duration>;
    fn claim<'a>(
        &'a self,
        kind: &'a str,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<Record>, StoreError>>;
    fn renew(&self) -> BoxFuture<'_, Result<u64, StoreError>>;
    fn release(&self) -> BoxFuture<'_, Result<u64, StoreError>>;
}

pub(crate) type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl<S: Store> ErasedStore for S {
    fn append(&self, record: NewRecord) -> BoxFuture<'_, Result<Appended, StoreError>> {
        Box::pin(Store::append(self, record))
    }
    fn begin_attempt(&self, id: RecordId) -> BoxFuture<'_, Result<u32, StoreError>> {
        Box::pin(Store::begin_attempt(self, id))
    }
    fn complete_all(&self, ids: Vec<RecordId>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(Store::complete_all(self, ids))
    }
    fn fail(&self, id: RecordId, error: String) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(Store::fail(self, id, error))
    }
    fn dead_letter(&self, id: RecordId, error: String) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(Store::dead_letter(self, id, error))
    }
    fn pending(&self) -> BoxFuture<'_, Result<Vec<Record>, StoreError>> {
        Box::pin(Store::pending(self))
    }
    fn summary(&self) -> BoxFuture<'_, Result<StoreSummary, StoreError>> {
        Box::pin(Store::summary(self))
    }
    fn get(&self, id: RecordId) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        Box::pin(Store::get(self, id))
    }
    fn replay(&self, id: RecordId) -> BoxFuture<'_, Result<Record, StoreError>> {
        Box::pin(Store::replay(self, id))
    }
    fn get_rejected(
        &self,
        id: RecordId,
    ) -> BoxFuture<'_, Result<Option<RejectedRecord>, StoreError>> {
        Box::pin(Store::get_rejected(self, id))
    }
    fn remove_rejected(&self, id: RecordId) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(Store::remove_rejected(self, id))
    }
    fn reject(
        &self,
        status: u16,
        reason: String,
        envelope: Envelope,
        body: Bytes,
    ) -> BoxFuture<'_, Result<RecordId, StoreError>> {
        Box::pin(Store::reject(self, status, reason, envelope, body))
    }
    fn prune(&self, before: SystemTime) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(Store::prune(self, before))
    }
    fn lease(&self) -> Option<Duration> {
        Store::lease(self)
    }
    fn claim<'a>(
        &'a self,
        kind: &'a str,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        Box::pin(Store::claim(self, kind, max))
    }
    fn renew(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(Store::renew(self))
    }
    fn release(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(Store::release(self))
    }
}
