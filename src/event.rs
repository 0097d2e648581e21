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
        let mut writer = HashWriter::new(&mut hasher);
        // Writing into a hasher cannot fail, and a derived or generated Serialize does not.
        let _ = serde_json::to_writer(&mut writer, self);
        writer.finish();
        hasher.finalize().into()
    }

    /// The key whose events a receiver [ordered](crate::ReceiverBuilder::ordered) hands to the
    /// handler one at a time, in the order received; `None`: this event is not ordered. The
    /// default is `None`. Each bundled event type documents its key. A key is kept in the
    /// store and shown to operators: never a customer's personal data (a phone number).
    fn order_key(&self) -> Option<String> {
        None
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

    /// The task (`task_id`): a task's notifications in the order sent.
    fn order_key(&self) -> Option<String> {
        non_empty(&self.task_id)
    }

    fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        Self::from_slice(body)
    }
}

/// A key from an id, unless it is empty.
fn non_empty(id: &str) -> Option<String> {
    (!id.is_empty()).then(|| id.to_owned())
}

/// An `Event` impl for a decoded callback type: its name, what it logs, what it counts, what
/// it is ordered by (each type's key is documented on the type).
macro_rules! event {
    ($ty:ty, $name:literal, |$this:ident| $log_id:expr, |$that:ident| $items:expr, |$it:ident| $order:expr $(, $decode:path)?) => {
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

            fn order_key(&self) -> Option<String> {
                let $it = self;
                $order
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
    |e| non_empty(&e.task_id),
    WorkflowCallCompletion::from_slice
);
event!(
    WorkflowListCompletion,
    "workflow list completion",
    |e| &e.workflow_id,
    |e| e.rows.len(),
    |e| non_empty(&e.workflow_id)
);
event!(
    WorkflowStatusChange,
    "workflow status change",
    |e| &e.workflow_id,
    |e| e.actions.len(),
    |e| non_empty(&e.workflow_id)
);
event!(
    ChatbotSessionEnd,
    "chatbot session end",
    |e| e
        .wfdetail_uuid
        .as_deref()
        .or(e.call_id.as_deref())
        .unwrap_or(&e.workflow_id),
    |e| e.messages.len(),
    |e| e
        .wfdetail_uuid
        .as_deref()
        .and_then(non_empty)
        .or_else(|| e.call_id.as_deref().and_then(non_empty))
);
event!(
    PdsEvent,
    "pds event",
    |e| e.task_id().unwrap_or_else(|| e.kind()),
    |_e| 1,
    |e| e.order_key()
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

/// Feeds the hasher in chunks: the serializer writes a notification in hundreds of pieces of a
/// few bytes, and each `update` of the hasher has a cost of its own. Gathered first, the key of
/// the example takes half the time (`benches/README.md`), and memory stays bounded by the chunk
/// whatever the notification's size.
struct HashWriter<'a> {
    hasher: &'a mut Sha256,
    gathered: Vec<u8>,
}

/// What [`HashWriter`] gathers before it hashes: 128 blocks of SHA-256.
const HASH_CHUNK: usize = 8192;

impl<'a> HashWriter<'a> {
    fn new(hasher: &'a mut Sha256) -> Self {
        Self {
            hasher,
            gathered: Vec::with_capacity(HASH_CHUNK),
        }
    }

    /// Hashes what is gathered.
    fn finish(self) {
        self.hasher.update(&self.gathered);
    }
}

impl std::io::Write for HashWriter<'_> {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.gathered.len() + buf.len() > HASH_CHUNK {
            self.hasher.update(&self.gathered);
            self.gathered.clear();
        }
        if buf.len() > HASH_CHUNK {
            // A piece longer than a chunk (a long string) is hashed as it is.
            self.hasher.update(buf);
        } else {
            self.gathered.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    /// Every write takes the whole piece: no loop, no retry.
    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.write(buf).map(|_| ())
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

    #[test]
    fn the_key_is_the_hash_of_the_whole_serialization_at_every_size() {
        // Keys are stored: they must not change with how the bytes reach the hasher. Bodies
        // below, around and past the chunk, with strings longer than a chunk.
        let example: serde_json::Value = serde_json::from_slice(include_bytes!(
            "../tests/data/task_notification.example.json"
        ))
        .unwrap();
        for (calls, long) in [(0, 0), (1, 0), (3, 10), (1, 5_000), (4, 9_000), (40, 100)] {
            let mut body = example.clone();
            let call = body["details"][0].clone();
            body["details"] = (0..calls)
                .map(|i| {
                    let mut call = call.clone();
                    call["id"] = serde_json::json!(i);
                    call["intention_description"] = serde_json::json!("d".repeat(long + i));
                    call
                })
                .collect();
            let event: TaskNotification = serde_json::from_value(body).unwrap();
            let whole = Sha256::digest(serde_json::to_vec(&event).unwrap());
            assert_eq!(
                event.dedup_key(),
                <[u8; 32]>::from(whole),
                "{calls} calls, {long}"
            );
        }
    }
}
