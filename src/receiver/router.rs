//! The layer and the service that answer one path with a receiver (guide: [`crate::layer`]).

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

use super::future::ResponseFuture as ReceiverFuture;
use super::state::Receiver;
use crate::BoxError;
use crate::body::WebhookBody;
use crate::event::Event;
use crate::model::TaskNotification;

/// Wraps a service in [`WebhookRouter`]. See the [module guide](crate::layer).
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
    type Service = WebhookRouter<S, E>;

    fn layer(&self, inner: S) -> WebhookRouter<S, E> {
        WebhookRouter {
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

/// [`WebhookRouter`], under its old name.
#[deprecated(since = "0.2.0", note = "renamed to `WebhookRouter`")]
pub type Webhook<S, E = TaskNotification> = WebhookRouter<S, E>;

/// Answers one path with a [`Receiver`], passes every other request to `inner`.
pub struct WebhookRouter<S, E = TaskNotification> {
    inner: S,
    path: Path,
    receiver: Receiver<E>,
}

impl<S: Clone, E> Clone for WebhookRouter<S, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            path: self.path.clone(),
            receiver: self.receiver.clone(),
        }
    }
}

impl<S: fmt::Debug, E> fmt::Debug for WebhookRouter<S, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookRouter")
            .field("inner", &self.inner)
            .field("path", &self.path)
            .field("receiver", &self.receiver)
            .finish()
    }
}

impl<S, E, B, ResBody> Service<Request<B>> for WebhookRouter<S, E>
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
    /// The future of [`WebhookRouter`]'s answer.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Receiver { #[pin] future: ReceiverFuture },
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
