//! Every callback at its own path of a real relay: printed whole, forwarded with its kind (to
//! its own URL when set), and its dead letters listed and replayed by kind.

use crate::common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{DataDir, Service, client, free_port, start};
use serde_json::{Value, json};

fn data(file: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../tests/data/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Every path with a body it accepts.
fn bodies() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("/airudder/task", common::EXAMPLE.to_vec()),
        (
            "/airudder/workflow/call",
            data("workflow_call_completion.example.json"),
        ),
        (
            "/airudder/workflow/list",
            data("workflow_list_completion.example.json"),
        ),
        (
            "/airudder/workflow/status",
            data("workflow_status_change.example.json"),
        ),
        (
            "/airudder/chatbot/session",
            data("chatbot_session_end.example.json"),
        ),
        ("/airudder/pds", data("pds_agent_status.example.json")),
        (
            "/airudder/raw/plan",
            br#"{"plan_id": "p-1", "new": {"x": [1, "\u4e09"]}}"#.to_vec(),
        ),
    ]
}

async fn post(addr: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
    let response = client()
        .post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn each_path_answers_and_prints_its_event_whole() {
    let data_dir = DataDir::new();
    let mut relay = start(&data_dir, &[("AIRUDDER_RAW_NAMES", "plan")]).await;
    for (path, body) in bodies() {
        // An unknown member, kept through to the printed line.
        let mut sent: Value = serde_json::from_slice(&body).unwrap();
        sent["a_member_nobody_documented"] = json!({"kept": true});
        let (status, _) = post(&relay.addr, path, serde_json::to_vec(&sent).unwrap()).await;
        assert_eq!(status, 200, "{path}");
        let line = common::next_line(relay.stdout.as_mut().unwrap())
            .await
            .unwrap();
        let printed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(printed, sent, "{path}: printed whole");
    }
    // A wrong shape is refused with its path; an unknown raw name is not served.
    let mut list: Value =
        serde_json::from_slice(&data("workflow_list_completion.example.json")).unwrap();
    list["rows"][0]["node_type"] = json!(5);
    let (status, body) = post(
        &relay.addr,
        "/airudder/workflow/list",
        serde_json::to_vec(&list).unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["path"].as_str()),
        (422, Some("rows[0].node_type"))
    );
    let (status, _) = post(&relay.addr, "/airudder/raw/other", b"{}".to_vec()).await;
    assert_eq!(status, 404);
    let (status, _) = post(&relay.addr, "/airudder/raw/plan", b"[1]".to_vec()).await;
    assert_eq!(status, 422);

    // The admin API counts each kind apart.
    let stats: Value = client()
        .get(format!("http://{}/admin/stats", relay.admin))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    assert_eq!(stats["handled"], 7, "{stats}");
    assert_eq!(
        stats["kinds"]["chatbot_session_end"]["handled"], 1,
        "{stats}"
    );
    assert_eq!(
        stats["kinds"]["raw_plan"]["answers"][0]["reason"],
        "accepted"
    );
    relay.terminate().await;
}

#[tokio::test]
async fn forwards_carry_their_kind_and_go_to_their_own_url_when_set() {
    let (main_port, chat_port) = (free_port(), free_port());
    let main = Service::start(main_port).await;
    let chat = Service::start(chat_port).await;
    let data_dir = DataDir::new();
    let main_url = format!("http://127.0.0.1:{main_port}/hooks");
    let chat_url = format!("http://127.0.0.1:{chat_port}/chat");
    let relay = start(
        &data_dir,
        &[
            ("AIRUDDER_FORWARD_URL", &main_url),
            ("AIRUDDER_FORWARD_URL_CHATBOT_SESSION_END", &chat_url),
            ("AIRUDDER_RAW_NAMES", "plan"),
        ],
    )
    .await;
    let sent = bodies();
    for (path, body) in &sent {
        assert_eq!(post(&relay.addr, path, body.clone()).await.0, 200, "{path}");
    }
    let forwarded = main.wait_for(6, Duration::from_secs(20)).await;
    let chats = chat.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(chats[0].header("airudder-event"), "chatbot_session_end");
    assert_eq!(&chats[0].body[..], &sent[4].1[..], "the body as received");
    let mut kinds: Vec<&str> = forwarded
        .iter()
        .map(|r| r.header("airudder-event"))
        .collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "pds_event",
            "raw_plan",
            "task_notification",
            "workflow_call_completion",
            "workflow_list_completion",
            "workflow_status_change"
        ]
    );
    let raw = forwarded
        .iter()
        .find(|r| r.header("airudder-event") == "raw_plan")
        .unwrap();
    assert_eq!(&raw.body[..], &sent[6].1[..], "a raw body verbatim");
    // Six distinct ids: one per event, whatever the kind.
    let mut ids: Vec<&str> = forwarded.iter().map(|r| r.header("webhook-id")).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 6);
}

#[tokio::test]
async fn dead_letters_of_several_kinds_are_listed_with_their_kind_and_replayed_to_their_own() {
    let port = free_port();
    let service = Service::start(port).await;
    service.status.store(500, Ordering::SeqCst);
    let data_dir = DataDir::new();
    let url = format!("http://127.0.0.1:{port}/hooks");
    let relay = start(
        &data_dir,
        &[("AIRUDDER_FORWARD_URL", &url), ("AIRUDDER_RETRY_FOR", "1s")],
    )
    .await;
    let sent = bodies();
    assert_eq!(post(&relay.addr, sent[0].0, sent[0].1.clone()).await.0, 200);
    assert_eq!(post(&relay.addr, sent[4].0, sent[4].1.clone()).await.0, 200);
    let admin = format!("http://{}", relay.admin);
    let dead = loop {
        let page: Value = client()
            .get(format!("{admin}/admin/dead-letters"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap();
        if page["items"].as_array().map(Vec::len) == Some(2) {
            break page["items"].as_array().unwrap().clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let kinds: Vec<&str> = dead.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["task_notification", "chatbot_session_end"]);
    assert_eq!(dead[0]["task_id"], "ic1a7a8f2bxxx9f5e343a2ec25a9b2");

    // The operator's table says the kind.
    let listed = tokio::process::Command::new(env!("CARGO_BIN_EXE_airudder-relay"))
        .args(["dead-letters", "--admin", &admin])
        .output()
        .await
        .unwrap();
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(table.lines().next().unwrap().contains("KIND"), "{table}");
    assert!(table.contains("chatbot_session_end"), "{table}");

    // Fixed, each replayed: each goes out as its own kind.
    service.status.store(200, Ordering::SeqCst);
    let before = service.received().len();
    for item in &dead {
        let id = item["id"].as_u64().unwrap();
        let replayed = client()
            .post(format!("{admin}/admin/dead-letters/{id}/replay"))
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(replayed.status(), 200);
    }
    let received = service.wait_for(before + 2, Duration::from_secs(20)).await;
    let mut kinds: Vec<&str> = received[before..]
        .iter()
        .map(|r| r.header("airudder-event"))
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["chatbot_session_end", "task_notification"]);
}
