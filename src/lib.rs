//! Receive [Airudder](https://www.airudder.com)'s task notifications inside any tower-based
//! server: axum, hyper or tonic.
//!
//! When the calls of a task end, Airudder POSTs a JSON task notification to your URL. It wants
//! a fast `200 {}`, retries anything else every minute at most 5 times, then drops the
//! notification for good. This crate answers the sender, decodes the body into a typed
//! [`TaskNotification`](model::TaskNotification), and hands it to your async handler on
//! worker tasks, off the request path.
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
//!     .authorize(QueryToken::new([std::env::var("AIRUDDER_TOKEN")?])?)
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
//! - intake (private): bytes, then the [body hook](DecodeBody), then the decoder ([`model`],
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
//!
//! # Observability
//!
//! Each request runs in a `tracing` span `airudder_notification` with `event`, `task_id`,
//! `calls`, `status`, `outcome` (`accepted`, `duplicate`, or the refusal's code) and
//! `answer_us`, and ends with one event (INFO for a 200, DEBUG otherwise); every refusal is
//! also logged at WARN, at most once a second for each code, with how many were left out. Each
//! handler attempt runs in a span `airudder_delivery` with `task_id`, `record` and `attempt`.
//! No log line holds a phone number, a customer variable or a secret.

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

pub use decode::{DecodeBody, DecodeError, DecodeErrorKind, decode};
pub use dispatch::{RetryPolicy, ShutdownHandle, ShutdownReport, shutdown_signal};
pub use event::Event;
pub use handler::{Delivery, GiveUp, HandleNotification};
pub use hooks::{
    DefaultOnFailed, DefaultOnRejected, FailedDelivery, OnFailed, OnRejected, Rejected,
};
pub use layer::{Webhook, WebhookLayer};
pub use receiver::{AckPolicy, BuildError, Receiver, ReceiverBuilder};
pub use rejection::Rejection;
pub use stats::Stats;

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The error type handlers' errors are converted to.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
