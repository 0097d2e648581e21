//! A raw event: any JSON object, for the callbacks whose bodies are not public.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Any JSON object, kept verbatim: for Airudder's callbacks whose bodies are not public (plan
/// level, WABA message status, the custom API node). It has every guarantee of the typed
/// events: fast 200, durable, authenticated, de-duplicated on its canonical form (the members
/// sorted, no white space), and its `Debug` output shows its keys only.
///
/// ```
/// use airudder_webhook::{Event, model::RawEvent};
///
/// let event = RawEvent::decode(br#"{ "plan_id": "p-1",  "state": 3 }"#)?;
/// assert_eq!(event.get("plan_id").and_then(|v| v.as_str()), Some("p-1"));
/// assert_eq!(&event.body()[..], br#"{ "plan_id": "p-1",  "state": 3 }"#, "kept verbatim");
/// let again = RawEvent::decode(br#"{"state":3,"plan_id":"p-1"}"#)?;
/// assert_eq!(event.dedup_key(), again.dedup_key(), "the same once canonical");
/// # Ok::<(), airudder_webhook::DecodeError>(())
/// ```
#[derive(Clone, PartialEq)]
pub struct RawEvent {
    object: Map<String, Value>,
    body: Bytes,
}

impl RawEvent {
    /// A raw event from a JSON object (its body is the object's canonical form).
    pub fn new(object: Map<String, Value>) -> Self {
        let body = serde_json::to_vec(&object).unwrap_or_default().into();
        Self { object, body }
    }

    /// The object.
    pub fn object(&self) -> &Map<String, Value> {
        &self.object
    }

    /// A member of the object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.object.get(key)
    }

    /// The body as received, byte for byte.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    pub(crate) fn with_body(object: Map<String, Value>, body: &[u8]) -> Self {
        Self {
            object,
            body: Bytes::copy_from_slice(body),
        }
    }
}

impl fmt::Debug for RawEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawEvent")
            .field("keys", &self.object.keys().collect::<Vec<_>>())
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl<'de> Deserialize<'de> for RawEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Map::deserialize(deserializer).map(Self::new)
    }
}

impl Serialize for RawEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.object.serialize(serializer)
    }
}
