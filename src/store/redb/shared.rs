//! What the writer thread and the readers share, and the errors both report.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ::redb::Database;

use super::bodies::Folder;
use super::options::RedbOptions;
use crate::store::{RecordId, StoreError, StoreErrorKind, StoreSummary};

/// The most refused bodies written at once: each holds a file open while it is written and
/// fsynced, and a flood of refusals must not take every file handle the process has.
pub(super) const BODY_WRITES: usize = 4;

/// What the writer thread and the readers share.
pub(super) struct Shared {
    pub(super) path: PathBuf,
    /// The refused bodies' files.
    pub(super) folder: Folder,
    pub(super) options: RedbOptions,
    /// `None` while the writer reopens the database after an I/O error.
    pub(super) db: RwLock<Option<Arc<Database>>>,
    /// Set from an I/O error until the database is open again.
    pub(super) recovering: AtomicBool,
    pub(super) recoveries: AtomicU64,
    pub(super) quarantined: AtomicU64,
    /// Refused bodies dropped for the limits.
    pub(super) rejected_dropped: AtomicU64,
    /// Refused bodies being written: [`BODY_WRITES`] at most.
    pub(super) body_writes: Arc<tokio::sync::Semaphore>,
    /// The last counted summary and when: receivers sharing the store sample it at once, and
    /// one scan serves them all.
    pub(super) summary: std::sync::Mutex<Option<(Instant, StoreSummary)>>,
    /// The records being handled: no claim takes them.
    pub(super) holds: Arc<Holds>,
}

/// The records being handled (claimed, or appended started), in memory: a restart frees them
/// all, so that what was being handled at a crash is due again at once. Shared by every clone
/// of the store, so by every receiver using it.
#[derive(Debug, Default)]
pub(super) struct Holds(std::sync::Mutex<HashSet<RecordId>>);

impl Holds {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<RecordId>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Holds `id`; false when it was held already.
    pub(super) fn hold(&self, id: RecordId) -> bool {
        self.lock().insert(id)
    }

    /// Releases `id` (held or not).
    pub(super) fn release(&self, id: RecordId) {
        self.lock().remove(&id);
    }

    /// Whether `id` is held.
    pub(super) fn is_held(&self, id: RecordId) -> bool {
        self.lock().contains(&id)
    }

    /// How many records are held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// How long a counted summary serves before the records are counted again.
pub(super) const SUMMARY_FRESH: Duration = Duration::from_millis(500);

impl Shared {
    pub(super) fn db(&self) -> Result<Arc<Database>, StoreError> {
        let db = self
            .db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        db.clone().ok_or_else(recovering)
    }
}

pub(super) fn recovering() -> StoreError {
    StoreError::new(
        StoreErrorKind::Unavailable,
        "the store is recovering from an I/O error; retry later",
    )
}

pub(super) fn unavailable(err: impl Into<crate::BoxError>) -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, err)
}
