//! Two relays on one PostgreSQL share a backlog of 100,000 notifications; one is SIGKILLed
//! halfway through the drain. Every notification is delivered; only those the killed relay
//! had in flight may arrive twice, and the test counts them.

use crate::common;
use crate::postgres;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{DataDir, Service, client, free_port, notification, start_quiet, task_id};

const NOTIFICATIONS: usize = 100_000;
/// Posts at once, over keep-alive connections.
const SENDERS: usize = 32;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_drain_a_shared_backlog_and_a_killed_one_repeats_only_what_it_had_in_flight() {
    let _alone = crate::ALONE.lock().await;
    let cluster = tokio::task::block_in_place(postgres::Cluster::start);
    let url = cluster.url();
    let port = free_port();
    let target = format!("http://127.0.0.1:{port}/hooks");
    let env = [
        ("AIRUDDER_DATABASE_URL", url.as_str()),
        ("AIRUDDER_DATABASE_SCHEMA", "backlog"),
        ("AIRUDDER_LEASE_SECS", "3"),
        ("AIRUDDER_FORWARD_URL", target.as_str()),
        // Errors only: nobody reads the relays' stderr here.
        ("RUST_LOG", "error"),
    ];
    let (data_a, data_b) = (DataDir::new(), DataDir::new());
    let mut a = start_quiet(&data_a, &env).await;
    let mut b = start_quiet(&data_b, &env).await;

    // Paused while the backlog is posted: stored and answered 200, nothing tried yet.
    let paused = client()
        .post(format!(
            "http://{}/admin/kinds/task_notification/pause",
            a.admin
        ))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(paused.status(), 200, "{:?}", paused.text().await);
    // Relay B reads the pause from the store within a second.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let posted = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let next = Arc::clone(&next);
            let addr = if s % 2 == 0 {
                a.addr.clone()
            } else {
                b.addr.clone()
            };
            tokio::spawn(async move {
                let http = client();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= NOTIFICATIONS {
                        return;
                    }
                    let status = http
                        .post(format!("http://{addr}/airudder/task"))
                        .header("content-type", "application/json")
                        .body(notification(&format!("bl-{n:06}")))
                        .send()
                        .await
                        .map(|answer| answer.status().as_u16())
                        .unwrap_or(0);
                    assert_eq!(status, 200, "post {n}");
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    let post_took = posted.elapsed();

    // The service comes up and the kind resumes: both relays drain; A dies halfway.
    let service = Service::start(port).await;
    let drained = Instant::now();
    let resumed = client()
        .post(format!(
            "http://{}/admin/kinds/task_notification/resume",
            b.admin
        ))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    let arrived = || service.received.lock().unwrap().len();
    while arrived() < NOTIFICATIONS / 2 {
        assert!(
            drained.elapsed() < Duration::from_secs(300),
            "{} arrived before the kill",
            arrived()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.kill().await;
    let killed_at = arrived();
    // What was in flight at the kill, A's and B's: claimed, not done, the lease running (being
    // forwarded, or forwarded with the "done" mark not yet committed).
    let in_flight = held(&url);
    eprintln!("posted {NOTIFICATIONS} in {post_took:?}; A killed after {killed_at} arrived");
    // Each forward's webhook-id is its record's: one per notification, the same on a repeat.
    let count = || {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for each in service.received.lock().unwrap().iter() {
            *seen
                .entry(each.header("webhook-id").to_owned())
                .or_default() += 1;
        }
        seen
    };
    loop {
        if arrived() >= NOTIFICATIONS && count().len() == NOTIFICATIONS {
            break;
        }
        assert!(
            drained.elapsed() < Duration::from_secs(400),
            "{} of {NOTIFICATIONS} arrived",
            count().len()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let drain_took = drained.elapsed();
    // Anything sent again would come right behind.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = count();
    let tasks: std::collections::HashSet<String> = service
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|each| task_id(&each.body))
        .collect();
    assert_eq!(tasks.len(), NOTIFICATIONS, "every task posted arrives");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!(
        "{NOTIFICATIONS} posted to two relays in {post_took:?} ({:.0}/s); drained in {drain_took:?} ({:.0}/s); \
         A killed after {killed_at} arrived, {in_flight} held by the relays then; {} delivered twice",
        NOTIFICATIONS as f64 / post_took.as_secs_f64(),
        NOTIFICATIONS as f64 / drain_took.as_secs_f64(),
        twice.len()
    );
    assert_eq!(seen.len(), NOTIFICATIONS, "every notification arrives");
    assert!(
        twice.iter().all(|(_, n)| **n == 2),
        "none more than twice: {twice:?}"
    );
    assert!(
        twice.len() <= in_flight,
        "only what was in flight at the kill may come twice: {} of {in_flight}",
        twice.len()
    );
    assert!(b.terminate().await.success());
    drop(cluster);
}

/// How many notifications the relays hold now (claimed, not done, the lease running), read
/// with `psql`.
fn held(url: &str) -> usize {
    let out = std::process::Command::new("psql")
        .args([
            url,
            "-Atc",
            "SELECT count(*) FROM backlog.notifications \
             WHERE state = 0 AND claimed_by IS NOT NULL AND lease_until > now()",
        ])
        .output()
        .expect("psql (postgresql-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}
