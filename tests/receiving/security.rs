//! Authentication before the body is read, hostile input, and the body-decoding hook.

use crate::support;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use airudder_webhook::auth::{
    AnyOf, BasicAuth, Denied, HeaderToken, IpAllowList, PathToken, PeerAddr, QueryToken,
};
use airudder_webhook::model::TaskNotification;
use airudder_webhook::{BoxError, Delivery, Receiver, ReceiverBuilder, Refusal};
use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::{Service, ServiceExt};

fn handler() -> impl airudder_webhook::HandleNotification + Clone {
    |_: Delivery<TaskNotification>| async { Ok::<_, Infallible>(()) }
}

fn builder() -> ReceiverBuilder<TaskNotification, impl airudder_webhook::HandleNotification + Clone>
{
    Receiver::builder(handler())
}

/// A body that records whether anyone read it, and can stall forever after a prefix.
struct Watched {
    data: Option<Bytes>,
    declared: Option<u64>,
    stall: bool,
    read: Arc<AtomicBool>,
}

impl Watched {
    fn new(data: &[u8]) -> (Self, Arc<AtomicBool>) {
        let read = Arc::new(AtomicBool::new(false));
        let body = Self {
            data: Some(Bytes::copy_from_slice(data)),
            declared: Some(data.len() as u64),
            stall: false,
            read: Arc::clone(&read),
        };
        (body, read)
    }
}

impl Body for Watched {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.read.store(true, Ordering::SeqCst);
        match self.data.take() {
            Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
            None if self.stall => Poll::Pending,
            None => Poll::Ready(None),
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.declared.map(SizeHint::with_exact).unwrap_or_default()
    }
}

fn request<B>(uri: &str, headers: &[(&str, &str)], body: B) -> Request<B> {
    let mut request = Request::post(uri).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(body).unwrap()
}

async fn answer<S, B>(service: S, request: Request<B>) -> (StatusCode, Value)
where
    S: Service<
            Request<B>,
            Response = Response<airudder_webhook::body::ReceiverBody>,
            Error = Infallible,
        >,
{
    let response = service.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn building_without_choosing_authentication_is_an_error() {
    let err = builder().build().unwrap_err();
    assert!(err.to_string().contains("allow_unauthenticated"), "{err}");
    assert!(builder().allow_unauthenticated().build().is_ok());
}

#[test]
fn running_open_warns_once_at_build() {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let logs = Arc::clone(&logs);
            move || support::Capture(Arc::clone(&logs))
        })
        .with_max_level(tracing::Level::TRACE)
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let _open = builder().allow_unauthenticated().build().unwrap();
            let _closed = builder()
                .authorize(QueryToken::new(["t"]).unwrap())
                .build()
                .unwrap();
        })
    });
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert_eq!(logs.matches("without authentication").count(), 1, "{logs}");
}

#[tokio::test]
async fn a_query_token_is_checked_before_the_body_is_read() {
    // Two tokens at once: a rotation in progress.
    let receiver = builder()
        .authorize(QueryToken::new(["new-7f3a", "old-19c2"]).unwrap())
        .build()
        .unwrap();
    let cases = [
        ("new token", "/airudder/task?token=new-7f3a", StatusCode::OK),
        ("old token", "/airudder/task?token=old-19c2", StatusCode::OK),
        (
            "wrong token",
            "/airudder/task?token=guess",
            StatusCode::UNAUTHORIZED,
        ),
        ("no token", "/airudder/task", StatusCode::UNAUTHORIZED),
    ];
    for (name, uri, want) in cases {
        let (body, read) = Watched::new(support::EXAMPLE);
        let (status, answer) = answer(receiver.clone(), request(uri, &[], body)).await;
        assert_eq!(status, want, "{name}: {answer}");
        assert_eq!(
            read.load(Ordering::SeqCst),
            want == StatusCode::OK,
            "{name}: body read only when admitted"
        );
        if want == StatusCode::UNAUTHORIZED {
            assert_eq!(answer["error"], "unauthorized", "{name}");
            assert!(
                !answer.to_string().contains("guess") && !answer.to_string().contains("7f3a"),
                "{name}: {answer}"
            );
        }
    }
    // A stranger learns nothing else: a wrong method or content type is still 401.
    let get = Request::get("/airudder/task")
        .body(Full::<Bytes>::default())
        .unwrap();
    assert_eq!(
        answer(receiver.clone(), get).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_path_token_works_through_the_layer() {
    let receiver = builder()
        .authorize(PathToken::new(["s3cret"]).unwrap())
        .build()
        .unwrap();
    let inner = tower::service_fn(|_: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
    });
    let app = tower::ServiceBuilder::new()
        .layer(receiver.layer("/airudder/task/{token}"))
        .service(inner);
    let cases = [
        ("right token", "/airudder/task/s3cret", StatusCode::OK, "{}"),
        (
            "wrong token",
            "/airudder/task/guess",
            StatusCode::UNAUTHORIZED,
            "",
        ),
        ("no token", "/airudder/task", StatusCode::OK, "inner"),
        (
            "deeper path",
            "/airudder/task/s3cret/x",
            StatusCode::OK,
            "inner",
        ),
    ];
    for (name, uri, want, body) in cases {
        let response = app
            .clone()
            .oneshot(request(
                uri,
                &[],
                Full::new(Bytes::from_static(support::EXAMPLE)),
            ))
            .await
            .unwrap();
        assert_eq!(response.status(), want, "{name}");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        if !body.is_empty() {
            assert_eq!(bytes, body, "{name}");
        }
    }
}

#[tokio::test]
async fn header_tokens_basic_auth_and_custom_checks_combine() {
    let basic = |user_pass: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    };
    let check = AnyOf::new()
        .or(HeaderToken::new(http::HeaderName::from_static("x-webhook-token"), ["hdr-1"]).unwrap())
        .or(HeaderToken::bearer(["bearer-1"]).unwrap())
        .or(BasicAuth::new([("airudder", "pw-1")]).unwrap())
        .or(
            |parts: &http::request::Parts| match parts.headers.get("user-agent") {
                Some(agent) if agent == "internal-replay/1.0" => Ok(()),
                _ => Err(Denied::unauthorized("not the replay tool")),
            },
        );
    let receiver = builder().authorize(check).build().unwrap();
    let good = basic("airudder:pw-1");
    let bad = basic("airudder:pw-2");
    let cases: [(&str, (&str, &str), StatusCode); 6] = [
        ("header token", ("x-webhook-token", "hdr-1"), StatusCode::OK),
        (
            "bearer",
            ("authorization", "Bearer bearer-1"),
            StatusCode::OK,
        ),
        ("basic", ("authorization", &good), StatusCode::OK),
        (
            "custom check",
            ("user-agent", "internal-replay/1.0"),
            StatusCode::OK,
        ),
        (
            "wrong basic",
            ("authorization", &bad),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "airudder's user agent is no credential",
            ("user-agent", "Airudder"),
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (name, header, want) in cases {
        let (status, answer) = answer(
            receiver.clone(),
            request(
                "/airudder/task",
                &[header],
                Full::new(Bytes::from_static(support::EXAMPLE)),
            ),
        )
        .await;
        assert_eq!(status, want, "{name}: {answer}");
    }
}

#[tokio::test]
async fn the_ip_allow_list_answers_403_and_trusts_only_named_proxies() {
    let list = IpAllowList::new(["203.0.113.0/24"])
        .unwrap()
        .trust_proxies(["127.0.0.1"])
        .unwrap();
    let receiver = builder().authorize(list).build().unwrap();
    // (name, peer, headers, answer)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], StatusCode);
    let cases: [Case<'_>; 5] = [
        ("allowed peer", "203.0.113.5:40000", &[], StatusCode::OK),
        (
            "other peer",
            "198.51.100.5:40000",
            &[],
            StatusCode::FORBIDDEN,
        ),
        (
            "stranger forging a header",
            "198.51.100.5:40000",
            &[("x-forwarded-for", "203.0.113.5")],
            StatusCode::FORBIDDEN,
        ),
        (
            "through the trusted proxy",
            "127.0.0.1:40000",
            &[("x-forwarded-for", "203.0.113.5")],
            StatusCode::OK,
        ),
        (
            "stranger through the proxy",
            "127.0.0.1:40000",
            &[("x-forwarded-for", "198.51.100.5")],
            StatusCode::FORBIDDEN,
        ),
    ];
    for (name, peer, headers, want) in cases {
        let mut request = request(
            "/airudder/task",
            headers,
            Full::new(Bytes::from_static(support::EXAMPLE)),
        );
        request
            .extensions_mut()
            .insert(PeerAddr(peer.parse().unwrap()));
        let (status, answer) = answer(receiver.clone(), request).await;
        assert_eq!(status, want, "{name}: {answer}");
        if want == StatusCode::FORBIDDEN {
            assert_eq!(answer["error"], "forbidden", "{name}");
        }
    }
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn the_allow_list_reads_axums_connect_info_over_a_real_socket() {
    use axum::Router;
    let receiver = builder()
        .authorize(IpAllowList::new(["127.0.0.0/8"]).unwrap())
        .build()
        .unwrap();
    let app = Router::new().route_service("/airudder/task", receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    let (status, _, body) = support::send(
        "POST",
        &format!("http://{addr}/airudder/task"),
        "application/json",
        support::EXAMPLE,
    )
    .await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"{}"[..]));
    server.abort();
}

#[tokio::test]
async fn a_slow_body_times_out_with_408() {
    let receiver = builder()
        .allow_unauthenticated()
        .body_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let (mut body, _) = Watched::new(&support::EXAMPLE[..100]);
    body.stall = true;
    body.declared = Some(support::EXAMPLE.len() as u64);
    let (status, answer) = answer(receiver, request("/airudder/task", &[], body)).await;
    assert_eq!(
        (status, &answer["error"]),
        (StatusCode::REQUEST_TIMEOUT, &json!("body_timeout"))
    );
}

#[tokio::test]
async fn bytes_in_flight_are_capped_across_requests() {
    let size = support::EXAMPLE.len();
    let receiver = builder()
        .allow_unauthenticated()
        .body_limit(size)
        .max_bytes_in_flight(2 * size)
        .body_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    // Two stalled bodies hold their declared length...
    let (mut stalled, mut reading) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let (mut body, read) = Watched::new(&support::EXAMPLE[..10]);
        reading.push(read);
        body.stall = true;
        body.declared = Some(size as u64);
        stalled.push(tokio::spawn(answer(
            receiver.clone(),
            request("/airudder/task", &[], body),
        )));
    }
    // A body is read only once its declared length is reserved.
    support::wait_until("both stalled bodies to be read", || {
        reading.iter().all(|read| read.load(Ordering::SeqCst))
    })
    .await;
    // ...so a third is refused at once, before its body is read.
    let (body, read) = Watched::new(support::EXAMPLE);
    let (status, answer_body) =
        answer(receiver.clone(), request("/airudder/task", &[], body)).await;
    assert_eq!(
        (status, &answer_body["error"]),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            &json!("too_many_bytes_in_flight")
        )
    );
    assert!(!read.load(Ordering::SeqCst));
    // Once they are gone, the room is back.
    for task in stalled {
        task.abort();
        // Its end: the request is dropped, with the bytes it held.
        let _ = task.await;
    }
    let (body, _) = Watched::new(support::EXAMPLE);
    assert_eq!(
        answer(receiver.clone(), request("/airudder/task", &[], body))
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_chunked_body_without_length_is_capped_too() {
    let size = support::EXAMPLE.len();
    let receiver = builder()
        .allow_unauthenticated()
        .body_limit(size)
        .max_bytes_in_flight(size)
        .build()
        .unwrap();
    let (mut hog, _) = Watched::new(&support::EXAMPLE[..size - 10]);
    hog.stall = true;
    hog.declared = None; // chunked: reserved as it arrives
    let stalled = tokio::spawn(answer(
        receiver.clone(),
        request("/airudder/task", &[], hog),
    ));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (mut body, _) = Watched::new(support::EXAMPLE);
    body.declared = None;
    let (status, answer_body) =
        answer(receiver.clone(), request("/airudder/task", &[], body)).await;
    assert_eq!(
        (status, &answer_body["error"]),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            &json!("too_many_bytes_in_flight")
        )
    );
    stalled.abort();
}

#[tokio::test]
async fn oversized_headers_are_answered_431() {
    let receiver = builder()
        .allow_unauthenticated()
        .max_header_bytes(8 * 1024)
        .build()
        .unwrap();
    let big = "x".repeat(16 * 1024);
    let (body, read) = Watched::new(support::EXAMPLE);
    let (status, answer_body) = answer(
        receiver.clone(),
        request("/airudder/task", &[("x-padding", &big)], body),
    )
    .await;
    assert_eq!(
        (status, &answer_body["error"]),
        (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            &json!("headers_too_large")
        )
    );
    assert!(!read.load(Ordering::SeqCst));
    let long_uri = format!("/airudder/task?pad={big}");
    let (status, _) = answer(
        receiver,
        request(
            &long_uri,
            &[],
            Full::new(Bytes::from_static(support::EXAMPLE)),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

#[tokio::test]
async fn the_body_hook_decrypts_and_the_rejected_hook_keeps_the_raw_bytes() {
    const KEY: u8 = 0x5a;
    let xor = |bytes: &[u8]| -> Vec<u8> { bytes.iter().map(|b| b ^ KEY).collect() };
    let (tx, mut handled) = tokio::sync::mpsc::unbounded_channel();
    let rejected = Arc::new(Mutex::new(Vec::<Refusal>::new()));
    let receiver = Receiver::builder(move |delivery: Delivery<TaskNotification>| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(delivery);
            Ok::<_, Infallible>(())
        }
    })
    .allow_unauthenticated()
    .body_hook(
        move |parts: &http::request::Parts, body: Bytes| -> Result<Bytes, BoxError> {
            if parts.headers.get("x-encrypted").is_none() {
                return Err("expected an encrypted body".into());
            }
            Ok(xor(&body).into())
        },
    )
    .on_rejected({
        let rejected = Arc::clone(&rejected);
        move |r: Refusal| rejected.lock().unwrap().push(r)
    })
    .build()
    .unwrap();

    let sealed = Bytes::from(xor(support::EXAMPLE));
    let (status, _) = answer(
        receiver.clone(),
        request(
            "/airudder/task",
            &[("x-encrypted", "1")],
            Full::new(sealed.clone()),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let delivery = tokio::time::timeout(Duration::from_secs(5), handled.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::to_value(delivery.event()).unwrap(),
        support::example_value()
    );

    let (status, answer_body) = answer(
        receiver.clone(),
        request("/airudder/task", &[], Full::new(sealed.clone())),
    )
    .await;
    assert_eq!(
        (status, &answer_body["error"]),
        (StatusCode::BAD_REQUEST, &json!("body_hook_failed"))
    );
    let garbage = Bytes::from(xor(b"{\"task_id\": 1}"));
    let (status, answer_body) = answer(
        receiver.clone(),
        request(
            "/airudder/task",
            &[("x-encrypted", "1")],
            Full::new(garbage.clone()),
        ),
    )
    .await;
    assert_eq!(
        (status, &answer_body["path"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("task_id"))
    );

    let rejected = rejected.lock().unwrap();
    let kept: Vec<_> = rejected.iter().map(|r| r.body().cloned()).collect();
    assert_eq!(
        kept,
        [Some(sealed), Some(garbage)],
        "the hook receives the bytes as received"
    );
}

// ---- Arbitrary input against the whole service -------------------------------------------

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{0,10}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Valid bodies with one member replaced, so that the service sees near misses too.
fn near_miss() -> impl Strategy<Value = Vec<u8>> {
    const PATHS: [&str; 7] = [
        "/task_id",
        "/details",
        "/details/0",
        "/details/0/duration",
        "/details/0/variables",
        "/details/0/redail_call/0",
        "/status",
    ];
    (prop::sample::select(&PATHS[..]), any_json()).prop_map(|(path, value)| {
        let mut body = support::example_value();
        *body.pointer_mut(path).unwrap() = value;
        serde_json::to_vec(&body).unwrap()
    })
}

#[test]
fn any_input_is_answered_200_or_with_a_json_error_and_never_panics() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let receiver = runtime.block_on(async {
        builder()
            .allow_unauthenticated()
            .queue_capacity(100_000)
            .build()
            .unwrap()
    });
    let inputs = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048),
        any_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        near_miss(),
    ];
    let config = ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner
        .run(&inputs, |body| {
            let response = runtime
                .block_on(receiver.clone().oneshot(support::post(body)))
                .unwrap();
            let status = response.status();
            let bytes = runtime
                .block_on(response.into_body().collect())
                .unwrap()
                .to_bytes();
            let answer: Value = serde_json::from_slice(&bytes).expect("every answer is JSON");
            if status == StatusCode::OK {
                prop_assert_eq!(answer, json!({}));
            } else {
                prop_assert!(matches!(status.as_u16(), 400 | 422), "status {}", status);
                prop_assert!(answer["error"].is_string() && answer["message"].is_string());
            }
            Ok(())
        })
        .unwrap();
}

#[cfg(feature = "tonic")]
#[tokio::test]
async fn the_allow_list_reads_tonics_connect_info() {
    use tonic::transport::server::Connected;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server_side, _) = listener.accept().await.unwrap();
    let info = server_side.connect_info();

    let receiver = builder()
        .authorize(IpAllowList::new(["127.0.0.1/32"]).unwrap())
        .build()
        .unwrap();
    let mut allowed = request(
        "/airudder/task",
        &[],
        Full::new(Bytes::from_static(support::EXAMPLE)),
    );
    allowed.extensions_mut().insert(info);
    assert_eq!(answer(receiver.clone(), allowed).await.0, StatusCode::OK);
    let unknown = request(
        "/airudder/task",
        &[],
        Full::new(Bytes::from_static(support::EXAMPLE)),
    );
    assert_eq!(answer(receiver, unknown).await.0, StatusCode::FORBIDDEN);
    drop(client);
}

#[tokio::test]
async fn notifications_waiting_for_the_handler_count_against_the_cap() {
    let size = support::EXAMPLE.len();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let receiver = Receiver::builder({
        let gate = Arc::clone(&gate);
        move |_: Delivery<TaskNotification>| {
            let gate = Arc::clone(&gate);
            async move {
                gate.acquire().await.unwrap().forget();
                Ok::<_, Infallible>(())
            }
        }
    })
    .allow_unauthenticated()
    .body_limit(size)
    .max_bytes_in_flight(2 * size)
    .build()
    .unwrap();
    let post = || {
        request(
            "/airudder/task",
            &[],
            Full::new(Bytes::from_static(support::EXAMPLE)),
        )
    };
    // One with the handler, one in the queue: the cap is reached.
    for _ in 0..2 {
        assert_eq!(answer(receiver.clone(), post()).await.0, StatusCode::OK);
    }
    let (status, body) = answer(receiver.clone(), post()).await;
    assert_eq!(
        (status, &body["error"]),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            &json!("too_many_bytes_in_flight")
        )
    );
    // Handled notifications give their room back.
    gate.add_permits(2);
    let report = receiver
        .shutdown_handle()
        .shutdown(Duration::from_secs(5))
        .await;
    assert_eq!(report.handled, 2);
}
