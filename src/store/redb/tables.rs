//! The record tables of one write transaction, kept consistent: a record's metadata, its body
//! and its index entry (`due` while pending, `finished` when dead or handled) change together,
//! here and nowhere else. Also the reads both sides share.
//!
//! An ordered record ([`NewRecord::order_key`](crate::store::NewRecord::order_key)) also has
//! an entry in `order` while it keeps its place in its key's order (pending, or a dead letter
//! that holds). Only the first of a key, its head, is in `due`; the others wait in `blocked`,
//! where no claim reads. When a head leaves `order` (handled, a dead letter that does not
//! hold, purged), the next record of its key moves from `blocked` to `due`.

use ::redb::{ReadableTable, Table, WriteTransaction};
use bytes::Bytes;

use super::format::{
    BLOCKED, BODIES, DUE, Decoded, FINISHED, Meta, ORDER, RECORDS, check_body, corrupt, decode,
    encode_meta, state_byte,
};
use super::shared::unavailable;
use crate::store::{RecordId, RecordState, StoreError};

/// Where a record is indexed: by kind and due time while pending, by state and time after.
enum IndexKey<'a> {
    Due(&'a str, i64),
    Finished(u8, i64),
}

/// The kind and key of a record that keeps its place in its key's order: an ordered record
/// pending, or a dead letter that holds its key.
fn in_order(meta: &Meta) -> Option<(String, String)> {
    let order = meta.info.order.as_ref()?;
    let keeps = match meta.state {
        RecordState::Pending => true,
        RecordState::Dead => order.holds,
        _ => false,
    };
    keeps.then(|| (meta.info.envelope.kind().to_owned(), order.key.clone()))
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
    order: Table<'t, (&'static str, &'static str, u64), ()>,
    blocked: Table<'t, (&'static str, u64), ()>,
}

impl<'t> RecordTables<'t> {
    /// Opens (creates) the tables in `tx`.
    pub(super) fn open(tx: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            records: tx.open_table(RECORDS).map_err(unavailable)?,
            bodies: tx.open_table(BODIES).map_err(unavailable)?,
            due: tx.open_table(DUE).map_err(unavailable)?,
            finished: tx.open_table(FINISHED).map_err(unavailable)?,
            order: tx.open_table(ORDER).map_err(unavailable)?,
            blocked: tx.open_table(BLOCKED).map_err(unavailable)?,
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
        if let Some((kind, key)) = in_order(meta) {
            self.order
                .insert((kind.as_str(), key.as_str(), id), ())
                .map_err(unavailable)?;
        }
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
        match (in_order(&old.meta), in_order(new)) {
            (Some((kind, key)), None) => self.leave_order(id, &kind, &key)?,
            (None, Some((kind, key))) => {
                self.order
                    .insert((kind.as_str(), key.as_str(), id), ())
                    .map_err(unavailable)?;
            }
            _ => {}
        }
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
            Ok(decoded) => {
                self.unindex(id, &decoded.meta)?;
                if let Some((kind, key)) = in_order(&decoded.meta) {
                    self.leave_order(id, &kind, &key)?;
                }
            }
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

    /// Adds record `id`'s index entry: a pending record behind the head of its key waits in
    /// `blocked` instead of `due` (its `order` entry is in place).
    fn index(&mut self, id: RecordId, meta: &Meta) -> Result<(), StoreError> {
        match index_key(meta) {
            IndexKey::Due(kind, at) => match in_order(meta) {
                Some((_, key)) if self.head(kind, &key)? != Some(id) => {
                    self.blocked.insert((kind, id), ()).map(drop)
                }
                _ => self.due.insert((kind, at, id), ()).map(drop),
            },
            IndexKey::Finished(state, at) => self.finished.insert((state, at, id), ()).map(drop),
        }
        .map_err(unavailable)
    }

    /// Removes record `id`'s index entry, as its metadata places it.
    fn unindex(&mut self, id: RecordId, meta: &Meta) -> Result<(), StoreError> {
        match index_key(meta) {
            IndexKey::Due(kind, at) => {
                if meta.info.order.is_some() {
                    self.blocked.remove((kind, id)).map_err(unavailable)?;
                }
                self.due.remove((kind, at, id)).map(drop)
            }
            IndexKey::Finished(state, at) => self.finished.remove((state, at, id)).map(drop),
        }
        .map_err(unavailable)
    }

    /// The first record of `key` in `order`: its head.
    fn head(&self, kind: &str, key: &str) -> Result<Option<RecordId>, StoreError> {
        let mut range = self
            .order
            .range((kind, key, 0)..=(kind, key, u64::MAX))
            .map_err(unavailable)?;
        match range.next() {
            Some(entry) => Ok(Some(entry.map_err(unavailable)?.0.value().2)),
            None => Ok(None),
        }
    }

    /// Record `id` leaves its key's order: if it was the head, the next record of the key (if
    /// pending) moves from `blocked` to `due`.
    fn leave_order(&mut self, id: RecordId, kind: &str, key: &str) -> Result<(), StoreError> {
        let was_head = self.head(kind, key)? == Some(id);
        self.order.remove((kind, key, id)).map_err(unavailable)?;
        if !was_head {
            return Ok(());
        }
        let Some(next) = self.head(kind, key)? else {
            return Ok(());
        };
        // A next record that cannot be read stays blocked: its key waits, listed, for an
        // operator (a purge moves the key on).
        let Some(Ok(decoded)) = read_meta(&self.records, next)? else {
            return Ok(());
        };
        let meta = &decoded.meta;
        if meta.state == RecordState::Pending
            && self
                .blocked
                .remove((kind, next))
                .map_err(unavailable)?
                .is_some()
        {
            self.due
                .insert((kind, meta.info.due_at_ms, next), ())
                .map_err(unavailable)?;
        }
        Ok(())
    }

    /// Removes every index entry of record `id`, scanning both indexes: for a record whose
    /// metadata cannot be read (rare: a quarantine).
    fn unindex_scan(&mut self, id: RecordId) -> Result<(), StoreError> {
        self.due
            .retain(|(_, _, entry), ()| entry != id)
            .map_err(unavailable)?;
        self.finished
            .retain(|(_, _, entry), ()| entry != id)
            .map_err(unavailable)?;
        self.blocked
            .retain(|(_, entry), ()| entry != id)
            .map_err(unavailable)?;
        let mut keys = Vec::new();
        for entry in self.order.iter().map_err(unavailable)? {
            let (entry, _) = entry.map_err(unavailable)?;
            let (kind, key, entry) = entry.value();
            if entry == id {
                keys.push((kind.to_owned(), key.to_owned()));
            }
        }
        for (kind, key) in keys {
            self.leave_order(id, &kind, &key)?;
        }
        Ok(())
    }
}
