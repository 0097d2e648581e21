//! The durable ack: stored before the 200, redelivered after a restart, de-duplicated, dead
//! letters and refused bodies kept and replayed, a failing store answered 503.

use crate::support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::support::process::DataDir;
use crate::support::{example_with_task_id, stop};
use airudder_webhook::model::TaskNotification;
use airudder_webhook::store::{
    Appended, Attempt, Envelope, NewRecord, Record, RecordId, RecordState, RedbOptions, RedbStore,
    RefusedBody, RefusedBodyLimits, Store, StoreError, StoreErrorKind,
};
use airudder_webhook::{Delivery, HandleNotification, Receiver, RetryPolicy};
use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower::ServiceExt;

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
    let (status, body) = post(&receiver, example_with_task_id("t-1")).await;
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
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let receiver = Receiver::builder(move |d: Delivery<TaskNotification>| {
            let _ = started_tx.send(d.task_id.to_string());
            std::future::pending::<Result<(), Infallible>>()
        })
        .allow_unauthenticated()
        .workers(1)
        .durable(store)
        .build()
        .unwrap();
        assert_eq!(
            post(&receiver, example_with_task_id("r-1")).await.0,
            StatusCode::OK
        );
        let first = tokio::time::timeout(Duration::from_secs(5), started.recv()).await;
        assert_eq!(first.unwrap().as_deref(), Some("r-1"));
        for task in ["r-2", "r-3"] {
            assert_eq!(
                post(&receiver, example_with_task_id(task)).await.0,
                StatusCode::OK
            );
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
    // An attempt is counted before it starts, so that a crash mid-attempt counts: after the
    // "crash", r-1 is on its second; r-2 and r-3 waited in the store for the one worker and
    // never started, so this is their first.
    assert_eq!(
        got,
        [
            ("r-1".to_owned(), 2),
            ("r-2".to_owned(), 1),
            ("r-3".to_owned(), 1)
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
    let body = example_with_task_id("d-1");
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
    assert_eq!(
        post(&receiver, example_with_task_id("x-1")).await.0,
        StatusCode::OK
    );
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
    // Handled, the record is kept as such; once purged, there is nothing to replay.
    let handled = store.get(dead[0].id).await.unwrap().unwrap();
    assert_eq!(handled.state, RecordState::Handled);
    assert!(store.purge(dead[0].id).await.unwrap());
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
        .body_hook({
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
        post(&receiver, example_with_task_id("j-1")).await.0,
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
    kept.sort_by_key(|record| record.body != example_with_task_id("j-1"));
    assert_eq!(
        (kept[0].status, &kept[0].body[..]),
        (400, &example_with_task_id("j-1")[..])
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
    async fn complete(&self, _: RecordId, _: Attempt) -> Result<(), StoreError> {
        Err(broken())
    }
    async fn fail(&self, _: RecordId, _: Attempt, _: SystemTime) -> Result<(), StoreError> {
        Err(broken())
    }
    async fn dead_letter(&self, _: RecordId, _: Attempt) -> Result<(), StoreError> {
        Err(broken())
    }
    async fn claim(&self, _: &str, _: usize) -> Result<Vec<Record>, StoreError> {
        Err(broken())
    }
    async fn make_due(&self, _: RecordId) -> Result<bool, StoreError> {
        Err(broken())
    }
    async fn purge(&self, _: RecordId) -> Result<bool, StoreError> {
        Err(broken())
    }
    async fn set_paused(&self, _: &str, _: bool) -> Result<(), StoreError> {
        Err(broken())
    }
    async fn paused(&self) -> Result<Vec<String>, StoreError> {
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
    async fn rejected(&self) -> Result<Vec<RefusedBody>, StoreError> {
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
        let (status, body) = post(&receiver, example_with_task_id(task)).await;
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
    let encrypted = xor(&example_with_task_id("j-encrypted"), 0x21);
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
            .body_hook(decrypt_with(key))
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
    // Handled, so kept as handled: neither pending nor dead.
    let record = store.get(stored).await.unwrap().unwrap();
    assert_eq!(record.state, RecordState::Handled);
    assert!(store.pending().await.unwrap().is_empty());
}

// ---- Refused bodies are bounded ----------------------------------------------------------------

const MIB: u64 = 1024 * 1024;

fn limited(dir: &DataDir, max_bytes: u64, max_age: Duration) -> RedbStore {
    let options = RedbOptions::default().keep_rejected(RefusedBodyLimits::new(max_bytes, max_age));
    RedbStore::open_with(&dir.0, options).unwrap()
}

fn envelope_now() -> Envelope {
    Envelope::new(SystemTime::now(), Some("127.0.0.1:9".into()), Vec::new())
}

/// A malformed body of `len` bytes, each its number: which one survived shows in its bytes.
fn malformed(n: u8, len: u64) -> Bytes {
    Bytes::from(vec![n; len as usize])
}

async fn reject(store: &RedbStore, body: Bytes) -> Result<RecordId, StoreError> {
    store
        .reject(400, "malformed JSON".into(), envelope_now(), body)
        .await
}

async fn kept_ids(store: &RedbStore) -> Vec<RecordId> {
    let page = store.rejected_page(0, 1000).await.unwrap();
    page.iter().map(|kept| kept.id).collect()
}

/// The bytes of every file under `dir`, folders walked.
fn bytes_under(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let found = entry.metadata().unwrap();
            if found.is_dir() {
                bytes_under(&entry.path())
            } else {
                found.len()
            }
        })
        .sum()
}

#[tokio::test]
async fn refused_bodies_over_the_cap_push_out_the_oldest_and_the_disk_stays_within_it() {
    let dir = DataDir::new();
    // Eight bodies and their records: each counts its header and 4 KiB besides its bytes.
    let (cap, body) = (16 * MIB + 8 * 8192, 2 * MIB);
    let store = limited(&dir, cap, RefusedBodyLimits::DEFAULT_MAX_AGE);
    let path = store.path().to_owned();
    let (mut ids, mut used, mut database) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..40u8 {
        ids.push(reject(&store, malformed(n, body)).await.unwrap());
        used.push(bytes_under(&dir.0));
        database.push(std::fs::metadata(&path).unwrap().len());
    }

    // The newest eight fill the cap; the 32 before them went, oldest first.
    assert_eq!(kept_ids(&store).await, ids[32..]);
    assert_eq!(store.rejected_dropped(), 32);
    let page = store.rejected_page(0, 100).await.unwrap();
    assert_eq!(page.iter().map(|kept| kept.bytes).sum::<u64>(), 8 * body);
    let newest = store.get_rejected(ids[39]).await.unwrap().unwrap();
    assert_eq!(newest.body, malformed(39, body), "the newest kept whole");
    assert!(store.get_rejected(ids[31]).await.unwrap().is_none());

    // On disk: each body is a file, deleted when it is dropped, and the database holds only
    // their headers, so it stops growing. (Kept in redb, the bodies took up to three times
    // the cap: redb doubles its file and reuses freed pages only after later commits.)
    eprintln!("the store's directory after each body, in bytes: {used:?}");
    eprintln!("its database file: {database:?}");
    assert_eq!(
        database[19], database[39],
        "the database file does not grow with the refusals"
    );
    assert!(
        database[39] < MIB,
        "the database file holds the headers, not the bodies: {} bytes",
        database[39]
    );
    for (n, (&used, &database)) in used.iter().zip(&database).enumerate() {
        assert!(
            used <= cap + body + database,
            "after body {n}, the store's directory holds {used} bytes: over the cap, one body and \
             the database file ({database} bytes)"
        );
    }
}

/// Captures the WARN lines logged on this thread until the guard drops.
fn capture_warnings() -> (
    tracing::subscriber::DefaultGuard,
    Arc<std::sync::Mutex<Vec<u8>>>,
) {
    support::capture_logs(tracing::Level::WARN)
}

/// The WARN lines logged on this thread while `f` runs.
fn warnings<T>(f: impl FnOnce() -> T) -> (T, String) {
    let (guard, logs) = capture_warnings();
    let out = f();
    drop(guard);
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    (out, text)
}

#[tokio::test]
async fn a_request_whose_body_is_over_the_cap_is_answered_and_its_body_not_kept() {
    let (_guard, logs) = capture_warnings();
    let dir = DataDir::new();
    let store = limited(&dir, 100, RefusedBodyLimits::DEFAULT_MAX_AGE);
    let (handler, _) = recording();
    let receiver = Receiver::builder(handler)
        .allow_unauthenticated()
        .durable(store.clone())
        .build()
        .unwrap();
    let (status, _) = post(&receiver, vec![b'['; 500]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "answered as ever");
    // The body is offered to the store by a task of its own.
    let logged = |what: &str| String::from_utf8_lossy(&logs.lock().unwrap()).contains(what);
    for _ in 0..500 {
        if logged("a refused body was not kept") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        logged("a refused body was not kept") && logged("over the refused bodies' cap of 100"),
        "{}",
        String::from_utf8_lossy(&logs.lock().unwrap())
    );
    assert!(store.rejected_page(0, 10).await.unwrap().is_empty());
    stop(&receiver).await;
}

#[tokio::test]
async fn a_refused_body_over_the_cap_alone_is_not_kept_and_a_cap_of_zero_keeps_none() {
    let dir = DataDir::new();
    // Three entries' fixed cost: each body counts its bytes, its header and 4 KiB.
    let cap = 3 * RefusedBodyLimits::ENTRY_COST;
    let store = limited(&dir, cap, RefusedBodyLimits::DEFAULT_MAX_AGE);
    let first = reject(&store, malformed(1, 600)).await.unwrap();
    // Its bytes alone are under the cap; with its entry's cost, over.
    let err = reject(&store, malformed(2, cap - 100)).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Invalid);
    assert!(
        err.to_string().contains(&format!(
            "a refused body of {} bytes ({} with its record) is over the refused bodies' cap of \
             {cap} bytes",
            cap - 100,
            cap - 100 + RefusedBodyLimits::ENTRY_COST + "malformed JSON".len() as u64
        )),
        "{err}"
    );
    assert_eq!(kept_ids(&store).await, [first], "nothing dropped for it");
    assert_eq!(store.rejected_dropped(), 0);

    // A forgotten body leaves room: the total follows removals.
    let second = reject(&store, malformed(3, 400)).await.unwrap();
    store.remove_rejected(first).await.unwrap();
    let third = reject(&store, malformed(4, 600)).await.unwrap();
    assert_eq!(kept_ids(&store).await, [second, third]);
    assert_eq!(store.rejected_dropped(), 0);
    // One that fills the cap with its header fits, and pushes out the rest.
    let mut full = b"{\"callee\": \"+8613800138000\"".to_vec();
    full.resize(1000 + RefusedBodyLimits::ENTRY_COST as usize, b' ');
    let full = reject(&store, Bytes::from(full)).await.unwrap();
    assert_eq!(kept_ids(&store).await, [full]);
    assert_eq!(store.rejected_dropped(), 2);
    drop(store);

    // Opened again with a cap of 0: what was kept goes at once, counted and logged (never a
    // body's value), and nothing is kept from then on, not even an empty body.
    let (store, logs) = warnings(|| limited(&dir, 0, RefusedBodyLimits::DEFAULT_MAX_AGE));
    assert!(kept_ids(&store).await.is_empty());
    assert_eq!(store.rejected_dropped(), 1);
    assert!(
        logs.contains("WARN")
            && logs.contains("over the refused bodies' cap")
            && logs.contains("count=1")
            && logs.contains("bytes=5096")
            && logs.contains("max_bytes=0")
            && !logs.contains("8613800138000"),
        "{logs}"
    );
    for body in [Bytes::new(), malformed(6, 1)] {
        let err = reject(&store, body).await.unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Invalid, "{err}");
    }
    assert!(kept_ids(&store).await.is_empty());
}

#[tokio::test]
async fn refused_bodies_past_their_age_go_at_the_next_refusal_and_at_the_hourly_prune() {
    let dir = DataDir::new();
    let hour = Duration::from_secs(3600);
    let store = limited(&dir, RefusedBodyLimits::DEFAULT_MAX_BYTES, hour);
    // What counts is when the request arrived, not when the body was kept: an hour before
    // the age, whatever the disk's speed. Already too old, a body is still kept by its own
    // refusal (the id answered names a body), and goes at the next.
    let two_hours_ago = || {
        let at = SystemTime::now() - 2 * hour;
        Envelope::new(at, None, Vec::new())
    };
    let body = || Bytes::from_static(b"{not json");
    let old = store
        .reject(400, "malformed JSON".into(), two_hours_ago(), body())
        .await
        .unwrap();
    assert!(store.get_rejected(old).await.unwrap().is_some(), "kept");
    let young = reject(&store, body()).await.unwrap();
    assert_eq!(kept_ids(&store).await, [young], "gone at the next refusal");
    assert_eq!(store.rejected_dropped(), 1);
    let next = reject(&store, body()).await.unwrap();
    assert_eq!(kept_ids(&store).await, [young, next]);

    let aging = store
        .reject(400, "malformed JSON".into(), two_hours_ago(), body())
        .await
        .unwrap();
    assert_eq!(kept_ids(&store).await, [young, next, aging]);
    // No refusal since; the receiver prunes hourly, and the age goes with it.
    assert_eq!(store.prune(SystemTime::UNIX_EPOCH).await.unwrap(), 0);
    assert_eq!(kept_ids(&store).await, [young, next], "gone at the prune");
    assert_eq!(store.rejected_dropped(), 2);
    assert!(store.get_rejected(old).await.unwrap().is_none());
}

#[tokio::test]
async fn refused_bodies_are_listed_a_page_at_a_time_without_their_bytes() {
    let dir = DataDir::new();
    let store = RedbStore::open(&dir.0).unwrap();
    let mut ids = Vec::new();
    for n in 1..=5u8 {
        let envelope = Envelope::new(SystemTime::now(), Some(format!("10.0.0.{n}:1")), Vec::new());
        let reason = format!("reason {n}");
        let status = if n % 2 == 0 { 422 } else { 400 };
        let id = store
            .reject(status, reason, envelope, malformed(n, u64::from(n) * 10))
            .await
            .unwrap();
        ids.push(id);
    }
    let mut pages = Vec::new();
    let mut after = 0;
    loop {
        let page = store.rejected_page(after, 2).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        pages.push(page);
    }
    let shape: Vec<Vec<RecordId>> = pages
        .iter()
        .map(|page| page.iter().map(|kept| kept.id).collect())
        .collect();
    assert_eq!(
        shape,
        [vec![ids[0], ids[1]], vec![ids[2], ids[3]], vec![ids[4]]]
    );
    let third = &pages[1][0];
    assert_eq!(
        (
            third.status,
            &third.reason[..],
            third.bytes,
            third.envelope.peer.as_deref()
        ),
        (400, "reason 3", 30, Some("10.0.0.3:1"))
    );
    assert_eq!(pages[0][1].status, 422);
    assert!(store.rejected_page(0, 0).await.unwrap().is_empty());
    assert!(store.rejected_page(u64::MAX, 10).await.unwrap().is_empty());
    assert_eq!(store.rejected_page(ids[3], 10).await.unwrap()[0].id, ids[4]);

    let one = store.get_rejected(ids[2]).await.unwrap().unwrap();
    assert_eq!((one.status, one.body), (400, malformed(3, 30)));
    assert!(store.get_rejected(ids[4] + 1).await.unwrap().is_none());
    store.remove_rejected(ids[2]).await.unwrap();
    assert_eq!(kept_ids(&store).await, [ids[0], ids[1], ids[3], ids[4]]);
    assert_eq!(store.rejected().await.unwrap().len(), 4);
}

#[tokio::test]
async fn a_refused_body_changed_on_disk_is_still_listed_and_reported_when_read() {
    let dir = DataDir::new();
    let needle = b"refused-and-then-changed-on-disk";
    let id = {
        let store = RedbStore::open(&dir.0).unwrap();
        reject(&store, Bytes::from_static(needle)).await.unwrap()
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let path = dir.0.join("rejected").join(id.to_string());
    let mut file = std::fs::read(&path).unwrap();
    assert_eq!(file, needle, "the body is its file, as received");
    file[0] ^= 0x01;
    std::fs::write(&path, &file).unwrap();

    let store = RedbStore::open(&dir.0).unwrap();
    // Listing reads the headers alone: the changed body does not stop it.
    let page = store.rejected_page(0, 10).await.unwrap();
    assert_eq!(
        (page.len(), page[0].id, page[0].bytes),
        (1, id, needle.len() as u64)
    );
    // Reading it checks its CRC.
    let err = store.get_rejected(id).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");
    // Forgetting it still works.
    store.remove_rejected(id).await.unwrap();
    assert!(store.rejected_page(0, 10).await.unwrap().is_empty());
}

#[cfg(unix)]
#[test]
fn the_data_directory_is_created_private_and_the_file_made_private_at_every_open() {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let set = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let dir = DataDir::new();
    let data = dir.0.join("data");
    let (store, logs) = warnings(|| RedbStore::open(&data).unwrap());
    let file = store.path().to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = runtime.block_on(store.reject(
        400,
        "malformed JSON".into(),
        envelope_now(),
        Bytes::from_static(b"{"),
    ));
    let body = data.join("rejected").join(body.unwrap().to_string());
    drop(store);
    assert_eq!((mode(&dir.0), mode(&data)), (0o700, 0o700), "created 0700");
    assert_eq!(mode(&file), 0o600);
    assert_eq!(
        mode(&data.join("rejected")),
        0o700,
        "the refused bodies' folder"
    );
    assert_eq!(mode(&body), 0o600, "a refused body's file");
    assert!(!logs.contains("open to other users"), "{logs}");

    // Loosened by hand: the file is made private again, the directory (the user's now) is
    // left alone, with a warning.
    set(&file, 0o644);
    set(&data, 0o755);
    let (store, logs) = warnings(|| RedbStore::open(&data).unwrap());
    drop(store);
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&data), 0o755);
    assert_eq!(logs.matches("WARN").count(), 1, "{logs}");
    assert!(
        logs.contains("open to other users") && logs.contains("mode=755"),
        "{logs}"
    );
}
