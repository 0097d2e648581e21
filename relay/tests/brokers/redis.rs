//! Redis Streams: the relay as a real process publishing to Debian's `redis-server` on
//! loopback, each entry read back with the `redis` crate as a consumer would.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use redis::aio::MultiplexedConnection;
use serde_json::Value;
use sha2::Sha256;

use crate::common::{
    self, DataDir, Relay, Service, free_port, notification, start, start_quiet, task_id,
};
use crate::servers::RedisServer;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The stream task notifications go to, with the URLs' `stream=airudder-{kind}`.
const TASKS: &str = "airudder-task_notification";

/// A PDS event, as the dialer sends it.
const PDS_EVENT: &[u8] = include_bytes!("../../../tests/data/pds_contact_status.example.json");

/// The relay's URL for a Redis on `port`.
fn url(port: u16, query: &str) -> String {
    format!("redis://127.0.0.1:{port}/0?stream=airudder-{{kind}}{query}")
}

/// The URL as the relay shows it (its metrics' `destination`).
fn shown(port: u16) -> String {
    format!("redis://127.0.0.1:{port}/0?stream=airudder-{{kind}}")
}

/// One stream entry as a consumer reads it.
#[derive(Debug)]
struct Entry {
    fields: HashMap<String, Vec<u8>>,
}

impl Entry {
    fn field(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .and_then(|value| std::str::from_utf8(value).ok())
            .unwrap_or_default()
    }

    fn body(&self) -> &[u8] {
        self.fields.get("body").map_or(&[], Vec::as_slice)
    }

    fn task(&self) -> String {
        task_id(self.body())
    }
}

/// Every entry of `stream`, oldest first (none if there is no such key).
async fn entries(connection: &mut MultiplexedConnection, stream: &str) -> Vec<Entry> {
    redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async::<Vec<(String, HashMap<String, Vec<u8>>)>>(connection)
        .await
        .expect("XRANGE")
        .into_iter()
        .map(|(_id, fields)| Entry { fields })
        .collect()
}

/// Waits until `done` holds for the entries of `stream`; returns them.
async fn entries_until(
    connection: &mut MultiplexedConnection,
    stream: &str,
    within: Duration,
    done: impl Fn(&[Entry]) -> bool,
) -> Vec<Entry> {
    let deadline = Instant::now() + within;
    loop {
        let found = entries(connection, stream).await;
        if done(&found) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{stream} within {within:?}: {} entries",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks an entry's signature as a consumer would, per Standard Webhooks: HMAC-SHA256 over
/// `{id}.{timestamp}.{body}` with the secret's key.
fn signature_is_valid(entry: &Entry) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(entry.field("webhook-id").as_bytes());
    mac.update(b".");
    mac.update(entry.field("webhook-timestamp").as_bytes());
    mac.update(b".");
    mac.update(entry.body());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    entry
        .field("webhook-signature")
        .split(' ')
        .any(|candidate| candidate == format!("v1,{expected}"))
}

/// The `airudder_broker_connected` gauge of the Redis on `port`, if the relay has it.
async fn connected_gauge(relay: &Relay, port: u16) -> Option<f64> {
    let text = common::client()
        .get(format!("http://{}/metrics", relay.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!(
        "airudder_broker_connected{{destination=\"{}\"}} ",
        shown(port)
    );
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .map(|value| value.trim().parse().unwrap())
}

/// Waits until that gauge is `value`.
async fn gauge_until(relay: &Relay, port: u16, value: f64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let now = connected_gauge(relay, port).await;
        if now == Some(value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "airudder_broker_connected {value} within {within:?}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The notifications of the admin API's list at `query`.
fn items(list: &Value) -> &[Value] {
    list["items"].as_array().map_or(&[], Vec::as_slice)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_down_at_first_gets_each_notification_later_signed_under_its_own_id() {
    let port = free_port();
    let data = DataDir::new();
    let url = url(port, "");
    let mut relay = start(
        &data,
        &[
            ("AIRUDDER_FORWARD_URL", url.as_str()),
            ("AIRUDDER_FORWARD_SECRET", SECRET),
            ("AIRUDDER_RETRY_FOR", "1h"),
        ],
    )
    .await;
    let tasks: Vec<String> = (0..20).map(|i| format!("redis-down-first-{i}")).collect();
    relay
        .post_all(tasks.iter().map(|task| notification(task)).collect(), 4)
        .await;

    // Each is tried while nothing listens, and fails saying where it could not go.
    let admin = relay.admin_api(None);
    let pending = admin
        .until(
            "/admin/notifications?state=pending",
            Duration::from_secs(10),
            |list| {
                items(list).len() == tasks.len()
                    && items(list)
                        .iter()
                        .all(|item| item["last_error"].is_string())
            },
        )
        .await;
    for item in items(&pending) {
        let error = item["last_error"].as_str().unwrap_or_default();
        assert!(
            error.contains("no confirmation from the broker") && error.contains(&shown(port)),
            "{error}"
        );
    }
    assert_eq!(connected_gauge(&relay, port).await, Some(0.0));

    let server = RedisServer::start(port, &[]).await;
    let mut connection = server.connection().await;
    gauge_until(&relay, port, 1.0, Duration::from_secs(30)).await;
    entries_until(&mut connection, TASKS, Duration::from_secs(30), |found| {
        found.len() >= tasks.len()
    })
    .await;
    // Once every one is marked handled nothing is left to publish: the stream is final.
    admin
        .until(
            "/admin/notifications?state=handled",
            Duration::from_secs(10),
            |list| items(list).len() == tasks.len(),
        )
        .await;
    let found = entries(&mut connection, TASKS).await;
    assert_eq!(found.len(), tasks.len(), "each once");

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut ids = HashSet::new();
    for entry in &found {
        let task = entry.task();
        assert_eq!(entry.body(), &notification(&task)[..], "the body as posted");
        assert!(
            ids.insert(entry.field("webhook-id").to_owned()),
            "{entry:?}"
        );
        assert!(entry.field("webhook-id").starts_with("msg_"), "{entry:?}");
        assert_eq!(entry.field("kind"), "task_notification");
        assert_eq!(entry.field("content-type"), "application/json");
        assert_eq!(entry.field("timestamp"), entry.field("webhook-timestamp"));
        let timestamp: u64 = entry.field("timestamp").parse().unwrap();
        assert!(now.abs_diff(timestamp) < 300, "{timestamp} against {now}");
        let attempt: u32 = entry.field("attempt").parse().unwrap();
        assert!(attempt >= 2, "the first try failed: {entry:?}");
        assert!(signature_is_valid(entry), "signed: {entry:?}");
    }
    let posted: HashSet<String> = tasks.into_iter().collect();
    let read: HashSet<String> = found.iter().map(Entry::task).collect();
    assert_eq!(read, posted);

    let status = relay.terminate().await;
    assert!(status.success(), "exit {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_publish_adds_each_notification_at_least_once_a_copy_under_the_same_id()
{
    let server = RedisServer::start(free_port(), &[]).await;
    let mut connection = server.connection().await;
    let data = DataDir::new();
    let url = url(server.port, "");
    let env = [
        ("AIRUDDER_FORWARD_URL", url.as_str()),
        ("AIRUDDER_RETRY_FOR", "1h"),
    ];
    // Quiet: a log line a notification would fill the stderr pipe nobody reads.
    let mut relay = start_quiet(&data, &env).await;
    let tasks: Vec<String> = (0..300).map(|i| format!("redis-killed-{i}")).collect();
    let bodies: Vec<Vec<u8>> = tasks.iter().map(|task| notification(task)).collect();
    relay.post_all(bodies[..100].to_vec(), 16).await;
    entries_until(&mut connection, TASKS, Duration::from_secs(20), |found| {
        found.len() >= 100
    })
    .await;

    // Redis holds back every write for now: the relay's XADDs wait for their answers.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(30_000)
        .arg("WRITE")
        .query_async(&mut connection)
        .await
        .unwrap();
    relay.post_all(bodies[100..].to_vec(), 16).await;
    relay
        .admin_api(None)
        .until("/admin/stats", Duration::from_secs(10), |stats| {
            stats["pending"].as_u64() >= Some(1)
        })
        .await;
    // The relay frozen, Redis adds what it holds: the entries are in, their answers unread.
    let pid = relay.child.id().unwrap().to_string();
    let stopped = Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    assert!(stopped.success());
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(&mut connection)
        .await
        .unwrap();
    entries_until(&mut connection, TASKS, Duration::from_secs(10), |found| {
        found.len() > 100
    })
    .await;
    relay.kill().await;
    let in_flight = entries(&mut connection, TASKS).await.len() - 100;

    let mut relay = start_quiet(&data, &env).await;
    relay
        .admin_api(None)
        .until(
            "/admin/notifications?state=handled&limit=1000",
            Duration::from_secs(40),
            |list| items(list).len() == tasks.len(),
        )
        .await;
    let found = entries(&mut connection, TASKS).await;
    // Redis de-duplicates nothing: those added before the kill are added again, under the same
    // webhook-id, which a consumer de-duplicates on.
    let mut copies: HashMap<String, Vec<&Entry>> = HashMap::new();
    for entry in &found {
        copies.entry(entry.task()).or_default().push(entry);
    }
    let posted: HashSet<&String> = tasks.iter().collect();
    assert_eq!(
        copies.keys().collect::<HashSet<_>>(),
        posted,
        "each at least once"
    );
    let mut twice = 0;
    for (task, entries) in &copies {
        let first = entries[0];
        for copy in &entries[1..] {
            assert_eq!(
                copy.field("webhook-id"),
                first.field("webhook-id"),
                "{task}"
            );
            assert_eq!(copy.body(), first.body(), "{task}");
            let attempt = |entry: &Entry| entry.field("attempt").parse::<u32>().unwrap();
            assert!(attempt(copy) > attempt(first), "{task}: a later attempt");
            twice += 1;
        }
    }
    assert!(
        twice >= in_flight,
        "the {in_flight} in flight at the kill added again: {twice} copies"
    );
    let ids: HashSet<&str> = copies.values().map(|e| e[0].field("webhook-id")).collect();
    assert_eq!(ids.len(), tasks.len(), "an id of its own for each");
    let status = relay.terminate().await;
    assert!(status.success(), "exit {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_key_of_another_type_is_a_dead_letter_saying_so_and_replayed_once_deleted() {
    let server = RedisServer::start(free_port(), &[]).await;
    let mut connection = server.connection().await;
    let _: () = redis::cmd("SET")
        .arg(TASKS)
        .arg("x")
        .query_async(&mut connection)
        .await
        .unwrap();
    let data = DataDir::new();
    let url = url(server.port, "");
    let mut relay = start(
        &data,
        &[
            ("AIRUDDER_FORWARD_URL", url.as_str()),
            ("AIRUDDER_RETRY_FOR", "2s"),
        ],
    )
    .await;
    assert_eq!(relay.post(notification("redis-wrongtype")).await, 200);

    let admin = relay.admin_api(None);
    let path = "/admin/notifications?task_id=redis-wrongtype";
    let failed = admin
        .until(path, Duration::from_secs(10), |list| {
            items(list)
                .first()
                .is_some_and(|item| item["last_error"].is_string())
        })
        .await;
    let error = items(&failed)[0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("the broker refused it: Redis answered WRONGTYPE")
            && error.contains(&format!(
                "the key {TASKS} holds another type than a stream; delete or rename it"
            ))
            && error.ends_with("then replay the dead letters"),
        "{error}"
    );
    let dead = admin
        .until(path, Duration::from_secs(15), |list| {
            items(list)
                .first()
                .is_some_and(|item| item["state"] == "dead")
        })
        .await;
    let error = items(&dead)[0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("not forwarded within 2s") && error.contains("WRONGTYPE"),
        "{error}"
    );

    // Fixed as the message says, then replayed.
    let _: () = redis::cmd("DEL")
        .arg(TASKS)
        .query_async(&mut connection)
        .await
        .unwrap();
    let (status, replayed) = admin.post("/admin/dead-letters/replay").await;
    assert_eq!(
        (status, &replayed["replayed"]),
        (200, &Value::from(1)),
        "{replayed}"
    );
    let found = entries_until(&mut connection, TASKS, Duration::from_secs(10), |found| {
        !found.is_empty()
    })
    .await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].task(), "redis-wrongtype");
    admin
        .until(path, Duration::from_secs(10), |list| {
            items(list)
                .first()
                .is_some_and(|item| item["state"] == "handled")
        })
        .await;
    let status = relay.terminate().await;
    assert!(status.success(), "exit {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_with_maxlen_is_trimmed_not_refused() {
    // `MAXLEN ~` trims whole nodes of the stream's radix tree only; with Redis' default of 100
    // entries a node, 20 entries would all stay. Nodes of 4 show the trimming at this size.
    let server = RedisServer::start(free_port(), &["--stream-node-max-entries", "4"]).await;
    let mut connection = server.connection().await;
    let data = DataDir::new();
    let url = url(server.port, "&maxlen=5");
    let mut relay = start(
        &data,
        &[
            ("AIRUDDER_FORWARD_URL", url.as_str()),
            ("AIRUDDER_RETRY_FOR", "1h"),
        ],
    )
    .await;
    let tasks: Vec<String> = (0..20).map(|i| format!("redis-maxlen-{i}")).collect();
    let admin = relay.admin_api(None);
    let handled = |count: usize| move |list: &Value| items(list).len() == count;
    // The last one posted once the others are in: it is the stream's last entry.
    relay
        .post_all(
            tasks[..19].iter().map(|task| notification(task)).collect(),
            4,
        )
        .await;
    let path = "/admin/notifications?state=handled";
    admin
        .until(path, Duration::from_secs(20), handled(19))
        .await;
    assert_eq!(relay.post(notification(&tasks[19])).await, 200);
    let list = admin
        .until(path, Duration::from_secs(10), handled(20))
        .await;
    for item in items(&list) {
        assert_eq!(item["attempts"], 1, "no attempt failed: {item}");
        assert!(item["last_error"].is_null(), "{item}");
    }

    let length: usize = redis::cmd("XLEN")
        .arg(TASKS)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!((5..20).contains(&length), "trimmed to about 5: {length}");
    let found = entries(&mut connection, TASKS).await;
    assert_eq!(found.last().unwrap().task(), tasks[19]);
    let status = relay.terminate().await;
    assert!(status.success(), "exit {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_sent_to_redis_goes_there_and_the_others_to_their_url() {
    let server = RedisServer::start(free_port(), &[]).await;
    let mut connection = server.connection().await;
    let port = free_port();
    let service = Service::start(port).await;
    let data = DataDir::new();
    let http = format!("http://127.0.0.1:{port}/hooks");
    let redis = url(server.port, "");
    let mut relay = start(
        &data,
        &[
            ("AIRUDDER_FORWARD_URL", http.as_str()),
            ("AIRUDDER_FORWARD_URL_PDS_EVENT", redis.as_str()),
            ("AIRUDDER_RETRY_FOR", "1h"),
        ],
    )
    .await;
    assert_eq!(relay.post(notification("redis-per-kind")).await, 200);
    let answer = common::client()
        .post(format!("http://{}/airudder/pds", relay.addr))
        .header("content-type", "application/json")
        .body(PDS_EVENT)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);

    relay
        .admin_api(None)
        .until(
            "/admin/notifications?state=handled",
            Duration::from_secs(20),
            |list| items(list).len() == 2,
        )
        .await;
    let found = entries(&mut connection, "airudder-pds_event").await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].body(), PDS_EVENT, "the PDS event as posted");
    assert_eq!(found[0].field("kind"), "pds_event");
    let exists: u32 = redis::cmd("EXISTS")
        .arg(TASKS)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(exists, 0, "no task notification in Redis");
    let received = service.received();
    assert_eq!(received.len(), 1, "the task notification only");
    assert_eq!(task_id(&received[0].body), "redis-per-kind");
    assert_eq!(received[0].header("airudder-event"), "task_notification");
    let status = relay.terminate().await;
    assert!(status.success(), "exit {status}");
}

/// `GET /ready` on the main listener: its status and text.
async fn ready(relay: &Relay) -> (u16, String) {
    let answer = common::client()
        .get(format!("http://{}/ready", relay.addr))
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_redis_shows_in_the_gauge_and_is_connected_again_when_back() {
    let port = free_port();
    let mut server = RedisServer::start(port, &[]).await;
    let data = DataDir::new();
    let url = url(port, "");
    let mut relay = start(
        &data,
        &[
            ("AIRUDDER_FORWARD_URL", url.as_str()),
            ("AIRUDDER_RETRY_FOR", "1h"),
        ],
    )
    .await;
    // Connected at the start, before any notification.
    gauge_until(&relay, port, 1.0, Duration::from_secs(10)).await;
    assert_eq!(
        ready(&relay).await,
        (200, "ready\nbrokers connected: 1 of 1".to_owned())
    );

    server.kill();
    assert_eq!(relay.post(notification("redis-lost")).await, 200);
    gauge_until(&relay, port, 0.0, Duration::from_secs(10)).await;
    // Still ready: what it takes in is stored; /ready says the broker is not connected, and
    // the overview says which and why.
    assert_eq!(
        ready(&relay).await,
        (200, "ready\nbrokers connected: 0 of 1".to_owned())
    );
    let overview = relay.admin_api(None).ok("/admin/overview").await;
    let broker = &overview["brokers"][0];
    assert_eq!(broker["destination"], shown(port), "{overview}");
    assert_eq!(broker["connected"], false, "{overview}");
    assert!(broker["last_error"].is_string(), "{overview}");
    let admin = relay.admin_api(None);
    let path = "/admin/notifications?task_id=redis-lost";
    let failed = admin
        .until(path, Duration::from_secs(10), |list| {
            items(list)
                .first()
                .is_some_and(|item| item["last_error"].is_string())
        })
        .await;
    let error = items(&failed)[0]["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("no confirmation from the broker") && error.contains(&shown(port)),
        "{error}"
    );

    // Back on the same port: connected again, and the notification added.
    let server = RedisServer::start(port, &[]).await;
    let mut connection = server.connection().await;
    let found = entries_until(&mut connection, TASKS, Duration::from_secs(30), |found| {
        !found.is_empty()
    })
    .await;
    assert_eq!(found[0].task(), "redis-lost");
    gauge_until(&relay, port, 1.0, Duration::from_secs(5)).await;
    let status = relay.terminate().await;
    assert!(status.success(), "exit {status}");
}
