//! The shared store: PostgreSQL, for several receivers behind one URL.

mod batch;
mod completion;
mod row;
mod sql;

pub(crate) use self::completion::Claimant;
pub use self::completion::Completion;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{NoTls, Row, Socket};

use self::row::{
    DEAD, PENDING, attempt_json, corrupt, db_id, envelope_json, record_from, record_id,
    records_from, rejected_from, summary_from, unavailable,
};
use self::sql::{Filter, MIGRATIONS, Sql, state_code};
use crate::store::{
    Appended, Attempt, Envelope, NewRecord, Record, RecordId, RecordPage, RecordQuery, RecordState,
    RefusedBody, RefusedBodyLimits, RefusedBodySummary, RejectedDrops, Store, StoreError,
    StoreErrorKind, StoreSummary,
};

/// How a [`PostgresStore`] connects and shares its records. See
/// [`PostgresStore::connect_with`].
#[derive(Debug, Clone)]
#[must_use]
pub struct PostgresOptions {
    schema: String,
    lease: Duration,
    pool_size: usize,
    timeout: Duration,
    rejected: RefusedBodyLimits,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: "airudder".into(),
            lease: Duration::from_secs(15),
            pool_size: 16,
            timeout: Duration::from_secs(5),
            rejected: RefusedBodyLimits::default(),
        }
    }
}

impl PostgresOptions {
    /// The PostgreSQL schema that holds the tables (default `airudder`); created if missing.
    /// Receivers that share notifications use the same schema.
    ///
    /// # Errors
    /// When the name is empty, longer than 63 bytes, or has other characters than ASCII
    /// letters, digits and `_` (it is written into SQL, so it is checked, not quoted).
    pub fn schema(mut self, schema: impl Into<String>) -> Result<Self, StoreError> {
        let schema = schema.into();
        let valid = !schema.is_empty()
            && schema.len() <= 63
            && !schema.starts_with(|c: char| c.is_ascii_digit())
            && schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(StoreError::new(
                StoreErrorKind::Invalid,
                format!("{schema:?} is not a plain schema name (ASCII letters, digits, `_`)"),
            ));
        }
        self.schema = schema;
        Ok(self)
    }

    /// How long a receiver's claim on a notification lasts without being renewed (default
    /// 15 s, at least 1 s). A live receiver renews its claims every third of it; a receiver
    /// that dies loses them after at most this long, and another one takes the notifications
    /// over.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_secs(1));
        self
    }

    /// The most connections this receiver opens (default 16). Concurrent appends share
    /// PostgreSQL's group commit, so a few connections carry many requests.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How long one operation (connecting included) may take before the store reports
    /// itself unavailable and the receiver answers 503 (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How much of the refused bodies to keep (default [`RefusedBodyLimits::default`]: 64 MiB in
    /// all, 7 days each, counted from when each was stored). Receivers sharing a schema should
    /// agree: each applies its own limits when it keeps a body and when it prunes.
    pub fn keep_rejected(mut self, limits: RefusedBodyLimits) -> Self {
        self.rejected = limits;
        self
    }
}

/// The [`Store`] on PostgreSQL, shared by every receiver that connects to the same schema.
///
/// - An append is one `INSERT … ON CONFLICT DO NOTHING` on the de-duplication key's unique
///   index, committed with `synchronous_commit` on before the receiver answers 200: two
///   receivers given the same notification at the same instant store it once.
/// - The table is the queue. Each pending notification has a due time; a receiver
///   [claims](Store::claim) the due ones of its kind a page at a time (`ORDER BY due_at, id …
///   FOR UPDATE SKIP LOCKED` on a partial index of the pending ones), so that two receivers
///   never take the same one, and holds each for a [lease](PostgresOptions::lease) that it
///   renews while the notification is in memory. A notification whose claim lapsed (its
///   receiver died, or was cut off for longer than the lease) is due to every receiver.
/// - A receiver that hands a notification on as it stores it claims it in the same
///   statement ([`NewRecord::started`]).
/// - Each outcome is one statement: its attempt is added to the row's history (JSON, the
///   first and the newest [`MAX_HISTORY`](crate::store::MAX_HISTORY)), and the claim ends.
///   Completions that arrive together are written together. A failed attempt's outcome is
///   never written over another receiver's claim (its lease lapsed meanwhile, and the other
///   receiver took the notification over). A handled notification keeps its body and history
///   until [`purge_before`](Store::purge_before); its de-duplication key is forgotten at the
///   [prune](Store::prune), its row kept.
/// - A handler may mark its notification handled in its own transaction, on the same
///   database ([`Delivery::complete_in`](crate::Delivery::complete_in), or the statement of
///   [`Delivery::completion`](crate::Delivery::completion) for other drivers), guarded by its
///   claim: see [the guide](crate::store#completing-in-your-own-transaction).
/// - Lists, counts and summaries read columns and indexes (kind, task id, receipt, due time,
///   body length), never a body. Paused kinds are a table, shared by every receiver.
/// - The tables live in their own schema, created and migrated at connect, under an advisory
///   lock, so receivers may start at the same instant.
/// - Refused bodies are bounded in size and age ([`PostgresOptions::keep_rejected`]): each row
///   carries its body's length, so that the limits are kept by one `DELETE` over those counts
///   in the transaction that keeps a body, and a list reads no body.
/// - A database that cannot be reached makes operations fail within the
///   [timeout](PostgresOptions::timeout) ([`StoreErrorKind::Unavailable`], so the receiver
///   answers 503); the pool reconnects by itself once it is back.
///
/// Cloning is cheap; clones share the pool and the claims.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// Appends, to be written in groups (see `batch`).
    appends: tokio::sync::mpsc::UnboundedSender<batch::Append>,
    /// Completions, to be written in groups (see `batch`).
    completes: tokio::sync::mpsc::UnboundedSender<batch::Complete>,
    /// Who claims: unique to this store (process id, time, and a counter).
    owner: Arc<str>,
    options: PostgresOptions,
    sql: Sql,
    /// Refused bodies this store dropped for its limits (shared with
    /// [`PostgresStore::for_another_receiver`]: one pool, one count).
    rejected_dropped: Arc<AtomicU64>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: never printed.
        f.debug_struct("PostgresStore")
            .field("schema", &self.inner.options.schema)
            .field("owner", &self.inner.owner)
            .field("lease", &self.inner.options.lease)
            .finish_non_exhaustive()
    }
}

/// How long the schema's migrations may take at connect (the receivers starting meanwhile
/// wait for them on the advisory lock, each within its own).
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The `last_error` a failed attempt leaves: its error, else how it ended (`timeout`, `panic`).
fn last_error(attempt: &Attempt) -> String {
    attempt
        .error
        .clone()
        .unwrap_or_else(|| attempt.outcome.as_str().to_owned())
}

/// A time as the statements take it (milliseconds since the Unix epoch), within the years
/// PostgreSQL's timestamps hold.
fn db_millis(time: SystemTime) -> i64 {
    // 0001-01-01 and 9999-12-31.
    const MIN: i64 = -62_135_596_800_000;
    const MAX: i64 = 253_402_300_799_000;
    crate::store::millis(time).clamp(MIN, MAX)
}

/// A claim owner unique to this store: process id, time, and a counter.
fn new_owner() -> Arc<str> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    Arc::from(format!(
        "{}-{}-{}",
        std::process::id(),
        crate::store::millis(SystemTime::now()),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`, or the key=value
    /// form) without TLS, with the default [options](PostgresOptions), and creates or
    /// migrates the schema.
    ///
    /// # Errors
    /// When the URL does not parse, the database cannot be reached within the timeout, or the
    /// schema is at a newer version than this crate knows.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// [`connect`](Self::connect) with options.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|err| StoreError::new(StoreErrorKind::Invalid, err))?;
        Self::connect_config(config, NoTls, options).await
    }

    /// Connects with a `tokio_postgres` configuration and a TLS connector of your choice
    /// (`tokio-postgres-rustls`, `postgres-native-tls`), so that this crate pulls no TLS stack.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_config<T>(
        mut config: tokio_postgres::Config,
        tls: T,
        options: PostgresOptions,
    ) -> Result<Self, StoreError>
    where
        T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
        T::Stream: Sync + Send,
        T::TlsConnect: Sync + Send,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("airudder-webhook");
        }
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.timeout))
            .create_timeout(Some(options.timeout))
            .recycle_timeout(Some(options.timeout))
            // Acknowledged means on disk: never let a server default of `off` weaken that.
            .post_create(Hook::async_fn(|client, _| {
                Box::pin(async move {
                    client
                        .batch_execute(
                            "SELECT set_config('synchronous_commit', 'on', false) \
                             WHERE current_setting('synchronous_commit') = 'off'",
                        )
                        .await
                        .map_err(HookError::Backend)
                })
            }))
            .build()
            .map_err(unavailable)?;
        let sql = Sql::new(&options.schema, options.lease);
        let appends = batch::start(pool.clone(), sql.group.clone(), options.timeout);
        let completes =
            batch::start_completes(pool.clone(), sql.complete_all.clone(), options.timeout);
        let store = Self {
            inner: Arc::new(Inner {
                pool,
                appends,
                completes,
                owner: new_owner(),
                sql,
                options,
                rejected_dropped: Arc::default(),
            }),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The name this store claims notifications under (unique per connected store).
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// What each delivery of this store's claims needs to complete in the handler's
    /// transaction.
    pub(crate) fn claimant(&self) -> Arc<Claimant> {
        Arc::new(Claimant::new(
            Arc::clone(&self.inner.owner),
            self.inner.sql.complete_in.clone(),
        ))
    }

    /// The same database and connection pool, claiming under an owner of its own: give each
    /// receiver of one process its own, so that one receiver's shutdown, which releases its
    /// claims, never releases another's still in hand. (A clone shares the owner.)
    pub fn for_another_receiver(&self) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool: self.inner.pool.clone(),
                appends: self.inner.appends.clone(),
                completes: self.inner.completes.clone(),
                owner: new_owner(),
                options: self.inner.options.clone(),
                sql: self.inner.sql.clone(),
                rejected_dropped: Arc::clone(&self.inner.rejected_dropped),
            }),
        }
    }

    /// How many kept refused bodies this store (and the stores made from it with
    /// [`for_another_receiver`](Self::for_another_receiver)) dropped for its
    /// [limits](PostgresOptions::keep_rejected) since it connected.
    pub fn rejected_dropped(&self) -> u64 {
        self.inner.rejected_dropped.load(Ordering::Relaxed)
    }

    /// The age limit in milliseconds, within what an SQL interval holds.
    fn max_age_ms(&self) -> f64 {
        // A thousand years: longer is forever, and beyond an interval's range.
        const FOREVER_MS: u64 = 1000 * 366 * 24 * 3600 * 1000;
        let age =
            u64::try_from(self.inner.options.rejected.max_age.as_millis()).unwrap_or(u64::MAX);
        #[allow(clippy::cast_precision_loss)] // below 2^53: exact
        let ms = age.min(FOREVER_MS) as f64;
        ms
    }

    /// Creates the schema or brings it to the newest version, one receiver at a time.
    async fn migrate(&self) -> Result<(), StoreError> {
        let schema = self.inner.options.schema.clone();
        // A migration rewrites rows of a big table: it gets longer than one operation.
        let timeout = self.inner.options.timeout.max(MIGRATION_TIMEOUT);
        self.run_within(timeout, async move |client| {
            let tx = client.transaction().await.map_err(unavailable)?;
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                &[&format!("airudder-webhook migrations {schema}")],
            )
            .await
            .map_err(unavailable)?;
            tx.batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}; \
                 CREATE TABLE IF NOT EXISTS {schema}.schema_migrations ( \
                     version INTEGER PRIMARY KEY, \
                     applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            ))
            .await
            .map_err(unavailable)?;
            let row = tx
                .query_one(
                    &format!("SELECT coalesce(max(version), 0) FROM {schema}.schema_migrations"),
                    &[],
                )
                .await
                .map_err(unavailable)?;
            let at: i32 = row.get(0);
            let known = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
            if at > known {
                return Err(StoreError::new(
                    StoreErrorKind::Unavailable,
                    format!(
                        "schema {schema} is at version {at}, newer than this crate's {known}: \
                         upgrade airudder-webhook"
                    ),
                ));
            }
            for (version, migration) in (1..).zip(MIGRATIONS).skip(usize::try_from(at).unwrap_or(0))
            {
                tx.batch_execute(&migration.replace("{schema}", &schema))
                    .await
                    .map_err(unavailable)?;
                tx.execute(
                    &format!("INSERT INTO {schema}.schema_migrations (version) VALUES ($1)"),
                    &[&version],
                )
                .await
                .map_err(unavailable)?;
                tracing::info!(schema = %schema, version, "migrated the notification store");
            }
            tx.commit().await.map_err(unavailable)
        })
        .await
    }

    /// Runs `op` on a pooled connection within the timeout.
    async fn run<T>(
        &self,
        op: impl AsyncFnOnce(&mut deadpool_postgres::Object) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.run_within(self.inner.options.timeout, op).await
    }

    /// Runs `op` on a pooled connection within `timeout`.
    async fn run_within<T>(
        &self,
        timeout: Duration,
        op: impl AsyncFnOnce(&mut deadpool_postgres::Object) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let work = async {
            let mut client = self.inner.pool.get().await.map_err(unavailable)?;
            op(&mut client).await
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(unavailable(format!(
                "no answer from PostgreSQL within {timeout:?}"
            ))),
        }
    }

    /// Runs a claim statement (`claim` or `claim_and_begin`): records soonest due first.
    async fn claim_with(
        &self,
        sql: &str,
        kind: &str,
        max: usize,
    ) -> Result<Vec<Record>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let rows = self.query(sql, &[&&*self.inner.owner, &max, &kind]).await?;
        let mut records = records_from(&rows)?;
        // `RETURNING` keeps no order: soonest due first, then oldest.
        records.sort_by_key(|record| (record.due_at_ms, record.id));
        Ok(records)
    }

    /// Runs one statement and returns its rows.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        self.run(async |client| {
            let statement = client.prepare_cached(sql).await.map_err(unavailable)?;
            client.query(&statement, params).await.map_err(unavailable)
        })
        .await
    }

    /// Runs one statement and returns how many rows it changed.
    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        self.run(async |client| {
            let statement = client.prepare_cached(sql).await.map_err(unavailable)?;
            client
                .execute(&statement, params)
                .await
                .map_err(unavailable)
        })
        .await
    }

    /// Runs a statement answering one count (`count(*)`, or how many rows it changed).
    async fn count_of(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let rows = self.query(sql, params).await?;
        let count: i64 = rows
            .first()
            .ok_or_else(|| unavailable("no count in the answer"))?
            .try_get(0)
            .map_err(unavailable)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Runs an update of one record; no row changed means no record in that state.
    async fn update_one(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<(), StoreError> {
        match self.execute(sql, params).await? {
            0 => Err(StoreError::bare(StoreErrorKind::NotFound)),
            _ => Ok(()),
        }
    }
}

impl Store for PostgresStore {
    async fn append(&self, record: NewRecord) -> Result<Appended, StoreError> {
        // Written in a group with the appends that arrive together (see `batch`).
        let (reply, answer) = tokio::sync::oneshot::channel();
        let kind = record.envelope.kind().to_owned();
        let received_at_ms = record.envelope.received_at_ms;
        let sent = self.inner.appends.send(batch::Append {
            key: record.key.to_vec(),
            envelope: envelope_json(&record.envelope)?,
            body: record.body.clone(),
            owner: self.inner.owner.to_string(),
            started: record.started,
            kind: kind.clone(),
            received_at_ms,
            task_id: record.task_id.clone(),
            order_key: record.order_key.clone(),
            order_holds: record.order_holds,
            reply,
        });
        if sent.is_ok() {
            match answer.await {
                Ok(Err(err)) if err.kind() == StoreErrorKind::NotFound => {}
                Ok(answer) => return answer,
                Err(_) => return Err(StoreError::bare(StoreErrorKind::Closed)),
            }
        }
        // Alone, as before groups: a duplicate whose key was pruned between the two statements.
        let envelope = envelope_json(&record.envelope)?;
        let sql = &self.inner.sql;
        let key = &record.key[..];
        let body = &record.body[..];
        // Two statements, not one: the lookup needs a snapshot taken after a conflicting
        // insert committed. A key pruned in between is stored again, at most twice over.
        for _ in 0..3 {
            let rows = self
                .query(
                    &sql.insert,
                    &[
                        &key,
                        &envelope,
                        &body,
                        &&*self.inner.owner,
                        &record.started,
                        &kind,
                        &received_at_ms,
                        &record.task_id,
                        &record.order_key,
                        &record.order_holds,
                    ],
                )
                .await?;
            if let Some(row) = rows.first() {
                return Ok(Appended::Stored(record_id(row.get(0))?));
            }
            if let Some(row) = self.query(&sql.find_key, &[&key]).await?.first() {
                return Ok(Appended::Duplicate(record_id(row.get(0))?));
            }
        }
        Err(unavailable(
            "the de-duplication key changes too fast to be read",
        ))
    }

    async fn begin_attempt(&self, id: RecordId) -> Result<u32, StoreError> {
        let rows = self
            .query(
                &self.inner.sql.begin_attempt,
                &[&db_id(id)?, &&*self.inner.owner],
            )
            .await?;
        match rows.first() {
            Some(row) => Ok(u32::try_from(row.get::<_, i32>(0)).unwrap_or(u32::MAX)),
            None => Err(StoreError::new(
                StoreErrorKind::NotFound,
                "not pending under this receiver's claim (done, or taken over by another)",
            )),
        }
    }

    /// Written in a group with the completions that arrive together (see `batch`).
    async fn complete(&self, id: RecordId, attempt: Attempt) -> Result<(), StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.inner
            .completes
            .send(batch::Complete {
                id: db_id(id)?,
                attempt: attempt_json(&attempt)?,
                owner: Arc::clone(&self.inner.owner),
                reply,
            })
            .map_err(|_| StoreError::bare(StoreErrorKind::Closed))?;
        match answer.await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(StoreError::bare(StoreErrorKind::NotFound)),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(StoreError::bare(StoreErrorKind::Closed)),
        }
    }

    /// One statement for them all.
    async fn complete_all(&self, done: Vec<(RecordId, Attempt)>) -> Result<(), StoreError> {
        if done.is_empty() {
            return Ok(());
        }
        let mut ids = Vec::with_capacity(done.len());
        let mut attempts = Vec::with_capacity(done.len());
        for (id, attempt) in &done {
            // An id beyond i64 names no record.
            if let Ok(id) = db_id(*id) {
                ids.push(id);
                attempts.push(attempt_json(attempt)?);
            }
        }
        let owners = vec![&*self.inner.owner; ids.len()];
        self.query(&self.inner.sql.complete_all, &[&ids, &attempts, &owners])
            .await?;
        Ok(())
    }

    async fn fail(
        &self,
        id: RecordId,
        attempt: Attempt,
        due: SystemTime,
    ) -> Result<(), StoreError> {
        let error = last_error(&attempt);
        let due = db_millis(due);
        self.update_one(
            &self.inner.sql.fail,
            &[
                &db_id(id)?,
                &attempt_json(&attempt)?,
                &error,
                &due,
                &&*self.inner.owner,
            ],
        )
        .await
    }

    async fn dead_letter(&self, id: RecordId, attempt: Attempt) -> Result<(), StoreError> {
        let error = last_error(&attempt);
        self.update_one(
            &self.inner.sql.dead_letter,
            &[
                &db_id(id)?,
                &attempt_json(&attempt)?,
                &error,
                &&*self.inner.owner,
            ],
        )
        .await
    }

    async fn make_due(&self, id: RecordId) -> Result<bool, StoreError> {
        let Ok(id) = db_id(id) else { return Ok(false) };
        Ok(self.execute(&self.inner.sql.make_due, &[&id]).await? > 0)
    }

    async fn purge(&self, id: RecordId) -> Result<bool, StoreError> {
        let Ok(id) = db_id(id) else { return Ok(false) };
        Ok(self.count_of(&self.inner.sql.purge, &[&id]).await? > 0)
    }

    /// One statement on the index by state and time.
    async fn purge_before(
        &self,
        state: RecordState,
        before: SystemTime,
    ) -> Result<u64, StoreError> {
        if state == RecordState::Pending {
            return Ok(0);
        }
        let before = db_millis(before);
        self.count_of(&self.inner.sql.purge_before, &[&state_code(state), &before])
            .await
    }

    async fn set_paused(&self, kind: &str, paused: bool) -> Result<(), StoreError> {
        let sql = match paused {
            true => &self.inner.sql.pause,
            false => &self.inner.sql.resume,
        };
        self.execute(sql, &[&kind]).await?;
        Ok(())
    }

    async fn paused(&self) -> Result<Vec<String>, StoreError> {
        let rows = self.query(&self.inner.sql.paused, &[]).await?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(unavailable))
            .collect()
    }

    /// Keyset paging on the primary key, the filters in SQL; reads no body.
    async fn list(&self, query: RecordQuery) -> Result<RecordPage, StoreError> {
        // No id is beyond i64.
        let Ok(after) = i64::try_from(query.after) else {
            return Ok(RecordPage::default());
        };
        // One row more than asked tells that another page follows.
        let limit = i64::try_from(query.page_size() + 1).unwrap_or(i64::MAX);
        let filter = Filter::new(&query);
        let mut params = filter.params();
        params.push(&after);
        params.push(&limit);
        let rows = self.query(&self.inner.sql.list(&query), &params).await?;
        let rows = rows.iter().map(summary_from).collect::<Result<_, _>>()?;
        Ok(RecordPage::from_rows(&query, rows))
    }

    /// One `count(*)`; reads no body.
    async fn count(&self, query: RecordQuery) -> Result<u64, StoreError> {
        let filter = Filter::new(&query);
        self.count_of(&self.inner.sql.count(&query), &filter.params())
            .await
    }

    async fn pending(&self) -> Result<Vec<Record>, StoreError> {
        records_from(&self.query(&self.inner.sql.in_state, &[&PENDING]).await?)
    }

    async fn dead_letters(&self) -> Result<Vec<Record>, StoreError> {
        records_from(&self.query(&self.inner.sql.in_state, &[&DEAD]).await?)
    }

    async fn summary(&self) -> Result<StoreSummary, StoreError> {
        let rows = self.query(&self.inner.sql.summary, &[]).await?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::bare(StoreErrorKind::Unavailable))?;
        let count = |i: usize| row.try_get::<_, i64>(i).map_err(unavailable);
        let oldest = row
            .try_get::<_, Option<i64>>(2)
            .map_err(unavailable)?
            .map(crate::store::record::from_millis);
        Ok(StoreSummary::new(
            count(0)?.max(0) as u64,
            count(1)?.max(0) as u64,
            oldest,
        ))
    }

    async fn get(&self, id: RecordId) -> Result<Option<Record>, StoreError> {
        let Ok(id) = db_id(id) else { return Ok(None) };
        let rows = self.query(&self.inner.sql.get, &[&id]).await?;
        rows.first().map(record_from).transpose()
    }

    async fn replay(&self, id: RecordId) -> Result<Record, StoreError> {
        let rows = self.query(&self.inner.sql.replay, &[&db_id(id)?]).await?;
        match rows.first() {
            Some(row) => record_from(row),
            None => Err(StoreError::bare(StoreErrorKind::NotFound)),
        }
    }

    async fn reject(
        &self,
        status: u16,
        reason: String,
        envelope: Envelope,
        body: Bytes,
    ) -> Result<RecordId, StoreError> {
        let limits = self.inner.options.rejected;
        let status = i16::try_from(status).unwrap_or(i16::MAX);
        let envelope = envelope_json(&envelope)?;
        // As `trim_rejected` charges it: the body, its reason and envelope, the fixed cost.
        let len = body.len() as u64;
        limits.admit(
            len,
            RefusedBodyLimits::charge(len, (reason.len() + envelope.len()) as u64),
        )?;
        let bytes = i64::try_from(body.len()).unwrap_or(i64::MAX);
        let max_bytes = i64::try_from(limits.max_bytes).unwrap_or(i64::MAX);
        let max_age_ms = self.max_age_ms();
        let sql = &self.inner.sql;
        let (id, drops) = self
            .run(async |client| {
                let tx = client.transaction().await.map_err(unavailable)?;
                let insert = tx.prepare_cached(&sql.reject).await.map_err(unavailable)?;
                let row = tx
                    .query_one(&insert, &[&status, &reason, &envelope, &&body[..], &bytes])
                    .await
                    .map_err(unavailable)?;
                let trim = tx
                    .prepare_cached(&sql.trim_rejected)
                    .await
                    .map_err(unavailable)?;
                let dropped = tx
                    .query(&trim, &[&max_bytes, &max_age_ms])
                    .await
                    .map_err(unavailable)?;
                tx.commit().await.map_err(unavailable)?;
                let mut drops = RejectedDrops::default();
                for row in &dropped {
                    let bytes = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
                    let cause = match row.get::<_, bool>(1) {
                        true => &mut drops.too_old,
                        false => &mut drops.over_cap,
                    };
                    cause.0 += 1;
                    cause.1 += bytes;
                }
                Ok((row.get::<_, i64>(0), drops))
            })
            .await?;
        drops.report(&limits, &self.inner.rejected_dropped);
        record_id(id)
    }

    async fn rejected(&self) -> Result<Vec<RefusedBody>, StoreError> {
        let rows = self.query(&self.inner.sql.rejected, &[]).await?;
        rows.iter().map(rejected_from).collect()
    }

    async fn rejected_page(
        &self,
        after: RecordId,
        limit: usize,
    ) -> Result<Vec<RefusedBodySummary>, StoreError> {
        // No id is beyond i64.
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .query(&self.inner.sql.rejected_page, &[&after, &limit])
            .await?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.get(0);
                let envelope: String = row.get(3);
                let envelope = serde_json::from_str(&envelope).map_err(|err| corrupt(id, err))?;
                Ok(RefusedBodySummary::new(
                    record_id(id)?,
                    u16::try_from(row.get::<_, i16>(1)).unwrap_or(0),
                    row.get(2),
                    envelope,
                    u64::try_from(row.get::<_, i64>(4)).unwrap_or(0),
                ))
            })
            .collect()
    }

    async fn get_rejected(&self, id: RecordId) -> Result<Option<RefusedBody>, StoreError> {
        let Ok(id) = db_id(id) else { return Ok(None) };
        let rows = self.query(&self.inner.sql.get_rejected, &[&id]).await?;
        rows.first().map(rejected_from).transpose()
    }

    async fn remove_rejected(&self, id: RecordId) -> Result<(), StoreError> {
        self.update_one(&self.inner.sql.remove_rejected, &[&db_id(id)?])
            .await
    }

    /// Also drops the refused bodies past their age, so that they go even when no new
    /// refusal comes.
    async fn prune(&self, before: SystemTime) -> Result<u64, StoreError> {
        #[allow(clippy::cast_precision_loss)] // milliseconds since 1970 fit an f64 exactly
        let seconds = crate::store::millis(before) as f64 / 1000.0;
        let pruned = self.count_of(&self.inner.sql.prune, &[&seconds]).await?;
        let aged = self
            .query(&self.inner.sql.age_rejected, &[&self.max_age_ms()])
            .await?;
        let mut drops = RejectedDrops::default();
        for row in &aged {
            drops.too_old.0 += 1;
            drops.too_old.1 += u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
        }
        drops.report(&self.inner.options.rejected, &self.inner.rejected_dropped);
        Ok(pruned)
    }

    fn lease(&self) -> Option<Duration> {
        Some(self.inner.options.lease)
    }

    async fn claim(&self, kind: &str, max: usize) -> Result<Vec<Record>, StoreError> {
        self.claim_with(&self.inner.sql.claim, kind, max).await
    }

    /// One statement: the claim counts the attempts.
    async fn claim_and_begin(
        &self,
        kind: &str,
        max: usize,
        max_bytes: usize,
        begin: usize,
    ) -> Result<Vec<Record>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let max_bytes = i64::try_from(max_bytes).unwrap_or(i64::MAX);
        let begin = i64::try_from(begin).unwrap_or(i64::MAX);
        let sql = &self.inner.sql.claim_and_begin;
        let rows = self
            .query(sql, &[&&*self.inner.owner, &max, &kind, &max_bytes, &begin])
            .await?;
        let mut records = records_from(&rows)?;
        records.sort_by_key(|record| (record.due_at_ms, record.id));
        Ok(records)
    }

    async fn unclaim(&self, ids: Vec<RecordId>, counted: bool) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = ids.into_iter().map(db_id).collect::<Result<Vec<_>, _>>()?;
        let taken_back = i32::from(counted);
        let sql = &self.inner.sql.unclaim;
        self.execute(sql, &[&ids, &&*self.inner.owner, &taken_back])
            .await
            .map(drop)
    }

    async fn keys_held_back(&self, kind: &str) -> Result<u64, StoreError> {
        let rows = self.query(&self.inner.sql.keys_held_back, &[&kind]).await?;
        let count: i64 = rows.first().map_or(0, |row| row.get(0));
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn renew(&self) -> Result<u64, StoreError> {
        self.execute(&self.inner.sql.renew, &[&&*self.inner.owner])
            .await
    }

    async fn release(&self) -> Result<u64, StoreError> {
        self.execute(&self.inner.sql.release, &[&&*self.inner.owner])
            .await
    }
}
