//! The receiving side the README shows, in Python with the official `standardwebhooks`
//! library, run exactly as printed there against the relay: every kind acted on, a duplicate
//! delivery not, before and after the service restarts.

use crate::common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{DataDir, Relay, client, free_port, next_line, notification, start};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

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

/// The Python service on `port`, remembering what it acted on in `db`; returns once it
/// listens, which a forged forward (no signature) shows: it is refused.
async fn python_service(port: u16, db: &Path) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut service = tokio::process::Command::new("python3")
        .arg(RECEIVER)
        .env("AIRUDDER_FORWARD_SECRET", SECRET)
        .env("PORT", port.to_string())
        .env("SEEN_DB", db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let acted = BufReader::new(service.stdout.take().unwrap()).lines();
    let mut refused = None;
    for _ in 0..100 {
        let forged = client()
            .post(format!("http://127.0.0.1:{port}/"))
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
    (service, acted)
}

fn data(file: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../tests/data/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

async fn post(relay: &Relay, path: &str, body: Vec<u8>) -> u16 {
    client()
        .post(format!("http://{}{path}", relay.addr))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Replays the stored notification of `kind` and `task_id` (or the only one of `kind`), and
/// waits until the service has answered its new delivery 200.
async fn deliver_again(relay: &Relay, kind: &str, task_id: Option<&str>) {
    let admin = relay.admin_api(None);
    let query = match task_id {
        Some(task) => format!("/admin/notifications?kind={kind}&task_id={task}"),
        None => format!("/admin/notifications?kind={kind}"),
    };
    let listed = admin.ok(&query).await;
    let [record] = listed["items"].as_array().unwrap().as_slice() else {
        panic!("one {kind} stored: {listed}");
    };
    let id = &record["id"];
    let tried = |record: &Value| record["attempts"].as_array().map_or(0, Vec::len);
    let before = tried(&admin.ok(&format!("/admin/notifications/{id}")).await);
    let (status, answer) = admin
        .post(&format!("/admin/notifications/{id}/replay"))
        .await;
    assert_eq!(status, 200, "{answer}");
    admin
        .until(
            &format!("/admin/notifications/{id}"),
            Duration::from_secs(30),
            |record: &Value| record["state"] == "handled" && tried(record) == before + 1,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_service_acts_once_on_every_kind_across_its_restart() {
    let has_library = std::process::Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .status()
        .is_ok_and(|status| status.success());
    if !has_library {
        eprintln!("skipped: python3 with standardwebhooks is needed (bash .ci/test installs it)");
        return;
    }
    let port = free_port();
    let dir = DataDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let db = dir.0.join("seen.sqlite3");
    let (mut service, mut acted) = python_service(port, &db).await;

    let data_dir = DataDir::new();
    let url = format!("http://127.0.0.1:{port}/");
    let mut relay = start(
        &data_dir,
        &[
            ("AIRUDDER_FORWARD_URL", &url),
            ("AIRUDDER_FORWARD_SECRET", SECRET),
            ("AIRUDDER_RAW_NAMES", "plan"),
        ],
    )
    .await;
    // Every kind the relay forwards, and what the service printed when it acted on it.
    let kinds = [
        (
            "/airudder/task",
            notification("py-1"),
            "task_notification py-1 ['finished']",
        ),
        (
            "/airudder/chatbot/session",
            data("chatbot_session_end.example.json"),
            "chatbot_session_end a3f5c12ac59xxxxxxxxad71fe6a8ea3e E",
        ),
        (
            "/airudder/pds",
            data("pds_agent_status.example.json"),
            "pds_event AgentStatus",
        ),
        (
            "/airudder/workflow/status",
            data("workflow_status_change.example.json"),
            "workflow_status_change ['actions', 'status', 'workflow_id', 'workflow_name']",
        ),
        (
            "/airudder/raw/plan",
            br#"{"plan_id": "p-1", "new": {"x": [1]}}"#.to_vec(),
            "raw_plan ['new', 'plan_id']",
        ),
    ];
    for (path, body, line) in kinds {
        assert_eq!(post(&relay, path, body).await, 200, "{path}");
        assert_eq!(next_line(&mut acted).await.as_deref(), Some(line), "{path}");
    }

    // The same post again: the relay de-duplicates it (200, nothing forwarded). A delivery of
    // the same event again (a replay: the same webhook-id) reaches the service, which answers
    // 200 without acting: the next line it prints is py-2's.
    assert_eq!(relay.post(notification("py-1")).await, 200);
    deliver_again(&relay, "task_notification", Some("py-1")).await;
    assert_eq!(relay.post(notification("py-2")).await, 200);
    assert_eq!(
        next_line(&mut acted).await.as_deref(),
        Some("task_notification py-2 ['finished']")
    );
    // The line is printed inside the service's transaction: py-2 is remembered once its 200
    // reached the relay, and only then is the service killed (killed between the two, it would
    // rightly act on py-2 again).
    relay
        .admin_api(None)
        .until(
            "/admin/notifications?kind=task_notification&task_id=py-2&state=handled",
            Duration::from_secs(30),
            |listed: &Value| {
                listed["items"]
                    .as_array()
                    .is_some_and(|items| items.len() == 1)
            },
        )
        .await;

    // Killed and started again on the same database, it still knows what it acted on.
    service.kill().await.unwrap();
    assert_eq!(
        next_line(&mut acted).await,
        None,
        "it acted on nothing more"
    );
    let (_service, mut acted) = python_service(port, &db).await;
    deliver_again(&relay, "task_notification", Some("py-1")).await;
    deliver_again(&relay, "chatbot_session_end", None).await;
    assert_eq!(relay.post(notification("py-3")).await, 200);
    assert_eq!(
        next_line(&mut acted).await.as_deref(),
        Some("task_notification py-3 ['finished']")
    );
    assert!(relay.terminate().await.success());
}
