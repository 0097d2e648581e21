//! The examples, run as a user runs them: a child process on 127.0.0.1 port 0.
//!
//! `cargo test` builds the examples before it runs this file.

use crate::support;

use crate::support::process::{next_line, post_example, rest, start, terminate};
use serde_json::Value;

#[tokio::test]
async fn the_receiver_prints_each_notification_as_one_json_line_and_stops_on_sigterm() {
    for ack in ["durable", "memory", "handled"] {
        let mut running = start("receiver", &[("AIRUDDER_ACK", ack)]).await;
        let mut second = support::example_value();
        second["task_id"] = "second-task".into();
        post_example(&running.addr).await;
        let url = format!("http://{}/airudder/task", running.addr);
        let (status, _, _) = support::send(
            "POST",
            &url,
            "application/json",
            serde_json::to_vec(&second).unwrap(),
        )
        .await;
        assert_eq!(status, 200);
        let mut printed = Vec::new();
        for _ in 0..2 {
            let line = next_line(&mut running.stdout)
                .await
                .expect("one line per notification");
            printed.push(serde_json::from_str::<Value>(&line).expect("each stdout line is JSON"));
        }
        printed.sort_by_key(|v| v["task_id"].as_str().unwrap().to_owned());
        assert_eq!(printed, [support::example_value(), second], "{ack}");
        let (status, _, _) = support::send(
            "GET",
            &format!("http://{}/health", running.addr),
            "text/plain",
            "",
        )
        .await;
        assert_eq!(status, 200);

        let status = terminate(&mut running.child).await;
        assert!(status.success(), "{ack}: exit {status}");
        assert_eq!(
            next_line(&mut running.stdout).await,
            None,
            "{ack}: nothing but the notifications on stdout"
        );

        let logs = rest(&mut running.stderr).await;
        assert!(
            logs.contains("stopped: 2 handled, 0 failed, 0 left unhandled"),
            "{ack}: {logs}"
        );
        assert!(
            logs.contains("ic1a7a8f2bxxx9f5e343a2ec25a9b2"),
            "{ack}: logs name the task"
        );
        for personal in ["+8612345678", "+6212345678", "1224", "creditnumber"] {
            assert!(
                !contains_value(&logs, personal),
                "{ack}: {personal} leaked into the logs at trace level"
            );
        }
    }
}

#[tokio::test]
async fn the_hyper_example_answers_the_webhook_and_its_own_routes() {
    let mut running = start("hyper", &[]).await;
    post_example(&running.addr).await;
    let line = next_line(&mut running.stdout).await.unwrap();
    assert_eq!(
        line,
        "handled task ic1a7a8f2bxxx9f5e343a2ec25a9b2 with 1 calls"
    );
    let (status, _, body) = support::send(
        "GET",
        &format!("http://{}/health", running.addr),
        "text/plain",
        "",
    )
    .await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"ok"[..]));
    let (status, _, _) = support::send(
        "GET",
        &format!("http://{}/airudder/task", running.addr),
        "text/plain",
        "",
    )
    .await;
    assert_eq!(status, 405);
    let status = terminate(&mut running.child).await;
    assert!(status.success(), "exit {status}");
}

#[tokio::test]
async fn the_tonic_example_serves_grpc_beside_the_webhook() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

    let mut running = start("tonic", &[]).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", running.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let answer = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(answer.into_inner().status, ServingStatus::Serving as i32);

    post_example(&running.addr).await;
    let line = next_line(&mut running.stdout).await.unwrap();
    assert_eq!(
        line,
        "handled task ic1a7a8f2bxxx9f5e343a2ec25a9b2 with 1 calls"
    );
    let status = terminate(&mut running.child).await;
    assert!(status.success(), "exit {status}");
}

#[tokio::test]
async fn the_receiver_requires_the_token_when_one_is_set() {
    let token = "tok-3kP9s";
    let mut running = start("receiver", &[("AIRUDDER_TOKEN", token)]).await;
    let base = format!("http://{}/airudder/task", running.addr);
    for (url, want) in [
        (base.clone(), 401),
        (format!("{base}?token=wrong"), 401),
        (format!("{base}?token={token}"), 200),
    ] {
        let (status, _, body) =
            support::send("POST", &url, "application/json", support::EXAMPLE).await;
        assert_eq!(status.as_u16(), want, "{url}");
        assert!(
            serde_json::from_slice::<Value>(&body).is_ok(),
            "{url}: a JSON answer"
        );
    }
    let line = next_line(&mut running.stdout).await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&line).unwrap(),
        support::example_value()
    );

    terminate(&mut running.child).await;
    let logs = rest(&mut running.stderr).await;
    assert!(
        !logs.contains(token) && !logs.contains("wrong"),
        "the token stays out of the logs: {logs}"
    );
    assert!(
        !running.startup.contains("running open"),
        "{}",
        running.startup
    );
}

#[tokio::test]
async fn the_receiver_says_when_it_runs_open() {
    let running = start("receiver", &[]).await;
    assert!(
        running.startup.contains("running open"),
        "{}",
        running.startup
    );
}

/// Runs the receiver example with these arguments on a data directory, and returns stdout.
async fn admin(data: &support::process::DataDir, args: &[&str]) -> String {
    let output = tokio::process::Command::new(support::process::example_binary("receiver"))
        .env("AIRUDDER_DATA_DIR", &data.0)
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON lines"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_and_refused_bodies_are_listed_shown_and_replayed_from_the_command_line() {
    use airudder_webhook::Event;
    use airudder_webhook::model::TaskNotification;
    use airudder_webhook::store::{Appended, Attempt, Envelope, NewRecord, RedbStore, Store};

    let notification = |task: &str| bytes::Bytes::from(support::example_with_task_id(task));
    let data = support::process::DataDir::new();
    let dead_id = {
        let store = RedbStore::open(&data.0).unwrap();
        let body = notification("dead-1");
        let key = airudder_webhook::decode::<TaskNotification>(&body)
            .unwrap()
            .dedup_key();
        let envelope = Envelope::new(std::time::SystemTime::now(), None, Vec::new());
        let Appended::Stored(id) = store
            .append(NewRecord::new(key, body, envelope.clone()).started(true))
            .await
            .unwrap()
        else {
            panic!("stored")
        };
        store.begin_attempt(id).await.unwrap();
        store
            .dead_letter(id, Attempt::failed_now("ledger unavailable"))
            .await
            .unwrap();
        store
            .reject(
                400,
                "the body hook could not decode the body".into(),
                envelope,
                notification("refused-1"),
            )
            .await
            .unwrap();
        id
    };

    let dead = lines(&admin(&data, &["dead-letters"]).await);
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            &dead[0]["task_id"],
            &dead[0]["attempts"],
            &dead[0]["last_error"]
        ),
        (&"dead-1".into(), &2.into(), &"ledger unavailable".into())
    );
    let shown = lines(&admin(&data, &["show", &dead_id.to_string()]).await);
    assert_eq!(shown[0]["body"]["task_id"], "dead-1");
    let refused = lines(&admin(&data, &["rejected"]).await);
    assert_eq!((refused.len(), &refused[0]["status"]), (1, &400.into()));
    let refused_id = refused[0]["id"].to_string();
    let shown = lines(&admin(&data, &["show-rejected", &refused_id]).await);
    assert!(shown[0]["body"].as_str().unwrap().contains("refused-1"));

    admin(&data, &["replay", &dead_id.to_string()]).await;
    admin(&data, &["replay-rejected", &refused_id]).await;
    assert_eq!(admin(&data, &["dead-letters"]).await, "");
    assert_eq!(admin(&data, &["rejected"]).await, "");

    // The next start hands both to the handler.
    let mut running = support::process::start_in("receiver", &data, &[]).await;
    let mut printed = Vec::new();
    for _ in 0..2 {
        let line = next_line(&mut running.stdout).await.unwrap();
        printed.push(
            serde_json::from_str::<Value>(&line).unwrap()["task_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    printed.sort();
    assert_eq!(printed, ["dead-1", "refused-1"]);
}

#[tokio::test]
async fn sigterm_right_after_a_200_waits_for_the_slow_handler_before_exit() {
    // The pattern every snippet shows: serve with `shutdown_signal()`, then drain.
    let mut running = start(
        "receiver",
        &[
            ("AIRUDDER_ACK", "memory"),
            ("AIRUDDER_HANDLER_DELAY_MS", "1500"),
        ],
    )
    .await;
    post_example(&running.addr).await;
    let status = terminate(&mut running.child).await;
    assert!(status.success(), "exit {status}");
    let line = next_line(&mut running.stdout)
        .await
        .expect("the notification answered 200 is handled before the process exits");
    assert_eq!(
        serde_json::from_str::<Value>(&line).unwrap(),
        support::example_value()
    );
    let logs = rest(&mut running.stderr).await;
    assert!(
        logs.contains("stopped: 1 handled, 0 failed, 0 left unhandled"),
        "{logs}"
    );
}

/// Whether `text` holds `value` as a value of its own, not inside another number or word: the
/// customer variable `1224` is a leak, a port `41224` or a time `1.224ms` is not.
fn contains_value(text: &str, value: &str) -> bool {
    let part_of_a_word = |c: char| c.is_alphanumeric() || c == '.' || c == ':';
    text.match_indices(value).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + value.len()..].chars().next();
        !before.is_some_and(part_of_a_word) && !after.is_some_and(part_of_a_word)
    })
}
