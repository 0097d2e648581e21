//! The service: its shared state and the `Service` impl.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use http_body::Body;
use tokio::sync::Semaphore;
use tower_service::Service;
use tracing::Instrument;

use super::accept::accept;
use super::admission::admit;
use super::builder::{AckPolicy, ReceiverBuilder};
use super::future::{ResponseFuture, State};
use crate::BoxError;
use crate::auth::Authorize;
use crate::body::ReceiverBody;
use crate::dispatch::Queue;
use crate::event::Event;
use crate::handler::HandleNotification;
use crate::hooks::OnRejected;
use crate::intake::Intake;
use crate::model::TaskNotification;

/// The leaf service that receives notifications. See the [module guide](crate::receiver).
///
/// Cloning is cheap: clones share the queue and the workers.
pub struct Receiver<E = TaskNotification> {
    pub(super) inner: Arc<Inner<E>>,
}

/// What every clone of a receiver shares.
pub(super) struct Inner<E> {
    pub(super) body_limit: usize,
    pub(super) ack: AckPolicy,
    pub(super) retry_after: Duration,
    pub(super) on_rejected: Arc<dyn OnRejected>,
    pub(super) auth: Option<Arc<dyn Authorize>>,
    pub(super) body_timeout: Duration,
    /// The cap on body bytes held across requests, one permit a byte.
    pub(super) in_flight: Arc<Semaphore>,
    /// The permits `in_flight` started with.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(super) max_bytes_in_flight: usize,
    pub(super) max_header_bytes: usize,
    pub(super) intake: Intake,
    pub(super) queue: Queue<E>,
}

impl<E> Clone for Receiver<E> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<E> fmt::Debug for Receiver<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("body_limit", &self.inner.body_limit)
            .field("ack", &self.inner.ack)
            .field("queue", &self.inner.queue)
            .finish_non_exhaustive()
    }
}

impl Receiver<TaskNotification> {
    /// A builder for a receiver of task notifications; see [`Receiver::builder_for`] for
    /// another event type.
    pub fn builder<H>(handler: H) -> ReceiverBuilder<TaskNotification, H>
    where
        H: HandleNotification<TaskNotification>,
    {
        Self::builder_for(handler)
    }
}

impl<E, B> Service<Request<B>> for Receiver<E>
where
    E: Event,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<ReceiverBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Overload is answered with 503, never by holding the connection.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> ResponseFuture {
        let started = std::time::Instant::now();
        let span = tracing::info_span!(
            "airudder_notification",
            event = E::NAME,
            task_id = tracing::field::Empty,
            calls = tracing::field::Empty,
            status = tracing::field::Empty,
            outcome = tracing::field::Empty,
            answer_us = tracing::field::Empty,
        );
        let (parts, body) = request.into_parts();
        // Admission is decided on the head alone, before any future is made: a refusal here
        // allocates nothing, and the future of an admitted request holds only what it needs.
        let state = match admit(&self.inner, &parts) {
            Ok(()) => State::Running(Box::pin(
                accept(Arc::clone(&self.inner), parts, body).instrument(span.clone()),
            )),
            Err(rejection) => State::Refused(rejection),
        };
        ResponseFuture {
            state,
            started,
            span,
            retry_after: self.inner.retry_after,
            shared: Arc::clone(self.inner.queue.shared()),
        }
    }
}
