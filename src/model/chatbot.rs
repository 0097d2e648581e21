//! Airudder's chatbot session end callback (a workflow's WhatsApp or other chat session).
//!
//! The members are those of the sender's one public example; its header `X-AIRudder-Sign`
//! is checked by an [`Authorize`](crate::auth::Authorize) you supply (the algorithm is not
//! public). Keys are snake_case here (`ner_slots`, `event_label`) where the task notification
//! writes `NerSlots` and `EventLabel`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fast::{Fast, Scanner};
use super::{Fields, Text, Timestamp};
use crate::redact::{MaskedPhone, MaskedValue};

wire_struct! {
    /// A chatbot session end: who was talked to on which channel, and every message.
    ///
    /// Its `Debug` output masks the number and the uploaded variables, and leaves out the
    /// messages' text.
    #[derive(Clone, PartialEq)]
    pub struct ChatbotSessionEnd expecting "a chatbot session end object" {
        /// `workflow_id`.
        required workflow_id: Text = "workflow_id",
        /// `workflow_name`.
        optional workflow_name: Text = "workflow_name",
        /// `nodetask_id`.
        optional nodetask_id: Text = "nodetask_id",
        /// `nodetask_name`.
        optional nodetask_name: Text = "nodetask_name",
        /// `waba_task_id`.
        optional waba_task_id: Text = "waba_task_id",
        /// `wfdetail_uuid`.
        optional wfdetail_uuid: Text = "wfdetail_uuid",
        /// `timestamp`, in epoch seconds.
        optional timestamp: i64 = "timestamp",
        /// `channel`, e.g. `WhatsApp`.
        optional channel: Text = "channel",
        /// `channel_id`: the sending account's number.
        optional channel_id: Text = "channel_id",
        /// `callee`: the person's number. Personal data.
        optional callee: Text = "callee",
        /// `call_id`.
        optional call_id: Text = "call_id",
        /// `robot_id`, a numeric string.
        optional robot_id: Text = "robot_id",
        /// `status`, e.g. `closed`.
        optional status: Text = "status",
        /// `session_start_time`, ISO 8601.
        optional session_start_time: Timestamp = "session_start_time",
        /// `session_end_time`, ISO 8601.
        optional session_end_time: Timestamp = "session_end_time",
        /// `session_end_reason`, e.g. `robot`.
        optional session_end_reason: Text = "session_end_reason",
        /// `intention`: the intention label, a letter.
        optional intention: Text = "intention",
        /// `talk_round`.
        optional talk_round: i64 = "talk_round",
        /// `ner_slots`: named entities (any JSON is kept).
        optional ner_slots: Fields = "ner_slots",
        /// `event_label` (it wraps an inner `EventLabel` key; any JSON is kept).
        optional event_label: Fields = "event_label",
        /// `variables`: what you uploaded for this person. Personal data.
        optional variables: Fields = "variables",
        /// `messages`: the conversation, in the order sent.
        required messages: Vec<ChatMessage> = "messages",
    }
}

impl fmt::Debug for ChatbotSessionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatbotSessionEnd")
            .field("workflow_id", &self.workflow_id)
            .field("call_id", &self.call_id)
            .field("channel", &self.channel)
            .field("callee", &self.callee.as_deref().map(MaskedPhone))
            .field("status", &self.status)
            .field(
                "variables",
                &super::task::keys_only(&self.variables).map(MaskedValue),
            )
            .field("messages", &self.messages.len())
            .finish_non_exhaustive()
    }
}

wire_enum! {
    /// Who sent a [`ChatMessage`] (`sender_type`).
    pub enum SenderType {
        /// `system`
        System = "system",
        /// `chatbot`
        Chatbot = "chatbot",
        /// `user`: the person.
        User = "user",
    }
}

wire_enum! {
    /// How far a [`ChatMessage`] got (`status`).
    pub enum MessageStatus {
        /// `delivery`
        Delivery = "delivery",
        /// `read`
        Read = "read",
    }
}

wire_struct! {
    /// One message of a [`ChatbotSessionEnd`].
    #[derive(Debug, Clone, PartialEq)]
    pub struct ChatMessage expecting "a message object" {
        /// `msg_id`.
        optional msg_id: Text = "msg_id",
        /// `sender_type`.
        optional sender_type: SenderType = "sender_type",
        /// `timestamp`, in epoch seconds.
        optional timestamp: i64 = "timestamp",
        /// `status`.
        optional status: MessageStatus = "status",
        /// `content`, by its `type`.
        required content: MessageContent = "content",
        /// `reply` (any JSON is kept).
        optional reply: Fields = "reply",
    }
}

/// What a [`ChatMessage`] holds, by its `content.type`: the kinds of the sender's example, and
/// any other kept whole.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MessageContent {
    /// `type: "system"`: a conversation event.
    System(SystemContent),
    /// `type: "template"`: a channel template (WhatsApp's), with its header, body and buttons.
    Template(TemplateContent),
    /// `type: "button"`: the person pressed a button.
    Button(ButtonContent),
    /// Another `type`: the content object, whole.
    Other(serde_json::Map<String, Value>),
}

impl MessageContent {
    /// The `type` as sent.
    pub fn kind(&self) -> &str {
        match self {
            Self::System(_) => "system",
            Self::Template(_) => "template",
            Self::Button(_) => "button",
            Self::Other(object) => object.get("type").and_then(Value::as_str).unwrap_or(""),
        }
    }

    fn from_object(object: serde_json::Map<String, Value>) -> Result<Self, serde_json::Error> {
        let value = Value::Object(object);
        Ok(match value.get("type").and_then(Value::as_str) {
            Some("system") => Self::System(serde_json::from_value(value)?),
            Some("template") => Self::Template(serde_json::from_value(value)?),
            Some("button") => Self::Button(serde_json::from_value(value)?),
            _ => match value {
                Value::Object(object) => Self::Other(object),
                _ => unreachable!("built from an object"),
            },
        })
    }
}

impl<'de> Deserialize<'de> for MessageContent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let object = serde_json::Map::<String, Value>::deserialize(deserializer)?;
        Self::from_object(object).map_err(serde::de::Error::custom)
    }
}

impl Serialize for MessageContent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::System(content) => content.serialize(serializer),
            Self::Template(content) => content.serialize(serializer),
            Self::Button(content) => content.serialize(serializer),
            Self::Other(object) => object.serialize(serializer),
        }
    }
}

impl Fast for MessageContent {
    fn fast(scanner: &mut Scanner<'_>) -> Option<Self> {
        match scanner.value()? {
            Value::Object(object) => Self::from_object(object).ok(),
            _ => None,
        }
    }
}

wire_struct! {
    /// A [`MessageContent::System`] message.
    #[derive(Debug, Clone, PartialEq)]
    pub struct SystemContent expecting "a system content object" {
        /// `type`: `system`.
        required kind: Text = "type",
        /// `system`: the event.
        optional system: SystemEvent = "system",
    }
}

wire_struct! {
    /// The event of a [`SystemContent`].
    #[derive(Debug, Clone, PartialEq)]
    pub struct SystemEvent expecting "a system event object" {
        /// `type`, e.g. `conversation.start`.
        optional kind: Text = "type",
        /// `from_seat_id`.
        optional from_seat_id: Text = "from_seat_id",
        /// `to_seat_id`.
        optional to_seat_id: Text = "to_seat_id",
    }
}

wire_struct! {
    /// A [`MessageContent::Template`] message.
    #[derive(Debug, Clone, PartialEq)]
    pub struct TemplateContent expecting "a template content object" {
        /// `type`: `template`.
        required kind: Text = "type",
        /// `template`.
        optional template: Template = "template",
    }
}

wire_struct! {
    /// The template of a [`TemplateContent`].
    #[derive(Debug, Clone, PartialEq)]
    pub struct Template expecting "a template object" {
        /// `type`: the channel, e.g. `WhatsApp`.
        optional kind: Text = "type",
        /// `content`: header, body, footer and buttons, as the channel has them (any JSON is
        /// kept).
        optional content: Fields = "content",
        /// `info`: the template's id, name and language (any JSON is kept).
        optional info: Fields = "info",
    }
}

wire_struct! {
    /// A [`MessageContent::Button`] message.
    #[derive(Debug, Clone, PartialEq)]
    pub struct ButtonContent expecting "a button content object" {
        /// `type`: `button`.
        required kind: Text = "type",
        /// `text`: the button's text.
        optional text: Text = "text",
    }
}
