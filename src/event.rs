//! What the machinery needs to know of an event type.

use serde::de::DeserializeOwned;

use crate::decode::DecodeError;
use crate::model::TaskNotification;

/// A notification type the receiver can decode and dispatch.
///
/// The task notification is one event type among the sender's several (call-level, plan-level
/// and workflow callbacks exist too); the receiver, the queue and the hooks are generic over
/// `Event`, so a sibling callback is a new type implementing this trait, not a new receiver.
pub trait Event: DeserializeOwned + Send + Sync + 'static {
    /// A short name for logs, e.g. `"task notification"`.
    const NAME: &'static str;

    /// An identifier safe to log (never personal data): the task id for a task notification.
    /// Spans and log lines record it in their `task_id` field.
    fn log_id(&self) -> &str;

    /// How many items the event carries (calls for a task notification), for logs and spans.
    fn item_count(&self) -> usize;

    /// Decodes a body. The default is the strict JSON [`decode`](crate::decode).
    ///
    /// # Errors
    /// A [`DecodeError`] when the body is not a valid event.
    fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        crate::decode::decode(body)
    }
}

impl Event for TaskNotification {
    const NAME: &'static str = "task notification";

    fn log_id(&self) -> &str {
        &self.task_id
    }

    fn item_count(&self) -> usize {
        self.details.len()
    }
}
