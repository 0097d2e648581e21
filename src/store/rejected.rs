//! Refused bodies: what a store keeps of them, and its limits.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::error::{StoreError, StoreErrorKind};
use super::record::{Envelope, RecordId, millis};

/// A body refused with a 4xx, kept so that it can be recovered.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefusedBody {
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

/// [`RefusedBody`], under its old name.
#[deprecated(since = "0.2.0", note = "renamed to `RefusedBody`")]
pub type RejectedRecord = RefusedBody;

impl RefusedBody {
    /// A kept refused body (for a [`Store`](crate::store::Store) implementation reading one back).
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

impl fmt::Debug for RefusedBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefusedBody")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("reason", &self.reason)
            .field("envelope", &self.envelope)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// A kept refused body without its bytes: what a list shows
/// ([`Store::rejected_page`](crate::store::Store::rejected_page)). Fetch the bytes of one with
/// [`Store::get_rejected`](crate::store::Store::get_rejected).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefusedBodySummary {
    /// Its id.
    pub id: RecordId,
    /// The status it was answered with (0 for a corrupt record set aside by the store).
    pub status: u16,
    /// Why, as answered (never a value from the body).
    pub reason: String,
    /// The request's envelope.
    pub envelope: Envelope,
    /// The length of the kept body, in bytes; it counts toward [`RefusedBodyLimits::max_bytes`]
    /// with its record.
    pub bytes: u64,
}

/// [`RefusedBodySummary`], under its old name.
#[deprecated(since = "0.2.0", note = "renamed to `RefusedBodySummary`")]
pub type RejectedSummary = RefusedBodySummary;

impl RefusedBodySummary {
    /// A summary (for a [`Store`](crate::store::Store) implementation listing its refused bodies).
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

impl From<RefusedBody> for RefusedBodySummary {
    fn from(record: RefusedBody) -> Self {
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
/// [module guide](crate::store#refused-bodies-are-bounded).
///
/// When a new refused body takes the total over the cap, the oldest go first; bodies past
/// the age go at the next refusal and at the hourly prune. Each drop is counted and logged.
/// A body larger than the cap on its own is not kept at all, and a cap of 0 keeps none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefusedBodyLimits {
    /// The most bytes of refused bodies kept, in all (default
    /// [`DEFAULT_MAX_BYTES`](Self::DEFAULT_MAX_BYTES)), counted as each body's bytes plus its
    /// record, at least 4 KiB an entry ([`ENTRY_COST`](Self::ENTRY_COST)), so that tiny bodies
    /// are bounded too: a flood of empty ones keeps at most `max_bytes / 4 KiB` of them.
    pub max_bytes: u64,
    /// How long after it was received a refused body is kept at most (default
    /// [`DEFAULT_MAX_AGE`](Self::DEFAULT_MAX_AGE)).
    pub max_age: Duration,
}

/// [`RefusedBodyLimits`], under its old name.
#[deprecated(since = "0.2.0", note = "renamed to `RefusedBodyLimits`")]
pub type RejectedLimits = RefusedBodyLimits;

impl RefusedBodyLimits {
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

impl Default for RefusedBodyLimits {
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
    pub(crate) fn report(&self, limits: &RefusedBodyLimits, counter: &AtomicU64) {
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
