//! Intake: the one path from bytes to an event, for every way a notification arrives.
//!
//! A request's body, a stored record redelivered after a restart or replayed, and a refused
//! body recovered after a fix all pass here: raw bytes, then the [body hook](crate::BodyHook)
//! (not for stored records, which are kept as the hook returned them), then the event type's
//! decoder, then the record for the store. A recovered refused body goes through the hook the
//! receiver has now, on a request head rebuilt from what the store kept of the original (see
//! [`ReceiverBuilder::keep_headers`](crate::ReceiverBuilder::keep_headers)).

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderName, Method, Request, header};

use crate::decode::DecodeError;
use crate::event::Event;
use crate::hooks::BodyHook;
use crate::rejection::Rejection;
use crate::store::{Envelope, NewRecord, Record, RefusedBody, kind_key};

/// The headers every envelope keeps.
const KEPT: [HeaderName; 3] = [
    header::CONTENT_TYPE,
    header::USER_AGENT,
    header::CONTENT_LENGTH,
];

/// The receiver's half of intake: its body hook, and what it keeps of a request.
pub(crate) struct Intake {
    hook: Option<Arc<dyn BodyHook>>,
    /// Headers kept besides [`KEPT`], for the hook to see again on recovery.
    extra_headers: Box<[HeaderName]>,
    /// The receiver's name, every envelope's kind.
    kind: Arc<str>,
}

/// An event decoded, with the bytes it was decoded from (what the store keeps).
pub(crate) struct Decoded<E> {
    pub(crate) event: Arc<E>,
    pub(crate) body: Bytes,
}

impl<E: Event> Decoded<E> {
    /// A stored body: it went through the hook before it was stored.
    pub(crate) fn from_stored(record: &Record) -> Result<Self, DecodeError> {
        Ok(Self {
            event: Arc::new(E::decode(&record.body)?),
            body: record.body.clone(),
        })
    }

    /// What the store keeps: the de-duplication key (of the record's kind, see
    /// [`kind_key`]), the bytes, the envelope.
    pub(crate) fn record(&self, envelope: Envelope) -> NewRecord {
        let key = kind_key(envelope.kind(), self.event.dedup_key());
        let record = NewRecord::new(key, self.body.clone(), envelope);
        match self.event.log_id() {
            "" | "-" => record,
            id => record.with_task_id(id),
        }
    }
}

impl Intake {
    pub(crate) fn new(
        hook: Option<Arc<dyn BodyHook>>,
        extra_headers: Vec<HeaderName>,
        kind: &str,
    ) -> Self {
        Self {
            hook,
            extra_headers: extra_headers.into_boxed_slice(),
            kind: Arc::from(kind),
        }
    }

    /// Raw bytes through the body hook, then decoded. Not async, so that the event never
    /// widens a request's future.
    pub(crate) fn decode<E: Event>(
        &self,
        head: &Parts,
        raw: &Bytes,
    ) -> Result<Decoded<E>, Rejection> {
        let body = match &self.hook {
            None => raw.clone(),
            Some(hook) => hook
                .decode_body(head, raw.clone())
                .map_err(|_| Rejection::body_hook())?,
        };
        let event = E::decode(&body).map_err(Rejection::decode)?;
        Ok(Decoded {
            event: Arc::new(event),
            body,
        })
    }

    /// A kept refused body, through the same path on a head rebuilt from its envelope.
    pub(crate) fn decode_kept<E: Event>(
        &self,
        kept: &RefusedBody,
    ) -> Result<Decoded<E>, Rejection> {
        self.decode(&head_of(&kept.envelope), &kept.body)
    }

    /// What the store keeps of a request besides its body.
    pub(crate) fn envelope(&self, head: &Parts, received_at: SystemTime) -> Envelope {
        let headers = KEPT
            .iter()
            .chain(self.extra_headers.iter())
            .flat_map(|name| {
                head.headers.get_all(name).iter().filter_map(move |value| {
                    Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
                })
            })
            .collect();
        let peer = crate::auth::peer_addr(&head.extensions).map(|addr| addr.to_string());
        Envelope::new(received_at, peer, headers).with_kind(&*self.kind)
    }
}

/// A request head as the envelope remembers it: a POST with the kept headers (no path, query
/// or credentials: those are not kept).
fn head_of(envelope: &Envelope) -> Parts {
    let mut request = Request::builder().method(Method::POST).uri("/");
    for (name, value) in &envelope.headers {
        // A header that no longer parses is left out rather than failing the recovery.
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            http::HeaderValue::try_from(value.as_str()),
        ) {
            request = request.header(name, value);
        }
    }
    let (head, ()) = request
        .body(())
        .unwrap_or_else(|_| Request::new(()))
        .into_parts();
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rebuilt_head_carries_the_kept_headers_and_nothing_else() {
        let intake = Intake::new(
            None,
            vec![HeaderName::from_static("x-key-id")],
            "task_notification",
        );
        let (head, ()) = Request::post("/airudder/task?token=s3cret")
            .header("content-type", "application/json")
            .header("x-key-id", "k2")
            .header("authorization", "Bearer s3cret")
            .body(())
            .unwrap()
            .into_parts();
        let envelope = intake.envelope(&head, SystemTime::UNIX_EPOCH);
        let rebuilt = head_of(&envelope);
        assert_eq!(rebuilt.method, Method::POST);
        assert_eq!(rebuilt.headers["content-type"], "application/json");
        assert_eq!(rebuilt.headers["x-key-id"], "k2");
        assert!(rebuilt.headers.get("authorization").is_none());
        assert_eq!(rebuilt.uri.query(), None);
    }
}
