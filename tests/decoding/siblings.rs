//! Airudder's other callbacks: each decodes its example, keeps what it does not know, and refuses
//! a wrong shape with the member's path.

use airudder_webhook::model::{
    ChatbotSessionEnd, CustomizeResults, MessageContent, MessageStatus, PdsBody, PdsEvent,
    PdsState, RawEvent, SenderType, TaskNotification, WorkflowCallCompletion,
    WorkflowListCompletion, WorkflowStatusChange,
};
use airudder_webhook::{DecodeErrorKind, Event};
use serde_json::{Value, json};

const CHATBOT: &[u8] = include_bytes!("../data/chatbot_session_end.example.json");
const WORKFLOW_CALL: &[u8] = include_bytes!("../data/workflow_call_completion.example.json");
const WORKFLOW_CALL_IN_CALLS: &[u8] =
    include_bytes!("../data/workflow_call_completion.in_calls.example.json");
const WORKFLOW_LIST: &[u8] = include_bytes!("../data/workflow_list_completion.example.json");
const WORKFLOW_STATUS: &[u8] = include_bytes!("../data/workflow_status_change.example.json");
const PDS_TASK: &[u8] = include_bytes!("../data/pds_task_status.example.json");
const PDS_AGENT: &[u8] = include_bytes!("../data/pds_agent_status.example.json");
const PDS_CONTACT: &[u8] = include_bytes!("../data/pds_contact_status.example.json");

/// Decodes `body` and checks that it serializes back to the same JSON value.
fn round_trip<E: Event + std::fmt::Debug>(body: &[u8]) -> E {
    let event = E::decode(body).unwrap_or_else(|err| panic!("{}: {err}", E::NAME));
    let sent: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(
        serde_json::to_value(&event).unwrap(),
        sent,
        "{} round trip",
        E::NAME
    );
    event
}

/// `body` with `change` applied to its JSON.
fn changed(body: &[u8], change: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(body).unwrap();
    change(&mut value);
    serde_json::to_vec(&value).unwrap()
}

/// The refusal of `body` as `E`: its kind, its path and its message.
fn refusal<E: Event + std::fmt::Debug>(body: &[u8]) -> (DecodeErrorKind, Option<String>, String) {
    let err = E::decode(body).expect_err("refused");
    (
        err.kind(),
        err.path().map(str::to_owned),
        err.message().to_owned(),
    )
}

#[test]
fn the_chatbot_example_of_the_public_page_decodes_byte_for_byte() {
    let session: ChatbotSessionEnd = round_trip(CHATBOT);
    assert_eq!(
        session.workflow_id.as_str(),
        "4cb9db206ac04xxxxxxxxa315e4e613d2"
    );
    assert_eq!(session.timestamp, Some(1_744_699_269));
    assert_eq!(session.robot_id.as_deref(), Some("4755"));
    assert_eq!(session.talk_round, Some(3));
    assert_eq!(
        session
            .event_label
            .as_ref()
            .and_then(|l| l.get_str("EventLabel")),
        Some("1")
    );
    let start = session
        .session_start_time
        .as_ref()
        .unwrap()
        .parse()
        .unwrap();
    assert!(format!("{start:?}").contains("2025"), "{start:?}");
    let [system, template, button] = &session.messages[..] else {
        panic!("three messages")
    };
    assert_eq!(system.sender_type, Some(SenderType::System));
    assert_eq!(system.status, Some(MessageStatus::Delivery));
    match &system.content {
        MessageContent::System(content) => assert_eq!(
            content.system.as_ref().and_then(|s| s.kind.as_deref()),
            Some("conversation.start")
        ),
        other => panic!("{other:?}"),
    }
    match &template.content {
        MessageContent::Template(content) => {
            let template = content.template.as_ref().unwrap();
            assert_eq!(template.kind.as_deref(), Some("WhatsApp"));
            assert_eq!(
                template.content.as_ref().and_then(|c| c.get_str("body")),
                Some("Hi, tom")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(button.sender_type, Some(SenderType::User));
    match &button.content {
        MessageContent::Button(content) => assert_eq!(content.text.as_deref(), Some("no")),
        other => panic!("{other:?}"),
    }
    assert!(button.reply.is_some(), "the empty reply is kept");
    // Debug hides the number and the variables.
    let debug = format!("{session:?}");
    assert!(
        !debug.contains("89092") && !debug.contains("xinxin"),
        "{debug}"
    );
}

#[test]
fn the_chatbot_session_keeps_unknown_kinds_values_and_members() {
    let body = changed(CHATBOT, |v| {
        v["a_new_member"] = json!({"x": 1});
        v["messages"][0]["sender_type"] = json!("agent");
        v["messages"][0]["status"] = json!("failed");
        v["messages"][0]["content"] =
            json!({"type": "video", "video": {"url": "u"}, "caption": "c"});
        v["messages"][1]["priority"] = json!(2);
    });
    let session: ChatbotSessionEnd = round_trip(&body);
    assert_eq!(session.extra["a_new_member"], json!({"x": 1}));
    let first = &session.messages[0];
    assert_eq!(first.sender_type, Some(SenderType::Other("agent".into())));
    assert_eq!(first.status.as_ref().map(|s| s.as_str()), Some("failed"));
    match &first.content {
        MessageContent::Other(object) => {
            assert_eq!(first.content.kind(), "video");
            assert_eq!(object["caption"], "c");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(session.messages[1].extra["priority"], json!(2));
}

#[test]
fn the_chatbot_session_refuses_a_wrong_shape_with_the_path() {
    let wrong_time = changed(CHATBOT, |v| v["messages"][2]["timestamp"] = json!("soon"));
    let (kind, path, message) = refusal::<ChatbotSessionEnd>(&wrong_time);
    assert_eq!(kind, DecodeErrorKind::Shape);
    assert_eq!(path.as_deref(), Some("messages[2].timestamp"));
    assert!(
        message.contains("expected i64") && !message.contains("soon"),
        "{message}"
    );
    let no_messages = changed(CHATBOT, |v| {
        v.as_object_mut().unwrap().remove("messages");
    });
    assert_eq!(
        refusal::<ChatbotSessionEnd>(&no_messages).1.as_deref(),
        Some("messages")
    );
    let bad_button = changed(CHATBOT, |v| v["messages"][2]["content"]["text"] = json!(7));
    assert_eq!(
        refusal::<ChatbotSessionEnd>(&bad_button).1.as_deref(),
        Some("messages[2].content")
    );
}

#[test]
fn the_workflow_call_completion_is_a_task_notification_with_its_workflow_anywhere() {
    let top: WorkflowCallCompletion = round_trip(WORKFLOW_CALL);
    assert_eq!(top.workflow_id(), Some("4cb9db206ac04xxxxxxxxa315e4e613d2"));
    assert_eq!(top.case_id(), Some("case-000123"));
    assert!(top.details[0].workflow_id.is_none());
    let in_calls: WorkflowCallCompletion = round_trip(WORKFLOW_CALL_IN_CALLS);
    assert!(in_calls.workflow_id.is_none());
    assert_eq!(in_calls.nodetask_name(), Some("Voice call 1"));
    assert_eq!(in_calls.details[0].case_id.as_deref(), Some("case-000123"));
    // The same calls as the task notification it extends, fast path and strict path alike.
    let task: TaskNotification = airudder_webhook::decode(WORKFLOW_CALL).unwrap();
    assert_eq!(top.task_id, task.task_id);
    assert_eq!(top.details[0].result, task.details[0].result);
    assert_eq!(
        WorkflowCallCompletion::from_slice(WORKFLOW_CALL).unwrap(),
        airudder_webhook::decode::<WorkflowCallCompletion>(WORKFLOW_CALL).unwrap()
    );
    let wrong = changed(WORKFLOW_CALL_IN_CALLS, |v| {
        v["details"][0]["case_id"] = json!(12)
    });
    let (kind, path, _) = refusal::<WorkflowCallCompletion>(&wrong);
    assert_eq!(
        (kind, path.as_deref()),
        (DecodeErrorKind::Shape, Some("details[0].case_id"))
    );
    assert!(!format!("{in_calls:?}").contains("+8612345678"));
}

#[test]
fn the_workflow_list_and_status_notices_follow_their_field_tables() {
    let list: WorkflowListCompletion = round_trip(WORKFLOW_LIST);
    assert_eq!(list.rows.len(), 2);
    assert_eq!(
        list.rows[0].task_id.as_deref(),
        Some("ic1a7a8f2bxxx9f5e343a2ec25a9b2")
    );
    assert!(list.rows[1].task_id.is_none());
    assert!(
        !format!("{list:?}").contains("12345678"),
        "the number is masked"
    );
    let status: WorkflowStatusChange = round_trip(WORKFLOW_STATUS);
    assert_eq!(status.status.as_str(), "finished");
    assert_eq!(status.actions[0].task_status.as_deref(), Some("finished"));

    let unknown = changed(WORKFLOW_STATUS, |v| {
        v["actions"][1]["retries"] = json!(3);
        v["status"] = json!("SUSPENDED_BY_OPERATOR");
    });
    let status: WorkflowStatusChange = round_trip(&unknown);
    assert_eq!(status.actions[1].extra["retries"], json!(3));

    let no_type = changed(WORKFLOW_LIST, |v| {
        v["rows"][1].as_object_mut().unwrap().remove("node_type");
    });
    assert_eq!(
        refusal::<WorkflowListCompletion>(&no_type).1.as_deref(),
        Some("rows[1].node_type")
    );
    let callee = changed(WORKFLOW_LIST, |v| {
        v["callee_number"] = json!(8_612_345_678_i64)
    });
    let (kind, path, message) = refusal::<WorkflowListCompletion>(&callee);
    assert_eq!(
        (kind, path.as_deref()),
        (DecodeErrorKind::Shape, Some("callee_number"))
    );
    assert!(!message.contains("8612345678"), "{message}");
    let not_a_list = changed(WORKFLOW_STATUS, |v| v["actions"] = json!({}));
    assert_eq!(
        refusal::<WorkflowStatusChange>(&not_a_list).1.as_deref(),
        Some("actions")
    );
}

#[test]
fn pds_events_are_typed_by_their_envelope_and_any_other_type_is_kept_whole() {
    let task: PdsEvent = round_trip(PDS_TASK);
    assert_eq!(task.kind(), "TaskStatus");
    match &task.body {
        PdsBody::TaskStatus(body) => assert_eq!(body.state(), Some(&PdsState::Finished)),
        other => panic!("{other:?}"),
    }
    let contact: PdsEvent = round_trip(PDS_CONTACT);
    match &contact.body {
        PdsBody::ContactStatus(body) => {
            assert_eq!(body.state(), Some(&PdsState::Hangup));
            let at = body.timestamp.as_ref().unwrap().to_system_time().unwrap();
            let ms = at
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis();
            assert_eq!(ms, 1_764_576_000_123);
            let reason = body.hangup_reason.unwrap();
            assert_eq!((reason.0, reason.description()), (12, Some("Talked")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(contact.call_id(), Some("c-7f3a"));
    assert!(
        !format!("{contact:?}").contains("1234567890") && !format!("{contact:?}").contains("Budi")
    );

    // The agent's state key is `State`; the map form of customizeResults.
    let agent: PdsEvent = round_trip(PDS_AGENT);
    match &agent.body {
        PdsBody::AgentStatus(body) => {
            assert_eq!(body.state(), Some(&PdsState::TalkResult));
            assert!(matches!(
                body.customize_results,
                Some(CustomizeResults::ByTitle(_))
            ));
            assert!(body.recording().is_some());
        }
        other => panic!("{other:?}"),
    }
    // The pull API's list form, the other spelling of recLink, an unknown state.
    let listed = changed(PDS_AGENT, |v| {
        v["body"]["customizeResults"] =
            json!([{"title": "Promise date", "groupName": "PTP", "value": "2026-12-05"}]);
        let link = v["body"]
            .as_object_mut()
            .unwrap()
            .remove("recLink")
            .unwrap();
        v["body"]["reclink"] = link;
        v["body"]["State"] = json!("WRAPUP");
    });
    let agent: PdsEvent = round_trip(&listed);
    match &agent.body {
        PdsBody::AgentStatus(body) => {
            match &body.customize_results {
                Some(CustomizeResults::List(list)) => {
                    assert_eq!(list[0].group_name.as_deref(), Some("PTP"));
                }
                other => panic!("{other:?}"),
            }
            assert!(body.recording().is_some());
            assert_eq!(body.state().map(|s| s.as_str()), Some("WRAPUP"));
        }
        other => panic!("{other:?}"),
    }
    // Another type: kept whole, envelope members too; the body before its type works as well.
    let other = br#"{"body": {"anything": [1, {"x": null}]}, "type": "Heartbeat", "seq": 9}"#;
    let event: PdsEvent = round_trip(other);
    assert_eq!(event.kind(), "Heartbeat");
    assert!(matches!(&event.body, PdsBody::Other { body, .. } if body["anything"][0] == 1));
    assert_eq!(event.extra["seq"], 9);
    let late_type = br#"{"body": {"taskId": "t", "state": "CALLING"}, "type": "TaskStatus"}"#;
    assert_eq!(round_trip::<PdsEvent>(late_type).task_id(), Some("t"));
}

#[test]
fn pds_events_refuse_a_wrong_shape_with_the_path() {
    // As sent, `type` before `body` (the JSON helper above would sort them).
    let replaced = |from: &str, to: &str| {
        let text = std::str::from_utf8(PDS_CONTACT).unwrap();
        assert!(text.contains(from), "{from}");
        text.replace(from, to).into_bytes()
    };
    let wrong = replaced("\"hangupReason\": 12", "\"hangupReason\": \"busy\"");
    let (kind, path, _) = refusal::<PdsEvent>(&wrong);
    assert_eq!(
        (kind, path.as_deref()),
        (DecodeErrorKind::Shape, Some("body.hangupReason"))
    );
    let wrong = replaced("\"1764576000123\"", "1764576000123");
    assert_eq!(
        refusal::<PdsEvent>(&wrong).1.as_deref(),
        Some("body.timestamp")
    );
    // A body before its type is typed afterwards: refused all the same.
    let late = br#"{"body": {"taskId": 5}, "type": "TaskStatus"}"#;
    assert_eq!(refusal::<PdsEvent>(late).0, DecodeErrorKind::Shape);
    assert_eq!(
        refusal::<PdsEvent>(br#"{"body": {}}"#).1.as_deref(),
        Some("type")
    );
    assert_eq!(
        refusal::<PdsEvent>(br#"{"type": "TaskStatus"}"#)
            .1
            .as_deref(),
        Some("body")
    );
    assert_eq!(
        refusal::<PdsEvent>(br#"{"type": 3, "body": {}}"#)
            .1
            .as_deref(),
        Some("type")
    );
    let agent = std::str::from_utf8(PDS_AGENT).unwrap();
    let at = agent.find("\"customizeResults\": {").unwrap();
    let end = at + agent[at..].find('}').unwrap() + 1;
    let wrong_scalar = format!("{}\"customizeResults\": 5{}", &agent[..at], &agent[end..]);
    assert_eq!(
        refusal::<PdsEvent>(wrong_scalar.as_bytes()).1.as_deref(),
        Some("body.customizeResults")
    );
}

#[test]
fn a_raw_event_is_any_object_kept_verbatim_and_keyed_on_its_canonical_form() {
    let body = b"{ \"plan_id\": \"p-9\",\n  \"nested\": {\"b\": 1, \"a\": [true, null]} }";
    let event = RawEvent::decode(body).unwrap();
    assert_eq!(&event.body()[..], &body[..]);
    assert_eq!(event.get("plan_id"), Some(&json!("p-9")));
    let reordered =
        RawEvent::decode(br#"{"nested":{"a":[true,null],"b":1},"plan_id":"p-9"}"#).unwrap();
    assert_eq!(event.dedup_key(), reordered.dedup_key());
    let other = RawEvent::decode(br#"{"plan_id":"p-10"}"#).unwrap();
    assert_ne!(event.dedup_key(), other.dedup_key());
    assert!(
        !format!("{event:?}").contains("p-9"),
        "Debug shows keys only"
    );
    for (bad, kind) in [
        (&b"[1, 2]"[..], DecodeErrorKind::Shape),
        (b"\"text\"", DecodeErrorKind::Shape),
        (b"{\"a\": 1} {}", DecodeErrorKind::TrailingBytes),
        (b"{\"a\": ", DecodeErrorKind::Syntax),
        (b"", DecodeErrorKind::Empty),
    ] {
        assert_eq!(RawEvent::decode(bad).unwrap_err().kind(), kind, "{bad:?}");
    }
}

#[tokio::test]
async fn the_chatbot_sign_header_reaches_a_check_the_user_supplies() {
    use airudder_webhook::Receiver;
    use airudder_webhook::auth::Denied;
    use tower::ServiceExt;

    // The algorithm is not public: here, a user's check that compares it to a known value.
    let check = |head: &http::request::Parts| match head.headers.get("x-airudder-sign") {
        Some(sign) if sign == "expected-sign" => Ok(()),
        Some(_) => Err(Denied::unauthorized("X-AIRudder-Sign does not match")),
        None => Err(Denied::unauthorized("X-AIRudder-Sign is missing")),
    };
    let receiver =
        Receiver::builder_for(|_: airudder_webhook::Delivery<ChatbotSessionEnd>| async {
            Ok::<_, std::convert::Infallible>(())
        })
        .authorize(check)
        .build()
        .unwrap();
    let post = |sign: Option<&str>| {
        let mut request = http::Request::post("/airudder/chatbot/session")
            .header("content-type", "application/json");
        if let Some(sign) = sign {
            request = request.header("X-AIRudder-Sign", sign);
        }
        receiver.clone().oneshot(
            request
                .body(http_body_util::Full::new(bytes::Bytes::from_static(
                    CHATBOT,
                )))
                .unwrap(),
        )
    };
    assert_eq!(post(None).await.unwrap().status(), 401);
    assert_eq!(post(Some("forged")).await.unwrap().status(), 401);
    assert_eq!(post(Some("expected-sign")).await.unwrap().status(), 200);
    receiver
        .shutdown_handle()
        .shutdown(std::time::Duration::from_secs(1))
        .await;
}
