//! The receiver's state: the handle every clone is, what the clones share, and the request
//! path through it: admission on the head, then the body read, decoded and accepted.

use std::fmt;
use std::sync::Arc;
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
use crate::dispatch::Queue;
use crate::event::Event;
use crate::hooks::{OnRejected, Rejected};
use crate::intake::Intake;
use crate::model::TaskNotification;
use crate::rejection::Rejection;
use crate::stats::Accepted;
use crate::store::StoreErrorKind;

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

/// The checks on the head of a request, before its body is read.
pub(super) fn admit<E>(inner: &Inner<E>, parts: &http::request::Parts) -> Result<(), Rejection> {
    if head_size(parts) > inner.max_header_bytes {
        return Err(Rejection::headers_too_large(inner.max_header_bytes));
    }
    if let Some(auth) = &inner.auth {
        auth.authorize(parts).map_err(Rejection::from_denied)?;
    }
    if parts.method != Method::POST {
        return Err(Rejection::method_not_allowed());
    }
    if !is_json(&parts.headers) {
        return Err(Rejection::unsupported_media_type());
    }
    if !inner.queue.shared().is_accepting() {
        return Err(Rejection::shutting_down());
    }
    Ok(())
}

/// An admitted request: its body read, decoded and handed on.
pub(super) async fn accept<E, B>(
    inner: Arc<Inner<E>>,
    parts: Parts,
    body: B,
) -> Result<Accepted, Rejection>
where
    E: Event,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let received_at = SystemTime::now();
    let limit = inner.body_limit;
    let declared = content_length(&parts.headers)
        .unwrap_or(0)
        .max(body.size_hint().lower());
    if declared > limit as u64 {
        return Err(inner.refused(Rejection::payload_too_large(limit), None, received_at));
    }

    // Read, within the deadline and the cap on bytes in flight across requests.
    let mut in_flight = InFlight::new(&inner.in_flight);
    in_flight.reserve(declared as usize)?;
    let read = read_body(body, limit, declared as usize, &mut in_flight);
    let raw = match tokio::time::timeout(inner.body_timeout, read).await {
        Ok(Ok(raw)) => raw,
        Ok(Err(rejection)) => return Err(inner.refused(rejection, None, received_at)),
        Err(_) => {
            let rejection = Rejection::body_timeout(inner.body_timeout);
            return Err(inner.refused(rejection, None, received_at));
        }
    };

    let decoded = match inner.intake.decode::<E>(&parts, &raw) {
        Ok(decoded) => decoded,
        Err(rejection) => {
            let held = in_flight.into_permit();
            return Err(inner.refused_and_kept(rejection, &parts, raw, held, received_at));
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
    let ack = inner.ack;
    match ack {
        AckPolicy::Memory => inner
            .queue
            .submit(decoded, received_at, memory)
            .map(|()| Accepted::New),
        // Boxed, here and below: only this policy waits on it, and it would widen the future
        // of every request.
        AckPolicy::Handled { timeout } => {
            let deadline = tokio::time::Instant::now() + timeout;
            let outcome = inner
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
            let envelope = inner.intake.envelope(&parts, received_at);
            // Storing and handing on are one step: in a task of their own, which a sender that
            // hangs up (dropping this future) cannot cancel between the commit and the hand-off.
            // Otherwise its retry would be a duplicate of a notification nobody handles.
            let stored =
                tokio::spawn(
                    async move { inner.queue.submit_stored(decoded, envelope, memory).await },
                );
            match stored.await {
                Ok(answer) => answer,
                Err(_) => Err(Rejection::store_unavailable()),
            }
        }
    }
}

impl<E> Inner<E> {
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
            let envelope = self.intake.envelope(head, received_at);
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
            let rejected = Rejected::new(rejection.clone(), body, received_at);
            crate::hooks::contain("on_rejected", || self.on_rejected.on_rejected(rejected));
        }
        rejection
    }
}
