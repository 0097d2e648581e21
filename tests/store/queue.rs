//! The store is the queue: a durable receiver holds in memory what its workers handle, never
//! the backlog; a failed attempt waits on disk for its due time; each attempt is kept in the
//! record's history; handled notifications stay findable; pausing a kind stops hand-offs, not
//! intake.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::support::process::DataDir;
use crate::support::{example_with_task_id, stop};
use airudder_webhook::model::TaskNotification;
use airudder_webhook::store::{
    AttemptOutcome, DEFAULT_KIND, RecordQuery, RecordState, RedbStore, Store,
};
use airudder_webhook::{BoxError, Delivery, Receiver, RetryLater, RetryPolicy};
use bytes::Bytes;
use http::StatusCode;
use tokio::sync::{Semaphore, mpsc};
use tower::ServiceExt;

async fn post(receiver: &Receiver, body: impl Into<Bytes>) -> StatusCode {
    receiver
        .clone()
        .oneshot(support::post(body))
        .await
        .unwrap()
        .status()
}

async fn pending(store: &RedbStore) -> usize {
    Store::count(store, RecordQuery::new().state(RecordState::Pending))
        .await
        .unwrap() as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_waits_in_the_store_and_is_answered_200_while_the_workers_are_busy() {
    let dir = DataDir::new();
    let store = RedbStore::open(&dir.0).unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (tx, mut seen) = mpsc::unbounded_channel();
    let handler = {
        let (gate, running, most) = (gate.clone(), running.clone(), most.clone());
        move |d: Delivery<TaskNotification>| {
            let (gate, running, most, tx) =
                (gate.clone(), running.clone(), most.clone(), tx.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                gate.acquire().await.unwrap().forget();
                running.fetch_sub(1, Ordering::SeqCst);
                let _ = tx.send(d.task_id.to_string());
                Ok::<_, BoxError>(())
            }
        }
    };
    let receiver = Receiver::builder(handler)
        .allow_unauthenticated()
        .workers(2)
        .queue_capacity(1)
        .durable(store.clone())
        .build()
        .unwrap();
    // Far more than the workers and the queue hold: each stored and answered 200 at once.
    for n in 0..100 {
        assert_eq!(
            post(&receiver, example_with_task_id(&format!("b-{n}"))).await,
            StatusCode::OK
        );
    }
    assert_eq!(pending(&store).await, 100, "all stored, none handled");
    assert_eq!(
        receiver.stats().pending(),
        2,
        "in memory: what the two workers hold"
    );

    gate.add_permits(100);
    let mut handled = Vec::new();
    while handled.len() < 100 {
        let task = tokio::time::timeout(Duration::from_secs(10), seen.recv())
            .await
            .expect("handled within 10 s")
            .unwrap();
        handled.push(task);
    }
    receiver.idle().await;
    handled.sort();
    handled.dedup();
    assert_eq!(handled.len(), 100, "each once");
    assert!(
        most.load(Ordering::SeqCst) <= 2,
        "at most the workers at once"
    );
    assert_eq!(pending(&store).await, 0);
    let kept = Store::count(&store, RecordQuery::new().state(RecordState::Handled))
        .await
        .unwrap();
    assert_eq!(kept, 100, "handled notifications are kept");
    stop(&receiver).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_waits_on_disk_for_its_due_time_with_its_history() {
    let dir = DataDir::new();
    let store = RedbStore::open(&dir.0).unwrap();
    let healthy = Arc::new(AtomicBool::new(false));
    let (tx, mut seen) = mpsc::unbounded_channel();
    let handler = {
        let healthy = healthy.clone();
        move |d: Delivery<TaskNotification>| {
            let (healthy, tx) = (healthy.clone(), tx.clone());
            async move {
                let _ = tx.send((d.attempt(), Instant::now()));
                if healthy.load(Ordering::SeqCst) {
                    d.report_status(202);
                    Ok(())
                } else {
                    d.report_status(503);
                    Err(BoxError::from("the ledger answered 503"))
                }
            }
        }
    };
    let receiver = Receiver::builder(handler)
        .allow_unauthenticated()
        .retry(RetryPolicy::new(5).initial_backoff(Duration::from_secs(2)))
        .durable(store.clone())
        .build()
        .unwrap();
    assert_eq!(
        post(&receiver, example_with_task_id("w-1")).await,
        StatusCode::OK
    );
    let (first, first_at) = seen.recv().await.unwrap();
    assert_eq!(first, 1);
    // Between the attempts the record waits in the store, not in a task.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.stats().pending(),
        0,
        "nothing in memory while it waits"
    );
    let waiting = store.pending().await.unwrap();
    assert_eq!(waiting.len(), 1);
    let record = &waiting[0];
    assert_eq!(record.attempts, 1);
    assert_eq!(
        record.last_error.as_deref(),
        Some("the ledger answered 503")
    );
    assert_eq!(
        (record.history[0].outcome, record.history[0].status),
        (AttemptOutcome::Error, Some(503))
    );
    assert!(record.due_at() > SystemTime::now(), "due later");

    healthy.store(true, Ordering::SeqCst);
    let (second, second_at) = tokio::time::timeout(Duration::from_secs(5), seen.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second, 2);
    let waited = second_at - first_at;
    assert!(
        waited >= Duration::from_millis(1_500) && waited < Duration::from_secs(4),
        "the backoff of 2 s (less up to a fifth of spread), then the next poll: {waited:?}"
    );
    receiver.idle().await;
    let handled = store.list(RecordQuery::new().task_id("w-1")).await.unwrap();
    assert_eq!(handled.len(), 1);
    assert_eq!(handled.items[0].state, RecordState::Handled);
    let record = store.get(handled.items[0].id).await.unwrap().unwrap();
    let outcomes: Vec<_> = record
        .history
        .iter()
        .map(|attempt| (attempt.outcome, attempt.status))
        .collect();
    assert_eq!(
        outcomes,
        [
            (AttemptOutcome::Error, Some(503)),
            (AttemptOutcome::Ok, Some(202))
        ]
    );
    stop(&receiver).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_asks_for_its_wait_and_the_deadline_cuts_it_short() {
    let dir = DataDir::new();
    let store = RedbStore::open(&dir.0).unwrap();
    let (tx, mut seen) = mpsc::unbounded_channel();
    let handler = move |d: Delivery<TaskNotification>| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((d.attempt(), Instant::now()));
            Err::<(), _>(BoxError::from(RetryLater::after(
                Duration::from_secs(60),
                "busy: come back in a minute",
            )))
        }
    };
    // Asked for 60 s, but the deadline is 3 s after receipt: one more attempt at the
    // deadline, then a dead letter.
    let receiver = Receiver::builder(handler)
        .allow_unauthenticated()
        .retry(RetryPolicy::for_duration(Duration::from_secs(3)))
        .durable(store.clone())
        .build()
        .unwrap();
    let posted = Instant::now();
    assert_eq!(
        post(&receiver, example_with_task_id("late-1")).await,
        StatusCode::OK
    );
    assert_eq!(seen.recv().await.unwrap().0, 1);
    let (second, at) = tokio::time::timeout(Duration::from_secs(6), seen.recv())
        .await
        .expect("a last attempt at the deadline")
        .unwrap();
    assert_eq!(second, 2);
    let after = at - posted;
    assert!(
        after >= Duration::from_millis(2_900) && after < Duration::from_millis(4_500),
        "{after:?}"
    );
    receiver.idle().await;
    let dead = store.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1, "a dead letter after the try at the deadline");
    assert_eq!(
        dead[0].last_error.as_deref(),
        Some("busy: come back in a minute")
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(1_500), seen.recv())
            .await
            .is_err(),
        "no attempt after the dead letter"
    );
    stop(&receiver).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_kind_is_stored_and_answered_but_handed_on_only_after_resume() {
    let dir = DataDir::new();
    let store = RedbStore::open(&dir.0).unwrap();
    let (tx, mut seen) = mpsc::unbounded_channel();
    let handler = move |d: Delivery<TaskNotification>| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(d.task_id.to_string());
            Ok::<_, BoxError>(())
        }
    };
    let receiver = Receiver::builder(handler)
        .allow_unauthenticated()
        .durable(store.clone())
        .build()
        .unwrap();
    receiver.set_paused(true).await.unwrap();
    for n in 0..5 {
        assert_eq!(
            post(&receiver, example_with_task_id(&format!("p-{n}"))).await,
            StatusCode::OK
        );
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(2_500), seen.recv())
            .await
            .is_err(),
        "nothing handed on while paused"
    );
    assert_eq!(pending(&store).await, 5);
    assert!(receiver.is_ready(), "paused is still ready");
    assert_eq!(store.paused().await.unwrap(), [DEFAULT_KIND]);

    // Paused in the store: a receiver started on it later stays paused.
    stop(&receiver).await;
    let (tx, mut seen) = mpsc::unbounded_channel();
    let handler = move |d: Delivery<TaskNotification>| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(d.task_id.to_string());
            Ok::<_, BoxError>(())
        }
    };
    let receiver = Receiver::builder(handler)
        .allow_unauthenticated()
        .durable(store.clone())
        .build()
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(1_500), seen.recv())
            .await
            .is_err(),
        "still paused after a restart"
    );
    receiver.set_paused(false).await.unwrap();
    let mut all = Vec::new();
    while all.len() < 5 {
        all.push(
            tokio::time::timeout(Duration::from_secs(5), seen.recv())
                .await
                .expect("handed on after resume")
                .unwrap(),
        );
    }
    all.sort();
    assert_eq!(all, ["p-0", "p-1", "p-2", "p-3", "p-4"]);
    receiver.idle().await;
    assert!(seen.try_recv().is_err(), "each once");
    stop(&receiver).await;
}
