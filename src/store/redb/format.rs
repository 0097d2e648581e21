//! The tables, and the record format: a notification's metadata, with a CRC-32, apart from its
//! body. (Refused bodies have tables and a format of their own: `rejected.rs`.)
//!
//! ```text
//! records   id -> version 3: [3][state: u8][attempts: u32 LE][crc32: u32 LE][metadata JSON]
//!                  metadata: envelope (kind inside), last_error, task_id, due_at_ms, history,
//!                  body_len, body_crc
//! bodies    id -> the body's bytes, checked against body_len and body_crc when read
//! due       (kind, due_at_ms, id) -> ()          pending records: what `claim` reads
//! order     (kind, order key, id) -> ()          ordered records pending or holding (dead)
//! blocked   (kind, id) -> ()                     pending ordered records behind their head
//! finished  (state byte, at_ms, id) -> ()         dead and handled ones, by when they became so
//! paused_kinds   kind -> ()
//! dedup_keys     key -> [id: u64 LE][claimed_at_ms: i64 LE]
//! meta           counters; "records_format": 3 once every record is of version 3
//!
//! Version 2 (read; moved to version 3 at open):
//!   [2][state][attempts: u32 LE][header length: u32 LE][crc32: u32 LE][header JSON][body]
//! Version 1 (read; moved to version 3 at open):
//!   [1][state][attempts: u32 LE][header length: u32 LE][header JSON][body]
//! ```
//!
//! The state byte sits at the same place in every version (0 pending, 1 dead, 2 handled), so
//! that counting by state reads one byte. The metadata is read without the body: listing a
//! page of records of megabytes each reads kilobytes. Each CRC-32 covers every byte but its
//! own. redb checks its page checksums only when it repairs after a crash, so a record changed
//! on disk after a clean stop is caught here, on read.

use ::redb::TableDefinition;
use bytes::Bytes;

use crate::store::{
    Attempt, Envelope, Record, RecordId, RecordState, RecordSummary, StoreError, StoreErrorKind,
};

/// Notifications' metadata by id (and, in versions 1 and 2, their bodies too).
pub(super) const RECORDS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("records");
/// Notifications' bodies by id (version 3).
pub(super) const BODIES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("bodies");
/// Pending records by kind and due time: what [`claim`](crate::store::Store::claim) reads.
pub(super) const DUE: TableDefinition<'_, (&str, i64, u64), ()> = TableDefinition::new("due");
/// Ordered records keeping their place in their key's order (pending, and dead letters that
/// hold), by kind, key and id: the first of a key is its head, the only one in [`DUE`].
pub(super) const ORDER: TableDefinition<'_, (&str, &str, u64), ()> = TableDefinition::new("order");
/// Pending ordered records waiting behind the head of their key, by kind and id: pending, but
/// not in [`DUE`], so that no claim reads past them.
pub(super) const BLOCKED: TableDefinition<'_, (&str, u64), ()> = TableDefinition::new("blocked");
/// Dead and handled records by state and the time they became so: the retention index.
pub(super) const FINISHED: TableDefinition<'_, (u8, i64, u64), ()> =
    TableDefinition::new("finished");
/// The paused kinds.
pub(super) const PAUSED: TableDefinition<'_, &str, ()> = TableDefinition::new("paused_kinds");
/// De-duplication keys: the record's id and when the key was claimed.
pub(super) const KEYS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("dedup_keys");
/// Counters: the next ids, the refused bodies' total, the last open, the records' format.
pub(super) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

/// The version this store writes.
pub(super) const VERSION: u8 = 3;

/// The fixed part of a version 3 value: version, state, attempts, CRC.
const FIXED_LEN: usize = 10;
/// Where version 3 keeps its CRC: after version, state and attempts.
const META_CRC_AT: usize = 6;
/// Where version 2 keeps its CRC: after version, state, attempts and header length.
const RECORD_CRC_AT: usize = 10;

/// A corrupt record: [`StoreErrorKind::Corrupt`], naming its id (never its content).
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

/// The byte a state is stored as, in records and in the `finished` index.
pub(super) fn state_byte(state: RecordState) -> u8 {
    match state {
        RecordState::Pending => 0,
        RecordState::Dead => 1,
        RecordState::Handled => 2,
    }
}

/// The state a byte stands for; `None` for a byte no version writes.
pub(super) fn state_of(byte: u8) -> Option<RecordState> {
    match byte {
        0 => Some(RecordState::Pending),
        1 => Some(RecordState::Dead),
        2 => Some(RecordState::Handled),
        _ => None,
    }
}

/// The state byte of a stored value of any version, without decoding it.
pub(super) fn peek_state(bytes: &[u8]) -> Option<RecordState> {
    bytes.get(1).copied().and_then(state_of)
}

/// The metadata's JSON part (version 3).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Info {
    /// The request's envelope, its kind inside.
    pub(super) envelope: Envelope,
    /// The last failed attempt's error.
    pub(super) last_error: Option<String>,
    /// The event's id.
    pub(super) task_id: Option<String>,
    /// When a pending record is due; when a dead or handled one became so.
    pub(super) due_at_ms: i64,
    /// The finished attempts (see [`push_attempt`](crate::store::push_attempt)).
    #[serde(default)]
    pub(super) history: Vec<Attempt>,
    /// Checked when the body is read: a truncated body is reported.
    pub(super) body_len: u64,
    /// Checked when the body is read: a body changed on disk is reported.
    pub(super) body_crc: u32,
    /// The key it is ordered by, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) order: Option<OrderInfo>,
}

/// An ordered record's key, and whether as a dead letter it holds the key's later records.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct OrderInfo {
    pub(super) key: String,
    #[serde(default)]
    pub(super) holds: bool,
}

/// A record without its body: what `records` holds in version 3.
#[derive(Debug, Clone)]
pub(super) struct Meta {
    pub(super) state: RecordState,
    pub(super) attempts: u32,
    pub(super) info: Info,
}

impl Meta {
    /// Metadata of this state and attempts count.
    pub(super) fn new(state: RecordState, attempts: u32, info: Info) -> Self {
        Self {
            state,
            attempts,
            info,
        }
    }

    /// One row of a list.
    pub(super) fn summary(&self, id: RecordId) -> RecordSummary {
        RecordSummary {
            id,
            kind: self.info.envelope.kind().to_owned(),
            state: self.state,
            task_id: self.info.task_id.clone(),
            received_at_ms: self.info.envelope.received_at_ms,
            attempts: self.attempts,
            last_error: self.info.last_error.clone(),
            due_at_ms: self.info.due_at_ms,
            body_len: self.info.body_len,
            order_key: self.info.order.as_ref().map(|order| order.key.clone()),
            held_back_by: None,
        }
    }

    /// The whole record, with its body (checked by the caller: see [`check_body`]).
    pub(super) fn into_record(self, id: RecordId, body: Bytes) -> Record {
        let Info {
            envelope,
            last_error,
            task_id,
            due_at_ms,
            history,
            order,
            ..
        } = self.info;
        Record::new(id, self.state, self.attempts, last_error, envelope, body)
            .with_task_id(task_id)
            .with_due_at_ms(due_at_ms)
            .with_history(history)
            .with_order_key(order.map(|order| order.key))
    }
}

/// A stored value, decoded: its metadata, and its body when the value holds it (versions 1
/// and 2; a version 3 body is in [`BODIES`]).
pub(super) struct Decoded {
    pub(super) meta: Meta,
    pub(super) inline_body: Option<Bytes>,
}

/// Encodes metadata as version 3.
pub(super) fn encode_meta(meta: &Meta) -> Vec<u8> {
    // Serializing a struct of strings and integers cannot fail.
    let json = serde_json::to_vec(&meta.info).unwrap_or_default();
    let mut out = Vec::with_capacity(FIXED_LEN + json.len());
    out.push(VERSION);
    out.push(state_byte(meta.state));
    out.extend_from_slice(&meta.attempts.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&json);
    let crc = checksum(&out, META_CRC_AT);
    out[META_CRC_AT..META_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a stored value of any version; never reads a version 3 body.
pub(super) fn decode(id: RecordId, bytes: &[u8]) -> Result<Decoded, StoreError> {
    let (&[version, state], rest) = bytes
        .split_first_chunk::<2>()
        .ok_or_else(|| corrupt(id, "truncated"))?;
    let state = state_of(state).ok_or_else(|| corrupt(id, "unknown state"))?;
    let (attempts, rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt(id, "truncated"))?;
    let attempts = u32::from_le_bytes(*attempts);
    match version {
        1 | 2 => decode_old(id, version, bytes, state, attempts, rest),
        VERSION => {
            let (crc, json) = rest
                .split_first_chunk::<4>()
                .ok_or_else(|| corrupt(id, "truncated"))?;
            if u32::from_le_bytes(*crc) != checksum(bytes, META_CRC_AT) {
                return Err(corrupt(id, CHANGED));
            }
            let info: Info =
                serde_json::from_slice(json).map_err(|_| corrupt(id, "unreadable metadata"))?;
            Ok(Decoded {
                meta: Meta::new(state, attempts, info),
                inline_body: None,
            })
        }
        _ => Err(corrupt(id, "unknown format version")),
    }
}

/// The header of versions 1 and 2.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct OldHeader {
    pub(super) envelope: Envelope,
    pub(super) last_error: Option<String>,
    /// Checked on read: a truncated body is reported, not handed to the handler.
    pub(super) body_len: u64,
}

/// Decodes the rest of a version 1 or 2 value (after version, state and attempts). The
/// record is due at its arrival; it has no task id and no history.
fn decode_old(
    id: RecordId,
    version: u8,
    bytes: &[u8],
    state: RecordState,
    attempts: u32,
    rest: &[u8],
) -> Result<Decoded, StoreError> {
    if state == RecordState::Handled {
        return Err(corrupt(id, "unknown state"));
    }
    let (header_len, rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt(id, "truncated"))?;
    let rest = if version == 2 {
        let (crc, rest) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt(id, "truncated"))?;
        if u32::from_le_bytes(*crc) != checksum(bytes, RECORD_CRC_AT) {
            return Err(corrupt(id, CHANGED));
        }
        rest
    } else {
        rest
    };
    let header_len = u32::from_le_bytes(*header_len) as usize;
    let (header, body) = rest
        .split_at_checked(header_len)
        .ok_or_else(|| corrupt(id, "truncated header"))?;
    let header: OldHeader =
        serde_json::from_slice(header).map_err(|_| corrupt(id, "unreadable header"))?;
    if header.body_len != body.len() as u64 {
        return Err(corrupt(
            id,
            "the body is not the length it was written with",
        ));
    }
    let info = Info {
        due_at_ms: header.envelope.received_at_ms,
        envelope: header.envelope,
        last_error: header.last_error,
        task_id: None,
        history: Vec::new(),
        body_len: header.body_len,
        body_crc: crc32fast::hash(body),
        order: None,
    };
    Ok(Decoded {
        meta: Meta::new(state, attempts, info),
        inline_body: Some(Bytes::copy_from_slice(body)),
    })
}

/// Checks a body read from [`BODIES`] against its metadata.
pub(super) fn check_body(id: RecordId, info: &Info, body: &[u8]) -> Result<(), StoreError> {
    if body.len() as u64 != info.body_len {
        return Err(corrupt(
            id,
            "the body is not the length it was written with",
        ));
    }
    if crc32fast::hash(body) != info.body_crc {
        return Err(corrupt(id, CHANGED));
    }
    Ok(())
}

pub(super) const CHANGED: &str = "the checksum does not match: its bytes changed on disk";

#[cfg(test)]
pub(super) mod old_format {
    //! Records as version 2 wrote them, for the tests of the move to version 3.

    use super::*;

    /// A version 2 value (what the store wrote before version 3).
    pub(in crate::store::redb) fn v2(
        state: RecordState,
        attempts: u32,
        header: &OldHeader,
        body: &[u8],
    ) -> Vec<u8> {
        let header = serde_json::to_vec(header).unwrap();
        let mut out = Vec::with_capacity(14 + header.len() + body.len());
        out.push(2);
        out.push(state_byte(state));
        out.extend_from_slice(&attempts.to_le_bytes());
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&header);
        out.extend_from_slice(body);
        let crc = checksum(&out, RECORD_CRC_AT);
        out[RECORD_CRC_AT..RECORD_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// A version 1 value.
    pub(in crate::store::redb) fn v1(
        state: RecordState,
        attempts: u32,
        header: &OldHeader,
        body: &[u8],
    ) -> Vec<u8> {
        let header = serde_json::to_vec(header).unwrap();
        let mut out = vec![1, state_byte(state)];
        out.extend_from_slice(&attempts.to_le_bytes());
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn info(body: &[u8]) -> Info {
        Info {
            envelope: Envelope::new(SystemTime::UNIX_EPOCH, None, vec![]).with_kind("k"),
            last_error: Some("e".into()),
            task_id: Some("t".into()),
            due_at_ms: 5,
            history: vec![Attempt::failed_now("e")],
            body_len: body.len() as u64,
            body_crc: crc32fast::hash(body),
            order: None,
        }
    }

    #[test]
    fn metadata_round_trips_and_any_cut_or_flip_is_corrupt() {
        let meta = Meta::new(RecordState::Handled, 3, info(b"body"));
        let encoded = encode_meta(&meta);
        let decoded = decode(9, &encoded).unwrap();
        assert!(decoded.inline_body.is_none());
        let record = decoded.meta.into_record(9, Bytes::from_static(b"body"));
        assert_eq!(
            (record.state, record.attempts, record.due_at_ms),
            (RecordState::Handled, 3, 5)
        );
        assert_eq!(
            (record.task_id.as_deref(), record.history.len()),
            (Some("t"), 1)
        );
        assert_eq!(peek_state(&encoded), Some(RecordState::Handled));
        for cut in 0..encoded.len() {
            assert_eq!(
                decode(9, &encoded[..cut]).err().map(|e| e.kind()),
                Some(StoreErrorKind::Corrupt),
                "cut at {cut}"
            );
        }
        for at in 0..encoded.len() {
            let mut flipped = encoded.clone();
            flipped[at] ^= 0x10;
            assert!(decode(9, &flipped).is_err(), "flip at {at}");
        }
    }

    #[test]
    fn versions_1_and_2_read_with_their_bodies_inline() {
        let header = OldHeader {
            envelope: Envelope::new(SystemTime::UNIX_EPOCH, None, vec![]),
            last_error: Some("boom".into()),
            body_len: 4,
        };
        for encoded in [
            old_format::v1(RecordState::Dead, 2, &header, b"body"),
            old_format::v2(RecordState::Dead, 2, &header, b"body"),
        ] {
            let decoded = decode(1, &encoded).unwrap();
            assert_eq!(decoded.inline_body.as_deref(), Some(&b"body"[..]));
            assert_eq!(
                (decoded.meta.state, decoded.meta.attempts),
                (RecordState::Dead, 2)
            );
            check_body(1, &decoded.meta.info, b"body").unwrap();
        }
        let v2 = old_format::v2(RecordState::Pending, 1, &header, b"body");
        for cut in 0..v2.len() {
            assert!(decode(1, &v2[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_body_is_checked_against_its_length_and_crc() {
        let info = info(b"body");
        check_body(1, &info, b"body").unwrap();
        assert_eq!(
            check_body(1, &info, b"bod").unwrap_err().kind(),
            StoreErrorKind::Corrupt
        );
        assert_eq!(
            check_body(1, &info, b"bodx").unwrap_err().kind(),
            StoreErrorKind::Corrupt
        );
    }
}
