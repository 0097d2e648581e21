//! The move of records of versions 1 and 2 (metadata and body in one value) to version 3
//! (metadata in `records`, body in `bodies`, an entry in `due` or `finished`), at open.
//!
//! A bounded batch per write transaction ([`MOVE_ENTRIES`] records, [`MOVE_BYTES`] of bodies,
//! [`SCAN_ROWS`] rows looked at), so that a store of any size moves in bounded memory. An
//! interrupted move carries on at the next open (a moved record is skipped by its version
//! byte). Once every record is of version 3, `meta` says so and later opens skip the scan.
//! A record that cannot be read is left as it is: the open quarantines it next.

use std::time::SystemTime;

use ::redb::{Database, ReadableTable};
use bytes::Bytes;

use super::format::{META, Meta, VERSION, decode};
use super::shared::unavailable;
use super::tables::RecordTables;
use crate::store::{RecordId, RecordState, StoreError, millis};

/// The meta entry holding the records' format: [`VERSION`] once every record is of it.
const FORMAT: &str = "records_format";
/// The most records one transaction moves.
const MOVE_ENTRIES: usize = 1024;
/// The most body bytes one transaction moves (and holds in memory), one record past it at
/// most.
const MOVE_BYTES: u64 = 16 * 1024 * 1024;
/// The most rows one transaction looks at, moved or not.
const SCAN_ROWS: usize = 65_536;

/// One batch read from `records`: what to move, and where the scan stopped.
struct Batch {
    records: Vec<(RecordId, Meta, Bytes)>,
    /// The last id looked at.
    last: Option<RecordId>,
    /// Whether the scan reached the end of the table.
    done: bool,
}

/// Moves every record of versions 1 and 2 to version 3, a batch per transaction.
pub(super) fn records(db: &Database) -> Result<(), StoreError> {
    let (mut after, mut moved) = (None, 0usize);
    loop {
        let tx = db.begin_write().map_err(unavailable)?;
        let done = {
            let mut meta = tx.open_table(META).map_err(unavailable)?;
            if meta.get(FORMAT).map_err(unavailable)?.map(|v| v.value()) == Some(VERSION.into()) {
                return Ok(());
            }
            let mut tables = RecordTables::open(&tx)?;
            let batch = read_batch(&tables, after)?;
            moved += batch.records.len();
            for (id, meta, body) in &batch.records {
                tables.insert(*id, meta, body)?;
            }
            if batch.done {
                meta.insert(FORMAT, u64::from(VERSION))
                    .map_err(unavailable)?;
            }
            after = batch.last.or(after);
            batch.done
        };
        tx.commit().map_err(unavailable)?;
        if done {
            if moved > 0 {
                tracing::info!(
                    count = moved,
                    "moved the stored notifications to the record format 3"
                );
            }
            return Ok(());
        }
    }
}

/// Reads the next batch of records to move, after `after`.
fn read_batch(tables: &RecordTables<'_>, after: Option<RecordId>) -> Result<Batch, StoreError> {
    let start = after.map_or(0, |id| id.saturating_add(1));
    let mut batch = Batch {
        records: Vec::new(),
        last: None,
        done: true,
    };
    let (mut bytes, mut rows) = (0u64, 0usize);
    // The finished ones became so at the move, as far as retention is concerned: their old
    // format did not say when.
    let now = millis(SystemTime::now());
    for entry in tables.records.range(start..).map_err(unavailable)? {
        if batch.records.len() >= MOVE_ENTRIES || bytes >= MOVE_BYTES || rows >= SCAN_ROWS {
            batch.done = false;
            break;
        }
        let (id, value) = entry.map_err(unavailable)?;
        let (id, value) = (id.value(), value.value());
        rows += 1;
        batch.last = Some(id);
        if value.first() == Some(&VERSION) {
            continue;
        }
        // One that cannot be read stays: the open quarantines it next.
        let Ok(decoded) = decode(id, value) else {
            continue;
        };
        let Some(body) = decoded.inline_body else {
            continue;
        };
        let mut meta = decoded.meta;
        if meta.state != RecordState::Pending {
            meta.info.due_at_ms = now;
        }
        bytes += body.len() as u64;
        batch.records.push((id, meta, body));
    }
    Ok(batch)
}
