//! An event as the relay keeps it: decoded and checked like any, with the bytes Airudder sent,
//! which are what it forwards.

use airudder_webhook::model::TaskNotification;
use airudder_webhook::store::kind_key;
use airudder_webhook::{DecodeError, Event};
use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An event of one of Airudder's callbacks, and its body as received (after the body hook).
#[derive(Debug)]
pub(crate) struct Relayed<E = TaskNotification> {
    pub(crate) event: E,
    pub(crate) body: Bytes,
}

/// Serialized as the event alone, so that its de-duplication key is the event's: the same for
/// a retry, whatever its white space.
impl<E: Serialize> Serialize for Relayed<E> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.event.serialize(serializer)
    }
}

impl<'de, E: Event> Deserialize<'de> for Relayed<E> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let event = E::deserialize(deserializer)?;
        let body = serde_json::to_vec(&event).map_err(serde::de::Error::custom)?;
        Ok(Self {
            event,
            body: body.into(),
        })
    }
}

impl<E: Event> Event for Relayed<E> {
    const NAME: &'static str = E::NAME;

    fn log_id(&self) -> &str {
        self.event.log_id()
    }

    fn item_count(&self) -> usize {
        self.event.item_count()
    }

    fn dedup_key(&self) -> [u8; 32] {
        self.event.dedup_key()
    }

    /// The event's key (`AIRUDDER_ORDERED`): the relay orders as the library does.
    fn order_key(&self) -> Option<String> {
        self.event.order_key()
    }

    fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        Ok(Self {
            event: E::decode(body)?,
            body: Bytes::copy_from_slice(body),
        })
    }
}

/// The Standard Webhooks id of an event: the same across attempts, restarts and relays (it is
/// made from the key the event is stored under), so that the service de-duplicates on it.
pub(crate) fn webhook_id<E: Event>(kind: &str, event: &Relayed<E>) -> String {
    use std::fmt::Write;
    let key = kind_key(kind, event.dedup_key());
    let mut id = String::with_capacity(4 + 32);
    id.push_str("msg_");
    for byte in &key[..16] {
        let _ = write!(id, "{byte:02x}");
    }
    id
}
