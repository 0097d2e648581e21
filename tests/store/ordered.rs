//! Ordered delivery per key: 2,000 notifications over 40 keys (their `task_id`), a handler that
//! fails one attempt in five and takes a random while. For each key the handler sees the
//! notifications one at a time, in the order they were received, across retries; other keys
//! go on in parallel. On the embedded store, and with two receivers sharing PostgreSQL.

use crate::support;

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airudder_webhook::model::TaskNotification;
use airudder_webhook::store::{
    Appended, Attempt, AttemptOutcome, Envelope, NewRecord, RecordId, RecordQuery, RecordState,
    RedbStore, Store,
};
use airudder_webhook::{BoxError, Delivery, Receiver, RetryPolicy};
use bytes::Bytes;
use http::StatusCode;
use serde_json::json;
use std::time::SystemTime;
use tower::ServiceExt;

#[cfg(feature = "postgres")]
use crate::postgres::{fresh, shared_cluster};
use crate::support::process::DataDir;

const EVENTS: usize = 2_000;
const KEYS: usize = 40;

/// A uniform draw below `n`.
fn below(n: u64) -> u64 {
    RandomState::new().hash_one(n) % n
}

/// Event `seq`: of key `k{seq % KEYS}`, its sequence number in its `task_name`.
fn event(seq: usize) -> Vec<u8> {
    let mut body = support::example_value();
    body["task_id"] = json!(format!("k{}", seq % KEYS));
    body["task_name"] = json!(format!("seq-{seq}"));
    serde_json::to_vec(&body).unwrap()
}

/// What the handlers saw, shared by every receiver of a run.
#[derive(Default)]
struct Seen {
    /// Every attempt's (key, sequence number), in the order attempts started.
    started: Mutex<Vec<(String, usize)>>,
    /// Handled once, by sequence number.
    handled: Mutex<HashMap<usize, usize>>,
    /// Keys in progress now, and the most at once.
    running: Mutex<HashMap<String, usize>>,
    most_keys: AtomicUsize,
    /// Attempts started while another of the same key ran.
    overlaps: AtomicUsize,
    failed: AtomicUsize,
}

type Handling = std::pin::Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

impl Seen {
    fn handler(
        self: &Arc<Self>,
    ) -> impl Fn(Delivery<TaskNotification>) -> Handling + Clone + Send + Sync + 'static {
        let seen = Arc::clone(self);
        move |delivery: Delivery<TaskNotification>| {
            let seen = Arc::clone(&seen);
            Box::pin(async move {
                let key = delivery.task_id.to_string();
                let seq: usize = delivery
                    .task_name
                    .strip_prefix("seq-")
                    .and_then(|n| n.parse().ok())
                    .expect("a sequence number");
                seen.started.lock().unwrap().push((key.clone(), seq));
                {
                    let mut running = seen.running.lock().unwrap();
                    let now = running.entry(key.clone()).or_default();
                    *now += 1;
                    if *now > 1 {
                        seen.overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    seen.most_keys.fetch_max(running.len(), Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_micros(below(3_000))).await;
                {
                    let mut running = seen.running.lock().unwrap();
                    let left = running.get_mut(&key).map(|n| {
                        *n -= 1;
                        *n
                    });
                    if left == Some(0) {
                        running.remove(&key);
                    }
                }
                if below(5) == 0 {
                    seen.failed.fetch_add(1, Ordering::SeqCst);
                    return Err("refused, as one attempt in five is".into());
                }
                *seen.handled.lock().unwrap().entry(seq).or_default() += 1;
                Ok(())
            })
        }
    }

    /// Every event handled once; for each key, attempts in the order received (a retry of the
    /// same event may repeat it, never go back); more than one key at a time.
    fn check(&self) {
        let handled = self.handled.lock().unwrap();
        assert_eq!(handled.len(), EVENTS, "every event handled");
        assert!(handled.values().all(|&n| n == 1), "each once");
        let mut last: BTreeMap<&str, usize> = BTreeMap::new();
        let started = self.started.lock().unwrap();
        for (key, seq) in started.iter() {
            if let Some(&before) = last.get(key.as_str()) {
                assert!(
                    seq >= &before,
                    "key {key}: event {seq} started after event {before}"
                );
            }
            last.insert(key, *seq);
        }
        assert!(
            self.most_keys.load(Ordering::SeqCst) > 1,
            "other keys go on in parallel"
        );
        assert_eq!(
            self.overlaps.load(Ordering::SeqCst),
            0,
            "of a key, never two at once"
        );
        assert!(
            self.failed.load(Ordering::SeqCst) > EVENTS / 10,
            "failures happened"
        );
    }
}

/// A receiver of `store`, ordered by task id, retrying at once (the 20% failures must not make
/// dead letters).
fn receiver(store: impl Store, seen: &Arc<Seen>) -> Receiver {
    Receiver::builder(seen.handler())
        .allow_unauthenticated()
        .workers(8)
        .retry(
            RetryPolicy::new(60)
                .initial_backoff(Duration::from_millis(1))
                .max_backoff(Duration::from_millis(20)),
        )
        .durable(store)
        .ordered()
        .build()
        .unwrap()
}

/// Posts every event, in order, spread over `receivers`, each answered 200.
async fn post_all(receivers: &[Receiver]) {
    for seq in 0..EVENTS {
        let receiver = receivers[seq % receivers.len()].clone();
        let status = receiver
            .oneshot(support::post(event(seq)))
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::OK, "event {seq}");
    }
}

async fn wait_handled(seen: &Seen) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while seen.handled.lock().unwrap().len() < EVENTS {
        assert!(
            std::time::Instant::now() < deadline,
            "handled {} of {EVENTS} in 120 s",
            seen.handled.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_is_handled_in_the_order_received_across_retries_on_the_embedded_store() {
    let dir = DataDir::new();
    let store = RedbStore::open(&dir.0).unwrap();
    let seen = Arc::new(Seen::default());
    let receiver = receiver(store.clone(), &seen);
    post_all(std::slice::from_ref(&receiver)).await;
    wait_handled(&seen).await;
    support::stop(&receiver).await;
    seen.check();
    let pending = store
        .count(RecordQuery::new().state(RecordState::Pending))
        .await
        .unwrap();
    assert_eq!(pending, 0);
    eprintln!(
        "{EVENTS} events over {KEYS} keys: {} failed attempts, at most {} keys at once",
        seen.failed.load(Ordering::SeqCst),
        seen.most_keys.load(Ordering::SeqCst)
    );
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_is_handled_in_the_order_received_by_two_receivers_sharing_postgres() {
    let url = shared_cluster().url();
    let first = fresh(&url, "ordered_two", Duration::from_secs(30)).await;
    let second = first.for_another_receiver();
    let seen = Arc::new(Seen::default());
    let receivers = [receiver(first.clone(), &seen), receiver(second, &seen)];
    post_all(&receivers).await;
    wait_handled(&seen).await;
    for receiver in &receivers {
        support::stop(receiver).await;
    }
    seen.check();
    eprintln!(
        "{EVENTS} events over {KEYS} keys, two receivers: {} failed attempts, at most {} keys at once",
        seen.failed.load(Ordering::SeqCst),
        seen.most_keys.load(Ordering::SeqCst)
    );
}

/// Record `n` of kind `k`, ordered by `key` (if any), received `n` ms after the others before.
fn keyed(n: u8, key: Option<&str>, holds: bool) -> NewRecord {
    let received = SystemTime::UNIX_EPOCH
        + Duration::from_secs(1_700_000_000)
        + Duration::from_millis(u64::from(n));
    let envelope = Envelope::new(received, None, Vec::new()).with_kind("k");
    let record = NewRecord::new([n; 32], Bytes::from(format!("body {n}")), envelope);
    match key {
        Some(key) => record.ordered(key, holds),
        None => record,
    }
}

async fn add(store: &impl Store, record: NewRecord) -> RecordId {
    match store.append(record).await.unwrap() {
        Appended::Stored(id) => id,
        Appended::Duplicate(id) => panic!("{id} stored before"),
    }
}

/// The pending records listed, each with the record that holds it back.
async fn held_back_by(store: &impl Store) -> Vec<(RecordId, Option<RecordId>)> {
    let page = store
        .list(RecordQuery::new().state(RecordState::Pending))
        .await
        .unwrap();
    page.items
        .iter()
        .filter(|row| row.held_back_by.is_some())
        .map(|row| (row.id, row.held_back_by))
        .collect()
}

async fn claimed(store: &impl Store) -> Vec<RecordId> {
    let mut ids: Vec<_> = store
        .claim("k", 100)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    ids.sort_unstable();
    ids
}

fn ok() -> Attempt {
    Attempt::new(SystemTime::now(), Duration::ZERO, AttemptOutcome::Ok).with_number(1)
}

/// What every store does with ordered records: a claim hands out only the first pending
/// record of each key; the next comes when the one before is handled, purged, or a dead
/// letter that does not hold; a dead letter that holds comes back, replayed, as the head.
async fn the_store_keeps_each_key_in_order(store: impl Store) {
    let (x1, x2, x3) = (
        add(&store, keyed(1, Some("x"), true)).await,
        add(&store, keyed(2, Some("x"), true)).await,
        add(&store, keyed(3, Some("x"), true)).await,
    );
    let (z1, z2) = (
        add(&store, keyed(4, Some("z"), false)).await,
        add(&store, keyed(5, Some("z"), false)).await,
    );
    let free = add(&store, keyed(6, None, false)).await;
    assert_eq!(
        claimed(&store).await,
        [x1, z1, free],
        "the first of each key"
    );
    let pending = RecordQuery::new().state(RecordState::Pending);
    assert_eq!(
        store.count(pending.clone()).await.unwrap(),
        6,
        "waiting ones count"
    );
    assert_eq!(
        store.get(x2).await.unwrap().unwrap().order_key.as_deref(),
        Some("x")
    );
    assert_eq!(
        held_back_by(&store).await,
        [(x2, Some(x1)), (x3, Some(x1)), (z2, Some(z1))]
    );
    assert_eq!(
        store.keys_held_back("k").await.unwrap(),
        0,
        "no head failed"
    );

    // Handled: the next of its key comes.
    store.complete(free, ok()).await.unwrap();
    store.complete(x1, ok()).await.unwrap();
    assert_eq!(claimed(&store).await, [x2]);
    // A dead letter that holds: its key waits, until it is replayed (then it comes first).
    store.dead_letter(x2, ok()).await.unwrap();
    assert!(
        claimed(&store).await.is_empty(),
        "x3 waits behind the dead x2"
    );
    assert_eq!(store.keys_held_back("k").await.unwrap(), 1);
    assert_eq!(held_back_by(&store).await, [(x3, Some(x2)), (z2, Some(z1))]);
    store.replay(x2).await.unwrap();
    assert_eq!(claimed(&store).await, [x2]);
    // A dead letter that holds, purged: the next comes.
    store.dead_letter(x2, ok()).await.unwrap();
    assert!(claimed(&store).await.is_empty());
    assert!(store.purge(x2).await.unwrap());
    assert_eq!(claimed(&store).await, [x3]);
    store.complete(x3, ok()).await.unwrap();

    // A dead letter that does not hold: the next goes on; replayed, it comes back unordered.
    store.dead_letter(z1, ok()).await.unwrap();
    assert_eq!(claimed(&store).await, [z2]);
    let replayed = store.replay(z1).await.unwrap();
    assert_eq!(replayed.order_key, None);
    assert_eq!(claimed(&store).await, [z1], "beside z2, still held");
    assert_eq!(store.count(pending).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_keeps_each_key_in_order() {
    let dir = DataDir::new();
    the_store_keeps_each_key_in_order(RedbStore::open(&dir.0).unwrap()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn the_postgres_store_keeps_each_key_in_order() {
    let url = shared_cluster().url();
    the_store_keeps_each_key_in_order(
        fresh(&url, "ordered_contract", Duration::from_secs(30)).await,
    )
    .await;
}
