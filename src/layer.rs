//! A [`Layer`](tower_layer::Layer) that answers one path with a [`Receiver`](crate::Receiver) and passes the rest on.
//!
//! Use it to put the receiver in front of a server that is not axum: a plain hyper service, a
//! tonic server (`Server::builder().accept_http1(true).layer(...)`: the sender speaks
//! HTTP/1.1), or any tower stack. Every method on the path goes to the receiver (so a GET is
//! answered 405); every other path goes to the inner service untouched.
//!
//! A path ending in `/{token}` (e.g. `/airudder/task/{token}`) answers every path with one more
//! segment there, for a token in the path ([`PathToken`](crate::auth::PathToken)).
//!
//! ```
//! use airudder_webhook::{Delivery, Receiver, model::TaskNotification};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let receiver = Receiver::builder(|_: Delivery<TaskNotification>| async {
//!     Ok::<_, std::convert::Infallible>(())
//! })
//! .allow_unauthenticated() // the doctest's request carries no token
//! .build()?;
//! let app = ServiceBuilder::new()
//!     .layer(receiver.layer("/airudder/task"))
//!     .service(service_fn(|_req: http::Request<http_body_util::Empty<bytes::Bytes>>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
//!     }));
//!
//! let request = http::Request::get("/health").body(http_body_util::Empty::new())?;
//! assert_eq!(app.oneshot(request).await?.status(), 200);
//! # Ok(())
//! # }
//! ```

#[allow(deprecated)]
pub use crate::receiver::router::Webhook;
pub use crate::receiver::router::{ResponseFuture, WebhookLayer, WebhookRouter};
