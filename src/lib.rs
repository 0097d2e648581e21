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
//!     axum::serve(listener, app).await?;
//!     shutdown.shutdown(std::time::Duration::from_secs(30)).await;
//!     Ok(())
//! }
//! ```
//!
//! The pieces, each with its guide:
//! - [`model`]: the typed notification, tolerant of the sender's loose values and strict about
//!   its shape.
//! - [`receiver`]: the tower [`Service`](tower_service::Service), its status codes, its ack
//!   policies and its builder.
//! - [`layer`]: the same receiver as a [`Layer`](tower_layer::Layer) around another service.
//! - [`auth`]: who may post, decided before the body is read.
//! - [`store`]: the durable ack: stored before the 200, redelivered, de-duplicated.
//! - [`HandleNotification`]: your handler; a closure works.
//! - [`OnRejected`] and [`OnFailed`]: where refused bodies and given-up notifications go.

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
pub mod receiver;
mod redact;
mod rejection;
pub mod stats;
pub mod store;

pub use decode::{DecodeBody, DecodeError, DecodeErrorKind, decode};
pub use dispatch::{RetryPolicy, ShutdownHandle, ShutdownReport, shutdown_signal};
pub use event::Event;
pub use handler::{Delivery, HandleNotification};
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
