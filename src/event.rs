//! What the machinery needs to know of an event type.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::decode::DecodeError;
use crate::model::{
    ChatbotSessionEnd, PdsEvent, RawEvent, TaskNotification, WorkflowCallCompletion,
    WorkflowListCompletion, WorkflowStatusChange,
};

/// A notification type the receiver can decode and dispatch.
///
/// The task notification is one event type among the sender's several (call-level, plan-level
/// and workflow callbacks exist too); the receiver, the queue and the hooks are generic over
/// `Event`, so a sibling callback is a new type implementing this trait, not a new receiver.
pub trait Event: DeserializeOwned + Serialize + Send + Sync + 'static {
    /// A short name for logs, e.g. `"task notification"`.
    const NAME: &'static str;

    /// An identifier safe to log (never personal data): the task id for a task notification.
    /// Spans and log lines record it in their `task_id` field.
    fn log_id(&self) -> &str;

    /// How many items the event carries (calls for a task notification), for logs and spans.
    fn item_count(&self) -> usize;

    /// The de-duplication key: two deliveries with the same key are the same notification.
    ///
    /// The default hashes (SHA-256) the event serialized again. Serialization writes the
    /// members in one fixed order with no white space, so two deliveries that differ only in
    /// white space or key order (as a retry may) get the same key, while a later notification
    /// about the same task (another status, another round) gets another. The task id alone
    /// would merge those.
    fn dedup_key(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        // Writing into a hasher cannot fail, and a derived or generated Serialize does not.
        let _ = serde_json::to_writer(HashWriter(&mut hasher), self);
        hasher.finalize().into()
    }

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

    fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        Self::from_slice(body)
    }
}

/// An `Event` impl for a decoded callback type: its name, what it logs, what it counts.
macro_rules! event {
    ($ty:ty, $name:literal, |$this:ident| $log_id:expr, |$that:ident| $items:expr $(, $decode:path)?) => {
        impl Event for $ty {
            const NAME: &'static str = $name;

            fn log_id(&self) -> &str {
                let $this = self;
                $log_id
            }

            fn item_count(&self) -> usize {
                let $that = self;
                $items
            }

            $(
                fn decode(body: &[u8]) -> Result<Self, DecodeError> {
                    $decode(body)
                }
            )?
        }
    };
}

event!(
    WorkflowCallCompletion,
    "workflow call completion",
    |e| &e.task_id,
    |e| e.details.len(),
    WorkflowCallCompletion::from_slice
);
event!(
    WorkflowListCompletion,
    "workflow list completion",
    |e| &e.workflow_id,
    |e| e.rows.len()
);
event!(
    WorkflowStatusChange,
    "workflow status change",
    |e| &e.workflow_id,
    |e| e.actions.len()
);
event!(
    ChatbotSessionEnd,
    "chatbot session end",
    |e| e
        .wfdetail_uuid
        .as_deref()
        .or(e.call_id.as_deref())
        .unwrap_or(&e.workflow_id),
    |e| e.messages.len()
);
event!(
    PdsEvent,
    "pds event",
    |e| e.task_id().unwrap_or_else(|| e.kind()),
    |_e| 1
);

impl Event for RawEvent {
    const NAME: &'static str = "raw event";

    fn log_id(&self) -> &str {
        "-"
    }

    fn item_count(&self) -> usize {
        self.object().len()
    }

    /// Any JSON object, strictly (one object, nothing after it), kept verbatim.
    fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let object: serde_json::Map<String, serde_json::Value> = crate::decode::decode(body)?;
        Ok(RawEvent::with_body(object, body))
    }
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_ignores_white_space_and_key_order_but_not_content() {
        let compact = br#"{"task_id":"t1","task_name":"n","status":"finished","created_at":"c","repeat_interval":0,"repeat_number":0,"robot_hash":"r","robot_method":"single","sip_line":"s","schedule_start_time":"a","schedule_end_time":"b","details":[],"x":{"b":1,"a":2}}"#;
        let reordered = br#"{ "details": [], "x": {"a": 2, "b": 1}, "task_name": "n", "task_id": "t1", "status": "finished",
            "created_at": "c", "repeat_number": 0, "repeat_interval": 0, "robot_method": "single", "robot_hash": "r",
            "sip_line": "s", "schedule_end_time": "b", "schedule_start_time": "a" }"#;
        let key = |body: &[u8]| crate::decode::<TaskNotification>(body).unwrap().dedup_key();
        assert_eq!(key(compact), key(reordered));
        let other_status = String::from_utf8(compact.to_vec())
            .unwrap()
            .replace("finished", "paused");
        assert_ne!(key(compact), key(other_status.as_bytes()));
    }
}
