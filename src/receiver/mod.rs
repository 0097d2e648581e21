//! The receiver: a tower [`Service`] that answers the sender and queues the notification.
//!
//! Build one with [`Receiver::builder`], mount it where the sender posts (axum's
//! `route_service`, or [`Receiver::layer`] around any tower service), and keep its
//! [`ShutdownHandle`] to stop it cleanly.
//!
//! In this order; everything down to the memory cap is decided before the body is read:
//!
//! | request | answer |
//! | --- | --- |
//! | a request head over [`max_header_bytes`](ReceiverBuilder::max_header_bytes) | 431 |
//! | refused by [authentication](crate::auth) | 401 (403 for the IP allow-list) |
//! | another method | 405 with `Allow: POST` |
//! | another content type | 415 |
//! | shutting down | 503 with `Retry-After: 60` |
//! | a body over the limit (`Content-Length`, or counted while streaming) | 413 |
//! | past the cap on [bytes held](ReceiverBuilder::max_bytes_in_flight) | 503 with `Retry-After: 60` |
//! | a body slower than [`body_timeout`](ReceiverBuilder::body_timeout) | 408 |
//! | malformed JSON, trailing bytes, an empty body, nesting deeper than 128; the body hook refused it | 400 |
//! | valid JSON of the wrong shape | 422, with the member's path |
//! | a valid notification | 200 `{}` once queued ([`AckPolicy::Memory`]), stored ([`AckPolicy::Durable`]) or handled ([`AckPolicy::Handled`]) |
//! | queue full; the store failed; the handler failed or timed out ([`AckPolicy::Handled`]) | 503 with `Retry-After: 60` |
//!
//! ```
//! use airudder_webhook::{Delivery, Receiver, auth::QueryToken, model::TaskNotification};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let receiver = Receiver::builder(|delivery: Delivery<TaskNotification>| async move {
//!     println!("task {} ended with {} calls", delivery.task_id, delivery.details.len());
//!     Ok::<_, std::convert::Infallible>(())
//! })
//! .authorize(QueryToken::new(["s3cret-token"])?) // Airudder's URL ends in ?token=s3cret-token
//! .workers(2)
//! .build()?;
//!
//! let request = http::Request::post("/airudder/task?token=s3cret-token")
//!     .header("content-type", "application/json")
//!     .body(http_body_util::Full::new(bytes::Bytes::from_static(
//!         include_bytes!("../../tests/data/task_notification.example.json"),
//!     )))?;
//! let response = receiver.clone().oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//!
//! let report = receiver.shutdown_handle().shutdown(std::time::Duration::from_secs(5)).await;
//! assert_eq!((report.handled, report.left), (1, 0));
//! # Ok(())
//! # }
//! ```

mod accept;
mod admin;
mod admission;
mod builder;
mod future;
mod read;
mod service;

pub use self::builder::{AckPolicy, BuildError, DEFAULT_BODY_LIMIT, ReceiverBuilder, defaults};
pub use self::future::ResponseFuture;
pub use self::service::Receiver;
