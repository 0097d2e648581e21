//! Run with: cargo run --features postgres --example postgres_once
//!
//! Exactly once with PostgreSQL: any number of these receivers share one database, and the
//! handler writes its results in the transaction that marks the notification handled
//! ([`Delivery::complete_in`]). The rows commit if and only if the notification is marked
//! handled, so each call is written once, however often its notification is delivered (a
//! receiver killed before or after its commit, a claim taken over, a retry of Airudder's).
//!
//! The handler writes one row per call of each task notification to the team's own table
//! (created if missing), beside the store's tables (in their own schema) in the same database.
//!
//! - `AIRUDDER_DATABASE_URL` (required): `postgres://user:password@host:port/database`.
//! - `AIRUDDER_DATABASE_SCHEMA`: the store's schema (default `airudder`).
//! - `AIRUDDER_LEASE_SECS`: how long a dead receiver's claims last (default 15).
//! - `AIRUDDER_TEAM_TABLE`: the team's table (default `team_calls`).
//! - `AIRUDDER_LISTEN`: the address to listen on (default `127.0.0.1:3000`).
//! - `RUST_LOG`: the log level on stderr (default `info`).
//!
//! For crash tests only (tests/store/once.rs runs two of these and SIGKILLs them):
//!
//! - `AIRUDDER_COMMIT_DELAY_MS`: wait a random time up to this long between the writes and
//!   the commit, so that a kill finds transactions open.
//! - `AIRUDDER_CRASH_AFTER_COMMIT`: the probability (0 to 1) that the process aborts right
//!   after a commit, before the receiver hears that the handler returned. It says
//!   `crashing after the commit of <task id>` on stderr first.
//!
//! This example runs open, without authentication: see examples/receiver.rs for a token in
//! the URL. Ctrl-C or SIGTERM stops it; what is not handled yet stays stored for the others.

use std::hash::{BuildHasher, RandomState};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use airudder_webhook::model::TaskNotification;
use airudder_webhook::store::{PostgresOptions, PostgresStore};
use airudder_webhook::{BoxError, Delivery, Receiver};
use axum::Router;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let url = std::env::var("AIRUDDER_DATABASE_URL")
        .map_err(|_| "set AIRUDDER_DATABASE_URL=postgres://user:password@host:port/database")?;
    let listen = std::env::var("AIRUDDER_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let table: Arc<str> = env_or("AIRUDDER_TEAM_TABLE", "team_calls").into();
    let chaos = Chaos {
        delay_ms: env_or("AIRUDDER_COMMIT_DELAY_MS", "0").parse()?,
        crash: env_or("AIRUDDER_CRASH_AFTER_COMMIT", "0").parse()?,
    };

    // The store: its tables in a schema of their own, in the database the handler writes to.
    let mut options = PostgresOptions::default();
    if let Ok(schema) = std::env::var("AIRUDDER_DATABASE_SCHEMA") {
        options = options.schema(schema)?;
    }
    if let Ok(secs) = std::env::var("AIRUDDER_LEASE_SECS") {
        options = options.lease(Duration::from_secs(secs.parse()?));
    }
    let store = PostgresStore::connect_with(&url, options).await?;

    // The team's own pool and table.
    let manager = Manager::from_config(
        url.parse()?,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager).max_size(8).build()?;
    // No unique key on (task_id, call_index), on purpose: the crash test counts the rows, and
    // a call written twice must show as two rows rather than as a refused insert. In
    // production, add `PRIMARY KEY (task_id, call_index)` as a second line of defence.
    pool.get()
        .await?
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                 task_id TEXT NOT NULL,
                 call_index INTEGER NOT NULL,
                 call_id BIGINT NOT NULL,
                 written_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        ))
        .await?;

    let receiver = Receiver::builder(move |delivery| {
        handle(pool.clone(), Arc::clone(&table), chaos, delivery)
    })
    .allow_unauthenticated()
    // The PostgresStore itself: its deliveries carry the claim that `complete_in` checks.
    .durable(store)
    .build()?;
    let shutdown = receiver.shutdown_handle();
    let app = Router::new().route_service("/airudder/task", receiver);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!(
        "listening on http://{}/airudder/task",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(airudder_webhook::shutdown_signal())
        .await?;
    let report = shutdown.shutdown(Duration::from_secs(30)).await;
    eprintln!(
        "stopped: {} handled, {} failed, {} left for the other receivers",
        report.handled, report.failed, report.left
    );
    Ok(())
}

/// The handler: one row per call, and the completion, in one transaction.
async fn handle(
    pool: Pool,
    table: Arc<str>,
    chaos: Chaos,
    delivery: Delivery<TaskNotification>,
) -> Result<(), BoxError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let insert = tx
        .prepare_cached(&format!(
            "INSERT INTO {table} (task_id, call_index, call_id) VALUES ($1, $2, $3)"
        ))
        .await?;
    for (index, call) in delivery.details.iter().enumerate() {
        let index = i32::try_from(index)?;
        tx.execute(&insert, &[&&*delivery.task_id, &index, &call.id])
            .await?;
    }
    chaos.pause().await;
    // Last, just before the commit. When the notification is no longer this receiver's
    // (handled already, or taken over after this receiver stalled past its lease), PostgreSQL
    // aborts the transaction and `?` returns before the commit: the rows above never land.
    delivery.complete_in(&*tx).await?;
    tx.commit().await?;
    chaos.maybe_crash(&delivery.task_id);
    Ok(())
}

/// Crash-test knobs: a pause before the commit, an abort right after it.
#[derive(Clone, Copy)]
struct Chaos {
    delay_ms: u64,
    crash: f64,
}

impl Chaos {
    async fn pause(self) {
        if self.delay_ms > 0 {
            let ms = RandomState::new().hash_one(0) % (self.delay_ms + 1);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    fn maybe_crash(self, task_id: &str) {
        // A uniform draw in [0, 1), from std's randomly keyed hasher.
        let draw = (RandomState::new().hash_one(task_id) >> 11) as f64 / (1u64 << 53) as f64;
        if draw < self.crash {
            eprintln!("crashing after the commit of {task_id}");
            std::process::abort();
        }
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}
