//! An admitted request: read, decoded, handed on.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header;
use http_body::Body;

use crate::BoxError;
use crate::event::Event;
use crate::hooks::Rejected;
use crate::rejection::Rejection;
use crate::store::Envelope;

use super::admission::*;
use super::read::*;
use super::service::Inner;
use super::*;

/// An admitted request: its body read, decoded and handed on.
pub(super) async fn accept<E, B>(
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
pub(super) fn decode_event<E: Event>(
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
pub(super) fn envelope(parts: &http::request::Parts, received_at: SystemTime) -> Envelope {
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
    pub(super) fn refuse_and_keep(
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
    pub(super) fn refuse(
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
