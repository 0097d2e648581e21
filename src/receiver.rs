//! The receiver: a tower [`Service`] that answers the sender and queues the notification.
//!
//! Build one with [`Receiver::builder`], mount it where the sender posts (axum's
//! `route_service`, or [`Receiver::layer`] around any tower service), and keep its
//! [`ShutdownHandle`] to stop it cleanly.
//!
//! | request | answer |
//! | --- | --- |
//! | POST, `application/json`, a valid body | 200 `{}` once the notification is queued ([`AckPolicy::Memory`]) or handled ([`AckPolicy::Handled`]) |
//! | another method | 405 with `Allow: POST` |
//! | another content type | 415 |
//! | a body over the limit (`Content-Length`, or counted while streaming) | 413 |
//! | malformed JSON, trailing bytes, an empty body, nesting deeper than 128 | 400 |
//! | valid JSON of the wrong shape | 422, with the member's path |
//! | queue full, shutting down, handler failed or timed out ([`AckPolicy::Handled`]) | 503 with `Retry-After: 60` |
//!
//! ```
//! use airudder_webhook::{Delivery, Receiver, model::TaskNotification};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let receiver = Receiver::builder(|delivery: Delivery<TaskNotification>| async move {
//!     println!("task {} ended with {} calls", delivery.task_id, delivery.details.len());
//!     Ok::<_, std::convert::Infallible>(())
//! })
//! .workers(2)
//! .build()?;
//!
//! let request = http::Request::post("/airudder/task")
//!     .header("content-type", "application/json")
//!     .body(http_body_util::Full::new(bytes::Bytes::from_static(
//!         include_bytes!("../tests/data/task_notification.example.json"),
//!     )))?;
//! let response = receiver.clone().oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//!
//! let report = receiver.shutdown_handle().shutdown(std::time::Duration::from_secs(5)).await;
//! assert_eq!((report.handled, report.left), (1, 0));
//! # Ok(())
//! # }
//! ```

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, Method, Request, Response, header};
use http_body::Body;
use http_body_util::BodyExt;
use tower_service::Service;
use tracing::Instrument;

use crate::BoxError;
use crate::body::{self, ReceiverBody};
use crate::dispatch::{Queue, RetryPolicy, ShutdownHandle, Stats, WorkerConfig};
use crate::event::Event;
use crate::handler::HandleNotification;
use crate::hooks::{DefaultOnFailed, DefaultOnRejected, OnFailed, OnRejected, Rejected};
use crate::layer::WebhookLayer;
use crate::model::TaskNotification;
use crate::rejection::Rejection;

/// The default body limit: 32 MiB, room for a 10,000-call notification (about 17 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 32 * 1024 * 1024;

/// When the receiver answers 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AckPolicy {
    /// Answer 200 as soon as the notification is in the bounded in-memory queue (503 when the
    /// queue is full). Fast; a crash loses what is queued but not yet handled.
    Memory,
    /// Answer only once the handler has returned: 200 on success, 503 on an error, a panic or
    /// after `timeout` (the handler is then cancelled), so that the sender retries. Slower
    /// answers; nothing is acknowledged before it is handled. The handler must be idempotent:
    /// work it finished before a timeout is done again on the retry.
    Handled {
        /// How long the request waits for the handler, queue time included.
        timeout: Duration,
    },
}

impl AckPolicy {
    /// [`AckPolicy::Handled`] with this timeout.
    pub fn handled(timeout: Duration) -> Self {
        Self::Handled { timeout }
    }
}

/// A receiver that could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    message: &'static str,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message)
    }
}

impl std::error::Error for BuildError {}

/// Configures a [`Receiver`]. Every setting has a production default.
#[must_use]
pub struct ReceiverBuilder<E, H> {
    handler: H,
    body_limit: usize,
    workers: usize,
    queue_capacity: usize,
    ack: AckPolicy,
    retry: RetryPolicy,
    handler_timeout: Duration,
    retry_after: Duration,
    on_rejected: Arc<dyn OnRejected>,
    on_failed: Arc<dyn OnFailed<E>>,
}

impl<E, H> fmt::Debug for ReceiverBuilder<E, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiverBuilder")
            .field("body_limit", &self.body_limit)
            .field("workers", &self.workers)
            .field("queue_capacity", &self.queue_capacity)
            .field("ack", &self.ack)
            .field("retry", &self.retry)
            .field("handler_timeout", &self.handler_timeout)
            .field("retry_after", &self.retry_after)
            .finish_non_exhaustive()
    }
}

impl<E: Event, H: HandleNotification<E>> ReceiverBuilder<E, H> {
    /// The largest body accepted, in bytes (default [`DEFAULT_BODY_LIMIT`]); larger is 413.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// How many handler calls run at once (default 4).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// How many notifications wait for a worker before the receiver answers 503 (default 1024).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// When to answer 200 (default [`AckPolicy::Memory`]).
    pub fn ack(mut self, policy: AckPolicy) -> Self {
        self.ack = policy;
        self
    }

    /// How a failed handler is retried with [`AckPolicy::Memory`] (default
    /// [`RetryPolicy::default`]). With [`AckPolicy::Handled`] the sender's retry is the retry.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How long one handler attempt may run before it is cancelled and counted as failed, with
    /// [`AckPolicy::Memory`] (default 5 minutes).
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.handler_timeout = timeout;
        self
    }

    /// The `Retry-After` of 503 answers (default 60 s: the sender retries every minute).
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }

    /// Where refused bodies go (default [`DefaultOnRejected`], a warning log).
    pub fn on_rejected(mut self, hook: impl OnRejected) -> Self {
        self.on_rejected = Arc::new(hook);
        self
    }

    /// Where notifications go after the handler failed every attempt (default
    /// [`DefaultOnFailed`], an error log).
    pub fn on_failed(mut self, hook: impl OnFailed<E>) -> Self {
        self.on_failed = Arc::new(hook);
        self
    }

    /// Starts the workers and returns the receiver.
    ///
    /// # Errors
    /// When called outside a tokio runtime, or with zero workers, a zero queue capacity or a
    /// zero body limit.
    pub fn build(self) -> Result<Receiver<E>, BuildError> {
        let fail = |message| Err(BuildError { message });
        if tokio::runtime::Handle::try_current().is_err() {
            return fail("Receiver::build must be called inside a tokio runtime");
        }
        if self.workers == 0 {
            return fail("workers must be at least 1");
        }
        if self.queue_capacity == 0 {
            return fail("queue_capacity must be at least 1");
        }
        if self.body_limit == 0 {
            return fail("body_limit must be at least 1 byte");
        }
        let queue = Queue::start(
            self.handler,
            WorkerConfig {
                workers: self.workers,
                capacity: self.queue_capacity,
                retry: self.retry,
                handler_timeout: self.handler_timeout,
                on_failed: self.on_failed,
            },
        );
        Ok(Receiver {
            inner: Arc::new(Inner {
                body_limit: self.body_limit,
                ack: self.ack,
                retry_after: self.retry_after,
                on_rejected: self.on_rejected,
                queue,
            }),
        })
    }
}

/// The leaf service that receives notifications. See the [module guide](self).
///
/// Cloning is cheap: clones share the queue and the workers.
pub struct Receiver<E = TaskNotification> {
    inner: Arc<Inner<E>>,
}

struct Inner<E> {
    body_limit: usize,
    ack: AckPolicy,
    retry_after: Duration,
    on_rejected: Arc<dyn OnRejected>,
    queue: Queue<E>,
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

impl<E: Event> Receiver<E> {
    /// A builder for a receiver of any [`Event`] type.
    pub fn builder_for<H>(handler: H) -> ReceiverBuilder<E, H>
    where
        H: HandleNotification<E>,
    {
        ReceiverBuilder {
            handler,
            body_limit: DEFAULT_BODY_LIMIT,
            workers: 4,
            queue_capacity: 1024,
            ack: AckPolicy::Memory,
            retry: RetryPolicy::default(),
            handler_timeout: Duration::from_secs(300),
            retry_after: Duration::from_secs(60),
            on_rejected: Arc::new(DefaultOnRejected),
            on_failed: Arc::new(DefaultOnFailed),
        }
    }

    /// A layer that answers `path` with this receiver and passes every other request on.
    pub fn layer(&self, path: impl Into<String>) -> WebhookLayer<E> {
        WebhookLayer::new(path, self.clone())
    }

    /// The handle that stops this receiver.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle::new(Arc::clone(&self.inner.queue.shared))
    }

    /// The receiver's counters.
    pub fn stats(&self) -> Stats {
        self.inner.queue.shared.stats()
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
        ResponseFuture {
            inner: Box::pin(receive(Arc::clone(&self.inner), request)),
        }
    }
}

/// The future of [`Receiver`]'s answer.
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Response<ReceiverBody>> + Send>>,
}

impl Future for ResponseFuture {
    type Output = Result<Response<ReceiverBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx).map(Ok)
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

async fn receive<E, B>(inner: Arc<Inner<E>>, request: Request<B>) -> Response<ReceiverBody>
where
    E: Event,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
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
    let result = accept(&inner, request).instrument(span.clone()).await;
    let response = match result {
        Ok(()) => body::ok(),
        Err(ref rejection) => rejection.clone().into_response(inner.retry_after),
    };
    let status = response.status().as_u16();
    let outcome = match &result {
        Ok(()) => "accepted",
        Err(rejection) => rejection.code(),
    };
    if status == 503 {
        inner.queue.shared.count_unavailable();
    }
    span.record("status", status);
    span.record("outcome", outcome);
    span.record("answer_us", started.elapsed().as_micros() as u64);
    span.in_scope(|| match status {
        200 => tracing::info!("answered"),
        405 | 415 => tracing::debug!("answered"),
        _ => tracing::warn!("answered"),
    });
    response
}

async fn accept<E, B>(inner: &Inner<E>, request: Request<B>) -> Result<(), Rejection>
where
    E: Event,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let received_at = SystemTime::now();
    if request.method() != Method::POST {
        return Err(Rejection::method_not_allowed());
    }
    if !is_json(request.headers()) {
        return Err(Rejection::unsupported_media_type());
    }
    if !inner.queue.shared.is_accepting() {
        return Err(Rejection::shutting_down());
    }
    let limit = inner.body_limit;
    let declared = content_length(request.headers())
        .unwrap_or(0)
        .max(request.body().size_hint().lower());
    if declared > limit as u64 {
        return Err(inner.refuse(Rejection::payload_too_large(limit), None, received_at));
    }
    let bytes = match read_body(request.into_body(), limit, declared as usize).await {
        Ok(bytes) => bytes,
        Err(rejection) => return Err(inner.refuse(rejection, None, received_at)),
    };
    let event = match E::decode(&bytes) {
        Ok(event) => event,
        Err(err) => return Err(inner.refuse(Rejection::decode(err), Some(bytes), received_at)),
    };
    drop(bytes);
    let span = tracing::Span::current();
    span.record("task_id", event.log_id());
    span.record("calls", event.item_count());

    let deadline = match inner.ack {
        AckPolicy::Memory => None,
        AckPolicy::Handled { timeout } => Some(tokio::time::Instant::now() + timeout),
    };
    let outcome = inner.queue.submit(Arc::new(event), received_at, deadline)?;
    let (Some(outcome), Some(deadline)) = (outcome, deadline) else {
        return Ok(());
    };
    // The worker enforces the deadline; the grace covers a worker that never picked the job.
    match tokio::time::timeout_at(deadline + Duration::from_millis(100), outcome).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => Err(Rejection::shutting_down()),
        Err(_) => Err(Rejection::handler_timed_out()),
    }
}

impl<E> Inner<E> {
    fn refuse(
        &self,
        rejection: Rejection,
        body: Option<Bytes>,
        received_at: SystemTime,
    ) -> Rejection {
        self.queue.shared.count_rejected();
        if rejection.status().is_client_error() {
            let rejected = Rejected::new(rejection.clone(), body, received_at);
            crate::hooks::contain("on_rejected", || self.on_rejected.on_rejected(rejected));
        }
        rejection
    }
}

/// `application/json`, in any case, with or without parameters such as `charset`.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Reads the whole body, refusing it as soon as it passes `limit`. A body in one chunk is
/// kept without a copy; a body in several is copied once into a buffer sized from the
/// declared length.
async fn read_body<B>(body: B, limit: usize, declared: usize) -> Result<Bytes, Rejection>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let mut body = pin!(body);
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut total = 0usize;
    while let Some(frame) = body.as_mut().frame().await {
        let frame = frame.map_err(|err| Rejection::body_read(err.into().to_string()))?;
        let Ok(mut data) = frame.into_data() else {
            continue; // trailers carry nothing of the notification
        };
        let len = data.remaining();
        total = total.saturating_add(len);
        if total > limit {
            return Err(Rejection::payload_too_large(limit));
        }
        if len == 0 {
            continue;
        }
        match (&first, &mut joined) {
            (None, _) => first = Some(data.copy_to_bytes(len)),
            (Some(head), None) => {
                let mut buf = BytesMut::with_capacity(declared.max(total));
                buf.extend_from_slice(head);
                buf.put(data);
                joined = Some(buf);
            }
            (Some(_), Some(buf)) => buf.put(data),
        }
    }
    Ok(match joined {
        Some(buf) => buf.freeze(),
        None => first.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let cases = [
            ("plain", Some("application/json"), true),
            ("charset", Some("application/json; charset=utf-8"), true),
            ("upper case", Some("Application/JSON"), true),
            ("spaces", Some("  application/json ;charset=UTF-8"), true),
            ("text", Some("text/plain"), false),
            ("json suffix", Some("application/problem+json"), false),
            ("prefix only", Some("application/jsonx"), false),
            ("missing", None, false),
        ];
        for (name, value, want) in cases {
            let mut headers = HeaderMap::new();
            if let Some(value) = value {
                headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            }
            assert_eq!(is_json(&headers), want, "{name}");
        }
    }
}
