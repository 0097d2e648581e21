//! What readers do, each in a read transaction of its own, beside the writer: claims, lists,
//! counts, single records. A record found corrupt is never returned: its id is handed back
//! for the writer to quarantine.

use std::ops::Bound;
use std::sync::Arc;
use std::time::SystemTime;

use ::redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata,
};

use super::format::{
    BLOCKED, BODIES, DUE, FINISHED, ORDER, PAUSED, RECORDS, peek_state, state_byte,
};
use super::shared::{Holds, unavailable};
use super::tables::{read_body, read_meta};
use crate::store::{
    Record, RecordId, RecordQuery, RecordState, RecordSummary, StoreError, StoreSummary, millis,
};

/// The most records one [`list`](crate::store::Store::list) page looks at, matching or not.
/// A page of rare matches in a large store stops there, shorter than asked for though more
/// may follow; the store's own paging (counts, retries, replays) carries on from where it
/// stopped ([`Page::next`]).
pub(super) const LIST_SCAN_CAP: usize = 100_000;

/// Ids of records found corrupt, for the writer to quarantine.
pub(super) type Corrupt = Vec<RecordId>;

/// The metadata and bodies tables of one read transaction.
struct Tables {
    records: ReadOnlyTable<u64, &'static [u8]>,
    bodies: ReadOnlyTable<u64, &'static [u8]>,
}

impl Tables {
    fn open(tx: &ReadTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            records: tx.open_table(RECORDS).map_err(unavailable)?,
            bodies: tx.open_table(BODIES).map_err(unavailable)?,
        })
    }

    /// Record `id` whole, body checked; `Ok(None)` when there is none.
    fn record(&self, id: RecordId) -> Result<Option<Result<Record, StoreError>>, StoreError> {
        let decoded = match read_meta(&self.records, id)? {
            None => return Ok(None),
            Some(Err(why)) => return Ok(Some(Err(why))),
            Some(Ok(decoded)) => decoded,
        };
        let body = read_body(&self.bodies, id, &decoded)?;
        Ok(Some(body.map(|body| decoded.meta.into_record(id, body))))
    }
}

/// Now, in milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    millis(SystemTime::now())
}

fn begin(db: &Database) -> Result<ReadTransaction, StoreError> {
    db.begin_read().map_err(unavailable)
}

/// Record `id` whole, in any state.
pub(super) fn get(
    db: &Database,
    id: RecordId,
) -> Result<Option<Result<Record, StoreError>>, StoreError> {
    Tables::open(&begin(db)?)?.record(id)
}

/// Every record in `state`, bodies included, in id order; and those found corrupt.
pub(super) fn records_in(
    db: &Database,
    state: RecordState,
) -> Result<(Vec<Record>, Corrupt), StoreError> {
    let tables = Tables::open(&begin(db)?)?;
    let (mut out, mut corrupt) = (Vec::new(), Vec::new());
    for entry in tables.records.iter().map_err(unavailable)? {
        let (id, value) = entry.map_err(unavailable)?;
        let id = id.value();
        // The state byte first: the others are not decoded.
        if peek_state(value.value()).is_some_and(|found| found != state) {
            continue;
        }
        drop(value);
        match tables.record(id)? {
            Some(Ok(record)) if record.state == state => out.push(record),
            Some(Err(_)) => corrupt.push(id),
            _ => {}
        }
    }
    Ok((out, corrupt))
}

/// One page of a list: its rows, and where the next one starts.
pub(super) struct Page {
    pub(super) rows: Vec<RecordSummary>,
    /// The id to carry on after: `None` once the end of the table was reached.
    pub(super) next: Option<RecordId>,
    pub(super) corrupt: Corrupt,
}

/// Up to `limit` records matching `query` after `query.after`, in id order, looking at
/// `scan_cap` records at most; metadata alone, never a body.
pub(super) fn page(
    db: &Database,
    query: &RecordQuery,
    limit: usize,
    scan_cap: usize,
) -> Result<Page, StoreError> {
    let tx = begin(db)?;
    let records = tx.open_table(RECORDS).map_err(unavailable)?;
    let mut page = Page {
        rows: Vec::new(),
        next: None,
        corrupt: Vec::new(),
    };
    let range = (Bound::Excluded(query.after), Bound::Unbounded);
    let mut stopped = false;
    for (scanned, entry) in records
        .range::<u64>(range)
        .map_err(unavailable)?
        .enumerate()
    {
        if scanned >= scan_cap || page.rows.len() >= limit {
            stopped = true;
            break;
        }
        let (id, value) = entry.map_err(unavailable)?;
        let id = id.value();
        page.next = Some(id);
        if let Some(summary) = summarize(id, value.value(), query, &mut page.corrupt) {
            page.rows.push(summary);
        }
    }
    if !stopped {
        page.next = None;
    }
    let order = tx.open_table(ORDER).map_err(unavailable)?;
    for row in &mut page.rows {
        if let (RecordState::Pending, Some(key)) = (row.state, row.order_key.as_deref()) {
            let kind = row.kind.as_str();
            let head = order
                .range((kind, key, 0)..=(kind, key, u64::MAX))
                .map_err(unavailable)?
                .next()
                .transpose()
                .map_err(unavailable)?
                .map(|(entry, _)| entry.value().2);
            row.held_back_by = head.filter(|&head| head != row.id);
        }
    }
    Ok(page)
}

/// How many keys of `kind` have records waiting behind a head that failed (pending with an
/// error, or a dead letter that holds): one read of `order`, and one record's metadata a key.
pub(super) fn keys_held_back(db: &Database, kind: &str) -> Result<u64, StoreError> {
    let tx = begin(db)?;
    let order = tx.open_table(ORDER).map_err(unavailable)?;
    let records = tx.open_table(RECORDS).map_err(unavailable)?;
    let (mut held, mut current): (u64, Option<(String, RecordId, bool)>) = (0, None);
    for entry in order.range((kind, "", 0)..).map_err(unavailable)? {
        let (entry, _) = entry.map_err(unavailable)?;
        let (entry_kind, key, id) = entry.value();
        if entry_kind != kind {
            break;
        }
        match &mut current {
            // A second record of the key: it waits behind the head.
            Some((current_key, head, counted)) if current_key == key => {
                if !*counted && failed(&records, *head)? {
                    held += 1;
                }
                *counted = true;
            }
            _ => current = Some((key.to_owned(), id, false)),
        }
    }
    Ok(held)
}

/// Whether record `id` has failed: pending with an error, or dead.
fn failed(records: &ReadOnlyTable<u64, &'static [u8]>, id: RecordId) -> Result<bool, StoreError> {
    Ok(match read_meta(records, id)? {
        Some(Ok(decoded)) => {
            decoded.meta.state == RecordState::Dead || decoded.meta.info.last_error.is_some()
        }
        _ => false,
    })
}

/// The row of stored value `value` if it matches `query`; a corrupt one is noted, not listed.
fn summarize(
    id: RecordId,
    value: &[u8],
    query: &RecordQuery,
    corrupt: &mut Corrupt,
) -> Option<RecordSummary> {
    // The state byte first: the others are not decoded.
    if let (Some(want), Some(found)) = (query.state, peek_state(value))
        && want != found
    {
        return None;
    }
    match super::format::decode(id, value) {
        Ok(decoded) => {
            let summary = decoded.meta.summary(id);
            query.matches(&summary).then_some(summary)
        }
        Err(_) => {
            corrupt.push(id);
            None
        }
    }
}

/// How many records match `query` (its `after` and `limit` aside): from an index when the
/// query asks for a state (and, for pending records, a kind) alone, else reading every
/// record's metadata, never a body.
pub(super) fn count(db: &Database, query: &RecordQuery) -> Result<(u64, Corrupt), StoreError> {
    let tx = begin(db)?;
    if let Some(count) = count_by_index(&tx, query)? {
        return Ok((count, Vec::new()));
    }
    let records = tx.open_table(RECORDS).map_err(unavailable)?;
    let (mut count, mut corrupt) = (0, Vec::new());
    for entry in records.iter().map_err(unavailable)? {
        let (id, value) = entry.map_err(unavailable)?;
        if summarize(id.value(), value.value(), query, &mut corrupt).is_some() {
            count += 1;
        }
    }
    Ok((count, corrupt))
}

/// The count an index answers alone: a query of a state only, or of pending records of a
/// kind; `None` for any other query.
fn count_by_index(tx: &ReadTransaction, query: &RecordQuery) -> Result<Option<u64>, StoreError> {
    let state_only = query.task_id.is_none()
        && query.since_ms.is_none()
        && query.until_ms.is_none()
        && query.error.is_none();
    let Some(state) = query.state.filter(|_| state_only) else {
        return Ok(None);
    };
    let count = match (state, query.kind.as_deref()) {
        // Pending: due, and blocked behind the head of their key.
        (RecordState::Pending, None) => {
            let due = tx.open_table(DUE).map_err(unavailable)?;
            let blocked = tx.open_table(BLOCKED).map_err(unavailable)?;
            due.len().map_err(unavailable)? + blocked.len().map_err(unavailable)?
        }
        (RecordState::Pending, Some(kind)) => {
            let due = tx.open_table(DUE).map_err(unavailable)?;
            let range = due
                .range((kind, i64::MIN, 0)..=(kind, i64::MAX, u64::MAX))
                .map_err(unavailable)?;
            let blocked = tx.open_table(BLOCKED).map_err(unavailable)?;
            let waiting = blocked
                .range((kind, 0)..=(kind, u64::MAX))
                .map_err(unavailable)?;
            entries(range)? + entries(waiting)?
        }
        (state, None) => finished_count(tx, state)?,
        (_, Some(_)) => return Ok(None),
    };
    Ok(Some(count))
}

/// How many entries of the `finished` index are in `state`.
fn finished_count(tx: &ReadTransaction, state: RecordState) -> Result<u64, StoreError> {
    let finished = tx.open_table(FINISHED).map_err(unavailable)?;
    let byte = state_byte(state);
    let range = finished
        .range((byte, i64::MIN, 0)..=(byte, i64::MAX, u64::MAX))
        .map_err(unavailable)?;
    entries(range)
}

/// How many entries an index range holds (keys alone are read).
fn entries<K: ::redb::Key + 'static>(
    mut range: ::redb::Range<'_, K, ()>,
) -> Result<u64, StoreError> {
    range.try_fold(0, |count, entry| {
        entry.map(|_| count + 1).map_err(unavailable)
    })
}

/// Counts from the indexes: pending (every entry of `due`), dead (the dead part of
/// `finished`), and the arrival of the pending record of the lowest id. No body is read, and
/// handled records are not looked at.
pub(super) fn summary(db: &Database) -> Result<StoreSummary, StoreError> {
    let tx = begin(db)?;
    let due = tx.open_table(DUE).map_err(unavailable)?;
    let blocked = tx.open_table(BLOCKED).map_err(unavailable)?;
    let pending = due.len().map_err(unavailable)? + blocked.len().map_err(unavailable)?;
    let dead = finished_count(&tx, RecordState::Dead)?;
    let mut first = None;
    for entry in due.iter().map_err(unavailable)? {
        let (key, _) = entry.map_err(unavailable)?;
        let id = key.value().2;
        first = Some(first.map_or(id, |lowest: RecordId| lowest.min(id)));
    }
    for entry in blocked.iter().map_err(unavailable)? {
        let (key, _) = entry.map_err(unavailable)?;
        let id = key.value().1;
        first = Some(first.map_or(id, |lowest: RecordId| lowest.min(id)));
    }
    let oldest = match first {
        Some(id) => {
            let records = tx.open_table(RECORDS).map_err(unavailable)?;
            read_meta(&records, id)?
                .and_then(Result::ok)
                .map(|decoded| decoded.meta.info.envelope.received_at())
        }
        None => None,
    };
    Ok(StoreSummary::new(pending, dead, oldest))
}

/// The paused kinds.
pub(super) fn paused(db: &Database) -> Result<Vec<String>, StoreError> {
    let tx = begin(db)?;
    let table = tx.open_table(PAUSED).map_err(unavailable)?;
    let mut kinds = Vec::new();
    for entry in table.iter().map_err(unavailable)? {
        let (kind, _) = entry.map_err(unavailable)?;
        kinds.push(kind.value().to_owned());
    }
    Ok(kinds)
}

/// Records claimed: held until their outcome is written. Dropped before
/// [`take`](Self::take) (a claim whose caller went away), it releases its holds.
pub(super) struct Claimed {
    records: Vec<Record>,
    holds: Arc<Holds>,
    pub(super) corrupt: Corrupt,
}

impl Claimed {
    /// The records, now the caller's to write the outcome of.
    pub(super) fn take(mut self) -> Vec<Record> {
        std::mem::take(&mut self.records)
    }
}

impl Drop for Claimed {
    fn drop(&mut self) {
        for record in &self.records {
            self.holds.release(record.id);
        }
    }
}

/// Claims up to `max` due pending records of `kind`, soonest due first, then lowest id,
/// skipping held ones; none when the kind is paused. Past the first record, none whose body
/// would take the bodies past `max_bytes` (its body is not read).
///
/// The candidates are held first, then read again in a new transaction: an outcome written
/// meanwhile (committed before its hold was released) is seen there, and the record let go.
pub(super) fn claim(
    db: &Database,
    kind: &str,
    max: usize,
    max_bytes: usize,
    holds: &Arc<Holds>,
) -> Result<Claimed, StoreError> {
    let now = now_ms();
    let candidates = candidates(db, kind, now, max, holds)?;
    let mut claimed = Claimed {
        records: Vec::with_capacity(candidates.len()),
        holds: Arc::clone(holds),
        corrupt: Vec::new(),
    };
    let read = read_claimed(db, kind, now, max_bytes, &candidates, &mut claimed);
    // Every candidate not handed back is let go (all of them, after an error).
    for id in candidates {
        if read.is_err() || !claimed.records.iter().any(|record| record.id == id) {
            holds.release(id);
        }
    }
    read.map(|()| claimed)
}

/// Holds and returns up to `max` ids from `due` for `kind`, due by `now`, not held before.
fn candidates(
    db: &Database,
    kind: &str,
    now: i64,
    max: usize,
    holds: &Holds,
) -> Result<Vec<RecordId>, StoreError> {
    let tx = begin(db)?;
    let paused = tx.open_table(PAUSED).map_err(unavailable)?;
    if paused.get(kind).map_err(unavailable)?.is_some() {
        return Ok(Vec::new());
    }
    let due = tx.open_table(DUE).map_err(unavailable)?;
    let mut ids = Vec::new();
    let scanned = hold_due(&due, kind, now, max, holds, &mut ids);
    if scanned.is_err() {
        ids.iter().for_each(|&id| holds.release(id));
    }
    scanned.map(|()| ids)
}

/// Holds ids of `due` for `kind` due by `now`, into `ids`, up to `max`.
fn hold_due(
    due: &ReadOnlyTable<(&'static str, i64, u64), ()>,
    kind: &str,
    now: i64,
    max: usize,
    holds: &Holds,
    ids: &mut Vec<RecordId>,
) -> Result<(), StoreError> {
    for entry in due
        .range((kind, i64::MIN, 0)..=(kind, now, u64::MAX))
        .map_err(unavailable)?
    {
        if ids.len() >= max {
            break;
        }
        let (key, _) = entry.map_err(unavailable)?;
        let id = key.value().2;
        if holds.hold(id) {
            ids.push(id);
        }
    }
    Ok(())
}

/// Reads the held candidates whole; keeps those still pending, of `kind` and due, until the
/// next body would take them past `max_bytes`.
fn read_claimed(
    db: &Database,
    kind: &str,
    now: i64,
    max_bytes: usize,
    candidates: &[RecordId],
    claimed: &mut Claimed,
) -> Result<(), StoreError> {
    let tables = Tables::open(&begin(db)?)?;
    let mut bytes = 0usize;
    for &id in candidates {
        if let Some(Ok(decoded)) = read_meta(&tables.records, id)? {
            let size = usize::try_from(decoded.meta.info.body_len).unwrap_or(usize::MAX);
            if !claimed.records.is_empty() && bytes.saturating_add(size) > max_bytes {
                break;
            }
            bytes = bytes.saturating_add(size);
        }
        match tables.record(id)? {
            Some(Ok(record))
                if record.state == RecordState::Pending
                    && record.due_at_ms <= now
                    && record.envelope.kind() == kind =>
            {
                claimed.records.push(record);
            }
            Some(Err(_)) => claimed.corrupt.push(id),
            _ => {}
        }
    }
    Ok(())
}
