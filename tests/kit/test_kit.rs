//! The test kit (feature `test-util`), tested as a user would use it.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airudder_webhook::model::{CallResult, TaskNotification, TaskStatus};
use airudder_webhook::test_util::{self, Example, NotificationBuilder, Recording, Sender};
use airudder_webhook::{AckPolicy, Delivery, Receiver, RetryPolicy};
use axum::Router;
use bytes::Bytes;
use serde_json::json;

fn quick(body: impl Into<Bytes>) -> Sender {
    Sender::new(body).retry_interval(Duration::from_millis(20))
}

#[tokio::test]
async fn a_handler_that_fails_twice_is_seen_three_times_through_the_sender() {
    // The "handled" ack answers with the handler's outcome: each failure is a 503 that the
    // sender retries a minute later (20 ms here).
    let handler = Recording::failing_first(2);
    let receiver = Receiver::builder(handler.clone())
        .allow_unauthenticated()
        .ack(AckPolicy::handled(Duration::from_secs(5)))
        .build()
        .unwrap();
    let app = Router::new().route_service("/airudder/task", receiver.clone());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let progress = Arc::clone(&seen);
    let report = quick(TaskNotification::EXAMPLE)
        .on_attempt(move |attempt| progress.lock().unwrap().push(attempt.to_string()))
        .send_to("/airudder/task", app)
        .await;
    assert!(report.delivered());
    assert_eq!(report.statuses(), [Some(503), Some(503), Some(200)]);
    let attempts = report.attempts();
    assert!(
        attempts[1].after >= Duration::from_millis(20),
        "{attempts:?}"
    );
    assert!(
        attempts[2].after >= Duration::from_millis(40),
        "{attempts:?}"
    );
    let body: serde_json::Value =
        serde_json::from_slice(&attempts[0].outcome.as_ref().unwrap().body).unwrap();
    assert_eq!(body["error"], "handler_failed");
    assert_eq!(
        seen.lock().unwrap().len(),
        3,
        "one line a try, as it happens"
    );
    assert!(seen.lock().unwrap()[2].starts_with("attempt 3 at +"));

    let deliveries = handler.deliveries();
    assert_eq!(deliveries.len(), 3);
    assert!(
        deliveries
            .iter()
            .all(|d| *d.event() == TaskNotification::example())
    );
    receiver
        .shutdown_handle()
        .shutdown(Duration::from_secs(1))
        .await;
}

#[tokio::test]
async fn the_sender_gives_up_after_five_retries_as_airudder_does() {
    let receiver = Receiver::builder(Recording::<TaskNotification>::new())
        .authorize(airudder_webhook::auth::QueryToken::new(["right"]).unwrap())
        .build()
        .unwrap();
    let report = quick(TaskNotification::EXAMPLE)
        .send_to("/airudder/task?token=wrong", receiver.clone())
        .await;
    assert!(!report.delivered());
    assert_eq!(report.attempts().len(), 1 + test_util::MAX_RETRIES as usize);
    assert_eq!(report.statuses(), [Some(401); 6]);
    assert_eq!(test_util::RETRY_INTERVAL, Duration::from_secs(60));
}

#[tokio::test]
async fn the_sender_sends_airudders_headers_and_the_body_as_given() {
    let heard = Arc::new(Mutex::new(None));
    let ear = Arc::clone(&heard);
    let service = tower::service_fn(move |request: http::Request<http_body_util::Full<Bytes>>| {
        let ear = Arc::clone(&ear);
        async move {
            use http_body_util::BodyExt;
            let (parts, body) = request.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            *ear.lock().unwrap() = Some((parts.method, parts.uri, parts.headers, body));
            Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(
                Bytes::from_static(b"{}"),
            )))
        }
    });
    let body = NotificationBuilder::new().task_id("heard").to_bytes();
    let report = Sender::new(body.clone())
        .send_to("/hook?token=t", service)
        .await;
    assert!(report.delivered());
    let (method, uri, headers, received) = heard.lock().unwrap().take().unwrap();
    assert_eq!(method, http::Method::POST);
    assert_eq!(uri, "/hook?token=t");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["user-agent"], "Airudder");
    assert_eq!(received, body);
}

#[tokio::test]
async fn the_sender_posts_over_a_real_socket_and_reports_no_answer_when_nobody_listens() {
    let handler = Recording::new();
    let receiver = Receiver::builder(handler.clone())
        .allow_unauthenticated()
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route_service("/airudder/task", receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let report = quick(TaskNotification::EXAMPLE)
        .post(&format!("http://{addr}/airudder/task"))
        .await;
    assert_eq!(report.statuses(), [Some(200)]);
    assert_eq!(
        &report.attempts()[0].outcome.as_ref().unwrap().body[..],
        b"{}"
    );
    receiver.idle().await;
    assert_eq!(handler.len(), 1);

    // A port nobody listens on: six tries, none answered.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let report = Sender::new(TaskNotification::EXAMPLE)
        .retry_interval(Duration::from_millis(1))
        .post(&format!("http://127.0.0.1:{port}/airudder/task"))
        .await;
    assert!(!report.delivered());
    assert_eq!(report.statuses(), [None; 6]);
    let https = Sender::new(TaskNotification::EXAMPLE)
        .max_retries(0)
        .post("https://example.com/")
        .await;
    let err = https.attempts()[0].outcome.clone().unwrap_err();
    assert!(err.contains("only http://"), "{err}");
    receiver
        .shutdown_handle()
        .shutdown(Duration::from_secs(1))
        .await;
}

#[tokio::test]
async fn idle_returns_only_after_the_handler_finished() {
    let finished = Arc::new(AtomicBool::new(false));
    let done = Arc::clone(&finished);
    let receiver = Receiver::builder(move |_: Delivery<TaskNotification>| {
        let done = Arc::clone(&done);
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            done.store(true, Ordering::SeqCst);
            Ok::<_, Infallible>(())
        }
    })
    .allow_unauthenticated()
    .build()
    .unwrap();
    let app = Router::new().route_service("/airudder/task", receiver.clone());
    let report = Sender::new(TaskNotification::EXAMPLE)
        .send_to("/airudder/task", app)
        .await;
    assert!(report.delivered());
    assert!(
        !finished.load(Ordering::SeqCst),
        "the 200 came before the handler ended"
    );
    tokio::time::timeout(Duration::from_secs(5), receiver.idle())
        .await
        .expect("idle within 5 s");
    assert!(
        finished.load(Ordering::SeqCst),
        "idle returned before the handler finished"
    );
    // Idle again at once: nothing is pending.
    tokio::time::timeout(Duration::from_millis(100), receiver.idle())
        .await
        .expect("idle at once");
    receiver
        .shutdown_handle()
        .shutdown(Duration::from_secs(1))
        .await;
}

#[tokio::test]
async fn idle_waits_for_retries_and_counts_a_given_up_notification_as_settled() {
    let handler = Recording::failing_first(10);
    let receiver = Receiver::builder(handler.clone())
        .allow_unauthenticated()
        .retry(RetryPolicy::new(2).initial_backoff(Duration::from_millis(50)))
        .build()
        .unwrap();
    let report = Sender::new(TaskNotification::EXAMPLE)
        .send_to("/airudder/task", receiver.clone())
        .await;
    assert!(report.delivered());
    tokio::time::timeout(Duration::from_secs(5), receiver.idle())
        .await
        .expect("idle within 5 s");
    assert_eq!(handler.len(), 3, "the first attempt and both retries");
    assert_eq!(receiver.stats().failed, 1);
    receiver
        .shutdown_handle()
        .shutdown(Duration::from_secs(1))
        .await;
}

#[test]
fn the_fixtures_decode_and_round_trip() {
    // The example, byte for byte, and decoded.
    let example = TaskNotification::example();
    assert_eq!(example.task_id.as_str(), "ic1a7a8f2bxxx9f5e343a2ec25a9b2");
    let again: TaskNotification = airudder_webhook::decode(TaskNotification::EXAMPLE).unwrap();
    assert_eq!(again, example);
    // The builder works on JSON values, whose maps keep their keys sorted: equal as JSON.
    let example_json: serde_json::Value =
        serde_json::from_slice(TaskNotification::EXAMPLE).unwrap();
    let built = NotificationBuilder::new().build();
    assert_eq!(serde_json::to_value(&built).unwrap(), example_json);
    assert_eq!(
        built.details[0].variables.as_ref().map(|v| v.len()),
        Some(3)
    );

    // The edge cases: every one decodes, and serializes back to the same JSON.
    let edges = NotificationBuilder::edge_cases();
    let decoded = edges.build();
    assert_eq!(serde_json::to_value(&decoded).unwrap(), edges.to_value());
    assert_eq!(decoded.status, TaskStatus::Other("ARCHIVED".into()));
    assert_eq!(decoded.task_name.as_str(), "催收提醒 · 第二轮");
    assert_eq!(decoded.repeat_interval, i64::MAX);
    assert_eq!(decoded.details.len(), 4);
    assert_eq!(decoded.details[0].result.as_str(), "NO ANSWER");
    assert!(decoded.details[0].ring_type.is_none());
    assert_eq!(
        decoded.details[1].redial_calls.as_ref().map(Vec::len),
        Some(3)
    );
    assert_eq!(decoded.details[1].call_times, Some(4));
    assert!(decoded.details[2].variables.is_none() && decoded.details[2].call_id.is_none());
    assert!(decoded.details[2].result.is_cancelled() && decoded.details[3].result.is_cancelled());
    assert_eq!(decoded.details[3].duration, i64::MAX);

    // N calls, each its own; none at all; an unknown member kept.
    let many = NotificationBuilder::new()
        .calls(50)
        .each_call(|i, call| call.result(if i % 2 == 0 { "finished" } else { "failed" }))
        .set("later_field", json!([1, 2]))
        .build();
    assert_eq!(many.details.len(), 50);
    let ids: std::collections::HashSet<_> = many.details.iter().map(|c| c.id).collect();
    assert_eq!(ids.len(), 50);
    assert_eq!(many.details[49].result, CallResult::Failed);
    assert_eq!(
        serde_json::to_value(&many).unwrap()["later_field"],
        json!([1, 2])
    );
    assert!(
        NotificationBuilder::new()
            .calls(0)
            .build()
            .details
            .is_empty()
    );

    // Bytes and value agree; Debug masks the numbers.
    let builder = NotificationBuilder::new().task_id("bytes");
    let from_bytes: serde_json::Value = serde_json::from_slice(&builder.to_bytes()).unwrap();
    assert_eq!(from_bytes, builder.to_value());
    assert!(!format!("{:?}", builder.build()).contains("12345678"));
}

#[test]
#[should_panic(expected = "the fixture is not a valid notification")]
fn a_fixture_the_receiver_would_refuse_says_so() {
    NotificationBuilder::new()
        .set("details", json!("no calls"))
        .build();
}

#[test]
fn a_delivery_is_made_by_hand_for_a_unit_test() {
    let at = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let delivery = Delivery::for_test(TaskNotification::example())
        .with_attempt(2)
        .with_received_at(at);
    assert_eq!((delivery.attempt(), delivery.received_at()), (2, at));
    assert_eq!(delivery.details[0].result_label.as_str(), "A");
}
