//! Valid notifications: the sender's example, and a builder for any shape the contract allows.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::model::TaskNotification;

/// The sender's example body (the contract's), byte for byte: [`TaskNotification::EXAMPLE`](Example::EXAMPLE).
#[deprecated(
    since = "0.2.0",
    note = "use `TaskNotification::EXAMPLE` (trait `test_util::Example`)"
)]
pub const EXAMPLE: &[u8] = <TaskNotification as Example>::EXAMPLE;

/// The sender's example, decoded: [`TaskNotification::example()`](Example::example).
#[deprecated(
    since = "0.2.0",
    note = "use `TaskNotification::example()` (trait `test_util::Example`)"
)]
pub fn example() -> TaskNotification {
    <TaskNotification as Example>::example()
}

/// Builds valid task notifications, starting from the sender's example.
///
/// Every setter takes the wire value, so that undocumented enum values (`"NO ANSWER"`) and
/// unknown members can be made as easily as documented ones; [`build`](Self::build) decodes
/// the result as the receiver would, and panics if it is not a valid notification (a fixture
/// that the receiver would refuse is a bug in the test). It edits JSON values, whose maps keep
/// their keys sorted: for the example byte for byte, use [`Example::EXAMPLE`].
///
/// ```
/// use airudder_webhook::model::CallResult;
/// use airudder_webhook::test_util::NotificationBuilder;
///
/// let notification = NotificationBuilder::new()
///     .task_id("task-42")
///     .task_name("催收任务 十二月")
///     .calls(3)
///     .call(1, |call| call.result("failed").result_label("C").redials(2))
///     .call(2, |call| call.result("NO ANSWER").ring_type(None))
///     .build();
/// assert_eq!(notification.details.len(), 3);
/// assert_eq!(notification.details[1].result, CallResult::Failed);
/// assert_eq!(notification.details[2].result.as_str(), "NO ANSWER");
/// ```
#[derive(Debug, Clone)]
pub struct NotificationBuilder {
    value: Value,
}

impl Default for NotificationBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl NotificationBuilder {
    /// The sender's example: one call, every member present.
    pub fn new() -> Self {
        Self {
            value: serde_json::from_slice(<TaskNotification as Example>::EXAMPLE)
                .expect("the example is JSON"),
        }
    }

    /// A notification that uses what the contract allows at its edges: Chinese text, an
    /// undocumented status and call result, `ring_type` null and empty, redials, the largest
    /// and smallest integers, `-` and stray spaces in answers, optional members left out of one
    /// call, an unknown member at the top level and in a call.
    pub fn edge_cases() -> Self {
        Self::new()
            .task_name("催收提醒 · 第二轮")
            .status("ARCHIVED")
            .set("repeat_interval", json!(i64::MAX))
            .set("repeat_number", json!(i64::MIN))
            .set("an_unknown_member", json!({"kept": [1, 2.5, "三"]}))
            .calls(4)
            .call(0, |call| {
                call.result("NO ANSWER")
                    .hangup_type("ByCallee")
                    .ring_type(None)
                    .set("intention_description", json!("客户表示下周还款"))
            })
            .call(1, |call| call.ring_type(Some("")).redials(3).duration(0))
            .call(2, |call| {
                call.minimal()
                    .result("cancelled")
                    .result_label(" A ")
                    .hangup_type("Canceled")
            })
            .call(3, |call| {
                call.result("canceled")
                    .ring_type(Some("holdline"))
                    .duration(i64::MAX)
                    .set("a_new_call_member", json!(null))
            })
    }

    /// Sets `task_id`.
    pub fn task_id(self, id: impl Into<String>) -> Self {
        self.set("task_id", Value::String(id.into()))
    }

    /// Sets `task_name` (free text, Chinese included).
    pub fn task_name(self, name: impl Into<String>) -> Self {
        self.set("task_name", Value::String(name.into()))
    }

    /// Sets `status`, documented (`finished`, `canceled`, …) or not.
    pub fn status(self, status: &str) -> Self {
        self.set("status", json!(status))
    }

    /// Sets any top-level member, known or unknown, to any JSON value.
    pub fn set(mut self, member: &str, value: Value) -> Self {
        if let Some(object) = self.value.as_object_mut() {
            object.insert(member.to_owned(), value);
        }
        self
    }

    /// `count` calls like the example's, each with its own `id`, `callee` and `call_id` (0
    /// makes an empty `details`).
    pub fn calls(mut self, count: usize) -> Self {
        let template = self.value["details"][0].clone();
        let details = (0..count)
            .map(|i| {
                let mut call = template.clone();
                call["id"] = json!(931_888_898 + i as i64);
                call["callee"] = json!(format!("+86{:010}", 1_234_567_800 + i));
                call["call_id"] = json!(format!("ic9adfe00d474b{i:016x}"));
                call
            })
            .collect();
        self.value["details"] = Value::Array(details);
        self
    }

    /// Changes the call at `index` (nothing if there is none).
    pub fn call(mut self, index: usize, change: impl FnOnce(CallBuilder) -> CallBuilder) -> Self {
        if let Some(Value::Object(call)) = self.value["details"].get_mut(index) {
            let built = change(CallBuilder {
                call: std::mem::take(call),
            });
            *call = built.call;
        }
        self
    }

    /// Changes every call, with its index.
    pub fn each_call(mut self, mut change: impl FnMut(usize, CallBuilder) -> CallBuilder) -> Self {
        if let Some(details) = self.value["details"].as_array_mut() {
            for (i, call) in details.iter_mut().enumerate() {
                if let Value::Object(object) = call {
                    let built = change(
                        i,
                        CallBuilder {
                            call: std::mem::take(object),
                        },
                    );
                    *object = built.call;
                }
            }
        }
        self
    }

    /// The notification as JSON.
    pub fn to_value(&self) -> Value {
        self.value.clone()
    }

    /// The notification as the bytes of a request body.
    pub fn to_bytes(&self) -> Bytes {
        serde_json::to_vec(&self.value)
            .expect("a JSON value serializes")
            .into()
    }

    /// The notification, decoded as the receiver decodes it.
    ///
    /// # Panics
    /// If the builder made something the receiver would refuse (a member given a value of the
    /// wrong type with [`set`](Self::set)): the message names the member.
    pub fn build(&self) -> TaskNotification {
        match crate::decode(&self.to_bytes()) {
            Ok(notification) => notification,
            Err(err) => panic!("the fixture is not a valid notification: {err}"),
        }
    }
}

/// Changes one call of a [`NotificationBuilder`]; every setter takes the wire value.
#[derive(Debug)]
pub struct CallBuilder {
    call: Map<String, Value>,
}

impl CallBuilder {
    /// Sets `result`: `finished`, `failed`, `cancelled`, … or an undocumented value.
    pub fn result(self, result: &str) -> Self {
        self.set("result", json!(result))
    }

    /// Sets `result_label`, the robot's intention label (`A`, `B`, …).
    pub fn result_label(self, label: &str) -> Self {
        self.set("result_label", json!(label))
    }

    /// Sets `hangup_type`: `ByCallee`, `ByRobot`, `Canceled`, or another value.
    pub fn hangup_type(self, hangup: &str) -> Self {
        self.set("hangup_type", json!(hangup))
    }

    /// Sets `ring_type`; `None` writes JSON `null`.
    pub fn ring_type(self, ring: Option<&str>) -> Self {
        self.set("ring_type", ring.map_or(Value::Null, |ring| json!(ring)))
    }

    /// Sets `duration`, in seconds.
    pub fn duration(self, seconds: i64) -> Self {
        self.set("duration", json!(seconds))
    }

    /// Sets `callee`, the number called.
    pub fn callee(self, number: &str) -> Self {
        self.set("callee", json!(number))
    }

    /// Sets `variables`, the per-number variables uploaded.
    pub fn variables(self, variables: Value) -> Self {
        self.set("variables", variables)
    }

    /// `count` earlier attempts in `redail_call` (the wire's spelling), and `call_times` to
    /// match.
    pub fn redials(self, count: usize) -> Self {
        let redials = (0..count)
            .map(|i| {
                json!({
                    "CallID": format!("redial{i:04}"),
                    "CallStartTime": format!("2022-12-19 15:{:02}:00", 10 + i % 50),
                    "RingType": if i % 2 == 0 { "busy" } else { "" },
                    "RingTime": i as i64 * 5,
                    "HangupType": "ByCallee",
                    "ResultLabel": "F",
                    "caller_number": "TEST_LINE",
                    "callee_number": "+8612345678",
                })
            })
            .collect();
        self.set("call_times", json!(count as i64 + 1))
            .set("redail_call", Value::Array(redials))
    }

    /// Leaves out every optional member: what remains is the contract's required ten.
    pub fn minimal(mut self) -> Self {
        const REQUIRED: [&str; 10] = [
            "id",
            "callee",
            "result",
            "result_label",
            "intention_description",
            "duration",
            "hangup_type",
            "ring_type",
            "question_answer",
            "caller_number",
        ];
        self.call.retain(|key, _| REQUIRED.contains(&key.as_str()));
        self
    }

    /// Sets any member of the call, known or unknown, to any JSON value.
    pub fn set(mut self, member: &str, value: Value) -> Self {
        self.call.insert(member.to_owned(), value);
        self
    }
}

/// An event type's example body, for tests: the sender's own example where there is one (the
/// task notification, the chatbot session end), or one made from the public field tables.
pub trait Example: crate::Event {
    /// The example body, as bytes.
    const EXAMPLE: &'static [u8];

    /// The example, decoded.
    fn example() -> Self {
        match Self::decode(Self::EXAMPLE) {
            Ok(event) => event,
            Err(err) => panic!("the {} example does not decode: {err}", Self::NAME),
        }
    }
}

macro_rules! examples {
    ($($ty:ty => $file:literal,)*) => {
        $(
            impl Example for $ty {
                const EXAMPLE: &'static [u8] = include_bytes!(concat!("../../tests/data/", $file));
            }
        )*
    };
}

examples! {
    TaskNotification => "task_notification.example.json",
    crate::model::WorkflowCallCompletion => "workflow_call_completion.example.json",
    crate::model::WorkflowListCompletion => "workflow_list_completion.example.json",
    crate::model::WorkflowStatusChange => "workflow_status_change.example.json",
    crate::model::ChatbotSessionEnd => "chatbot_session_end.example.json",
    crate::model::PdsEvent => "pds_contact_status.example.json",
    crate::model::RawEvent => "workflow_status_change.example.json",
}

/// The predictive dialer's three known event types, each as a body.
pub const PDS_EXAMPLES: [&[u8]; 3] = [
    include_bytes!("../../tests/data/pds_task_status.example.json"),
    include_bytes!("../../tests/data/pds_agent_status.example.json"),
    include_bytes!("../../tests/data/pds_contact_status.example.json"),
];

/// The workflow call completion with its five workflow members in each call instead of at the
/// top level.
pub const WORKFLOW_CALL_IN_CALLS_EXAMPLE: &[u8] =
    include_bytes!("../../tests/data/workflow_call_completion.in_calls.example.json");
