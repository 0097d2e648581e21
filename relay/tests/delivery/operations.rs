//! The operator's controls, as real processes: the admin API's lists, filters and actions, and
//! the CLI on top (find, show, pause, resume, kinds, replay-dead, retry-now, purge-dead).

use crate::common;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use common::{DataDir, Relay, Service, free_port, notification, operate, start, start_quiet};
use serde_json::Value;

const ADMIN_TOKEN: &str = "operations-admin-token-0123";

/// The relay forwarding to `port`, trying each notification for `retry_for`.
async fn relay(data: &DataDir, port: u16, retry_for: &str) -> Relay {
    let url = format!("http://127.0.0.1:{port}/hooks");
    start(
        data,
        &[
            ("AIRUDDER_FORWARD_URL", url.as_str()),
            ("AIRUDDER_RETRY_FOR", retry_for),
            ("AIRUDDER_ADMIN_TOKEN", ADMIN_TOKEN),
            ("AIRUDDER_METRICS_INTERVAL", "100ms"),
        ],
    )
    .await
}

/// The CLI with the admin token; panics unless it succeeds; its stdout.
async fn cli(relay: &Relay, args: &[&str]) -> String {
    let (ok, stdout, stderr) = operate(relay, Some(ADMIN_TOKEN), args).await;
    assert!(ok, "{args:?}: {stderr}");
    stdout
}

/// How many of the relay's notifications of the task kind are pending and dead.
async fn counts(relay: &Relay) -> (u64, u64) {
    let kinds = relay.admin_api(Some(ADMIN_TOKEN)).ok("/admin/kinds").await;
    let task = kinds["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|kind| kind["kind"] == "task_notification")
        .cloned()
        .expect("the task kind is listed");
    (
        task["pending"].as_u64().unwrap(),
        task["dead"].as_u64().unwrap(),
    )
}

/// Waits until the relay holds `dead` dead letters.
async fn dead_letters(relay: &Relay, dead: u64, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let (_, now) = counts(relay).await;
        if now == dead {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{now} of {dead} dead letters within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_found_by_its_id_and_shown_with_every_attempt_and_what_the_service_said() {
    let data = DataDir::new();
    let port = free_port();
    let service = Service::start(port).await;
    service.status.store(500, Ordering::SeqCst);
    let relay = relay(&data, port, "1h").await;
    let admin = relay.admin_api(Some(ADMIN_TOKEN));
    for task in ["find-me", "other-1", "other-2"] {
        assert_eq!(relay.post(notification(task)).await, 200);
    }
    // Two refused tries of each (at 0 and 1 s), then the service takes them.
    service.wait_for(6, Duration::from_secs(15)).await;
    service.status.store(200, Ordering::SeqCst);
    service.wait_for_delivered(3, Duration::from_secs(15)).await;

    let found = admin
        .until(
            "/admin/notifications?task_id=find-me",
            Duration::from_secs(5),
            |found| found["items"][0]["state"] == "handled",
        )
        .await;
    let items = found["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{found}");
    assert_eq!(found["next_after"], Value::Null);
    let item = &items[0];
    let fields: HashSet<&str> = item
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        HashSet::from([
            "id",
            "kind",
            "state",
            "task_id",
            "received_at",
            "attempts",
            "last_error"
        ])
    );
    assert_eq!(
        (&item["kind"], &item["task_id"]),
        (&Value::from("task_notification"), &Value::from("find-me"))
    );
    assert!(item["attempts"].as_u64().unwrap() >= 2, "{item}");
    assert!(
        item["received_at"].as_str().unwrap().ends_with('Z'),
        "{item}"
    );
    let id = item["id"].as_u64().unwrap();

    // One record, with its attempts, oldest first: what the service answered each.
    let shown = admin.ok(&format!("/admin/notifications/{id}")).await;
    let attempts = shown["attempts"].as_array().expect("the history");
    assert!(attempts.len() >= 2, "{shown}");
    let first = &attempts[0];
    assert_eq!(
        (&first["outcome"], &first["status"]),
        (&Value::from("error"), &Value::from(500))
    );
    assert!(
        first["error"]
            .as_str()
            .unwrap()
            .contains("the service answered 500"),
        "{first}"
    );
    assert!(first["at"].as_str().unwrap().ends_with('Z') && first["duration_ms"].is_u64());
    let last = attempts.last().unwrap();
    assert_eq!(
        (&last["outcome"], &last["status"]),
        (&Value::from("ok"), &Value::from(200))
    );
    assert_eq!(shown["body"]["task_id"], "find-me");

    // The CLI on top.
    let listed = cli(&relay, &["find", "--task-id", "find-me"]).await;
    assert!(
        listed.contains("find-me") && listed.contains("handled"),
        "{listed}"
    );
    assert!(!listed.contains("other-1"), "{listed}");
    let listed = cli(
        &relay,
        &["find", "--state", "handled", "--since", "1h", "--json"],
    )
    .await;
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
    let none = cli(&relay, &["find", "--state", "dead"]).await;
    assert_eq!(none.trim(), "No notification matches.");
    let shown = cli(&relay, &["show", &id.to_string()]).await;
    assert!(
        shown.contains("attempts:")
            && shown.contains("the service answered 500")
            && shown.contains("\"task_id\": \"find-me\""),
        "{shown}"
    );

    // Pages: one at a time, each record once, in id order.
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = admin
            .ok(&format!("/admin/notifications?limit=1&after={after}"))
            .await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_u64().unwrap()),
        );
        match page["next_after"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(seen.len(), 3);
    assert!(seen.windows(2).all(|pair| pair[0] < pair[1]), "{seen:?}");
    let kinds = cli(&relay, &["kinds"]).await;
    assert!(
        kinds.contains("task_notification") && kinds.contains("PAUSED"),
        "{kinds}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_a_400_that_says_what_is_accepted() {
    let data = DataDir::new();
    let port = free_port();
    let _service = Service::start(port).await;
    let relay = relay(&data, port, "1h").await;
    let admin = relay.admin_api(Some(ADMIN_TOKEN));
    for (path, says) in [
        (
            "/admin/notifications?state=gone",
            "use pending, dead or handled",
        ),
        (
            "/admin/notifications?since=yesterday",
            "is not an RFC 3339 time",
        ),
        (
            "/admin/notifications?until=2026-13-01",
            "is not an RFC 3339 time",
        ),
        ("/admin/notifications?task=t1", "unknown parameter \"task\""),
        ("/admin/notifications?limit=ten", "is not a whole number"),
        ("/admin/notifications?after=-1", "is not a whole number"),
        ("/admin/pending?state=dead", "unknown parameter \"state\""),
    ] {
        let (status, answer) = admin.get(path).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(says),
            "{path}: {answer}"
        );
    }
    for (path, says) in [
        ("/admin/dead-letters/purge", "before= is required"),
        (
            "/admin/dead-letters/purge?before=soon",
            "is not an RFC 3339 time",
        ),
        (
            "/admin/dead-letters/purge?before=2026-12-01&kind=x",
            "unknown parameter",
        ),
        (
            "/admin/dead-letters/replay?state=pending",
            "dead notifications only",
        ),
        ("/admin/dead-letters/replay?task=x", "unknown parameter"),
        (
            "/admin/notifications/retry-now?state=dead",
            "pending notifications only",
        ),
        (
            "/admin/notifications/retry-now?since=now",
            "is not an RFC 3339 time",
        ),
    ] {
        let (status, answer) = admin.post(path).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(says),
            "{path}: {answer}"
        );
    }
    let (status, answer) = admin.get("/admin/notifications/999999").await;
    assert_eq!(status, 404, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("no notification 999999")
    );
    let (status, answer) = admin.post("/admin/kinds/no_such_kind/pause").await;
    assert_eq!(status, 404, "{answer}");
    // Every change keeps the browser guard, and the token.
    let refused = common::client()
        .post(format!(
            "http://{}/admin/kinds/task_notification/pause",
            relay.admin
        ))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 415);
    let (status, _) = relay
        .admin_api(None)
        .post("/admin/dead-letters/replay")
        .await;
    assert_eq!(status, 401);
    // Without a token, and with a wrong one: both 401, each told what is wrong.
    let (missing, missing_answer) = relay.admin_api(None).get("/admin/stats").await;
    let (wrong, wrong_answer) = relay
        .admin_api(Some("not-the-admin-token-0123"))
        .get("/admin/stats")
        .await;
    assert_eq!((missing, wrong), (401, 401));
    let (missing_answer, wrong_answer) = (
        missing_answer["error"].as_str().unwrap(),
        wrong_answer["error"].as_str().unwrap(),
    );
    assert!(
        missing_answer.contains("needs its token")
            && missing_answer.contains("send Authorization: Bearer <AIRUDDER_ADMIN_TOKEN>"),
        "{missing_answer}"
    );
    assert!(
        wrong_answer.contains("the token sent is not this relay's")
            && !wrong_answer.contains("not-the-admin-token"),
        "{wrong_answer}"
    );
    // The CLI says it before asking.
    let (ok, _, err) = operate(&relay, Some(ADMIN_TOKEN), &["find", "--since", "last week"]).await;
    assert!(
        !ok && err.contains("--since") && err.contains("RFC 3339"),
        "{err}"
    );
    let (_, paused) = admin.get("/admin/kinds").await;
    assert!(
        paused["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["paused"] == false),
        "nothing paused by the refused calls: {paused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_kind_is_stored_across_a_restart_and_each_delivered_once_after_resume() {
    let data = DataDir::new();
    let port = free_port();
    let service = Service::start(port).await;
    let mut relay = relay(&data, port, "1h").await;
    let said = cli(&relay, &["pause", "task_notification"]).await;
    assert!(said.contains("task_notification is paused"), "{said}");
    let kinds = relay.admin_api(Some(ADMIN_TOKEN)).ok("/admin/kinds").await;
    assert!(
        kinds["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kind"] == "task_notification" && k["paused"] == true),
        "{kinds}"
    );
    let tasks: Vec<String> = (0..20).map(|i| format!("paused-{i:02}")).collect();
    relay
        .post_all(tasks.iter().map(|t| notification(t)).collect(), 4)
        .await;
    // Still ready, and the gauge says it.
    let ready = common::client()
        .get(format!("http://{}/ready", relay.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "ready while paused");
    let metrics = common::client()
        .get(format!("http://{}/metrics", relay.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("airudder_kind_paused{kind=\"task_notification\"} 1"),
        "{metrics}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        service.received().len(),
        0,
        "nothing forwarded while paused"
    );

    // A restart: still paused.
    assert!(relay.terminate().await.success());
    let relay = self::relay(&data, port, "1h").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        service.received().len(),
        0,
        "still paused after the restart"
    );
    assert_eq!(counts(&relay).await, (20, 0));
    let kinds = cli(&relay, &["kinds"]).await;
    assert!(kinds.contains("paused"), "{kinds}");

    let said = cli(&relay, &["resume", "task_notification"]).await;
    assert!(said.contains("forwarded again"), "{said}");
    service
        .wait_for_delivered(20, Duration::from_secs(20))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await; // a second copy would show by now
    let deliveries = service.deliveries();
    assert_eq!(deliveries.len(), 20);
    assert!(
        deliveries.values().all(|&n| n == 1),
        "each once: {deliveries:?}"
    );
    assert_eq!(service.received().len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_dead_letters_are_replayed_at_once_and_each_arrives_once() {
    const COUNT: usize = 1000;
    let data = DataDir::new();
    let port = free_port();
    let service = Service::start(port).await;
    service.status.store(500, Ordering::SeqCst);
    let url = format!("http://127.0.0.1:{port}/hooks");
    let relay = start_quiet(
        &data,
        &[
            ("AIRUDDER_FORWARD_URL", url.as_str()),
            ("AIRUDDER_RETRY_FOR", "1s"),
            ("AIRUDDER_ADMIN_TOKEN", ADMIN_TOKEN),
            // A warning a failed try: thousands would fill the pipe nobody reads.
            ("RUST_LOG", "off"),
        ],
    )
    .await;
    let bodies = (0..COUNT)
        .map(|i| notification(&format!("bulk-{i:04}")))
        .collect();
    relay.post_all(bodies, 16).await;
    dead_letters(&relay, COUNT as u64, Duration::from_secs(120)).await;

    // No terminal to ask on, and no --yes: refused, nothing replayed.
    let (ok, _, err) = operate(&relay, Some(ADMIN_TOKEN), &["replay-dead"]).await;
    assert!(
        !ok && err.contains("Replay 1000 dead letters?") && err.contains("--yes"),
        "{err}"
    );
    assert_eq!(counts(&relay).await.1, COUNT as u64);

    service.status.store(200, Ordering::SeqCst);
    let answer = cli(&relay, &["replay-dead", "--yes", "--json"]).await;
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer, serde_json::json!({ "replayed": 1000 }));
    service
        .wait_for_delivered(COUNT, Duration::from_secs(120))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let deliveries = service.deliveries();
    assert_eq!(deliveries.len(), COUNT);
    assert!(deliveries.values().all(|&n| n == 1), "each once");
    assert_eq!(counts(&relay).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_dead_letters_are_purged_and_none_newer() {
    let data = DataDir::new();
    let port = free_port();
    let service = Service::start(port).await;
    service.status.store(500, Ordering::SeqCst);
    let relay = relay(&data, port, "1s").await;
    for task in ["purged-1", "purged-2", "purged-3"] {
        assert_eq!(relay.post(notification(task)).await, 200);
    }
    dead_letters(&relay, 3, Duration::from_secs(20)).await;
    let said = cli(&relay, &["purge-dead", "--before", "2020-01-01", "--yes"]).await;
    assert!(said.contains("nothing purged"), "{said}");
    let later = humantime::format_rfc3339(SystemTime::now() + Duration::from_secs(60)).to_string();
    let (ok, _, err) = operate(
        &relay,
        Some(ADMIN_TOKEN),
        &["purge-dead", "--before", &later],
    )
    .await;
    assert!(
        !ok && err.contains("Purge 3 dead letters") && err.contains("--yes"),
        "{err}"
    );
    let found = relay
        .admin_api(Some(ADMIN_TOKEN))
        .ok("/admin/notifications?task_id=purged-1")
        .await;
    let id = found["items"][0]["id"].as_u64().unwrap();
    let answer = cli(
        &relay,
        &["purge-dead", "--before", &later, "--yes", "--json"],
    )
    .await;
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer, serde_json::json!({ "purged": 3 }));
    assert_eq!(counts(&relay).await, (0, 0));
    let (status, _) = relay
        .admin_api(Some(ADMIN_TOKEN))
        .get(&format!("/admin/notifications/{id}"))
        .await;
    assert_eq!(status, 404);
    let listed = cli(&relay, &["dead-letters"]).await;
    assert_eq!(listed.trim(), "No dead letters.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_now_delivers_at_once_what_waits_for_a_long_backoff() {
    let data = DataDir::new();
    let port = free_port();
    let service = Service::start(port).await;
    service.status.store(503, Ordering::SeqCst);
    let relay = relay(&data, port, "1h").await;
    let admin = relay.admin_api(Some(ADMIN_TOKEN));
    for task in ["backed-off-1", "backed-off-2", "backed-off-3"] {
        assert_eq!(relay.post(notification(task)).await, 200);
    }
    // Five tries each (at about 0, 1, 3, 7 and 15 s): the next is 16 s away.
    admin
        .until(
            "/admin/notifications?state=pending",
            Duration::from_secs(40),
            |page| {
                let items = page["items"].as_array().unwrap();
                items.len() == 3 && items.iter().all(|i| i["attempts"].as_u64() >= Some(5))
            },
        )
        .await;
    let pending = cli(&relay, &["pending"]).await;
    assert!(
        pending.contains("NEXT TRY") && pending.contains("the service answered 503"),
        "the last error of each: {pending}"
    );
    service.status.store(200, Ordering::SeqCst);
    let asked = std::time::Instant::now();
    let said = cli(&relay, &["retry-now", "--yes"]).await;
    assert!(said.contains("Due now: "), "{said}");
    service.wait_for_delivered(3, Duration::from_secs(5)).await;
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "at once, not after the backoff"
    );
    let none = cli(&relay, &["retry-now", "--yes"]).await;
    assert!(none.contains("nothing to retry"), "{none}");
}

/// The CLI on a terminal (`script` gives it one), answering `answer` to its question.
async fn on_a_terminal(relay: &Relay, args: &str, answer: &str) -> String {
    use tokio::io::AsyncWriteExt;
    let command = format!(
        "{} {args} --admin http://{}",
        env!("CARGO_BIN_EXE_airudder-relay"),
        relay.admin
    );
    let mut child = tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("AIRUDDER_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script(1), to give the CLI a terminal");
    let mut stdin = child.stdin.take().unwrap();
    // After the question is asked (a terminal drops what comes before the read).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stdin
        .write_all(format!("{answer}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the CLI ends")
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_a_bulk_action_says_how_many_and_asks_first() {
    let data = DataDir::new();
    let port = free_port();
    let service = Service::start(port).await;
    service.status.store(503, Ordering::SeqCst);
    // The next try an hour away: none is in flight or already due when the CLI makes them due
    // (either is rightly left out of "due now", and would make the count a matter of timing).
    service
        .headers
        .lock()
        .unwrap()
        .push(("Retry-After".to_owned(), "3600".to_owned()));
    let relay = relay(&data, port, "1h").await;
    for task in ["asked-1", "asked-2"] {
        assert_eq!(relay.post(notification(task)).await, 200);
    }
    relay
        .admin_api(Some(ADMIN_TOKEN))
        .until(
            "/admin/notifications?state=pending",
            Duration::from_secs(10),
            |page| {
                let items = page["items"].as_array().unwrap();
                items.len() == 2 && items.iter().all(|i| i["attempts"].as_u64() >= Some(1))
            },
        )
        .await;
    let said = on_a_terminal(&relay, "retry-now", "n").await;
    assert!(
        said.contains("Make 2 pending notifications due now? [y/N]") && said.contains("not done"),
        "{said}"
    );
    let said = on_a_terminal(&relay, "retry-now --task-id asked-1", "y").await;
    assert!(
        said.contains("Make 1 pending notification due now?")
            && said.contains("Due now: 1 notification;"),
        "{said}"
    );
}
