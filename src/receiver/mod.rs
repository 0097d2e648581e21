//! The receiver: a tower [`Service`](tower_service::Service) that answers the sender and hands the notification on.
//!
//! Build one with [`Receiver::builder`] (every setting and its default:
//! [`ReceiverBuilder`], [`defaults`]), mount it where the sender posts (axum's
//! `route_service`, or [`Receiver::layer`] around any tower service), and stop it with its
//! [`ShutdownHandle`](crate::ShutdownHandle) once the server has stopped ([`shutdown_signal`](crate::shutdown_signal)).
//!
//! # What the sender is answered
//!
//! In this order, each decided before the next; everything down to the cap on bytes in flight is
//! decided before one byte of the body is read. The `error` code is also the reason
//! [`Stats::answers`](crate::Stats::answers) counts, and every refusal is logged at WARN, at
//! most once a second for each code.
//!
//! | request | answer | `error` |
//! | --- | --- | --- |
//! | a request head (target and headers) over [`max_header_bytes`](ReceiverBuilder::max_header_bytes) | 431 | `headers_too_large` |
//! | refused by [authentication](crate::auth): no or wrong token, wrong Basic credentials | 401 | `unauthorized` |
//! | refused by the IP allow-list | 403 | `forbidden` |
//! | another method | 405, `Allow: POST` | `method_not_allowed` |
//! | another or no content type (`application/json` in any case, with any parameters, is accepted) | 415 | `unsupported_media_type` |
//! | the receiver is stopping | 503 | `shutting_down` |
//! | a body over the [limit](ReceiverBuilder::body_limit): by `Content-Length`, or counted while streaming | 413 | `payload_too_large` |
//! | the bodies held (being read, queued or handled) would pass [`max_bytes_in_flight`](ReceiverBuilder::max_bytes_in_flight) | 503 | `too_many_bytes_in_flight` |
//! | the body is slower than [`body_timeout`](ReceiverBuilder::body_timeout) | 408 | `body_timeout` |
//! | the connection failed while the body was read | 400 | `body_read_failed` |
//! | the [body hook](ReceiverBuilder::body_hook) refused the body | 400 | `body_hook_failed` |
//! | an empty body; malformed JSON or bad UTF-8; bytes after the value; nesting deeper than 128 | 400 | `empty_body`, `malformed_json`, `trailing_bytes`, `nesting_too_deep` |
//! | valid JSON of the wrong shape (not an object, a member missing, repeated or of the wrong type) | 422, with the member's `path` | `invalid_notification` |
//! | a valid notification | 200 `{}` once queued ([`AckPolicy::Memory`]), stored and fsynced ([`AckPolicy::Durable`]) or handled ([`AckPolicy::Handled`]) | |
//! | durable: already stored (a retry after a lost 200) | 200 `{}`, not handled again | |
//! | the queue is full | 503 | `queue_full` |
//! | durable: the store failed (disk full, read-only, database down) | 503 | `store_unavailable` |
//! | [`AckPolicy::Handled`]: the handler failed or panicked; it timed out | 503 | `handler_failed`, `handler_timed_out` |
//!
//! Every 503 carries `Retry-After` ([default](defaults::RETRY_AFTER) 60 s), so the sender
//! retries. Every answer other than 200 has a JSON body naming the problem, and the member's
//! path where there is one; it never repeats a value from the body (`a string`, not the
//! string: it could be a phone number):
//!
//! ```json
//! {"error":"invalid_notification","message":"invalid type: a string, expected i64 (line 1 column 5591)","path":"details[3].duration"}
//! ```
//!
//! Bodies refused for their size, pace or content (400, 408, 413, 422) go to the
//! [`OnRejected`](crate::OnRejected) hook with their raw bytes where they were read, and a
//! durable receiver keeps them in its store, for [`Receiver::replay_rejected`].
//!
//! # Ack policies
//!
//! | policy | 200 means | on a crash | cost |
//! | --- | --- | --- | --- |
//! | [`durable(store)`](ReceiverBuilder::durable) | stored and fsynced | nothing acknowledged is lost; a duplicate is handled once | a group-committed fsync per batch of requests |
//! | [`AckPolicy::Memory`] (default) | in the bounded in-memory queue | queued, unhandled notifications are lost: the sender will not resend them | the fastest answer |
//! | [`AckPolicy::Handled`] | your handler returned `Ok` | nothing acknowledged is lost; the sender retries a 503 | the answer waits for the handler |
//!
//! [`build`](ReceiverBuilder::build) refuses settings that contradict the policy (a store with
//! another ack, retries with the "handled" ack) with a message that says what to change.
//!
//! # Example
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

mod ack;
mod admission;
mod builder;
pub mod defaults;
mod future;
#[cfg(feature = "metrics")]
mod gauges;
mod read;
pub(crate) mod router;
mod service;
mod state;

pub use self::ack::AckPolicy;
#[allow(deprecated)]
pub use self::builder::DEFAULT_BODY_LIMIT;
pub use self::builder::{BuildError, ReceiverBuilder};
pub use self::future::ResponseFuture;
pub use self::state::Receiver;
