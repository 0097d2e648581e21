//! A test kit for your handler and your endpoint (feature `test-util`): the sender's example
//! and a builder of valid notifications, a [`Delivery`](crate::Delivery) made by hand
//! ([`Delivery::for_test`](crate::Delivery::for_test)), a handler that records what it saw, and
//! a [`Sender`] that posts exactly as Airudder does, retries included. With
//! [`Receiver::idle`](crate::Receiver::idle), a test waits until the handler has run.
//!
//! Enable it for your tests only, beside the crate in `[dependencies]` (same source):
//!
//! ```toml
//! [dev-dependencies]
//! airudder-webhook = { path = "../airudder-webhook", features = ["test-util"] }
//! ```
//!
//! # An integration test of your handler, through your axum router
//!
//! ```
//! use std::time::Duration;
//!
//! use airudder_webhook::auth::QueryToken;
//! use airudder_webhook::test_util::{NotificationBuilder, Recording, Sender};
//! use airudder_webhook::{Receiver, RetryPolicy};
//! use axum::Router;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Your handler would go here; a recording one shows what the receiver handed on. It fails
//! // its first attempt, so the receiver retries it.
//! let handler = Recording::failing_first(1);
//! let receiver = Receiver::builder(handler.clone())
//!     .authorize(QueryToken::new(["t0ken"]).unwrap())
//!     .retry(RetryPolicy::new(3).initial_backoff(Duration::from_millis(10)))
//!     .build()
//!     .unwrap();
//! let app = Router::new().route_service("/airudder/task", receiver.clone());
//!
//! let body = NotificationBuilder::new()
//!     .task_id("task-7")
//!     .calls(2)
//!     .call(1, |call| call.result("failed").result_label("C"))
//!     .to_bytes();
//! let report = Sender::new(body)
//!     .retry_interval(Duration::from_millis(10))
//!     .send_to("/airudder/task?token=t0ken", app.clone())
//!     .await;
//! assert!(report.delivered());
//! assert_eq!(report.statuses(), [Some(200)]);
//!
//! // The 200 comes before the handler runs: wait until it has.
//! receiver.idle().await;
//! let seen = handler.deliveries();
//! assert_eq!(seen.len(), 2, "one failed attempt, one retry");
//! assert_eq!((seen[1].attempt(), seen[1].task_id.as_str()), (2, "task-7"));
//!
//! // A stranger without the token: every try refused, 1 + 5 of them, as Airudder would.
//! let report = Sender::new(NotificationBuilder::new().to_bytes())
//!     .retry_interval(Duration::from_millis(1))
//!     .send_to("/airudder/task?token=guess", app)
//!     .await;
//! assert!(!report.delivered());
//! assert_eq!(report.statuses(), [Some(401); 6]);
//! # receiver.shutdown_handle().shutdown(Duration::from_secs(1)).await;
//! # }
//! ```
//!
//! # A unit test of your handler alone
//!
//! ```
//! use airudder_webhook::Delivery;
//! use airudder_webhook::test_util::NotificationBuilder;
//!
//! let notification = NotificationBuilder::edge_cases().build();
//! let delivery = Delivery::for_test(notification).with_attempt(3);
//! assert_eq!(delivery.attempt(), 3);
//! assert_eq!(delivery.details[0].result.as_str(), "NO ANSWER");
//! ```

mod fixtures;
mod recording;
mod sender;

pub use self::fixtures::{
    CallBuilder, Example, NotificationBuilder, PDS_EXAMPLES, WORKFLOW_CALL_IN_CALLS_EXAMPLE,
};
#[allow(deprecated)]
pub use self::fixtures::{EXAMPLE, example};
pub use self::recording::{RecordedFailure, Recording};
#[allow(deprecated)]
pub use self::sender::Answer;
pub use self::sender::{Attempt, MAX_RETRIES, RETRY_INTERVAL, Reply, Report, Sender};
