//! The tables, and the record format: a notification's bytes, with a CRC-32. (Refused bodies
//! have tables and a format of their own: `rejected.rs`.)
//!
//! ```text
//! Version 2: [2][state: u8][attempts: u32 LE][header length: u32 LE][crc32: u32 LE][header JSON][body]
//! Version 1 (read only): [1][state][attempts][header length][header JSON][body]
//! ```
//!
//! The CRC-32 covers every byte but its own. redb checks its page checksums only when it repairs
//! after a crash, so a record changed on disk after a clean stop is caught here, on read.

use ::redb::TableDefinition;
use bytes::Bytes;

use crate::store::{Envelope, Record, RecordId, RecordState, StoreError, StoreErrorKind};

/// Notifications by id.
pub(super) const RECORDS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("records");
/// De-duplication keys: the record's id and when the key was claimed.
pub(super) const KEYS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("dedup_keys");
/// Counters: the next ids, the refused bodies' total, the last open.
pub(super) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Header {
    pub(super) envelope: Envelope,
    pub(super) last_error: Option<String>,
    /// Checked on read: a truncated body is reported, not handed to the handler.
    pub(super) body_len: u64,
}

pub(super) fn corrupt(id: RecordId, what: &str) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, format!("record {id}: {what}"))
}

/// The checksum of a record without the four bytes at `at`, where it is written.
pub(super) fn checksum(bytes: &[u8], at: usize) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&bytes[..at]);
    hasher.update(&bytes[at + 4..]);
    hasher.finalize()
}

/// Where version 2 keeps its CRC: after version, state, attempts and header length.
const RECORD_CRC_AT: usize = 10;

pub(super) fn encode_record(
    state: RecordState,
    attempts: u32,
    header: &Header,
    body: &[u8],
) -> Vec<u8> {
    // Serializing a struct of strings and integers cannot fail.
    let header = serde_json::to_vec(header).unwrap_or_default();
    let mut out = Vec::with_capacity(14 + header.len() + body.len());
    out.push(2);
    out.push(match state {
        RecordState::Pending => 0,
        RecordState::Dead => 1,
        RecordState::Handled => todo!("queue: redb format v3"),
    });
    out.extend_from_slice(&attempts.to_le_bytes());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&header);
    out.extend_from_slice(body);
    let crc = checksum(&out, RECORD_CRC_AT);
    out[RECORD_CRC_AT..RECORD_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
    out
}

pub(super) fn decode_record(id: RecordId, bytes: &[u8]) -> Result<Record, StoreError> {
    let (&[version, state], rest) = bytes
        .split_first_chunk::<2>()
        .ok_or_else(|| corrupt(id, "truncated"))?;
    let state = match state {
        0 => RecordState::Pending,
        1 => RecordState::Dead,
        _ => return Err(corrupt(id, "unknown state")),
    };
    let (attempts, rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt(id, "truncated"))?;
    let (header_len, rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt(id, "truncated"))?;
    let rest = match version {
        1 => rest,
        2 => {
            let (crc, rest) = rest
                .split_first_chunk::<4>()
                .ok_or_else(|| corrupt(id, "truncated"))?;
            if u32::from_le_bytes(*crc) != checksum(bytes, RECORD_CRC_AT) {
                return Err(corrupt(id, CHANGED));
            }
            rest
        }
        _ => return Err(corrupt(id, "unknown format version")),
    };
    let header_len = u32::from_le_bytes(*header_len) as usize;
    let (header, body) = rest
        .split_at_checked(header_len)
        .ok_or_else(|| corrupt(id, "truncated header"))?;
    let header: Header =
        serde_json::from_slice(header).map_err(|_| corrupt(id, "unreadable header"))?;
    if header.body_len != body.len() as u64 {
        return Err(corrupt(
            id,
            "the body is not the length it was written with",
        ));
    }
    Ok(Record::new(
        id,
        state,
        u32::from_le_bytes(*attempts),
        header.last_error,
        header.envelope,
        Bytes::copy_from_slice(body),
    ))
}

pub(super) const CHANGED: &str = "the checksum does not match: its bytes changed on disk";
