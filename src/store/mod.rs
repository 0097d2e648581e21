//! Durable storage: nothing acknowledged is lost, nothing is handled twice.
//!
//! With [`ReceiverBuilder::durable`](crate::ReceiverBuilder::durable), the receiver writes each
//! notification to a [`Store`] **before** it answers 200, and feeds the handler from there.
//!
//! ```
//! use airudder_webhook::store::{RedbStore, Store};
//! use airudder_webhook::{Delivery, Receiver, model::TaskNotification};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! # let dir = tmp.path().join("store");
//! let store = RedbStore::open(&dir)?;
//! let receiver = Receiver::builder(|d: Delivery<TaskNotification>| async move {
//!     println!("attempt {} of task {}", d.attempt(), d.task_id);
//!     Ok::<_, std::io::Error>(())
//! })
//! .allow_unauthenticated()
//! .durable(store.clone())
//! .build()?;
//! # let _ = receiver.shutdown_handle().shutdown(std::time::Duration::from_secs(1)).await;
//! assert!(store.dead_letters().await?.is_empty());
//! # drop((receiver, store));
//! # Ok(())
//! # }
//! ```
//!
//! - **Acknowledged means on disk.** The body (as the [body hook](crate::BodyHook) returned
//!   it) and its [`Envelope`] (receive time, peer address, `content-type`, `user-agent`,
//!   `content-length` and the headers named in
//!   [`keep_headers`](crate::ReceiverBuilder::keep_headers)) are written and fsynced before the
//!   200. Concurrent requests commit together (group commit): durability costs one fsync per
//!   group, not per request.
//! - **The store is the queue.** A pending record has a due time. As workers free up, the
//!   receiver [claims](Store::claim) the due records of its kind, a page at a time; memory holds
//!   what is being handled, never the backlog, so a backlog as large as the disk is answered
//!   200 like any other notification. A notification that finds a worker free is handed on at
//!   once, without a trip through the store's index. A restart reads nothing up front: what was
//!   being handled at a crash is due again at once.
//!   [`Delivery::attempt`](crate::Delivery::attempt) counts attempts across restarts: one that
//!   starts as it is claimed is counted before the handler runs, so a crash mid-attempt counts;
//!   one claimed ahead of the workers is counted with its outcome, so a crash never counts an
//!   attempt that did not start.
//! - **Retries wait on disk.** A failed attempt is written back with its next due time
//!   ([`retry`](crate::ReceiverBuilder::retry): backoff, a count and a
//!   [deadline](crate::RetryPolicy::retry_for); a handler may ask for its wait with
//!   [`RetryLater`](crate::RetryLater)) and leaves memory until then; after the last it becomes
//!   a **dead letter**. A notification whose attempts keep ending in crashes becomes a dead
//!   letter too, instead of crashing the receiver forever. Each record keeps its
//!   [attempts](Attempt): when, how long, how it ended, the
//!   [status](crate::Delivery::report_status) and the error (the first and the newest
//!   [`MAX_HISTORY`]).
//! - **Handled notifications are kept** for the
//!   [retention window](crate::ReceiverBuilder::retention) (7 days), found with
//!   [`Store::list`] (by state, kind, task id, time received, error text; a page at a time,
//!   reading no body) and replayed like dead letters. Pruned hourly by an index by time.
//! - **Pause.** [`Receiver::set_paused`](crate::Receiver::set_paused) stops handing a kind on
//!   (kept in the store, for every receiver sharing it, across restarts); its notifications are
//!   still stored and answered 200.
//! - **Replay.** [`Receiver::replay`](crate::Receiver::replay) hands a dead letter (or a
//!   handled notification) to the handler again; [`Store::replay_dead`] and
//!   [`Store::retry_now`] do it in bulk, by filter. Bodies refused with a 400, 408, 413 or 422 are kept with their raw bytes,
//!   within [limits](#refused-bodies-are-bounded) ([`Store::rejected_page`] lists them,
//!   [`Store::get_rejected`] reads one);
//!   [`Receiver::replay_rejected`](crate::Receiver::replay_rejected) runs one through intake
//!   again, the current body hook included, once the cause is fixed.
//! - **De-duplication.** The [key](crate::Event::dedup_key) is the SHA-256 of the notification
//!   serialized again by this crate: members in one fixed order, no white space. A retry of the
//!   same notification gets the same key; a later notification about the same task (another
//!   status, another round) gets another. The key is claimed in the same transaction as the
//!   record, so two identical requests at the same instant give one delivery. Keys are kept
//!   for the [de-duplication window](crate::ReceiverBuilder::dedup_window) after the
//!   notification is handled; a duplicate answers 200 and is counted as `duplicate`.
//! - **Faults** are answered 503, never 200: the sender retries, and nothing is acknowledged
//!   that is not stored. What each does, and what the operator sees:
//!
//! | fault | what the receiver does | what the operator sees |
//! | --- | --- | --- |
//! | the disk fills; the file system fails or turns read-only | 503 `store_unavailable` while the store reopens itself (backoff 100 ms to 5 s, no restart); 200 again as soon as the disk allows. A notification handled meanwhile keeps its "done" mark in memory until it can be written, so it is not handled again | one ERROR `the store failed` when it starts, one INFO `the store is open again` with `down_ms` when it ends; [`RedbStore::is_recovering`], [`RedbStore::recoveries`]; `store_unavailable` in [`Stats::answers`](crate::Stats::answers) |
//! | a record's bytes change on disk (after a clean stop redb checks nothing) | its CRC-32 fails when it is read: set aside with its raw bytes, never handed to the handler; the others carry on | an ERROR naming the record; [`RedbStore::quarantined`]; the record among the [rejected](Store::rejected) bodies, reason `corrupt stored record N` |
//! | a file damaged beyond redb's repair | [`RedbStore::open`] fails with [`StoreErrorKind::Corrupt`] | the receiver does not start |
//! | the sender hangs up while the store is slow | storing and handing on run in a task the request cannot cancel: stored means handled | nothing: its retry is a `duplicate` |
//! | PostgreSQL restarts or is unreachable | 503 within `PostgresOptions::timeout`; the pool reconnects by itself; "done" marks are retried | ERROR `could not store a notification`; `store_unavailable` |
//!
//!   The embedded store's memory is its page cache, bounded ([`RedbOptions::cache_size`],
//!   8 MiB by default): a 24-hour window of keys stays on disk, not in memory.
//! - **The seam.** [`Store`] is a trait (append with atomic de-duplication, claims of due
//!   records, outcomes with their attempts, dead letters, paged lists, pause, refused bodies,
//!   replay, prune, and for a shared store a lease): a backend of your own plugs in without
//!   touching the service. [`ErasedStore`] is its object-safe form, for a program that holds a
//!   store without being generic over it.
//!
//! # Refused bodies are bounded
//!
//! Refused bodies come from senders that got something wrong, in any number and size, so a
//! store keeps at most [`RefusedBodyLimits::max_bytes`] of them in all (64 MiB by default; each
//! counted with its record, at least 4 KiB, so that empty bodies are bounded too) and
//! none received more than [`RefusedBodyLimits::max_age`] ago (7 days; on PostgreSQL, stored
//! more than that ago), set with [`RedbOptions::keep_rejected`] (or
//! `PostgresOptions::keep_rejected`). A new refused body that takes the total over the cap
//! pushes the oldest out; those past the age go at the next refusal and at the hourly prune.
//! Each drop is counted ([`RedbStore::rejected_dropped`], `PostgresStore::rejected_dropped`)
//! and logged in a WARN line with how many, how many bytes and why. A body over the cap on its
//! own is not kept (the receiver still answers it; its log line says why). Lists page through
//! [`Store::rejected_page`] without reading a single body.
//!
//! # Files
//!
//! The embedded store holds every body, phone numbers included: [`RedbStore::open`] creates
//! its directory `0700` and keeps its file `0600` (set at every open). A directory you made
//! is left as it is, with a WARN once when other users may enter or read it.
//!
//! # One receiver, or several on PostgreSQL
//!
//! | setup | what it guarantees | what it costs |
//! | --- | --- | --- |
//! | one receiver, [`RedbStore`] (a database file and a `rejected/` folder in a directory) | acknowledged means fsynced on this machine's disk; a restart hands on what was pending | nothing to run beside it; but while the receiver is down the sender's 5 retries are all there is, and a dead disk takes its notifications with it |
//! | several receivers, `PostgresStore` (feature `postgres`) | acknowledged means committed (`synchronous_commit` on); a retry that lands on another receiver is still a duplicate; a receiver that dies loses its claims after the lease and the others handle its notifications | a database round trip per request and per handled notification; while PostgreSQL is unreachable every receiver answers 503 and recovers by itself |
//!
//! ```no_run
//! # #[cfg(feature = "postgres")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//!
//! use airudder_webhook::store::{PostgresOptions, PostgresStore};
//! use airudder_webhook::{Delivery, Receiver, auth::QueryToken, model::TaskNotification};
//!
//! let store = PostgresStore::connect_with(
//!     // postgres://user:password@host/db
//!     &std::env::var("AIRUDDER_DATABASE_URL").map_err(|_| "AIRUDDER_DATABASE_URL is not set")?,
//!     PostgresOptions::default()
//!         .schema("airudder")? // created and migrated at connect
//!         .lease(Duration::from_secs(15)), // a dead receiver's claims lapse after this
//! )
//! .await?;
//! let receiver = Receiver::builder(|d: Delivery<TaskNotification>| async move {
//!     // At least once: key your writes on task_id + call id.
//!     let _ = d.attempt();
//!     Ok::<_, std::io::Error>(())
//! })
//! .authorize(QueryToken::new([
//!     std::env::var("AIRUDDER_TOKEN").map_err(|_| "AIRUDDER_TOKEN is not set")?,
//! ])?)
//! .durable(store)
//! .build()?;
//! # drop(receiver);
//! # Ok(())
//! # }
//! ```
//!
//! How the receivers share the work:
//!
//! - **De-duplication across receivers.** An append is one `INSERT … ON CONFLICT DO NOTHING`
//!   on the key's unique index. Keys of handled notifications are pruned after the window,
//!   hourly, by every receiver.
//! - **Claims.** The receiver that stores a notification with a worker free claims it for a
//!   lease and hands it to its own handler at once. Every receiver claims
//!   (`FOR UPDATE SKIP LOCKED`, by due time) the due notifications nobody holds as its workers
//!   free up, at least once a second, and renews its claims (only what it has in memory) every
//!   third of the lease. A receiver cut off longer than the lease stands down; one that stops cleanly
//!   releases its claims, so the others take them at once.
//! - **Schema.** Tables live in their own schema, created and migrated at connect in one
//!   transaction under an advisory lock, so receivers may start at the same instant; a schema
//!   newer than the crate is refused.
//! - **Faults.** Every operation is bounded by `PostgresOptions::timeout` (5 s): an unreachable
//!   or restarting database answers 503, never 200; the pool replaces broken connections.
//! - **TLS.** `PostgresStore::connect` speaks plain TCP; `connect_config` takes any
//!   `tokio-postgres` TLS connector, so this crate pulls no TLS stack.
//!
//! # Completing in your own transaction
//!
//! When the [`PostgresStore`]'s tables live in the database your handler writes to (in a
//! schema of their own, [`PostgresOptions::schema`]), the handler can mark its notification
//! handled in the transaction that writes its results (feature `postgres`): the notification
//! is handled if and only if those writes commit, so that they are made once, however often
//! the notification is delivered.
//!
//! ```no_run
//! # #[cfg(feature = "postgres")]
//! # mod example {
//! use std::sync::Arc;
//!
//! use airudder_webhook::store::PostgresStore;
//! use airudder_webhook::{BoxError, Delivery, Receiver, auth::QueryToken};
//! use airudder_webhook::model::TaskNotification;
//! use tokio::sync::Mutex;
//!
//! /// One row per call, written in the transaction that marks the notification handled.
//! async fn handle(
//!     db: Arc<Mutex<tokio_postgres::Client>>, // a pool in practice
//!     delivery: Delivery<TaskNotification>,
//! ) -> Result<(), BoxError> {
//!     let mut client = db.lock().await;
//!     let tx = client.transaction().await?;
//!     for call in &delivery.details {
//!         tx.execute(
//!             "INSERT INTO team.calls (task_id, call_id) VALUES ($1, $2)",
//!             &[&&*delivery.task_id, &call.id],
//!         )
//!         .await?;
//!     }
//!     // Last, just before the commit. Refused when the notification is no longer this
//!     // receiver's: PostgreSQL aborts the transaction, and `?` returns before the commit.
//!     delivery.complete_in(&tx).await?;
//!     tx.commit().await?;
//!     Ok(())
//! }
//!
//! fn receiver(store: PostgresStore, db: tokio_postgres::Client, token: String)
//!     -> Result<Receiver, BoxError>
//! {
//!     let db = Arc::new(Mutex::new(db));
//!     Ok(Receiver::builder(move |d: Delivery<TaskNotification>| handle(Arc::clone(&db), d))
//!         .authorize(QueryToken::new([token])?)
//!         .durable(store) // the PostgresStore itself, on the database `db` writes to
//!         .build()?)
//! }
//! # }
//! ```
//!
//! - **Guarded by the claim.** The statement marks the notification handled only while it is
//!   pending under this receiver's claim. When it is not (handled already, or the receiver
//!   stalled past its [lease](PostgresOptions::lease) and another receiver took the
//!   notification over), the statement fails inside PostgreSQL, which aborts the transaction:
//!   the late handler's writes never land, even if it tries to commit anyway.
//!   [`complete_in`](crate::Delivery::complete_in) then returns
//!   [`StoreErrorKind::NotFound`]; return it, and the attempt counts as failed. From the
//!   statement to the commit the notification's row is locked (nobody else can take it
//!   over, and this receiver's lease renewals wait): complete last.
//! - **After the handler returns.** A notification completed in the handler's transaction is
//!   not marked again: the receiver adds the attempt to its history (when, how long, the
//!   reported status) and ends the claim. A handler that returns an error after its commit
//!   leaves the notification handled, the error in its history. A handler that did not
//!   complete in its transaction is marked as always, after it returns.
//! - **Other drivers.** [`Delivery::completion`](crate::Delivery::completion) gives the
//!   statement and its parameters ([`Completion`]); it fails by itself, so any driver gets the
//!   rollback. There is no `sqlx` feature (its build is too heavy for this crate's CI); with
//!   sqlx, bind the parameters:
//!
//!   ```text
//!   let done = delivery.completion()?;
//!   let mut tx = pool.begin().await?;
//!   // … the handler's writes, on `&mut *tx` …
//!   sqlx::query(done.sql())
//!       .bind(done.id()) // $1, bigint
//!       .bind(done.owner()) // $2, text
//!       .execute(&mut *tx)
//!       .await?; // refused: an error, and the transaction is aborted
//!   tx.commit().await?;
//!   ```
//! - **What it needs.** A durable receiver given the [`PostgresStore`] itself
//!   ([`durable`](crate::ReceiverBuilder::durable); a store behind another type, such as
//!   `Arc<dyn ErasedStore>`, gives its deliveries no claim), and a database role for the
//!   handler that may update the store's `notifications` table. A delivery with no claim (the
//!   memory or handled ack, the embedded store) answers [`StoreErrorKind::NotFound`].
//!
//! # In order, per key
//!
//! [`ordered()`](crate::ReceiverBuilder::ordered) (or
//! [`ordered_by(|event| key)`](crate::ReceiverBuilder::ordered_by)) hands the handler the
//! notifications of one key one at a time, in the order received: a contact's `ANSWERED`
//! before its `HANGUP`, a task's `calling` before its `finished`. The key each event type
//! documents ([`Event::order_key`](crate::Event::order_key)):
//!
//! | event | key |
//! | --- | --- |
//! | task notification, workflow call completion | `task_id` |
//! | workflow list completion, workflow status change | `workflow_id` |
//! | chatbot session end | `wfdetail_uuid`, else `call_id` |
//! | predictive dialer | `call:<callid>` (ContactStatus), `agent:<agentName>` (AgentStatus), `task:<taskId>` (TaskStatus) |
//! | raw event | none: give `ordered_by` your own |
//!
//! The store keeps the order, so it holds across retries, restarts and receivers sharing
//! PostgreSQL: each record carries its key, and a claim hands out only the first pending
//! record of each key; the next one waits on disk until that one is handled, or is a dead
//! letter that does not hold its key
//! ([`dead_letter_holds_order`](crate::ReceiverBuilder::dead_letter_holds_order), default: it
//! holds, until replayed or purged). Other keys go on in parallel within the workers. Lists
//! show each record's [`order_key`](RecordSummary::order_key) and, for one waiting its turn,
//! the record that [holds it back](RecordSummary::held_back_by); the gauge
//! `airudder_ordered_keys_held_back` counts keys stuck behind a failing first notification.
//!
//! The cost: the next notification of a key starts after the done mark of the one before it
//! is written, so one key moves at the pace of a store write and a claim (130 to 210 a second
//! on this project's 2-core test machine with the embedded store), while 40 keys drained as
//! fast as unordered. On PostgreSQL a claim checks each candidate for an earlier notification
//! of its key, so a deep backlog behind few keys slows every claim (`benches/README.md`).
//!
//! # Several callbacks, one store
//!
//! An app that receives several of Airudder's callbacks (the task notification, a workflow's,
//! the chatbot's, raw ones) mounts a receiver for each, each with its handler and event type,
//! and gives them all the one store:
//!
//! - **Each record knows its kind**: the name of the receiver that stored it
//!   ([`ReceiverBuilder::name`](crate::ReceiverBuilder::name), by default the event's name:
//!   `task_notification`, `chatbot_session_end`, …), in [`Envelope::kind`]. Receivers sharing a
//!   store need distinct names. A record stored before kinds existed is a task notification's
//!   ([`DEFAULT_KIND`]).
//! - **Each receiver hands on only its own**: it [claims](Store::claim) only the records of
//!   its kind, and
//!   [`Receiver::replay`](crate::Receiver::replay) refuses another kind's record, naming the
//!   kind to replay it with.
//! - **Duplicates stay within a kind**: the de-duplication key of every kind but the default is
//!   mixed with the kind, so that one body at two paths is two notifications.
//! - **The embedded store** is shared by cloning the [`RedbStore`] (one database, one writer);
//!   **PostgreSQL** by giving each receiver
//!   [`PostgresStore::for_another_receiver`](PostgresStore::for_another_receiver): the same
//!   pool, claims of its own, so that one receiver's shutdown never releases another's claims.

mod claims;
mod erased;
mod error;
#[cfg(feature = "postgres")]
mod postgres;
mod query;
mod record;
mod redb;
mod rejected;
mod summary;
mod traits;

pub(crate) use self::claims::Claims;
pub use self::erased::{BoxFuture, ErasedStore};
pub use self::error::{StoreError, StoreErrorKind};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use self::postgres::{Completion, PostgresOptions, PostgresStore};
pub use self::query::{
    Attempt, AttemptOutcome, MAX_ERROR_LEN, MAX_HISTORY, RecordPage, RecordQuery, RecordSummary,
    push_attempt,
};
pub(crate) use self::record::millis;
pub use self::record::{
    Appended, DEFAULT_KIND, Envelope, NewRecord, Record, RecordId, RecordState, kind_key,
};
pub use self::redb::{RedbOptions, RedbStore};
pub(crate) use self::rejected::RejectedDrops;
pub use self::rejected::{RefusedBody, RefusedBodyLimits, RefusedBodySummary};
#[allow(deprecated)]
pub use self::rejected::{RejectedLimits, RejectedRecord, RejectedSummary};
pub use self::summary::StoreSummary;
pub use self::traits::Store;
