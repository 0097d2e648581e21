//! The embedded store itself: [`RedbStore`] and its [`Store`] implementation.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

use ::redb::Database;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::bodies::Folder;
use super::options::RedbOptions;
use super::reads::{self, Corrupt, LIST_SCAN_CAP, Page};
use super::recovery::{open_database, private_dir};
use super::rejected;
use super::shared::{BODY_WRITES, Holds, SUMMARY_FRESH, Shared, unavailable};
use super::writer::{Command, PURGE_BATCH, Reply, write_loop};
use crate::store::{
    Appended, Attempt, Envelope, NewRecord, Record, RecordId, RecordPage, RecordQuery, RecordState,
    RecordSummary, RefusedBody, RefusedBodyLimits, RefusedBodySummary, Store, StoreError,
    StoreErrorKind, StoreSummary, millis,
};

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
/// - **It checks what it reads.** A record's metadata and its body each carry a CRC-32,
///   checked on every read (the metadata's at every open too; a body's when it is read): a
///   record changed on disk (after a clean stop, where redb checks nothing) is logged with its
///   id, moved with its raw bytes to the [rejected](Store::rejected) bodies, counted
///   ([`quarantined`](Self::quarantined)), and never handed to the handler.
/// - **It reads older stores.** Records of the formats before version 3 (body and metadata in
///   one value) are moved to it at open, a bounded batch per transaction.
/// - **It is the queue.** Pending records wait on disk, indexed by kind and due time, and are
///   [claimed](Store::claim) a page at a time; a claimed record is held in memory (shared by
///   every clone) until its outcome is written, and a restart frees every hold. A record's
///   metadata is kept apart from its body, so that [lists](Store::list), counts and
///   summaries read no body.
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

struct Inner {
    shared: Arc<Shared>,
    writer: Option<mpsc::UnboundedSender<Command>>,
    thread: Option<std::thread::JoinHandle<()>>,
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

impl RedbStore {
    /// Claims up to `max` due records of `kind` whose bodies come to at most `max_bytes` (the
    /// first whatever its size).
    async fn claim_within(
        &self,
        kind: &str,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let (kind, holds) = (kind.to_owned(), Arc::clone(&self.inner.shared.holds));
        let mut claimed = self
            .read(move |db| reads::claim(db, &kind, max, max_bytes, &holds))
            .await?;
        self.quarantine_all(std::mem::take(&mut claimed.corrupt));
        Ok(claimed.take())
    }

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
            holds: Arc::new(Holds::default()),
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
        let (records, corrupt) = self.read(move |db| reads::records_in(db, state)).await?;
        self.quarantine_all(corrupt);
        Ok(records)
    }

    /// Has the writer quarantine every record in `corrupt`.
    fn quarantine_all(&self, corrupt: Corrupt) {
        for id in corrupt {
            self.quarantine(id);
        }
    }

    /// One page of `query` (its `limit` aside): up to `limit` rows, looking at
    /// `scan_cap` records at most.
    async fn page(
        &self,
        query: RecordQuery,
        limit: usize,
        scan_cap: usize,
    ) -> Result<Page, StoreError> {
        let mut page = self
            .read(move |db| reads::page(db, &query, limit, scan_cap))
            .await?;
        self.quarantine_all(std::mem::take(&mut page.corrupt));
        Ok(page)
    }

    /// Calls `each` with every record matching `query` (its `after` and `limit` aside), a
    /// page at a time, without the list's scan cap: for the store's own bulk operations.
    async fn each_matching<F, Fut>(
        &self,
        query: RecordQuery,
        mut each: F,
    ) -> Result<u64, StoreError>
    where
        F: FnMut(RecordSummary) -> Fut,
        Fut: std::future::Future<Output = Result<bool, StoreError>>,
    {
        let mut query = query.after(0);
        let mut done = 0;
        loop {
            let page = self
                .page(query.clone(), RecordQuery::MAX_LIMIT, LIST_SCAN_CAP)
                .await?;
            for summary in page.rows {
                done += u64::from(each(summary).await?);
            }
            match page.next {
                Some(next) => query.after = next,
                None => return Ok(done),
            }
        }
    }

    /// The database, for tests that write to it as an older version (or a fault) would.
    #[cfg(test)]
    pub(super) fn inner_db(&self) -> Arc<Database> {
        self.inner.shared.db().expect("the database is open")
    }

    /// How many records are held (being handled) now.
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.inner.shared.holds.len()
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
        attempt: Attempt,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        self.send(move |reply| Command::Complete(id, attempt, reply))
    }

    /// In one transaction.
    fn complete_all(
        &self,
        done: Vec<(RecordId, Attempt)>,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        self.send(move |reply| Command::CompleteAll(done, reply))
    }

    /// The record's last error is the attempt's error (or, without one, how it ended).
    fn fail(
        &self,
        id: RecordId,
        attempt: Attempt,
        due: SystemTime,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        let due = millis(due);
        self.send(move |reply| Command::Fail(id, attempt, due, reply))
    }

    /// The record's last error is the attempt's error (or, without one, how it ended).
    fn dead_letter(
        &self,
        id: RecordId,
        attempt: Attempt,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        self.send(move |reply| Command::Dead(id, attempt, reply))
    }

    async fn claim(&self, kind: &str, max: usize) -> Result<Vec<Record>, StoreError> {
        self.claim_within(kind, max, usize::MAX).await
    }

    /// The claim's read (no body read past `max_bytes`), then one write counting the first
    /// `begin` records' attempts.
    async fn claim_and_begin(
        &self,
        kind: &str,
        max: usize,
        max_bytes: usize,
        begin: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let mut records = self.claim_within(kind, max, max_bytes).await?;
        let begin = begin.min(records.len());
        if begin == 0 {
            return Ok(records);
        }
        let ids = records[..begin].iter().map(|record| record.id).collect();
        let holds = &self.inner.shared.holds;
        match self.send(|reply| Command::BeginAll(ids, reply)).await {
            Ok(begun) => {
                let mut begun = begun.into_iter();
                let mut index = 0;
                records.retain_mut(|record| {
                    index += 1;
                    if index > begin {
                        return true;
                    }
                    match begun.next().flatten() {
                        Some(attempts) => {
                            record.attempts = attempts;
                            true
                        }
                        // No longer pending: not this claim's any more.
                        None => {
                            holds.release(record.id);
                            false
                        }
                    }
                });
                Ok(records)
            }
            Err(err) => {
                records.iter().for_each(|record| holds.release(record.id));
                Err(err)
            }
        }
    }

    async fn unclaim(&self, ids: Vec<RecordId>, counted: bool) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        if !counted {
            // Nothing to write: only the holds, in memory.
            let holds = &self.inner.shared.holds;
            ids.into_iter().for_each(|id| holds.release(id));
            return Ok(());
        }
        self.send(|reply| Command::Unclaim(ids, reply)).await
    }

    async fn keys_held_back(&self, kind: &str) -> Result<u64, StoreError> {
        let kind = kind.to_owned();
        self.read(move |db| reads::keys_held_back(db, &kind)).await
    }

    async fn make_due(&self, id: RecordId) -> Result<bool, StoreError> {
        self.send(|reply| Command::MakeDue(id, reply)).await
    }

    async fn purge(&self, id: RecordId) -> Result<bool, StoreError> {
        self.send(|reply| Command::Purge(id, reply)).await
    }

    /// Reads the `finished` index by time; a transaction per 10,000 records.
    async fn purge_before(
        &self,
        state: RecordState,
        before: SystemTime,
    ) -> Result<u64, StoreError> {
        let before = millis(before);
        let mut purged = 0;
        loop {
            let batch = self
                .send(|reply| Command::PurgeBefore(state, before, reply))
                .await?;
            purged += batch;
            if batch < PURGE_BATCH as u64 {
                return Ok(purged);
            }
        }
    }

    async fn set_paused(&self, kind: &str, paused: bool) -> Result<(), StoreError> {
        let kind = kind.to_owned();
        self.send(|reply| Command::SetPaused(kind, paused, reply))
            .await
    }

    async fn paused(&self) -> Result<Vec<String>, StoreError> {
        self.read(reads::paused).await
    }

    /// Reads metadata alone, never a body. A page looks at 100,000 records at most, so that
    /// one request's work is bounded: with filters that match rarely in a larger store, a
    /// page can come back shorter than asked for, even empty, though matches follow further
    /// on. ([`count`](Store::count), [`retry_now`](Store::retry_now) and
    /// [`replay_dead`](Store::replay_dead) are not limited so.)
    async fn list(&self, query: RecordQuery) -> Result<RecordPage, StoreError> {
        let limit = query.page_size();
        // One row more than asked tells that another page follows.
        let page = self.page(query.clone(), limit + 1, LIST_SCAN_CAP).await?;
        let stopped_early = page.rows.len() <= limit && page.next.is_some();
        let mut listed = RecordPage::from_rows(&query, page.rows);
        if stopped_early {
            // The scan cap ended this page: the next one starts after the last record looked at.
            listed.next_after = page.next;
        }
        Ok(listed)
    }

    /// Reads metadata alone, every record's, in one read transaction.
    async fn count(&self, query: RecordQuery) -> Result<u64, StoreError> {
        let (count, corrupt) = self.read(move |db| reads::count(db, &query)).await?;
        self.quarantine_all(corrupt);
        Ok(count)
    }

    /// Pages through the metadata without the list's scan cap.
    async fn retry_now(&self, query: RecordQuery) -> Result<u64, StoreError> {
        let query = query.state(RecordState::Pending);
        self.each_matching(query, |summary| self.make_due(summary.id))
            .await
    }

    /// Pages through the metadata without the list's scan cap.
    async fn replay_dead(&self, query: RecordQuery) -> Result<u64, StoreError> {
        let query = query.state(RecordState::Dead);
        self.each_matching(query, |summary| async move {
            match self.replay(summary.id).await {
                Ok(_) => Ok(true),
                // Replayed or purged meanwhile.
                Err(err) if err.kind() == StoreErrorKind::NotFound => Ok(false),
                Err(err) => Err(err),
            }
        })
        .await
    }

    async fn pending(&self) -> Result<Vec<Record>, StoreError> {
        self.records_in(RecordState::Pending).await
    }

    async fn dead_letters(&self) -> Result<Vec<Record>, StoreError> {
        self.records_in(RecordState::Dead).await
    }

    /// Counts at most half a second old: receivers that share the store sample it together.
    /// Read from the indexes: no body, and no handled record.
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
                let counted = self.read(reads::summary).await?;
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
        let read = self.read(move |db| reads::get(db, id)).await?.transpose();
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
        let at_least = RefusedBodyLimits::charge(len, reason.len() as u64);
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
    async fn rejected(&self) -> Result<Vec<RefusedBody>, StoreError> {
        let shared = Arc::clone(&self.inner.shared);
        self.read(move |db| rejected::all(db, &shared.folder)).await
    }

    /// Reads the headers alone: no body is loaded.
    async fn rejected_page(
        &self,
        after: RecordId,
        limit: usize,
    ) -> Result<Vec<RefusedBodySummary>, StoreError> {
        self.read(move |db| rejected::page(db, after, limit)).await
    }

    async fn get_rejected(&self, id: RecordId) -> Result<Option<RefusedBody>, StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::redb::format::{META, RECORDS};
    use crate::store::redb::rejected::RejectedTables;
    use crate::store::redb::writer::apply;

    fn temp_dir(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("airudder-store-{name}-"))
            .tempdir()
            .unwrap()
    }

    fn new_record(key: u8, body: &str) -> NewRecord {
        NewRecord::new(
            [key; 32],
            Bytes::from(body.to_owned()),
            Envelope::new(
                SystemTime::now(),
                Some("127.0.0.1:1".into()),
                vec![("user-agent".into(), "Airudder".into())],
            ),
        )
        .started(true)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ids_are_new_across_groups_transactions_and_reopens() {
        let tmp = temp_dir("ids");
        let dir = tmp.path();
        let mut ids = std::collections::BTreeSet::new();
        for round in 0..3u8 {
            let store = Arc::new(RedbStore::open(dir).unwrap());
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
        let store = RedbStore::open(dir).unwrap();
        for &id in &ids {
            assert!(store.get(id).await.unwrap().is_some(), "record {id} kept");
        }
        assert_eq!(ids.len(), 3 * 43);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_record_lives_through_its_states_and_a_reopen() {
        let tmp = temp_dir("states");
        let dir = tmp.path();
        let store = RedbStore::open(dir).unwrap();
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
        store
            .fail(a, Attempt::failed_now("boom"), SystemTime::now())
            .await
            .unwrap();
        assert_eq!(store.begin_attempt(a).await.unwrap(), 2);
        store
            .dead_letter(a, Attempt::failed_now("boom twice"))
            .await
            .unwrap();
        store.complete(b, Attempt::failed_now("ok")).await.unwrap();
        assert_eq!(
            store
                .complete(b, Attempt::failed_now("ok"))
                .await
                .unwrap_err()
                .kind(),
            StoreErrorKind::NotFound
        );
        assert_eq!(store.held(), 0, "every outcome released its hold");
        drop(store);

        let store = RedbStore::open(dir).unwrap();
        assert!(store.pending().await.unwrap().is_empty());
        assert_eq!(
            store.get(b).await.unwrap().unwrap().state,
            RecordState::Handled
        );
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
            "only a dead or handled record replays"
        );
        // The done notification's key is still claimed until pruned, and pruned only once
        // its record is purged.
        assert_eq!(
            store.append(new_record(2, "b again")).await.unwrap(),
            Appended::Duplicate(b)
        );
        let later = SystemTime::now() + std::time::Duration::from_secs(1);
        assert_eq!(store.prune(later).await.unwrap(), 0);
        assert!(store.purge(b).await.unwrap());
        assert!(!store.purge(b).await.unwrap());
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
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_of_one_key_store_once_and_commit_in_groups() {
        let tmp = temp_dir("concurrent");
        let dir = tmp.path();
        let store = RedbStore::open(dir).unwrap();
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
    }

    #[test]
    fn a_second_process_or_a_garbage_file_is_an_error() {
        let tmp = temp_dir("locked");
        let dir = tmp.path();
        let store = RedbStore::open(dir).unwrap();
        assert_eq!(
            RedbStore::open(dir).unwrap_err().kind(),
            StoreErrorKind::Unavailable
        );
        drop(store);
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::fs::write(dir.join("airudder.redb"), vec![0xA5; 64 * 1024]).unwrap();
        assert!(RedbStore::open(dir).is_err(), "a garbage file is reported");
    }

    #[test]
    fn a_corrupt_record_is_reported_and_kept_not_skipped() {
        let tmp = temp_dir("corrupt");
        let dir = tmp.path();
        {
            let store = RedbStore::open(dir).unwrap();
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
            let store = RedbStore::open(dir).unwrap();
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
        let tmp = temp_dir("rejected-crash");
        let dir = tmp.path();
        let folder = dir.join("rejected");
        async fn refuse(store: &RedbStore, body: &'static [u8]) -> Result<RecordId, StoreError> {
            let envelope = Envelope::new(SystemTime::now(), None, Vec::new());
            let body = Bytes::from_static(body);
            store
                .reject(400, "malformed JSON".into(), envelope, body)
                .await
        }
        let (kept, lost) = block_on(async {
            let store = RedbStore::open(dir).unwrap();
            let kept = refuse(&store, b"kept").await.unwrap();
            let lost = refuse(&store, b"lost").await.unwrap();
            assert_eq!(files_in(dir), [kept.to_string(), lost.to_string()]);
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
            let store = RedbStore::open(dir).unwrap();
            assert_eq!(files_in(dir), [kept.to_string(), "notes.txt".into()]);
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
    }

    #[test]
    fn a_flood_of_empty_refused_bodies_keeps_the_cap_over_what_each_entry_costs() {
        use super::rejected::old_format::charge;
        let tmp = temp_dir("rejected-flood");
        let dir = tmp.path();
        let envelope = Envelope::new(SystemTime::now(), None, Vec::new());
        // Each entry costs its header and 4 KiB besides its bytes: 15 of them fit in 16 × 4 KiB.
        let each = charge(400, "malformed JSON", &envelope, b"");
        let cap = 16 * RefusedBodyLimits::ENTRY_COST;
        assert_eq!(cap / each, 15);
        let limits = RefusedBodyLimits::new(cap, RefusedBodyLimits::DEFAULT_MAX_AGE);
        let options = RedbOptions::default().keep_rejected(limits);
        let store = RedbStore::open_with(dir, options.clone()).unwrap();
        let refuse = |store: &RedbStore| {
            let reject = store.reject(400, "malformed JSON".into(), envelope.clone(), Bytes::new());
            block_on(reject).unwrap()
        };
        let ids: Vec<_> = (0..100).map(|_| refuse(&store)).collect();
        let kept = block_on(store.rejected_page(0, 1000)).unwrap();
        assert_eq!(kept.iter().map(|one| one.id).collect::<Vec<_>>(), ids[85..]);
        assert_eq!(store.rejected_dropped(), 85);
        assert_eq!(files_in(dir).len(), 15, "a file each, and no more");
        drop(store);
        // The total holds across a reopen.
        let store = RedbStore::open_with(dir, options).unwrap();
        refuse(&store);
        assert_eq!(block_on(store.rejected_page(0, 1000)).unwrap().len(), 15);
        drop(store);
    }

    #[test]
    fn a_body_that_cannot_be_placed_fails_alone_and_the_appends_of_its_group_commit() {
        let tmp = temp_dir("rejected-unplaced");
        let dir = tmp.path();
        let store = RedbStore::open(dir).unwrap();
        let shared = &store.inner.shared;
        let staged = shared.folder.stage(b"lost").unwrap();
        // Its file gone before the writer renames it, as a rename into a broken folder fails.
        for name in files_in(dir) {
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
    }

    #[test]
    fn a_failed_commit_leaves_its_files_to_the_sweep_at_the_reopen() {
        let tmp = temp_dir("rejected-failed-commit");
        let dir = tmp.path();
        let store = RedbStore::open(dir).unwrap();
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
        assert_eq!(files_in(dir), ["1"], "left for the sweep to decide");
        rejected::sweep(&db, &shared.folder, false).unwrap();
        assert!(files_in(dir).is_empty(), "no header names it: swept");
        drop(db);
        drop(store);
    }

    #[test]
    fn refused_bodies_of_the_old_format_move_to_their_own_tables_at_open() {
        use super::rejected::old_format::{exists, v1, v2, write};
        let tmp = temp_dir("rejected-v2");
        let dir = tmp.path();
        let envelope = Envelope::new(SystemTime::now(), Some("127.0.0.1:5".into()), Vec::new());
        let mut changed = v2(413, "too large", &envelope, b"five");
        let last = changed.len() - 1;
        changed[last] ^= 0x01;
        {
            let store = RedbStore::open(dir).unwrap();
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
            let store = RedbStore::open(dir).unwrap();
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
    }

    #[test]
    fn an_old_table_longer_than_a_move_group_moves_whole_within_the_limits() {
        use super::rejected::old_format::{charge, exists, v2, write};
        let tmp = temp_dir("rejected-move-capped");
        let dir = tmp.path();
        let envelope = Envelope::new(SystemTime::now(), None, Vec::new());
        // More entries than one transaction of the move carries.
        let entries: Vec<_> = (1..=1500u64)
            .map(|id| (id, v2(400, "malformed JSON", &envelope, &[7; 10])))
            .collect();
        let each = charge(400, "malformed JSON", &envelope, &[7; 10]);
        {
            let store = RedbStore::open(dir).unwrap();
            write(&store.inner.shared.db().unwrap(), &entries);
        }
        let limits =
            RefusedBodyLimits::new(500 * each + each / 2, RefusedBodyLimits::DEFAULT_MAX_AGE);
        let store =
            RedbStore::open_with(dir, RedbOptions::default().keep_rejected(limits)).unwrap();
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
        let files = files_in(dir);
        assert_eq!(
            (files.len(), files.iter().min().map(String::as_str)),
            (500, Some("1001")),
            "the dropped ones' files are gone"
        );
        drop(store);
    }
}
