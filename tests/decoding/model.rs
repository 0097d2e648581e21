//! The model: one test per tolerance rule, the strict refusals, and the round trip.

use crate::support;

use airudder_webhook::model::{
    CallResult, HangupType, ParsedTime, RingType, RobotMethod, TaskNotification, TaskStatus,
};
use airudder_webhook::{DecodeError, DecodeErrorKind, decode};
use proptest::prelude::*;
use serde_json::{Value, json};

fn decode_value(value: &Value) -> Result<TaskNotification, DecodeError> {
    decode(&serde_json::to_vec(value).unwrap())
}

/// Decodes, serializes again, and checks the JSON values are equal.
fn round_trip(value: &Value) -> TaskNotification {
    let notification = decode_value(value).expect("accepted");
    let again = serde_json::to_value(&notification).unwrap();
    assert_eq!(&again, value, "serialization must give back the body");
    notification
}

/// Sets (or adds) the member at `pointer`.
fn with(mut value: Value, pointer: &str, new: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    let parent = value
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("{parent} exists"));
    match parent {
        Value::Object(map) => {
            map.insert(key.to_owned(), new);
        }
        Value::Array(items) => items[key.parse::<usize>().unwrap()] = new,
        _ => panic!("{pointer} has no parent container"),
    }
    value
}

fn without(mut value: Value, pointer: &str, member: &str) -> Value {
    value
        .pointer_mut(pointer)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove(member)
        .unwrap();
    value
}

#[test]
fn the_example_decodes_into_every_field() {
    let n = round_trip(&support::example_value());
    assert_eq!(n.task_id, "ic1a7a8f2bxxx9f5e343a2ec25a9b2");
    assert_eq!(n.status, TaskStatus::Finished);
    assert_eq!(n.robot_method, RobotMethod::Single);
    assert_eq!(n.created_at.as_str(), "2022-12-19 15:14:52");
    let call = &n.details[0];
    assert_eq!(call.id, 931888898);
    assert_eq!(call.callee, "+8612345678");
    assert_eq!(call.result, CallResult::Finished);
    assert_eq!(call.hangup_type, HangupType::ByCallee);
    assert_eq!(call.ring_type, Some(RingType::Normal));
    assert_eq!(call.question_answer.len(), 3);
    assert_eq!(
        call.question_answer[1].answer_text.as_deref(),
        Some("yes i will")
    );
    assert_eq!(call.ner_slots.as_ref().unwrap()["PaymentMethod"], "ATM");
    assert_eq!(call.call_times, Some(1));
    let redial = &call.redial_calls.as_ref().unwrap()[0];
    assert_eq!(
        redial.call_id.as_deref(),
        Some("7c5a79bd5c5ac93cbe6fa6b5a0b0412c")
    );
    assert_eq!(redial.ring_type, Some(RingType::Empty));
    assert_eq!(redial.ring_time, Some(5));
    assert_eq!(redial.callee_number.as_deref(), Some("+6212345678"));
    assert!(n.extra.is_empty() && call.extra.is_empty());
}

#[test]
fn undocumented_enum_values_are_kept_verbatim() {
    let value = support::example_value();
    let value = with(value, "/status", json!("ARCHIVED"));
    let value = with(value, "/robot_method", json!("round_robin"));
    let value = with(value, "/details/0/result", json!("NO ANSWER"));
    let value = with(value, "/details/0/hangup_type", json!("ByNetwork"));
    let value = with(value, "/details/0/ring_type", json!("Busy Tone"));
    let value = with(value, "/details/0/redail_call/0/HangupType", json!(""));
    let n = round_trip(&value);
    assert_eq!(n.status, TaskStatus::Other("ARCHIVED".into()));
    assert_eq!(n.robot_method, RobotMethod::Other("round_robin".into()));
    let call = &n.details[0];
    assert_eq!(call.result, CallResult::Other("NO ANSWER".into()));
    assert_eq!(call.hangup_type, HangupType::Other("ByNetwork".into()));
    assert_eq!(call.ring_type, Some(RingType::Other("Busy Tone".into())));
}

#[test]
fn both_spellings_of_cancelled_are_variants() {
    let cases = [
        ("/status", "canceled"),
        ("/status", "cancelled"),
        ("/details/0/result", "cancelled"),
        ("/details/0/result", "canceled"),
        ("/details/0/hangup_type", "Canceled"),
        ("/details/0/hangup_type", "Cancelled"),
    ];
    for (pointer, spelling) in cases {
        let n = round_trip(&with(support::example_value(), pointer, json!(spelling)));
        let cancelled = match pointer {
            "/status" => n.status.is_cancelled(),
            "/details/0/result" => n.details[0].result.is_cancelled(),
            _ => n.details[0].hangup_type.is_cancelled(),
        };
        assert!(cancelled, "{pointer} = {spelling}");
    }
}

#[test]
fn every_reading_of_ring_type_is_accepted() {
    let readings = [
        ("busy", RingType::Busy),
        ("cantuse", RingType::CantUse),
        ("hold", RingType::Hold),
        ("lineswitchoff", RingType::LineSwitchOff),
        ("holdline", RingType::HoldLine),
        ("switchoff", RingType::SwitchOff),
        ("outofarea", RingType::OutOfArea),
        ("unregister", RingType::Unregister),
        ("wrongnum", RingType::WrongNum),
        ("notmatch", RingType::NotMatch),
        ("normal", RingType::Normal),
        ("null", RingType::Null),
        ("", RingType::Empty),
    ];
    for (wire, want) in readings {
        let value = with(
            support::example_value(),
            "/details/0/ring_type",
            json!(wire),
        );
        let value = with(value, "/details/0/redail_call/0/RingType", json!(wire));
        let n = round_trip(&value);
        assert_eq!(n.details[0].ring_type, Some(want.clone()), "{wire:?}");
        assert_eq!(
            n.details[0].redial_calls.as_ref().unwrap()[0].ring_type,
            Some(want),
            "{wire:?}"
        );
    }
    let value = with(
        support::example_value(),
        "/details/0/ring_type",
        Value::Null,
    );
    let value = with(value, "/details/0/redail_call/0/RingType", Value::Null);
    let n = round_trip(&value);
    assert_eq!(n.details[0].ring_type, None);
    assert_eq!(
        n.details[0].redial_calls.as_ref().unwrap()[0].ring_type,
        None
    );
}

const OPTIONAL_CALL_MEMBERS: [&str; 12] = [
    "EventLabel",
    "Slots",
    "NerSlots",
    "variables",
    "robot_hash",
    "call_id",
    "call_times",
    "call_start_time",
    "call_end_time",
    "ring_time",
    "talk_round",
    "redail_call",
];

#[test]
fn optional_members_may_be_absent() {
    let mut value = support::example_value();
    let call = value["details"][0].as_object_mut().unwrap();
    for member in OPTIONAL_CALL_MEMBERS {
        call.remove(member);
    }
    value["details"][0]["question_answer"] = json!([{}]);
    let n = round_trip(&value);
    let call = &n.details[0];
    assert_eq!(
        (
            call.variables.as_ref(),
            call.call_id.as_ref(),
            call.redial_calls.as_ref()
        ),
        (None, None, None)
    );
    assert!(!call.was_null("call_id"));
    assert_eq!(call.question_answer[0].answer, None);
}

#[test]
fn optional_members_may_be_null_and_stay_null() {
    let mut value = support::example_value();
    for member in OPTIONAL_CALL_MEMBERS {
        value["details"][0][member] = Value::Null;
    }
    value["details"][0]["question_answer"][0]["answer"] = Value::Null;
    value["details"][0]["redail_call"] = json!([{"CallID": null, "RingTime": null}]);
    let n = round_trip(&value);
    let call = &n.details[0];
    assert_eq!((call.variables.as_ref(), call.ring_time), (None, None));
    assert!(call.was_null("variables") && call.was_null("Slots") && !call.was_null("callee"));
    assert!(call.question_answer[0].was_null("answer"));
}

#[test]
fn free_form_maps_keep_any_json() {
    let value = with(
        support::example_value(),
        "/details/0/variables",
        json!({"birthday": "1224", "amount": 1520.75, "tags": ["vip", 3, null], "nested": {"a": {"b": [true]}}}),
    );
    let value = with(value, "/details/0/EventLabel", json!(["not", "a", "map"]));
    let value = with(value, "/details/0/Slots", json!("a string"));
    let value = with(value, "/details/0/NerSlots", json!({}));
    let n = round_trip(&value);
    assert_eq!(
        n.details[0].variable("tags"),
        Some(&json!(["vip", 3, null]))
    );
    let event_label = n.details[0].event_label.as_ref().unwrap();
    assert_eq!(*event_label, json!(["not", "a", "map"]));
    assert!(!event_label.is_object() && event_label.is_empty());
    let variables = n.details[0].variables.as_ref().unwrap();
    assert_eq!(variables["nested"]["a"]["b"][0], true);
    assert_eq!(variables.len(), 4);
}

#[test]
fn free_form_members_stay_in_the_order_sent_on_either_decoding_path() {
    // The example sends `variables` out of alphabetical order.
    let fast = TaskNotification::from_slice(support::EXAMPLE).unwrap();
    let serde_only = airudder_webhook::decode::<TaskNotification>(support::EXAMPLE).unwrap();
    for n in [&fast, &serde_only] {
        let variables = n.details[0].variables.as_ref().unwrap();
        assert_eq!(
            variables.keys().collect::<Vec<_>>(),
            ["birthday", "var2", "creditnumber"]
        );
        assert_eq!(variables.get_str("var2"), Some("03"));
    }
    assert_eq!(fast, serde_only);
    // A key sent twice keeps its first place and its last value, as serde_json keeps the last.
    let body = String::from_utf8(support::EXAMPLE.to_vec())
        .unwrap()
        .replace(r#""var2": "03","#, r#""var2": "03", "birthday": "0101","#);
    let fast = TaskNotification::from_slice(body.as_bytes()).unwrap();
    let serde_only = airudder_webhook::decode::<TaskNotification>(body.as_bytes()).unwrap();
    assert_eq!(fast, serde_only);
    let variables = fast.details[0].variables.as_ref().unwrap();
    assert_eq!(
        variables.iter().collect::<Vec<_>>(),
        [
            ("birthday", &json!("0101")),
            ("var2", &json!("03")),
            ("creditnumber", &json!("1234"))
        ]
    );
}

#[test]
fn unknown_members_are_kept_at_every_level() {
    let value = with(support::example_value(), "/account", json!({"id": 7}));
    let value = with(value, "/details/0/sentiment", json!(0.8));
    let value = with(value, "/details/0/question_answer/0/confidence", json!(99));
    let value = with(value, "/details/0/redail_call/0/SipCode", json!("486"));
    let n = round_trip(&value);
    assert_eq!(n.extra["account"], json!({"id": 7}));
    assert_eq!(n.details[0].extra["sentiment"], json!(0.8));
    assert_eq!(
        n.details[0].question_answer[0].extra["confidence"],
        json!(99)
    );
    assert_eq!(
        n.details[0].redial_calls.as_ref().unwrap()[0].extra["SipCode"],
        json!("486")
    );
}

#[test]
fn timestamps_in_any_format_never_reject_the_notification() {
    let cases = [
        ("rfc3339", "2022-12-19T07:14:52Z", true),
        ("offset", "2022-12-19T15:14:52+08:00", true),
        ("epoch ms", "1671434092000", true),
        ("garbage", "last tuesday", false),
        ("empty", "", false),
    ];
    for (name, sent, parses) in cases {
        let value = with(support::example_value(), "/created_at", json!(sent));
        let value = with(value, "/details/0/call_start_time", json!(sent));
        let n = round_trip(&value);
        assert_eq!(n.created_at.as_str(), sent, "{name}");
        assert_eq!(n.created_at.parse().is_ok(), parses, "{name}");
        if parses {
            let instant = n.created_at.to_instant(jiff::tz::offset(8)).unwrap();
            assert_eq!(instant.to_string(), "2022-12-19T07:14:52Z", "{name}");
        }
    }
    let n = round_trip(&support::example_value());
    assert!(matches!(
        n.schedule_end_time.parse(),
        Ok(ParsedTime::Civil(_))
    ));
}

#[test]
fn debug_output_masks_phone_numbers_and_variables() {
    let n = round_trip(&support::example_value());
    let debug = format!("{n:?}");
    for secret in [
        "+8612345678",
        "+6212345678",
        "+62777888888",
        "1224",
        "creditnumber\": \"1234",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked into {debug}");
    }
    assert!(debug.contains("5678") && debug.contains("birthday"));
}

#[test]
fn strict_refusals_name_the_class_and_the_path() {
    let example = support::example_value();
    let mut four_calls = example.clone();
    four_calls["details"] = json!([
        example["details"][0],
        example["details"][0],
        example["details"][0],
        example["details"][0]
    ]);
    let cases: Vec<(&str, Vec<u8>, DecodeErrorKind, Option<&str>)> = vec![
        (
            "not json",
            b"task_id=1".to_vec(),
            DecodeErrorKind::Syntax,
            None,
        ),
        (
            "truncated",
            support::EXAMPLE[..200].to_vec(),
            DecodeErrorKind::Syntax,
            None,
        ),
        ("empty", Vec::new(), DecodeErrorKind::Empty, None),
        ("blank", b"  \n".to_vec(), DecodeErrorKind::Empty, None),
        (
            "trailing bytes",
            [support::EXAMPLE, b"{}"].concat(),
            DecodeErrorKind::TrailingBytes,
            None,
        ),
        (
            "invalid utf-8",
            b"{\"task_id\": \"\xff\xfe\"}".to_vec(),
            DecodeErrorKind::Syntax,
            None,
        ),
        // Refused at the first byte, as the wrong shape: nothing recurses.
        (
            "deep array at the top",
            [&[b'['; 100_000][..], &[b']'; 100_000][..]].concat(),
            DecodeErrorKind::Shape,
            None,
        ),
        (
            "deep nesting in an unknown member",
            {
                let deep = format!("{}{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
                format!("{{\"x\":{deep}}}").into_bytes()
            },
            DecodeErrorKind::TooDeep,
            None,
        ),
        (
            "deep nesting inside a free map",
            {
                let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
                let text = String::from_utf8(serde_json::to_vec(&example).unwrap()).unwrap();
                text.replacen(
                    "\"variables\":{",
                    &format!("\"variables\":{{\"deep\":{deep},"),
                    1,
                )
                .into_bytes()
            },
            DecodeErrorKind::TooDeep,
            None,
        ),
        ("an array", b"[]".to_vec(), DecodeErrorKind::Shape, None),
        (
            "a string",
            b"\"task\"".to_vec(),
            DecodeErrorKind::Shape,
            None,
        ),
        (
            "top-level member missing",
            serde_json::to_vec(&without(example.clone(), "", "task_id")).unwrap(),
            DecodeErrorKind::Shape,
            Some("task_id"),
        ),
        (
            "call member missing",
            serde_json::to_vec(&without(four_calls.clone(), "/details/2", "callee")).unwrap(),
            DecodeErrorKind::Shape,
            Some("details[2].callee"),
        ),
        (
            "wrong type deep",
            serde_json::to_vec(&with(
                four_calls.clone(),
                "/details/3/duration",
                json!("12"),
            ))
            .unwrap(),
            DecodeErrorKind::Shape,
            Some("details[3].duration"),
        ),
        (
            "float for an integer",
            serde_json::to_vec(&with(example.clone(), "/repeat_number", json!(1.5))).unwrap(),
            DecodeErrorKind::Shape,
            Some("repeat_number"),
        ),
        (
            "null for a required member",
            serde_json::to_vec(&with(example.clone(), "/task_id", Value::Null)).unwrap(),
            DecodeErrorKind::Shape,
            Some("task_id"),
        ),
        (
            "nullable ring_type missing",
            serde_json::to_vec(&without(example.clone(), "/details/0", "ring_type")).unwrap(),
            DecodeErrorKind::Shape,
            Some("details[0].ring_type"),
        ),
        (
            "wrong type in question_answer",
            serde_json::to_vec(&with(
                example.clone(),
                "/details/0/question_answer/2/var",
                json!(6),
            ))
            .unwrap(),
            DecodeErrorKind::Shape,
            Some("details[0].question_answer[2].var"),
        ),
        (
            "wrong type in redail_call",
            serde_json::to_vec(&with(
                example.clone(),
                "/details/0/redail_call/0/RingTime",
                json!("5"),
            ))
            .unwrap(),
            DecodeErrorKind::Shape,
            Some("details[0].redail_call[0].RingTime"),
        ),
        (
            "details not an array",
            serde_json::to_vec(&with(example.clone(), "/details", json!({}))).unwrap(),
            DecodeErrorKind::Shape,
            Some("details"),
        ),
        (
            "duplicate member",
            br#"{"task_id":"a","task_id":"b"}"#.to_vec(),
            DecodeErrorKind::Shape,
            Some("task_id"),
        ),
    ];
    for (name, body, kind, path) in cases {
        let err = decode::<TaskNotification>(&body).expect_err(name);
        assert_eq!(err.kind(), kind, "{name}: {err}");
        assert_eq!(err.path(), path, "{name}: {err}");
        assert_eq!(
            err.status().as_u16(),
            if kind == DecodeErrorKind::Shape {
                422
            } else {
                400
            },
            "{name}"
        );
    }
}

#[test]
fn refusal_messages_never_repeat_a_value() {
    let value = with(
        support::example_value(),
        "/details/0/id",
        json!("+8612345678"),
    );
    let err = decode_value(&value).unwrap_err();
    assert_eq!(err.message(), "invalid type: a string, expected i64");
    assert!(!err.to_string().contains("12345678"), "{err}");
}

// ---- The round trip, as a property -------------------------------------------------------

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1.0e12f64..1.0e12).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn enum_string(known: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(known).prop_map(|s| json!(s)),
        ".{0,10}".prop_map(Value::String)
    ]
}

fn text() -> impl Strategy<Value = Value> {
    ".{0,16}".prop_map(Value::String)
}

fn int() -> impl Strategy<Value = Value> {
    any::<i64>().prop_map(Value::from)
}

/// A member that may be absent (`None`), `null`, or a value.
fn optional(value: impl Strategy<Value = Value>) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![Just(None), Just(Some(Value::Null)), value.prop_map(Some)]
}

/// Members the contract does not name (prefixed so they never collide with one it does).
fn unknown_members() -> impl Strategy<Value = Vec<(String, Value)>> {
    prop::collection::vec(("x_[a-z]{0,6}", any_json()), 0..3)
}

fn object(members: Vec<(&str, Option<Value>)>, unknown: Vec<(String, Value)>) -> Value {
    let mut map = serde_json::Map::new();
    for (key, value) in members {
        if let Some(value) = value {
            map.insert(key.to_owned(), value);
        }
    }
    map.extend(unknown);
    Value::Object(map)
}

const RING: &[&str] = &[
    "busy",
    "cantuse",
    "hold",
    "lineswitchoff",
    "holdline",
    "switchoff",
    "outofarea",
    "unregister",
    "wrongnum",
    "notmatch",
    "normal",
    "null",
    "",
];
const HANGUP: &[&str] = &["ByCallee", "ByRobot", "Canceled", "Cancelled"];

fn question_answer() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(optional(text()), 10),
        unknown_members(),
    )
        .prop_map(|(values, unknown)| {
            let names = [
                "question_name",
                "answer",
                "answer_text",
                "status",
                "answer_text_slot",
                "var",
                "verification_results",
                "question_content",
                "question_type",
                "whether_answer",
            ];
            object(names.into_iter().zip(values).collect(), unknown)
        })
}

fn redial() -> impl Strategy<Value = Value> {
    (
        (
            optional(text()),
            optional(text()),
            optional(enum_string(RING)),
            optional(int()),
        ),
        (
            optional(enum_string(HANGUP)),
            optional(text()),
            optional(text()),
            optional(text()),
        ),
        unknown_members(),
    )
        .prop_map(|((a, b, c, d), (e, f, g, h), unknown)| {
            object(
                vec![
                    ("CallID", a),
                    ("CallStartTime", b),
                    ("RingType", c),
                    ("RingTime", d),
                    ("HangupType", e),
                    ("ResultLabel", f),
                    ("caller_number", g),
                    ("callee_number", h),
                ],
                unknown,
            )
        })
}

fn call() -> impl Strategy<Value = Value> {
    let required = (
        (
            int(),
            text(),
            enum_string(&[
                "created",
                "pending",
                "finished",
                "cancelled",
                "canceled",
                "failed",
            ]),
            text(),
            text(),
        ),
        (
            int(),
            enum_string(HANGUP),
            prop_oneof![Just(Value::Null), enum_string(RING)],
            prop::collection::vec(question_answer(), 0..3),
            text(),
        ),
    );
    let optional_members = (
        (
            optional(any_json()),
            optional(any_json()),
            optional(any_json()),
            optional(any_json()),
        ),
        (
            optional(text()),
            optional(text()),
            optional(int()),
            optional(text()),
        ),
        (
            optional(text()),
            optional(int()),
            optional(int()),
            optional(prop::collection::vec(redial(), 0..2).prop_map(Value::Array)),
        ),
    );
    (required, optional_members, unknown_members()).prop_map(
        |(
            ((id, callee, result, label, intention), (duration, hangup, ring, qa, caller)),
            ((el, sl, ner, vars), (rh, cid, times, start), (end, ring_time, rounds, redial)),
            unknown,
        )| {
            object(
                vec![
                    ("id", Some(id)),
                    ("callee", Some(callee)),
                    ("result", Some(result)),
                    ("result_label", Some(label)),
                    ("intention_description", Some(intention)),
                    ("duration", Some(duration)),
                    ("hangup_type", Some(hangup)),
                    ("ring_type", Some(ring)),
                    ("question_answer", Some(Value::Array(qa))),
                    ("caller_number", Some(caller)),
                    ("EventLabel", el),
                    ("Slots", sl),
                    ("NerSlots", ner),
                    ("variables", vars),
                    ("robot_hash", rh),
                    ("call_id", cid),
                    ("call_times", times),
                    ("call_start_time", start),
                    ("call_end_time", end),
                    ("ring_time", ring_time),
                    ("talk_round", rounds),
                    ("redail_call", redial),
                ],
                unknown,
            )
        },
    )
}

fn notification() -> impl Strategy<Value = Value> {
    (
        (
            text(),
            text(),
            enum_string(&[
                "created",
                "pending",
                "finished",
                "calling",
                "canceled",
                "cancelled",
                "paused",
            ]),
            text(),
            int(),
            int(),
        ),
        (
            text(),
            enum_string(&["single", "group"]),
            text(),
            text(),
            text(),
            prop::collection::vec(call(), 0..4),
        ),
        unknown_members(),
    )
        .prop_map(
            |(
                (id, name, status, created, interval, number),
                (robot, method, sip, start, end, details),
                unknown,
            )| {
                object(
                    vec![
                        ("task_id", Some(id)),
                        ("task_name", Some(name)),
                        ("status", Some(status)),
                        ("created_at", Some(created)),
                        ("repeat_interval", Some(interval)),
                        ("repeat_number", Some(number)),
                        ("robot_hash", Some(robot)),
                        ("robot_method", Some(method)),
                        ("sip_line", Some(sip)),
                        ("schedule_start_time", Some(start)),
                        ("schedule_end_time", Some(end)),
                        ("details", Some(Value::Array(details))),
                    ],
                    unknown,
                )
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_accepted_body_serializes_back_to_an_equal_value(value in notification(), pretty in any::<bool>()) {
        let body = if pretty { serde_json::to_vec_pretty(&value) } else { serde_json::to_vec(&value) }.unwrap();
        let decoded: TaskNotification = decode(&body).expect("a well-formed notification is accepted");
        prop_assert_eq!(serde_json::to_value(&decoded).unwrap(), value);
    }

    #[test]
    fn the_fast_path_decodes_every_body_as_serde_json_does(value in notification(), pretty in any::<bool>()) {
        let body = if pretty { serde_json::to_vec_pretty(&value) } else { serde_json::to_vec(&value) }.unwrap();
        let fast = TaskNotification::from_slice(&body).expect("a well-formed notification is accepted");
        prop_assert_eq!(serde_json::to_value(&fast).unwrap(), value);
        prop_assert_eq!(Ok(fast), decode::<TaskNotification>(&body));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<TaskNotification>(&body);
        let _ = TaskNotification::from_slice(&body);
    }

    #[test]
    fn arbitrary_json_is_accepted_or_refused_with_a_class(value in any_json()) {
        if let Err(err) = decode::<TaskNotification>(&serde_json::to_vec(&value).unwrap()) {
            prop_assert!(matches!(err.kind(), DecodeErrorKind::Shape | DecodeErrorKind::Syntax));
        }
    }
}

/// A byte edit of the example: deleted, replaced or inserted, from the bytes that matter to JSON.
fn edit() -> impl Strategy<Value = (prop::sample::Index, u8, u8)> {
    const BYTES: &[u8] = b"{}[]\",:0123456789-+.eEnulltrfas \\/\n\t\x01\xc3";
    (
        any::<prop::sample::Index>(),
        0..3u8,
        prop::sample::select(BYTES),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    /// The fast path gives up on whatever it is not sure of, so both paths answer every body
    /// alike: the same notification, or the same error.
    #[test]
    fn both_decoding_paths_answer_every_edited_body_alike(edits in prop::collection::vec(edit(), 1..4)) {
        let mut body = support::EXAMPLE.to_vec();
        for (at, op, byte) in edits {
            let i = at.index(body.len());
            match op {
                0 => { body.remove(i); }
                1 => body[i] = byte,
                _ => body.insert(i, byte),
            }
        }
        prop_assert_eq!(TaskNotification::from_slice(&body), decode::<TaskNotification>(&body));
    }
}

/// The example with one member's value replaced by raw JSON text.
fn example_with(member: &str, raw: &str) -> Vec<u8> {
    let text = String::from_utf8(support::EXAMPLE.to_vec()).unwrap();
    let needle = format!("\"{member}\": ");
    let start = text.find(&needle).expect("the example has the member") + needle.len();
    let end = start
        + text[start..]
            .find([',', '\n'])
            .expect("the value ends the line or meets a comma");
    format!("{}{raw}{}", &text[..start], &text[end..]).into_bytes()
}

#[test]
fn both_decoding_paths_agree_on_values_at_the_edge_of_the_fast_path() {
    let cases = [
        ("duration", "01"),
        ("duration", "-0"),
        ("duration", "-1"),
        ("duration", "1.0"),
        ("duration", "1e2"),
        ("duration", "9223372036854775807"),
        ("duration", "9223372036854775808"),
        ("duration", "-9223372036854775808"),
        ("duration", "-9223372036854775809"),
        ("duration", "null"),
        ("duration", "\"7\""),
        ("callee", r#""+86\u0031234""#),
        ("task_name", r#""\u50ac\u6536 task \ud83d\ude00""#),
        ("task_name", r#""\ud83d""#),
        ("task_name", r#""\udc00 low first""#),
        ("task_name", r#""\ud83d\u0041""#),
        ("task_name", r#""bad \x escape""#),
        ("task_name", r#""short \u12""#),
        ("robot_method", r#""sin\u0067le""#),
        ("robot_method", r#""\u7fa4""#),
        ("created_at", r#""2022-12-19\u002015:14:52""#),
        ("callee", "\"tab\there\""),
        ("callee", "null"),
        ("callee", "7"),
        ("ring_type", "null"),
        ("ring_type", "\"\""),
        ("ring_type", "nul"),
        ("call_times", "null"),
        ("status", r#""finis\"hed""#),
        ("status", "\"no such status\""),
        ("variables", "[1, 2]"),
        ("variables", r#"{"a": "b", "a": "c"}"#),
        (
            "variables",
            r#"{"a": 1.5e300, "b": [null, true], "c": {"d": "\u00e9"}}"#,
        ),
        ("variables", r#"{"a": }"#),
        ("variables", r#"{"a\"b": "c"}"#),
        (
            "variables",
            r#"{"name": "\u5f20\u4e09", "note": "line\nbreak"}"#,
        ),
        ("EventLabel", "\"VerifyPass\""),
        ("EventLabel", "{}"),
        ("EventLabel", "null"),
        ("redail_call", "[]"),
        ("redail_call", "[{}, {}]"),
        ("redail_call", "[1]"),
        ("question_answer", "[]"),
        ("question_answer", "[{\"var\": \"-\"},]"),
        ("task_id", r#""ic1" , "task_id": "again""#),
        ("task_id", r#""ic1", "x_unknown": {"nested": [1, "two"]}"#),
        ("task_id", r#""ic1", "x_unknown": 1, "x_unknown": 2"#),
    ];
    for (member, raw) in cases {
        let body = example_with(member, raw);
        assert_eq!(
            TaskNotification::from_slice(&body),
            decode::<TaskNotification>(&body),
            "{member}: {raw}"
        );
    }
    // An escaped name is read right (the fast path reads it itself: see `model::fast`'s tests).
    let body = example_with("task_name", r#""\u50ac\u6536 task""#);
    let n = TaskNotification::from_slice(&body).unwrap();
    assert_eq!(n.task_name, "催收 task");
    assert_eq!(n.robot_method, RobotMethod::Single);
    // Bodies around the object itself.
    let example = String::from_utf8(support::EXAMPLE.to_vec()).unwrap();
    for body in [
        String::new(),
        "  ".to_owned(),
        format!("{example} x"),
        format!("{example}\n\n"),
        format!("\u{feff}{example}"),
        format!("[{example}]"),
        example.replacen('{', "{\"task_id\": \"first\",", 1),
        example.replace("\"details\"", "\"x_details\""),
        "{}".to_owned(),
        format!("{}{}", "[".repeat(200), "]".repeat(200)),
    ] {
        assert_eq!(
            TaskNotification::from_slice(body.as_bytes()),
            decode::<TaskNotification>(body.as_bytes()),
            "{body:.40}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn both_decoding_paths_agree_on_number_like_values(raw in r"-?[0-9]{1,21}(\.[0-9]{1,3})?([eE][-+]?[0-9]{1,3})?") {
        let body = example_with("duration", &raw);
        prop_assert_eq!(TaskNotification::from_slice(&body), decode::<TaskNotification>(&body));
    }
}
