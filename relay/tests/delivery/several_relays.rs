//! Several relays on one PostgreSQL: one de-duplication window and one queue, and a relay
//! killed mid-forward leaves its notifications to the others after the lease.

use crate::common;
use crate::postgres;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{DataDir, Service, free_port, notification, start, task_id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_share_the_work_and_a_killed_one_leaves_its_notifications_to_the_other() {
    let cluster = tokio::task::block_in_place(postgres::Cluster::start);
    let url = cluster.url();
    let port = free_port();
    let service = Service::start(port).await;
    // Forwards take a second: relay A dies with its forwards in flight.
    service.delay_ms.store(1000, Ordering::SeqCst);
    let target = format!("http://127.0.0.1:{port}/hooks");
    let env = [
        ("AIRUDDER_DATABASE_URL", url.as_str()),
        ("AIRUDDER_DATABASE_SCHEMA", "relays"),
        ("AIRUDDER_LEASE_SECS", "2"),
        ("AIRUDDER_FORWARD_URL", target.as_str()),
    ];
    let (data_a, data_b) = (DataDir::new(), DataDir::new());
    let mut a = start(&data_a, &env).await;
    let mut b = start(&data_b, &env).await;

    let tasks: Vec<String> = (0..16).map(|i| format!("shared-{i}")).collect();
    for (i, task) in tasks.iter().enumerate() {
        let relay = if i % 2 == 0 { &a } else { &b };
        assert_eq!(relay.post(notification(task)).await, 200);
    }
    // The sender's retry of one of A's lands on B: a duplicate across relays.
    assert_eq!(b.post(notification(&tasks[0])).await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.kill().await;

    // Every notification arrives: B takes A's over once their claims lapse.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let seen: HashSet<String> = service
            .received()
            .iter()
            .map(|r| task_id(&r.body))
            .collect();
        if seen.len() == tasks.len() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {} arrived",
            seen.len(),
            tasks.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut ids: HashMap<String, HashSet<String>> = HashMap::new();
    for forward in service.received() {
        ids.entry(task_id(&forward.body))
            .or_default()
            .insert(forward.header("webhook-id").to_owned());
    }
    assert_eq!(ids.len(), tasks.len(), "no task but the ones posted");
    for (task, task_ids) in &ids {
        assert_eq!(task_ids.len(), 1, "{task}: every copy under one webhook-id");
    }
    let status = b.terminate().await;
    assert!(status.success(), "exit {status}");
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_through_one_relay_holds_for_every_relay_on_the_database() {
    const ADMIN_TOKEN: &str = "postgres-admin-token-012345";
    let cluster = tokio::task::block_in_place(postgres::Cluster::start);
    let url = cluster.url();
    let port = free_port();
    let service = Service::start(port).await;
    let target = format!("http://127.0.0.1:{port}/hooks");
    let env = [
        ("AIRUDDER_DATABASE_URL", url.as_str()),
        ("AIRUDDER_DATABASE_SCHEMA", "paused"),
        ("AIRUDDER_FORWARD_URL", target.as_str()),
        ("AIRUDDER_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    let (data_a, data_b) = (DataDir::new(), DataDir::new());
    let a = start(&data_a, &env).await;
    let b = start(&data_b, &env).await;
    let (ok, said, err) =
        common::operate(&a, Some(ADMIN_TOKEN), &["pause", "task_notification"]).await;
    assert!(ok && said.contains("paused"), "{err}");
    // B rereads the paused kinds every second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let tasks: Vec<String> = (0..10).map(|i| format!("paused-shared-{i}")).collect();
    for (i, task) in tasks.iter().enumerate() {
        let relay = if i % 2 == 0 { &a } else { &b };
        assert_eq!(relay.post(notification(task)).await, 200);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        service.received().len(),
        0,
        "neither relay forwards while paused"
    );
    let kinds = b.admin_api(Some(ADMIN_TOKEN)).ok("/admin/kinds").await;
    let task = kinds["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "task_notification")
        .cloned()
        .unwrap();
    assert_eq!(
        (&task["paused"], &task["pending"]),
        (&true.into(), &10.into()),
        "{kinds}"
    );

    let (ok, _, err) =
        common::operate(&b, Some(ADMIN_TOKEN), &["resume", "task_notification"]).await;
    assert!(ok, "{err}");
    service
        .wait_for_delivered(tasks.len(), Duration::from_secs(20))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let deliveries = service.deliveries();
    assert_eq!(deliveries.len(), tasks.len());
    assert!(
        deliveries.values().all(|&n| n == 1),
        "each once: {deliveries:?}"
    );
    drop((a, b));
    drop(cluster);
}
