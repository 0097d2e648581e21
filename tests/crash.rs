//! Crash test: the receiver example, SIGKILLed mid-stream three times, loses nothing it
//! acknowledged, and prints a notification sent twice at the same instant (and once more
//! later) only once.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::process::{DataDir, Running, start_in, terminate};

const ROUNDS: usize = 3;
const CLIENTS: usize = 4;
/// Acknowledged notifications per round before the kill.
const ACKS_PER_ROUND: usize = 100;

fn notification(task: &str) -> Vec<u8> {
    let mut body = support::example_value();
    body["task_id"] = json!(task);
    serde_json::to_vec(&body).unwrap()
}

/// Collects the task id of every line the receiver prints.
fn collect(
    mut running: Running,
    printed: Arc<Mutex<Vec<String>>>,
) -> (tokio::process::Child, tokio::task::JoinHandle<String>) {
    let mut stderr = running.stderr;
    let reader = tokio::spawn(async move {
        let logs = tokio::spawn(async move {
            let mut logs = String::new();
            while let Ok(Some(line)) = stderr.next_line().await {
                logs.push_str(&line);
                logs.push('\n');
            }
            logs
        });
        while let Ok(Some(line)) = running.stdout.next_line().await {
            // A line cut by the kill is not counted: its notification was not marked done and
            // comes again.
            if let Ok(value) = serde_json::from_str::<Value>(&line) {
                printed
                    .lock()
                    .unwrap()
                    .push(value["task_id"].as_str().unwrap_or_default().to_owned());
            }
        }
        logs.await.unwrap_or_default()
    });
    (running.child, reader)
}

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
                        match support::try_send(&url, notification(&task)).await {
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
    let twice = notification("sent-twice");
    let (a, b) = tokio::join!(
        support::try_send(&url, twice.clone()),
        support::try_send(&url, twice.clone())
    );
    assert_eq!((a.unwrap().as_u16(), b.unwrap().as_u16()), (200, 200));
    assert_eq!(support::try_send(&url, twice).await.unwrap(), 200);
    acked.insert("sent-twice".to_owned());

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen: HashSet<String> = printed.lock().unwrap().iter().cloned().collect();
        let missing: Vec<_> = acked.difference(&seen).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "acknowledged but never printed: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await; // a second print of "sent-twice" would show by now
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
