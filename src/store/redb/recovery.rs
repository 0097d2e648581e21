//! Recovery and quarantine: opening the database (again, after an I/O error), and moving a
//! record that cannot be read back to the rejected bodies.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use ::redb::{Builder, Database, ReadableTable};

use super::format::{KEYS, META, PAUSED, decode};
use super::migrate;
use super::rejected::{self, RejectedTables};
use super::shared::{Shared, unavailable};
use super::tables::RecordTables;
use crate::store::{Envelope, RecordId, StoreError, StoreErrorKind, millis};

/// Opens the database with the store's options, creates the tables and the refused bodies'
/// folder, moves records of versions 1 and 2 to version 3 (`migrate.rs`), quarantines every
/// record whose metadata cannot be read back, and sweeps the folder (the temporary files too
/// when `first`, the open before any refusal).
///
/// Bodies are not read here (a store of large bodies would read them all at every open): a
/// body changed on disk is found, and quarantined, when it is read.
pub(super) fn open_database(shared: &Shared, first: bool) -> Result<Arc<Database>, StoreError> {
    private_file(&shared.path)?;
    private_dir(shared.folder.path())?;
    shared.folder.open()?;
    let db = Builder::new()
        .set_cache_size(shared.options.cache_size)
        .create(&shared.path)
        .map_err(|err| match err {
            ::redb::DatabaseError::Storage(::redb::StorageError::Corrupted(_)) => {
                StoreError::new(StoreErrorKind::Corrupt, err)
            }
            other => unavailable(other),
        })?;
    let limits = shared.options.rejected;
    rejected::recount(&db, &shared.folder)?;
    rejected::migrate(&db, &shared.folder, limits, &shared.rejected_dropped)?;
    migrate::records(&db)?;
    let tx = db.begin_write().map_err(unavailable)?;
    let settle = {
        let mut records = RecordTables::open(&tx)?;
        let mut rejected = RejectedTables::open(&tx, &shared.folder, limits)?;
        tx.open_table(KEYS).map_err(unavailable)?;
        tx.open_table(PAUSED).map_err(unavailable)?;
        let mut meta = tx.open_table(META).map_err(unavailable)?;
        let mut bad = Vec::new();
        for entry in records.records.iter().map_err(unavailable)? {
            let (id, value) = entry.map_err(unavailable)?;
            if let Err(err) = decode(id.value(), value.value()) {
                bad.push((id.value(), err));
            }
        }
        let mut tables = Quarantine {
            records: &mut records,
            rejected: &mut rejected,
            meta: &mut meta,
            shared,
        };
        for (id, err) in bad {
            tables.apply(id, &err)?;
        }
        // Limits lowered since the last run apply at once, and bodies that aged while the
        // store was closed go.
        rejected.trim(&mut meta, SystemTime::now())?;
        // A real write, so that an open (a reopen after an I/O error above all) proves that
        // the disk takes writes: a transaction that changes nothing commits even on a dead one.
        let opened = u64::try_from(millis(SystemTime::now())).unwrap_or(0);
        meta.insert("opened_at_ms", opened).map_err(unavailable)?;
        rejected.finish()?
    };
    if let Err(err) = tx.commit() {
        settle.failed();
        return Err(unavailable(err));
    }
    settle.committed(&shared.folder, &limits, &shared.rejected_dropped);
    // Once the headers are committed: a file none of them names was left by a crash.
    rejected::sweep(&db, &shared.folder, first)?;
    Ok(Arc::new(db))
}

/// The tables a quarantine touches.
pub(super) struct Quarantine<'a, 't> {
    pub(super) records: &'a mut RecordTables<'t>,
    pub(super) rejected: &'a mut RejectedTables<'t>,
    pub(super) meta: &'a mut ::redb::Table<'t, &'static str, u64>,
    pub(super) shared: &'a Shared,
}

impl Quarantine<'_, '_> {
    /// Moves record `id`, raw bytes and all (its stored value, then its body), to the rejected
    /// bodies, with why, and releases its hold; logs and counts.
    pub(super) fn apply(&mut self, id: RecordId, why: &StoreError) -> Result<(), StoreError> {
        let Some(raw) = self.records.remove(id)? else {
            return Ok(());
        };
        self.shared.holds.release(id);
        self.shared.quarantined.fetch_add(1, Ordering::Relaxed);
        let reason = format!("corrupt stored record {id}: {why}");
        let envelope = Envelope::new(SystemTime::now(), None, Vec::new());
        // Written by the writer itself: a quarantine is rare, and its record is in hand here.
        let body = self.rejected.stage(&raw)?;
        match self.rejected.keep(self.meta, 0, reason, envelope, body)? {
            Ok(rejected) => {
                tracing::error!(record = id, rejected, error = %why, "corrupt stored notification: not handed to the handler, moved to the rejected bodies");
            }
            Err(not_kept) => {
                tracing::error!(record = id, error = %why, not_kept = %not_kept, "corrupt stored notification: not handed to the handler, and too large to keep among the rejected bodies");
            }
        }
        Ok(())
    }
}

/// Creates the directory `0700` when it is missing: it will hold every notification's body.
/// One made by the user keeps its mode, with a warning when other users may enter it.
pub(super) fn private_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        match std::fs::metadata(dir) {
            Ok(found) => {
                let mode = found.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        dir = %dir.display(),
                        mode = %format_args!("{mode:03o}"),
                        "the store's directory is open to other users, and the store holds every notification's body: `chmod 700` it"
                    );
                }
                Ok(())
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(unavailable),
            Err(err) => Err(unavailable(err)),
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir).map_err(unavailable)
}

/// Creates the database file `0600` before redb writes into it, and sets it `0600` at every
/// open: it holds every notification's body. A mode that cannot be set is warned about, not
/// fatal (a file of another owner that this process may still write).
fn private_file(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(unavailable)?;
        if let Err(err) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
            tracing::warn!(path = %path.display(), error = %err, "could not make the store's file private (mode 600)");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The store is down: since when, and when to try reopening it next.
pub(super) struct Outage {
    pub(super) since: Instant,
    next_try: Instant,
    backoff: Duration,
}

impl Outage {
    const FIRST_BACKOFF: Duration = Duration::from_millis(100);
    const MAX_BACKOFF: Duration = Duration::from_secs(5);

    pub(super) fn new() -> Self {
        let now = Instant::now();
        Self {
            since: now,
            next_try: now,
            backoff: Self::FIRST_BACKOFF,
        }
    }

    /// Reopens the database if it is time to try; true once it is open again (the outage
    /// ends with the first commit that lands).
    pub(super) fn try_reopen(&mut self, shared: &Shared) -> bool {
        let now = Instant::now();
        if now < self.next_try {
            return false;
        }
        match reopen(shared) {
            Ok(()) => true,
            Err(err) => {
                self.failed_again(&err);
                false
            }
        }
    }

    /// The next try waits longer.
    pub(super) fn failed_again(&mut self, err: &StoreError) {
        tracing::debug!(error = %err, retry_in = ?self.backoff, "the store cannot take writes yet");
        self.next_try = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(Self::MAX_BACKOFF);
    }
}

/// Closes the database (once no reader holds it) and opens it again.
fn reopen(shared: &Shared) -> Result<(), StoreError> {
    let slot = || {
        shared
            .db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let old = slot().take();
    if let Some(mut old) = old {
        // Readers hold it only for the length of one read.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match Arc::try_unwrap(old) {
                Ok(db) => {
                    drop(db); // closes the file and its lock
                    shared.folder.close();
                    break;
                }
                Err(held) if Instant::now() < deadline => {
                    old = held;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(held) => {
                    *slot() = Some(held);
                    return Err(unavailable("a reader still holds the database"));
                }
            }
        }
    }
    let db = open_database(shared, false)?;
    *slot() = Some(db);
    Ok(())
}
