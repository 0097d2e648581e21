//! The durable ack: stored before the 200, redelivered after a restart, de-duplicated, dead
//! letters and refused bodies kept and replayed, a failing store answered 503.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use airudder_webhook::model::TaskNotification;
use airudder_webhook::store::{
    Appended, Envelope, NewRecord, Record, RecordId, RecordState, RedbStore, RejectedRecord, Store,
    StoreError, StoreErrorKind,
};
use airudder_webhook::{Delivery, HandleNotification, Receiver, RetryPolicy, ShutdownReport};
use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};
use support::process::DataDir;
use tokio::sync::mpsc;
use tower::ServiceExt;

/// The example with its own task id.
fn notification(task: &str) -> Vec<u8> {
    let mut body = support::example_value();
    body["task_id"] = json!(task);
    serde_json::to_vec(&body).unwrap()
}

type Seen = mpsc::UnboundedReceiver<(String, u32)>;

fn recording() -> (impl HandleNotification + Clone, Seen) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handler = move |d: Delivery<TaskNotification>| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((d.task_id.to_string(), d.attempt()));
            Ok::<_, Infallible>(())
        }
    };
    (handler, rx)
}

async fn post(receiver: &Receiver, body: impl Into<Bytes>) -> (StatusCode, Value) {
    use http_body_util::BodyExt;
    let response = receiver.clone().oneshot(support::post(body)).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

async fn next(seen: &mut Seen) -> (String, u32) {
    tokio::time::timeout(Duration::from_secs(5), seen.recv())
        .await
        .expect("handled within 5 s")
        .unwrap()
}

async fn stop(receiver: &Receiver) -> ShutdownReport {
    receiver
        .shutdown_handle()
        .shutdown(Duration::from_secs(5))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_is_stored_before_the_200_and_done_after_the_handler() {
    let dir = DataDir::new();
    let store = RedbStore::open(&dir.0).unwrap();
    let (handler, mut seen) = recording();
    let receiver = Receiver::builder(handler)
        .allow_unauthenticated()
        .durable(store.clone())
        .build()
        .unwrap();
    let (status, body) = post(&receiver, notification("t-1")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert_eq!(next(&mut seen).await, ("t-1".to_owned(), 1));
    let report = stop(&receiver).await;
    assert_eq!((report.handled, report.left), (1, 0));
    assert!(
        store.pending().await.unwrap().is_empty(),
        "done once handled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_notifications_are_handled_after_a_restart_with_their_attempt_number() {
    let dir = DataDir::new();
    {
        // A handler that never finishes: the process "dies" with everything pending.
        let store = RedbStore::open(&dir.0).unwrap();
        let receiver = Receiver::builder(|_: Delivery<TaskNotification>| {
            std::future::pending::<Result<(), Infallible>>()
        })
        .allow_unauthenticated()
        .workers(1)
        .durable(store)
        .build()
        .unwrap();
        for task in ["r-1", "r-2", "r-3"] {
            assert_eq!(post(&receiver, notification(task)).await.0, StatusCode::OK);
        }
        let report = receiver
            .shutdown_handle()
            .shutdown(Duration::from_millis(200))
            .await;
        assert_eq!((report.handled, report.left), (0, 3));
    }
    let store = RedbStore::open(&dir.0).unwrap();
    assert_eq!(store.pending().await.unwrap().len(), 3);
    let (handler, mut seen) = recording();
    let receiver = Receiver::builder(handler)
        .allow_unauthenticated()
        .durable(store.clone())
        .build()
        .unwrap();
    let mut got = vec![
        next(&mut seen).await,
        next(&mut seen).await,
        next(&mut seen).await,
    ];
    got.sort();
    // A stored notification counts its first attempt at once, so that a crash mid-attempt
    // counts: after the "crash", each is on its second (r-2 and r-3 never reached the handler:
    // the count errs on the side of "you may have seen this").
    assert_eq!(
        got,
        [
            ("r-1".to_owned(), 2),
            ("r-2".to_owned(), 2),
            ("r-3".to_owned(), 2)
        ]
    );
    stop(&receiver).await;
    assert!(store.pending().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_notification_twice_at_once_and_later_is_handled_once() {
    let dir = DataDir::new();
    let store = RedbStore::open(&dir.0).unwrap();
    let (handler, mut seen) = recording();
    let receiver = Receiver::builder(handler)
        .allow_unauthenticated()
        .durable(store)
        .build()
        .unwrap();
    let body = notification("d-1");
    let (a, b) = tokio::join!(post(&receiver, body.clone()), post(&receiver, body.clone()));
    assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK));
    // A retry may differ in white space and key order: still the same notification.
    let value: Value = serde_json::from_slice(&body).unwrap();
    let indented = serde_json::to_vec_pretty(&value).unwrap();
    assert_eq!(post(&receiver, indented).await.0, StatusCode::OK);
    // A different notification about the same task is not a duplicate.
    let mut paused = value.clone();
    paused["status"] = json!("paused");
    assert_eq!(
        post(&receiver, serde_json::to_vec(&paused).unwrap())
            .await
            .0,
        StatusCode::OK
    );

    let report = stop(&receiver).await;
    assert_eq!(report.handled, 2);
    assert_eq!(receiver.stats().duplicates, 2);
    assert_eq!(next(&mut seen).await.0, "d-1");
    assert_eq!(next(&mut seen).await.0, "d-1");
    assert!(seen.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_end_as_dead_letters_that_can_be_replayed() {
    let dir = DataDir::new();
    let store = RedbStore::open(&dir.0).unwrap();
    let healthy = Arc::new(AtomicBool::new(false));
    let (tx, mut seen) = mpsc::unbounded_channel();
    let receiver = Receiver::builder({
        let healthy = Arc::clone(&healthy);
        move |d: Delivery<TaskNotification>| {
            let (healthy, tx) = (Arc::clone(&healthy), tx.clone());
            async move {
                if !healthy.load(Ordering::SeqCst) {
                    return Err(std::io::Error::other("ledger unavailable"));
                }
                let _ = tx.send((d.task_id.to_string(), d.attempt()));
                Ok(())
            }
        }
    })
    .allow_unauthenticated()
    .retry(RetryPolicy::new(2).initial_backoff(Duration::from_millis(5)))
    .durable(store.clone())
    .build()
    .unwrap();
    assert_eq!(post(&receiver, notification("x-1")).await.0, StatusCode::OK);
    receiver.idle().await;
    let dead = store.dead_letters().await.unwrap();
    assert_eq!(
        (dead[0].attempts, dead[0].last_error.as_deref()),
        (3, Some("ledger unavailable"))
    );
    assert_eq!(dead[0].state, RecordState::Dead);

    healthy.store(true, Ordering::SeqCst);
    receiver.replay(dead[0].id).await.unwrap();
    assert_eq!(next(&mut seen).await, ("x-1".to_owned(), 1));
    stop(&receiver).await;
    assert!(
        store.dead_letters().await.unwrap().is_empty() && store.pending().await.unwrap().is_empty()
    );
    assert_eq!(
        receiver.replay(dead[0].id).await.unwrap_err().kind(),
        StoreErrorKind::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_bodies_are_kept_and_can_be_recovered_after_a_fix() {
    let dir = DataDir::new();
    let store = RedbStore::open(&dir.0).unwrap();
    let (handler, mut seen) = recording();
    // A body hook with a bug: it refuses everything until "fixed".
    let fixed = Arc::new(AtomicBool::new(false));
    let receiver = Receiver::builder(handler)
        .allow_unauthenticated()
        .decode_body({
            let fixed = Arc::clone(&fixed);
            move |_: &http::request::Parts, body: Bytes| {
                if fixed.load(Ordering::SeqCst) {
                    Ok(body)
                } else {
                    Err("hook bug")
                }
            }
        })
        .durable(store.clone())
        .build()
        .unwrap();
    assert_eq!(
        post(&receiver, notification("j-1")).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post(&receiver, &b"{\"not\": \"a notification\"}"[..])
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    let mut kept = loop {
        let kept = store.rejected().await.unwrap();
        if kept.len() == 2 {
            break kept;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Each refused body is kept by a task of its own: the two may be stored in either order.
    kept.sort_by_key(|record| record.body != notification("j-1"));
    assert_eq!(
        (kept[0].status, &kept[0].body[..]),
        (400, &notification("j-1")[..])
    );
    assert_eq!(kept[1].reason, "the body hook could not decode the body");

    fixed.store(true, Ordering::SeqCst);
    receiver.replay_rejected(kept[0].id).await.unwrap();
    assert_eq!(next(&mut seen).await.0, "j-1");
    let err = receiver.replay_rejected(kept[1].id).await.unwrap_err();
    assert_eq!(
        err.kind(),
        StoreErrorKind::Invalid,
        "still not a notification: {err}"
    );
    assert_eq!(
        store.rejected().await.unwrap().len(),
        1,
        "the recovered body is forgotten, the other kept"
    );
    stop(&receiver).await;
}

/// A store whose disk is gone.
struct BrokenStore;

fn broken() -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, "No space left on device")
}

impl Store for BrokenStore {
    async fn append(&self, _: NewRecord) -> Result<Appended, StoreError> {
        Err(broken())
    }
    async fn begin_attempt(&self, _: RecordId) -> Result<u32, StoreError> {
        Err(broken())
    }
    async fn complete(&self, _: RecordId) -> Result<(), StoreError> {
        Err(broken())
    }
    async fn fail(&self, _: RecordId, _: String) -> Result<(), StoreError> {
        Err(broken())
    }
    async fn dead_letter(&self, _: RecordId, _: String) -> Result<(), StoreError> {
        Err(broken())
    }
    async fn pending(&self) -> Result<Vec<Record>, StoreError> {
        Err(broken())
    }
    async fn dead_letters(&self) -> Result<Vec<Record>, StoreError> {
        Err(broken())
    }
    async fn get(&self, _: RecordId) -> Result<Option<Record>, StoreError> {
        Err(broken())
    }
    async fn replay(&self, _: RecordId) -> Result<Record, StoreError> {
        Err(broken())
    }
    async fn reject(
        &self,
        _: u16,
        _: String,
        _: Envelope,
        _: Bytes,
    ) -> Result<RecordId, StoreError> {
        Err(broken())
    }
    async fn rejected(&self) -> Result<Vec<RejectedRecord>, StoreError> {
        Err(broken())
    }
    async fn remove_rejected(&self, _: RecordId) -> Result<(), StoreError> {
        Err(broken())
    }
    async fn prune(&self, _: SystemTime) -> Result<u64, StoreError> {
        Err(broken())
    }
}

#[tokio::test]
async fn a_store_that_fails_answers_503_never_200() {
    let (handler, mut seen) = recording();
    let receiver = Receiver::builder(handler)
        .allow_unauthenticated()
        .durable(BrokenStore)
        .build()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await; // the start-up read fails and is logged
    for task in ["f-1", "f-2"] {
        let (status, body) = post(&receiver, notification(task)).await;
        assert_eq!(
            (status, &body["error"]),
            (StatusCode::SERVICE_UNAVAILABLE, &json!("store_unavailable"))
        );
    }
    stop(&receiver).await;
    assert!(
        seen.try_recv().is_err(),
        "nothing unstored reaches the handler"
    );
    assert_eq!(receiver.stats().unavailable, 2);
}

/// A toy cipher for the tests: XOR with a key byte.
fn xor(body: &[u8], key: u8) -> Bytes {
    body.iter().map(|b| b ^ key).collect::<Vec<u8>>().into()
}

/// A decrypting body hook with `key`, for bodies that name their key in `x-key-id: k1`.
fn decrypt_with(key: u8) -> impl Fn(&http::request::Parts, Bytes) -> Result<Bytes, String> {
    move |head: &http::request::Parts, body: Bytes| {
        match head.headers.get("x-key-id") {
            Some(id) if id == "k1" => {}
            _ => return Err("unknown key id".to_owned()),
        }
        let plain = xor(&body, key);
        // A wrong key gives bytes that are not JSON: the hook refuses them.
        match plain.first() {
            Some(b'{') => Ok(plain),
            _ => Err("wrong key".to_owned()),
        }
    }
}

#[tokio::test]
async fn a_body_refused_by_a_wrong_key_is_recovered_through_the_fixed_hook_after_a_restart() {
    let dir = DataDir::new();
    let encrypted = xor(&notification("j-encrypted"), 0x21);
    let request = || {
        http::Request::post("/airudder/task")
            .header("content-type", "application/json")
            .header("x-key-id", "k1")
            .body(http_body_util::Full::new(encrypted.clone()))
            .unwrap()
    };
    let build = |key: u8, handler, store: RedbStore| {
        Receiver::builder(handler)
            .allow_unauthenticated()
            .decode_body(decrypt_with(key))
            .keep_headers([http::HeaderName::from_static("x-key-id")])
            .durable(store)
            .build()
            .unwrap()
    };

    // Deployed with the wrong key: refused, and the raw bytes kept.
    let store = RedbStore::open(&dir.0).unwrap();
    let (handler, _) = recording();
    let wrong = build(0x5a, handler, store.clone());
    let response = wrong.clone().oneshot(request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // The refused body is kept by a task of its own.
    let kept_id = loop {
        if let [kept] = &store.rejected().await.unwrap()[..] {
            assert_eq!(kept.body, encrypted, "kept as received");
            break kept.id;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Still the wrong key: the body stays kept, and the error says why.
    let err = wrong.replay_rejected(kept_id).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Invalid);
    assert!(err.to_string().contains("body hook"), "{err}");
    assert_eq!(store.rejected().await.unwrap().len(), 1);
    stop(&wrong).await;
    drop((wrong, store));

    // The key fixed, the receiver restarted on the same store: the body is recovered.
    let (handler, mut seen) = recording();
    let fixed = build(0x21, handler, RedbStore::open(&dir.0).unwrap());
    let stored = fixed.replay_rejected(kept_id).await.unwrap();
    assert_eq!(next(&mut seen).await, ("j-encrypted".to_owned(), 1));
    stop(&fixed).await;
    drop(fixed);
    let store = RedbStore::open(&dir.0).unwrap();
    assert!(store.rejected().await.unwrap().is_empty());
    // Handled, so no longer stored: neither pending nor dead.
    assert!(store.get(stored).await.unwrap().is_none());
    assert!(store.pending().await.unwrap().is_empty());
}
