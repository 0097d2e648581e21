//! Rows: records to and from the database's columns, and its errors as the store's.

use std::fmt;

use bytes::Bytes;
use tokio_postgres::Row;

use crate::store::{
    Envelope, Record, RecordId, RecordState, RejectedRecord, StoreError, StoreErrorKind,
};

/// States as stored in the `state` column.
pub(super) const PENDING: i16 = 0;
pub(super) const DEAD: i16 = 1;
pub(super) const DONE: i16 = 2;

pub(super) fn unavailable(err: impl Into<crate::BoxError>) -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, err)
}

pub(super) fn corrupt(id: i64, what: impl fmt::Display) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, format!("record {id}: {what}"))
}

/// Database ids are positive; a negative one would be a corrupt row, never a wrap.
pub(super) fn record_id(id: i64) -> Result<RecordId, StoreError> {
    RecordId::try_from(id).map_err(|_| corrupt(id, "negative id"))
}

pub(super) fn db_id(id: RecordId) -> Result<i64, StoreError> {
    i64::try_from(id).map_err(|_| StoreError::bare(StoreErrorKind::NotFound))
}

pub(super) fn envelope_json(envelope: &Envelope) -> Result<String, StoreError> {
    serde_json::to_string(envelope).map_err(unavailable)
}

pub(super) fn record_from(row: &Row) -> Result<Record, StoreError> {
    let id: i64 = row.get(0);
    let state = match row.get::<_, i16>(1) {
        PENDING => RecordState::Pending,
        DEAD => RecordState::Dead,
        other => return Err(corrupt(id, format_args!("unexpected state {other}"))),
    };
    let attempts: i32 = row.get(2);
    let envelope: String = row.get(4);
    let envelope = serde_json::from_str(&envelope).map_err(|err| corrupt(id, err))?;
    let body: Option<Vec<u8>> = row.get(5);
    let body = body.ok_or_else(|| corrupt(id, "a pending record without its body"))?;
    Ok(Record::new(
        record_id(id)?,
        state,
        u32::try_from(attempts).unwrap_or(0),
        row.get(3),
        envelope,
        Bytes::from(body),
    ))
}

pub(super) fn records_from(rows: &[Row]) -> Result<Vec<Record>, StoreError> {
    rows.iter().map(record_from).collect()
}

/// A row of `id, status, reason, envelope, body` from the refused bodies.
pub(super) fn rejected_from(row: &Row) -> Result<RejectedRecord, StoreError> {
    let id: i64 = row.get(0);
    let envelope: String = row.get(3);
    let envelope = serde_json::from_str(&envelope).map_err(|err| corrupt(id, err))?;
    let body: Vec<u8> = row.get(4);
    Ok(RejectedRecord::new(
        record_id(id)?,
        u16::try_from(row.get::<_, i16>(1)).unwrap_or(0),
        row.get(2),
        envelope,
        Bytes::from(body),
    ))
}
