//! Every refusal reaches the log at WARN, the default level's neighbour, and a flood of them
//! does not flood it.

use crate::support;

use std::time::Duration;

use airudder_webhook::Receiver;
use airudder_webhook::auth::QueryToken;
use airudder_webhook::model::TaskNotification;
use bytes::Bytes;
use http_body_util::Full;
use tower::ServiceExt;

#[tokio::test]
async fn refusals_are_logged_at_warn_once_a_second_per_reason_with_the_count_left_out() {
    let (_guard, logs) = support::capture_logs(tracing::Level::WARN);

    let receiver = Receiver::builder(|_: airudder_webhook::Delivery<TaskNotification>| async {
        Ok::<_, std::convert::Infallible>(())
    })
    .authorize(QueryToken::new(["s3cret-token"]).unwrap())
    .build()
    .unwrap();
    // A proxy that rewrites the content type, then a stranger without the token.
    let rewritten = || {
        http::Request::post("/airudder/task?token=s3cret-token")
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from_static(support::EXAMPLE)))
            .unwrap()
    };
    let stranger = || support::post(support::EXAMPLE);
    for _ in 0..200 {
        receiver.clone().oneshot(rewritten()).await.unwrap();
        receiver.clone().oneshot(stranger()).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    receiver.clone().oneshot(rewritten()).await.unwrap();

    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let lines = |code: &str| -> Vec<&str> {
        text.lines()
            .filter(|line| line.contains("WARN") && line.contains(&format!("outcome=\"{code}\"")))
            .collect()
    };
    let media = lines("unsupported_media_type");
    let auth = lines("unauthorized");
    // 201 refusals for the content type over two seconds or so: a few lines, not 201.
    assert!((2..=4).contains(&media.len()), "{text}");
    assert!((1..=3).contains(&auth.len()), "{text}");
    assert!(media[0].contains("status=415"), "{}", media[0]);
    assert!(
        media.last().unwrap().contains("suppressed=")
            && !media.last().unwrap().contains("suppressed=0"),
        "the line after a quiet second says how many were left out: {text}"
    );
    assert!(
        !text.contains("s3cret-token"),
        "the secret never reaches the log"
    );
    assert_eq!(
        receiver.stats().answers().get("unsupported_media_type"),
        201
    );
    assert_eq!(receiver.stats().answers().get("unauthorized"), 200);
}

#[tokio::test]
async fn a_request_value_forges_no_line_and_no_field_under_a_plain_subscriber() {
    // What a user of the library runs: tracing-subscriber's text format, every level.
    let (_guard, logs) = support::capture_logs(tracing::Level::DEBUG);
    let receiver = Receiver::builder(|_: airudder_webhook::Delivery<TaskNotification>| async {
        Ok::<_, std::io::Error>(())
    })
    .allow_unauthenticated()
    .build()
    .unwrap();

    let forged = "t1\r\nERROR forged \u{1b}]0;x\u{7} outcome=\"accepted\"";
    let accepted = support::post(support::example_with_task_id(forged));
    assert_eq!(
        receiver.clone().oneshot(accepted).await.unwrap().status(),
        200
    );
    let mut value = support::example_value();
    value["task_id"] = serde_json::json!(1);
    let member = "m\r\nERROR forged by a member";
    let text = serde_json::to_string(&value).unwrap().replacen(
        '{',
        &format!("{{{key}: 1, {key}: 2, ", key = serde_json::json!(member)),
        1,
    );
    let refused = support::post(text.into_bytes());
    assert_eq!(
        receiver.clone().oneshot(refused).await.unwrap().status(),
        422
    );
    let huge = support::post(support::example_with_task_id(&"h".repeat(1 << 20)));
    assert_eq!(receiver.clone().oneshot(huge).await.unwrap().status(), 200);
    receiver.idle().await;

    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    for line in text.lines() {
        assert!(!line.starts_with("ERROR forged"), "a forged line: {line:?}");
        assert!(line.len() < 4096, "a line of {} bytes", line.len());
    }
    assert!(!text.contains(['\r', '\u{1b}', '\u{7}']), "{text:?}");
    // The task id is one quoted value: its `outcome="accepted"` is inside the quotes.
    assert!(
        text.contains(r#"task_id="t1\\r\\nERROR forged \\u{1b}]0;x\\u{7} outcome=\"accepted\"""#),
        "{text}"
    );
    assert!(text.contains("…[cut: 1048576 bytes]"), "{text}");
}

#[tokio::test]
async fn an_outage_of_the_handler_writes_a_warning_per_interval_not_one_per_failure() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use airudder_webhook::RetryPolicy;
    use airudder_webhook::store::RedbStore;

    let (_guard, logs) = support::capture_logs(tracing::Level::INFO);
    let dir = support::process::DataDir::new();
    let down = Arc::new(AtomicBool::new(true));
    let service = Arc::clone(&down);
    let receiver = Receiver::builder(move |_: airudder_webhook::Delivery<TaskNotification>| {
        let down = service.load(Ordering::SeqCst);
        async move {
            match down {
                true => Err("connection refused"),
                false => Ok(()),
            }
        }
    })
    .allow_unauthenticated()
    .durable(RedbStore::open(&dir.0).unwrap())
    .retry(
        RetryPolicy::new(1_000)
            .initial_backoff(Duration::from_millis(20))
            .max_backoff(Duration::from_millis(50)),
    )
    .build()
    .unwrap();
    for n in 0..20 {
        let answer = receiver
            .clone()
            .oneshot(support::post(support::example_with_task_id(&format!(
                "o-{n}"
            ))))
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    // The service is down for a while: every notification fails again and again.
    // A failed attempt of a stored notification goes back to the store: `returned`.
    let failed = || receiver.stats().returned;
    while failed() < 200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    down.store(false, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(30), receiver.idle())
        .await
        .expect("every notification handled once the service is back");

    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let warnings = text
        .lines()
        .filter(|line| line.contains("WARN") && line.contains("handler failed"))
        .count();
    assert!(
        (1..=2).contains(&warnings),
        "{warnings} warnings for {} failed attempts:\n{text}",
        failed()
    );
    let recovered = text
        .lines()
        .find(|line| line.contains("handler succeeded again"))
        .unwrap_or_else(|| panic!("the recovery is logged with the count:\n{text}"));
    let suppressed: u64 = recovered
        .split("suppressed=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no count in {recovered}"));
    assert!(suppressed >= 150, "{recovered}");
}
