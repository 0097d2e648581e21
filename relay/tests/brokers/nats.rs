//! NATS JetStream as the destination: Debian's `nats-server -js` on loopback, the relay as a real
//! process, and async-nats reading back what the stream holds: every notification once (the
//! stream de-duplicates on `Nats-Msg-Id`), with its Standard Webhooks headers, whether the
//! server was down at first, the relay killed mid-publish, or the stream missing until an
//! operator added it.

use crate::common;
use crate::servers::NatsServer;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::StreamMessage};
use base64::Engine;
use common::{DataDir, Relay, Service, free_port, notification, start};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ADMIN_TOKEN: &str = "nats-admin-token-0123";

/// A PDS event as the dialer sends it.
const PDS_EVENT: &[u8] = include_bytes!("../../../tests/data/pds_contact_status.example.json");

/// A JetStream client of the server on `port`, with a user and password if given.
async fn jetstream(port: u16, user: Option<(&str, &str)>) -> jetstream::Context {
    let mut options = async_nats::ConnectOptions::new();
    if let Some((user, password)) = user {
        options = options.user_and_password(user.into(), password.into());
    }
    let client = tokio::time::timeout(
        Duration::from_secs(10),
        options.connect(format!("127.0.0.1:{port}")),
    )
    .await
    .expect("connected within 10 s")
    .expect("the test connects to nats-server");
    jetstream::new(client)
}

/// Adds the stream `name` taking `subjects`, its duplicate window two minutes (the default,
/// made explicit).
async fn add_stream(js: &jetstream::Context, name: &str, subjects: &[&str]) {
    add_stream_with(js, stream_config(name, subjects)).await;
}

fn stream_config(name: &str, subjects: &[&str]) -> jetstream::stream::Config {
    jetstream::stream::Config {
        name: name.to_owned(),
        subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    }
}

/// Adds a stream; tried again while JetStream is still starting.
async fn add_stream_with(js: &jetstream::Context, config: jetstream::stream::Config) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match js.create_stream(config.clone()).await {
            Ok(_) => return,
            Err(err) => assert!(
                Instant::now() < deadline,
                "stream {} not added within 10 s: {err}",
                config.name
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The stream's state: how many messages it holds, and its last sequence.
async fn stream_state(js: &jetstream::Context, name: &str) -> (u64, u64) {
    let stream = js.get_stream(name).await.expect("the stream exists");
    let state = &stream.cached_info().state;
    (state.messages, state.last_sequence)
}

/// Waits until the stream `name` holds at least `count` messages.
async fn wait_stored(js: &jetstream::Context, name: &str, count: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (messages, _) = stream_state(js, name).await;
        if messages >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{messages} of {count} messages in stream {name} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every message the stream `name` holds, oldest first.
async fn stored(js: &jetstream::Context, name: &str) -> Vec<StreamMessage> {
    let stream = js.get_stream(name).await.unwrap();
    let state = stream.cached_info().state.clone();
    let mut all = Vec::new();
    for sequence in state.first_sequence..=state.last_sequence {
        all.push(stream.get_raw_message(sequence).await.unwrap());
    }
    all
}

fn header<'m>(message: &'m StreamMessage, name: &str) -> &'m str {
    message
        .headers
        .get(name)
        .map(|value| value.as_str())
        .unwrap_or_else(|| panic!("no {name} header: {:?}", message.headers))
}

/// Whether `signature` is the Standard Webhooks one of `SECRET` for this id, time and body.
fn signed(id: &str, timestamp: &str, body: &[u8], signature: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    signature
        .split(' ')
        .any(|one| one == format!("v1,{expected}"))
}

/// The relay forwarding to `url`, with `env` added.
async fn relay(data: &DataDir, url: &str, env: &[(&str, &str)]) -> Relay {
    let mut all = vec![
        ("AIRUDDER_FORWARD_URL", url),
        ("AIRUDDER_ADMIN_TOKEN", ADMIN_TOKEN),
        // Only warnings: nobody reads the relay's stderr until the end.
        ("RUST_LOG", "warn"),
    ];
    all.extend_from_slice(env);
    start(data, &all).await
}

/// Waits until the relay has nothing pending; panics on a dead letter.
async fn settled(relay: &Relay, within: Duration) {
    relay
        .admin_api(Some(ADMIN_TOKEN))
        .until("/admin/kinds", within, |kinds| {
            let items = kinds["items"].as_array().unwrap();
            assert!(items.iter().all(|kind| kind["dead"] == 0), "{kinds}");
            items.iter().all(|kind| kind["pending"] == 0)
        })
        .await;
}

/// The notification of `task`, as the admin API lists it.
async fn listed(relay: &Relay, task: &str) -> Value {
    let found = relay
        .admin_api(Some(ADMIN_TOKEN))
        .ok(&format!("/admin/notifications?task_id={task}"))
        .await;
    found["items"][0].clone()
}

/// `airudder_broker_connected` of `destination` in the relay's metrics, if there.
async fn connected_gauge(relay: &Relay, destination: &str) -> (Option<f64>, String) {
    let text = common::client()
        .get(format!("http://{}/metrics", relay.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!("airudder_broker_connected{{destination=\"{destination}\"}}");
    let value = text
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.trim().parse().ok());
    (value, text)
}

async fn gauge_until(relay: &Relay, destination: &str, want: f64, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let (value, text) = connected_gauge(relay, destination).await;
        if value == Some(want) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "airudder_broker_connected of {destination} not {want} within {within:?}: {value:?}\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_at_first_then_up_gets_every_notification_signed_and_identified() {
    let port = free_port();
    let data = DataDir::new();
    let url = format!("nats://127.0.0.1:{port}?subject=airudder.{{kind}}");
    let relay = relay(
        &data,
        &url,
        &[
            ("AIRUDDER_RETRY_FOR", "1h"),
            ("AIRUDDER_FORWARD_SECRET", SECRET),
        ],
    )
    .await;
    let tasks: Vec<String> = (0..20).map(|i| format!("nats-late-{i}")).collect();
    let bodies: HashMap<String, Vec<u8>> = tasks
        .iter()
        .map(|task| (task.clone(), notification(task)))
        .collect();
    relay.post_all(bodies.values().cloned().collect(), 20).await;
    // Each tried at once, and failed: nothing listens yet.
    let shown = format!("nats://127.0.0.1:{port}?subject=airudder.{{kind}}");
    relay
        .admin_api(Some(ADMIN_TOKEN))
        .until(
            "/admin/notifications?state=pending",
            Duration::from_secs(10),
            |found| {
                let items = found["items"].as_array().unwrap();
                items.len() == 20
                    && items.iter().all(|item| {
                        item["last_error"]
                            .as_str()
                            .is_some_and(|error| error.contains(&shown))
                    })
            },
        )
        .await;

    let _server = NatsServer::start(port, &[]).await;
    let js = jetstream(port, None).await;
    add_stream(&js, "LATE", &["airudder.>"]).await;
    // The relay's retry (1, 2, 4, 8 s…) and the link's backoff (0.2 s doubling) both apply.
    wait_stored(&js, "LATE", 20, Duration::from_secs(40)).await;
    settled(&relay, Duration::from_secs(10)).await;
    let messages = stored(&js, "LATE").await;
    assert_eq!(messages.len(), 20, "each once");
    let mut ids = HashSet::new();
    for message in &messages {
        assert_eq!(message.subject.as_str(), "airudder.task_notification");
        let id = header(message, "webhook-id");
        assert!(id.starts_with("msg_"), "{id}");
        assert_eq!(header(message, "Nats-Msg-Id"), id);
        assert!(ids.insert(id.to_owned()), "{id} twice");
        let task = common::task_id(&message.payload);
        assert_eq!(
            &message.payload[..],
            &bodies[&task][..],
            "{task}: as posted"
        );
        assert_eq!(header(message, "content-type"), "application/json");
        assert_eq!(header(message, "airudder-event"), "task_notification");
        let attempt: u32 = header(message, "airudder-attempt").parse().unwrap();
        assert!(attempt >= 2, "the first attempt found no server: {attempt}");
        let timestamp = header(message, "webhook-timestamp");
        timestamp.parse::<u64>().expect("seconds");
        assert!(
            signed(
                id,
                timestamp,
                &message.payload,
                header(message, "webhook-signature")
            ),
            "{task}: the signature verifies"
        );
    }
    assert_eq!(ids.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_publish_and_restarted_leaves_each_notification_once_in_the_stream() {
    let port = free_port();
    let _server = NatsServer::start(port, &[]).await;
    let js = jetstream(port, None).await;
    add_stream(&js, "KILLED", &["killed.>"]).await;
    let data = DataDir::new();
    let url = format!("nats://127.0.0.1:{port}?subject=killed.{{kind}}");
    // At 30 a second, 300 take 10 s: the kill comes mid-publish.
    let mut first = relay(
        &data,
        &url,
        &[
            ("AIRUDDER_RETRY_FOR", "1h"),
            ("AIRUDDER_FORWARD_RATE", "30/s"),
        ],
    )
    .await;
    let tasks: Vec<String> = (0..300).map(|i| format!("nats-killed-{i}")).collect();
    first
        .post_all(tasks.iter().map(|task| notification(task)).collect(), 16)
        .await;
    wait_stored(&js, "KILLED", 10, Duration::from_secs(20)).await;
    first.kill().await;
    let (at_kill, _) = stream_state(&js, "KILLED").await;
    assert!(at_kill < 300, "killed after every publish: {at_kill}");

    let second = relay(&data, &url, &[("AIRUDDER_RETRY_FOR", "1h")]).await;
    wait_stored(&js, "KILLED", 300, Duration::from_secs(30)).await;
    settled(&second, Duration::from_secs(20)).await;
    let messages = stored(&js, "KILLED").await;
    let mut per_task: HashMap<String, usize> = HashMap::new();
    for message in &messages {
        *per_task
            .entry(common::task_id(&message.payload))
            .or_default() += 1;
        assert_eq!(
            header(message, "Nats-Msg-Id"),
            header(message, "webhook-id")
        );
    }
    assert_eq!(messages.len(), 300);
    assert_eq!(per_task.len(), 300, "every task");
    assert!(
        per_task.values().all(|n| *n == 1),
        "each once: {per_task:?}"
    );
    assert_eq!(
        stream_state(&js, "KILLED").await,
        (300, 300),
        "none stored twice"
    );

    // Published again (a replay of a handled one): the stream acknowledges a duplicate, which
    // is a delivery, and still holds it once.
    let item = listed(&second, "nats-killed-7").await;
    let admin = second.admin_api(Some(ADMIN_TOKEN));
    let path = format!("/admin/notifications/{}", item["id"]);
    let tried = admin.ok(&path).await["attempts"].as_array().unwrap().len();
    let (status, answer) = admin.post(&format!("{path}/replay")).await;
    assert_eq!(status, 200, "{answer}");
    let shown = admin
        .until(&path, Duration::from_secs(10), |shown| {
            shown["state"] == "handled" && shown["attempts"].as_array().unwrap().len() > tried
        })
        .await;
    assert_eq!(
        shown["attempts"].as_array().unwrap().last().unwrap()["outcome"],
        "ok",
        "{shown}"
    );
    assert_eq!(stream_state(&js, "KILLED").await, (300, 300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_no_stream_takes_is_a_dead_letter_delivered_by_a_replay_once_a_stream_is_added() {
    let port = free_port();
    let _server = NatsServer::start(port, &[]).await;
    let js = jetstream(port, None).await;
    let data = DataDir::new();
    let url = format!("nats://127.0.0.1:{port}?subject=refused.{{kind}}");
    let relay = relay(&data, &url, &[("AIRUDDER_RETRY_FOR", "2s")]).await;
    let body = notification("nats-refused");
    assert_eq!(relay.post(body.clone()).await, 200);
    let admin = relay.admin_api(Some(ADMIN_TOKEN));
    let found = admin
        .until(
            "/admin/notifications?task_id=nats-refused",
            Duration::from_secs(15),
            |found| found["items"][0]["state"] == "dead",
        )
        .await;
    let says = "no JetStream stream takes subject refused.task_notification: add a stream with this subject (nats stream add NAME --subjects 'refused.task_notification', on a server with JetStream enabled), then replay the dead letters";
    let last_error = found["items"][0]["last_error"].as_str().unwrap();
    assert!(last_error.contains(says), "{last_error}");
    let id = found["items"][0]["id"].as_u64().unwrap();
    let shown = admin.ok(&format!("/admin/notifications/{id}")).await;
    let first = &shown["attempts"][0];
    assert!(
        first["error"]
            .as_str()
            .is_some_and(|error| error == format!("the broker refused it: {says}")),
        "{shown}"
    );

    add_stream(&js, "REFUSED", &["refused.>"]).await;
    let (status, answer) = admin.post("/admin/dead-letters/replay").await;
    assert_eq!(
        (status, &answer["replayed"]),
        (200, &Value::from(1)),
        "{answer}"
    );
    wait_stored(&js, "REFUSED", 1, Duration::from_secs(15)).await;
    admin
        .until(
            "/admin/notifications?task_id=nats-refused",
            Duration::from_secs(10),
            |found| found["items"][0]["state"] == "handled",
        )
        .await;
    let messages = stored(&js, "REFUSED").await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].subject.as_str(), "refused.task_notification");
    assert_eq!(&messages[0].payload[..], &body[..]);
    assert_eq!(
        header(&messages[0], "Nats-Msg-Id"),
        header(&messages[0], "webhook-id")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stream_refuses_with_the_servers_words_and_the_message_waits_for_room() {
    let port = free_port();
    let _server = NatsServer::start(port, &[]).await;
    let js = jetstream(port, None).await;
    add_stream_with(
        &js,
        jetstream::stream::Config {
            max_messages: 1,
            discard: jetstream::stream::DiscardPolicy::New,
            ..stream_config("FULL", &["full.>"])
        },
    )
    .await;
    let data = DataDir::new();
    let url = format!("nats://127.0.0.1:{port}?subject=full.{{kind}}");
    let relay = relay(&data, &url, &[("AIRUDDER_RETRY_FOR", "1h")]).await;
    assert_eq!(relay.post(notification("nats-full-1")).await, 200);
    wait_stored(&js, "FULL", 1, Duration::from_secs(10)).await;
    assert_eq!(relay.post(notification("nats-full-2")).await, 200);
    let found = relay
        .admin_api(Some(ADMIN_TOKEN))
        .until(
            "/admin/notifications?task_id=nats-full-2",
            Duration::from_secs(10),
            |found| found["items"][0]["last_error"].is_string(),
        )
        .await;
    let last_error = found["items"][0]["last_error"].as_str().unwrap();
    assert!(
        last_error.starts_with(
            "the broker refused it: the stream of subject full.task_notification answered maximum messages exceeded"
        ) && last_error.ends_with("or make room in it, then replay the dead letters"),
        "{last_error}"
    );
    assert_eq!(found["items"][0]["state"], "pending", "retried: {found}");
    // Room made: the retry gets in.
    js.get_stream("FULL").await.unwrap().purge().await.unwrap();
    wait_stored(&js, "FULL", 1, Duration::from_secs(15)).await;
    settled(&relay, Duration::from_secs(10)).await;
    let messages = stored(&js, "FULL").await;
    assert_eq!(messages.len(), 1);
    assert_eq!(common::task_id(&messages[0].payload), "nats-full-2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_sent_to_nats_goes_there_and_the_others_to_the_http_service() {
    let port = free_port();
    let _server = NatsServer::start(port, &[]).await;
    let js = jetstream(port, None).await;
    add_stream(&js, "KINDS", &["airudder.>"]).await;
    let service_port = free_port();
    let service = Service::start(service_port).await;
    let data = DataDir::new();
    let http = format!("http://127.0.0.1:{service_port}/hooks");
    let nats = format!("nats://127.0.0.1:{port}?subject=airudder.{{kind}}");
    let relay = relay(
        &data,
        &http,
        &[
            ("AIRUDDER_FORWARD_URL_PDS_EVENT", nats.as_str()),
            ("AIRUDDER_RETRY_FOR", "1h"),
        ],
    )
    .await;
    let task = notification("nats-kinds");
    assert_eq!(relay.post(task.clone()).await, 200);
    let answer = common::client()
        .post(format!("http://{}/airudder/pds", relay.addr))
        .header("content-type", "application/json")
        .body(PDS_EVENT)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);

    service.wait_for_delivered(1, Duration::from_secs(15)).await;
    wait_stored(&js, "KINDS", 1, Duration::from_secs(15)).await;
    settled(&relay, Duration::from_secs(10)).await;
    let received = service.received();
    assert_eq!(received.len(), 1, "the task notification only");
    assert_eq!(&received[0].body[..], &task[..]);
    assert_eq!(received[0].header("airudder-event"), "task_notification");
    let messages = stored(&js, "KINDS").await;
    assert_eq!(messages.len(), 1, "the PDS event only");
    assert_eq!(messages[0].subject.as_str(), "airudder.pds_event");
    assert_eq!(&messages[0].payload[..], PDS_EVENT);
    assert_eq!(header(&messages[0], "airudder-event"), "pds_event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connected_gauge_is_1_once_connected_and_0_once_the_server_is_gone() {
    const PASSWORD: &str = "s3cret-nats-pass";
    let port = free_port();
    let mut server = NatsServer::start(port, &["--user", "relay", "--pass", PASSWORD]).await;
    let js = jetstream(port, Some(("relay", PASSWORD))).await;
    add_stream(&js, "GAUGE", &["gauge.>"]).await;
    let data = DataDir::new();
    let url = format!("nats://relay:{PASSWORD}@127.0.0.1:{port}?subject=gauge.{{kind}}");
    let mut relay = relay(&data, &url, &[("AIRUDDER_RETRY_FOR", "1h")]).await;
    let shown = format!("nats://127.0.0.1:{port}?subject=gauge.{{kind}}");
    // Connected at start, before any message.
    gauge_until(&relay, &shown, 1.0, Duration::from_secs(10)).await;
    assert_eq!(relay.post(notification("nats-gauge-1")).await, 200);
    wait_stored(&js, "GAUGE", 1, Duration::from_secs(15)).await;

    server.kill();
    assert_eq!(relay.post(notification("nats-gauge-2")).await, 200);
    let text = gauge_until(&relay, &shown, 0.0, Duration::from_secs(15)).await;
    assert!(
        !text.contains(PASSWORD) && !text.contains("relay@"),
        "{text}"
    );
    let admin = relay.admin_api(Some(ADMIN_TOKEN));
    let found = admin
        .until(
            "/admin/notifications?task_id=nats-gauge-2",
            Duration::from_secs(10),
            |found| found["items"][0]["last_error"].is_string(),
        )
        .await;
    let last_error = found["items"][0]["last_error"].as_str().unwrap();
    assert!(
        last_error.contains(&shown) && last_error.contains("check that the NATS server is up"),
        "{last_error}"
    );
    assert!(!last_error.contains(PASSWORD), "{last_error}");
    relay.kill().await;
    let logs = relay.logs().await;
    assert!(!logs.contains(PASSWORD), "{logs}");
}
