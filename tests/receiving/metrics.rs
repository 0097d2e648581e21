//! The receiver's recording through the `metrics` facade, read back with `metrics-util`'s
//! debugging recorder (no exporter, no relay).

use crate::support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use airudder_webhook::auth::QueryToken;
use airudder_webhook::model::TaskNotification;
use airudder_webhook::store::RedbStore;
use airudder_webhook::{Delivery, Receiver, RetryPolicy};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::support::{EXAMPLE, example_with_task_id};

/// Every value seen so far, by name and sorted labels. The debugging recorder hands out each
/// counter increment and histogram sample once (a snapshot resets them), so counters are
/// summed and samples kept here; a gauge reads 0 after a snapshot until it is sampled again,
/// so gauges are read only after two sampling intervals (see [`Seen::gauge`]).
struct Seen {
    snapshotter: Snapshotter,
    values: HashMap<(String, Vec<(String, String)>), Value>,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Counter(u64),
    Gauge(f64),
    Samples(Vec<f64>),
}

impl Seen {
    fn new(recorder: &DebuggingRecorder) -> Self {
        Self {
            snapshotter: recorder.snapshotter(),
            values: HashMap::new(),
        }
    }

    fn refresh(&mut self) {
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let key = key.key();
            let mut labels: Vec<_> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            let entry = (key.name().to_owned(), labels);
            match value {
                DebugValue::Counter(n) => {
                    let seen = self.values.entry(entry).or_insert(Value::Counter(0));
                    if let Value::Counter(total) = seen {
                        *total += n;
                    }
                }
                DebugValue::Gauge(g) => {
                    self.values.insert(entry, Value::Gauge(g.into_inner()));
                }
                DebugValue::Histogram(samples) => {
                    let seen = self
                        .values
                        .entry(entry)
                        .or_insert_with(|| Value::Samples(Vec::new()));
                    if let Value::Samples(all) = seen {
                        all.extend(samples.into_iter().map(|s| s.into_inner()));
                    }
                }
            }
        }
    }

    /// The value of `name` whose labels include every one of `labels`, summed over the rest.
    fn get(&mut self, name: &str, labels: &[(&str, &str)]) -> Option<Value> {
        self.refresh();
        let matching: Vec<&Value> = self
            .values
            .iter()
            .filter(|((n, l), _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, v)| v)
            .collect();
        match matching.first()? {
            Value::Counter(_) => Some(Value::Counter(
                matching
                    .iter()
                    .map(|v| match v {
                        Value::Counter(n) => *n,
                        _ => 0,
                    })
                    .sum(),
            )),
            Value::Gauge(g) if matching.len() == 1 => Some(Value::Gauge(*g)),
            Value::Gauge(_) => panic!("{name} {labels:?} matches several gauges"),
            Value::Samples(_) => Some(Value::Samples(
                matching
                    .iter()
                    .flat_map(|v| match v {
                        Value::Samples(s) => s.clone(),
                        _ => Vec::new(),
                    })
                    .collect(),
            )),
        }
    }

    fn counter(&mut self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.get(name, labels) {
            Some(Value::Counter(n)) => n,
            other => panic!("{name} {labels:?}: {other:?}"),
        }
    }

    /// A gauge, read two sampling intervals (20 ms) after the last snapshot.
    async fn gauge(&mut self, name: &str, labels: &[(&str, &str)]) -> f64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        match self.get(name, labels) {
            Some(Value::Gauge(g)) => g,
            other => panic!("{name} {labels:?}: {other:?}"),
        }
    }

    fn samples(&mut self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        match self.get(name, labels) {
            Some(Value::Samples(s)) => s,
            None => Vec::new(),
            other => panic!("{name} {labels:?}: {other:?}"),
        }
    }

    /// Waits (up to 5 s) until the gauge reads `want`.
    async fn gauge_reaches(&mut self, name: &str, labels: &[(&str, &str)], want: f64) {
        let mut last = None;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            last = self.get(name, labels);
            if last == Some(Value::Gauge(want)) {
                return;
            }
        }
        panic!("{name} {labels:?} never read {want}: {last:?}");
    }
}

fn request(
    uri: &str,
    content_type: &str,
    body: impl Into<bytes::Bytes>,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::post(uri)
        .header("content-type", content_type)
        .body(http_body_util::Full::new(body.into()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_is_counted_once_under_its_status_and_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path().join("store.redb")).unwrap();
    let recorder = DebuggingRecorder::new();
    let mut seen = Seen::new(&recorder);
    let fails = Arc::new(AtomicU32::new(1));
    let handler_fails = Arc::clone(&fails);
    let receiver = metrics::with_local_recorder(&recorder, || {
        Receiver::builder(move |_: Delivery<TaskNotification>| {
            let fail = handler_fails
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            async move {
                if fail {
                    Err(std::io::Error::other("the first attempt fails"))
                } else {
                    Ok(())
                }
            }
        })
        .name("tasks")
        .authorize(QueryToken::new(["t0ken"]).unwrap())
        .durable(store)
        .retry(RetryPolicy::new(3).initial_backoff(Duration::from_millis(10)))
        .body_limit(64 * 1024)
        .metrics_interval(Duration::from_millis(20))
        .build()
        .unwrap()
    });
    let uri = "/airudder/task?token=t0ken";
    let json = "application/json";
    let send = |req| receiver.clone().oneshot(req);
    let statuses = [
        send(request(uri, json, EXAMPLE)).await.unwrap().status(),
        send(request(uri, json, EXAMPLE)).await.unwrap().status(),
        send(request(uri, json, "{not json"))
            .await
            .unwrap()
            .status(),
        send(request("/airudder/task?token=wrong", json, EXAMPLE))
            .await
            .unwrap()
            .status(),
        send(request(uri, json, vec![b' '; 65 * 1024]))
            .await
            .unwrap()
            .status(),
        send(request(uri, "text/plain", EXAMPLE))
            .await
            .unwrap()
            .status(),
        send(request(uri, json, r#"{"task_id": 1}"#))
            .await
            .unwrap()
            .status(),
    ];
    assert_eq!(
        statuses.map(|s| s.as_u16()),
        [200, 200, 400, 401, 413, 415, 422]
    );

    let tasks = ("receiver", "tasks");
    seen.refresh();
    for (status, outcome) in [
        ("200", "accepted"),
        ("200", "duplicate"),
        ("400", "malformed_json"),
        ("401", "unauthorized"),
        ("413", "payload_too_large"),
        ("415", "unsupported_media_type"),
        ("422", "invalid_notification"),
    ] {
        let labels = [tasks, ("status", status), ("outcome", outcome)];
        assert_eq!(
            seen.counter("airudder_requests_total", &labels),
            1,
            "{labels:?}"
        );
    }
    assert_eq!(seen.counter("airudder_requests_total", &[tasks]), 7);
    assert_eq!(seen.samples("airudder_answer_seconds", &[tasks]).len(), 7);
    assert_eq!(
        seen.samples("airudder_answer_seconds", &[tasks, ("status", "200")])
            .len(),
        2
    );

    // The handler fails once and succeeds on its retry.
    for _ in 0..500 {
        if seen.counter(
            "airudder_handler_attempts_total",
            &[tasks, ("result", "ok")],
        ) == 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        seen.counter(
            "airudder_handler_attempts_total",
            &[tasks, ("result", "ok")]
        ),
        1
    );
    assert_eq!(
        seen.counter(
            "airudder_handler_attempts_total",
            &[tasks, ("result", "error")]
        ),
        1
    );
    assert_eq!(seen.samples("airudder_handler_seconds", &[tasks]).len(), 2);
    assert_eq!(seen.counter("airudder_dead_letters_total", &[tasks]), 0);

    // The store's gauges: one done notification, none pending; the store is up.
    seen.gauge_reaches("airudder_store_pending", &[tasks], 0.0)
        .await;
    seen.gauge_reaches("airudder_store_recovering", &[tasks], 0.0)
        .await;
    seen.gauge_reaches("airudder_ready", &[tasks], 1.0).await;

    // Stopping: a 503, counted as such, and the receiver no longer ready.
    let shutdown = receiver.shutdown_handle();
    shutdown.shutdown(Duration::from_secs(5)).await;
    let refused = send(request(uri, json, example_with_task_id("late")))
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let labels = [tasks, ("status", "503"), ("outcome", "shutting_down")];
    assert_eq!(seen.counter("airudder_requests_total", &labels), 1);
    assert_eq!(seen.counter("airudder_requests_total", &[tasks]), 8);
    seen.gauge_reaches("airudder_ready", &[tasks], 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gauges_follow_the_queue_as_it_fills_and_drains() {
    let recorder = DebuggingRecorder::new();
    let mut seen = Seen::new(&recorder);
    let gate = Arc::new(Semaphore::new(0));
    let receiver = metrics::with_local_recorder(&recorder, || {
        Receiver::builder(gated(&gate))
            .allow_unauthenticated()
            .workers(1)
            .metrics_interval(Duration::from_millis(20))
            .build()
            .unwrap()
    });
    let name = ("receiver", "task_notification");
    seen.gauge_reaches("airudder_queue_depth", &[name], 0.0)
        .await;
    for i in 0..5 {
        let response = receiver
            .clone()
            .oneshot(support::post(example_with_task_id(&format!("t{i}"))))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // One handler runs, four wait; their bodies are held.
    seen.gauge_reaches("airudder_handlers_running", &[name], 1.0)
        .await;
    seen.gauge_reaches("airudder_queue_depth", &[name], 4.0)
        .await;
    assert!(seen.gauge("airudder_bytes_in_flight", &[name]).await >= 5.0 * 1000.0);

    gate.add_permits(5);
    seen.gauge_reaches("airudder_queue_depth", &[name], 0.0)
        .await;
    seen.gauge_reaches("airudder_handlers_running", &[name], 0.0)
        .await;
    seen.gauge_reaches("airudder_bytes_in_flight", &[name], 0.0)
        .await;
    assert_eq!(
        seen.counter("airudder_handler_attempts_total", &[name, ("result", "ok")]),
        5
    );
    receiver
        .shutdown_handle()
        .shutdown(Duration::from_secs(5))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_a_timeout_and_a_dead_letter_are_told_apart() {
    let recorder = DebuggingRecorder::new();
    let mut seen = Seen::new(&recorder);
    let receiver = metrics::with_local_recorder(&recorder, || {
        Receiver::builder(|delivery: Delivery<TaskNotification>| async move {
            match delivery.task_id.as_str() {
                "panic" => panic!("the handler panics"),
                "slow" => tokio::time::sleep(Duration::from_secs(5)).await,
                _ => {}
            }
            Ok::<_, std::convert::Infallible>(())
        })
        .allow_unauthenticated()
        .retry(RetryPolicy::never())
        .handler_timeout(Duration::from_millis(50))
        .build()
        .unwrap()
    });
    for task in ["panic", "slow"] {
        let response = receiver
            .clone()
            .oneshot(support::post(example_with_task_id(task)))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let name = ("receiver", "task_notification");
    receiver
        .shutdown_handle()
        .shutdown(Duration::from_secs(5))
        .await;
    assert_eq!(
        seen.counter(
            "airudder_handler_attempts_total",
            &[name, ("result", "panic")]
        ),
        1
    );
    assert_eq!(
        seen.counter(
            "airudder_handler_attempts_total",
            &[name, ("result", "timeout")]
        ),
        1
    );
    assert_eq!(seen.counter("airudder_dead_letters_total", &[name]), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_counts_its_redeliveries_and_the_store_gauges_see_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    // First run: two notifications stored, the handler starts both and never finishes them.
    {
        let started = Arc::new(AtomicU32::new(0));
        let handler = {
            let started = Arc::clone(&started);
            move |_: Delivery<TaskNotification>| {
                started.fetch_add(1, Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Ok::<_, std::convert::Infallible>(())
                }
            }
        };
        let receiver = Receiver::builder(handler)
            .allow_unauthenticated()
            .durable(RedbStore::open(&path).unwrap())
            .build()
            .unwrap();
        for task in ["a", "b"] {
            let response = receiver
                .clone()
                .oneshot(support::post(example_with_task_id(task)))
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
        // Both running (one stored before the receiver read its kind's pause state waits for
        // a claim): only a started attempt is a redelivery when it comes again.
        support::wait_until("both handlers started", || {
            started.load(Ordering::SeqCst) == 2
        })
        .await;
        receiver
            .shutdown_handle()
            .shutdown(Duration::from_millis(50))
            .await;
    }
    // Second run, watched: both are redelivered, the pending gauge sees them go.
    let recorder = DebuggingRecorder::new();
    let mut seen = Seen::new(&recorder);
    let gate = Arc::new(Semaphore::new(0));
    let receiver = metrics::with_local_recorder(&recorder, || {
        Receiver::builder(gated(&gate))
            .allow_unauthenticated()
            .durable(RedbStore::open(&path).unwrap())
            .metrics_interval(Duration::from_millis(20))
            .build()
            .unwrap()
    });
    let name = ("receiver", "task_notification");
    seen.gauge_reaches("airudder_store_pending", &[name], 2.0)
        .await;
    assert!(
        seen.gauge("airudder_store_oldest_pending_seconds", &[name])
            .await
            > 0.0
    );
    assert_eq!(seen.counter("airudder_redeliveries_total", &[name]), 2);
    gate.add_permits(2);
    seen.gauge_reaches("airudder_store_pending", &[name], 0.0)
        .await;
    seen.gauge_reaches("airudder_store_oldest_pending_seconds", &[name], 0.0)
        .await;
    assert_eq!(
        seen.gauge("airudder_store_dead_letters", &[name]).await,
        0.0
    );
    receiver
        .shutdown_handle()
        .shutdown(Duration::from_secs(5))
        .await;
}

/// A handler that waits for a permit of `gate` before it returns.
fn gated(
    gate: &Arc<Semaphore>,
) -> impl airudder_webhook::HandleNotification<TaskNotification> + use<> {
    let gate = Arc::clone(gate);
    move |_: Delivery<TaskNotification>| {
        let gate = Arc::clone(&gate);
        async move {
            gate.acquire().await.unwrap().forget();
            Ok::<_, std::convert::Infallible>(())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordered_receiver_shows_the_keys_held_back_by_a_failing_first_notification() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = DebuggingRecorder::new();
    let mut seen = Seen::new(&recorder);
    // Task "stuck" always fails; task "fine" is handled.
    let handler = |delivery: Delivery<TaskNotification>| async move {
        if &*delivery.task_id == "stuck" {
            return Err("the service refuses it");
        }
        Ok(())
    };
    let receiver = metrics::with_local_recorder(&recorder, || {
        Receiver::builder(handler)
            .allow_unauthenticated()
            .retry(RetryPolicy::new(1_000).initial_backoff(Duration::from_millis(10)))
            .durable(RedbStore::open(dir.path().join("store.redb")).unwrap())
            .ordered()
            .metrics_interval(Duration::from_millis(20))
            .build()
            .unwrap()
    });
    let mut body = support::example_value();
    for (task, name) in [("stuck", "first"), ("stuck", "second"), ("fine", "only")] {
        body["task_id"] = serde_json::json!(task);
        body["task_name"] = serde_json::json!(name);
        let response = receiver
            .clone()
            .oneshot(support::post(serde_json::to_vec(&body).unwrap()))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let name = ("receiver", "task_notification");
    // "stuck"'s second waits behind its failing first; "fine" went on.
    seen.gauge_reaches("airudder_ordered_keys_held_back", &[name], 1.0)
        .await;
    seen.gauge_reaches("airudder_store_pending", &[name], 2.0)
        .await;
    receiver
        .shutdown_handle()
        .shutdown(Duration::from_secs(5))
        .await;
}
