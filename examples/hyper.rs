//! Run with: cargo run --example hyper
//!
//! The receiver as a tower Layer in front of a plain hyper 1 server: the layer answers
//! `/airudder/task`, every other request reaches the server's own service. Listens on
//! `AIRUDDER_LISTEN` (default `127.0.0.1:3000`); prints one line per handled notification.
//! A connection that sends no request head within 10 s is closed. SIGTERM or Ctrl-C stops
//! accepting connections, lets the open ones finish, then drains the
//! receiver.

use std::convert::Infallible;
use std::time::Duration;

use airudder_webhook::model::TaskNotification;
use airudder_webhook::{Delivery, Receiver};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower::ServiceBuilder;

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

    // The server's own routes; the layer takes /airudder/task before them.
    let app = ServiceBuilder::new()
        .layer(receiver.layer("/airudder/task"))
        .service_fn(|request: Request<Incoming>| async move {
            let (status, body) = match request.uri().path() {
                "/health" => (200, "ok"),
                _ => (404, "not found"),
            };
            let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
            *response.status_mut() = hyper::StatusCode::from_u16(status).expect("a valid status");
            Ok::<_, Infallible>(response)
        });

    let listen = std::env::var("AIRUDDER_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!(
        "listening on http://{}/airudder/task",
        listener.local_addr()?
    );
    let shutdown = receiver.shutdown_handle();
    let connections = GracefulShutdown::new();
    let mut signal = std::pin::pin!(airudder_webhook::shutdown_signal());
    // A head (the first, or the next on a kept-alive connection) within 10 s, or the
    // connection is closed: idle and trickling clients cannot hold the process' files.
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => accepted?.0,
            () = &mut signal => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                eprintln!("connection error: {err}");
            }
        });
    }
    // The open connections finish their requests; then what was accepted is handled.
    connections.shutdown().await;
    let report = shutdown.shutdown(Duration::from_secs(30)).await;
    eprintln!(
        "stopped: {} handled, {} left unhandled",
        report.handled, report.left
    );
    Ok(())
}
