//! Crash test: the receiver example, SIGKILLed mid-stream three times, loses nothing it
//! acknowledged, and prints a notification sent twice at the same instant (and once more
//! later) only once.

use crate::support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airudder_webhook::store::{RedbStore, Store};

use crate::support::process::{DataDir, collect, collect_as, start_in, terminate, wait_printed};

const ROUNDS: usize = 3;
const CLIENTS: usize = 4;
/// Acknowledged notifications per round before the kill.
const ACKS_PER_ROUND: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_to_sigkill_and_duplicates_print_once() {
    let data = DataDir::new();
    let printed = Arc::new(Mutex::new(Vec::new()));
    let mut acked = HashSet::new();

    for round in 0..ROUNDS {
        let running = start_in("receiver", &data, &[("RUST_LOG", "warn")]).await;
        let url = format!("http://{}/airudder/task", running.addr);
        let (mut child, reader) = collect(running, Arc::clone(&printed));
        let count = Arc::new(AtomicUsize::new(0));
        let killed = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (url, count, killed) = (url.clone(), Arc::clone(&count), Arc::clone(&killed));
                tokio::spawn(async move {
                    let mut acked = Vec::new();
                    for i in 0.. {
                        if killed.load(Ordering::SeqCst) {
                            break;
                        }
                        let task = format!("crash-{round}-{client}-{i}");
                        match support::try_send(&url, support::example_with_task_id(&task)).await {
                            Ok(status) if status == 200 => {
                                acked.push(task);
                                count.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(status) => panic!("{task}: {status}"),
                            Err(_) => break, // the receiver is gone
                        }
                    }
                    acked
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        while count.load(Ordering::SeqCst) < ACKS_PER_ROUND {
            assert!(Instant::now() < deadline, "round {round}: too slow");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        child.start_kill().unwrap(); // SIGKILL, mid-stream
        child.wait().await.unwrap();
        killed.store(true, Ordering::SeqCst);
        for client in clients {
            acked.extend(client.await.unwrap());
        }
        reader.await.unwrap();
    }

    // The last start: everything acknowledged before a kill comes out.
    let running = start_in("receiver", &data, &[("RUST_LOG", "warn")]).await;
    let url = format!("http://{}/airudder/task", running.addr);
    let (mut child, reader) = collect(running, Arc::clone(&printed));
    let twice = support::example_with_task_id("sent-twice");
    let (a, b) = tokio::join!(
        support::try_send(&url, twice.clone()),
        support::try_send(&url, twice.clone())
    );
    assert_eq!((a.unwrap().as_u16(), b.unwrap().as_u16()), (200, 200));
    assert_eq!(support::try_send(&url, twice).await.unwrap(), 200);
    acked.insert("sent-twice".to_owned());

    wait_printed(&acked, &printed, Duration::from_secs(60)).await;
    let status = terminate(&mut child).await;
    let logs = reader.await.unwrap();
    assert!(status.success(), "exit {status}:\n{logs}");

    let printed = printed.lock().unwrap();
    let mut times: HashMap<&str, usize> = HashMap::new();
    for task in printed.iter() {
        *times.entry(task).or_default() += 1;
    }
    assert_eq!(
        times["sent-twice"], 1,
        "a duplicate delivery is printed once"
    );
    let redelivered: usize = times.values().map(|n| n - 1).sum();
    eprintln!(
        "{} acknowledged over {ROUNDS} kills and a restart; {} printed, {} of them redeliveries after a crash",
        acked.len(),
        printed.len(),
        redelivered
    );
    assert!(acked.len() >= ROUNDS * ACKS_PER_ROUND);
}

/// A SIGKILL counts an attempt only for the notifications that were running, never for those
/// claimed ahead of the workers: killed six times while its four workers run the oldest four
/// (a handler of 30 s), the receiver makes dead letters of those four at most (each started
/// and cut short more often than the policy allows), and hands every other notification of
/// the backlog to the handler once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_count_an_attempt_only_for_the_notifications_that_were_running() {
    const BACKLOG: usize = 80;
    const KILLS: usize = 6;
    /// `defaults::WORKERS`: the notifications that start at once.
    const RUNNING: usize = 4;
    let data = DataDir::new();
    let slow = [("RUST_LOG", "warn"), ("AIRUDDER_HANDLER_DELAY_MS", "30000")];
    let mut acked = Vec::new();
    for round in 0..KILLS {
        let running = start_in("receiver", &data, &slow).await;
        let url = format!("http://{}/airudder/task", running.addr);
        let (mut child, reader) = collect(running, Arc::new(Mutex::new(Vec::new())));
        if round == 0 {
            // One at a time: the first four start at once, the rest wait in the store.
            for i in 0..BACKLOG {
                let task = format!("ahead-{i:03}");
                let status = support::try_send(&url, support::example_with_task_id(&task))
                    .await
                    .unwrap();
                assert_eq!(status, 200, "{task}");
                acked.push(task);
            }
        }
        // Time for the start's claim: four begun, the rest of a page claimed ahead.
        tokio::time::sleep(Duration::from_secs(1)).await;
        child.start_kill().unwrap(); // SIGKILL
        child.wait().await.unwrap();
        let logs = reader.await.unwrap();
        assert!(!logs.contains("panicked"), "{logs}");
    }

    let printed = Arc::new(Mutex::new(Vec::new()));
    let running = start_in("receiver", &data, &[("RUST_LOG", "warn")]).await;
    let (mut child, reader) = collect(running, Arc::clone(&printed));
    let (first, rest) = acked.split_at(RUNNING);
    let rest: HashSet<String> = rest.iter().cloned().collect();
    let times = wait_printed(&rest, &printed, Duration::from_secs(60)).await;
    let status = terminate(&mut child).await;
    let logs = reader.await.unwrap();
    assert!(status.success(), "exit {status}:\n{logs}");
    assert!(
        rest.iter().all(|task| times[task] == 1),
        "each notification claimed ahead is handled once: {times:?}"
    );

    let store = RedbStore::open(&data.0).unwrap();
    let dead = store.dead_letters().await.unwrap();
    let dead_tasks: Vec<_> = dead.iter().filter_map(|r| r.task_id.clone()).collect();
    assert!(
        dead_tasks.iter().all(|task| first.contains(task)),
        "only the notifications running at the kills may become dead letters: {dead_tasks:?}"
    );
    for record in &dead {
        let error = record.last_error.as_deref().unwrap_or_default();
        assert!(error.contains("ended by a crash"), "{error}");
    }
    eprintln!(
        "{KILLS} SIGKILLs with {BACKLOG} notifications stored: {} printed, {} dead letters ({dead_tasks:?})",
        times.len(),
        dead.len()
    );
}

/// Ordered delivery survives a SIGKILL: 600 notifications over 5 tasks (a handler of 0 to 8 ms), posted to the
/// receiver example with `AIRUDDER_ORDERED`, killed halfway and started again. Each task's
/// notifications are printed in the order received (a notification cut short by the kill may
/// be printed again, never one before it), and every one acknowledged is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_delivery_keeps_each_tasks_order_across_a_sigkill() {
    const EVENTS: usize = 600;
    const TASKS: usize = 5;
    let data = DataDir::new();
    let env = [
        ("RUST_LOG", "warn"),
        ("AIRUDDER_ORDERED", "task_notification"),
        ("AIRUDDER_HANDLER_DELAY_MS", "0-8"),
    ];
    let printed = Arc::new(Mutex::new(Vec::new()));
    let what = |value: &serde_json::Value| {
        format!(
            "{} {}",
            value["task_id"].as_str().unwrap_or_default(),
            value["task_name"].as_str().unwrap_or_default()
        )
    };
    let mut acked = HashSet::new();
    for round in 0..2 {
        let running = start_in("receiver", &data, &env).await;
        let url = format!("http://{}/airudder/task", running.addr);
        let (mut child, reader) = collect_as(running, Arc::clone(&printed), what);
        // A client a task, each posting its task's notifications one after the other: the
        // order received is each client's.
        let per_round = EVENTS / TASKS / 2;
        let clients: Vec<_> = (0..TASKS)
            .map(|task| {
                let url = url.clone();
                tokio::spawn(async move {
                    let mut acked = Vec::new();
                    for n in round * per_round..(round + 1) * per_round {
                        let mut body = support::example_value();
                        body["task_id"] = serde_json::json!(format!("t{task}"));
                        body["task_name"] = serde_json::json!(format!("{n:04}"));
                        let status = support::try_send(&url, serde_json::to_vec(&body).unwrap())
                            .await
                            .unwrap();
                        assert_eq!(status, 200);
                        acked.push(format!("t{task} {n:04}"));
                    }
                    acked
                })
            })
            .collect();
        for client in clients {
            acked.extend(client.await.unwrap());
        }
        if round == 0 {
            child.start_kill().unwrap(); // SIGKILL, the first half partly handled
            child.wait().await.unwrap();
            reader.await.unwrap();
        } else {
            wait_printed(&acked, &printed, Duration::from_secs(60)).await;
            let status = terminate(&mut child).await;
            let logs = reader.await.unwrap();
            assert!(status.success(), "exit {status}:\n{logs}");
        }
    }
    let printed = printed.lock().unwrap();
    let mut last: HashMap<&str, &str> = HashMap::new();
    for line in printed.iter() {
        let (task, seq) = line.split_once(' ').unwrap();
        if let Some(before) = last.get(task) {
            assert!(seq >= *before, "task {task}: {seq} printed after {before}");
        }
        last.insert(task, seq);
    }
    eprintln!(
        "{EVENTS} ordered notifications over {TASKS} tasks, a SIGKILL halfway: {} printed",
        printed.len()
    );
}
