//! RabbitMQ: the relay as a real process publishing to Debian's `rabbitmq-server` on loopback,
//! each message read back with lapin as a consumer would. A node takes some seconds to start:
//! the tests that keep theirs up share one; those that need it down at some point have their
//! own.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::{self, DataDir, Relay, Service, free_port, notification, start, task_id};
use crate::servers::Node;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A PDS event, as the dialer sends it.
const PDS_EVENT: &[u8] = include_bytes!("../../../tests/data/pds_contact_status.example.json");

/// The node the tests that keep it up share, started by the first one that asks; killed when
/// the test process ends (its keeper's input closes).
fn shared() -> &'static Node {
    static SHARED: OnceLock<Node> = OnceLock::new();
    SHARED.get_or_init(|| Node::start(free_port(), None))
}

/// The relay's URL for `exchange` on `port`, routing key `calls.{kind}`.
fn url(port: u16, exchange: &str) -> String {
    format!(
        "amqp://guest:guest@127.0.0.1:{port}/%2f?exchange={exchange}&routing_key=calls.{{kind}}"
    )
}

/// The URL as the relay shows it (its metrics' `destination`).
fn shown(port: u16, exchange: &str) -> String {
    format!("amqp://127.0.0.1:{port}/%2f?exchange={exchange}&routing_key=calls.{{kind}}")
}

/// Definitions for a fresh node: the guest user on `/`, a topic `exchange` and `queue` bound to
/// it with `binding`, all there before the node listens.
fn definitions(exchange: &str, queue: &str, binding: &str) -> String {
    // rabbit_password_hashing_sha256: base64(salt ++ SHA-256(salt ++ password)).
    let salt = [0x1a, 0x2b, 0x3c, 0x4d];
    let mut salted = salt.to_vec();
    salted.extend_from_slice(
        &Sha256::new()
            .chain_update(salt)
            .chain_update(b"guest")
            .finalize(),
    );
    serde_json::json!({
        "users": [{
            "name": "guest",
            "password_hash": base64::engine::general_purpose::STANDARD.encode(salted),
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": ["administrator"],
        }],
        "vhosts": [{"name": "/"}],
        "permissions": [{
            "user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*",
        }],
        "exchanges": [{
            "name": exchange, "vhost": "/", "type": "topic", "durable": true,
            "auto_delete": false, "internal": false, "arguments": {},
        }],
        "queues": [{
            "name": queue, "vhost": "/", "durable": true, "auto_delete": false, "arguments": {},
        }],
        "bindings": [{
            "source": exchange, "vhost": "/", "destination": queue,
            "destination_type": "queue", "routing_key": binding, "arguments": {},
        }],
    })
    .to_string()
}

/// Declares the topic `exchange`.
async fn exchange(channel: &Channel, exchange: &str) {
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
}

/// Declares `queue` and binds it to `exchange` with `binding`.
async fn bound_queue(channel: &Channel, queue: &str, exchange: &str, binding: &str) {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            binding.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
}

/// How many messages `queue` holds.
async fn held(channel: &Channel, queue: &str) -> u32 {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::default().passive(),
            FieldTable::default(),
        )
        .await
        .unwrap()
        .message_count()
}

/// One message as a consumer reads it.
#[derive(Debug)]
struct Got {
    routing_key: String,
    body: Vec<u8>,
    message_id: String,
    timestamp: Option<u64>,
    content_type: String,
    delivery_mode: Option<u8>,
    kind: String,
    headers: HashMap<String, String>,
}

impl Got {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    fn task(&self) -> String {
        task_id(&self.body)
    }

    /// Whether `webhook-signature` is the Standard Webhooks one of its id, timestamp and body.
    fn signed(&self) -> bool {
        let key = base64::engine::general_purpose::STANDARD
            .decode(SECRET.trim_start_matches("whsec_"))
            .unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(
            format!(
                "{}.{}.",
                self.header("webhook-id"),
                self.header("webhook-timestamp")
            )
            .as_bytes(),
        );
        mac.update(&self.body);
        let expected = format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        );
        self.header("webhook-signature") == expected
    }
}

/// Takes every message `queue` holds now (acknowledged as taken).
async fn take(channel: &Channel, queue: &str) -> Vec<Got> {
    let mut got = Vec::new();
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        let delivery = message.delivery;
        let properties = &delivery.properties;
        let text = |value: &Option<lapin::types::ShortString>| {
            value
                .as_ref()
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default()
        };
        let headers = properties
            .headers()
            .as_ref()
            .map(|table| {
                table
                    .inner()
                    .iter()
                    .map(|(name, value)| {
                        let value = match value {
                            AMQPValue::LongString(text) => {
                                String::from_utf8_lossy(text.as_bytes()).into_owned()
                            }
                            other => format!("{other:?}"),
                        };
                        (name.as_str().to_owned(), value)
                    })
                    .collect()
            })
            .unwrap_or_default();
        got.push(Got {
            routing_key: delivery.routing_key.as_str().to_owned(),
            message_id: text(properties.message_id()),
            timestamp: *properties.timestamp(),
            content_type: text(properties.content_type()),
            delivery_mode: *properties.delivery_mode(),
            kind: text(properties.kind()),
            headers,
            body: delivery.data,
        });
    }
    got
}

/// Takes from `queue` until `done` holds for all taken so far (within `within`).
async fn take_until(
    channel: &Channel,
    queue: &str,
    within: Duration,
    done: impl Fn(&[Got]) -> bool,
) -> Vec<Got> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    loop {
        got.extend(take(channel, queue).await);
        if done(&got) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{} messages in {queue} within {within:?}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the relay has nothing pending: every notification published or given up.
async fn settled(relay: &Relay, within: Duration) {
    relay
        .admin_api(None)
        .until("/admin/stats", within, |stats| stats["pending"] == 0)
        .await;
}

/// The one notification of `task` as the admin API lists it.
async fn listed(relay: &Relay, task: &str) -> Value {
    let found = relay
        .admin_api(None)
        .ok(&format!("/admin/notifications?task_id={task}"))
        .await;
    found["items"][0].clone()
}

/// `airudder_broker_connected` for `destination`, if the relay shows it.
async fn connected_gauge(relay: &Relay, destination: &str) -> Option<f64> {
    let metrics = common::client()
        .get(format!("http://{}/metrics", relay.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!("airudder_broker_connected{{destination=\"{destination}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.trim().parse().ok())
}

/// Waits until the gauge of `destination` is `value`.
async fn gauge_until(relay: &Relay, destination: &str, value: f64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let now = connected_gauge(relay, destination).await;
        if now == Some(value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "airudder_broker_connected of {destination} {value} within {within:?}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_down_at_first_gets_every_notification_signed_once_it_is_up() {
    let port = free_port();
    let data = DataDir::new();
    let url = url(port, "down-first");
    let relay = start(
        &data,
        &[
            ("AIRUDDER_FORWARD_URL", url.as_str()),
            ("AIRUDDER_FORWARD_SECRET", SECRET),
            ("AIRUDDER_RETRY_FOR", "1h"),
        ],
    )
    .await;
    let tasks: Vec<String> = (0..20).map(|i| format!("down-first-{i}")).collect();
    relay
        .post_all(tasks.iter().map(|task| notification(task)).collect(), 5)
        .await;
    // Nothing listens yet: each try fails saying where, without the credentials.
    let first = relay
        .admin_api(None)
        .until(
            "/admin/notifications?task_id=down-first-0",
            Duration::from_secs(10),
            |found| found["items"][0]["last_error"].is_string(),
        )
        .await;
    let error = first["items"][0]["last_error"].as_str().unwrap();
    assert!(
        error.contains(&format!("amqp://127.0.0.1:{port}/%2f?exchange=down-first")),
        "{error}"
    );
    assert!(!error.contains("guest"), "{error}");

    let node = Node::start(
        port,
        Some(&definitions("down-first", "down-first-q", "calls.#")),
    );
    let started = Instant::now();
    let connection = node.connect().await;
    eprintln!("RabbitMQ took {:?} to take a connection", started.elapsed());
    let channel = connection.create_channel().await.unwrap();
    // The store's backoff has grown meanwhile (1 s doubling): the next tries come within
    // about 30 s.
    let got = take_until(&channel, "down-first-q", Duration::from_secs(60), |got| {
        got.len() >= tasks.len()
    })
    .await;
    assert_eq!(got.len(), tasks.len(), "each once");
    let ids: HashSet<&str> = got.iter().map(|g| g.message_id.as_str()).collect();
    assert_eq!(ids.len(), tasks.len(), "one id each");
    let delivered: HashSet<String> = got.iter().map(Got::task).collect();
    assert_eq!(delivered, tasks.iter().cloned().collect::<HashSet<_>>());
    for message in &got {
        assert_eq!(
            message.body,
            notification(&message.task()),
            "the body as posted"
        );
        assert!(message.message_id.starts_with("msg_"), "{message:?}");
        assert_eq!(message.header("webhook-id"), message.message_id);
        assert_eq!(
            message.header("webhook-timestamp"),
            message.timestamp.unwrap().to_string()
        );
        assert!(message.signed(), "signed: {message:?}");
        assert_eq!(message.header("content-type"), "application/json");
        assert_eq!(message.content_type, "application/json");
        assert_eq!(message.header("airudder-event"), "task_notification");
        assert_eq!(message.kind, "task_notification");
        assert!(
            message.header("airudder-attempt").parse::<u32>().unwrap() > 1,
            "tried while the broker was down: {message:?}"
        );
        assert_eq!(message.delivery_mode, Some(2), "persistent");
        assert_eq!(message.routing_key, "calls.task_notification");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_publish_publishes_every_task_again_under_the_same_id() {
    let node = shared();
    let connection = node.connect().await;
    let channel = connection.create_channel().await.unwrap();
    exchange(&channel, "killed").await;
    bound_queue(&channel, "killed-q", "killed", "calls.#").await;
    let data = DataDir::new();
    let url = url(node.port, "killed");
    let mut relay = common::start_quiet(
        &data,
        &[
            ("AIRUDDER_FORWARD_URL", url.as_str()),
            ("AIRUDDER_FORWARD_RATE", "50/s"),
        ],
    )
    .await;
    // Paused while they are posted, so that the relay dies while it publishes them.
    let admin = relay.admin_api(None);
    let (status, paused) = admin.post("/admin/kinds/task_notification/pause").await;
    assert_eq!(status, 200, "{paused}");
    let tasks: Vec<String> = (0..300).map(|i| format!("killed-{i}")).collect();
    relay
        .post_all(tasks.iter().map(|task| notification(task)).collect(), 25)
        .await;
    let (status, resumed) = admin.post("/admin/kinds/task_notification/resume").await;
    assert_eq!(status, 200, "{resumed}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while held(&channel, "killed-q").await < 40 {
        assert!(Instant::now() < deadline, "publishing within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    relay.kill().await;
    let at_kill = held(&channel, "killed-q").await;
    assert!(
        at_kill < 300,
        "killed while publishing: {at_kill} published"
    );

    let relay = common::start_quiet(&data, &[("AIRUDDER_FORWARD_URL", url.as_str())]).await;
    let mut got = take_until(&channel, "killed-q", Duration::from_secs(60), |got| {
        got.iter().map(Got::task).collect::<HashSet<_>>().len() >= tasks.len()
    })
    .await;
    settled(&relay, Duration::from_secs(30)).await;
    got.extend(take(&channel, "killed-q").await);

    let mut ids: HashMap<String, HashSet<String>> = HashMap::new();
    for message in &got {
        assert_eq!(message.header("webhook-id"), message.message_id);
        ids.entry(message.task())
            .or_default()
            .insert(message.message_id.clone());
    }
    for task in &tasks {
        let of_task = ids.get(task).unwrap_or_else(|| panic!("{task} published"));
        assert_eq!(of_task.len(), 1, "{task}: one id, however many copies");
    }
    let distinct: HashSet<&String> = ids.values().flatten().collect();
    assert_eq!(distinct.len(), tasks.len(), "an id for each task");
    eprintln!(
        "{at_kill} published at the kill, {} messages for {} tasks in all",
        got.len(),
        tasks.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unroutable_message_is_a_dead_letter_delivered_by_a_replay_once_a_queue_is_bound() {
    let node = shared();
    let connection = node.connect().await;
    let channel = connection.create_channel().await.unwrap();
    exchange(&channel, "unroutable").await;
    let data = DataDir::new();
    let url = url(node.port, "unroutable");
    let relay = start(
        &data,
        &[
            ("AIRUDDER_FORWARD_URL", url.as_str()),
            ("AIRUDDER_RETRY_FOR", "2s"),
        ],
    )
    .await;
    assert_eq!(relay.post(notification("unroutable-1")).await, 200);
    let admin = relay.admin_api(None);
    let dead = admin
        .until("/admin/dead-letters", Duration::from_secs(20), |dead| {
            dead["items"]
                .as_array()
                .is_some_and(|items| !items.is_empty())
        })
        .await;
    let items = dead["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{dead}");
    let error = items[0]["last_error"].as_str().unwrap();
    assert!(
        error.contains(
            "the broker refused it: no queue is bound to exchange unroutable with routing key calls.task_notification: bind one, then replay the dead letters"
        ),
        "{error}"
    );
    assert!(error.contains("not forwarded within 2s"), "{error}");
    let id = items[0]["id"].as_u64().unwrap();

    bound_queue(
        &channel,
        "unroutable-q",
        "unroutable",
        "calls.task_notification",
    )
    .await;
    let (status, replayed) = admin
        .post(&format!("/admin/notifications/{id}/replay"))
        .await;
    assert_eq!(status, 200, "{replayed}");
    let got = take_until(&channel, "unroutable-q", Duration::from_secs(20), |got| {
        !got.is_empty()
    })
    .await;
    settled(&relay, Duration::from_secs(10)).await;
    assert_eq!(listed(&relay, "unroutable-1").await["state"], "handled");
    let got: Vec<Got> = got
        .into_iter()
        .chain(take(&channel, "unroutable-q").await)
        .collect();
    assert_eq!(got.len(), 1, "exactly the replayed one: {got:?}");
    assert_eq!(got[0].task(), "unroutable-1");
    assert_eq!(got[0].header("webhook-id"), got[0].message_id);
    assert_eq!(got[0].body, notification("unroutable-1"));
    // lapin logs a returned message, body and headers included, at WARN: personal data, never
    // in the relay's log.
    let mut relay = relay;
    relay.kill().await;
    let logs = relay.logs().await;
    for personal in [
        "Server returned us a message",
        "8612345678",
        "webhook-signature",
    ] {
        assert!(!logs.contains(personal), "{personal:?} in the log:\n{logs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_exchange_is_named_and_the_message_goes_once_it_is_declared() {
    let node = shared();
    let connection = node.connect().await;
    let channel = connection.create_channel().await.unwrap();
    let data = DataDir::new();
    // `{kind}` in the exchange too.
    let url = url(node.port, "absent.{kind}");
    let mut relay = start(
        &data,
        &[
            ("AIRUDDER_FORWARD_URL", url.as_str()),
            ("AIRUDDER_RETRY_FOR", "1h"),
        ],
    )
    .await;
    assert_eq!(relay.post(notification("absent-1")).await, 200);
    let found = relay
        .admin_api(None)
        .until(
            "/admin/notifications?task_id=absent-1",
            Duration::from_secs(10),
            |found| found["items"][0]["last_error"].is_string(),
        )
        .await;
    let error = found["items"][0]["last_error"].as_str().unwrap();
    assert_eq!(
        error,
        "the broker refused it: exchange absent.task_notification does not exist in vhost /: declare it, then replay the dead letters"
    );

    // Declared (and a queue bound): the store's next try goes through.
    exchange(&channel, "absent.task_notification").await;
    bound_queue(&channel, "absent-q", "absent.task_notification", "calls.#").await;
    let got = take_until(&channel, "absent-q", Duration::from_secs(30), |got| {
        !got.is_empty()
    })
    .await;
    assert_eq!(got[0].task(), "absent-1");
    assert_eq!(got[0].routing_key, "calls.task_notification");
    settled(&relay, Duration::from_secs(10)).await;
    let status = relay.terminate().await;
    assert!(status.success(), "exit {status}");
    let logs = relay.logs().await;
    assert!(
        !logs.contains("lost the connection"),
        "a closed channel is not a lost connection:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_sent_to_rabbitmq_goes_there_and_the_others_to_the_http_service() {
    let node = shared();
    let connection = node.connect().await;
    let channel = connection.create_channel().await.unwrap();
    exchange(&channel, "per-kind").await;
    bound_queue(&channel, "per-kind-q", "per-kind", "calls.pds_event").await;
    let service_port = free_port();
    let service = Service::start(service_port).await;
    let data = DataDir::new();
    let http = format!("http://127.0.0.1:{service_port}/hooks");
    let amqp = url(node.port, "per-kind");
    let relay = start(
        &data,
        &[
            ("AIRUDDER_FORWARD_URL", http.as_str()),
            ("AIRUDDER_FORWARD_URL_PDS_EVENT", amqp.as_str()),
        ],
    )
    .await;
    assert_eq!(relay.post(notification("per-kind-task")).await, 200);
    let posted = common::client()
        .post(format!("http://{}/airudder/pds", relay.addr))
        .header("content-type", "application/json")
        .body(PDS_EVENT)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);

    let got = take_until(&channel, "per-kind-q", Duration::from_secs(20), |got| {
        !got.is_empty()
    })
    .await;
    service.wait_for(1, Duration::from_secs(20)).await;
    settled(&relay, Duration::from_secs(10)).await;
    let got: Vec<Got> = got
        .into_iter()
        .chain(take(&channel, "per-kind-q").await)
        .collect();
    assert_eq!(got.len(), 1, "only the PDS event: {got:?}");
    assert_eq!(got[0].body, PDS_EVENT);
    assert_eq!(got[0].routing_key, "calls.pds_event");
    assert_eq!(got[0].header("airudder-event"), "pds_event");
    assert_eq!(got[0].kind, "pds_event");
    let received = service.received();
    assert_eq!(received.len(), 1, "only the task notification");
    assert_eq!(received[0].header("airudder-event"), "task_notification");
    assert_eq!(task_id(&received[0].body), "per-kind-task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connected_gauge_follows_the_broker_down_and_back() {
    let port = free_port();
    let node = Node::start(port, None);
    let connection = node.connect().await;
    let channel = connection.create_channel().await.unwrap();
    exchange(&channel, "gauge").await;
    bound_queue(&channel, "gauge-q", "gauge", "calls.#").await;
    let data = DataDir::new();
    let url = url(port, "gauge");
    let destination = shown(port, "gauge");
    let relay = start(
        &data,
        &[
            ("AIRUDDER_FORWARD_URL", url.as_str()),
            ("AIRUDDER_RETRY_FOR", "1h"),
        ],
    )
    .await;
    // Connected at the start, before any notification.
    gauge_until(&relay, &destination, 1.0, Duration::from_secs(10)).await;
    assert_eq!(relay.post(notification("gauge-1")).await, 200);
    take_until(&channel, "gauge-q", Duration::from_secs(10), |got| {
        got.len() == 1
    })
    .await;

    drop(channel);
    drop(connection);
    drop(node);
    assert_eq!(relay.post(notification("gauge-2")).await, 200);
    gauge_until(&relay, &destination, 0.0, Duration::from_secs(10)).await;
    let found = relay
        .admin_api(None)
        .until(
            "/admin/notifications?task_id=gauge-2",
            Duration::from_secs(10),
            |found| found["items"][0]["last_error"].is_string(),
        )
        .await;
    let error = found["items"][0]["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("no confirmation from the broker: "),
        "{error}"
    );
    assert!(!error.contains("guest"), "{error}");

    // Back (a new node, on the same port, with the exchange and queue from its start): the
    // relay connects again and the notification goes.
    let node = Node::start(port, Some(&definitions("gauge", "gauge-q", "calls.#")));
    let connection = node.connect().await;
    let channel = connection.create_channel().await.unwrap();
    let got = take_until(&channel, "gauge-q", Duration::from_secs(60), |got| {
        !got.is_empty()
    })
    .await;
    assert_eq!(got[0].task(), "gauge-2");
    gauge_until(&relay, &destination, 1.0, Duration::from_secs(10)).await;
}
