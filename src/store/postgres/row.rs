//! Rows: records to and from the database's columns, and its errors as the store's.

use std::fmt;

use bytes::Bytes;
use tokio_postgres::Row;

use crate::store::{
    Attempt, Envelope, Record, RecordId, RecordState, RecordSummary, RefusedBody, StoreError,
    StoreErrorKind,
};

/// States as stored in the `state` column.
pub(super) const PENDING: i16 = 0;
pub(super) const DEAD: i16 = 1;
/// A bare de-duplication key: a notification handled before handled ones were kept (schema 2),
/// or a purged one whose key is still remembered. Never read as a record.
pub(super) const DONE: i16 = 2;
/// Handled, kept with its body and history for its retention.
pub(super) const HANDLED: i16 = 3;

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

/// A readable state from the `state` column.
fn state_from(id: i64, state: i16) -> Result<RecordState, StoreError> {
    match state {
        PENDING => Ok(RecordState::Pending),
        DEAD => Ok(RecordState::Dead),
        HANDLED => Ok(RecordState::Handled),
        other => Err(corrupt(id, format_args!("unexpected state {other}"))),
    }
}

/// A column's value, a type mismatch reported as a corrupt record rather than a panic.
fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    id: i64,
    index: usize,
) -> Result<T, StoreError> {
    row.try_get(index).map_err(|err| corrupt(id, err))
}

/// An attempt as the JSON its record's history keeps.
pub(super) fn attempt_json(attempt: &Attempt) -> Result<String, StoreError> {
    serde_json::to_string(attempt).map_err(unavailable)
}

/// A row of `sql::COLUMNS`: id, state, attempts, last error, envelope, body, task id, due time
/// (ms), history (JSON text).
pub(super) fn record_from(row: &Row) -> Result<Record, StoreError> {
    let id: i64 = row.try_get(0).map_err(unavailable)?;
    let state = state_from(id, column(row, id, 1)?)?;
    let attempts: i32 = column(row, id, 2)?;
    let envelope: String = column(row, id, 4)?;
    let envelope = serde_json::from_str(&envelope).map_err(|err| corrupt(id, err))?;
    let body: Option<Vec<u8>> = column(row, id, 5)?;
    let body = body.ok_or_else(|| corrupt(id, "a record without its body"))?;
    let history: String = column(row, id, 8)?;
    let history: Vec<Attempt> = serde_json::from_str(&history)
        .map_err(|err| corrupt(id, format_args!("history: {err}")))?;
    Ok(Record::new(
        record_id(id)?,
        state,
        u32::try_from(attempts).unwrap_or(0),
        column(row, id, 3)?,
        envelope,
        Bytes::from(body),
    )
    .with_task_id(column(row, id, 6)?)
    .with_due_at_ms(column(row, id, 7)?)
    .with_history(history)
    .with_order_key(column(row, id, 9)?))
}

/// A row of `sql::SUMMARY_COLUMNS`: id, kind, state, task id, receipt (ms), attempts, last
/// error, due time (ms), body length.
pub(super) fn summary_from(row: &Row) -> Result<RecordSummary, StoreError> {
    let id: i64 = row.try_get(0).map_err(unavailable)?;
    Ok(RecordSummary {
        id: record_id(id)?,
        kind: column(row, id, 1)?,
        state: state_from(id, column(row, id, 2)?)?,
        task_id: column(row, id, 3)?,
        received_at_ms: column(row, id, 4)?,
        attempts: u32::try_from(column::<i32>(row, id, 5)?).unwrap_or(0),
        last_error: column(row, id, 6)?,
        due_at_ms: column(row, id, 7)?,
        body_len: u64::try_from(column::<i64>(row, id, 8)?).unwrap_or(0),
        order_key: column(row, id, 9)?,
        held_back_by: column::<Option<i64>>(row, id, 10)?
            .map(record_id)
            .transpose()?,
    })
}

pub(super) fn records_from(rows: &[Row]) -> Result<Vec<Record>, StoreError> {
    rows.iter().map(record_from).collect()
}

/// A row of `id, status, reason, envelope, body` from the refused bodies.
pub(super) fn rejected_from(row: &Row) -> Result<RefusedBody, StoreError> {
    let id: i64 = row.get(0);
    let envelope: String = row.get(3);
    let envelope = serde_json::from_str(&envelope).map_err(|err| corrupt(id, err))?;
    let body: Vec<u8> = row.get(4);
    Ok(RefusedBody::new(
        record_id(id)?,
        u16::try_from(row.get::<_, i16>(1)).unwrap_or(0),
        row.get(2),
        envelope,
        Bytes::from(body),
    ))
}
