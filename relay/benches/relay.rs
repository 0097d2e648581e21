//! Notifications a second from the sender to the team's service through the relay (embedded
//! store, durable ack, forwarding), beside the relay's ingest alone (printing mode) and a
//! direct post to the service, all in the same run on loopback; and the time from the sender's
//! post to the service's receipt.
//!
//! The service runs on a thread and a runtime of its own, the load on another.
//!
//! Run with: cargo bench -p airudder-relay --bench relay
//! Under `cargo test --benches` it sends a few hundred notifications only.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../../tests/support/ports.rs"]
mod ports;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{DataDir, free_port, notification, start_quiet};

/// Posts `count` distinct notifications to `url` from `concurrency` keep-alive connections;
/// returns when each was posted (by task id) and the whole run's length.
async fn load(
    url: &str,
    count: usize,
    concurrency: usize,
    prefix: &str,
) -> (HashMap<String, Instant>, Duration) {
    let client = common::client();
    let posted = Arc::new(Mutex::new(HashMap::with_capacity(count)));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, posted, next) = (client.clone(), Arc::clone(&posted), Arc::clone(&next));
            let (url, prefix) = (url.to_owned(), prefix.to_owned());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= count {
                        return;
                    }
                    let task = format!("{prefix}-{i:08}");
                    let at = Instant::now();
                    let answer = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(notification(&task))
                        .send()
                        .await
                        .expect("an answer");
                    assert!(answer.status().is_success(), "{}", answer.status());
                    posted.lock().unwrap().insert(task, at);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed();
    let posted = Arc::try_unwrap(posted).unwrap().into_inner().unwrap();
    (posted, elapsed)
}

/// The CPU time the process `pid` has run so far, all its threads (`/proc/PID/task/*/schedstat`,
/// nanoseconds on a CPU): a figure of its own work, whatever else the machine runs.
fn cpu(pid: u32) -> Duration {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path().join("schedstat");
        if let Ok(stat) = std::fs::read_to_string(path) {
            total += stat
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(total)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let timed = std::env::args().any(|arg| arg == "--bench");
    let count = if timed { 20_000 } else { 300 };
    let concurrency = 64;
    // `-- --forward-concurrency=N` for the relay's AIRUDDER_FORWARD_CONCURRENCY (default 16).
    let forward_concurrency = std::env::args().find_map(|arg| {
        arg.strip_prefix("--forward-concurrency=")
            .map(str::to_owned)
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // The service is another system: it gets a thread and a runtime of its own, so that the
    // load does not wait for it, nor it for the load.
    let port = free_port();
    let (started, service) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let own = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        own.block_on(async move {
            started.send(common::Service::start(port).await).unwrap();
            std::future::pending::<()>().await;
        });
    });
    let service = service.recv().unwrap();
    runtime.block_on(async {
        let target = format!("http://127.0.0.1:{port}/hooks");

        // (a) the service alone.
        let (_, direct) = load(&target, count, concurrency, "direct").await;
        service.received.lock().unwrap().clear();

        // (b) the relay's durable ingest alone: printing mode, its stdout thrown away.
        let data_b = DataDir::new();
        let mut ingest = start_quiet(&data_b, &[]).await;
        let ingest_url = format!("http://{}/airudder/task", ingest.addr);
        let pid = ingest.child.id().unwrap();
        let before = cpu(pid);
        let (_, ingest_time) = load(&ingest_url, count, concurrency, "ingest").await;
        let ingest_cpu = cpu(pid) - before;
        assert!(ingest.terminate().await.success());

        // (c) through the relay to the service.
        let data_c = DataDir::new();
        let mut env = vec![("AIRUDDER_FORWARD_URL", target.as_str())];
        if let Some(n) = &forward_concurrency {
            env.push(("AIRUDDER_FORWARD_CONCURRENCY", n.as_str()));
        }
        let mut relay = start_quiet(&data_c, &env).await;
        let relay_url = format!("http://{}/airudder/task", relay.addr);
        let pid = relay.child.id().unwrap();
        let before = cpu(pid);
        let started = Instant::now();
        let (posted, _) = load(&relay_url, count, concurrency, "through").await;
        let received = service.wait_for(count, Duration::from_secs(600)).await;
        let through = started.elapsed();
        let through_cpu = cpu(pid) - before;
        assert!(relay.terminate().await.success());

        let mut latencies: Vec<Duration> = received
            .iter()
            .filter_map(|r| Some(r.at.saturating_duration_since(*posted.get(&common::task_id(&r.body))?)))
            .collect();
        latencies.sort_unstable();
        assert_eq!(received.len(), count);
        let rate = |elapsed: Duration| count as f64 / elapsed.as_secs_f64();
        println!(
            "\n{count} distinct notifications (the sender's example, 2.8 KB), {concurrency} keep-alive \
             connections, everything on one machine (the relay, the service and the load share its cores); \
             forward concurrency {}\n",
            forward_concurrency.as_deref().unwrap_or("16 (the default)")
        );
        println!("| path | notifications/s | ratio |");
        println!("| --- | --- | --- |");
        println!("| (a) sender to the service directly | {:.0} | |", rate(direct));
        println!("| (b) sender to the relay: durable ingest alone (printing) | {:.0} | |", rate(ingest_time));
        println!(
            "| (c) sender through the relay to the service's 2xx (durable, forwarding) | {:.0} | (c)/(b) = {:.2} (target >= 0.8) |",
            rate(through),
            through.as_secs_f64().recip() / ingest_time.as_secs_f64().recip()
        );
        let per = |cpu: Duration| cpu.as_secs_f64() * 1e6 / count as f64;
        println!(
            "\nthe relay's own CPU a notification: (b) {:.1} µs, (c) {:.1} µs ({:.2}x)",
            per(ingest_cpu),
            per(through_cpu),
            per(through_cpu) / per(ingest_cpu)
        );
        println!(
            "\ntime from the sender's post to the service's receipt through the relay: median {:.1} ms, p99 {:.1} ms",
            percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
            percentile(&latencies, 0.99).as_secs_f64() * 1000.0
        );
    });
}
