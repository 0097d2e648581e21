//! The notification as the relay keeps it: decoded and checked like any, with the bytes
//! Airudder sent, which are what it forwards.

use airudder_webhook::model::TaskNotification;
use airudder_webhook::{DecodeError, Event};
use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A task notification and its body as received (after the body hook).
#[derive(Debug)]
pub(crate) struct Relayed {
    pub(crate) notification: TaskNotification,
    pub(crate) body: Bytes,
}

/// Serialized as the notification alone, so that its de-duplication key is the task
/// notification's: the same for a retry, whatever its white space.
impl Serialize for Relayed {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.notification.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Relayed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let notification = TaskNotification::deserialize(deserializer)?;
        let body = serde_json::to_vec(&notification).map_err(serde::de::Error::custom)?;
        Ok(Self {
            notification,
            body: body.into(),
        })
    }
}

impl Event for Relayed {
    const NAME: &'static str = TaskNotification::NAME;

    fn log_id(&self) -> &str {
        self.notification.log_id()
    }

    fn item_count(&self) -> usize {
        self.notification.item_count()
    }

    fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        Ok(Self {
            notification: TaskNotification::from_slice(body)?,
            body: Bytes::copy_from_slice(body),
        })
    }
}

/// The Standard Webhooks id of a notification: the same across attempts, restarts and relays
/// (it is made from the de-duplication key), so that the service de-duplicates on it.
pub(crate) fn webhook_id(event: &Relayed) -> String {
    use std::fmt::Write;
    let key = event.dedup_key();
    let mut id = String::with_capacity(4 + 32);
    id.push_str("msg_");
    for byte in &key[..16] {
        let _ = write!(id, "{byte:02x}");
    }
    id
}
