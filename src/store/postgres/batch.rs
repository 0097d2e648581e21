//! Group commit for the PostgreSQL store: appends that arrive together go to the database
//! together, one multi-row statement and one commit for each group, as the embedded store does.
//!
//! One task takes appends as they come; while its groups are in flight (a few at once, on
//! connections of the pool), the next ones gather. A group is one `INSERT … SELECT FROM unnest
//! … ON CONFLICT DO NOTHING RETURNING`: the unique index keeps de-duplication atomic, within a
//! group (the first of two equal keys is stored, the second is its duplicate) as across
//! receivers. The keys it did not store are looked up by a second statement, whose snapshot
//! follows the conflicting commit; a key pruned in between is appended again, alone.
//!
//! Completions are grouped the same way: the completions that arrive together are one
//! `UPDATE … FROM unnest …` (each record handled, its attempt added to its history; one its
//! handler completed in its own transaction, under this store's claim, included).

use std::collections::{HashMap, HashSet};
use std::future::Future;
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
    /// Whether its first attempt starts at once (held for `owner`), or it waits for a claim.
    pub(super) started: bool,
    pub(super) kind: String,
    pub(super) received_at_ms: i64,
    pub(super) task_id: Option<String>,
    /// Its order key, and whether as a dead letter it holds the key.
    pub(super) order_key: Option<String>,
    pub(super) order_holds: bool,
    pub(super) reply: oneshot::Sender<Result<Appended, StoreError>>,
}

/// One completion waiting for its group.
pub(super) struct Complete {
    pub(super) id: i64,
    /// The attempt, as its history keeps it (JSON).
    pub(super) attempt: String,
    /// The store's claim owner: a record its handler completed under this claim is marked too.
    pub(super) owner: Arc<str>,
    /// Whether a pending record was handled.
    pub(super) reply: oneshot::Sender<Result<bool, StoreError>>,
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
                "INSERT INTO {table} (dedup_key, state, attempts, envelope, body, claimed_by, \
                   lease_until, kind, received_at_ms, task_id, due_at, order_key, order_holds) \
                 SELECT k, {pending}, CASE WHEN s THEN 1 ELSE 0 END, e, b, CASE WHEN s THEN o END, \
                   CASE WHEN s THEN {lease} END, kd, r, ti, now(), ok, oh \
                 FROM unnest($1::bytea[], $2::text[], $3::bytea[], $4::text[], $5::bool[], \
                   $6::text[], $7::int8[], $8::text[], $9::text[], $10::bool[]) \
                   WITH ORDINALITY AS u(k, e, b, o, s, kd, r, ti, ok, oh, n) \
                 ORDER BY n \
                 ON CONFLICT (dedup_key) DO NOTHING RETURNING id, dedup_key"
            ),
            find_keys: format!("SELECT id, dedup_key FROM {table} WHERE dedup_key = ANY($1)"),
        }
    }
}

/// Starts the group task of the appends; it ends once every sender is gone.
pub(super) fn start(pool: Pool, sql: GroupSql, timeout: Duration) -> mpsc::UnboundedSender<Append> {
    groups(move |group| {
        let (pool, sql) = (pool.clone(), sql.clone());
        async move { write(&pool, &sql, timeout, group).await }
    })
}

/// Starts the group task of the completions (`sql`: `Sql::complete_all`); it ends once every
/// sender is gone.
pub(super) fn start_completes(
    pool: Pool,
    sql: String,
    timeout: Duration,
) -> mpsc::UnboundedSender<Complete> {
    groups(move |group| {
        let (pool, sql) = (pool.clone(), sql.clone());
        async move { complete(&pool, &sql, timeout, group).await }
    })
}

/// Takes items as they come and hands them to `write` in groups: while `IN_FLIGHT` groups are
/// being written, the next one gathers.
fn groups<T, F, W>(write: W) -> mpsc::UnboundedSender<T>
where
    T: Send + 'static,
    F: Future<Output = ()> + Send + 'static,
    W: Fn(Vec<T>) -> F + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<T>();
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
                    Ok(item) => group.push(item),
                    Err(_) => break,
                }
            }
            let written = write(group);
            tokio::spawn(async move {
                let _slot = slot;
                written.await;
            });
        }
    });
    tx
}

/// Writes one group of completions and answers each.
async fn complete(pool: &Pool, sql: &str, timeout: Duration, group: Vec<Complete>) {
    let work = async {
        let client = pool.get().await.map_err(unavailable)?;
        let statement = client.prepare_cached(sql).await.map_err(unavailable)?;
        let ids: Vec<i64> = group.iter().map(|c| c.id).collect();
        let attempts: Vec<&str> = group.iter().map(|c| c.attempt.as_str()).collect();
        let owners: Vec<&str> = group.iter().map(|c| &*c.owner).collect();
        let rows = client
            .query(&statement, &[&ids, &attempts, &owners])
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|row| row.try_get::<_, i64>(0).map_err(unavailable))
            .collect::<Result<HashSet<i64>, StoreError>>()
    };
    let outcome = match tokio::time::timeout(timeout, work).await {
        Ok(outcome) => outcome,
        Err(_) => Err(unavailable(format!(
            "no answer from PostgreSQL within {timeout:?}"
        ))),
    };
    for done in group {
        let answer = match &outcome {
            Ok(handled) => Ok(handled.contains(&done.id)),
            Err(err) => Err(StoreError::new(err.kind(), err.to_string())),
        };
        let _ = done.reply.send(answer);
    }
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
    let started: Vec<bool> = group.iter().map(|a| a.started).collect();
    let kinds: Vec<&str> = group.iter().map(|a| a.kind.as_str()).collect();
    let received: Vec<i64> = group.iter().map(|a| a.received_at_ms).collect();
    let task_ids: Vec<Option<&str>> = group.iter().map(|a| a.task_id.as_deref()).collect();
    let order_keys: Vec<Option<&str>> = group.iter().map(|a| a.order_key.as_deref()).collect();
    let order_holds: Vec<bool> = group.iter().map(|a| a.order_holds).collect();
    let insert = client
        .prepare_cached(&sql.insert)
        .await
        .map_err(unavailable)?;
    let rows = client
        .query(
            &insert,
            &[
                &keys,
                &envelopes,
                &bodies,
                &owners,
                &started,
                &kinds,
                &received,
                &task_ids,
                &order_keys,
                &order_holds,
            ],
        )
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
