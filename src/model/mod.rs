//! The typed task notification, and Airudder's other callbacks.
//!
//! | callback | type | path in the relay |
//! | --- | --- | --- |
//! | task notification (the contract) | [`TaskNotification`] | `/airudder/task` |
//! | workflow call completion | [`WorkflowCallCompletion`] | `/airudder/workflow/call` |
//! | workflow list completion | [`WorkflowListCompletion`] | `/airudder/workflow/list` |
//! | workflow status change | [`WorkflowStatusChange`] | `/airudder/workflow/status` |
//! | chatbot session end | [`ChatbotSessionEnd`] | `/airudder/chatbot/session` |
//! | predictive dialer events | [`PdsEvent`] | `/airudder/pds` |
//! | any other (bodies not public) | [`RawEvent`] | `/airudder/raw/{name}` |
//!
//! Every one follows the rules below; members and values beyond the public material are never
//! invented: they are kept.
//!
//! [`TaskNotification`] holds every member of the sender's contract, with Rust names that read
//! well; serialization keeps the wire names (the misspelt `redail_call` and the PascalCase
//! members included).
//!
//! # Tolerant where the sender is loose
//! - Every enum has the documented values as variants and keeps any other string verbatim in
//!   `Other(String)`; both spellings of cancelled are variants.
//! - Optional members accept absent and `null`; the free-form maps (`EventLabel`, `Slots`,
//!   `NerSlots`, `variables`) keep any JSON, as [`Fields`]: the members of an object in the order
//!   sent, compactly.
//! - Members the contract does not name are kept in `extra` and serialized again.
//! - Timestamps are kept as sent ([`Timestamp`]); [`Timestamp::parse`] reads them.
//!
//! Serializing a decoded notification gives JSON equal (as a value) to the body it came from.
//!
//! # Strict where it matters
//! A body that is not JSON, has trailing bytes, is not an object, misses a required member,
//! holds a member of the wrong JSON type, repeats a member or nests deeper than 128 levels is
//! refused by [`decode`](crate::decode), with the path of the offending member.
//!
//! ```
//! use airudder_webhook::model::{CallResult, TaskNotification};
//!
//! let body = include_bytes!("../../tests/data/task_notification.example.json");
//! let notification: TaskNotification = airudder_webhook::decode(body)?;
//! let call = &notification.details[0];
//! assert_eq!(call.result, CallResult::Finished);
//! assert_eq!(call.variable("creditnumber").and_then(|v| v.as_str()), Some("1234"));
//! // Debug output masks phone numbers and uploaded variables.
//! assert!(!format!("{call:?}").contains("+8612345678"));
//! # Ok::<(), airudder_webhook::DecodeError>(())
//! ```

#[macro_use]
pub(crate) mod macros;
mod chatbot;
mod enums;
pub(crate) mod fast;
mod fields;
mod pds;
mod raw;
#[macro_use]
mod task;
mod text;
mod time;
mod workflow;

pub use chatbot::{
    ButtonContent, ChatMessage, ChatbotSessionEnd, MessageContent, MessageStatus, SenderType,
    SystemContent, SystemEvent, Template, TemplateContent,
};
pub use enums::{CallResult, HangupType, RingType, RobotMethod, TaskStatus};
pub use fields::Fields;
pub use pds::{
    AgentStatus, ContactStatus, CustomizeResult, CustomizeResults, EpochMillis, HangupReason,
    PdsBody, PdsEvent, PdsState, PdsStatusBody,
};
pub use raw::RawEvent;
pub use task::{Call, QuestionAnswer, RedialAttempt, TaskNotification};
pub use text::Text;
pub use time::{ParsedTime, Timestamp, TimestampError};
pub use workflow::{
    WorkflowAction, WorkflowCall, WorkflowCallCompletion, WorkflowListCompletion, WorkflowNode,
    WorkflowStatusChange,
};
