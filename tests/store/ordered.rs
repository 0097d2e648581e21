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
use airudder_webhook::store::{RecordQuery, RecordState, RedbStore, Store};
use airudder_webhook::{BoxError, Delivery, Receiver, RetryPolicy};
use http::StatusCode;
use serde_json::json;
use tower::ServiceExt;

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
