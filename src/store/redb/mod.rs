//! The embedded store: a redb file, and a folder of the refused bodies' files, written by one
//! thread that commits in groups.
//!
//! ```text
//! <dir>/airudder.redb    notifications, de-duplication keys, refused bodies' headers, counters
//! <dir>/rejected/<id>    one refused body's bytes, as received (bodies.rs)
//! ```

mod bodies;
mod format;
mod rejected;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use ::redb::{Builder, Database, ReadableDatabase, ReadableTable};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use self::bodies::{Folder, Staged};
use self::format::{Header, KEYS, META, RECORDS, decode_record, encode_record};
use self::rejected::RejectedTables;
use super::{
    Appended, Envelope, NewRecord, Record, RecordId, RecordState, RejectedLimits, RejectedRecord,
    RejectedSummary, Store, StoreError, StoreErrorKind, StoreSummary, millis,
};

/// The most commands one transaction commits together.
const MAX_GROUP: usize = 1024;

/// The most refused bodies written at once: each holds a file open while it is written and
/// fsynced, and a flood of refusals must not take every file handle the process has.
const BODY_WRITES: usize = 4;

/// The embedded [`Store`]: a redb database in a directory, fsynced on every commit, with
/// concurrent writes committed together (group commit).
///
/// The directory holds the database file, `airudder.redb`, and a folder `rejected/` with a
/// file for each kept refused body (`0700` and `0600`, as the directory and the database).
///
/// - **It recovers by itself.** After an I/O error (a full disk, a file system remounted
///   read-only) every operation answers [`StoreErrorKind::Unavailable`] (the receiver: 503, the
///   sender retries) while the store reopens the database with backoff, as soon as the disk
///   allows, without a restart. The outage is logged once when it starts and once when it
///   ends, and counted ([`recoveries`](Self::recoveries)).
/// - **It checks what it reads.** Every record carries a CRC-32 of its bytes, checked on every
///   read: a record changed on disk (after a clean stop, where redb checks nothing) is logged
///   with its id, moved with its raw bytes to the [rejected](Store::rejected) bodies, counted
///   ([`quarantined`](Self::quarantined)), and never handed to the handler.
/// - **Its memory is bounded** by its page cache ([`RedbOptions::cache_size`]).
/// - **Its refused bodies are bounded** in size and age ([`RedbOptions::keep_rejected`]), and
///   listed without reading a body ([`Store::rejected_page`]). Each is a file of its own, so
///   that a dropped one gives its disk space back at once: the folder holds at most the cap,
///   and the bodies being written.
///
/// Cloning is cheap; clones share the database. The database file is locked while open: a
/// second process opening the same directory gets [`StoreErrorKind::Unavailable`].
#[derive(Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

/// How the embedded store is opened; see [`RedbStore::open_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedbOptions {
    cache_size: usize,
    rejected: RejectedLimits,
}

impl RedbOptions {
    /// The default page cache: 8 MiB, what a small VM can spare. redb's own default, 1 GiB,
    /// is slowly filled by the keys of a 24-hour de-duplication window.
    pub const DEFAULT_CACHE_SIZE: usize = 8 * 1024 * 1024;

    /// The most memory redb's page cache may hold, in bytes (default
    /// [`DEFAULT_CACHE_SIZE`](Self::DEFAULT_CACHE_SIZE)).
    #[must_use]
    pub fn cache_size(mut self, bytes: usize) -> Self {
        self.cache_size = bytes;
        self
    }

    /// How much of the refused bodies to keep (default [`RejectedLimits::default`]: 64 MiB in
    /// all, 7 days each). Applied at open too: lowered limits drop what they no longer allow.
    #[must_use]
    pub fn keep_rejected(mut self, limits: RejectedLimits) -> Self {
        self.rejected = limits;
        self
    }
}

impl Default for RedbOptions {
    fn default() -> Self {
        Self {
            cache_size: Self::DEFAULT_CACHE_SIZE,
            rejected: RejectedLimits::default(),
        }
    }
}

struct Inner {
    shared: Arc<Shared>,
    writer: Option<mpsc::UnboundedSender<Command>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the writer thread and the readers share.
struct Shared {
    path: PathBuf,
    /// The refused bodies' files.
    folder: Folder,
    options: RedbOptions,
    /// `None` while the writer reopens the database after an I/O error.
    db: RwLock<Option<Arc<Database>>>,
    /// Set from an I/O error until the database is open again.
    recovering: AtomicBool,
    recoveries: AtomicU64,
    quarantined: AtomicU64,
    /// Refused bodies dropped for the limits.
    rejected_dropped: AtomicU64,
    /// Refused bodies being written: [`BODY_WRITES`] at most.
    body_writes: Arc<tokio::sync::Semaphore>,
    /// The last counted summary and when: receivers sharing the store sample it at once, and
    /// one scan serves them all.
    summary: std::sync::Mutex<Option<(Instant, StoreSummary)>>,
}

/// How long a counted summary serves before the records are counted again.
const SUMMARY_FRESH: Duration = Duration::from_millis(500);

impl Shared {
    fn db(&self) -> Result<Arc<Database>, StoreError> {
        let db = self
            .db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        db.clone().ok_or_else(recovering)
    }
}

fn recovering() -> StoreError {
    StoreError::new(
        StoreErrorKind::Unavailable,
        "the store is recovering from an I/O error; retry later",
    )
}

impl Drop for Inner {
    /// Lets the writer finish what it was given, so that the file is closed when the last
    /// clone is gone and can be opened again at once.
    fn drop(&mut self) {
        drop(self.writer.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.inner.shared.path)
            .field("recovering", &self.is_recovering())
            .finish_non_exhaustive()
    }
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Command {
    Append(NewRecord, Reply<Appended>),
    BeginAttempt(RecordId, Reply<u32>),
    Complete(RecordId, Reply<()>),
    Fail(RecordId, String, Reply<()>),
    Dead(RecordId, String, Reply<()>),
    Replay(RecordId, Reply<Record>),
    /// A refused body, already in a file of its own: the writer gives it its id.
    Reject(u16, String, Envelope, Staged, Reply<RecordId>),
    RemoveRejected(RecordId, Reply<()>),
    Prune(i64, Reply<u64>),
    /// A record a reader found corrupt: moved to the rejected bodies.
    Quarantine(RecordId),
}

fn unavailable(err: impl Into<crate::BoxError>) -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, err)
}

impl RedbStore {
    /// Opens (or creates) the store in `dir`, as the file `airudder.redb` and the folder
    /// `rejected/`, with the default [`RedbOptions`].
    ///
    /// A record that cannot be read back (a corrupt write, or bytes changed on disk) is
    /// reported in the log and moved to the [rejected](Store::rejected) bodies with its raw
    /// bytes, never skipped silently.
    ///
    /// # Errors
    /// When the directory, the file or the folder cannot be created or opened, the file is corrupt beyond
    /// repair ([`StoreErrorKind::Corrupt`]), or another process has it open.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(dir, RedbOptions::default())
    }

    /// Opens (or creates) the store in `dir` with these options.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(dir: impl AsRef<Path>, options: RedbOptions) -> Result<Self, StoreError> {
        let dir = dir.as_ref();
        private_dir(dir)?;
        let shared = Arc::new(Shared {
            path: dir.join("airudder.redb"),
            folder: Folder::new(dir),
            options,
            db: RwLock::new(None),
            recovering: AtomicBool::new(false),
            recoveries: AtomicU64::new(0),
            quarantined: AtomicU64::new(0),
            rejected_dropped: AtomicU64::new(0),
            body_writes: Arc::new(tokio::sync::Semaphore::new(BODY_WRITES)),
            summary: std::sync::Mutex::new(None),
        });
        let db = open_database(&shared, true)?;
        *shared
            .db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(db);
        let (writer, commands) = mpsc::unbounded_channel();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("airudder-store".into())
            .spawn(move || write_loop(&thread_shared, commands))
            .map_err(unavailable)?;
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                writer: Some(writer),
                thread: Some(thread),
            }),
        })
    }

    /// How many times the store reopened itself after an I/O error.
    pub fn recoveries(&self) -> u64 {
        self.inner.shared.recoveries.load(Ordering::Relaxed)
    }

    /// How many corrupt records were moved to the rejected bodies since the store was opened.
    pub fn quarantined(&self) -> u64 {
        self.inner.shared.quarantined.load(Ordering::Relaxed)
    }

    /// How many kept refused bodies the store dropped for its
    /// [limits](RedbOptions::keep_rejected) since it was opened.
    pub fn rejected_dropped(&self) -> u64 {
        self.inner.shared.rejected_dropped.load(Ordering::Relaxed)
    }

    /// Whether the store is down after an I/O error, reopening.
    pub fn is_recovering(&self) -> bool {
        self.inner.shared.recovering.load(Ordering::Relaxed)
    }

    /// The database file (the refused bodies' files are in `rejected/` beside it).
    pub fn path(&self) -> &Path {
        &self.inner.shared.path
    }

    /// Hands the command to the writer at once (so that it is committed even if the returned
    /// future is dropped), and returns the wait for its answer.
    fn send<T: Send + 'static>(
        &self,
        command: impl FnOnce(Reply<T>) -> Command,
    ) -> impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let sent = match self.inner.writer.as_ref() {
            Some(writer) => writer.send(command(reply)).is_ok(),
            None => false,
        };
        async move {
            if !sent {
                return Err(StoreError::bare(StoreErrorKind::Closed));
            }
            answer
                .await
                .map_err(|_| StoreError::bare(StoreErrorKind::Closed))?
        }
    }

    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.inner.shared.db()?;
        tokio::task::spawn_blocking(move || read(&db))
            .await
            .map_err(unavailable)?
    }

    /// Reads the records in `state`; a corrupt one is left out and sent to be quarantined,
    /// never returned.
    async fn records_in(&self, state: RecordState) -> Result<Vec<Record>, StoreError> {
        let (records, corrupt) = self.read(move |db| records_in(db, state)).await?;
        for (id, _) in corrupt {
            self.quarantine(id);
        }
        Ok(records)
    }

    /// Has the writer move a record found corrupt to the rejected bodies (it logs it).
    fn quarantine(&self, id: RecordId) {
        if let Some(writer) = &self.inner.writer {
            let _ = writer.send(Command::Quarantine(id));
        }
    }
}

impl Store for RedbStore {
    fn append(
        &self,
        record: NewRecord,
    ) -> impl std::future::Future<Output = Result<Appended, StoreError>> + Send {
        self.send(move |reply| Command::Append(record, reply))
    }

    fn begin_attempt(
        &self,
        id: RecordId,
    ) -> impl std::future::Future<Output = Result<u32, StoreError>> + Send {
        self.send(move |reply| Command::BeginAttempt(id, reply))
    }

    fn complete(
        &self,
        id: RecordId,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        self.send(move |reply| Command::Complete(id, reply))
    }

    async fn fail(&self, id: RecordId, error: String) -> Result<(), StoreError> {
        self.send(|reply| Command::Fail(id, error, reply)).await
    }

    async fn dead_letter(&self, id: RecordId, error: String) -> Result<(), StoreError> {
        self.send(|reply| Command::Dead(id, error, reply)).await
    }

    async fn pending(&self) -> Result<Vec<Record>, StoreError> {
        self.records_in(RecordState::Pending).await
    }

    async fn dead_letters(&self) -> Result<Vec<Record>, StoreError> {
        self.records_in(RecordState::Dead).await
    }

    /// Counts at most half a second old: receivers that share the store sample it together.
    async fn summary(&self) -> Result<StoreSummary, StoreError> {
        let shared = &self.inner.shared;
        let (recoveries, recovering) = (
            shared.recoveries.load(Ordering::Relaxed),
            shared.recovering.load(Ordering::Relaxed),
        );
        let cached = *shared
            .summary
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let counted = match cached {
            Some((at, counted)) if at.elapsed() < SUMMARY_FRESH => counted,
            _ => {
                let counted = self.read(summary).await?;
                *shared
                    .summary
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some((Instant::now(), counted));
                counted
            }
        };
        Ok(counted.with_recovery(recoveries, recovering))
    }

    async fn get(&self, id: RecordId) -> Result<Option<Record>, StoreError> {
        let read = self
            .read(move |db| {
                let tx = db.begin_read().map_err(unavailable)?;
                let table = tx.open_table(RECORDS).map_err(unavailable)?;
                let value = table.get(id).map_err(unavailable)?;
                Ok(value.map(|v| decode_record(id, v.value())).transpose())
            })
            .await?;
        if read
            .as_ref()
            .is_err_and(|err| err.kind() == StoreErrorKind::Corrupt)
        {
            self.quarantine(id);
        }
        read
    }

    async fn replay(&self, id: RecordId) -> Result<Record, StoreError> {
        self.send(|reply| Command::Replay(id, reply)).await
    }

    async fn reject(
        &self,
        status: u16,
        reason: String,
        envelope: Envelope,
        body: Bytes,
    ) -> Result<RecordId, StoreError> {
        // Checked before the body is written: one over the cap is never kept. Its header's
        // length is known to the writer alone, which checks again with it.
        let len = body.len() as u64;
        let at_least = RejectedLimits::charge(len, reason.len() as u64);
        self.inner.shared.options.rejected.admit(len, at_least)?;
        let Some(writer) = self.inner.writer.clone() else {
            return Err(StoreError::bare(StoreErrorKind::Closed));
        };
        let shared = Arc::clone(&self.inner.shared);
        let (reply, answer) = oneshot::channel();
        // The body is written and fsynced here, not by the writer: an 8 MiB write and fsync
        // would hold up every append of its group commit. The writer only renames it and
        // commits its header. A task of its own waits its turn, writes and sends, so that the
        // refusal is kept even if this future is dropped, as other commands are.
        let writes = Arc::clone(&shared.body_writes);
        drop(tokio::spawn(async move {
            // Never closed: the permit always comes.
            let Ok(permit) = writes.acquire_owned().await else {
                return;
            };
            drop(tokio::task::spawn_blocking(move || {
                let staged = shared.folder.stage(&body);
                drop(permit);
                match staged {
                    Ok(staged) => {
                        // Unsent (the writer is gone), the file is deleted and the reply dropped.
                        let _ =
                            writer.send(Command::Reject(status, reason, envelope, staged, reply));
                    }
                    // This refusal alone: not kept (the receiver logs it).
                    Err(err) => {
                        let _ = reply.send(Err(err));
                    }
                }
            }));
        }));
        answer
            .await
            .map_err(|_| StoreError::bare(StoreErrorKind::Closed))?
    }

    /// A body that cannot be read (its file lost, its bytes changed) is left out, with a WARN
    /// naming it: [`get_rejected`](Store::get_rejected) says why.
    async fn rejected(&self) -> Result<Vec<RejectedRecord>, StoreError> {
        let shared = Arc::clone(&self.inner.shared);
        self.read(move |db| rejected::all(db, &shared.folder)).await
    }

    /// Reads the headers alone: no body is loaded.
    async fn rejected_page(
        &self,
        after: RecordId,
        limit: usize,
    ) -> Result<Vec<RejectedSummary>, StoreError> {
        self.read(move |db| rejected::page(db, after, limit)).await
    }

    async fn get_rejected(&self, id: RecordId) -> Result<Option<RejectedRecord>, StoreError> {
        let shared = Arc::clone(&self.inner.shared);
        self.read(move |db| rejected::get(db, &shared.folder, id))
            .await
    }

    async fn remove_rejected(&self, id: RecordId) -> Result<(), StoreError> {
        self.send(|reply| Command::RemoveRejected(id, reply)).await
    }

    async fn prune(&self, before: SystemTime) -> Result<u64, StoreError> {
        let before = millis(before);
        self.send(|reply| Command::Prune(before, reply)).await
    }
}

/// The records in `state`, and the ids of those that cannot be read back, with why.
#[allow(clippy::type_complexity)]
fn records_in(
    db: &Database,
    state: RecordState,
) -> Result<(Vec<Record>, Vec<(RecordId, StoreError)>), StoreError> {
    let tx = db.begin_read().map_err(unavailable)?;
    let table = tx.open_table(RECORDS).map_err(unavailable)?;
    let (mut out, mut corrupt) = (Vec::new(), Vec::new());
    for entry in table.iter().map_err(unavailable)? {
        let (id, value) = entry.map_err(unavailable)?;
        match decode_record(id.value(), value.value()) {
            Ok(record) if record.state == state => out.push(record),
            Ok(_) => {}
            Err(err) => corrupt.push((id.value(), err)),
        }
    }
    Ok((out, corrupt))
}

/// Counts the records by their state byte alone; only the oldest pending one is decoded, for
/// its arrival. A record that cannot be read is left out (reading it quarantines it).
fn summary(db: &Database) -> Result<StoreSummary, StoreError> {
    let tx = db.begin_read().map_err(unavailable)?;
    let table = tx.open_table(RECORDS).map_err(unavailable)?;
    let (mut pending, mut dead, mut oldest) = (0, 0, None);
    for entry in table.iter().map_err(unavailable)? {
        let (id, value) = entry.map_err(unavailable)?;
        match value.value().get(1) {
            Some(0) => {
                pending += 1;
                if oldest.is_none() {
                    oldest = decode_record(id.value(), value.value())
                        .ok()
                        .map(|record| record.envelope.received_at());
                }
            }
            Some(1) => dead += 1,
            _ => {}
        }
    }
    Ok(StoreSummary::new(pending, dead, oldest))
}

/// Opens the database with the store's options, creates the tables and the refused bodies'
/// folder, quarantines every record that cannot be read back, and sweeps the folder (the
/// temporary files too when `first`, the open before any refusal).
fn open_database(shared: &Shared, first: bool) -> Result<Arc<Database>, StoreError> {
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
    let tx = db.begin_write().map_err(unavailable)?;
    let settle = {
        let mut records = tx.open_table(RECORDS).map_err(unavailable)?;
        let mut rejected = RejectedTables::open(&tx, &shared.folder, limits)?;
        tx.open_table(KEYS).map_err(unavailable)?;
        let mut meta = tx.open_table(META).map_err(unavailable)?;
        let mut bad = Vec::new();
        for entry in records.iter().map_err(unavailable)? {
            let (id, value) = entry.map_err(unavailable)?;
            if let Err(err) = decode_record(id.value(), value.value()) {
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
struct Quarantine<'a, 't> {
    records: &'a mut ::redb::Table<'t, u64, &'static [u8]>,
    rejected: &'a mut RejectedTables<'t>,
    meta: &'a mut ::redb::Table<'t, &'static str, u64>,
    shared: &'a Shared,
}

impl Quarantine<'_, '_> {
    /// Moves record `id`, raw bytes and all, to the rejected bodies, with why; logs and counts.
    fn apply(&mut self, id: RecordId, why: &StoreError) -> Result<(), StoreError> {
        let Some(raw) = self.records.remove(id).map_err(unavailable)? else {
            return Ok(());
        };
        let raw = raw.value().to_vec();
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

/// The meta entry holding the next record id.
const NEXT_RECORD: &str = "next_record";

/// Creates the directory `0700` when it is missing: it will hold every notification's body.
/// One made by the user keeps its mode, with a warning when other users may enter it.
fn private_dir(dir: &Path) -> Result<(), StoreError> {
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

// ---- The writer ------------------------------------------------------------------------------

/// Takes every command waiting, applies them in one transaction, commits (fsync), answers.
///
/// After a failed transaction (an I/O error: redb then refuses everything until the database
/// is reopened) every command fails at once with `Unavailable` while the database is reopened
/// with backoff, on the commands' arrival: the receiver's requests and its completer's retries
/// keep coming, so the store comes back as soon as the disk allows.
fn write_loop(shared: &Shared, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut outage: Option<Outage> = None;
    while let Some(first) = commands.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match commands.try_recv() {
                Ok(command) => group.push(command),
                Err(_) => break,
            }
        }
        if outage.as_mut().is_some_and(|down| !down.try_reopen(shared)) {
            let err = recovering();
            for command in group {
                fail_command(command, &err).send(None);
            }
            continue;
        }
        let db = match shared.db() {
            Ok(db) => db,
            Err(err) => {
                for command in group {
                    fail_command(command, &err).send(None);
                }
                continue;
            }
        };
        let mut answers = Vec::with_capacity(group.len());
        let committed = apply(&db, shared, group, &mut answers);
        drop(db);
        match (&committed, &mut outage) {
            (Ok(()), None) => {}
            // The first commit after a reopen ends the outage: the disk takes writes again.
            (Ok(()), Some(down)) => {
                shared.recovering.store(false, Ordering::Relaxed);
                shared.recoveries.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    down_ms = down.since.elapsed().as_millis() as u64,
                    "the store is open again: accepting notifications"
                );
                outage = None;
            }
            (Err(err), None) => {
                tracing::error!(error = %err, "the store failed: answering 503 and reopening it as soon as the disk allows");
                shared.recovering.store(true, Ordering::Relaxed);
                outage = Some(Outage::new());
            }
            // Reopened, but the disk still refuses: the same outage, tried again later.
            (Err(err), Some(down)) => down.failed_again(err),
        }
        for answer in answers {
            answer.send(committed.as_ref().err());
        }
    }
}

/// The store is down: since when, and when to try reopening it next.
struct Outage {
    since: Instant,
    next_try: Instant,
    backoff: Duration,
}

impl Outage {
    const FIRST_BACKOFF: Duration = Duration::from_millis(100);
    const MAX_BACKOFF: Duration = Duration::from_secs(5);

    fn new() -> Self {
        let now = Instant::now();
        Self {
            since: now,
            next_try: now,
            backoff: Self::FIRST_BACKOFF,
        }
    }

    /// Reopens the database if it is time to try; true once it is open again (the outage
    /// ends with the first commit that lands).
    fn try_reopen(&mut self, shared: &Shared) -> bool {
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
    fn failed_again(&mut self, err: &StoreError) {
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

/// The answer to one command, sent once the transaction is committed (or has failed).
struct Answer(Finish);

/// Sends the reply, or the commit's error instead.
type Finish = Box<dyn FnOnce(Option<&StoreError>) + Send>;

impl Answer {
    fn new<T: Send + 'static>(reply: Reply<T>, result: Result<T, StoreError>) -> Self {
        Self(Box::new(move |failed| {
            let result = match failed {
                Some(err) => Err(StoreError::new(err.kind(), err.to_string())),
                None => result,
            };
            let _ = reply.send(result);
        }))
    }

    fn send(self, failed: Option<&StoreError>) {
        (self.0)(failed)
    }
}

fn apply(
    db: &Database,
    shared: &Shared,
    group: Vec<Command>,
    answers: &mut Vec<Answer>,
) -> Result<(), StoreError> {
    let tx = match db.begin_write() {
        Ok(tx) => tx,
        Err(err) => {
            let err = unavailable(err);
            answers.extend(group.into_iter().map(|c| fail_command(c, &err)));
            return Err(err);
        }
    };
    let limits = shared.options.rejected;
    let result = (|| {
        let mut records = tx.open_table(RECORDS).map_err(unavailable)?;
        let mut keys = tx.open_table(KEYS).map_err(unavailable)?;
        let mut rejected = RejectedTables::open(&tx, &shared.folder, limits)?;
        let mut meta = tx.open_table(META).map_err(unavailable)?;
        let mut tables = Tables {
            records: &mut records,
            keys: &mut keys,
            rejected: &mut rejected,
            meta: &mut meta,
            shared,
            next_record: None,
        };
        for command in group {
            answers.push(tables.apply(command)?);
        }
        tables.save_next_record()?;
        rejected.finish()
    })();
    // Never committed, the refused bodies' files placed for it go with `result`.
    let settle = result?;
    if let Err(err) = tx.commit() {
        settle.failed();
        return Err(unavailable(err));
    }
    // Counted, logged and deleted once committed: a transaction that failed dropped nothing.
    settle.committed(&shared.folder, &limits, &shared.rejected_dropped);
    Ok(())
}

fn fail_command(command: Command, err: &StoreError) -> Answer {
    let e = || StoreError::new(err.kind(), err.to_string());
    match command {
        Command::Append(_, r) => Answer::new(r, Err(e())),
        Command::BeginAttempt(_, r) => Answer::new(r, Err(e())),
        Command::Complete(_, r)
        | Command::Fail(_, _, r)
        | Command::Dead(_, _, r)
        | Command::RemoveRejected(_, r) => Answer::new(r, Err(e())),
        Command::Replay(_, r) => Answer::new(r, Err(e())),
        Command::Reject(_, _, _, _, r) => Answer::new(r, Err(e())),
        Command::Prune(_, r) => Answer::new(r, Err(e())),
        Command::Quarantine(_) => Answer(Box::new(|_| {})),
    }
}

struct Tables<'a, 't> {
    records: &'a mut ::redb::Table<'t, u64, &'static [u8]>,
    keys: &'a mut ::redb::Table<'t, &'static [u8], &'static [u8]>,
    rejected: &'a mut RejectedTables<'t>,
    meta: &'a mut ::redb::Table<'t, &'static str, u64>,
    shared: &'a Shared,
    /// The next record id, read once per transaction and written back before it commits: a
    /// group of appends reads and writes the counter once, not once each.
    next_record: Option<u64>,
}

impl Tables<'_, '_> {
    /// A new record's id, from the counter this transaction holds.
    fn next_record_id(&mut self) -> Result<u64, StoreError> {
        let next = match self.next_record {
            Some(next) => next,
            None => self
                .meta
                .get(NEXT_RECORD)
                .map_err(unavailable)?
                .map_or(1, |v| v.value()),
        };
        self.next_record = Some(next + 1);
        Ok(next)
    }

    /// Writes the counter back, when this transaction took ids.
    fn save_next_record(&mut self) -> Result<(), StoreError> {
        match self.next_record {
            Some(next) => self
                .meta
                .insert(NEXT_RECORD, next)
                .map(drop)
                .map_err(unavailable),
            None => Ok(()),
        }
    }

    /// Moves a corrupt record to the rejected bodies, in this transaction.
    fn quarantine(&mut self, id: RecordId, why: &StoreError) -> Result<(), StoreError> {
        Quarantine {
            records: self.records,
            rejected: self.rejected,
            meta: self.meta,
            shared: self.shared,
        }
        .apply(id, why)
    }

    /// Applies one command. A storage error aborts the whole group; a missing record answers
    /// that command alone.
    fn apply(&mut self, command: Command) -> Result<Answer, StoreError> {
        Ok(match command {
            Command::Append(record, reply) => {
                let result = self.append(record)?;
                Answer::new(reply, Ok(result))
            }
            Command::BeginAttempt(id, reply) => {
                let result = self.update(id, |record| {
                    record.attempts += 1;
                    Ok(record.attempts)
                })?;
                Answer::new(reply, result)
            }
            Command::Complete(id, reply) => {
                let existed = self.records.remove(id).map_err(unavailable)?.is_some();
                let result = if existed {
                    Ok(())
                } else {
                    Err(StoreError::bare(StoreErrorKind::NotFound))
                };
                Answer::new(reply, result)
            }
            Command::Fail(id, error, reply) => {
                let result = self.update(id, |record| {
                    record.last_error = Some(error);
                    Ok(())
                })?;
                Answer::new(reply, result)
            }
            Command::Dead(id, error, reply) => {
                let result = self.update(id, |record| {
                    record.last_error = Some(error);
                    record.state = RecordState::Dead;
                    Ok(())
                })?;
                Answer::new(reply, result)
            }
            Command::Replay(id, reply) => {
                let result = self.update(id, |record| {
                    if record.state != RecordState::Dead {
                        return Err(StoreError::bare(StoreErrorKind::NotFound));
                    }
                    record.state = RecordState::Pending;
                    record.attempts = 0;
                    Ok(record.clone())
                })?;
                Answer::new(reply, result)
            }
            Command::Reject(status, reason, envelope, body, reply) => {
                // Over the cap alone answers that command; the group carries on.
                let result = self
                    .rejected
                    .keep(self.meta, status, reason, envelope, body)?;
                Answer::new(reply, result)
            }
            Command::RemoveRejected(id, reply) => {
                let existed = self.rejected.remove(self.meta, id)?;
                let result = if existed {
                    Ok(())
                } else {
                    Err(StoreError::bare(StoreErrorKind::NotFound))
                };
                Answer::new(reply, result)
            }
            Command::Quarantine(id) => {
                // Read again here: only a record that is still corrupt moves.
                let why = match self.records.get(id).map_err(unavailable)? {
                    Some(value) => decode_record(id, value.value()).err(),
                    None => None,
                };
                if let Some(why) = why {
                    self.quarantine(id, &why)?;
                }
                Answer(Box::new(|_| {}))
            }
            Command::Prune(before, reply) => {
                let mut stale = Vec::new();
                for entry in self.keys.iter().map_err(unavailable)? {
                    let (key, value) = entry.map_err(unavailable)?;
                    let (id, claimed_at) = decode_key_value(value.value());
                    if claimed_at < before && self.records.get(id).map_err(unavailable)?.is_none() {
                        stale.push(key.value().to_vec());
                    }
                }
                for key in &stale {
                    self.keys.remove(key.as_slice()).map_err(unavailable)?;
                }
                // Hourly: refused bodies past the age go even when no new refusal comes.
                self.rejected.trim(self.meta, SystemTime::now())?;
                Answer::new(reply, Ok(stale.len() as u64))
            }
        })
    }

    fn append(&mut self, record: NewRecord) -> Result<Appended, StoreError> {
        if let Some(existing) = self.keys.get(record.key.as_slice()).map_err(unavailable)? {
            return Ok(Appended::Duplicate(decode_key_value(existing.value()).0));
        }
        let id = self.next_record_id()?;
        let claimed_at = record.envelope.received_at_ms;
        let header = Header {
            envelope: record.envelope,
            last_error: None,
            body_len: record.body.len() as u64,
        };
        // The receiver hands a stored notification to the handler at once: its first attempt
        // counts from here, so that a crash before the handler ran still counts it.
        let encoded = encode_record(RecordState::Pending, 1, &header, &record.body);
        self.records
            .insert(id, encoded.as_slice())
            .map_err(unavailable)?;
        let mut key_value = [0u8; 16];
        key_value[..8].copy_from_slice(&id.to_le_bytes());
        key_value[8..].copy_from_slice(&claimed_at.to_le_bytes());
        self.keys
            .insert(record.key.as_slice(), key_value.as_slice())
            .map_err(unavailable)?;
        Ok(Appended::Stored(id))
    }

    /// Reads, changes and writes back one record; `Ok(Err(NotFound))` when it is not there.
    fn update<T>(
        &mut self,
        id: RecordId,
        change: impl FnOnce(&mut Record) -> Result<T, StoreError>,
    ) -> Result<Result<T, StoreError>, StoreError> {
        let Some(value) = self.records.get(id).map_err(unavailable)? else {
            return Ok(Err(StoreError::bare(StoreErrorKind::NotFound)));
        };
        let decoded = decode_record(id, value.value());
        drop(value);
        let mut record = match decoded {
            Ok(record) => record,
            // Never handed on, and never a reason to fail the other commands of the group.
            Err(why) => {
                self.quarantine(id, &why)?;
                return Ok(Err(why));
            }
        };
        let result = change(&mut record);
        if result.is_ok() {
            let header = Header {
                envelope: record.envelope.clone(),
                last_error: record.last_error.clone(),
                body_len: record.body.len() as u64,
            };
            let encoded = encode_record(record.state, record.attempts, &header, &record.body);
            self.records
                .insert(id, encoded.as_slice())
                .map_err(unavailable)?;
        }
        Ok(result)
    }
}

fn decode_key_value(value: &[u8]) -> (RecordId, i64) {
    let mut id = [0u8; 8];
    let mut at = [0u8; 8];
    if value.len() == 16 {
        id.copy_from_slice(&value[..8]);
        at.copy_from_slice(&value[8..]);
    }
    (u64::from_le_bytes(id), i64::from_le_bytes(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("airudder-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn new_record(key: u8, body: &str) -> NewRecord {
        NewRecord {
            key: [key; 32],
            body: Bytes::from(body.to_owned()),
            envelope: Envelope::new(
                SystemTime::now(),
                Some("127.0.0.1:1".into()),
                vec![("user-agent".into(), "Airudder".into())],
            ),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ids_are_new_across_groups_transactions_and_reopens() {
        let dir = temp_dir("ids");
        let mut ids = std::collections::BTreeSet::new();
        for round in 0..3u8 {
            let store = Arc::new(RedbStore::open(&dir).unwrap());
            // One at a time (a transaction each), then 40 at once (in groups).
            for n in 0..3u8 {
                let Appended::Stored(id) = store
                    .append(new_record(round * 50 + n, "one"))
                    .await
                    .unwrap()
                else {
                    panic!("a new key is stored")
                };
                assert!(ids.insert(id), "id {id} given twice");
            }
            let appends: Vec<_> = (3..43u8)
                .map(|n| {
                    let store = Arc::clone(&store);
                    tokio::spawn(
                        async move { store.append(new_record(round * 50 + n, "many")).await },
                    )
                })
                .collect();
            for append in appends {
                let Appended::Stored(id) = append.await.unwrap().unwrap() else {
                    panic!("a new key is stored")
                };
                assert!(ids.insert(id), "id {id} given twice");
            }
            drop(store);
        }
        let store = RedbStore::open(&dir).unwrap();
        for &id in &ids {
            assert!(store.get(id).await.unwrap().is_some(), "record {id} kept");
        }
        assert_eq!(ids.len(), 3 * 43);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_record_lives_through_its_states_and_a_reopen() {
        let dir = temp_dir("states");
        let store = RedbStore::open(&dir).unwrap();
        let Appended::Stored(a) = store.append(new_record(1, "a")).await.unwrap() else {
            panic!()
        };
        let Appended::Stored(b) = store.append(new_record(2, "b")).await.unwrap() else {
            panic!()
        };
        assert_eq!(
            store.append(new_record(1, "a again")).await.unwrap(),
            Appended::Duplicate(a)
        );
        let first = store.get(a).await.unwrap().unwrap();
        assert_eq!(first.attempts, 1, "the first attempt counts at append");
        store.fail(a, "boom".into()).await.unwrap();
        assert_eq!(store.begin_attempt(a).await.unwrap(), 2);
        store.dead_letter(a, "boom twice".into()).await.unwrap();
        store.complete(b).await.unwrap();
        assert_eq!(
            store.complete(b).await.unwrap_err().kind(),
            StoreErrorKind::NotFound
        );
        drop(store);

        let store = RedbStore::open(&dir).unwrap();
        assert!(store.pending().await.unwrap().is_empty());
        let dead = store.dead_letters().await.unwrap();
        assert_eq!(
            (dead.len(), dead[0].attempts, dead[0].last_error.as_deref()),
            (1, 2, Some("boom twice"))
        );
        assert_eq!(&dead[0].body[..], b"a");
        assert_eq!(dead[0].envelope.peer.as_deref(), Some("127.0.0.1:1"));
        let replayed = store.replay(a).await.unwrap();
        assert_eq!(
            (replayed.state, replayed.attempts),
            (RecordState::Pending, 0)
        );
        assert_eq!(store.pending().await.unwrap().len(), 1);
        assert_eq!(
            store.replay(a).await.unwrap_err().kind(),
            StoreErrorKind::NotFound,
            "only a dead letter replays"
        );
        // The done notification's key is still claimed until pruned.
        assert_eq!(
            store.append(new_record(2, "b again")).await.unwrap(),
            Appended::Duplicate(b)
        );
        assert_eq!(
            store
                .prune(SystemTime::now() + std::time::Duration::from_secs(1))
                .await
                .unwrap(),
            1
        );
        assert!(matches!(
            store.append(new_record(2, "b again")).await.unwrap(),
            Appended::Stored(_)
        ));
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_of_one_key_store_once_and_commit_in_groups() {
        let dir = temp_dir("concurrent");
        let store = RedbStore::open(&dir).unwrap();
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .append(new_record(if i % 2 == 0 { 7 } else { 100 + i as u8 }, "x"))
                        .await
                })
            })
            .collect();
        let mut stored = 0;
        for task in tasks {
            if let Appended::Stored(_) = task.await.unwrap().unwrap() {
                stored += 1;
            }
        }
        assert_eq!(
            stored,
            1 + 32,
            "one for the shared key, one for each distinct key"
        );
        assert_eq!(store.pending().await.unwrap().len(), 33);
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_second_process_or_a_garbage_file_is_an_error() {
        let dir = temp_dir("locked");
        let store = RedbStore::open(&dir).unwrap();
        assert_eq!(
            RedbStore::open(&dir).unwrap_err().kind(),
            StoreErrorKind::Unavailable
        );
        drop(store);
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::fs::write(dir.join("airudder.redb"), vec![0xA5; 64 * 1024]).unwrap();
        assert!(RedbStore::open(&dir).is_err(), "a garbage file is reported");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_record_is_reported_and_kept_not_skipped() {
        let dir = temp_dir("corrupt");
        {
            let store = RedbStore::open(&dir).unwrap();
            let tx = store.inner.shared.db().unwrap().begin_write().unwrap();
            tx.open_table(RECORDS)
                .unwrap()
                .insert(42, &b"\x01\x00half"[..])
                .unwrap();
            tx.commit().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let store = RedbStore::open(&dir).unwrap();
            assert!(store.pending().await.unwrap().is_empty());
            let rejected = store.rejected().await.unwrap();
            assert_eq!(rejected.len(), 1);
            assert!(
                rejected[0].reason.contains("corrupt stored record 42"),
                "{}",
                rejected[0].reason
            );
            assert_eq!(&rejected[0].body[..], b"\x01\x00half");
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }

    /// The names in the refused bodies' folder, sorted.
    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir.join("rejected"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_crash_leaves_files_that_open_sweeps_and_a_lost_file_reads_as_corrupt() {
        let dir = temp_dir("rejected-crash");
        let folder = dir.join("rejected");
        async fn refuse(store: &RedbStore, body: &'static [u8]) -> Result<RecordId, StoreError> {
            let envelope = Envelope::new(SystemTime::now(), None, Vec::new());
            let body = Bytes::from_static(body);
            store
                .reject(400, "malformed JSON".into(), envelope, body)
                .await
        }
        let (kept, lost) = block_on(async {
            let store = RedbStore::open(&dir).unwrap();
            let kept = refuse(&store, b"kept").await.unwrap();
            let lost = refuse(&store, b"lost").await.unwrap();
            assert_eq!(files_in(&dir), [kept.to_string(), lost.to_string()]);
            (kept, lost)
        });
        // What a crash leaves: a body renamed whose header never committed (its id is the
        // next one), a temporary file half written; and a file lost by hand. A name the store
        // never writes is left alone.
        std::fs::write(folder.join((lost + 1).to_string()), b"no header").unwrap();
        std::fs::write(folder.join("incoming-0.tmp"), b"half").unwrap();
        std::fs::write(folder.join("notes.txt"), b"not ours").unwrap();
        std::fs::remove_file(folder.join(lost.to_string())).unwrap();

        block_on(async {
            let store = RedbStore::open(&dir).unwrap();
            assert_eq!(files_in(&dir), [kept.to_string(), "notes.txt".into()]);
            // Listed still, from its header; read, it is corrupt, and says which.
            let page = store.rejected_page(0, 10).await.unwrap();
            assert_eq!(
                page.iter().map(|kept| kept.id).collect::<Vec<_>>(),
                [kept, lost]
            );
            let err = store.get_rejected(lost).await.unwrap_err();
            assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{err}");
            assert!(
                err.to_string()
                    .contains(&format!("rejected/{lost} is missing")),
                "{err}"
            );
            // Read all, it is left out; the others are still read.
            let all = store.rejected().await.unwrap();
            assert_eq!(all.iter().map(|one| one.id).collect::<Vec<_>>(), [kept]);
            store.remove_rejected(lost).await.unwrap();
            let one = store.get_rejected(kept).await.unwrap().unwrap();
            assert_eq!(&one.body[..], b"kept");
            // The swept file's id is given again, to a body of its own.
            let next = refuse(&store, b"next").await.unwrap();
            assert_eq!(next, lost + 1);
            let again = store.get_rejected(next).await.unwrap().unwrap();
            assert_eq!(&again.body[..], b"next");
            assert_eq!(store.rejected().await.unwrap().len(), 2);
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_flood_of_empty_refused_bodies_keeps_the_cap_over_what_each_entry_costs() {
        use super::rejected::old_format::charge;
        let dir = temp_dir("rejected-flood");
        let envelope = Envelope::new(SystemTime::now(), None, Vec::new());
        // Each entry costs its header and 4 KiB besides its bytes: 15 of them fit in 16 × 4 KiB.
        let each = charge(400, "malformed JSON", &envelope, b"");
        let cap = 16 * RejectedLimits::ENTRY_COST;
        assert_eq!(cap / each, 15);
        let limits = RejectedLimits::new(cap, RejectedLimits::DEFAULT_MAX_AGE);
        let options = RedbOptions::default().keep_rejected(limits);
        let store = RedbStore::open_with(&dir, options.clone()).unwrap();
        let refuse = |store: &RedbStore| {
            let reject = store.reject(400, "malformed JSON".into(), envelope.clone(), Bytes::new());
            block_on(reject).unwrap()
        };
        let ids: Vec<_> = (0..100).map(|_| refuse(&store)).collect();
        let kept = block_on(store.rejected_page(0, 1000)).unwrap();
        assert_eq!(kept.iter().map(|one| one.id).collect::<Vec<_>>(), ids[85..]);
        assert_eq!(store.rejected_dropped(), 85);
        assert_eq!(files_in(&dir).len(), 15, "a file each, and no more");
        drop(store);
        // The total holds across a reopen.
        let store = RedbStore::open_with(&dir, options).unwrap();
        refuse(&store);
        assert_eq!(block_on(store.rejected_page(0, 1000)).unwrap().len(), 15);
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_body_that_cannot_be_placed_fails_alone_and_the_appends_of_its_group_commit() {
        let dir = temp_dir("rejected-unplaced");
        let store = RedbStore::open(&dir).unwrap();
        let shared = &store.inner.shared;
        let staged = shared.folder.stage(b"lost").unwrap();
        // Its file gone before the writer renames it, as a rename into a broken folder fails.
        for name in files_in(&dir) {
            std::fs::remove_file(dir.join("rejected").join(name)).unwrap();
        }
        let (append, appended) = oneshot::channel();
        let (reject, rejected) = oneshot::channel();
        let envelope = Envelope::new(SystemTime::now(), None, Vec::new());
        let group = vec![
            Command::Append(new_record(1, "kept"), append),
            Command::Reject(400, "malformed JSON".into(), envelope, staged, reject),
        ];
        let db = shared.db().unwrap();
        let mut answers = Vec::new();
        apply(&db, shared, group, &mut answers).expect("the group commits");
        for answer in answers {
            answer.send(None);
        }
        let Ok(Ok(Appended::Stored(id))) = block_on(appended) else {
            panic!("the append is stored")
        };
        let err = block_on(rejected).unwrap().unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
        drop(db);
        assert!(block_on(store.get(id)).unwrap().is_some());
        assert!(block_on(store.rejected_page(0, 10)).unwrap().is_empty());
        assert!(!store.is_recovering());
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_commit_leaves_its_files_to_the_sweep_at_the_reopen() {
        let dir = temp_dir("rejected-failed-commit");
        let store = RedbStore::open(&dir).unwrap();
        let shared = &store.inner.shared;
        let db = shared.db().unwrap();
        let tx = db.begin_write().unwrap();
        let settle = {
            let mut meta = tx.open_table(META).unwrap();
            let mut tables =
                RejectedTables::open(&tx, &shared.folder, shared.options.rejected).unwrap();
            let body = tables.stage(b"placed").unwrap();
            let envelope = Envelope::new(SystemTime::now(), None, Vec::new());
            let id = tables
                .keep(&mut meta, 400, "malformed JSON".into(), envelope, body)
                .unwrap()
                .unwrap();
            assert_eq!(id, 1);
            tables.finish().unwrap()
        };
        // The commit failed: perhaps before the disk, perhaps after (here: before).
        tx.abort().unwrap();
        settle.failed();
        assert_eq!(files_in(&dir), ["1"], "left for the sweep to decide");
        rejected::sweep(&db, &shared.folder, false).unwrap();
        assert!(files_in(&dir).is_empty(), "no header names it: swept");
        drop(db);
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refused_bodies_of_the_old_format_move_to_their_own_tables_at_open() {
        use super::rejected::old_format::{exists, v1, v2, write};
        let dir = temp_dir("rejected-v2");
        let envelope = Envelope::new(SystemTime::now(), Some("127.0.0.1:5".into()), Vec::new());
        let mut changed = v2(413, "too large", &envelope, b"five");
        let last = changed.len() - 1;
        changed[last] ^= 0x01;
        {
            let store = RedbStore::open(&dir).unwrap();
            write(
                &store.inner.shared.db().unwrap(),
                &[
                    (3, v1(400, "malformed JSON", &envelope, b"{one")),
                    (4, v2(422, "wrong shape", &envelope, b"[2]")),
                    (5, changed.clone()),
                ],
            );
        }
        block_on(async {
            let store = RedbStore::open(&dir).unwrap();
            assert!(
                !exists(&store.inner.shared.db().unwrap()),
                "the old table is gone"
            );
            let page = store.rejected_page(0, 10).await.unwrap();
            let listed: Vec<_> = page
                .iter()
                .map(|kept| (kept.id, kept.status, kept.bytes))
                .collect();
            assert_eq!(
                listed,
                [(3, 400, 4), (4, 422, 3), (5, 0, changed.len() as u64)]
            );
            assert_eq!(
                (&page[0].reason[..], &page[0].envelope),
                ("malformed JSON", &envelope)
            );
            assert!(
                page[2].reason.contains("unreadable refused body 5")
                    && page[2].reason.contains("checksum"),
                "kept whole, saying why: {}",
                page[2].reason
            );
            let one = store.get_rejected(3).await.unwrap().unwrap();
            assert_eq!(&one.body[..], b"{one");
            assert_eq!(std::fs::read(dir.join("rejected/3")).unwrap(), b"{one");
            assert_eq!(&store.rejected().await.unwrap()[2].body[..], &changed[..]);
            // New ids follow the old ones.
            let next = store
                .reject(
                    400,
                    "again".into(),
                    envelope.clone(),
                    Bytes::from_static(b"x"),
                )
                .await
                .unwrap();
            assert_eq!(next, 6);
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_old_table_longer_than_a_move_group_moves_whole_within_the_limits() {
        use super::rejected::old_format::{charge, exists, v2, write};
        let dir = temp_dir("rejected-move-capped");
        let envelope = Envelope::new(SystemTime::now(), None, Vec::new());
        // More entries than one transaction of the move carries.
        let entries: Vec<_> = (1..=1500u64)
            .map(|id| (id, v2(400, "malformed JSON", &envelope, &[7; 10])))
            .collect();
        let each = charge(400, "malformed JSON", &envelope, &[7; 10]);
        {
            let store = RedbStore::open(&dir).unwrap();
            write(&store.inner.shared.db().unwrap(), &entries);
        }
        let limits = RejectedLimits::new(500 * each + each / 2, RejectedLimits::DEFAULT_MAX_AGE);
        let store =
            RedbStore::open_with(&dir, RedbOptions::default().keep_rejected(limits)).unwrap();
        assert!(!exists(&store.inner.shared.db().unwrap()));
        assert_eq!(
            store.rejected_dropped(),
            1000,
            "the newest 500 fit in 500 entries' charges"
        );
        block_on(async {
            let kept = store.rejected_page(0, 1000).await.unwrap();
            assert_eq!(kept.len(), 500);
            assert_eq!((kept[0].id, kept[499].id), (1001, 1500));
        });
        let files = files_in(&dir);
        assert_eq!(
            (files.len(), files.iter().min().map(String::as_str)),
            (500, Some("1001")),
            "the dropped ones' files are gone"
        );
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn records_round_trip_and_truncation_is_detected() {
        let header = Header {
            envelope: Envelope::new(SystemTime::UNIX_EPOCH, None, vec![]),
            last_error: Some("e".into()),
            body_len: 4,
        };
        let encoded = encode_record(RecordState::Dead, 3, &header, b"body");
        let record = decode_record(9, &encoded).unwrap();
        assert_eq!(
            (record.state, record.attempts, &record.body[..]),
            (RecordState::Dead, 3, &b"body"[..])
        );
        for cut in 0..encoded.len() {
            assert_eq!(
                decode_record(9, &encoded[..cut]).unwrap_err().kind(),
                StoreErrorKind::Corrupt,
                "cut at {cut}"
            );
        }
    }
}
