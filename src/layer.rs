//! A [`Layer`] that answers one path with a [`Receiver`] and passes the rest on.
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

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use crate::BoxError;
use crate::body::WebhookBody;
use crate::event::Event;
use crate::model::TaskNotification;
use crate::receiver::{self, Receiver};

/// Wraps a service in [`Webhook`]. See the [module guide](self).
pub struct WebhookLayer<E = TaskNotification> {
    path: Path,
    receiver: Receiver<E>,
}

impl<E> WebhookLayer<E> {
    /// Answers `path` (e.g. `/airudder/task`) with `receiver`.
    pub fn new(path: impl Into<String>, receiver: Receiver<E>) -> Self {
        Self {
            path: Path::new(path.into()),
            receiver,
        }
    }
}

impl<E> Clone for WebhookLayer<E> {
    fn clone(&self) -> Self {
        Self {
            path: self.path.clone(),
            receiver: self.receiver.clone(),
        }
    }
}

impl<E> fmt::Debug for WebhookLayer<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookLayer")
            .field("path", &self.path)
            .field("receiver", &self.receiver)
            .finish()
    }
}

impl<S, E> Layer<S> for WebhookLayer<E> {
    type Service = Webhook<S, E>;

    fn layer(&self, inner: S) -> Webhook<S, E> {
        Webhook {
            inner,
            path: self.path.clone(),
            receiver: self.receiver.clone(),
        }
    }
}

/// Where the receiver is mounted: an exact path, or a prefix followed by one token segment.
#[derive(Debug, Clone)]
enum Path {
    Exact(Arc<str>),
    Token { prefix: Arc<str> },
}

impl Path {
    fn new(path: String) -> Self {
        match path.strip_suffix("/{token}") {
            Some(prefix) => Self::Token {
                prefix: format!("{prefix}/").into(),
            },
            None => Self::Exact(path.into()),
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(exact) => path == &**exact,
            Self::Token { prefix } => path
                .strip_prefix(&**prefix)
                .is_some_and(|token| !token.is_empty() && !token.contains('/')),
        }
    }
}

/// Answers one path with a [`Receiver`], passes every other request to `inner`.
pub struct Webhook<S, E = TaskNotification> {
    inner: S,
    path: Path,
    receiver: Receiver<E>,
}

impl<S: Clone, E> Clone for Webhook<S, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            path: self.path.clone(),
            receiver: self.receiver.clone(),
        }
    }
}

impl<S: fmt::Debug, E> fmt::Debug for Webhook<S, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("inner", &self.inner)
            .field("path", &self.path)
            .field("receiver", &self.receiver)
            .finish()
    }
}

impl<S, E, B, ResBody> Service<Request<B>> for Webhook<S, E>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    E: Event,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<WebhookBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if self.path.matches(request.uri().path()) {
            ResponseFuture {
                kind: Kind::Receiver {
                    future: self.receiver.call(request),
                },
            }
        } else {
            ResponseFuture {
                kind: Kind::Inner {
                    future: self.inner.call(request),
                },
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Webhook`]'s answer.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Receiver { #[pin] future: receiver::ResponseFuture },
    }
}

impl<F, ResBody, Err> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, Err>>,
{
    type Output = Result<Response<WebhookBody<ResBody>>, Err>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx).map_ok(|r| r.map(WebhookBody::inner)),
            KindProj::Receiver { future } => future.poll(cx).map(|result| match result {
                Ok(response) => Ok(response.map(WebhookBody::receiver)),
                Err(never) => match never {},
            }),
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
