//! The task notification and the objects inside it.

use std::fmt;

use serde_json::{Map, Value};

use super::{CallResult, Fields, HangupType, RingType, RobotMethod, TaskStatus, Text, Timestamp};
use crate::redact::{MaskedPhone, MaskedValue};

/// The task notification's members, in one list: for [`TaskNotification`] and for the
/// notices that extend it (the workflow call completion), each with its own call type and its
/// own members after these.
macro_rules! task_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident of $call:ty, expecting $expecting:literal { $($more:tt)* }
    ) => {
        wire_struct! {
            $(#[$meta])*
            pub struct $name expecting $expecting {
                /// `task_id`, e.g. `ic1a7a8f2b…`.
                required task_id: Text = "task_id",
                /// `task_name`: free text, may be Chinese.
                required task_name: Text = "task_name",
                /// `status`: the state of the task.
                required status: TaskStatus = "status",
                /// `created_at`, documented as `YYYY-MM-DD HH:MM:SS`.
                required created_at: Timestamp = "created_at",
                /// `repeat_interval`.
                required repeat_interval: i64 = "repeat_interval",
                /// `repeat_number`.
                required repeat_number: i64 = "repeat_number",
                /// `robot_hash`: the robot's id.
                required robot_hash: Text = "robot_hash",
                /// `robot_method`: `single` or `group`.
                required robot_method: RobotMethod = "robot_method",
                /// `sip_line`.
                required sip_line: Text = "sip_line",
                /// `schedule_start_time`.
                required schedule_start_time: Timestamp = "schedule_start_time",
                /// `schedule_end_time`.
                required schedule_end_time: Timestamp = "schedule_end_time",
                /// `details`: one entry per called number.
                required details: Vec<$call> = "details",
                $($more)*
            }
        }
    };
}

/// A call's members, in one list: for [`Call`] and for the calls of the notices that extend the
/// task notification.
macro_rules! call_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident expecting $expecting:literal { $($more:tt)* }
    ) => {
        wire_struct! {
            $(#[$meta])*
            pub struct $name expecting $expecting {
                /// `id`, e.g. 931888898.
                required id: i64 = "id",
                /// `callee`: the number called, E.164-like (`+8612345678`). Personal data.
                required callee: Text = "callee",
                /// `result`: the outcome of the call.
                required result: CallResult = "result",
                /// `result_label`: the robot's intention label, e.g. `A`.
                required result_label: Text = "result_label",
                /// `intention_description`.
                required intention_description: Text = "intention_description",
                /// `duration`, in seconds.
                required duration: i64 = "duration",
                /// `hangup_type`: who ended the call.
                required hangup_type: HangupType = "hangup_type",
                /// `ring_type`: how the line answered; `None` when the sender wrote `null`.
                nullable ring_type: RingType = "ring_type",
                /// `question_answer`: the robot's questions and what was answered.
                required question_answer: Vec<QuestionAnswer> = "question_answer",
                /// `caller_number`: the line the robot called from.
                required caller_number: Text = "caller_number",
                /// `EventLabel`: a free-form map (any JSON is kept).
                optional event_label: Fields = "EventLabel",
                /// `Slots`: a free-form map (any JSON is kept).
                optional slots: Fields = "Slots",
                /// `NerSlots`: a free-form map of named entities (any JSON is kept).
                optional ner_slots: Fields = "NerSlots",
                /// `variables`: the per-number variables you uploaded (any JSON is kept). Personal data.
                optional variables: Fields = "variables",
                /// `robot_hash`.
                optional robot_hash: Text = "robot_hash",
                /// `call_id`.
                optional call_id: Text = "call_id",
                /// `call_times`: the attempt count.
                optional call_times: i64 = "call_times",
                /// `call_start_time`.
                optional call_start_time: Timestamp = "call_start_time",
                /// `call_end_time`.
                optional call_end_time: Timestamp = "call_end_time",
                /// `ring_time`, in seconds.
                optional ring_time: i64 = "ring_time",
                /// `talk_round`.
                optional talk_round: i64 = "talk_round",
                /// `redail_call` (sic): earlier attempts of this call.
                optional redial_calls: Vec<RedialAttempt> = "redail_call",
                $($more)*
            }
        }
    };
}

task_struct! {
    /// A task notification: the body Airudder POSTs when the calls of a task end.
    ///
    /// See the [module guide](crate::model) for the tolerance rules.
    #[derive(Debug, Clone, PartialEq)]
    pub struct TaskNotification of Call, expecting "a task notification object" {}
}

call_struct! {
    /// One called number in [`TaskNotification::details`].
    ///
    /// Its `Debug` output masks the phone numbers and the uploaded variables: they are personal
    /// data.
    #[derive(Clone, PartialEq)]
    pub struct Call expecting "a call object" {}
}

wire_struct! {
    /// One entry of [`Call::question_answer`].
    ///
    /// Every member is optional. The sender writes `-` for "no value" and leaves stray spaces:
    /// [`QuestionAnswer::value`] cleans a member up.
    #[derive(Debug, Clone, PartialEq)]
    pub struct QuestionAnswer expecting "a question_answer object" {
        /// `question_name`, e.g. `Q1`.
        optional question_name: Text = "question_name",
        /// `answer`.
        optional answer: Text = "answer",
        /// `answer_text`: what the callee said.
        optional answer_text: Text = "answer_text",
        /// `status`, e.g. `Completed`.
        optional status: Text = "status",
        /// `answer_text_slot`.
        optional answer_text_slot: Text = "answer_text_slot",
        /// `var`.
        optional var: Text = "var",
        /// `verification_results`, e.g. `Match`.
        optional verification_results: Text = "verification_results",
        /// `question_content`.
        optional question_content: Text = "question_content",
        /// `question_type`, e.g. `open` or `whether`.
        optional question_type: Text = "question_type",
        /// `whether_answer`, e.g. `Answered`.
        optional whether_answer: Text = "whether_answer",
    }
}

impl QuestionAnswer {
    /// A member with the sender's noise removed: trimmed, and `None` for `-` or empty.
    ///
    /// ```
    /// use airudder_webhook::model::QuestionAnswer;
    ///
    /// let qa: QuestionAnswer = serde_json::from_str(r#"{"var": "-", "question_content": " Willingness Check"}"#)?;
    /// assert_eq!(QuestionAnswer::value(&qa.var), None);
    /// assert_eq!(QuestionAnswer::value(&qa.question_content), Some("Willingness Check"));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn value(member: &Option<Text>) -> Option<&str> {
        let trimmed = member.as_deref()?.trim();
        (!trimmed.is_empty() && trimmed != "-").then_some(trimmed)
    }
}

wire_struct! {
    /// An earlier attempt of a call, in [`Call::redial_calls`] (wire name `redail_call`).
    ///
    /// Every member is optional. Its `Debug` output masks the phone numbers.
    #[derive(Clone, PartialEq)]
    pub struct RedialAttempt expecting "a redail_call object" {
        /// `CallID`.
        optional call_id: Text = "CallID",
        /// `CallStartTime`.
        optional call_start_time: Timestamp = "CallStartTime",
        /// `RingType`: the example sends the empty string.
        optional ring_type: RingType = "RingType",
        /// `RingTime`, in seconds.
        optional ring_time: i64 = "RingTime",
        /// `HangupType`.
        optional hangup_type: HangupType = "HangupType",
        /// `ResultLabel`.
        optional result_label: Text = "ResultLabel",
        /// `caller_number`.
        optional caller_number: Text = "caller_number",
        /// `callee_number`. Personal data.
        optional callee_number: Text = "callee_number",
    }
}

impl TaskNotification {
    /// Decodes a body, strictly: [`decode`](crate::decode) for this type, faster.
    ///
    /// A pass written for the contract's shapes reads the body first; a body it is not sure of
    /// (an escape in a key, repeated or missing members, anything malformed) is decoded again
    /// by serde_json, so the result and every error are exactly those of
    /// [`decode`](crate::decode). The receiver decodes task notifications this way.
    ///
    /// # Errors
    /// A [`DecodeError`](crate::DecodeError), as [`decode`](crate::decode) reports it.
    ///
    /// ```
    /// use airudder_webhook::model::TaskNotification;
    ///
    /// let body = include_bytes!("../../tests/data/task_notification.example.json");
    /// let notification = TaskNotification::from_slice(body)?;
    /// assert_eq!(notification, airudder_webhook::decode::<TaskNotification>(body)?);
    /// # Ok::<(), airudder_webhook::DecodeError>(())
    /// ```
    pub fn from_slice(body: &[u8]) -> Result<Self, crate::DecodeError> {
        crate::decode::decode_with(body, super::fast::decode)
    }

    /// The number of calls in [`details`](Self::details).
    pub fn call_count(&self) -> usize {
        self.details.len()
    }
}

impl Call {
    /// One of the variables you uploaded for this number, if `variables` is an object holding it.
    pub fn variable(&self, name: &str) -> Option<&Value> {
        self.variables.as_ref()?.get(name)
    }
}

/// The keys of a free-form map, for a `Debug` that hides its values.
pub(super) fn keys_only(fields: &Option<Fields>) -> Option<Vec<&str>> {
    Some(fields.as_ref()?.keys().collect())
}

fn masked_extra(extra: &Map<String, Value>) -> Vec<&str> {
    extra.keys().map(String::as_str).collect()
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("id", &self.id)
            .field("callee", &MaskedPhone(self.callee.as_str()))
            .field("result", &self.result)
            .field("result_label", &self.result_label)
            .field("duration", &self.duration)
            .field("hangup_type", &self.hangup_type)
            .field("ring_type", &self.ring_type)
            .field("question_answer", &self.question_answer.len())
            .field("caller_number", &MaskedPhone(self.caller_number.as_str()))
            .field("variables", &keys_only(&self.variables).map(MaskedValue))
            .field("call_id", &self.call_id)
            .field("call_times", &self.call_times)
            .field("call_start_time", &self.call_start_time)
            .field("call_end_time", &self.call_end_time)
            .field("redial_calls", &self.redial_calls)
            .field("extra", &masked_extra(&self.extra))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RedialAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedialAttempt")
            .field("call_id", &self.call_id)
            .field("call_start_time", &self.call_start_time)
            .field("ring_type", &self.ring_type)
            .field("ring_time", &self.ring_time)
            .field("hangup_type", &self.hangup_type)
            .field("result_label", &self.result_label)
            .field(
                "caller_number",
                &self.caller_number.as_deref().map(MaskedPhone),
            )
            .field(
                "callee_number",
                &self.callee_number.as_deref().map(MaskedPhone),
            )
            .finish_non_exhaustive()
    }
}
