//! The HTTP behaviour, one test per row of the status table, driven with `oneshot`.

use crate::support::{self, stop};

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use airudder_webhook::model::TaskNotification;
use airudder_webhook::{
    AckPolicy, Delivery, FailedDelivery, HandleNotification, Receiver, ReceiverBuilder, Refusal,
    RetryPolicy,
};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tower::{Service, ServiceExt};

type Deliveries = mpsc::UnboundedReceiver<Delivery<TaskNotification>>;

/// A handler that passes every delivery to the test.
fn recording() -> (impl HandleNotification + Clone, Deliveries) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handler = move |delivery: Delivery<TaskNotification>| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(delivery);
            Ok::<_, Infallible>(())
        }
    };
    (handler, rx)
}

async fn next(deliveries: &mut Deliveries) -> Delivery<TaskNotification> {
    tokio::time::timeout(Duration::from_secs(5), deliveries.recv())
        .await
        .expect("a delivery within 5 s")
        .expect("the handler is alive")
}

async fn json_body<B: Body>(response: Response<B>) -> (StatusCode, http::HeaderMap, Value)
where
    B::Error: std::fmt::Debug,
{
    let (parts, body) = response.into_parts();
    assert_eq!(parts.headers["content-type"], "application/json");
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        serde_json::from_slice(&bytes).expect("every answer is JSON"),
    )
}

/// A builder for tests about everything but authentication.
fn open<H: HandleNotification>(handler: H) -> ReceiverBuilder<TaskNotification, H> {
    Receiver::builder(handler).allow_unauthenticated()
}

/// Posts the example body and returns the status.
async fn post_example(receiver: &Receiver) -> StatusCode {
    let response = receiver
        .clone()
        .oneshot(support::post(support::EXAMPLE))
        .await
        .unwrap();
    response.status()
}

/// Posts the example from a task of the runtime, as a server's connection does (a request from
/// a task may start its handler itself; one from `block_on` always goes through the queue).
async fn post_example_from_a_task(receiver: &Receiver) -> StatusCode {
    let receiver = receiver.clone();
    tokio::spawn(async move { post_example(&receiver).await })
        .await
        .unwrap()
}

/// Sends a request and reads the JSON answer.
async fn answer<B>(receiver: &Receiver, request: Request<B>) -> (StatusCode, http::HeaderMap, Value)
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<airudder_webhook::BoxError>,
{
    json_body(receiver.clone().oneshot(request).await.unwrap()).await
}

#[tokio::test]
async fn a_valid_post_is_answered_200_empty_object_and_dispatched() {
    let (handler, mut deliveries) = recording();
    let receiver = open(handler).build().unwrap();
    let (status, _, body) = answer(&receiver, support::post(support::EXAMPLE)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));

    let delivery = next(&mut deliveries).await;
    assert_eq!(delivery.attempt(), 1);
    assert_eq!(
        serde_json::to_value(delivery.event()).unwrap(),
        support::example_value()
    );
    let report = stop(&receiver).await;
    assert_eq!((report.handled, report.left, report.drained), (1, 0, true));
}

#[tokio::test]
async fn other_methods_are_answered_405_with_allow_post() {
    let (handler, _deliveries) = recording();
    let receiver = open(handler).build().unwrap();
    for method in ["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] {
        let request = Request::builder()
            .method(method)
            .uri("/airudder/task")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(support::EXAMPLE)))
            .unwrap();
        let (status, headers, body) = answer(&receiver, request).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(headers["allow"], "POST", "{method}");
        assert_eq!(body["error"], "method_not_allowed", "{method}");
    }
    assert_eq!(receiver.stats().queued, 0);
}

#[tokio::test]
async fn content_types_other_than_json_are_answered_415() {
    let (handler, _deliveries) = recording();
    let receiver = open(handler).build().unwrap();
    let cases = [
        ("json", Some("application/json"), StatusCode::OK),
        (
            "json with charset",
            Some("application/json; charset=utf-8"),
            StatusCode::OK,
        ),
        ("upper case", Some("APPLICATION/JSON"), StatusCode::OK),
        (
            "text",
            Some("text/plain"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "form",
            Some("application/x-www-form-urlencoded"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        ("missing", None, StatusCode::UNSUPPORTED_MEDIA_TYPE),
    ];
    for (name, content_type, want) in cases {
        let mut request = Request::post("/airudder/task");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let request = request
            .body(Full::new(Bytes::from_static(support::EXAMPLE)))
            .unwrap();
        let (status, _, body) = answer(&receiver, request).await;
        assert_eq!(status, want, "{name}: {body}");
        if want != StatusCode::OK {
            assert_eq!(body["error"], "unsupported_media_type", "{name}");
        }
    }
}

/// Records what reaches the rejected hook.
fn rejected_hook() -> (
    impl Fn(Refusal) + Send + Sync + 'static,
    Arc<Mutex<Vec<Refusal>>>,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hook = {
        let seen = Arc::clone(&seen);
        move |rejected: Refusal| seen.lock().unwrap().push(rejected)
    };
    (hook, seen)
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_answered_413_before_reading() {
    let (handler, _deliveries) = recording();
    let (hook, seen) = rejected_hook();
    let receiver = open(handler)
        .body_limit(1024)
        .on_rejected(hook)
        .build()
        .unwrap();
    let response = receiver
        .oneshot(support::post(support::EXAMPLE))
        .await
        .unwrap();
    let (status, _, body) = json_body(response).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"], "payload_too_large");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].rejection().status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(seen[0].body().is_none());
}

/// A body in chunks with no declared length, like `Transfer-Encoding: chunked`; it can fail
/// after its chunks, like a connection that drops.
struct Chunked {
    chunks: VecDeque<Bytes>,
    fail_at_end: bool,
}

impl Chunked {
    fn new(body: &[u8], chunk: usize) -> Self {
        Self {
            chunks: body.chunks(chunk).map(Bytes::copy_from_slice).collect(),
            fail_at_end: false,
        }
    }
}

impl Body for Chunked {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.chunks.pop_front() {
            Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            None if self.fail_at_end => {
                self.fail_at_end = false;
                Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "peer reset",
                ))))
            }
            None => Poll::Ready(None),
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

fn post_chunked(body: Chunked) -> Request<Chunked> {
    Request::post("/airudder/task")
        .header("content-type", "application/json")
        .body(body)
        .unwrap()
}

#[tokio::test]
async fn a_chunked_body_is_counted_while_streaming() {
    let (handler, mut deliveries) = recording();
    let limit = support::EXAMPLE.len();
    let receiver = open(handler).body_limit(limit).build().unwrap();

    // Exactly at the limit, in 100-byte chunks: accepted and reassembled.
    let response = receiver
        .clone()
        .oneshot(post_chunked(Chunked::new(support::EXAMPLE, 100)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        serde_json::to_value(next(&mut deliveries).await.event()).unwrap(),
        support::example_value()
    );

    // One byte over: refused while streaming, without a Content-Length to go by.
    let over = [support::EXAMPLE, b" "].concat();
    let (status, _, body) = answer(&receiver, post_chunked(Chunked::new(&over, 100))).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::PAYLOAD_TOO_LARGE, &json!("payload_too_large"))
    );

    // A body that breaks off: 400, nothing queued.
    let mut broken = Chunked::new(&support::EXAMPLE[..300], 100);
    broken.fail_at_end = true;
    let (status, _, body) = answer(&receiver, post_chunked(broken)).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &json!("body_read_failed"))
    );
    assert_eq!(receiver.stats().queued, 1);
}

#[tokio::test]
async fn the_default_limit_accepts_a_10000_call_notification() {
    let (handler, mut deliveries) = recording();
    let receiver = open(handler).build().unwrap();
    let body = support::indented_notification_with_calls(10_000);
    assert!(body.len() > 17 * 1000 * 1000, "{} bytes", body.len());
    let response = receiver.oneshot(support::post(body)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(next(&mut deliveries).await.details.len(), 10_000);
}

#[tokio::test]
async fn bodies_that_are_not_json_are_answered_400_and_kept_for_the_hook() {
    let (handler, _deliveries) = recording();
    let (hook, seen) = rejected_hook();
    let receiver = open(handler).on_rejected(hook).build().unwrap();
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("malformed", b"{\"task_id\": ".to_vec(), "malformed_json"),
        (
            "trailing bytes",
            [support::EXAMPLE, b"\n{}"].concat(),
            "trailing_bytes",
        ),
        ("empty", Vec::new(), "empty_body"),
        (
            "invalid utf-8",
            b"{\"task_id\": \"\xc3\x28\"}".to_vec(),
            "malformed_json",
        ),
        (
            "deep nesting",
            format!("{{\"x\":{}{}}}", "[".repeat(50_000), "]".repeat(50_000)).into_bytes(),
            "nesting_too_deep",
        ),
    ];
    for (name, body, code) in &cases {
        let (status, _, answer) = answer(&receiver, support::post(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {answer}");
        assert_eq!(answer["error"], *code, "{name}");
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}"
        );
    }
    let seen = seen.lock().unwrap();
    let kept: Vec<_> = seen
        .iter()
        .map(|r| r.body().cloned().unwrap_or_default())
        .collect();
    let sent: Vec<_> = cases
        .iter()
        .map(|(_, body, _)| Bytes::from(body.clone()))
        .collect();
    assert_eq!(
        kept, sent,
        "the hook receives the raw bytes of every refused body"
    );
    assert_eq!(receiver.stats().refused, 5);
}

#[tokio::test]
async fn valid_json_of_the_wrong_shape_is_answered_422_with_the_path() {
    let (handler, _deliveries) = recording();
    let receiver = open(handler).build().unwrap();
    let mut value = support::example_value();
    let call = value["details"][0].clone();
    value["details"] = json!([call, call, call, call]);
    value["details"][3]["duration"] = json!("12s");
    let (status, _, body) = answer(
        &receiver,
        support::post(serde_json::to_vec(&value).unwrap()),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"], "invalid_notification");
    assert_eq!(body["path"], "details[3].duration");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid type: a string, expected i64"),
        "{body}"
    );
    assert!(
        !body.to_string().contains("12s"),
        "no value from the body is echoed"
    );

    let (status, _, body) = json_body(
        receiver
            .oneshot(support::post(&b"[1, 2]"[..]))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body.get("path")),
        (StatusCode::UNPROCESSABLE_ENTITY, None)
    );
}

/// A handler that signals when it starts and then waits for a permit.
fn blocking() -> (
    impl HandleNotification,
    Arc<Semaphore>,
    mpsc::UnboundedReceiver<()>,
) {
    let gate = Arc::new(Semaphore::new(0));
    let (started_tx, started) = mpsc::unbounded_channel();
    let handler = {
        let gate = Arc::clone(&gate);
        move |_: Delivery<TaskNotification>| {
            let gate = Arc::clone(&gate);
            let started_tx = started_tx.clone();
            async move {
                let _ = started_tx.send(());
                gate.acquire().await.unwrap().forget();
                Ok::<_, Infallible>(())
            }
        }
    };
    (handler, gate, started)
}

#[tokio::test]
async fn a_full_queue_is_answered_503_with_retry_after() {
    let (handler, gate, mut started) = blocking();
    let receiver = open(handler).workers(1).queue_capacity(1).build().unwrap();
    let ok = receiver
        .clone()
        .oneshot(support::post(support::EXAMPLE))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    started.recv().await.unwrap(); // the only worker is busy
    let queued = receiver
        .clone()
        .oneshot(support::post(support::EXAMPLE))
        .await
        .unwrap();
    assert_eq!(queued.status(), StatusCode::OK); // the only queue slot is taken
    let (status, headers, body) = answer(&receiver, support::post(support::EXAMPLE)).await;
    assert_eq!(
        (status, &headers["retry-after"], &body["error"]),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            &"60".parse().unwrap(),
            &json!("queue_full")
        )
    );

    assert_eq!(receiver.stats().unavailable, 1);

    gate.add_permits(2);
    let report = stop(&receiver).await;
    assert_eq!((report.handled, report.left), (2, 0));
}

#[tokio::test]
async fn shutdown_refuses_new_notifications_and_drains_the_queue() {
    let (handler, gate, mut started) = blocking();
    let receiver = open(handler).workers(1).build().unwrap();
    for _ in 0..3 {
        let response = receiver
            .clone()
            .oneshot(support::post(support::EXAMPLE))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    started.recv().await.unwrap();
    let shutdown = receiver.shutdown_handle();
    let draining = tokio::spawn(async move { shutdown.shutdown(Duration::from_secs(10)).await });
    support::wait_until("the shutdown to begin", || !receiver.is_ready()).await;

    let (status, headers, body) = answer(&receiver, support::post(support::EXAMPLE)).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::SERVICE_UNAVAILABLE, &json!("shutting_down"))
    );
    assert_eq!(headers["retry-after"], "60");

    gate.add_permits(3);
    let report = draining.await.unwrap();
    assert_eq!((report.handled, report.left, report.drained), (3, 0, true));
}

#[tokio::test]
async fn shutdown_reports_what_the_deadline_left_behind() {
    let (handler, _gate, mut started) = blocking();
    let receiver = open(handler).workers(1).build().unwrap();
    for _ in 0..3 {
        receiver
            .clone()
            .oneshot(support::post(support::EXAMPLE))
            .await
            .unwrap();
    }
    started.recv().await.unwrap();
    let report = receiver
        .shutdown_handle()
        .shutdown(Duration::from_millis(100))
        .await;
    assert_eq!((report.handled, report.left, report.drained), (0, 3, false));
}

#[tokio::test]
async fn the_workers_limit_holds_for_handlers_started_by_the_request_and_from_the_queue() {
    let (running, most) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let (handler, gate, mut started) = {
        let gate = Arc::new(Semaphore::new(0));
        let (started_tx, started) = mpsc::unbounded_channel();
        let handler = {
            let (gate, running, most) =
                (Arc::clone(&gate), Arc::clone(&running), Arc::clone(&most));
            move |_: Delivery<TaskNotification>| {
                let (gate, running, most) =
                    (Arc::clone(&gate), Arc::clone(&running), Arc::clone(&most));
                let started_tx = started_tx.clone();
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let _ = started_tx.send(());
                    gate.acquire().await.unwrap().forget();
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, Infallible>(())
                }
            }
        };
        (handler, gate, started)
    };
    let receiver = open(handler).workers(2).build().unwrap();
    for _ in 0..5 {
        assert_eq!(post_example_from_a_task(&receiver).await, StatusCode::OK);
    }
    started.recv().await.unwrap();
    started.recv().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(started.try_recv().is_err(), "a third handler started");
    assert_eq!(most.load(Ordering::SeqCst), 2);

    gate.add_permits(5);
    let report = stop(&receiver).await;
    assert_eq!((report.handled, report.left), (5, 0));
    assert_eq!(most.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn handlers_running_at_the_deadline_are_cancelled_wherever_they_were_started() {
    struct Dropped(Arc<AtomicU32>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicU32::new(0));
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let handler = {
        let dropped = Arc::clone(&dropped);
        move |_: Delivery<TaskNotification>| {
            let guard = Dropped(Arc::clone(&dropped));
            let started_tx = started_tx.clone();
            async move {
                let _guard = guard;
                let _ = started_tx.send(());
                std::future::pending::<()>().await;
                Ok::<_, Infallible>(())
            }
        }
    };
    // Two start straight from their requests (both workers free), the third waits in the queue.
    let receiver = open(handler).workers(2).build().unwrap();
    for _ in 0..3 {
        assert_eq!(post_example_from_a_task(&receiver).await, StatusCode::OK);
    }
    started.recv().await.unwrap();
    started.recv().await.unwrap();
    let shutdown = receiver.shutdown_handle();
    let report = tokio::time::timeout(
        Duration::from_secs(5),
        shutdown.shutdown(Duration::from_millis(100)),
    )
    .await
    .expect("shutdown returns soon after its deadline");
    assert_eq!((report.handled, report.left, report.drained), (0, 3, false));
    // Both running handlers were dropped by the time shutdown returned.
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_handler_sleeping_one_second_does_not_delay_the_200() {
    let finished = Arc::new(AtomicBool::new(false));
    let handler = {
        let finished = Arc::clone(&finished);
        move |_: Delivery<TaskNotification>| {
            let finished = Arc::clone(&finished);
            async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                finished.store(true, Ordering::SeqCst);
                Ok::<_, Infallible>(())
            }
        }
    };
    let receiver = open(handler).build().unwrap();
    let started = Instant::now();
    let response = receiver
        .clone()
        .oneshot(support::post(support::EXAMPLE))
        .await
        .unwrap();
    let answered_in = started.elapsed();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        !finished.load(Ordering::SeqCst),
        "the 200 came before the handler finished"
    );
    assert!(
        answered_in < Duration::from_millis(500),
        "answered in {answered_in:?}"
    );
    let report = stop(&receiver).await;
    assert!(finished.load(Ordering::SeqCst) && report.handled == 1);
}

/// A handler whose outcome the test chooses: "ok", "error", "panic" or "sleep".
fn scripted(script: &'static [&'static str]) -> (impl HandleNotification, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let handler = {
        let calls = Arc::clone(&calls);
        move |_: Delivery<TaskNotification>| {
            let step = calls.fetch_add(1, Ordering::SeqCst) as usize;
            async move {
                match script.get(step).copied().unwrap_or("ok") {
                    "error" => Err(std::io::Error::other("store unavailable")),
                    "panic" => panic!("handler bug"),
                    "sleep" => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        Ok(())
                    }
                    _ => Ok(()),
                }
            }
        }
    };
    (handler, calls)
}

#[tokio::test]
async fn the_handled_ack_answers_after_the_handler() {
    let cases: [(&str, &'static [&'static str], StatusCode, Option<&str>); 4] = [
        ("success", &["ok"], StatusCode::OK, None),
        (
            "error",
            &["error"],
            StatusCode::SERVICE_UNAVAILABLE,
            Some("handler_failed"),
        ),
        (
            "panic",
            &["panic"],
            StatusCode::SERVICE_UNAVAILABLE,
            Some("handler_failed"),
        ),
        (
            "timeout",
            &["sleep"],
            StatusCode::SERVICE_UNAVAILABLE,
            Some("handler_timed_out"),
        ),
    ];
    for (name, script, want, code) in cases {
        let (handler, calls) = scripted(script);
        let receiver = open(handler)
            .ack(AckPolicy::handled(Duration::from_millis(300)))
            .build()
            .unwrap();
        let started = Instant::now();
        let response = receiver
            .clone()
            .oneshot(support::post(support::EXAMPLE))
            .await
            .unwrap();
        let elapsed = started.elapsed();
        let (status, headers, body) = json_body(response).await;
        assert_eq!(status, want, "{name}: {body}");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "{name}: one attempt, the sender retries"
        );
        if let Some(code) = code {
            assert_eq!(body["error"], code, "{name}");
            assert_eq!(headers["retry-after"], "60", "{name}");
        }
        assert!(elapsed < Duration::from_secs(5), "{name}: {elapsed:?}");
        let stats = receiver.stats();
        assert_eq!(stats.pending(), 0, "{name}: {stats:?}");
    }
}

#[tokio::test]
async fn failures_are_retried_with_backoff_then_handed_to_the_failed_hook() {
    let (handler, calls) = scripted(&["error", "panic", "error", "error", "ok"]);
    let failed = Arc::new(Mutex::new(Vec::<FailedDelivery<TaskNotification>>::new()));
    let receiver = open(handler)
        .workers(1)
        .retry(RetryPolicy::new(3).initial_backoff(Duration::from_millis(5)))
        .on_failed({
            let failed = Arc::clone(&failed);
            move |f: FailedDelivery<TaskNotification>| failed.lock().unwrap().push(f)
        })
        .build()
        .unwrap();
    // The first notification fails 4 times (error, panic, error, error): given up.
    // The second succeeds at once: the worker survived the panic.
    for _ in 0..2 {
        assert_eq!(post_example(&receiver).await, StatusCode::OK);
    }
    let report = stop(&receiver).await;
    assert_eq!((report.handled, report.failed, report.left), (1, 1, 0));
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    let failed = failed.lock().unwrap();
    assert_eq!(failed[0].delivery().attempt(), 4);
    assert_eq!(failed[0].error().to_string(), "store unavailable");
    assert_eq!(
        failed[0].delivery().task_id,
        "ic1a7a8f2bxxx9f5e343a2ec25a9b2"
    );
}

#[tokio::test]
async fn a_handler_that_hangs_is_cancelled_after_the_handler_timeout() {
    let (handler, calls) = scripted(&["sleep"]);
    let receiver = open(handler)
        .retry(RetryPolicy::never())
        .handler_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    receiver
        .clone()
        .oneshot(support::post(support::EXAMPLE))
        .await
        .unwrap();
    let report = stop(&receiver).await;
    assert_eq!(
        (report.failed, report.left, calls.load(Ordering::SeqCst)),
        (1, 0, 1)
    );
}

#[tokio::test]
async fn the_layer_answers_its_path_and_passes_the_rest_on() {
    let (handler, mut deliveries) = recording();
    let receiver = open(handler).build().unwrap();
    let inner = tower::service_fn(|request: Request<Full<Bytes>>| async move {
        let text = format!("inner saw {} {}", request.method(), request.uri().path());
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
    });
    let mut app = tower::ServiceBuilder::new()
        .layer(receiver.layer("/airudder/task"))
        .service(inner);

    let response = app
        .ready()
        .await
        .unwrap()
        .call(support::post(support::EXAMPLE))
        .await
        .unwrap();
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "{}"
    );
    next(&mut deliveries).await;

    for (method, path) in [
        ("POST", "/other"),
        ("GET", "/"),
        ("POST", "/airudder/task/extra"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Full::default())
            .unwrap();
        let response = app.ready().await.unwrap().call(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, format!("inner saw {method} {path}"));
    }
    let request = Request::get("/airudder/task")
        .body(Full::default())
        .unwrap();
    assert_eq!(
        app.ready()
            .await
            .unwrap()
            .call(request)
            .await
            .unwrap()
            .status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[test]
fn the_services_are_clone_send_sync_and_static_with_send_futures() {
    fn service<
        S: tower::Service<Request<Full<Bytes>>, Error = Infallible> + Clone + Send + Sync + 'static,
    >(
        _: &S,
    ) where
        S::Future: Send,
    {
    }
    fn layer<L: Clone + Send + Sync + 'static>(_: &L) {}
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (handler, _) = recording();
        let receiver = open(handler).build().unwrap();
        service(&receiver);
        layer(&receiver.layer("/airudder/task"));
        let inner = tower::service_fn(|_: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        });
        let webhook = tower::Layer::layer(&receiver.layer("/"), inner);
        fn send_sync<T: Send + Sync + Clone + 'static>(_: &T) {}
        send_sync(&webhook);
    });
}

#[test]
fn building_outside_a_runtime_or_with_zero_settings_is_an_error_not_a_panic() {
    let (handler, _) = recording();
    let err = open(handler.clone()).build().unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert!(open(handler.clone()).workers(0).build().is_err());
        assert!(open(handler.clone()).queue_capacity(0).build().is_err());
        assert!(open(handler).body_limit(0).build().is_err());
    });
}

#[tokio::test]
async fn a_panicking_hook_neither_kills_a_worker_nor_drops_the_answer() {
    let (handler, calls) = scripted(&["error"]);
    let receiver = open(handler)
        .workers(1)
        .retry(RetryPolicy::never())
        .on_failed(|_: FailedDelivery<TaskNotification>| panic!("hook bug"))
        .on_rejected(|_: Refusal| panic!("hook bug"))
        .build()
        .unwrap();
    let (status, _, body) = answer(&receiver, support::post(&b"{"[..])).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &json!("malformed_json"))
    );
    // The first notification fails and its hook panics; the only worker handles the second.
    for _ in 0..2 {
        assert_eq!(post_example(&receiver).await, StatusCode::OK);
    }
    let report = stop(&receiver).await;
    assert_eq!((report.failed, report.handled, report.left), (1, 1, 0));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// A body that sends its first bytes, if any, and then nothing more.
struct Stalled(Option<Bytes>);

impl Body for Stalled {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.0.take() {
            Some(first) => Poll::Ready(Some(Ok(Frame::data(first)))),
            None => Poll::Pending,
        }
    }
}

#[tokio::test]
async fn every_answer_is_counted_by_its_status_and_reason() {
    let dir = support::process::DataDir::new();
    let (handler, _deliveries) = recording();
    // 401 or 403 on demand, so that one receiver gives every answer.
    let check = |head: &http::request::Parts| match head.headers.get("x-deny") {
        Some(v) if v == "401" => Err(airudder_webhook::auth::Denied::unauthorized("no")),
        Some(v) if v == "403" => Err(airudder_webhook::auth::Denied::forbidden("no")),
        _ => Ok(()),
    };
    let receiver = Receiver::builder(handler)
        .authorize(check)
        .durable(airudder_webhook::store::RedbStore::open(&dir.0).unwrap())
        .body_limit(64 * 1024)
        .max_header_bytes(8 * 1024)
        .body_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let post = |body: &'static [u8]| support::post(body);
    let with = |name: &str, value: &str| {
        Request::post("/airudder/task")
            .header("content-type", "application/json")
            .header(name, value)
            .body(Full::new(Bytes::from_static(support::EXAMPLE)))
            .unwrap()
    };
    let cases: Vec<(&str, Request<Full<Bytes>>, u16, &str)> = vec![
        ("new", post(support::EXAMPLE), 200, "accepted"),
        ("again", post(support::EXAMPLE), 200, "duplicate"),
        ("malformed", post(b"{"), 400, "malformed_json"),
        ("no token", with("x-deny", "401"), 401, "unauthorized"),
        ("wrong address", with("x-deny", "403"), 403, "forbidden"),
        (
            "get",
            Request::get("/airudder/task")
                .body(Full::default())
                .unwrap(),
            405,
            "method_not_allowed",
        ),
        (
            "too large",
            support::post(vec![b' '; 65 * 1024]),
            413,
            "payload_too_large",
        ),
        (
            "text",
            Request::post("/airudder/task")
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from_static(support::EXAMPLE)))
                .unwrap(),
            415,
            "unsupported_media_type",
        ),
        ("wrong shape", post(b"{}"), 422, "invalid_notification"),
        (
            "huge head",
            with("x-padding", &"p".repeat(9 * 1024)),
            431,
            "headers_too_large",
        ),
    ];
    for (name, request, status, reason) in cases {
        let response = receiver.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{name}");
        assert_eq!(
            receiver.stats().answers().get(reason),
            1,
            "{name}: {:?}",
            receiver.stats().answers()
        );
    }
    let stalled = Request::post("/airudder/task")
        .header("content-type", "application/json")
        .body(Stalled(None))
        .unwrap();
    let response = receiver.clone().oneshot(stalled).await.unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    receiver.shutdown_handle().stop_accepting();
    assert_eq!(
        post_example(&receiver).await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let stats = receiver.stats();
    let answers = stats.answers();
    assert_eq!(answers.get("body_timeout"), 1);
    assert_eq!(answers.get("shutting_down"), 1);
    for status in [200, 400, 401, 403, 405, 408, 413, 415, 422, 431, 503] {
        let want = if status == 200 { 2 } else { 1 };
        assert_eq!(answers.with_status(status), want, "{status}: {answers:?}");
    }
    // 400, 408, 413 and 422 refuse the body itself.
    assert_eq!(
        (stats.refused, stats.unavailable, stats.duplicates),
        (4, 1, 1)
    );
    stop(&receiver).await;
}

#[tokio::test]
async fn the_cap_on_bytes_in_flight_is_one_reason_whether_declared_or_streamed() {
    let (handler, _deliveries) = recording();
    let receiver = open(handler)
        .body_limit(4096)
        .max_bytes_in_flight(4096)
        .build()
        .unwrap();
    // Hold the whole cap with a body that has sent its first 4,000 bytes and stalls.
    let request = Request::post("/airudder/task")
        .header("content-type", "application/json")
        .body(Stalled(Some(Bytes::from(vec![b' '; 4000]))))
        .unwrap();
    let holder = tokio::spawn(receiver.clone().oneshot(request));
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Over the cap by its Content-Length, then while streaming.
    let declared = support::post(vec![b' '; 200]);
    assert_eq!(
        receiver.clone().oneshot(declared).await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let streamed = post_chunked(Chunked::new(&[b' '; 200], 50));
    assert_eq!(
        receiver.clone().oneshot(streamed).await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let stats = receiver.stats();
    assert_eq!(stats.answers().get("too_many_bytes_in_flight"), 2);
    assert_eq!((stats.unavailable, stats.refused), (2, 0));
    holder.abort();
    stop(&receiver).await;
}

#[tokio::test]
async fn settings_that_contradict_the_ack_policy_are_refused_with_what_to_do() {
    let dir = support::process::DataDir::new();
    let store = || airudder_webhook::store::RedbStore::open(&dir.0).unwrap();
    let (handler, _) = recording();
    let handled = AckPolicy::handled(Duration::from_secs(1));
    let cases: Vec<(&str, Result<Receiver, airudder_webhook::BuildError>, &str)> = vec![
        (
            "durable then memory",
            open(handler.clone())
                .durable(store())
                .ack(AckPolicy::Memory)
                .build(),
            "durable(store) chooses the durable ack",
        ),
        (
            "handled then durable",
            open(handler.clone()).ack(handled).durable(store()).build(),
            "durable(store) chooses the durable ack",
        ),
        (
            "durable without a store",
            open(handler.clone()).ack(AckPolicy::Durable).build(),
            "needs a store",
        ),
        (
            "retry with handled",
            open(handler.clone())
                .ack(handled)
                .retry(RetryPolicy::new(5))
                .build(),
            "retry(...) does not apply",
        ),
        (
            "timeout with handled",
            open(handler.clone())
                .ack(handled)
                .handler_timeout(Duration::from_secs(1))
                .build(),
            "handler_timeout(...) does not apply",
        ),
        (
            "window without a store",
            open(handler.clone())
                .dedup_window(Duration::from_secs(60))
                .build(),
            "dedup_window(...) needs a store",
        ),
    ];
    for (name, built, says) in cases {
        let err = built.expect_err(name);
        assert!(err.to_string().contains(says), "{name}: {err}");
    }
    // What agrees builds.
    let durable = open(handler.clone())
        .durable(store())
        .ack(AckPolicy::Durable)
        .dedup_window(Duration::from_secs(60))
        .build()
        .unwrap();
    stop(&durable).await;
    drop(durable);
    let handled = open(handler).ack(handled).build().unwrap();
    stop(&handled).await;
}

#[tokio::test]
async fn a_handler_that_gives_up_is_not_retried() {
    let calls = Arc::new(AtomicU32::new(0));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let receiver = open({
        let calls = Arc::clone(&calls);
        move |_: Delivery<TaskNotification>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                Err(airudder_webhook::GiveUp::new(
                    "refused for good by the team's service",
                ))
            }
        }
    })
    .retry(RetryPolicy::new(5).initial_backoff(Duration::from_millis(5)))
    .on_failed({
        let failed = Arc::clone(&failed);
        move |f: FailedDelivery<TaskNotification>| {
            failed
                .lock()
                .unwrap()
                .push((f.delivery().attempt(), f.error().to_string()));
        }
    })
    .build()
    .unwrap();
    assert_eq!(post_example(&receiver).await, StatusCode::OK);
    let report = stop(&receiver).await;
    assert_eq!((report.failed, report.handled), (1, 0));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one attempt of the six allowed"
    );
    assert_eq!(
        *failed.lock().unwrap(),
        [(
            1,
            "given up: refused for good by the team's service".to_owned()
        )]
    );
}
