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
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_service::Service;
use tracing::Instrument;

use crate::BoxError;
use crate::auth::{AllOf, Authorize};
use crate::body::{self, ReceiverBody};
use crate::decode::DecodeBody;
use crate::dispatch::{Queue, RetryPolicy, ShutdownHandle, Stats, WorkerConfig};
use crate::event::Event;
use crate::handler::HandleNotification;
use crate::hooks::{DefaultOnFailed, DefaultOnRejected, OnFailed, OnRejected, Rejected};
use crate::layer::WebhookLayer;
use crate::model::TaskNotification;
use crate::rejection::Rejection;
use crate::store::{
    Appended, Envelope, ErasedStore, NewRecord, RecordId, Store, StoreError, StoreErrorKind,
};

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
    /// Answer 200 once the notification is stored and fsynced (set by
    /// [`ReceiverBuilder::durable`]): nothing acknowledged is lost to a crash, duplicates are
    /// handled once, failures end as dead letters. See [`store`](crate::store).
    Durable,
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
    checks: AllOf,
    check_count: usize,
    unauthenticated: bool,
    body_timeout: Duration,
    max_bytes_in_flight: usize,
    max_header_bytes: usize,
    body_hook: Option<Arc<dyn DecodeBody>>,
    store: Option<Arc<dyn ErasedStore>>,
    dedup_window: Duration,
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
            .field("checks", &self.check_count)
            .field("unauthenticated", &self.unauthenticated)
            .field("body_timeout", &self.body_timeout)
            .field("max_bytes_in_flight", &self.max_bytes_in_flight)
            .field("max_header_bytes", &self.max_header_bytes)
            .field("body_hook", &self.body_hook.is_some())
            .field("durable", &self.store.is_some())
            .field("dedup_window", &self.dedup_window)
            .finish_non_exhaustive()
    }
}

impl<E: Event, H: HandleNotification<E>> ReceiverBuilder<E, H> {
    /// Adds an authentication check, decided before the body is read; with several calls,
    /// every check must pass. See [`auth`](crate::auth).
    pub fn authorize(mut self, check: impl Authorize) -> Self {
        self.checks = self.checks.and(check);
        self.check_count += 1;
        self
    }

    /// Runs without authentication: anyone who finds the URL can post notifications. Without
    /// this or [`authorize`](Self::authorize), [`build`](Self::build) fails, and with it the
    /// receiver warns once when built.
    pub fn allow_unauthenticated(mut self) -> Self {
        self.unauthenticated = true;
        self
    }

    /// How long a body may take to arrive once the head is in (default 30 s); slower is 408.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// The cap on the bytes of the notifications the receiver holds at once, across all
    /// requests (default 256 MiB), counted as the size of their bodies from the first byte read
    /// until the handler is done: a request that would pass it is answered 503 and retried by
    /// the sender. At least the body limit.
    pub fn max_bytes_in_flight(mut self, bytes: usize) -> Self {
        self.max_bytes_in_flight = bytes;
        self
    }

    /// The largest request head (target and headers) accepted (default 64 KiB); larger is 431.
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes;
        self
    }

    /// Stores every notification in `store`, fsynced, before answering 200, and feeds the
    /// handler from there ([`AckPolicy::Durable`]). See [`store`](crate::store).
    pub fn durable(mut self, store: impl Store) -> Self {
        self.store = Some(Arc::new(store));
        self.ack = AckPolicy::Durable;
        self
    }

    /// How long a durable receiver remembers a handled notification's key to recognise a
    /// duplicate (default 24 hours).
    pub fn dedup_window(mut self, window: Duration) -> Self {
        self.dedup_window = window;
        self
    }

    /// Transforms the raw body before it is decoded, e.g. to decrypt it. An error answers
    /// 400; the rejected hook still receives the raw bytes.
    pub fn decode_body(mut self, hook: impl DecodeBody) -> Self {
        self.body_hook = Some(Arc::new(hook));
        self
    }

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

    /// How a failed handler is retried with [`AckPolicy::Memory`] and [`AckPolicy::Durable`]
    /// (default [`RetryPolicy::default`]); durable attempts count across restarts. With
    /// [`AckPolicy::Handled`] the sender's retry is the retry.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How long one handler attempt may run before it is cancelled and counted as failed, with
    /// [`AckPolicy::Memory`] and [`AckPolicy::Durable`] (default 5 minutes).
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
        if self.body_limit == 0 || self.body_limit > u32::MAX as usize {
            return fail("body_limit must be between 1 byte and 4 GiB");
        }
        if self.max_bytes_in_flight < self.body_limit {
            return fail("max_bytes_in_flight must be at least body_limit");
        }
        let store = match (self.ack, self.store) {
            (AckPolicy::Durable, None) => {
                return fail("AckPolicy::Durable needs a store: use durable(store)");
            }
            (AckPolicy::Durable, store) => store,
            // Another policy chosen after durable(): the store is not used.
            (_, _) => None,
        };
        let auth: Option<Arc<dyn Authorize>> = match (self.check_count, self.unauthenticated) {
            (0, false) => {
                return fail(
                    "no authentication is configured: call authorize(...), or \
                     allow_unauthenticated() to accept anyone who finds the URL",
                );
            }
            (0, true) => {
                tracing::warn!(
                    "the receiver accepts notifications without authentication: \
                     anyone who finds its URL can post one"
                );
                None
            }
            _ => Some(Arc::new(self.checks)),
        };
        let queue = Queue::start(
            self.handler,
            WorkerConfig {
                workers: self.workers,
                capacity: self.queue_capacity,
                retry: self.retry,
                handler_timeout: self.handler_timeout,
                on_failed: self.on_failed,
                store,
                dedup_window: self.dedup_window,
            },
        );
        Ok(Receiver {
            inner: Arc::new(Inner {
                body_limit: self.body_limit,
                ack: self.ack,
                retry_after: self.retry_after,
                on_rejected: self.on_rejected,
                auth,
                body_timeout: self.body_timeout,
                in_flight: Arc::new(Semaphore::new(
                    self.max_bytes_in_flight.min(Semaphore::MAX_PERMITS),
                )),
                max_header_bytes: self.max_header_bytes,
                body_hook: self.body_hook,
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
    auth: Option<Arc<dyn Authorize>>,
    body_timeout: Duration,
    in_flight: Arc<Semaphore>,
    max_header_bytes: usize,
    body_hook: Option<Arc<dyn DecodeBody>>,
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
            checks: AllOf::new(),
            check_count: 0,
            unauthenticated: false,
            body_timeout: Duration::from_secs(30),
            max_bytes_in_flight: 256 * 1024 * 1024,
            max_header_bytes: 64 * 1024,
            body_hook: None,
            store: None,
            dedup_window: Duration::from_secs(24 * 3600),
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

    /// Makes a dead letter pending again and hands it to the handler (durable receivers).
    ///
    /// # Errors
    /// When the receiver has no store, the store fails, no dead letter has this id, or the
    /// stored body is no longer a valid notification.
    pub async fn replay(&self, id: RecordId) -> Result<(), StoreError> {
        let store = self.store()?;
        let record = store.replay(id).await?;
        self.inner.queue.enqueue_stored(record).await
    }

    /// Decodes a kept refused body again (after a fix) and, if it is now valid, stores and
    /// queues it as a new notification, and forgets the refused copy. Returns the new record's
    /// id, or the existing one's when it was already stored.
    ///
    /// # Errors
    /// When the receiver has no store, the store fails, no refused body has this id, or the
    /// body is still not a valid notification.
    pub async fn replay_rejected(&self, id: RecordId) -> Result<RecordId, StoreError> {
        let store = self.store()?;
        let rejected = store.rejected().await?;
        let Some(kept) = rejected.into_iter().find(|r| r.id == id) else {
            return Err(StoreError::new(
                StoreErrorKind::NotFound,
                format!("no refused body {id}"),
            ));
        };
        let event =
            E::decode(&kept.body).map_err(|err| StoreError::new(StoreErrorKind::Invalid, err))?;
        let record = NewRecord {
            key: event.dedup_key(),
            body: kept.body.clone(),
            envelope: kept.envelope.clone(),
        };
        let new_id = match store.append(record).await? {
            Appended::Stored(new_id) => {
                let record = store
                    .get(new_id)
                    .await?
                    .ok_or_else(|| StoreError::bare(StoreErrorKind::NotFound))?;
                self.inner.queue.enqueue_stored(record).await?;
                new_id
            }
            Appended::Duplicate(existing) => existing,
        };
        store.remove_rejected(id).await?;
        Ok(new_id)
    }

    fn store(&self) -> Result<&Arc<dyn ErasedStore>, StoreError> {
        self.inner
            .queue
            .store
            .as_ref()
            .ok_or_else(|| StoreError::new(StoreErrorKind::NotFound, "this receiver has no store"))
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
        let state = match span.in_scope(|| admit(&self.inner, &parts)) {
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
            shared: Arc::clone(&self.inner.queue.shared),
        }
    }
}

/// The future of [`Receiver`]'s answer.
pub struct ResponseFuture {
    state: State,
    started: std::time::Instant,
    span: tracing::Span,
    retry_after: Duration,
    shared: Arc<crate::dispatch::Shared>,
}

enum State {
    Running(Pin<Box<dyn Future<Output = Result<(), Rejection>> + Send>>),
    Refused(Rejection),
    Answered,
}

impl Future for ResponseFuture {
    type Output = Result<Response<ReceiverBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let result = match std::mem::replace(&mut self.state, State::Answered) {
            State::Running(mut accept) => match accept.as_mut().poll(cx) {
                Poll::Ready(result) => result,
                Poll::Pending => {
                    self.state = State::Running(accept);
                    return Poll::Pending;
                }
            },
            State::Refused(rejection) => Err(rejection),
            State::Answered => panic!("ResponseFuture polled after it answered"),
        };
        Poll::Ready(Ok(self.answer(result)))
    }
}

impl ResponseFuture {
    /// The response for the outcome, recorded in the request's span.
    fn answer(&self, result: Result<(), Rejection>) -> Response<ReceiverBody> {
        let response = match result {
            Ok(()) => body::ok(),
            Err(ref rejection) => rejection.clone().into_response(self.retry_after),
        };
        let status = response.status().as_u16();
        let outcome = match &result {
            Ok(()) => "accepted",
            Err(rejection) => rejection.code(),
        };
        if status == 503 {
            self.shared.count_unavailable();
        }
        let span = &self.span;
        span.record("status", status);
        span.record("outcome", outcome);
        span.record("answer_us", self.started.elapsed().as_micros() as u64);
        span.in_scope(|| match status {
            200 => tracing::info!("answered"),
            405 | 415 => tracing::debug!("answered"),
            _ => tracing::warn!("answered"),
        });
        response
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// The checks on the head of a request, before its body is read.
fn admit<E>(inner: &Inner<E>, parts: &http::request::Parts) -> Result<(), Rejection> {
    if head_size(parts) > inner.max_header_bytes {
        return Err(Rejection::headers_too_large(inner.max_header_bytes));
    }
    if let Some(auth) = &inner.auth {
        auth.authorize(parts).map_err(|denied| {
            tracing::warn!(
                status = denied.status().as_u16(),
                reason = denied.reason(),
                "refused by authentication"
            );
            Rejection::from_denied(denied)
        })?;
    }
    if parts.method != Method::POST {
        return Err(Rejection::method_not_allowed());
    }
    if !is_json(&parts.headers) {
        return Err(Rejection::unsupported_media_type());
    }
    if !inner.queue.shared.is_accepting() {
        return Err(Rejection::shutting_down());
    }
    Ok(())
}

/// An admitted request: its body read, decoded and handed on.
async fn accept<E, B>(
    inner: Arc<Inner<E>>,
    parts: http::request::Parts,
    body: B,
) -> Result<(), Rejection>
where
    E: Event,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let received_at = SystemTime::now();
    if !inner.queue.shared.is_ready() && !Box::pin(inner.queue.shared.wait_ready()).await {
        return Err(Rejection::starting());
    }
    let limit = inner.body_limit;
    let declared = content_length(&parts.headers)
        .unwrap_or(0)
        .max(body.size_hint().lower());
    if declared > limit as u64 {
        return Err(inner.refuse(Rejection::payload_too_large(limit), None, received_at));
    }

    // Read, within the deadline and the cap on bytes in flight across requests.
    let mut in_flight = InFlight::new(&inner.in_flight);
    in_flight.reserve(declared as usize)?;
    let read = read_body(body, limit, declared as usize, &mut in_flight);
    let bytes = match tokio::time::timeout(inner.body_timeout, read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(rejection)) => return Err(inner.refuse(rejection, None, received_at)),
        Err(_) => {
            return Err(inner.refuse(
                Rejection::body_timeout(inner.body_timeout),
                None,
                received_at,
            ));
        }
    };

    let (event, decoded) = decode_event(&inner, &parts, bytes, received_at)?;
    let deadline = match inner.ack {
        AckPolicy::Memory => None,
        AckPolicy::Handled { timeout } => Some(tokio::time::Instant::now() + timeout),
        AckPolicy::Durable => {
            let envelope = envelope(&parts, received_at);
            let permit = in_flight.into_permit();
            // Boxed, here and below: only this policy waits on it, and it would widen the
            // future of every request.
            return Box::pin(inner.queue.submit_durable(event, decoded, envelope, permit)).await;
        }
    };
    let outcome = inner
        .queue
        .submit(event, received_at, deadline, in_flight.into_permit())?;
    let (Some(outcome), Some(deadline)) = (outcome, deadline) else {
        return Ok(());
    };
    // The worker enforces the deadline; the grace covers a worker that never picked the job.
    match Box::pin(tokio::time::timeout_at(
        deadline + Duration::from_millis(100),
        outcome,
    ))
    .await
    {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => Err(Rejection::shutting_down()),
        Err(_) => Err(Rejection::handler_timed_out()),
    }
}

/// The body decoded (through the decode hook, if any) into the event, and the bytes decoded.
///
/// Not async, so that the decoded event never widens the request's future.
fn decode_event<E: Event>(
    inner: &Inner<E>,
    parts: &http::request::Parts,
    bytes: Bytes,
    received_at: SystemTime,
) -> Result<(Arc<E>, Bytes), Rejection> {
    let decoded = match &inner.body_hook {
        None => Ok(bytes.clone()),
        Some(hook) => hook.decode_body(parts, bytes.clone()),
    };
    let (event, decoded) = match decoded {
        Ok(decoded) => (E::decode(&decoded).map_err(Rejection::decode), decoded),
        Err(_) => (Err(Rejection::body_hook()), Bytes::new()),
    };
    let event = match event {
        Ok(event) => event,
        // The hook gets the bytes as received, so that they can be replayed as they were.
        Err(rejection) => {
            let envelope = envelope(parts, received_at);
            return Err(inner.refuse_and_keep(rejection, bytes, envelope, received_at));
        }
    };
    drop(bytes);
    let span = tracing::Span::current();
    span.record("task_id", event.log_id());
    span.record("calls", event.item_count());
    Ok((Arc::new(event), decoded))
}

/// What the store keeps of a request besides its body.
fn envelope(parts: &http::request::Parts, received_at: SystemTime) -> Envelope {
    let headers = [
        header::CONTENT_TYPE,
        header::USER_AGENT,
        header::CONTENT_LENGTH,
    ]
    .iter()
    .filter_map(|name| {
        let value = parts.headers.get(name)?.to_str().ok()?;
        Some((name.as_str().to_owned(), value.to_owned()))
    })
    .collect();
    let peer = crate::auth::peer_addr(&parts.extensions).map(|addr| addr.to_string());
    Envelope::new(received_at, peer, headers)
}

impl<E> Inner<E> {
    /// [`refuse`](Self::refuse), and with a store, keeps the raw body there to be recovered.
    fn refuse_and_keep(
        &self,
        rejection: Rejection,
        body: Bytes,
        envelope: Envelope,
        received_at: SystemTime,
    ) -> Rejection {
        if let Some(store) = &self.queue.store {
            let store = Arc::clone(store);
            let (status, reason, body) = (
                rejection.status().as_u16(),
                rejection.to_string(),
                body.clone(),
            );
            tokio::spawn(async move {
                if let Err(err) = store.reject(status, reason, envelope, body).await {
                    tracing::error!(error = %err, "could not keep a refused body in the store");
                }
            });
        }
        self.refuse(rejection, Some(body), received_at)
    }

    /// Counts a body refused for its size or content, and hands it to the rejected hook.
    fn refuse(
        &self,
        rejection: Rejection,
        body: Option<Bytes>,
        received_at: SystemTime,
    ) -> Rejection {
        self.queue.shared.count_rejected();
        let rejected = Rejected::new(rejection.clone(), body, received_at);
        crate::hooks::contain("on_rejected", || self.on_rejected.on_rejected(rejected));
        rejection
    }
}

/// The bytes of the bodies the receiver holds, across all requests, from the first byte read
/// until the handler is done with the notification: past the cap, 503 (the sender retries)
/// rather than running out of memory.
struct InFlight<'a> {
    semaphore: &'a Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
    bytes: usize,
}

impl<'a> InFlight<'a> {
    fn new(semaphore: &'a Arc<Semaphore>) -> Self {
        Self {
            semaphore,
            held: None,
            bytes: 0,
        }
    }

    /// Holds at least `total` bytes.
    fn reserve(&mut self, total: usize) -> Result<(), Rejection> {
        let Some(more) = total.checked_sub(self.bytes).filter(|&more| more > 0) else {
            return Ok(());
        };
        let more_permits =
            u32::try_from(more).map_err(|_| Rejection::too_many_bytes_in_flight())?;
        let permit = Arc::clone(self.semaphore)
            .try_acquire_many_owned(more_permits)
            .map_err(|_| Rejection::too_many_bytes_in_flight())?;
        match &mut self.held {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
        self.bytes = total;
        Ok(())
    }

    /// The reservation, to be held until the notification is handled.
    fn into_permit(self) -> Option<OwnedSemaphorePermit> {
        self.held
    }
}

/// The size of the request head, as a server would have buffered it.
fn head_size(parts: &http::request::Parts) -> usize {
    let headers: usize = parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let uri = &parts.uri;
    let target = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    target + uri.authority().map_or(0, |a| a.as_str().len()) + headers
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
async fn read_body<B>(
    body: B,
    limit: usize,
    declared: usize,
    in_flight: &mut InFlight<'_>,
) -> Result<Bytes, Rejection>
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
        in_flight.reserve(total)?;
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
