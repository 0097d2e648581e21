//! A retry that ends on time, as real processes: a notification becomes a dead letter only
//! after a try at or past `AIRUDDER_RETRY_FOR`, the last wait cut short to it, never while
//! time is left.

use crate::common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{DataDir, Relay, Service, free_port, notification, start_quiet};
use serde_json::Value;

const ADMIN_TOKEN: &str = "on-time-admin-token-0123456";
const RETRY_FOR: Duration = Duration::from_secs(20);
const COUNT: usize = 20;

async fn relay(data: &DataDir, port: u16) -> Relay {
    let url = format!("http://127.0.0.1:{port}/hooks");
    start_quiet(
        data,
        &[
            ("AIRUDDER_FORWARD_URL", url.as_str()),
            ("AIRUDDER_RETRY_FOR", "20s"),
            ("AIRUDDER_ADMIN_TOKEN", ADMIN_TOKEN),
            // A warning a failed try: they would fill the pipe nobody reads.
            ("RUST_LOG", "off"),
        ],
    )
    .await
}

/// The dead letters, as the admin API lists them.
async fn dead(relay: &Relay) -> Vec<Value> {
    let page = relay
        .admin_api(Some(ADMIN_TOKEN))
        .ok("/admin/notifications?state=dead&limit=1000")
        .await;
    page["items"].as_array().unwrap().clone()
}

fn millis(at: &Value) -> i64 {
    let at = humantime::parse_rfc3339(at.as_str().unwrap()).unwrap();
    at.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_down_for_the_first_half_of_the_retry_time_leaves_no_dead_letter() {
    let data = DataDir::new();
    let port = free_port();
    let service = Service::start(port).await;
    service.status.store(503, Ordering::SeqCst);
    let relay = relay(&data, port).await;
    let posted = Instant::now();
    let bodies = (0..COUNT)
        .map(|i| notification(&format!("half-{i:02}")))
        .collect();
    relay.post_all(bodies, 4).await;
    tokio::time::sleep_until((posted + RETRY_FOR / 2).into()).await;
    service.status.store(200, Ordering::SeqCst);
    service
        .wait_for_delivered(COUNT, RETRY_FOR + Duration::from_secs(5))
        .await;
    // Past the deadline: none given up on, each delivered once.
    tokio::time::sleep_until((posted + RETRY_FOR + Duration::from_secs(3)).into()).await;
    assert_eq!(dead(&relay).await.len(), 0, "no dead letter");
    let deliveries = service.deliveries();
    assert_eq!(deliveries.len(), COUNT);
    assert!(
        deliveries.values().all(|&n| n == 1),
        "each once: {deliveries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_down_throughout_gives_dead_letters_only_after_a_try_at_the_deadline() {
    let data = DataDir::new();
    let port = free_port();
    let service = Service::start(port).await;
    service.status.store(503, Ordering::SeqCst);
    let relay = relay(&data, port).await;
    let first_post = SystemTime::now();
    let bodies = (0..COUNT)
        .map(|i| notification(&format!("throughout-{i:02}")))
        .collect();
    relay.post_all(bodies, 4).await;
    // Watched every 200 ms: none dead before its deadline, all dead soon after.
    let watch_until = Instant::now() + RETRY_FOR + Duration::from_secs(15);
    let mut first_dead = None;
    loop {
        let dead = dead(&relay).await;
        if !dead.is_empty() && first_dead.is_none() {
            first_dead = Some(SystemTime::now());
        }
        if dead.len() == COUNT {
            break;
        }
        assert!(
            Instant::now() < watch_until,
            "{} of {COUNT} dead letters",
            dead.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first_dead = first_dead.unwrap().duration_since(first_post).unwrap();
    assert!(
        first_dead >= RETRY_FOR,
        "the first dead letter after {first_dead:?}"
    );
    let admin = relay.admin_api(Some(ADMIN_TOKEN));
    for item in dead(&relay).await {
        let shown = admin
            .ok(&format!("/admin/notifications/{}", item["id"]))
            .await;
        let received = millis(&shown["received_at"]);
        let attempts = shown["attempts"].as_array().unwrap();
        let last = millis(&attempts.last().unwrap()["at"]);
        let before_last = millis(&attempts[attempts.len() - 2]["at"]);
        let deadline = received + RETRY_FOR.as_millis() as i64;
        assert!(
            last >= deadline,
            "the last try at or past the deadline: {shown}"
        );
        assert!(
            before_last < deadline,
            "and the one before it within the time: {shown}"
        );
        assert!(
            last - deadline < 5_000,
            "the last wait was cut to the deadline: {shown}"
        );
        assert!(attempts.iter().all(|a| a["status"] == 503), "{shown}");
    }
}
