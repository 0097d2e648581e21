//! The receiver's state: the handle every clone is, what the clones share, and the request
//! path through it: admission on the head, then the body read, decoded and accepted.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::Method;
use http::request::Parts;
use http_body::Body;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ack::AckPolicy;
use super::admission::{content_length, head_size, is_json};
use super::read::{InFlight, read_body};
use crate::BoxError;
use crate::auth::Authorize;
use crate::dispatch::{Queue, ShutdownHandle, WorkerConfig};
use crate::event::Event;
use crate::handler::HandleNotification;
use crate::hooks::{OnRejected, Refusal};
use crate::intake::Intake;
#[cfg(feature = "metrics")]
use crate::meters::Sample;
use crate::model::TaskNotification;
use crate::rejection::Rejection;
use crate::stats::{Accepted, Counters};
use crate::store::StoreErrorKind;

/// The leaf service that receives notifications. See the [module guide](crate::receiver).
///
/// Cloning is cheap: clones share the queue and the workers.
// Defined beside its state, its methods in service.rs: the builder makes one without
// importing the file whose `Receiver::builder` makes the builder.
pub struct Receiver<E = TaskNotification> {
    pub(super) inner: Arc<Inner<E>>,
}

/// The settings the request path reads, fixed when the receiver is built.
pub(super) struct Settings {
    pub(super) body_limit: usize,
    pub(super) ack: AckPolicy,
    pub(super) retry_after: Duration,
    pub(super) on_rejected: Arc<dyn OnRejected>,
    pub(super) auth: Option<Arc<dyn Authorize>>,
    pub(super) body_timeout: Duration,
    /// The cap on body bytes held across requests.
    pub(super) max_bytes_in_flight: usize,
    pub(super) max_header_bytes: usize,
    pub(super) intake: Intake,
}

/// What every clone of a receiver shares: its settings, its readiness and counters, and the
/// queue to its workers.
pub(super) struct Inner<E> {
    settings: Settings,
    /// The cap on body bytes held across requests, one permit a byte.
    in_flight: Arc<Semaphore>,
    /// Whether new notifications are taken; the shutdown handle clears it.
    accepting: Arc<AtomicBool>,
    /// Every answer, and what became of every notification (the workers count that part).
    counters: Arc<Counters>,
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
            .field("body_limit", &self.inner.settings.body_limit)
            .field("ack", &self.inner.settings.ack)
            .field("accepting", &self.inner.is_accepting())
            .field("queue", &self.inner.queue)
            .finish_non_exhaustive()
    }
}

impl<E: Event> Inner<E> {
    /// Starts the workers (on the current tokio runtime) and holds what the clones share.
    pub(super) fn start<H>(handler: H, mut settings: Settings, workers: WorkerConfig<E>) -> Self
    where
        H: HandleNotification<E>,
    {
        settings.max_bytes_in_flight = settings.max_bytes_in_flight.min(Semaphore::MAX_PERMITS);
        let counters = Arc::new(Counters::new(&workers.name));
        Self {
            in_flight: Arc::new(Semaphore::new(settings.max_bytes_in_flight)),
            settings,
            accepting: Arc::new(AtomicBool::new(true)),
            queue: Queue::start(handler, workers, Arc::clone(&counters)),
            counters,
        }
    }

    /// An admitted request: its body read, decoded and handed on.
    pub(super) async fn accept<B>(
        self: Arc<Self>,
        parts: Parts,
        body: B,
    ) -> Result<Accepted, Rejection>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let received_at = SystemTime::now();
        let limit = self.settings.body_limit;
        let declared = content_length(&parts.headers)
            .unwrap_or(0)
            .max(body.size_hint().lower());
        if declared > limit as u64 {
            return Err(self.refused(Rejection::payload_too_large(limit), None, received_at));
        }

        // Read, within the deadline and the cap on bytes in flight across requests.
        let mut in_flight = InFlight::new(&self.in_flight);
        in_flight.reserve(declared as usize)?;
        let read = read_body(body, limit, declared as usize, &mut in_flight);
        let raw = match tokio::time::timeout(self.settings.body_timeout, read).await {
            Ok(Ok(raw)) => raw,
            Ok(Err(rejection)) => return Err(self.refused(rejection, None, received_at)),
            Err(_) => {
                let rejection = Rejection::body_timeout(self.settings.body_timeout);
                return Err(self.refused(rejection, None, received_at));
            }
        };

        let decoded = match self.settings.intake.decode::<E>(&parts, &raw) {
            Ok(decoded) => decoded,
            Err(rejection) => {
                let held = in_flight.into_permit();
                return Err(self.refused_and_kept(rejection, &parts, raw, held, received_at));
            }
        };
        drop(raw);
        let span = tracing::Span::current();
        if !span.is_disabled() {
            span.record(
                "task_id",
                &*crate::redact::log_field(decoded.event.log_id()),
            );
        }
        span.record("calls", decoded.event.item_count());
        let memory = in_flight.into_permit();
        let ack = self.settings.ack;
        match ack {
            AckPolicy::Memory => {
                self.check_accepting()?;
                self.queue
                    .submit(decoded, received_at, memory)
                    .map(|()| Accepted::New)
            }
            // Boxed, here and below: only this policy waits on it, and it would widen the future
            // of every request.
            AckPolicy::Handled { timeout } => {
                let deadline = tokio::time::Instant::now() + timeout;
                self.check_accepting()?;
                let outcome = self
                    .queue
                    .submit_waiting(decoded, received_at, memory, deadline)?;
                // The worker enforces the deadline; the grace covers a worker that never picked
                // the job.
                let grace = deadline + Duration::from_millis(100);
                match Box::pin(tokio::time::timeout_at(grace, outcome)).await {
                    Ok(Ok(answer)) => answer.map(|()| Accepted::New),
                    Ok(Err(_)) => Err(Rejection::shutting_down()),
                    Err(_) => Err(Rejection::handler_timed_out()),
                }
            }
            AckPolicy::Durable => {
                let envelope = self.settings.intake.envelope(&parts, received_at);
                // Storing and handing on are one step: in a task of their own, which a sender that
                // hangs up (dropping this future) cannot cancel between the commit and the hand-off.
                // Otherwise its retry would be a duplicate of a notification nobody handles.
                let stored = tokio::spawn(async move {
                    self.check_accepting()?;
                    self.queue.submit_stored(decoded, envelope, memory).await
                });
                match stored.await {
                    Ok(answer) => answer,
                    Err(_) => Err(Rejection::store_unavailable()),
                }
            }
        }
    }
}

impl<E> Inner<E> {
    /// The checks on the head of a request, before its body is read.
    pub(super) fn admit(&self, parts: &Parts) -> Result<(), Rejection> {
        let settings = &self.settings;
        if head_size(parts) > settings.max_header_bytes {
            return Err(Rejection::headers_too_large(settings.max_header_bytes));
        }
        if let Some(auth) = &settings.auth {
            auth.authorize(parts).map_err(Rejection::from_denied)?;
        }
        if parts.method != Method::POST {
            return Err(Rejection::method_not_allowed());
        }
        if !is_json(&parts.headers) {
            return Err(Rejection::unsupported_media_type());
        }
        if !self.is_accepting() {
            return Err(Rejection::shutting_down());
        }
        Ok(())
    }

    /// Refuses a notification read after the shutdown began: admission let it in, but the
    /// queue may no longer be drained.
    fn check_accepting(&self) -> Result<(), Rejection> {
        match self.is_accepting() {
            true => Ok(()),
            false => Err(Rejection::shutting_down()),
        }
    }

    /// Whether new notifications are taken: not stopping.
    pub(super) fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::Acquire)
    }

    /// The `Retry-After` of 503 answers.
    pub(super) fn retry_after(&self) -> Duration {
        self.settings.retry_after
    }

    /// The receiver's counters; the response future counts each answer there.
    pub(super) fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// The queue to the workers, and through it the store.
    pub(super) fn queue(&self) -> &Queue<E> {
        &self.queue
    }

    /// Intake, for a kept refused body run through it again.
    pub(super) fn intake(&self) -> &Intake {
        &self.settings.intake
    }

    /// The handle that stops the receiver: it stops accepting, then the queue drains.
    pub(super) fn shutdown_handle(&self) -> ShutdownHandle {
        self.queue.shutdown_handle(Arc::clone(&self.accepting))
    }

    /// The gauges' reading of the request path and the queue (feature `metrics`).
    #[cfg(feature = "metrics")]
    pub(super) fn sample(&self) -> Sample {
        Sample {
            queue_depth: self.queue.depth(),
            handlers_running: self.queue.running(),
            bytes_in_flight: self
                .settings
                .max_bytes_in_flight
                .saturating_sub(self.in_flight.available_permits()),
            ready: self.is_accepting(),
        }
    }

    /// [`refused`](Self::refused), and with a store, keeps the raw body there to be recovered
    /// ([`Receiver::replay_rejected`](super::Receiver::replay_rejected)).
    ///
    /// `held`, the body's share of the bytes in flight, is let go once the store has it: a
    /// flood of refused bodies faster than the disk meets the cap (503), not an unbounded
    /// pile of bodies waiting to be written.
    fn refused_and_kept(
        &self,
        rejection: Rejection,
        head: &Parts,
        raw: Bytes,
        held: Option<OwnedSemaphorePermit>,
        received_at: SystemTime,
    ) -> Rejection {
        if let Some(store) = self.queue.store() {
            let store = Arc::clone(store);
            let envelope = self.settings.intake.envelope(head, received_at);
            let (status, reason, body) = (
                rejection.status().as_u16(),
                rejection.to_string(),
                raw.clone(),
            );
            tokio::spawn(async move {
                let _held = held;
                match store.reject(status, reason, envelope, body).await {
                    Ok(_) => {}
                    // The store's limits at work, not a fault.
                    Err(err) if err.kind() == StoreErrorKind::Invalid => {
                        tracing::warn!(error = %err, "a refused body was not kept in the store");
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "could not keep a refused body in the store");
                    }
                }
            });
        }
        self.refused(rejection, Some(raw), received_at)
    }

    /// Hands a body refused for its size, pace or content to the rejected hook.
    fn refused(
        &self,
        rejection: Rejection,
        body: Option<Bytes>,
        received_at: SystemTime,
    ) -> Rejection {
        if rejection.is_body_refusal() {
            let rejected = Refusal::new(rejection.clone(), body, received_at);
            crate::hooks::contain("on_rejected", || {
                self.settings.on_rejected.on_rejected(rejected)
            });
        }
        rejection
    }
}
