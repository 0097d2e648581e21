//! The embedded store's refused bodies: listed without reading a body, bounded in size and age.
//!
//! ```text
//! rejected_meta    id -> [FF 'M' 3 0][crc32 of the JSON, LE][header JSON]
//!                        header: status, reason, envelope, body_len, body_crc
//! rejected_by_age  (received_at_ms, id) -> ()
//! meta             "rejected_charged": the sum of the charges (body_len + header length +
//!                        ENTRY_COST); "next_rejected": the next id
//! rejected/<id>    (a file beside the database) the raw bytes, as received: `bodies.rs`
//! ```
//!
//! Listing reads the headers alone, never a body's file. A body's bytes are a file of their
//! own, not redb values: deleting it gives its space back at once (see `bodies.rs`).
//! The running total lets the cap be kept without a scan, and the age index lets the age limit
//! read only what it drops. Before these tables, one table `rejected` held header and body in
//! one value (versions 1 and 2, below); [`migrate`] moves its entries at open.

use std::ops::Bound;
use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use ::redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table, TableDefinition,
    TableHandle, WriteTransaction,
};
use bytes::Bytes;

use super::bodies::{Folder, Staged, Unsettled};
use super::format::{CHANGED, META, checksum, corrupt};
use crate::store::{
    Envelope, RecordId, RefusedBody, RefusedBodyLimits, RefusedBodySummary, RejectedDrops,
    StoreError, StoreErrorKind,
};

const HEADERS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("rejected_meta");
const BY_AGE: TableDefinition<'_, (i64, u64), ()> = TableDefinition::new("rejected_by_age");
/// Versions 1 and 2: header and body in one value.
const OLD: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("rejected");

/// The meta entry holding the sum of the kept bodies' charges (see [`charge`]).
const KEPT_BYTES: &str = "rejected_charged";
/// Before each entry was charged its header and [`RefusedBodyLimits::ENTRY_COST`]: the sum of
/// the bodies' lengths alone, replaced at open ([`recount`]).
const OLD_KEPT_BYTES: &str = "rejected_bytes";
/// The meta entry holding the next refused body's id.
const NEXT_REJECTED: &str = "next_rejected";

fn unavailable(err: impl Into<crate::BoxError>) -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, err)
}

// ---- The header --------------------------------------------------------------------------------

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    status: u16,
    reason: String,
    envelope: Envelope,
    /// Checked when the body is read: a truncated body is reported.
    body_len: u64,
    /// The body's CRC-32, checked when it is read: redb checks nothing after a clean stop.
    body_crc: u32,
}

/// A header starts with these bytes (version 3 of the refused bodies).
const HEADER_V3: [u8; 4] = [0xFF, b'M', 3, 0];

fn encode_header(header: &Header) -> Vec<u8> {
    // Serializing a struct of strings and integers cannot fail.
    let json = serde_json::to_vec(header).unwrap_or_default();
    let mut out = Vec::with_capacity(8 + json.len());
    out.extend_from_slice(&HEADER_V3);
    out.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
    out.extend_from_slice(&json);
    out
}

fn decode_header(id: RecordId, bytes: &[u8]) -> Result<Header, StoreError> {
    let (magic, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt(id, "truncated refused body header"))?;
    if *magic != HEADER_V3 {
        return Err(corrupt(id, "unknown refused body format"));
    }
    let (crc, json) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt(id, "truncated refused body header"))?;
    if u32::from_le_bytes(*crc) != crc32fast::hash(json) {
        return Err(corrupt(id, CHANGED));
    }
    serde_json::from_slice(json).map_err(|_| corrupt(id, "unreadable refused body header"))
}

/// What an entry counts toward the cap: its body, its encoded header, and the fixed cost.
fn charge(body_len: u64, header: &[u8]) -> u64 {
    RefusedBodyLimits::charge(body_len, header.len() as u64)
}

fn summary(id: RecordId, header: Header) -> RefusedBodySummary {
    RefusedBodySummary::new(
        id,
        header.status,
        header.reason,
        header.envelope,
        header.body_len,
    )
}

/// The body, checked against its header.
fn record(id: RecordId, header: Header, body: Vec<u8>) -> Result<RefusedBody, StoreError> {
    if body.len() as u64 != header.body_len {
        return Err(corrupt(
            id,
            "the refused body is not the length it was written with",
        ));
    }
    if crc32fast::hash(&body) != header.body_crc {
        return Err(corrupt(id, CHANGED));
    }
    Ok(RefusedBody::new(
        id,
        header.status,
        header.reason,
        header.envelope,
        Bytes::from(body),
    ))
}

// ---- Reads -------------------------------------------------------------------------------------

/// Up to `limit` summaries after `after`, from the headers alone.
pub(super) fn page(
    db: &Database,
    after: RecordId,
    limit: usize,
) -> Result<Vec<RefusedBodySummary>, StoreError> {
    let tx = db.begin_read().map_err(unavailable)?;
    let headers = tx.open_table(HEADERS).map_err(unavailable)?;
    let range = headers
        .range::<u64>((Bound::Excluded(after), Bound::Unbounded))
        .map_err(unavailable)?;
    let mut out = Vec::new();
    for entry in range.take(limit) {
        let (id, value) = entry.map_err(unavailable)?;
        let id = id.value();
        out.push(summary(id, decode_header(id, value.value())?));
    }
    Ok(out)
}

/// One refused body, bytes included.
pub(super) fn get(
    db: &Database,
    folder: &Folder,
    id: RecordId,
) -> Result<Option<RefusedBody>, StoreError> {
    let tx = db.begin_read().map_err(unavailable)?;
    let headers = tx.open_table(HEADERS).map_err(unavailable)?;
    let Some(value) = headers.get(id).map_err(unavailable)? else {
        return Ok(None);
    };
    let header = decode_header(id, value.value())?;
    with_body(db, folder, id, header)
}

/// Every refused body that can be read, bytes included. One that cannot (its file missing,
/// its bytes changed) is left out with a WARN: [`get`] answers `Corrupt` for it alone.
pub(super) fn all(db: &Database, folder: &Folder) -> Result<Vec<RefusedBody>, StoreError> {
    let tx = db.begin_read().map_err(unavailable)?;
    let headers = tx.open_table(HEADERS).map_err(unavailable)?;
    let mut out = Vec::new();
    for entry in headers.iter().map_err(unavailable)? {
        let (id, value) = entry.map_err(unavailable)?;
        let id = id.value();
        let read =
            decode_header(id, value.value()).and_then(|header| with_body(db, folder, id, header));
        match read {
            Ok(found) => out.extend(found),
            Err(err) if err.kind() == StoreErrorKind::Corrupt => {
                tracing::warn!(rejected = id, error = %err, "a refused body cannot be read: left out of the list");
            }
            Err(err) => return Err(err),
        }
    }
    Ok(out)
}

/// The record of a header read, with its body from its file, checked; `None` when it was
/// dropped (and its file deleted) since the header was read.
fn with_body(
    db: &Database,
    folder: &Folder,
    id: RecordId,
    header: Header,
) -> Result<Option<RefusedBody>, StoreError> {
    if let Some(body) = folder.read(id)? {
        return record(id, header, body).map(Some);
    }
    let tx = db.begin_read().map_err(unavailable)?;
    let headers = tx.open_table(HEADERS).map_err(unavailable)?;
    if headers.get(id).map_err(unavailable)?.is_none() {
        return Ok(None);
    }
    Err(corrupt(
        id,
        &format!("the refused body's file rejected/{id} is missing"),
    ))
}

/// Deletes the files in `folder` that no committed header names, and the temporary ones when
/// `tmp_too` (at the first open only: later, a refusal may be writing one).
pub(super) fn sweep(db: &Database, folder: &Folder, tmp_too: bool) -> Result<(), StoreError> {
    let tx = db.begin_read().map_err(unavailable)?;
    let headers = tx.open_table(HEADERS).map_err(unavailable)?;
    folder.sweep(
        |id| Ok(headers.get(id).map_err(unavailable)?.is_some()),
        tmp_too,
    )
}

// ---- Writes ------------------------------------------------------------------------------------

/// The refused bodies' tables, open in a write transaction, and their files.
pub(super) struct RejectedTables<'t> {
    headers: Table<'t, u64, &'static [u8]>,
    by_age: Table<'t, (i64, u64), ()>,
    folder: &'t Folder,
    limits: RefusedBodyLimits,
    /// What this transaction dropped so far.
    dropped: RejectedDrops,
    /// The files this transaction placed: deleted if it does not commit.
    placed: Vec<Unsettled>,
    /// The bodies this transaction dropped, whose files go once it commits.
    unlink: Vec<RecordId>,
}

impl<'t> RejectedTables<'t> {
    /// Opens (creates) the tables in `tx`; the bodies' files are in `folder`.
    pub(super) fn open(
        tx: &'t WriteTransaction,
        folder: &'t Folder,
        limits: RefusedBodyLimits,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            headers: tx.open_table(HEADERS).map_err(unavailable)?,
            by_age: tx.open_table(BY_AGE).map_err(unavailable)?,
            folder,
            limits,
            dropped: RejectedDrops::default(),
            placed: Vec::new(),
            unlink: Vec::new(),
        })
    }

    /// Writes `body` to a file of its own, for [`keep`](Self::keep).
    pub(super) fn stage(&self, body: &[u8]) -> Result<Staged, StoreError> {
        self.folder.stage(body)
    }

    /// Makes the files placed so far durable, and hands over what is left to do once the
    /// transaction commits. Call it last, before the commit.
    pub(super) fn finish(&mut self) -> Result<Settle, StoreError> {
        if !self.placed.is_empty() {
            self.folder.sync()?;
        }
        Ok(Settle {
            placed: std::mem::take(&mut self.placed),
            unlink: std::mem::take(&mut self.unlink),
            dropped: std::mem::take(&mut self.dropped),
        })
    }

    /// Keeps a refused body, then drops what the limits no longer allow. `Ok(Err(Invalid))`
    /// when the body is over the cap on its own (charged with its header): not kept, and
    /// nothing else dropped for it.
    ///
    /// The body just kept is never dropped for its age here, as on PostgreSQL (where its age
    /// is its insert's): one whose envelope is already past the age (a clock stepped, a tiny
    /// age) is kept until the next refusal or prune, so that the id answered names a body
    /// that can be read, and the trim never undoes the write it follows.
    pub(super) fn keep(
        &mut self,
        meta: &mut Table<'_, &'static str, u64>,
        status: u16,
        reason: String,
        envelope: Envelope,
        body: Staged,
    ) -> Result<Result<RecordId, StoreError>, StoreError> {
        let header = Header {
            status,
            reason,
            envelope,
            body_len: body.len,
            body_crc: body.crc,
        };
        let encoded = encode_header(&header);
        if let Err(refused) = self.limits.admit(body.len, charge(body.len, &encoded)) {
            return Ok(Err(refused));
        }
        let id = meta
            .get(NEXT_REJECTED)
            .map_err(unavailable)?
            .map_or(1, |v| v.value());
        meta.insert(NEXT_REJECTED, id + 1).map_err(unavailable)?;
        // A rename that fails (a full folder) fails this refusal alone, not the group.
        let placed = match body.place(self.folder, id) {
            Ok(placed) => placed,
            Err(err) => return Ok(Err(err)),
        };
        self.insert(meta, id, &header, &encoded, placed)?;
        self.trim_but(meta, SystemTime::now(), Some(id))?;
        // Admitted, it fits the cap alone; a total that drifted may still push it out.
        if self.headers.get(id).map_err(unavailable)?.is_none() {
            return Ok(Err(StoreError::new(
                StoreErrorKind::Invalid,
                format!(
                    "a refused body of {} bytes did not fit the refused bodies' cap of {} \
                     bytes: not kept",
                    header.body_len, self.limits.max_bytes
                ),
            )));
        }
        Ok(Ok(id))
    }

    /// Places a refused body's file under `id`, writes its header and adds its charge to the
    /// total; no limit checked.
    fn insert(
        &mut self,
        meta: &mut Table<'_, &'static str, u64>,
        id: RecordId,
        header: &Header,
        encoded: &[u8],
        placed: Unsettled,
    ) -> Result<(), StoreError> {
        self.placed.push(placed);
        self.headers.insert(id, encoded).map_err(unavailable)?;
        self.by_age
            .insert((header.envelope.received_at_ms, id), ())
            .map_err(unavailable)?;
        let total = kept_bytes(meta)?.saturating_add(charge(header.body_len, encoded));
        meta.insert(KEPT_BYTES, total).map_err(unavailable)?;
        Ok(())
    }

    /// Forgets a refused body; false when there was none with this id.
    pub(super) fn remove(
        &mut self,
        meta: &mut Table<'_, &'static str, u64>,
        id: RecordId,
    ) -> Result<bool, StoreError> {
        Ok(self.forget(meta, id)?.is_some())
    }

    /// Drops the bodies received before `now` less the age limit, then the oldest until the
    /// total is within the cap.
    pub(super) fn trim(
        &mut self,
        meta: &mut Table<'_, &'static str, u64>,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        self.trim_but(meta, now, None)
    }

    /// [`trim`](Self::trim), sparing `young` from the age limit.
    fn trim_but(
        &mut self,
        meta: &mut Table<'_, &'static str, u64>,
        now: SystemTime,
        young: Option<RecordId>,
    ) -> Result<(), StoreError> {
        let oldest_kept = self.limits.oldest_kept_ms(now);
        let mut too_old = Vec::new();
        for entry in self
            .by_age
            .range::<(i64, u64)>(..(oldest_kept, 0))
            .map_err(unavailable)?
        {
            let id = entry.map_err(unavailable)?.0.value().1;
            if Some(id) != young {
                too_old.push(id);
            }
        }
        for id in too_old {
            if let Some(bytes) = self.forget(meta, id)? {
                self.dropped.too_old.0 += 1;
                self.dropped.too_old.1 += bytes;
            }
        }
        while kept_bytes(meta)? > self.limits.max_bytes {
            let oldest = self.headers.first().map_err(unavailable)?;
            let Some(id) = oldest.map(|(id, _)| id.value()) else {
                // Nothing left to drop: the total drifted; it is 0.
                meta.insert(KEPT_BYTES, 0).map_err(unavailable)?;
                break;
            };
            if let Some(bytes) = self.forget(meta, id)? {
                self.dropped.over_cap.0 += 1;
                self.dropped.over_cap.1 += bytes;
            }
        }
        Ok(())
    }

    /// Removes a refused body from the tables and its charge from the total, and its file
    /// once the transaction commits; its length, or `None` when there was none with this id.
    fn forget(
        &mut self,
        meta: &mut Table<'_, &'static str, u64>,
        id: RecordId,
    ) -> Result<Option<u64>, StoreError> {
        let Some(value) = self.headers.remove(id).map_err(unavailable)? else {
            return Ok(None);
        };
        let header_len = value.value().len() as u64;
        let header = decode_header(id, value.value());
        drop(value);
        let bytes = match header {
            Ok(header) => {
                self.by_age
                    .remove((header.envelope.received_at_ms, id))
                    .map_err(unavailable)?;
                header.body_len
            }
            // A header changed on disk: its age entry is found by its id, and the body's
            // length is its file's (what the total counted, unless the body changed too).
            Err(_) => {
                self.by_age
                    .retain(|(_, kept), ()| kept != id)
                    .map_err(unavailable)?;
                self.folder.len(id)
            }
        };
        self.unlink.push(id);
        let charged = RefusedBodyLimits::charge(bytes, header_len);
        let total = kept_bytes(meta)?.saturating_sub(charged);
        meta.insert(KEPT_BYTES, total).map_err(unavailable)?;
        Ok(Some(bytes))
    }
}

/// What a transaction did to the refused bodies' files, to settle once it has committed, or
/// once its commit failed.
#[must_use]
pub(super) struct Settle {
    placed: Vec<Unsettled>,
    unlink: Vec<RecordId>,
    dropped: RejectedDrops,
}

impl Settle {
    /// The transaction committed: keeps the files placed, deletes the dropped bodies' files,
    /// and logs and counts the drops.
    pub(super) fn committed(
        self,
        folder: &Folder,
        limits: &RefusedBodyLimits,
        counter: &AtomicU64,
    ) {
        for file in self.placed {
            file.settle();
        }
        folder.delete(&self.unlink);
        self.dropped.report(limits, counter);
    }

    /// The commit failed: the files placed stay, and the dropped bodies' files too. A failed
    /// commit may still be on disk (its last fsync failed after the data reached it), and
    /// deleting a file its header may name would break the promise that a header never
    /// names nothing; the sweep at the reopen deletes the files that no committed header
    /// names, whichever way it went.
    pub(super) fn failed(self) {
        for file in self.placed {
            file.settle();
        }
    }
}

/// Counts the total afresh from the headers when it was kept as the bodies' lengths alone
/// (before each entry was charged its header and a fixed cost); once, at open.
pub(super) fn recount(db: &Database, folder: &Folder) -> Result<(), StoreError> {
    let tx = db.begin_write().map_err(unavailable)?;
    {
        let mut meta = tx.open_table(META).map_err(unavailable)?;
        if meta.get(KEPT_BYTES).map_err(unavailable)?.is_some() {
            return Ok(());
        }
        let headers = tx.open_table(HEADERS).map_err(unavailable)?;
        let mut total = 0u64;
        for entry in headers.iter().map_err(unavailable)? {
            let (id, value) = entry.map_err(unavailable)?;
            let (id, value) = (id.value(), value.value());
            let body_len = match decode_header(id, value) {
                Ok(header) => header.body_len,
                Err(_) => folder.len(id),
            };
            total = total.saturating_add(charge(body_len, value));
        }
        meta.remove(OLD_KEPT_BYTES).map_err(unavailable)?;
        meta.insert(KEPT_BYTES, total).map_err(unavailable)?;
    }
    tx.commit().map_err(unavailable)
}

fn kept_bytes(meta: &Table<'_, &'static str, u64>) -> Result<u64, StoreError> {
    Ok(meta
        .get(KEPT_BYTES)
        .map_err(unavailable)?
        .map_or(0, |v| v.value()))
}

// ---- Versions 1 and 2, moved at open -----------------------------------------------------------

/// How much one transaction of the move carries at most: the database file grows by about
/// this much while the old entries' pages wait to be reused.
const MOVE_BYTES: u64 = 16 * 1024 * 1024;
const MOVE_ENTRIES: usize = 1024;

/// Moves the refused bodies of versions 1 and 2 (one table, header and body in one value) to
/// the tables of version 3, keeping their ids, oldest first, a few at a time, each group in
/// a transaction that also applies the limits; then deletes the old table. An interrupted
/// move carries on at the next open. An entry that cannot be read is kept whole as the body
/// of one that says why.
pub(super) fn migrate(
    db: &Database,
    folder: &Folder,
    limits: RefusedBodyLimits,
    dropped: &AtomicU64,
) -> Result<(), StoreError> {
    let mut moved = 0u64;
    loop {
        let tx = db.begin_write().map_err(unavailable)?;
        let exists = tx
            .list_tables()
            .map_err(unavailable)?
            .any(|table| table.name() == OLD.name());
        if !exists {
            if moved > 0 {
                tracing::info!(
                    count = moved,
                    "moved the refused bodies to their new tables"
                );
            }
            return Ok(());
        }
        let done = {
            let mut old = tx.open_table(OLD).map_err(unavailable)?;
            let mut meta = tx.open_table(META).map_err(unavailable)?;
            let mut tables = RejectedTables::open(&tx, folder, limits)?;
            let (mut entries, mut bytes) = (0, 0);
            while entries < MOVE_ENTRIES && bytes < MOVE_BYTES {
                let Some((id, value)) = old.pop_first().map_err(unavailable)? else {
                    break;
                };
                let (id, raw) = (id.value(), value.value().to_vec());
                let kept = match decode_old(id, &raw) {
                    Ok(kept) => kept,
                    Err(why) => {
                        tracing::error!(rejected = id, error = %why, "a refused body cannot be read: kept whole, as the body of one that says why");
                        RefusedBody::new(
                            id,
                            0,
                            format!("unreadable refused body {id}: {why}"),
                            Envelope::new(SystemTime::now(), None, Vec::new()),
                            Bytes::from(raw),
                        )
                    }
                };
                bytes += kept.body.len() as u64;
                let body = tables.stage(&kept.body)?;
                let header = Header {
                    status: kept.status,
                    reason: kept.reason,
                    envelope: kept.envelope,
                    body_len: body.len,
                    body_crc: body.crc,
                };
                let encoded = encode_header(&header);
                let placed = body.place(folder, id)?;
                tables.insert(&mut meta, id, &header, &encoded, placed)?;
                entries += 1;
            }
            moved += entries as u64;
            // Limits applied as it goes: the file never holds more than the cap and a group.
            tables.trim(&mut meta, SystemTime::now())?;
            let settle = tables.finish()?;
            let done = old.is_empty().map_err(unavailable)?;
            (done, settle)
        };
        let (done, settle) = done;
        if done {
            tx.delete_table(OLD).map_err(unavailable)?;
        }
        if let Err(err) = tx.commit() {
            settle.failed();
            return Err(unavailable(err));
        }
        settle.committed(folder, &limits, dropped);
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct OldHeader {
    status: u16,
    reason: String,
    envelope: Envelope,
}

/// Version 2 starts with these bytes, which version 1 (a header length, LE) would only start
/// with for a header of over 150 KB, which it never wrote.
const OLD_V2: [u8; 4] = [0xFF, b'R', 2, 0];

/// Version 2: `[FF 'R' 2 0][crc32 of the rest, LE][header length: u32 LE][header JSON][body]`;
/// version 1: `[header length: u32 LE][header JSON][body]`.
fn decode_old(id: RecordId, bytes: &[u8]) -> Result<RefusedBody, StoreError> {
    let rest = match bytes.split_first_chunk::<4>() {
        Some((magic, rest)) if *magic == OLD_V2 => {
            let (crc, rest) = rest
                .split_first_chunk::<4>()
                .ok_or_else(|| corrupt(id, "truncated"))?;
            if u32::from_le_bytes(*crc) != checksum(bytes, 4) {
                return Err(corrupt(id, CHANGED));
            }
            rest
        }
        _ => bytes,
    };
    let (header_len, rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt(id, "truncated"))?;
    let (header, body) = rest
        .split_at_checked(u32::from_le_bytes(*header_len) as usize)
        .ok_or_else(|| corrupt(id, "truncated header"))?;
    let header: OldHeader =
        serde_json::from_slice(header).map_err(|_| corrupt(id, "unreadable header"))?;
    Ok(RefusedBody::new(
        id,
        header.status,
        header.reason,
        header.envelope,
        Bytes::copy_from_slice(body),
    ))
}

#[cfg(test)]
pub(super) mod old_format {
    //! Refused bodies as versions 1 and 2 wrote them, for the tests of the move.

    use super::*;

    fn header(status: u16, reason: &str, envelope: &Envelope) -> Vec<u8> {
        let header = OldHeader {
            status,
            reason: reason.to_owned(),
            envelope: envelope.clone(),
        };
        serde_json::to_vec(&header).unwrap()
    }

    /// `[header length][header JSON][body]`
    pub(in crate::store::redb) fn v1(
        status: u16,
        reason: &str,
        envelope: &Envelope,
        body: &[u8],
    ) -> Vec<u8> {
        let header = header(status, reason, envelope);
        let mut out = Vec::new();
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(body);
        out
    }

    /// `[FF 'R' 2 0][crc32][header length][header JSON][body]`
    pub(in crate::store::redb) fn v2(
        status: u16,
        reason: &str,
        envelope: &Envelope,
        body: &[u8],
    ) -> Vec<u8> {
        let mut out = OLD_V2.to_vec();
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&v1(status, reason, envelope, body));
        let crc = checksum(&out, 4);
        out[4..8].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Writes `entries` into the old table, and the id counter as the old store kept it.
    pub(in crate::store::redb) fn write(db: &Database, entries: &[(RecordId, Vec<u8>)]) {
        let tx = db.begin_write().unwrap();
        {
            let mut old = tx.open_table(OLD).unwrap();
            let mut meta = tx.open_table(META).unwrap();
            for (id, value) in entries {
                old.insert(*id, value.as_slice()).unwrap();
                meta.insert(NEXT_REJECTED, id + 1).unwrap();
            }
        }
        tx.commit().unwrap();
    }

    /// What a body moved from the old table is charged (its header as version 3 writes it).
    pub(in crate::store::redb) fn charge(
        status: u16,
        reason: &str,
        envelope: &Envelope,
        body: &[u8],
    ) -> u64 {
        let header = Header {
            status,
            reason: reason.to_owned(),
            envelope: envelope.clone(),
            body_len: body.len() as u64,
            body_crc: crc32fast::hash(body),
        };
        super::charge(body.len() as u64, &encode_header(&header))
    }

    /// Whether the old table is still there.
    pub(in crate::store::redb) fn exists(db: &Database) -> bool {
        let tx = db.begin_read().unwrap();
        tx.list_tables()
            .unwrap()
            .any(|table| table.name() == OLD.name())
    }
}
