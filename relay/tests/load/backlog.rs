//! The store is the queue, tried as an operator would: a team's service down while Airudder
//! posts big tasks, the relay as a real process.
//! - A backlog larger than the relay's memory may grow to: every post answered 200, memory flat as the
//!   backlog grows, a restart with the backlog ready within seconds and still flat, and once
//!   the service is back each notification arrives exactly once.
//! - Retries survive a SIGKILL: the attempt count, the due time and the history are in the
//!   store; a kill during a wait neither loses nor repeats an attempt.

use crate::common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use airudder_webhook::store::{AttemptOutcome, RecordState, RedbStore, Store};
use common::{DataDir, Service, client, free_port, memory, start, start_quiet, task_id};

/// Big tasks: 600 calls, about 0.9 MB each, as Airudder posts for a task of that size.
const CALLS: usize = 600;
/// How many are posted: a backlog of about 315 MB.
const POSTS: usize = 350;
/// Posts at once.
const SENDERS: usize = 4;
/// What the relay may hold in memory, whatever the backlog: the runtime, the store's cache,
/// the bodies being read and handled.
const MEMORY_CAP: u64 = 192 << 20;

/// The example with its own task id and `CALLS` calls.
fn big_task(task: &str) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(common::EXAMPLE).unwrap();
    value["task_id"] = task.into();
    let call = value["details"][0].clone();
    value["details"] = vec![call; CALLS].into();
    serde_json::to_vec(&value).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_larger_than_the_memory_is_kept_on_disk_and_delivered_once() {
    let _alone = crate::ALONE.lock().await;
    let data = DataDir::new();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hooks");
    // Errors only: nobody reads the relay's stderr here, and a WARN for each failed try
    // would fill the pipe and block the relay.
    let env = [
        ("AIRUDDER_FORWARD_URL", url.as_str()),
        ("AIRUDDER_RETRY_FOR", "3d"),
        ("RUST_LOG", "error"),
    ];
    let mut relay = start_quiet(&data, &env).await;
    let pid = relay.child.id().unwrap();
    let body_len = big_task("sizing").len();

    // The service is down: every post is stored and answered 200.
    let posted = Instant::now();
    let mut at_quarter = 0;
    let relay_addr = relay.addr.clone();
    let mut next = 0;
    while next < POSTS {
        let batch: Vec<_> = (next..(next + SENDERS).min(POSTS))
            .map(|n| {
                let addr = relay_addr.clone();
                tokio::spawn(async move {
                    client()
                        .post(format!("http://{addr}/airudder/task"))
                        .header("content-type", "application/json")
                        .body(big_task(&format!("big-{n:04}")))
                        .send()
                        .await
                        .map(|answer| answer.status().as_u16())
                        .unwrap_or_else(|err| panic!("post {n}: {err:?}"))
                })
            })
            .collect();
        for (n, sent) in batch.into_iter().enumerate() {
            let status = sent.await.unwrap();
            assert_eq!(status, 200, "post {} answered {status}", next + n);
        }
        next += SENDERS;
        if next >= POSTS / 4 && at_quarter == 0 {
            at_quarter = memory(pid).0;
        }
    }
    let post_took = posted.elapsed();
    let (rss, peak) = memory(pid);
    let backlog = (POSTS * body_len) as u64;
    eprintln!(
        "{POSTS} posts of {body_len} bytes ({} MB) in {post_took:?}: RSS {} MB at a quarter, {} MB at the end, peak {} MB",
        backlog >> 20,
        at_quarter >> 20,
        rss >> 20,
        peak >> 20
    );
    assert!(
        peak < MEMORY_CAP,
        "peak RSS {} MB for a backlog of {} MB",
        peak >> 20,
        backlog >> 20
    );
    assert!(
        rss < at_quarter + (64 << 20),
        "RSS grew with the backlog: {} MB at a quarter, {} MB at the end",
        at_quarter >> 20,
        rss >> 20
    );

    // A restart with the backlog: ready within seconds, memory flat.
    relay.kill().await;
    let started = Instant::now();
    let mut relay = start_quiet(&data, &env).await;
    let pid = relay.child.id().unwrap();
    loop {
        let ready = client()
            .get(format!("http://{}/ready", relay.addr))
            .send()
            .await
            .map(|answer| answer.status().as_u16())
            .ok();
        if ready == Some(200) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not ready 20 s after the start: {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready_after = started.elapsed();
    // A few polls of the store while the service is still down.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, restart_peak) = memory(pid);
    eprintln!(
        "restart: ready after {ready_after:?}, peak RSS {} MB",
        restart_peak >> 20
    );
    // After a SIGKILL redb checks the file before it opens (its repair): seconds, in
    // bounded memory, for this backlog.
    assert!(ready_after < Duration::from_secs(15), "{ready_after:?}");
    assert!(restart_peak < MEMORY_CAP, "{} MB", restart_peak >> 20);

    // The service is back: each notification arrives exactly once.
    let drained = Instant::now();
    let service = Service::start(port).await;
    // Backoff has grown while the service was down; the relay's own schedule brings them all
    // within its longest wait (300 s) at most, far less here.
    let arrived = || service.received.lock().unwrap().len();
    while arrived() < POSTS {
        assert!(
            drained.elapsed() < Duration::from_secs(400),
            "{} of {POSTS} arrived",
            arrived()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain_took = drained.elapsed();
    // Anything sent twice would come right behind.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut times: HashMap<String, usize> = HashMap::new();
    for each in service.received.lock().unwrap().iter() {
        *times.entry(task_id(&each.body)).or_default() += 1;
    }
    let (_, drain_peak) = memory(pid);
    eprintln!(
        "drained {} in {drain_took:?}, peak RSS {} MB",
        arrived(),
        drain_peak >> 20
    );
    assert_eq!(times.len(), POSTS, "every notification arrives");
    assert!(
        times.values().all(|&n| n == 1),
        "each once: {:?}",
        times.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    assert!(drain_peak < MEMORY_CAP, "{} MB", drain_peak >> 20);
    assert!(relay.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_keep_their_count_due_time_and_history_across_a_sigkill() {
    let _alone = crate::ALONE.lock().await;
    let data = DataDir::new();
    let port = free_port();
    let service = Service::start(port).await;
    service
        .status
        .store(503, std::sync::atomic::Ordering::SeqCst);
    let url = format!("http://127.0.0.1:{port}/hooks");
    let env = [
        ("AIRUDDER_FORWARD_URL", url.as_str()),
        ("AIRUDDER_RETRY_FOR", "1h"),
    ];
    let mut relay = start(&data, &env).await;
    assert_eq!(relay.post(common::notification("kept-1")).await, 200);
    // Attempts 1 and 2 fail (1 s of backoff between them); the next waits 2 s.
    service.wait_for(2, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    relay.kill().await;
    let killed = std::time::SystemTime::now();

    // What the store kept of it.
    {
        let store = RedbStore::open(&data.0).unwrap();
        let pending = store.pending().await.unwrap();
        assert_eq!(pending.len(), 1);
        let record = &pending[0];
        assert_eq!(record.state, RecordState::Pending);
        assert_eq!(record.attempts, 2);
        assert_eq!(record.task_id.as_deref(), Some("kept-1"));
        let outcomes: Vec<_> = record
            .history
            .iter()
            .map(|attempt| (attempt.outcome, attempt.status))
            .collect();
        assert_eq!(
            outcomes,
            [
                (AttemptOutcome::Error, Some(503)),
                (AttemptOutcome::Error, Some(503))
            ]
        );
        assert!(
            record.due_at() > killed - Duration::from_secs(1),
            "due again after the kill: {:?}",
            record.due_at()
        );
    }

    // Back up, the service too: the third attempt comes at its due time, counted 3.
    service
        .status
        .store(200, std::sync::atomic::Ordering::SeqCst);
    let mut relay = start(&data, &env).await;
    service.wait_for(3, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let attempts: Vec<_> = service
        .received()
        .iter()
        .map(|each| each.header("airudder-attempt").to_owned())
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    assert!(relay.terminate().await.success());

    let store = RedbStore::open(&data.0).unwrap();
    assert!(store.pending().await.unwrap().is_empty());
    let handled = store
        .list(
            airudder_webhook::store::RecordQuery::new()
                .state(RecordState::Handled)
                .task_id("kept-1"),
        )
        .await
        .unwrap();
    assert_eq!(handled.len(), 1, "kept, handled, found by its task id");
    let record = store.get(handled.items[0].id).await.unwrap().unwrap();
    let last = record.history.last().unwrap();
    assert_eq!((last.outcome, last.status), (AttemptOutcome::Ok, Some(200)));
    assert_eq!(record.history.len(), 3);
}
