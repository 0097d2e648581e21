//! The task notification as a typical user would write it with plain `#[derive(Deserialize)]`:
//! the baseline that says what the crate's fast path buys.
//!
//! The same members and nesting as `airudder_webhook::model::TaskNotification`, with the types
//! one writes without thinking about speed: owned `String`s (the enums and the timestamps too),
//! `i64`s, `Option`s for the optional members, `Vec`s, `serde_json::Value` for the free-form
//! maps (`EventLabel`, `Slots`, `NerSlots`, `variables`, which may hold any JSON), and
//! `rename` where the wire name is not a Rust name. Decoded with `serde_json::from_slice`.
//!
//! What it does not do that the crate does: keep unknown members (`extra`) and tell `null`
//! from absent. On the bodies the benches decode (no unknown or `null` members) that changes no
//! work; [`assert_agrees`] checks that the two decodes agree.
//!
//! Shared by the decode, instructions and memory benches (`mod plain;`).

// The members are decoded to be measured, not read.
#![allow(dead_code)]

use airudder_webhook::model;
use serde::Deserialize;
use serde_json::Value;

/// A task notification.
#[derive(Debug, Deserialize)]
pub(crate) struct TaskNotification {
    pub(crate) task_id: String,
    pub(crate) task_name: String,
    pub(crate) status: String,
    pub(crate) created_at: String,
    pub(crate) repeat_interval: i64,
    pub(crate) repeat_number: i64,
    pub(crate) robot_hash: String,
    pub(crate) robot_method: String,
    pub(crate) sip_line: String,
    pub(crate) schedule_start_time: String,
    pub(crate) schedule_end_time: String,
    pub(crate) details: Vec<Call>,
}

/// One called number.
#[derive(Debug, Deserialize)]
pub(crate) struct Call {
    pub(crate) id: i64,
    pub(crate) callee: String,
    pub(crate) result: String,
    pub(crate) result_label: String,
    pub(crate) intention_description: String,
    pub(crate) duration: i64,
    pub(crate) hangup_type: String,
    pub(crate) ring_type: Option<String>,
    pub(crate) question_answer: Vec<QuestionAnswer>,
    pub(crate) caller_number: String,
    #[serde(rename = "EventLabel")]
    pub(crate) event_label: Option<Value>,
    #[serde(rename = "Slots")]
    pub(crate) slots: Option<Value>,
    #[serde(rename = "NerSlots")]
    pub(crate) ner_slots: Option<Value>,
    pub(crate) variables: Option<Value>,
    pub(crate) robot_hash: Option<String>,
    pub(crate) call_id: Option<String>,
    pub(crate) call_times: Option<i64>,
    pub(crate) call_start_time: Option<String>,
    pub(crate) call_end_time: Option<String>,
    pub(crate) ring_time: Option<i64>,
    pub(crate) talk_round: Option<i64>,
    #[serde(rename = "redail_call")]
    pub(crate) redial_calls: Option<Vec<RedialAttempt>>,
}

/// One entry of `question_answer`.
#[derive(Debug, Deserialize)]
pub(crate) struct QuestionAnswer {
    pub(crate) question_name: Option<String>,
    pub(crate) answer: Option<String>,
    pub(crate) answer_text: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) answer_text_slot: Option<String>,
    pub(crate) var: Option<String>,
    pub(crate) verification_results: Option<String>,
    pub(crate) question_content: Option<String>,
    pub(crate) question_type: Option<String>,
    pub(crate) whether_answer: Option<String>,
}

/// One entry of `redail_call`.
#[derive(Debug, Deserialize)]
pub(crate) struct RedialAttempt {
    #[serde(rename = "CallID")]
    pub(crate) call_id: Option<String>,
    #[serde(rename = "CallStartTime")]
    pub(crate) call_start_time: Option<String>,
    #[serde(rename = "RingType")]
    pub(crate) ring_type: Option<String>,
    #[serde(rename = "RingTime")]
    pub(crate) ring_time: Option<i64>,
    #[serde(rename = "HangupType")]
    pub(crate) hangup_type: Option<String>,
    #[serde(rename = "ResultLabel")]
    pub(crate) result_label: Option<String>,
    pub(crate) caller_number: Option<String>,
    pub(crate) callee_number: Option<String>,
}

/// Decodes `body` as a typical user's handler would.
pub(crate) fn decode(body: &[u8]) -> TaskNotification {
    serde_json::from_slice(body).expect("the plain mirror decodes the body")
}

/// Panics unless the plain mirror and `TaskNotification::from_slice` decode `body` to the same
/// notification, member by member for the task and every call, so that the benches compare
/// equal work.
pub(crate) fn assert_agrees(body: &[u8]) {
    let plain = decode(body);
    let typed = model::TaskNotification::from_slice(body).expect("the library decodes the body");
    assert_eq!(plain.task_id, typed.task_id.as_str());
    assert_eq!(plain.task_name, typed.task_name.as_str());
    assert_eq!(plain.status, typed.status.as_str());
    assert_eq!(plain.created_at, typed.created_at.as_str());
    assert_eq!(plain.repeat_interval, typed.repeat_interval);
    assert_eq!(plain.schedule_end_time, typed.schedule_end_time.as_str());
    assert_eq!(plain.details.len(), typed.call_count());
    assert!(typed.extra.is_empty(), "no member the mirror would skip");
    for (plain, typed) in plain.details.iter().zip(&typed.details) {
        assert_eq!(plain.id, typed.id);
        assert_eq!(plain.callee, typed.callee.as_str());
        assert_eq!(plain.result, typed.result.as_str());
        assert_eq!(plain.duration, typed.duration);
        assert_eq!(
            plain.ring_type.as_deref(),
            typed.ring_type.as_ref().map(|r| r.as_str())
        );
        assert_eq!(plain.caller_number, typed.caller_number.as_str());
        assert_eq!(plain.call_id.as_deref(), typed.call_id.as_deref());
        assert_eq!(plain.call_times, typed.call_times);
        let fields = |f: &Option<model::Fields>| f.as_ref().map(model::Fields::to_value);
        assert_eq!(plain.event_label, fields(&typed.event_label));
        assert_eq!(plain.slots, fields(&typed.slots));
        assert_eq!(plain.ner_slots, fields(&typed.ner_slots));
        assert_eq!(plain.variables, fields(&typed.variables));
        assert!(typed.extra.is_empty(), "no member the mirror would skip");
        assert_eq!(plain.question_answer.len(), typed.question_answer.len());
        for (plain, typed) in plain.question_answer.iter().zip(&typed.question_answer) {
            assert_eq!(
                plain.question_name.as_deref(),
                typed.question_name.as_deref()
            );
            assert_eq!(plain.answer_text.as_deref(), typed.answer_text.as_deref());
            assert_eq!(
                plain.question_content.as_deref(),
                typed.question_content.as_deref()
            );
            assert!(typed.extra.is_empty(), "no member the mirror would skip");
        }
        let redials = plain.redial_calls.as_deref().unwrap_or_default();
        let typed_redials = typed.redial_calls.as_deref().unwrap_or_default();
        assert_eq!(redials.len(), typed_redials.len());
        for (plain, typed) in redials.iter().zip(typed_redials) {
            assert_eq!(plain.call_id.as_deref(), typed.call_id.as_deref());
            assert_eq!(plain.ring_time, typed.ring_time);
            assert_eq!(
                plain.callee_number.as_deref(),
                typed.callee_number.as_deref()
            );
            assert!(typed.extra.is_empty(), "no member the mirror would skip");
        }
    }
}
