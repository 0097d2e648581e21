//! Fixtures shared by the tests and the benches.
#![allow(dead_code)]

pub(crate) mod ports;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod process;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};

/// The example body with another task id, as serialized JSON.
pub(crate) fn example_with_task_id(task: &str) -> Vec<u8> {
    let mut body = example_value();
    body["task_id"] = json!(task);
    serde_json::to_vec(&body).unwrap()
}

/// The sender's example body, byte for byte.
pub(crate) const EXAMPLE: &[u8] = include_bytes!("../data/task_notification.example.json");

/// The example body as a JSON value.
pub(crate) fn example_value() -> Value {
    serde_json::from_slice(EXAMPLE).expect("the example is JSON")
}

/// A notification like the example, with `calls` distinct calls (about 1.6 KB each).
pub(crate) fn notification_with_calls(calls: usize) -> Vec<u8> {
    serde_json::to_vec(&notification_value(calls)).expect("serializable")
}

/// The same, indented as the sender's documentation shows it (about 1.8 KB a call).
pub(crate) fn indented_notification_with_calls(calls: usize) -> Vec<u8> {
    serde_json::to_vec_pretty(&notification_value(calls)).expect("serializable")
}

fn notification_value(calls: usize) -> Value {
    let mut value = example_value();
    let template = value["details"][0].clone();
    let details = (0..calls)
        .map(|i| {
            let mut call = template.clone();
            call["id"] = json!(931_888_898 + i as i64);
            call["callee"] = json!(format!("+86{:010}", 1_234_567_800 + i));
            call["call_id"] = json!(format!("ic9adfe00d474b{i:016x}"));
            call["duration"] = json!(i % 300);
            call
        })
        .collect();
    value["details"] = Value::Array(details);
    value
}

/// Shuts the receiver down with a deadline no test should reach.
pub(crate) async fn stop<E: airudder_webhook::Event>(
    receiver: &airudder_webhook::Receiver<E>,
) -> airudder_webhook::ShutdownReport {
    receiver
        .shutdown_handle()
        .shutdown(std::time::Duration::from_secs(5))
        .await
}

/// Waits until `condition` holds, looking every millisecond; panics after 10 s, naming `what`.
pub(crate) async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "waited 10 s for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// A POST of `body` as `application/json` to `/airudder/task`.
pub(crate) fn post(body: impl Into<Bytes>) -> http::Request<Full<Bytes>> {
    http::Request::post("/airudder/task")
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .expect("valid request")
}

/// The floor the benches measure against, as a tower service (`tower::service_fn(floor)`):
/// read the body, answer `{}`, parse nothing.
pub(crate) async fn floor(
    request: http::Request<Full<Bytes>>,
) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
    use http_body_util::BodyExt;
    let body = request.into_body().collect().await?.to_bytes();
    std::hint::black_box(body);
    Ok(http::Response::new(Full::new(Bytes::from_static(b"{}"))))
}

/// Sends one request over a real connection and reads the whole answer.
pub(crate) async fn send(
    method: &str,
    url: &str,
    content_type: &str,
    body: impl Into<Bytes>,
) -> (http::StatusCode, http::HeaderMap, Bytes) {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .expect("valid request");
    let response = client.request(request).await.expect("the server answers");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("a whole body").to_bytes();
    (parts.status, parts.headers, bytes)
}

/// Like [`send`], but a refused connection is an `Err` rather than a panic.
pub(crate) async fn try_send(
    url: &str,
    body: impl Into<Bytes>,
) -> Result<http::StatusCode, String> {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let request = http::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .map_err(|e| e.to_string())?;
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(status)
}

/// Captures, as tracing-subscriber's text (no colours), what is logged on this thread at
/// `level` and above, until the guard drops.
pub(crate) fn capture_logs(
    level: tracing::Level,
) -> (
    tracing::subscriber::DefaultGuard,
    std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
) {
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let writer = {
        let logs = std::sync::Arc::clone(&logs);
        move || Capture(std::sync::Arc::clone(&logs))
    };
    let subscriber = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_max_level(level)
        .with_ansi(false)
        .finish();
    (tracing::subscriber::set_default(subscriber), logs)
}

/// A log writer that keeps every line, for tests that read the logs.
pub(crate) struct Capture(pub(crate) std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
