//! Receive [Airudder](https://www.airudder.com)'s task notifications inside any tower-based
//! server: axum, hyper or tonic.
//!
//! When the calls of a task end, Airudder POSTs a JSON task notification to your URL. It wants
//! a fast `200 {}`, retries anything else every minute at most 5 times, then drops the
//! notification for good. This crate answers the sender, decodes the body into a typed
//! [`TaskNotification`](model::TaskNotification), and hands it to your async handler on
//! worker tasks, off the request path. Airudder's other callbacks (workflow, chatbot, predictive
//! dialer, and raw ones whose bodies are not public) are event types of their own on the same
//! machinery: see [`model`].
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use airudder_webhook::{Delivery, Receiver, auth::QueryToken, model::TaskNotification};
//! use axum::Router;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let receiver = Receiver::builder(|delivery: Delivery<TaskNotification>| async move {
//!         for call in &delivery.details {
//!             // act on call.result, call.result_label, call.question_answer …
//!             let _ = call;
//!         }
//!         Ok::<_, std::io::Error>(())
//!     })
//!     // Configure Airudder to post to https://your.host/airudder/task?token=<AIRUDDER_TOKEN>.
//!     .authorize(QueryToken::new([
//!         std::env::var("AIRUDDER_TOKEN").map_err(|_| "AIRUDDER_TOKEN is not set")?,
//!     ])?)
//!     .build()?;
//!     let shutdown = receiver.shutdown_handle();
//!
//!     let app = Router::new().route_service("/airudder/task", receiver);
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     // On SIGTERM or Ctrl-C the server finishes its requests and returns...
//!     axum::serve(listener, app)
//!         .with_graceful_shutdown(airudder_webhook::shutdown_signal())
//!         .await?;
//!     // ...then the notifications already answered 200 are handled before the process exits.
//!     shutdown.shutdown(Duration::from_secs(30)).await;
//!     Ok(())
//! }
//! ```
//!
//! # Serving it: timeouts for slow and idle clients
//!
//! `axum::serve` sets no timeout on a request's head: a connection that sends nothing, or its
//! head a byte at a time, stays open for good, and about a thousand of them use up the
//! process' files, after which Airudder's notifications go unanswered. hyper's HTTP/1 server
//! closes them once it has a timer (without one, `header_read_timeout` does nothing); the
//! deadline covers every request's head, the first on a connection or the next on a kept-alive
//! one, so it is the idle timeout too. Raise the file limit as well (systemd's `LimitNOFILE`),
//! and with the IP allow-list insert [`auth::PeerAddr`] in each request.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use hyper::server::conn::http1;
//! use hyper_util::rt::{TokioIo, TokioTimer};
//! use hyper_util::server::graceful::GracefulShutdown;
//! use hyper_util::service::TowerToHyperService;
//!
//! async fn serve(app: axum::Router, listener: tokio::net::TcpListener) {
//!     let mut http = http1::Builder::new();
//!     http.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(10));
//!     let connections = GracefulShutdown::new();
//!     let mut stop = std::pin::pin!(airudder_webhook::shutdown_signal());
//!     loop {
//!         let stream = tokio::select! {
//!             accepted = listener.accept() => match accepted {
//!                 Ok((stream, _peer)) => stream,
//!                 // Out of files: let some close rather than spin.
//!                 Err(_) => {
//!                     tokio::time::sleep(Duration::from_millis(100)).await;
//!                     continue;
//!                 }
//!             },
//!             () = &mut stop => break,
//!         };
//!         let service = TowerToHyperService::new(app.clone());
//!         tokio::spawn(connections.watch(http.serve_connection(TokioIo::new(stream), service)));
//!     }
//!     // The requests in flight are answered; then shut the receiver down, as above.
//!     connections.shutdown().await;
//! }
//! ```
//!
//! # Where each concern lives
//!
//! The path of one notification, in the order it takes:
//!
//! - [`layer`]: the receiver as a [`Layer`](tower_layer::Layer) that answers its path and
//!   passes the rest on (for hyper and tonic; in axum, `route_service` mounts the
//!   [`Receiver`] itself).
//! - [`receiver`]: the tower [`Service`](tower_service::Service), its status table, its ack
//!   policies, its builder and [defaults](receiver::defaults); admission on the request head,
//!   body reading under the limits, the response future.
//! - [`auth`]: who may post, decided before the body is read; a file per check.
//! - intake (private): bytes, then the [body hook](BodyHook), then the decoder ([`model`],
//!   [`Event`]), then the record for the store; the one path for requests, redelivery, replay
//!   and the recovery of refused bodies.
//! - [`store`]: the durable ack: stored before the 200, redelivered, de-duplicated; embedded
//!   (redb) or PostgreSQL.
//! - dispatch (private): the queue, the workers, retries ([`RetryPolicy`]), the background
//!   tasks, and shutdown ([`ShutdownHandle`], [`shutdown_signal`]).
//! - [`HandleNotification`]: your handler; a closure works. [`OnRejected`] and [`OnFailed`]:
//!   where refused bodies and given-up notifications go.
//! - [`stats`]: every answer counted by status and reason, every notification by its fate;
//!   [`Rejection`] is the one table of refusals behind both.
//! - meters (private, feature `metrics`): the same outcomes through the `metrics` facade; the
//!   gauges are sampled in the background by the receiver (`receiver/gauges.rs`).
//! - `test_util` (feature `test-util`): fixtures, a recording handler, `Delivery::for_test` and
//!   a `Sender` that posts as Airudder does, for your tests.
//!
//! # Observability
//!
//! Each request runs in a `tracing` span `airudder_notification` with `event`, `task_id`,
//! `calls`, `status`, `outcome` (`accepted`, `duplicate`, or the refusal's code) and
//! `answer_us`, and ends with one event (INFO for a 200, DEBUG otherwise); every refusal is
//! also logged at WARN, at most once a second for each code, with how many were left out. Each
//! notification handed to the handler runs in a span `airudder_delivery` with `event`,
//! `task_id`, `record` and `attempt`: one span for a stored notification's attempt, and with
//! the memory ack one span for a notification and its in-memory retries (`attempt` the
//! latest). A failed attempt is logged at WARN at most once every 10 s for each receiver, with
//! how many were not (`suppressed`); the rest at DEBUG.
//! No log line holds a phone number, a customer variable or a secret. What a log line takes
//! from a request (the task id, a refusal's member path) goes through [`LogSafe`]: control
//! characters escaped, so that none starts a forged line or drives a terminal, and cut after
//! 256 bytes; wrap what your handler logs of a notification in it too.
//!
//! ## Metrics (feature `metrics`)
//!
//! The receiver records through the [`metrics`](https://docs.rs/metrics) facade into the
//! recorder installed when [`build`](ReceiverBuilder::build) runs (the global one, or a local
//! one around the call): install it first. Handles are registered once, at build; a request
//! costs one counter increment and one histogram sample. Every series has the label
//! `receiver` ([`ReceiverBuilder::name`], default `task_notification`).
//!
//! | name | kind | labels | what |
//! | --- | --- | --- | --- |
//! | `airudder_requests_total` | counter | `status`, `outcome` | every answer: `accepted`, `duplicate`, or the refusal's code |
//! | `airudder_answer_seconds` | histogram | `status` | from the request to its answer |
//! | `airudder_handler_attempts_total` | counter | `result`: `ok`, `error`, `panic`, `timeout` | each handler attempt |
//! | `airudder_handler_seconds` | histogram | | each handler attempt's duration |
//! | `airudder_dead_letters_total` | counter | | notifications given up on (every attempt failed, or [`GiveUp`]) |
//! | `airudder_redeliveries_total` | counter | | stored notifications handed on again after a restart or a lapsed claim |
//! | `airudder_queue_depth`, `airudder_handlers_running` | gauge | | waiting for a worker; running |
//! | `airudder_bytes_in_flight` | gauge | | body bytes held, against `max_bytes_in_flight` |
//! | `airudder_ready` | gauge | | 1 while accepting notifications |
//! | `airudder_store_pending`, `airudder_store_dead_letters` | gauge | | the store's counts ([`Store::summary`](store::Store::summary)), of the whole store: receivers sharing one report the same |
//! | `airudder_store_oldest_pending_seconds` | gauge | | the oldest pending notification's age |
//! | `airudder_store_recovering` | gauge | | 1 while the store is down (reopening, or not answering) |
//! | `airudder_store_recoveries_total` | counter | | the embedded store's reopens after an I/O error |
//! | `airudder_ordered_keys_held_back` | gauge | | of an [ordered](ReceiverBuilder::ordered_by) receiver: keys whose notifications wait behind a first one that failed |
//!
//! The gauges are sampled in the background every
//! [`metrics_interval`](ReceiverBuilder::metrics_interval) (5 s), never on the request path.
//! Without the feature, nothing is recorded and nothing is compiled in.
//!
//! # Why each dependency
//!
//! | crate | why |
//! | --- | --- |
//! | `tower-service`, `tower-layer`, `http`, `http-body` | the traits and types every tower server shares, without the rest of tower |
//! | `http-body-util`, `bytes` | reading a body frame by frame (private), without copying a one-chunk body |
//! | `compact_str` | short members stored inline, behind `model::Text` |
//! | `serde`, `serde_json` | decoding; `float_roundtrip` so a decimal in `variables` serializes back exactly |
//! | `serde_path_to_error` | the member path of a refusal (`details[3].duration`), on the error path only |
//! | `simdutf8` | the body's one UTF-8 check, 32 bytes at a time (pure Rust, no dependencies) |
//! | `tokio` (`rt`, `sync`, `time`, `macros`, `signal`) | the queue, the workers, timeouts, and `shutdown_signal` |
//! | `tracing` | spans and events, zero cost when nobody listens |
//! | `jiff` (no default features) | the sender's timestamp formats, without a time-zone database |
//! | `redb` | the embedded store: one database file (and a file per kept refused body), atomic de-duplication, checksums (chosen by measurement: `benches/README.md`) |
//! | `sha2`, `crc32fast` | the de-duplication key (SHA-256 of the canonical notification); each stored record's checksum |
//! | `pin-project-lite` | the response futures and bodies, without `unsafe` |
//! | `subtle` | constant-time comparison of tokens and passwords |
//! | `ipnet` | parsing and matching IPv4 and IPv6 CIDRs for the allow-list |
//! | `base64`, `form_urlencoded` | decoding `Authorization: Basic`; the token from the query string |
//! | `axum`, `tonic` (optional features) | only to read their connect-info extension for the allow-list |
//! | `metrics` (feature `metrics`) | the facade every Rust metrics exporter plugs into; handles registered once at build |
//! | `tokio-postgres`, `deadpool-postgres` (feature `postgres`) | the PostgreSQL store: the pure-Rust driver, a pool with timeouts and a statement cache; 95 crates in all against about 110 for sqlx alone |
//!
//! The relay alone adds clap (flags and variables), toml (its file), reqwest with rustls on ring
//! (the HTTP client, https without OpenSSL), hmac (signatures), humantime (durations), fastrand
//! (jitter), metrics-exporter-prometheus (the text format, no listener of its own) and
//! tracing-subscriber: none of them reaches a library user. It also names hyper, hyper-util
//! and http-body, which axum brings already, to serve its listeners with a header timeout. Dev-only: axum, hyper, hyper-util,
//! tonic, tonic-health, criterion, metrics-util (the debugging recorder), metrics-exporter-prometheus
//! (bench row (c3)), peak_alloc, proptest, tower, tracing-subscriber.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
pub mod model;
pub mod auth;
pub mod body;
mod decode;
mod dispatch;
mod event;
mod handler;
mod hooks;
mod intake;
pub mod layer;
mod meters;
pub mod receiver;
mod redact;
mod rejection;
pub mod stats;
pub mod store;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod test_util;

pub use decode::{DecodeError, DecodeErrorKind, decode};
pub use dispatch::{RetryPolicy, ShutdownHandle, ShutdownReport, shutdown_signal};
pub use event::Event;
pub use handler::{Delivery, GiveUp, HandleNotification, RetryLater};
/// The [body hook](BodyHook), under its old name. (rustc does not warn on a deprecated
/// re-export: this line goes in the next release all the same.)
#[deprecated(since = "0.2.0", note = "renamed to `BodyHook`")]
pub use hooks::BodyHook as DecodeBody;
#[allow(deprecated)]
pub use hooks::Rejected;
pub use hooks::{
    BodyHook, DefaultOnFailed, DefaultOnRejected, FailedDelivery, OnFailed, OnRejected, Refusal,
};
#[allow(deprecated)]
pub use layer::Webhook;
pub use layer::{WebhookLayer, WebhookRouter};
pub use receiver::{AckPolicy, BuildError, Receiver, ReceiverBuilder};
pub use redact::LogSafe;
pub use rejection::Rejection;
pub use stats::Stats;

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The error type handlers' errors are converted to.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
