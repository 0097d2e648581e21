//! Run with: cargo run --example receiver
//!
//! An axum app that receives Airudder task notifications at `POST /airudder/task` and prints
//! each one it handles as one line of JSON on stdout. Nothing else goes to stdout; logs go to
//! stderr (`RUST_LOG` sets the level, default `info`).
//!
//! - `AIRUDDER_LISTEN`: the address to listen on (default `127.0.0.1:3000`).
//! - `AIRUDDER_ACK`: `memory` (default) answers 200 once the notification is queued;
//!   `handled` answers once it is printed.
//! - `AIRUDDER_TOKEN`: when set, a request must carry `?token=<value>` (configure Airudder's
//!   URL so); when unset the receiver runs open, and says so on stderr.
//!
//! Ctrl-C or SIGTERM stops accepting, finishes the requests in flight and drains the queue.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use airudder_webhook::auth::QueryToken;
use airudder_webhook::model::TaskNotification;
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
    let ack = match std::env::var("AIRUDDER_ACK").as_deref() {
        Err(_) | Ok("memory") => AckPolicy::Memory,
        Ok("handled") => AckPolicy::handled(Duration::from_secs(10)),
        Ok(other) => {
            return Err(format!("AIRUDDER_ACK={other:?}: use `memory` or `handled`").into());
        }
    };

    let builder = Receiver::builder(print_notification).ack(ack);
    let builder = match std::env::var("AIRUDDER_TOKEN") {
        Ok(token) => builder.authorize(QueryToken::new([token])?),
        Err(_) => {
            eprintln!("AIRUDDER_TOKEN is not set: running open, without authentication");
            builder.allow_unauthenticated()
        }
    };
    let receiver = builder.build()?;
    let shutdown = receiver.shutdown_handle();
    let app = Router::new()
        .route_service("/airudder/task", receiver)
        .route("/health", get(|| async { "ok" }));

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!(
        "listening on http://{}/airudder/task",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(stop_signal())
        .await?;

    let report = shutdown.shutdown(Duration::from_secs(30)).await;
    eprintln!(
        "stopped: {} handled, {} failed, {} left unhandled",
        report.handled, report.failed, report.left
    );
    Ok(())
}

/// The handler: one line of JSON per notification on stdout.
async fn print_notification(delivery: Delivery<TaskNotification>) -> Result<(), std::io::Error> {
    let mut line = serde_json::to_vec(delivery.event())?;
    line.push(b'\n');
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&line)?;
    stdout.flush()
}

async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler can be installed");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("stop signal received: finishing requests in flight, draining the queue");
}
