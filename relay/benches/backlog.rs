//! The relay's memory against its backlog, and how fast a backlog drains (issue 23), as an
//! operator would see them: the relay as a process with the embedded store, its kind paused
//! while Airudder posts (every post stored and answered 200, nothing forwarded), then SIGKILLed
//! and started again on the backlog, then resumed towards a team's service on loopback.
//!
//! - Big tasks (1,000 calls, about 1.6 MB each) up to a backlog of 10 MB, 100 MB and 1 GB: the
//!   relay's resident memory after the posts, its peak, its start on the backlog and its drain.
//! - 100,000 small notifications (the sender's example, 2.8 KB): the drain rate.
//!
//! Run with: cargo bench -p airudder-relay --bench backlog
//! Under `cargo test --benches` it posts a 2 MB backlog and 300 small notifications only.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../../tests/support/ports.rs"]
mod ports;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{DataDir, Relay, Service, client, free_port, notification, start_quiet};

const KIND: &str = "task_notification";

/// A task of `calls` calls with its own task id.
fn task(id: &str, calls: usize) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(common::EXAMPLE).unwrap();
    value["task_id"] = id.into();
    let call = value["details"][0].clone();
    value["details"] = vec![call; calls].into();
    serde_json::to_vec(&value).unwrap()
}

/// The relay's resident memory now and at its peak, in MB.
fn memory(relay: &Relay) -> (u64, u64) {
    let (now, peak) = common::memory(relay.child.id().expect("the relay runs"));
    (now >> 20, peak >> 20)
}

async fn kind_action(relay: &Relay, action: &str) {
    let answer = client()
        .post(format!(
            "http://{}/admin/kinds/{KIND}/{action}",
            relay.admin
        ))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{action}: {:?}", answer.text().await);
}

/// Posts `count` bodies made by `body` from `senders` connections; each must be answered 200.
async fn post_all(
    relay: &Relay,
    count: usize,
    senders: usize,
    body: impl Fn(usize) -> Vec<u8> + Send + Sync + 'static,
) -> Duration {
    let url = format!("http://{}/airudder/task", relay.addr);
    let (next, body) = (Arc::new(AtomicUsize::new(0)), Arc::new(body));
    let started = Instant::now();
    let tasks: Vec<_> = (0..senders)
        .map(|_| {
            let (url, next, body) = (url.clone(), Arc::clone(&next), Arc::clone(&body));
            tokio::spawn(async move {
                let http = client();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        return;
                    }
                    let status = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body(n))
                        .send()
                        .await
                        .map_or(0, |answer| answer.status().as_u16());
                    assert_eq!(status, 200, "post {n}");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

/// Waits until the service has `count` notifications; how long that took from `since`.
async fn drained(service: &Service, count: usize, since: Instant) -> Duration {
    let arrived = service.wait_for(count, Duration::from_secs(1_800)).await;
    assert_eq!(arrived.len(), count, "each once");
    since.elapsed()
}

fn relay_env(target: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AIRUDDER_FORWARD_URL", target.to_owned()),
        // Nobody reads the relay's stderr here.
        ("RUST_LOG", "error".to_owned()),
    ]
}

async fn start(data: &DataDir, env: &[(&'static str, String)]) -> Relay {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    start_quiet(data, &env).await
}

/// One backlog of big tasks: its row of the table.
async fn big_backlog(megabytes: usize, calls: usize) {
    let port = free_port();
    let target = format!("http://127.0.0.1:{port}/hooks");
    let env = relay_env(&target);
    let data = DataDir::new();
    let mut relay = start(&data, &env).await;
    kind_action(&relay, "pause").await;
    let body_len = task("sizing", calls).len();
    let count = (megabytes << 20).div_ceil(body_len);
    let (idle, _) = memory(&relay);
    let posting = post_all(&relay, count, 4, move |n| {
        task(&format!("big-{n:06}"), calls)
    })
    .await;
    let (after_posts, peak_posting) = memory(&relay);

    // SIGKILL, and a start on the backlog.
    relay.kill().await;
    let restarting = Instant::now();
    let relay = start(&data, &env).await;
    let ready = restarting.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (after_start, _) = memory(&relay);

    let service = Service::start(port).await;
    let since = Instant::now();
    kind_action(&relay, "resume").await;
    let took = drained(&service, count, since).await;
    let (_, peak_drain) = memory(&relay);
    let stored_mb = (count * body_len) >> 20;
    println!(
        "| {stored_mb} MB ({count} x {:.2} MB) | {idle} MB | {after_posts} MB (peak {peak_posting} MB) | {:.0} MB/s | {:.2} s, {after_start} MB | {:.0} MB/s, {:.0}/s, peak {peak_drain} MB |",
        body_len as f64 / f64::from(1 << 20),
        stored_mb as f64 / posting.as_secs_f64(),
        ready.as_secs_f64(),
        stored_mb as f64 / took.as_secs_f64(),
        count as f64 / took.as_secs_f64(),
    );
}

/// A backlog of `count` small notifications: the drain rate.
async fn small_backlog(count: usize) {
    let port = free_port();
    let target = format!("http://127.0.0.1:{port}/hooks");
    let env = relay_env(&target);
    let data = DataDir::new();
    let relay = start(&data, &env).await;
    kind_action(&relay, "pause").await;
    let posting = post_all(&relay, count, 32, |n| notification(&format!("s-{n:06}"))).await;
    let (after_posts, _) = memory(&relay);
    let service = Service::start(port).await;
    let since = Instant::now();
    kind_action(&relay, "resume").await;
    let took = drained(&service, count, since).await;
    let (rss, peak) = memory(&relay);
    println!(
        "\n{count} small notifications (2.8 KB) posted at {:.0}/s while paused (RSS {after_posts} MB); \
         drained at {:.0}/s once resumed (RSS {rss} MB, peak {peak} MB)",
        count as f64 / posting.as_secs_f64(),
        count as f64 / took.as_secs_f64(),
    );
}

fn main() {
    let timed = std::env::args().any(|arg| arg == "--bench");
    let (sizes, small): (&[usize], usize) = if timed {
        (&[10, 100, 1024], 100_000)
    } else {
        (&[2], 300)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!(
            "\nThe relay (embedded store, defaults), its kind paused while 4 senders post tasks of \
             1,000 calls; SIGKILLed and started again on the backlog; then resumed towards a \
             service on loopback. Memory is the relay's resident set (VmRSS, VmHWM).\n"
        );
        println!(
            "| backlog | RSS idle | RSS after the posts | posted | start on the backlog: ready, RSS | drained |"
        );
        println!("| --- | --- | --- | --- | --- | --- |");
        for &megabytes in sizes {
            big_backlog(megabytes, 1_000).await;
        }
        small_backlog(small).await;
    });
}
