//! The writer thread: every change, in groups, one transaction and one fsync a group.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use ::redb::{Database, ReadableTable, Table};
use tokio::sync::{mpsc, oneshot};

use super::bodies::Staged;
use super::format::{Decoded, Info, KEYS, META, Meta, OrderInfo, PAUSED, state_byte};
use super::recovery::{Outage, Quarantine};
use super::rejected::RejectedTables;
use super::shared::{Holds, Shared, recovering, unavailable};
use super::tables::RecordTables;
use crate::store::{
    Appended, Attempt, Envelope, NewRecord, Record, RecordId, RecordState, StoreError,
    StoreErrorKind, millis, push_attempt,
};

/// The most commands one transaction commits together.
const MAX_GROUP: usize = 1024;

pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// What the writer is asked to do; each answers on its reply once committed.
pub(super) enum Command {
    Append(NewRecord, Reply<Appended>),
    BeginAttempt(RecordId, Reply<u32>),
    /// [`BeginAttempt`](Command::BeginAttempt) for several, each answered apart (`None`: no
    /// longer pending).
    BeginAll(Vec<RecordId>, Reply<Vec<Option<u32>>>),
    /// Claimed records never tried: the attempt their claim counted taken back; released once
    /// answered.
    /// Records claimed, counted and never tried: the attempt taken back.
    Unclaim(Vec<RecordId>, Reply<()>),
    /// Handled; the hold is released once answered.
    Complete(RecordId, Attempt, Reply<()>),
    /// Handled, several in one transaction (a record no longer pending is skipped).
    CompleteAll(Vec<(RecordId, Attempt)>, Reply<()>),
    /// Pending again, due at the time in milliseconds; released once answered.
    Fail(RecordId, Attempt, i64, Reply<()>),
    /// Dead; released once answered.
    Dead(RecordId, Attempt, Reply<()>),
    Replay(RecordId, Reply<Record>),
    MakeDue(RecordId, Reply<bool>),
    Purge(RecordId, Reply<bool>),
    /// Purges up to [`PURGE_BATCH`] records in the state that became so before the time.
    PurgeBefore(RecordState, i64, Reply<u64>),
    SetPaused(String, bool, Reply<()>),
    /// A refused body, already in a file of its own: the writer gives it its id.
    Reject(u16, String, Envelope, Staged, Reply<RecordId>),
    RemoveRejected(RecordId, Reply<()>),
    Prune(i64, Reply<u64>),
    /// A record a reader found corrupt: moved to the rejected bodies.
    Quarantine(RecordId),
}

/// The meta entry holding the next record id.
const NEXT_RECORD: &str = "next_record";

/// The most records one [`Command::PurgeBefore`] deletes: a big purge takes several
/// transactions, each of bounded size.
pub(super) const PURGE_BATCH: usize = 10_000;

/// Takes every command waiting, applies them in one transaction, commits (fsync), answers.
///
/// After a failed transaction (an I/O error: redb then refuses everything until the database
/// is reopened) every command fails at once with `Unavailable` while the database is reopened
/// with backoff, on the commands' arrival: the receiver's requests and its completer's retries
/// keep coming, so the store comes back as soon as the disk allows.
pub(super) fn write_loop(shared: &Shared, mut commands: mpsc::UnboundedReceiver<Command>) {
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
                fail_command(command, &err, &shared.holds).send(None);
            }
            continue;
        }
        let db = match shared.db() {
            Ok(db) => db,
            Err(err) => {
                for command in group {
                    fail_command(command, &err, &shared.holds).send(None);
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

/// The answer to one command, sent once the transaction is committed (or has failed).
pub(super) struct Answer(Finish);

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

    /// The same answer, calling `hook` first with whether the transaction failed.
    fn then(self, hook: impl FnOnce(bool) + Send + 'static) -> Self {
        let finish = self.0;
        Self(Box::new(move |failed| {
            hook(failed.is_some());
            finish(failed);
        }))
    }

    /// The same answer, releasing the holds of `ids` first, whether or not the transaction
    /// committed: a hold kept after a failed write would keep the record from every claim
    /// until a restart, and one released means at worst one more delivery.
    fn releasing(self, holds: &Arc<Holds>, ids: Vec<RecordId>) -> Self {
        let holds = Arc::clone(holds);
        self.then(move |_| {
            for id in ids {
                holds.release(id);
            }
        })
    }

    /// Sends the reply (or the commit's error instead).
    pub(super) fn send(self, failed: Option<&StoreError>) {
        (self.0)(failed)
    }
}

/// Applies a group of commands in one transaction and commits it; `answers` gets one answer
/// per command, to send once the outcome of the commit is known.
pub(super) fn apply(
    db: &Database,
    shared: &Shared,
    group: Vec<Command>,
    answers: &mut Vec<Answer>,
) -> Result<(), StoreError> {
    let tx = match db.begin_write() {
        Ok(tx) => tx,
        Err(err) => {
            let err = unavailable(err);
            answers.extend(
                group
                    .into_iter()
                    .map(|c| fail_command(c, &err, &shared.holds)),
            );
            return Err(err);
        }
    };
    let limits = shared.options.rejected;
    let result = (|| {
        let mut records = RecordTables::open(&tx)?;
        let mut keys = tx.open_table(KEYS).map_err(unavailable)?;
        let mut paused = tx.open_table(PAUSED).map_err(unavailable)?;
        let mut rejected = RejectedTables::open(&tx, &shared.folder, limits)?;
        let mut meta = tx.open_table(META).map_err(unavailable)?;
        let mut tables = Tables {
            records: &mut records,
            keys: &mut keys,
            paused: &mut paused,
            rejected: &mut rejected,
            meta: &mut meta,
            shared,
            next_record: None,
        };
        let mut group = group.into_iter();
        for command in group.by_ref() {
            let release = outcome_ids(&command);
            match tables.apply(command) {
                Ok(answer) => answers.push(answer.releasing(&shared.holds, release)),
                Err(err) => {
                    release.into_iter().for_each(|id| shared.holds.release(id));
                    answers.extend(group.map(|c| fail_command(c, &err, &shared.holds)));
                    return Err(err);
                }
            }
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

/// The records whose holds a command releases once answered: those it writes an outcome of.
fn outcome_ids(command: &Command) -> Vec<RecordId> {
    match command {
        Command::Complete(id, _, _) | Command::Fail(id, _, _, _) | Command::Dead(id, _, _) => {
            vec![*id]
        }
        Command::CompleteAll(done, _) => done.iter().map(|(id, _)| *id).collect(),
        Command::Unclaim(ids, _) => ids.clone(),
        _ => Vec::new(),
    }
}

/// The answer to a command that was never applied: `err`. An outcome's holds are released
/// all the same (see [`Answer::releasing`]).
fn fail_command(command: Command, err: &StoreError, holds: &Arc<Holds>) -> Answer {
    let e = || StoreError::new(err.kind(), err.to_string());
    let release = outcome_ids(&command);
    match command {
        Command::Append(_, r) => Answer::new(r, Err(e())),
        Command::BeginAttempt(_, r) => Answer::new(r, Err(e())),
        Command::BeginAll(_, r) => Answer::new(r, Err(e())),
        Command::Complete(_, _, r)
        | Command::CompleteAll(_, r)
        | Command::Fail(_, _, _, r)
        | Command::Dead(_, _, r)
        | Command::SetPaused(_, _, r)
        | Command::RemoveRejected(_, r)
        | Command::Unclaim(_, r) => Answer::new(r, Err(e())),
        Command::Replay(_, r) => Answer::new(r, Err(e())),
        Command::MakeDue(_, r) | Command::Purge(_, r) => Answer::new(r, Err(e())),
        Command::Reject(_, _, _, _, r) => Answer::new(r, Err(e())),
        Command::Prune(_, r) | Command::PurgeBefore(_, _, r) => Answer::new(r, Err(e())),
        Command::Quarantine(_) => Answer(Box::new(|_| {})),
    }
    .releasing(holds, release)
}

/// The tables of one transaction, and what the writer keeps across its commands.
struct Tables<'a, 't> {
    records: &'a mut RecordTables<'t>,
    keys: &'a mut Table<'t, &'static [u8], &'static [u8]>,
    paused: &'a mut Table<'t, &'static str, ()>,
    rejected: &'a mut RejectedTables<'t>,
    meta: &'a mut Table<'t, &'static str, u64>,
    shared: &'a Shared,
    /// The next record id, read once per transaction and written back before it commits: a
    /// group of appends reads and writes the counter once, not once each.
    next_record: Option<u64>,
}

/// `Err(NotFound)`: the answer for a record missing or in the wrong state.
fn not_found<T>() -> Result<T, StoreError> {
    Err(StoreError::bare(StoreErrorKind::NotFound))
}

/// Now, in milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    millis(SystemTime::now())
}

/// A failed attempt's error as the record's last: its text, or how it ended.
fn error_of(attempt: &Attempt) -> String {
    attempt
        .error
        .clone()
        .unwrap_or_else(|| attempt.outcome.as_str().to_owned())
}

/// A finished attempt into the record: into its history, and counted if its claim did not
/// count it (claimed ahead: its number is past the count).
fn finish_attempt(meta: &mut Meta, attempt: Attempt) {
    meta.attempts = meta.attempts.max(attempt.number);
    push_attempt(&mut meta.info.history, attempt);
}

/// Fails with `NotFound` unless the record is pending.
fn pending(meta: &Meta) -> Result<(), StoreError> {
    if meta.state == RecordState::Pending {
        Ok(())
    } else {
        not_found()
    }
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
            Command::Append(record, reply) => self.append(record, reply)?,
            Command::BeginAttempt(id, reply) => {
                let result = self.update(id, |meta| {
                    pending(meta)?;
                    meta.attempts = meta.attempts.saturating_add(1);
                    Ok(meta.attempts)
                })?;
                Answer::new(reply, result)
            }
            Command::BeginAll(ids, reply) => {
                let mut begun = Vec::with_capacity(ids.len());
                for id in ids {
                    let result = self.update(id, |meta| {
                        pending(meta)?;
                        meta.attempts = meta.attempts.saturating_add(1);
                        Ok(meta.attempts)
                    })?;
                    begun.push(result.ok());
                }
                Answer::new(reply, Ok(begun))
            }
            Command::Unclaim(ids, reply) => {
                for id in ids {
                    // A record no longer pending (or gone) is left as it is.
                    let _ = self.update(id, |meta| {
                        pending(meta)?;
                        meta.attempts = meta.attempts.saturating_sub(1);
                        Ok(())
                    })?;
                }
                Answer::new(reply, Ok(()))
            }
            Command::Complete(id, attempt, reply) => {
                let result = self.complete(id, attempt)?;
                Answer::new(reply, result)
            }
            Command::CompleteAll(done, reply) => {
                let mut first_error = None;
                for (id, attempt) in done {
                    match self.complete(id, attempt)? {
                        Err(err) if err.kind() != StoreErrorKind::NotFound => {
                            first_error.get_or_insert(err);
                        }
                        _ => {}
                    }
                }
                Answer::new(reply, first_error.map_or(Ok(()), Err))
            }
            Command::Fail(id, attempt, due, reply) => {
                let result = self.update(id, |meta| {
                    pending(meta)?;
                    meta.info.due_at_ms = due;
                    meta.info.last_error = Some(error_of(&attempt));
                    finish_attempt(meta, attempt);
                    Ok(())
                })?;
                Answer::new(reply, result)
            }
            Command::Dead(id, attempt, reply) => {
                let result = self.update(id, |meta| {
                    pending(meta)?;
                    meta.state = RecordState::Dead;
                    meta.info.due_at_ms = now_ms();
                    meta.info.last_error = Some(error_of(&attempt));
                    finish_attempt(meta, attempt);
                    Ok(())
                })?;
                Answer::new(reply, result)
            }
            Command::Replay(id, reply) => {
                let result = self.replay(id)?;
                Answer::new(reply, result)
            }
            Command::MakeDue(id, reply) => {
                let result = self.make_due(id)?;
                Answer::new(reply, result)
            }
            Command::Purge(id, reply) => {
                let result = self.purge(id)?;
                Answer::new(reply, result)
            }
            Command::PurgeBefore(state, before, reply) => {
                let result = self.purge_before(state, before)?;
                Answer::new(reply, Ok(result))
            }
            Command::SetPaused(kind, paused, reply) => {
                if paused {
                    self.paused.insert(kind.as_str(), ()).map_err(unavailable)?;
                } else {
                    self.paused.remove(kind.as_str()).map_err(unavailable)?;
                }
                Answer::new(reply, Ok(()))
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
                let result = if existed { Ok(()) } else { not_found() };
                Answer::new(reply, result)
            }
            Command::Quarantine(id) => {
                // Read again here: only a record that is still corrupt moves.
                if let Some(why) = self.still_corrupt(id)? {
                    self.quarantine(id, &why)?;
                }
                Answer(Box::new(|_| {}))
            }
            Command::Prune(before, reply) => {
                let result = self.prune(before)?;
                Answer::new(reply, Ok(result))
            }
        })
    }

    /// Stores a new record unless its key is claimed; a started one is held from here (and
    /// released again if the transaction fails).
    fn append(&mut self, record: NewRecord, reply: Reply<Appended>) -> Result<Answer, StoreError> {
        if let Some(existing) = self.keys.get(record.key.as_slice()).map_err(unavailable)? {
            let id = decode_key_value(existing.value()).0;
            return Ok(Answer::new(reply, Ok(Appended::Duplicate(id))));
        }
        let id = self.next_record_id()?;
        let received_at = record.envelope.received_at_ms;
        let info = Info {
            envelope: record.envelope,
            last_error: None,
            task_id: record.task_id,
            due_at_ms: received_at,
            history: Vec::new(),
            body_len: record.body.len() as u64,
            body_crc: crc32fast::hash(&record.body),
            order: record.order_key.map(|key| OrderInfo {
                key,
                holds: record.order_holds,
            }),
        };
        // A started record goes to the handler at once: its first attempt counts from here,
        // so that a crash before the handler ran still counts it.
        let meta = Meta::new(RecordState::Pending, u32::from(record.started), info);
        self.records.insert(id, &meta, &record.body)?;
        let mut key_value = [0u8; 16];
        key_value[..8].copy_from_slice(&id.to_le_bytes());
        key_value[8..].copy_from_slice(&received_at.to_le_bytes());
        self.keys
            .insert(record.key.as_slice(), key_value.as_slice())
            .map_err(unavailable)?;
        let answer = Answer::new(reply, Ok(Appended::Stored(id)));
        if !record.started {
            return Ok(answer);
        }
        // Held before the commit makes it visible, so that no claim takes it meanwhile.
        self.shared.holds.hold(id);
        let holds = Arc::clone(&self.shared.holds);
        Ok(answer.then(move |failed| {
            if failed {
                holds.release(id);
            }
        }))
    }

    /// Record `id`'s metadata; `Ok(Err(NotFound))` when there is none, and `Ok(Err(Corrupt))`
    /// when it cannot be read back (it is quarantined, in this transaction).
    fn load(&mut self, id: RecordId) -> Result<Result<Decoded, StoreError>, StoreError> {
        match self.records.meta(id)? {
            None => Ok(not_found()),
            Some(Ok(decoded)) => Ok(Ok(decoded)),
            // Never handed on, and never a reason to fail the other commands of the group.
            Some(Err(why)) => {
                self.quarantine(id, &why)?;
                Ok(Err(why))
            }
        }
    }

    /// Reads, changes and writes back one record's metadata (its index entry follows); the
    /// change's error leaves it as it was.
    fn update<T>(
        &mut self,
        id: RecordId,
        change: impl FnOnce(&mut Meta) -> Result<T, StoreError>,
    ) -> Result<Result<T, StoreError>, StoreError> {
        let decoded = match self.load(id)? {
            Ok(decoded) => decoded,
            Err(err) => return Ok(Err(err)),
        };
        let mut meta = decoded.meta.clone();
        let result = change(&mut meta);
        if result.is_ok() {
            self.records.rewrite(id, &decoded, &meta)?;
        }
        Ok(result)
    }

    /// A pending record handled: kept, with the attempt in its history.
    fn complete(
        &mut self,
        id: RecordId,
        attempt: Attempt,
    ) -> Result<Result<(), StoreError>, StoreError> {
        self.update(id, |meta| {
            pending(meta)?;
            meta.state = RecordState::Handled;
            meta.info.due_at_ms = now_ms();
            finish_attempt(meta, attempt);
            Ok(())
        })
    }

    /// A dead or handled record pending again, due now, attempts reset, not held; returned
    /// with its body.
    fn replay(&mut self, id: RecordId) -> Result<Result<Record, StoreError>, StoreError> {
        let changed = self.update(id, |meta| {
            if meta.state == RecordState::Pending {
                return not_found();
            }
            // A dead letter that held its key comes back as its head; any other comes back
            // unordered: the records after it went on without it.
            let held = meta.state == RecordState::Dead
                && meta.info.order.as_ref().is_some_and(|order| order.holds);
            if !held {
                meta.info.order = None;
            }
            meta.state = RecordState::Pending;
            meta.attempts = 0;
            meta.info.due_at_ms = now_ms();
            Ok(meta.clone())
        })?;
        let meta = match changed {
            Ok(meta) => meta,
            Err(err) => return Ok(Err(err)),
        };
        self.shared.holds.release(id);
        let decoded = Decoded {
            meta,
            inline_body: None,
        };
        match self.records.body(id, &decoded)? {
            Ok(body) => Ok(Ok(decoded.meta.into_record(id, body))),
            Err(why) => {
                self.quarantine(id, &why)?;
                Ok(Err(why))
            }
        }
    }

    /// A pending record not held, due later, made due now; whether it changed.
    fn make_due(&mut self, id: RecordId) -> Result<Result<bool, StoreError>, StoreError> {
        if self.shared.holds.is_held(id) {
            return Ok(Ok(false));
        }
        let decoded = match self.load(id)? {
            Ok(decoded) => decoded,
            Err(err) if err.kind() == StoreErrorKind::NotFound => return Ok(Ok(false)),
            Err(err) => return Ok(Err(err)),
        };
        let now = now_ms();
        if decoded.meta.state != RecordState::Pending || decoded.meta.info.due_at_ms <= now {
            return Ok(Ok(false));
        }
        let mut meta = decoded.meta.clone();
        meta.info.due_at_ms = now;
        self.records.rewrite(id, &decoded, &meta)?;
        Ok(Ok(true))
    }

    /// Deletes a dead or handled record; whether there was one. Its key stays.
    fn purge(&mut self, id: RecordId) -> Result<Result<bool, StoreError>, StoreError> {
        match self.load(id)? {
            Ok(decoded) if decoded.meta.state == RecordState::Pending => Ok(Ok(false)),
            Ok(_) => {
                self.records.remove(id)?;
                Ok(Ok(true))
            }
            Err(err) if err.kind() == StoreErrorKind::NotFound => Ok(Ok(false)),
            Err(err) => Ok(Err(err)),
        }
    }

    /// Deletes up to [`PURGE_BATCH`] records in `state` (dead or handled) that became so
    /// before `before`, oldest first, read from the `finished` index; how many.
    fn purge_before(&mut self, state: RecordState, before: i64) -> Result<u64, StoreError> {
        if state == RecordState::Pending {
            return Ok(0);
        }
        let ids = self
            .records
            .finished_before(state_byte(state), before, PURGE_BATCH)?;
        for &id in &ids {
            self.records.remove(id)?;
        }
        Ok(ids.len() as u64)
    }

    /// Forgets the keys claimed before `before` whose records are gone; trims the refused
    /// bodies by age.
    fn prune(&mut self, before: i64) -> Result<u64, StoreError> {
        let mut stale = Vec::new();
        for entry in self.keys.iter().map_err(unavailable)? {
            let (key, value) = entry.map_err(unavailable)?;
            let (id, claimed_at) = decode_key_value(value.value());
            if claimed_at < before && self.records.records.get(id).map_err(unavailable)?.is_none() {
                stale.push(key.value().to_vec());
            }
        }
        for key in &stale {
            self.keys.remove(key.as_slice()).map_err(unavailable)?;
        }
        // Hourly: refused bodies past the age go even when no new refusal comes.
        self.rejected.trim(self.meta, SystemTime::now())?;
        Ok(stale.len() as u64)
    }

    /// Why record `id` cannot be read back (metadata or body), if it cannot.
    fn still_corrupt(&mut self, id: RecordId) -> Result<Option<StoreError>, StoreError> {
        Ok(match self.records.meta(id)? {
            None => None,
            Some(Err(why)) => Some(why),
            Some(Ok(decoded)) => self.records.body(id, &decoded)?.err(),
        })
    }
}

/// A de-duplication key's value: the record's id and when the key was claimed.
fn decode_key_value(value: &[u8]) -> (RecordId, i64) {
    let mut id = [0u8; 8];
    let mut at = [0u8; 8];
    if value.len() == 16 {
        id.copy_from_slice(&value[..8]);
        at.copy_from_slice(&value[8..]);
    }
    (u64::from_le_bytes(id), i64::from_le_bytes(at))
}
