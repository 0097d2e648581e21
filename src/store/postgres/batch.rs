//! Group commit for the PostgreSQL store: appends that arrive together go to the database
//! together, one multi-row statement and one commit for each group, as the embedded store does.
//!
//! One task takes appends as they come; while its groups are in flight (a few at once, on
//! connections of the pool), the next ones gather. A group is one `INSERT … SELECT FROM unnest
//! … ON CONFLICT DO NOTHING RETURNING`: the unique index keeps de-duplication atomic, within a
//! group (the first of two equal keys is stored, the second is its duplicate) as across
//! receivers. The keys it did not store are looked up by a second statement, whose snapshot
//! follows the conflicting commit; a key pruned in between is appended again, alone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::row::{record_id, unavailable};
use crate::store::{Appended, StoreError, StoreErrorKind};

/// The most appends in one statement.
const MAX_GROUP: usize = 512;
/// The most groups in flight at once.
const IN_FLIGHT: usize = 4;

/// One append waiting for its group.
pub(super) struct Append {
    pub(super) key: Vec<u8>,
    pub(super) envelope: String,
    pub(super) body: bytes::Bytes,
    pub(super) owner: String,
    pub(super) reply: oneshot::Sender<Result<Appended, StoreError>>,
}

/// The statements of a group.
#[derive(Clone)]
pub(super) struct GroupSql {
    pub(super) insert: String,
    pub(super) find_keys: String,
}

impl GroupSql {
    pub(super) fn new(table: &str, lease: &str, pending: i16) -> Self {
        Self {
            insert: format!(
                "INSERT INTO {table} (dedup_key, state, attempts, envelope, body, claimed_by, lease_until) \
                 SELECT k, {pending}, 1, e, b, o, {lease} \
                 FROM unnest($1::bytea[], $2::text[], $3::bytea[], $4::text[]) WITH ORDINALITY AS u(k, e, b, o, n) \
                 ORDER BY n \
                 ON CONFLICT (dedup_key) DO NOTHING RETURNING id, dedup_key"
            ),
            find_keys: format!("SELECT id, dedup_key FROM {table} WHERE dedup_key = ANY($1)"),
        }
    }
}

/// Starts the group task; it ends once every sender is gone.
pub(super) fn start(pool: Pool, sql: GroupSql, timeout: Duration) -> mpsc::UnboundedSender<Append> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Append>();
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    tokio::spawn(async move {
        loop {
            // A slot first: while every group is in flight, the next one gathers.
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let Some(first) = rx.recv().await else { return };
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(append) => group.push(append),
                    Err(_) => break,
                }
            }
            let (pool, sql) = (pool.clone(), sql.clone());
            tokio::spawn(async move {
                let _slot = slot;
                write(&pool, &sql, timeout, group).await;
            });
        }
    });
    tx
}

/// Writes one group and answers each of its appends.
async fn write(pool: &Pool, sql: &GroupSql, timeout: Duration, group: Vec<Append>) {
    let outcome = tokio::time::timeout(timeout, stored(pool, sql, &group)).await;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(_) => Err(unavailable(format!(
            "no answer from PostgreSQL within {timeout:?}"
        ))),
    };
    match outcome {
        Ok(answers) => {
            for (append, answer) in group.into_iter().zip(answers) {
                let _ = append.reply.send(answer);
            }
        }
        Err(err) => {
            for append in group {
                let _ = append
                    .reply
                    .send(Err(StoreError::new(err.kind(), err.to_string())));
            }
        }
    }
}

/// The group's statement, then the lookup of what it did not store: an answer per append, in
/// order.
async fn stored(
    pool: &Pool,
    sql: &GroupSql,
    group: &[Append],
) -> Result<Vec<Result<Appended, StoreError>>, StoreError> {
    let client = pool.get().await.map_err(unavailable)?;
    let keys: Vec<&[u8]> = group.iter().map(|a| &a.key[..]).collect();
    let envelopes: Vec<&str> = group.iter().map(|a| a.envelope.as_str()).collect();
    let bodies: Vec<&[u8]> = group.iter().map(|a| &a.body[..]).collect();
    let owners: Vec<&str> = group.iter().map(|a| a.owner.as_str()).collect();
    let insert = client
        .prepare_cached(&sql.insert)
        .await
        .map_err(unavailable)?;
    let rows = client
        .query(&insert, &[&keys, &envelopes, &bodies, &owners])
        .await
        .map_err(unavailable)?;
    let mut inserted: HashMap<Vec<u8>, i64> = rows
        .iter()
        .map(|row| (row.get::<_, Vec<u8>>(1), row.get::<_, i64>(0)))
        .collect();
    // The first append of each stored key is the stored one; the others are its duplicates.
    let mut answers = Vec::with_capacity(group.len());
    let mut stored_here: HashMap<&[u8], i64> = HashMap::new();
    let mut missing: Vec<&[u8]> = Vec::new();
    for append in group {
        let key = &append.key[..];
        if let Some(id) = inserted.remove(key) {
            stored_here.insert(key, id);
            answers.push(Some(record_id(id).map(Appended::Stored)));
        } else if let Some(&id) = stored_here.get(key) {
            answers.push(Some(record_id(id).map(Appended::Duplicate)));
        } else {
            missing.push(key);
            answers.push(None);
        }
    }
    let mut found: HashMap<Vec<u8>, i64> = HashMap::new();
    if !missing.is_empty() {
        let find = client
            .prepare_cached(&sql.find_keys)
            .await
            .map_err(unavailable)?;
        let rows = client
            .query(&find, &[&missing])
            .await
            .map_err(unavailable)?;
        found = rows
            .iter()
            .map(|row| (row.get::<_, Vec<u8>>(1), row.get::<_, i64>(0)))
            .collect();
    }
    Ok(group
        .iter()
        .zip(answers)
        .map(|(append, answer)| match answer {
            Some(answer) => answer,
            None => match found.get(&append.key[..]) {
                Some(&id) => record_id(id).map(Appended::Duplicate),
                // Pruned between the two statements: the caller appends it again, alone.
                None => Err(StoreError::new(
                    StoreErrorKind::NotFound,
                    "the duplicate's key was pruned meanwhile",
                )),
            },
        })
        .collect())
}
