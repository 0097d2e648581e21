//! Run with: cargo run --example receiver
//!
//! An axum app that receives Airudder task notifications at `POST /airudder/task` and prints
//! each one it handles as one line of JSON on stdout. Nothing else goes to stdout; logs go to
//! stderr (`RUST_LOG` sets the level, default `info`).
//!
//! - `AIRUDDER_LISTEN`: the address to listen on (default `127.0.0.1:3000`).
//! - `AIRUDDER_ACK`: `durable` (default) answers 200 once the notification is stored and
//!   fsynced in `AIRUDDER_DATA_DIR` (default `./airudder-data`), redelivers after a restart and
//!   de-duplicates; `memory` answers once it is queued in memory; `handled` once it is printed.
//! - `AIRUDDER_DATABASE_URL`: when set (`postgres://user:password@host:port/database`), the
//!   durable ack stores in PostgreSQL instead, shared with every receiver given the same URL
//!   (needs `--features postgres`). `AIRUDDER_DATABASE_SCHEMA` names the schema (default
//!   `airudder`); `AIRUDDER_LEASE_SECS` how long a dead receiver's claims last (default 15).
//! - `AIRUDDER_HANDLER_DELAY_MS`: the handler waits this long before it prints, as a slow
//!   handler would (default 0): the 200 does not wait for it. `2-20`: a delay drawn at random
//!   between the two for each notification.
//! - `AIRUDDER_ORDERED=task_notification`: a task's notifications reach the handler one at a
//!   time, in the order received (ordered by `task_id`, kept by the store across restarts).
//! - `AIRUDDER_TOKEN`: when set, a request must carry `?token=<value>` (configure Airudder's
//!   URL so); when unset the receiver runs open, and says so on stderr.
//!
//! Ctrl-C or SIGTERM stops accepting, finishes the requests in flight and drains the queue;
//! with the durable ack, what is not printed yet stays stored for the next start.
//!
//! The same command inspects and repairs the store, printing JSON lines (with the embedded
//! store, stop the receiver first: the file is locked while it runs):
//!
//! ```text
//! cargo run --example receiver -- dead-letters        # notifications the handler gave up on
//! cargo run --example receiver -- rejected            # bodies refused with a 4xx
//! cargo run --example receiver -- show ID             # one stored notification, body included
//! cargo run --example receiver -- show-rejected ID    # one refused body
//! cargo run --example receiver -- replay ID           # a dead letter: handled at the next start
//! cargo run --example receiver -- replay-rejected ID  # a refused body that is valid now
//! ```

use std::io::{IsTerminal, Write};
use std::time::Duration;

use airudder_webhook::Event;
use airudder_webhook::auth::QueryToken;
use airudder_webhook::model::TaskNotification;
use airudder_webhook::store::{
    Appended, NewRecord, Record, RedbStore, RefusedBody, RefusedBodySummary, Store,
};
#[cfg(feature = "postgres")]
use airudder_webhook::store::{PostgresOptions, PostgresStore};
use airudder_webhook::{AckPolicy, Delivery, Receiver};
use axum::Router;
use axum::routing::get;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let listen = std::env::var("AIRUDDER_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let data_dir = std::env::var("AIRUDDER_DATA_DIR").unwrap_or_else(|_| "./airudder-data".into());
    let database_url = std::env::var("AIRUDDER_DATABASE_URL").ok();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.is_empty() {
        return match &database_url {
            Some(url) => admin(postgres(url).await?, &args).await,
            None => admin(RedbStore::open(&data_dir)?, &args).await,
        };
    }

    // `N`, or `A-B`: a delay drawn at random between the two for each notification.
    let delay = match std::env::var("AIRUDDER_HANDLER_DELAY_MS") {
        Ok(ms) => match ms.split_once('-') {
            Some((low, high)) => (low.trim().parse()?, high.trim().parse()?),
            None => (ms.parse()?, ms.parse()?),
        },
        Err(_) => (0, 0),
    };
    if delay.0 > delay.1 {
        return Err("AIRUDDER_HANDLER_DELAY_MS: write the shorter delay first, as in 2-20".into());
    }
    let builder = Receiver::builder(move |delivery| print_notification(delivery, delay));
    let builder = match std::env::var("AIRUDDER_ACK").as_deref() {
        Err(_) | Ok("durable") => match &database_url {
            Some(url) => builder.durable(postgres(url).await?),
            None => builder.durable(RedbStore::open(&data_dir)?),
        },
        Ok("memory") => builder.ack(AckPolicy::Memory),
        Ok("handled") => builder.ack(AckPolicy::handled(Duration::from_secs(10))),
        Ok(other) => {
            return Err(
                format!("AIRUDDER_ACK={other:?}: use `durable`, `memory` or `handled`").into(),
            );
        }
    };
    let builder = match std::env::var("AIRUDDER_ORDERED").as_deref() {
        Err(_) | Ok("") => builder,
        Ok("task_notification") => builder.ordered(),
        Ok(other) => {
            return Err(format!(
                "AIRUDDER_ORDERED={other:?}: this receiver's only kind is task_notification"
            )
            .into());
        }
    };
    let builder = match std::env::var("AIRUDDER_TOKEN") {
        Ok(token) => builder.authorize(QueryToken::new([token])?),
        Err(_) => {
            say("AIRUDDER_TOKEN is not set: running open, without authentication");
            builder.allow_unauthenticated()
        }
    };
    let receiver = builder.build()?;
    let shutdown = receiver.shutdown_handle();
    let app = Router::new()
        .route_service("/airudder/task", receiver)
        .route("/health", get(|| async { "ok" }));

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    say(&format!(
        "listening on http://{}/airudder/task",
        listener.local_addr()?
    ));
    axum::serve(listener, app)
        .with_graceful_shutdown(airudder_webhook::shutdown_signal())
        .await?;

    let report = shutdown.shutdown(Duration::from_secs(30)).await;
    say(&format!(
        "stopped: {} handled, {} failed, {} left unhandled",
        report.handled, report.failed, report.left
    ));
    Ok(())
}

/// The handler: one line of JSON per notification on stdout.
async fn print_notification(
    delivery: Delivery<TaskNotification>,
    (low, high): (u64, u64),
) -> Result<(), std::io::Error> {
    use std::hash::BuildHasher;
    let ms = low + std::collections::hash_map::RandomState::new().hash_one(0u8) % (high - low + 1);
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut line = serde_json::to_vec(delivery.event())?;
    line.push(b'\n');
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&line)?;
    stdout.flush()
}

/// The PostgreSQL store, shared by every receiver given the same URL and schema.
#[cfg(feature = "postgres")]
async fn postgres(url: &str) -> Result<PostgresStore, Box<dyn std::error::Error>> {
    let mut options = PostgresOptions::default();
    if let Ok(schema) = std::env::var("AIRUDDER_DATABASE_SCHEMA") {
        options = options.schema(schema)?;
    }
    if let Ok(secs) = std::env::var("AIRUDDER_LEASE_SECS") {
        options = options.lease(Duration::from_secs(secs.parse()?));
    }
    Ok(PostgresStore::connect_with(url, options).await?)
}

#[cfg(not(feature = "postgres"))]
async fn postgres(_url: &str) -> Result<RedbStore, Box<dyn std::error::Error>> {
    Err("AIRUDDER_DATABASE_URL needs the postgres feature: \
         cargo run --features postgres --example receiver"
        .into())
}

/// The offline subcommands: inspect and repair the store.
async fn admin(store: impl Store, args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let when = match store.lease() {
        Some(_) => "a running receiver claims it within a second",
        None => "the receiver hands it to the handler at its next start",
    };
    let id = || -> Result<u64, Box<dyn std::error::Error>> {
        Ok(args.get(1).ok_or("this command takes an ID")?.parse()?)
    };
    let find_rejected = async |id: u64| -> Result<RefusedBody, Box<dyn std::error::Error>> {
        Ok(store
            .get_rejected(id)
            .await?
            .ok_or("no refused body with this ID")?)
    };
    let mut out = std::io::stdout().lock();
    match args[0].as_str() {
        "dead-letters" => {
            for record in store.dead_letters().await? {
                writeln!(out, "{}", summary(&record))?;
            }
        }
        "rejected" => {
            // A page at a time, without the bodies: the list stays cheap however many there are.
            let mut after = 0;
            loop {
                let page = store.rejected_page(after, 100).await?;
                let Some(last) = page.last() else { break };
                after = last.id;
                for rejected in &page {
                    writeln!(out, "{}", rejected_json(rejected))?;
                }
            }
        }
        "show" => {
            let record = store
                .get(id()?)
                .await?
                .ok_or("no stored notification with this ID")?;
            let mut json = summary(&record);
            json["body"] = serde_json::from_slice(&record.body)
                .unwrap_or_else(|_| String::from_utf8_lossy(&record.body).into());
            writeln!(out, "{json}")?;
        }
        "show-rejected" => {
            let rejected = find_rejected(id()?).await?;
            let mut json = rejected_json(&RefusedBodySummary::from(rejected.clone()));
            json["body"] = String::from_utf8_lossy(&rejected.body).into();
            writeln!(out, "{json}")?;
        }
        "replay" => {
            let record = store.replay(id()?).await?;
            writeln!(out, "{}", summary(&record))?;
            eprintln!("pending again: {when}");
        }
        "replay-rejected" => {
            let rejected = find_rejected(id()?).await?;
            let notification: TaskNotification = airudder_webhook::decode(&rejected.body)?;
            let record = NewRecord::new(
                notification.dedup_key(),
                rejected.body.clone(),
                rejected.envelope.clone(),
            );
            let stored = match store.append(record).await? {
                Appended::Stored(new) | Appended::Duplicate(new) => new,
            };
            store.remove_rejected(rejected.id).await?;
            writeln!(
                out,
                "{}",
                serde_json::json!({ "rejected": rejected.id, "stored": stored })
            )?;
            eprintln!("stored: {when}");
        }
        other => {
            return Err(
                format!("unknown command {other:?}: see the head of examples/receiver.rs").into(),
            );
        }
    }
    // What this command claimed (a replay) goes to the running receivers at once.
    store.release().await?;
    Ok(())
}

fn summary(record: &Record) -> serde_json::Value {
    let task_id = airudder_webhook::decode::<TaskNotification>(&record.body)
        .map(|n| n.task_id)
        .ok();
    serde_json::json!({
        "id": record.id,
        "state": format!("{:?}", record.state).to_lowercase(),
        "attempts": record.attempts,
        "last_error": record.last_error,
        "received_at_ms": record.envelope.received_at_ms,
        "peer": record.envelope.peer,
        "task_id": task_id,
        "bytes": record.body.len(),
    })
}

fn rejected_json(rejected: &RefusedBodySummary) -> serde_json::Value {
    serde_json::json!({
        "id": rejected.id,
        "status": rejected.status,
        "reason": rejected.reason,
        "received_at_ms": rejected.envelope.received_at_ms,
        "bytes": rejected.bytes,
    })
}

/// A line on stderr; a closed stderr is no reason to fail.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
