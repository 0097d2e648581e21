//! The relay as a team deploys it: a real process in front of a real service, on loopback.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use airudder_webhook::store::{RedbStore, Store};
use base64::Engine;
use common::{DataDir, Service, free_port, next_line, notification, start, task_id};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Checks a forward's signature as the service would, per Standard Webhooks.
fn signature_is_valid(received: &common::Received) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(received.header("webhook-id").as_bytes());
    mac.update(b".");
    mac.update(received.header("webhook-timestamp").as_bytes());
    mac.update(b".");
    mac.update(&received.body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    received
        .header("webhook-signature")
        .split(' ')
        .any(|candidate| candidate == format!("v1,{expected}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_down_at_first_gets_each_notification_once_later_signed_under_one_id() {
    let data = DataDir::new();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hooks/airudder");
    let mut relay = start(
        &data,
        &[
            ("AIRUDDER_FORWARD_URL", &url),
            ("AIRUDDER_FORWARD_SECRET", SECRET),
        ],
    )
    .await;
    let tasks: Vec<String> = (0..5).map(|i| format!("down-first-{i}")).collect();
    for task in &tasks {
        assert_eq!(
            relay.post(notification(task)).await,
            200,
            "answered at once"
        );
    }
    // The sender's retry of one of them, after a lost 200.
    assert_eq!(relay.post(notification(&tasks[0])).await, 200);

    // The service comes up after the relay's first tries failed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let service = Service::start(port).await;
    service.wait_for(tasks.len(), Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // a second copy would show by now
    let received = service.received();

    let mut ids: HashMap<String, HashSet<String>> = HashMap::new();
    for forward in &received {
        assert!(signature_is_valid(forward), "signed: {:?}", forward.headers);
        assert_eq!(forward.header("content-type"), "application/json");
        let task = task_id(&forward.body);
        assert_eq!(
            &forward.body[..],
            &notification(&task)[..],
            "the body as Airudder sent it"
        );
        ids.entry(task)
            .or_default()
            .insert(forward.header("webhook-id").to_owned());
    }
    assert_eq!(received.len(), tasks.len(), "each once, the duplicate too");
    for task in &tasks {
        assert_eq!(ids[task].len(), 1, "{task}: one webhook-id");
    }
    let status = relay.terminate().await;
    assert!(status.success(), "exit {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_forward_forwards_again_after_its_restart_under_the_same_id() {
    let data = DataDir::new();
    let port = free_port();
    let service = Service::start(port).await;
    // The service takes its time: the relay dies while the forward is in flight.
    service.delay_ms.store(10_000, Ordering::SeqCst);
    let url = format!("http://127.0.0.1:{port}/hooks");
    let env = [
        ("AIRUDDER_FORWARD_URL", url.as_str()),
        ("AIRUDDER_FORWARD_SECRET", SECRET),
    ];
    let mut relay = start(&data, &env).await;
    assert_eq!(relay.post(notification("killed-mid-forward")).await, 200);
    let first = service.wait_for(1, Duration::from_secs(10)).await;
    relay.kill().await;

    service.delay_ms.store(0, Ordering::SeqCst);
    let mut relay = start(&data, &env).await;
    let both = service.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(
        both[1].header("webhook-id"),
        first[0].header("webhook-id"),
        "the same id after the restart, so the service de-duplicates"
    );
    assert!(signature_is_valid(&both[1]));
    assert_eq!(task_id(&both[1].body), "killed-mid-forward");
    let status = relay.terminate().await;
    assert!(status.success(), "exit {status}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(service.received().len(), 2, "done once accepted");
}

/// Runs an operator command against the relay's admin API, with the admin token.
async fn operate(relay: &common::Relay, args: &[&str]) -> (bool, String, String) {
    let admin = format!("http://{}", relay.admin);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_airudder-relay"))
        .args(args)
        .args(["--admin", &admin])
        .env("AIRUDDER_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const ADMIN_TOKEN: &str = "admin-7Kq2-long-enough";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_refused_until_fixed_is_a_dead_letter_listed_live_and_replayed() {
    let data = DataDir::new();
    let port = free_port();
    let service = Service::start(port).await;
    service.status.store(500, Ordering::SeqCst);
    let url = format!("http://127.0.0.1:{port}/hooks");
    let mut relay = start(
        &data,
        &[
            ("AIRUDDER_FORWARD_URL", url.as_str()),
            ("AIRUDDER_RETRY_FOR", "3s"),
            ("AIRUDDER_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    )
    .await;
    assert_eq!(relay.post(notification("refused-until-fixed")).await, 200);
    // Tries at about 0, 1 and 2.5 s, and a last one at the 3 s deadline.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let tries = service.received();
    assert!((2..=4).contains(&tries.len()), "{} tries", tries.len());
    let attempts: Vec<&str> = tries.iter().map(|t| t.header("airudder-attempt")).collect();
    assert_eq!(attempts[..2], ["1", "2"]);
    assert!(
        tries
            .iter()
            .all(|t| t.header("webhook-signature").is_empty()),
        "no secret, no signature"
    );

    // The admin API asks for its token.
    let anonymous = common::client()
        .get(format!("http://{}/admin/dead-letters", relay.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let (ok, listed, _) = operate(&relay, &["dead-letters"]).await;
    assert!(ok && listed.contains("refused-until-fixed"), "{listed}");
    assert!(
        listed.contains("not forwarded within 3s") && listed.contains("the service answered 500"),
        "{listed}"
    );
    let (ok, json, _) = operate(&relay, &["dead-letters", "--json"]).await;
    assert!(ok);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let id = json[0]["id"].as_u64().expect("an id");
    let (ok, shown, _) = operate(&relay, &["show", &id.to_string()]).await;
    assert!(
        ok && shown.contains("\"task_id\": \"refused-until-fixed\""),
        "{shown}"
    );

    // Fixed: replayed while the relay runs, and delivered.
    service.status.store(200, Ordering::SeqCst);
    let (ok, said, _) = operate(&relay, &["replay", &id.to_string()]).await;
    assert!(ok && said.contains("pending again"), "{said}");
    let received = service
        .wait_for(tries.len() + 1, Duration::from_secs(10))
        .await;
    assert_eq!(
        task_id(&received.last().unwrap().body),
        "refused-until-fixed"
    );
    let (ok, listed, _) = operate(&relay, &["dead-letters"]).await;
    assert_eq!((ok, listed.trim()), (true, "No dead letters."));
    let (ok, _, err) = operate(&relay, &["show", "999"]).await;
    assert!(!ok && err.contains("no notification 999"), "{err}");

    let status = relay.terminate().await;
    assert!(status.success(), "exit {status}");
    let logs = relay.logs().await;
    assert!(
        logs.contains("stopped: 1 handled, 1 failed, 0 left unhandled"),
        "{logs}"
    );
    let store = RedbStore::open(&data.0).unwrap();
    assert!(store.dead_letters().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_back_before_the_deadline_gets_everything_and_leaves_no_dead_letter() {
    let data = DataDir::new();
    let port = free_port();
    let service = Service::start(port).await;
    service.status.store(503, Ordering::SeqCst);
    let url = format!("http://127.0.0.1:{port}/hooks");
    let relay = start(
        &data,
        &[
            ("AIRUDDER_FORWARD_URL", url.as_str()),
            ("AIRUDDER_RETRY_FOR", "4s"),
            ("AIRUDDER_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    )
    .await;
    let tasks: Vec<String> = (0..20).map(|i| format!("back-in-time-{i}")).collect();
    for task in &tasks {
        assert_eq!(relay.post(notification(task)).await, 200);
    }
    // Down for the first half of the retry time: the backoffs (up to 4 s by then) would reach
    // past the deadline, and are cut short to it instead of giving up early.
    tokio::time::sleep(Duration::from_secs(2)).await;
    service.status.store(200, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (handled, stats) = loop {
        let stats: serde_json::Value = common::client()
            .get(format!("http://{}/admin/stats", relay.admin))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .map(|bytes| serde_json::from_slice(&bytes).unwrap())
            .unwrap();
        let (handled, failed) = (stats["handled"].as_u64(), stats["failed"].as_u64());
        if handled.unwrap_or(0) + failed.unwrap_or(0) >= tasks.len() as u64
            || std::time::Instant::now() > deadline
        {
            break ((handled, failed), stats);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        handled,
        (Some(20), Some(0)),
        "every one forwarded, none given up"
    );
    let (ok, listed, _) = operate(&relay, &["dead-letters"]).await;
    assert_eq!((ok, listed.trim()), (true, "No dead letters."));
    let tries = service.received().len();
    let retried = service
        .received()
        .iter()
        .filter(|r| r.header("airudder-attempt") != "1")
        .count();
    assert!(
        retried >= tasks.len(),
        "each was tried again: {retried} retries"
    );
    // As relay/README.md says: each try is queued, and each failed one returned.
    assert_eq!(stats["queued"], tries, "{stats}");
    assert_eq!(stats["returned"], retried, "{stats}");
    assert_eq!(stats["pending"], 0, "{stats}");
}

#[tokio::test]
async fn with_nothing_set_it_prints_each_notification_as_a_json_line() {
    let data = DataDir::new();
    let mut relay = start(&data, &[]).await;
    assert_eq!(relay.post(notification("printed")).await, 200);
    let line = next_line(relay.stdout.as_mut().unwrap())
        .await
        .expect("one line");
    let printed: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(printed["task_id"], "printed");
    for probe in ["health", "ready"] {
        let answer = common::client()
            .get(format!("http://{}/{probe}", relay.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "/{probe}");
    }
    let status = relay.terminate().await;
    assert!(status.success());
    assert_eq!(
        next_line(relay.stdout.as_mut().unwrap()).await,
        None,
        "nothing else on stdout"
    );
    assert!(relay.logs().await.contains("stopped: 1 handled"));
}

#[tokio::test]
async fn a_bad_setting_stops_the_start_naming_its_key() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_airudder-relay"))
        .env("AIRUDDER_FORWARD_URL", "http://127.0.0.1:9/x")
        .env("AIRUDDER_RETRY_FOR", "three days")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("AIRUDDER_RETRY_FOR: \"three days\" is not a duration"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_refused_body_is_listed_shown_and_replayed_only_once_valid() {
    let data = DataDir::new();
    let relay = start(&data, &[("AIRUDDER_ADMIN_TOKEN", ADMIN_TOKEN)]).await;
    let (ok, listed, _) = operate(&relay, &["rejected"]).await;
    assert_eq!((ok, listed.trim()), (true, "No refused bodies."));
    // Valid JSON, not a notification: 422, and the raw bytes kept.
    assert_eq!(relay.post(br#"{"task_id": 5}"#.to_vec()).await, 422);
    let mut id = None;
    for _ in 0..100 {
        let (_, json, _) = operate(&relay, &["rejected", "--json"]).await;
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        if let Some(found) = json[0]["id"].as_u64() {
            id = Some(found);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let id = id.expect("the refused body is kept").to_string();
    let (ok, shown, _) = operate(&relay, &["show-rejected", &id]).await;
    assert!(
        ok && shown.contains("\"task_id\": 5") && shown.contains("422"),
        "{shown}"
    );
    let (ok, _, err) = operate(&relay, &["replay-rejected", &id]).await;
    assert!(
        !ok && err.contains("still not a valid notification"),
        "{err}"
    );
}
