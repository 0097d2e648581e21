//! The receiving side the README shows, in Python with the official `standardwebhooks`
//! library, run exactly as printed there against the relay.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{DataDir, free_port, next_line, notification, start};
use tokio::io::{AsyncBufReadExt, BufReader};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const RECEIVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python/receive.py");

#[test]
fn the_readme_shows_the_python_receiver_as_it_is_tested() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let code = std::fs::read_to_string(RECEIVER).unwrap();
    assert!(
        readme.contains(&code),
        "README.md must show relay/python/receive.py as it is"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_service_verifies_every_forward_with_the_official_library() {
    let has_library = std::process::Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .status()
        .is_ok_and(|status| status.success());
    if !has_library {
        eprintln!("skipped: python3 with standardwebhooks is needed (bash .ci/test installs it)");
        return;
    }
    let port = free_port();
    let mut service = tokio::process::Command::new("python3")
        .arg(RECEIVER)
        .env("AIRUDDER_FORWARD_SECRET", SECRET)
        .env("PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut verified = BufReader::new(service.stdout.take().unwrap()).lines();
    let url = format!("http://127.0.0.1:{port}/");

    // A forged forward (no signature) is refused by the service, once it listens.
    let mut refused = None;
    for _ in 0..100 {
        let forged = common::client()
            .post(&url)
            .header("webhook-id", "msg_forged")
            .header("webhook-timestamp", "1700000000")
            .body(notification("forged"))
            .send()
            .await;
        if let Ok(answer) = forged {
            refused = Some(answer.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(refused, Some(401), "a forged forward is refused");

    let data = DataDir::new();
    let mut relay = start(
        &data,
        &[
            ("AIRUDDER_FORWARD_URL", &url),
            ("AIRUDDER_FORWARD_SECRET", SECRET),
        ],
    )
    .await;
    let mut seen = Vec::new();
    for task in ["py-1", "py-2"] {
        assert_eq!(relay.post(notification(task)).await, 200);
        let line = next_line(&mut verified)
            .await
            .expect("the service verified a forward");
        let (id, task_id) = line.split_once(' ').unwrap();
        assert!(id.starts_with("msg_"), "{line}");
        seen.push(task_id.to_owned());
    }
    assert_eq!(seen, ["py-1", "py-2"]);
    assert!(relay.terminate().await.success());
}
