//! The record tables of one write transaction, kept consistent: a record's metadata, its body
//! and its index entry (`due` while pending, `finished` when dead or handled) change together,
//! here and nowhere else. Also the reads both sides share.

use ::redb::{ReadableTable, Table, WriteTransaction};
use bytes::Bytes;

use super::format::{
    BODIES, DUE, Decoded, FINISHED, Meta, RECORDS, check_body, corrupt, decode, encode_meta,
    state_byte,
};
use super::shared::unavailable;
use crate::store::{RecordId, RecordState, StoreError};

/// Where a record is indexed: by kind and due time while pending, by state and time after.
enum IndexKey<'a> {
    Due(&'a str, i64),
    Finished(u8, i64),
}

fn index_key(meta: &Meta) -> IndexKey<'_> {
    match meta.state {
        RecordState::Pending => IndexKey::Due(meta.info.envelope.kind(), meta.info.due_at_ms),
        state => IndexKey::Finished(state_byte(state), meta.info.due_at_ms),
    }
}

/// Reads and decodes record `id`'s metadata: `Ok(None)` when there is none, `Ok(Some(Err))`
/// when it cannot be read back.
pub(super) fn read_meta(
    records: &impl ReadableTable<u64, &'static [u8]>,
    id: RecordId,
) -> Result<Option<Result<Decoded, StoreError>>, StoreError> {
    let value = records.get(id).map_err(unavailable)?;
    Ok(value.map(|value| decode(id, value.value())))
}

/// Record `id`'s body: the one its value holds (versions 1 and 2), or its entry in `bodies`,
/// checked against the metadata. `Ok(Err(Corrupt))` when it is missing or changed.
pub(super) fn read_body(
    bodies: &impl ReadableTable<u64, &'static [u8]>,
    id: RecordId,
    decoded: &Decoded,
) -> Result<Result<Bytes, StoreError>, StoreError> {
    if let Some(body) = &decoded.inline_body {
        return Ok(Ok(body.clone()));
    }
    let Some(value) = bodies.get(id).map_err(unavailable)? else {
        return Ok(Err(corrupt(id, "its body is missing")));
    };
    let body = value.value();
    Ok(check_body(id, &decoded.meta.info, body).map(|()| Bytes::copy_from_slice(body)))
}

/// The record tables, open in one write transaction.
pub(super) struct RecordTables<'t> {
    pub(super) records: Table<'t, u64, &'static [u8]>,
    pub(super) bodies: Table<'t, u64, &'static [u8]>,
    due: Table<'t, (&'static str, i64, u64), ()>,
    finished: Table<'t, (u8, i64, u64), ()>,
}

impl<'t> RecordTables<'t> {
    /// Opens (creates) the tables in `tx`.
    pub(super) fn open(tx: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            records: tx.open_table(RECORDS).map_err(unavailable)?,
            bodies: tx.open_table(BODIES).map_err(unavailable)?,
            due: tx.open_table(DUE).map_err(unavailable)?,
            finished: tx.open_table(FINISHED).map_err(unavailable)?,
        })
    }

    /// Record `id`'s metadata (see [`read_meta`]).
    pub(super) fn meta(
        &self,
        id: RecordId,
    ) -> Result<Option<Result<Decoded, StoreError>>, StoreError> {
        read_meta(&self.records, id)
    }

    /// Record `id`'s body (see [`read_body`]).
    pub(super) fn body(
        &self,
        id: RecordId,
        decoded: &Decoded,
    ) -> Result<Result<Bytes, StoreError>, StoreError> {
        read_body(&self.bodies, id, decoded)
    }

    /// Stores a record (new, or moved from an older version): metadata, body, index.
    pub(super) fn insert(
        &mut self,
        id: RecordId,
        meta: &Meta,
        body: &[u8],
    ) -> Result<(), StoreError> {
        self.bodies.insert(id, body).map_err(unavailable)?;
        self.records
            .insert(id, encode_meta(meta).as_slice())
            .map_err(unavailable)?;
        self.index(id, meta)
    }

    /// Writes record `id`'s new metadata and moves its index entry; the body stays (one held
    /// inline by an older version moves to `bodies`).
    pub(super) fn rewrite(
        &mut self,
        id: RecordId,
        old: &Decoded,
        new: &Meta,
    ) -> Result<(), StoreError> {
        if let Some(body) = &old.inline_body {
            self.bodies.insert(id, &body[..]).map_err(unavailable)?;
        }
        self.unindex(id, &old.meta)?;
        self.records
            .insert(id, encode_meta(new).as_slice())
            .map_err(unavailable)?;
        self.index(id, new)
    }

    /// Deletes record `id`: metadata, body, index entry. Returns its raw bytes (the stored
    /// value, then the body), or `None` when there was none. A record whose metadata cannot be
    /// read has its index entries found by a scan of the indexes.
    pub(super) fn remove(&mut self, id: RecordId) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(value) = self.records.remove(id).map_err(unavailable)? else {
            return Ok(None);
        };
        let mut raw = value.value().to_vec();
        drop(value);
        match decode(id, &raw) {
            Ok(decoded) => self.unindex(id, &decoded.meta)?,
            Err(_) => self.unindex_scan(id)?,
        }
        if let Some(body) = self.bodies.remove(id).map_err(unavailable)? {
            raw.extend_from_slice(body.value());
        }
        Ok(Some(raw))
    }

    /// Up to `limit` ids of records in state `byte` that became so before `before_ms`, oldest
    /// first, read from the `finished` index.
    pub(super) fn finished_before(
        &self,
        byte: u8,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<RecordId>, StoreError> {
        let mut ids = Vec::new();
        let range = self
            .finished
            .range((byte, i64::MIN, 0)..(byte, before_ms, 0))
            .map_err(unavailable)?;
        for entry in range.take(limit) {
            let (key, _) = entry.map_err(unavailable)?;
            ids.push(key.value().2);
        }
        Ok(ids)
    }

    /// Adds record `id`'s index entry.
    fn index(&mut self, id: RecordId, meta: &Meta) -> Result<(), StoreError> {
        match index_key(meta) {
            IndexKey::Due(kind, at) => self.due.insert((kind, at, id), ()).map(drop),
            IndexKey::Finished(state, at) => self.finished.insert((state, at, id), ()).map(drop),
        }
        .map_err(unavailable)
    }

    /// Removes record `id`'s index entry, as its metadata places it.
    fn unindex(&mut self, id: RecordId, meta: &Meta) -> Result<(), StoreError> {
        match index_key(meta) {
            IndexKey::Due(kind, at) => self.due.remove((kind, at, id)).map(drop),
            IndexKey::Finished(state, at) => self.finished.remove((state, at, id)).map(drop),
        }
        .map_err(unavailable)
    }

    /// Removes every index entry of record `id`, scanning both indexes: for a record whose
    /// metadata cannot be read (rare: a quarantine).
    fn unindex_scan(&mut self, id: RecordId) -> Result<(), StoreError> {
        self.due
            .retain(|(_, _, entry), ()| entry != id)
            .map_err(unavailable)?;
        self.finished
            .retain(|(_, _, entry), ()| entry != id)
            .map_err(unavailable)
    }
}
