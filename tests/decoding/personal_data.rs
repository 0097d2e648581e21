//! Personal data never reaches a log line or an error body, at the most verbose level.
//!
//! This file installs a global subscriber at TRACE that keeps every line, runs a receiver
//! through every path that logs (accepted, refused for each reason, handler failures, retries,
//! given up, shutdown), and searches the lines for the phone numbers, the customer variables
//! and the secrets of the run.

use crate::support;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use airudder_webhook::auth::QueryToken;
use airudder_webhook::model::TaskNotification;
use airudder_webhook::{Delivery, FailedDelivery, Receiver, RetryPolicy};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

const CALLEE: &str = "+8613912345678";
const CALLER: &str = "+62777888999";
const REDIAL_CALLEE: &str = "+6281122334455";
const BIRTHDAY: &str = "19841224";
const CARD: &str = "4111222233334444";
const TOKEN: &str = "tok-7Hq2Xv9Lp";
const WRONG_TOKEN: &str = "guess-Zk31Pq";

fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let logs = Arc::clone(&logs);
            move || support::Capture(Arc::clone(&logs))
        };
        tracing_subscriber::fmt()
            .with_writer(writer)
            .with_max_level(tracing::Level::TRACE)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
            .with_ansi(false)
            .init();
        logs
    })
}

fn personal_body() -> serde_json::Value {
    let mut body = support::example_value();
    let call = &mut body["details"][0];
    call["callee"] = json!(CALLEE);
    call["caller_number"] = json!(CALLER);
    call["variables"] = json!({"birthday": BIRTHDAY, "creditnumber": CARD});
    call["redail_call"][0]["callee_number"] = json!(REDIAL_CALLEE);
    body
}

#[tokio::test]
async fn no_log_line_or_error_body_holds_personal_data_or_a_secret() {
    let logs = logs();
    let failures = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let receiver = Receiver::builder({
        let failures = Arc::clone(&failures);
        move |delivery: Delivery<TaskNotification>| {
            let failures = Arc::clone(&failures);
            async move {
                // A handler that logs the notification the way a careless user might: Debug.
                tracing::debug!(?delivery, "handler got");
                if failures.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 3 {
                    return Err(std::io::Error::other("database unavailable"));
                }
                Ok(())
            }
        }
    })
    .authorize(QueryToken::new([TOKEN]).unwrap())
    .retry(RetryPolicy::new(1).initial_backoff(Duration::from_millis(1)))
    .on_failed(|failed: FailedDelivery<TaskNotification>| tracing::error!(?failed, "gave up"))
    .build()
    .unwrap();

    let good = serde_json::to_vec(&personal_body()).unwrap();
    let mut wrong_type = personal_body();
    wrong_type["details"][0]["duration"] = json!(CALLEE);
    wrong_type["details"][0]["id"] = json!(BIRTHDAY);
    let mut not_an_object = personal_body();
    not_an_object["details"][0]["variables"]["creditnumber"] = json!(CARD);
    not_an_object["details"] = json!([CALLEE, CARD]);

    let uri = |token: &str| format!("/airudder/task?token={token}");
    let requests = [
        (uri(TOKEN), good.clone()),
        (uri(TOKEN), good.clone()),
        (uri(TOKEN), serde_json::to_vec(&wrong_type).unwrap()),
        (uri(TOKEN), serde_json::to_vec(&not_an_object).unwrap()),
        (
            uri(TOKEN),
            format!("{{\"task_id\": \"{CALLEE}\", {CARD}").into_bytes(),
        ),
        (uri(WRONG_TOKEN), good.clone()),
        ("/airudder/task".to_owned(), good.clone()),
    ];
    let mut bodies = String::new();
    for (uri, body) in requests {
        let request = http::Request::post(uri)
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let response = receiver.clone().oneshot(request).await.unwrap();
        bodies.push_str(&String::from_utf8_lossy(
            &response.into_body().collect().await.unwrap().to_bytes(),
        ));
    }
    let report = receiver
        .shutdown_handle()
        .shutdown(Duration::from_secs(5))
        .await;
    assert_eq!(
        (report.handled, report.failed),
        (1, 1),
        "one handled after retries, one given up"
    );

    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("ic1a7a8f2bxxx9f5e343a2ec25a9b2"),
        "the logs were captured:\n{logs}"
    );
    assert!(
        logs.contains("database unavailable") && logs.contains("gave up"),
        "every path ran:\n{logs}"
    );
    for secret in [
        CALLEE,
        CALLER,
        REDIAL_CALLEE,
        BIRTHDAY,
        CARD,
        TOKEN,
        WRONG_TOKEN,
    ] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs:\n{logs}"
        );
        assert!(
            !bodies.contains(secret),
            "{secret} leaked into an error body: {bodies}"
        );
    }
    // Masked numbers keep their last digits, so an operator can still tell calls apart.
    assert!(
        logs.contains("5678"),
        "masked numbers keep their last four digits"
    );
}
