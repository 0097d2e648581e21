//! `airudder-relay send` and `example`, as real processes against a real service on loopback.

use crate::common;

use std::process::Output;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{DataDir, Service, free_port, start, task_id};

async fn relay_command(args: &[&str]) -> Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_airudder-relay"))
        .args(args)
        .env_remove("AIRUDDER_TOKEN")
        .output();
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the command ends within 60 s")
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn send_retries_a_failing_service_until_it_answers_200() {
    let port = free_port();
    let service = Service::start(port).await;
    service.status.store(500, Ordering::SeqCst);
    // The service recovers after its second failure.
    let watch = service.clone();
    tokio::spawn(async move {
        watch.wait_for(2, Duration::from_secs(30)).await;
        watch.status.store(200, Ordering::SeqCst);
    });
    let url = format!("http://127.0.0.1:{port}/hooks/airudder");
    let started = Instant::now();
    let output = relay_command(&[
        "send",
        "--to",
        &url,
        "--calls",
        "3",
        "--task-id",
        "rehearsal-1",
        "--retry-interval",
        "300ms",
        "--token",
        "t0k&n",
    ])
    .await;
    let text = stdout(&output);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("attempt 1 at +0.0s: 500"), "{text}");
    assert!(
        lines[1].starts_with("attempt 2 at +0.") && lines[1].contains(": 500"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("attempt 3 at +0.") && lines[2].contains(": 200 {}"),
        "{text}"
    );
    assert_eq!(lines[3], "delivered: answered 200 after 3 attempt(s)");
    assert!(started.elapsed() >= Duration::from_millis(600));

    let received = service.received();
    assert_eq!(received.len(), 3);
    for request in &received {
        assert_eq!(request.header("user-agent"), "Airudder");
        assert_eq!(request.header("content-type"), "application/json");
        assert_eq!(request.body, received[0].body, "the same body every time");
    }
    let body: serde_json::Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body["details"].as_array().unwrap().len(), 3);
    assert_eq!(task_id(&received[0].body), "rehearsal-1");
}

#[tokio::test]
async fn send_gives_up_after_one_try_and_five_retries_with_a_failing_exit() {
    let port = free_port();
    let service = Service::start(port).await;
    service.status.store(503, Ordering::SeqCst);
    let url = format!("http://127.0.0.1:{port}/airudder/task");
    let output = relay_command(&["send", "--to", &url, "--retry-interval", "50ms"]).await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert_eq!(service.received().len(), 6);
    let attempts: Vec<&str> = text.lines().filter(|l| l.starts_with("attempt ")).collect();
    assert_eq!(attempts.len(), 6, "{text}");
    assert!(attempts.iter().all(|line| line.contains(": 503")), "{text}");
    assert!(
        text.ends_with(
            "not delivered: 6 attempt(s), none answered 200; Airudder would drop it now\n"
        ),
        "{text}"
    );
    // Nobody listening: every try says so.
    drop(service);
    let closed = format!("http://127.0.0.1:{}/airudder/task", free_port());
    let output = relay_command(&[
        "send",
        "--to",
        &closed,
        "--retry-interval",
        "10ms",
        "--max-retries",
        "1",
    ])
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stdout(&output).matches(": no answer: ").count(),
        2,
        "{}",
        stdout(&output)
    );
    let bad = relay_command(&["send", "--to", "ftp://x"]).await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not an http:// or https:// URL"));
}

#[tokio::test]
async fn send_says_why_a_post_failed_down_to_its_root_cause() {
    // A port nobody listens on: the connection is refused, and the line says so.
    let closed = format!("http://127.0.0.1:{}/airudder/task", free_port());
    let output = relay_command(&["send", "--to", &closed, "--max-retries", "0"]).await;
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("attempt 1 at +0.0s: no answer: could not connect (")
            && first.to_lowercase().contains("connection refused"),
        "{text}"
    );
}

#[tokio::test]
async fn send_rehearses_the_relay_itself_and_example_prints_what_it_accepts() {
    let data = DataDir::new();
    let mut relay = start(&data, &[("AIRUDDER_TOKEN", "s3cret-long-enough")]).await;
    let url = format!("http://{}/airudder/task", relay.addr);

    // `example` prints the contract's example; with --calls, a notification of that many.
    let example = relay_command(&["example"]).await;
    assert!(example.status.success());
    assert_eq!(example.stdout, common::EXAMPLE);
    let made = relay_command(&["example", "--calls", "4", "--task-id", "made"]).await;
    let value: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();
    assert_eq!(
        (
            value["task_id"].as_str(),
            value["details"].as_array().map(Vec::len)
        ),
        (Some("made"), Some(4))
    );
    let file = data.0.join("made.json");
    std::fs::write(&file, &made.stdout).unwrap();

    // A wrong token is refused every time (fast retries here); the right one is accepted.
    let refused = relay_command(&[
        "send",
        "--to",
        &url,
        "--file",
        file.to_str().unwrap(),
        "--token",
        "wrong",
        "--retry-interval",
        "10ms",
        "--max-retries",
        "2",
    ])
    .await;
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        stdout(&refused).matches(": 401 ").count(),
        3,
        "{}",
        stdout(&refused)
    );
    let sent = relay_command(&[
        "send",
        "--to",
        &url,
        "--file",
        file.to_str().unwrap(),
        "--token",
        "s3cret-long-enough",
    ])
    .await;
    assert!(sent.status.success(), "{}", stdout(&sent));
    assert!(stdout(&sent).starts_with("attempt 1 at +0.0s: 200 {}"));
    // The relay printed what it received.
    let line = common::next_line(relay.stdout.as_mut().unwrap())
        .await
        .unwrap();
    let printed: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(printed["task_id"], "made");
    relay.terminate().await;
}
