//! The writer thread: every change, in groups, one transaction and one fsync a group.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use ::redb::{Database, ReadableTable};
use tokio::sync::{mpsc, oneshot};

use super::bodies::Staged;
use super::format::{Header, KEYS, META, RECORDS, decode_record, encode_record};
use super::recovery::{Outage, Quarantine};
use super::rejected::RejectedTables;
use super::shared::{Shared, recovering, unavailable};
use crate::store::{
    Appended, Envelope, NewRecord, Record, RecordId, RecordState, StoreError, StoreErrorKind,
};

/// The most commands one transaction commits together.
const MAX_GROUP: usize = 1024;

pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

pub(super) enum Command {
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

/// The meta entry holding the next record id.
const NEXT_RECORD: &str = "next_record";

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

    pub(super) fn send(self, failed: Option<&StoreError>) {
        (self.0)(failed)
    }
}

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
