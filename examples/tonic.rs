//! Run with: cargo run --example tonic
//!
//! The receiver as a Layer on a tonic server, beside a gRPC service (the standard health
//! service). The sender posts over HTTP/1.1, so the server must `accept_http1(true)`.
//! Listens on `AIRUDDER_LISTEN` (default `127.0.0.1:3000`); prints one line per handled
//! notification. SIGTERM or Ctrl-C stops the server, then drains the receiver.

use std::convert::Infallible;
use std::time::Duration;

use airudder_webhook::model::TaskNotification;
use airudder_webhook::{Delivery, Receiver};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let receiver = Receiver::builder(|delivery: Delivery<TaskNotification>| async move {
        println!(
            "handled task {} with {} calls",
            delivery.task_id,
            delivery.details.len()
        );
        Ok::<_, Infallible>(())
    })
    // This example shows the mounting; see examples/receiver.rs for a token in the URL.
    .allow_unauthenticated()
    .build()?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;

    let listen = std::env::var("AIRUDDER_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!(
        "listening on http://{}/airudder/task",
        listener.local_addr()?
    );

    let shutdown = receiver.shutdown_handle();
    Server::builder()
        .accept_http1(true)
        .layer(receiver.layer("/airudder/task"))
        .add_service(health_service)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener),
            airudder_webhook::shutdown_signal(),
        )
        .await?;
    let report = shutdown.shutdown(Duration::from_secs(30)).await;
    eprintln!(
        "stopped: {} handled, {} left unhandled",
        report.handled, report.left
    );
    Ok(())
}
