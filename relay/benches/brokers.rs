//! Notifications a second through the relay to each kind of destination, beside the relay's
//! durable ingest alone, all in one run on loopback with the same load: (a) the ingest alone
//! (printing mode); through the relay (b) to an HTTP service, (c) to Redis Streams, (d) to
//! RabbitMQ, (e) to NATS JetStream; and the time from each post to its confirmation.
//!
//! A forwarding row is timed from the first post until the relay's admin API counts every
//! notification handled (asked every 50 ms). The time from a post to its confirmation is the
//! relay's own record of it, on its clock, to the millisecond: from its receipt (`received_at`)
//! to the end of its last attempt (`at` + `duration_ms`), the same for every destination; the
//! attempt alone (`duration_ms`) is the publish to the broker's confirmation, or the POST to the
//! service's answer. Each broker server runs only for its own row, and the relay's CPU (and the
//! broker server's) is read from `/proc`.
//!
//! The brokers are Debian's `redis-server` (no persistence, as the tests start it),
//! `rabbitmq-server` (a durable topic exchange and queue) and `nats-server -js` (a file
//! stream); the HTTP service runs on a thread and a runtime of its own, the load on another.
//!
//! Run with: cargo bench -p airudder-relay --bench brokers
//! Under `cargo test --benches` it sends 200 notifications a row only.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../../tests/support/ports.rs"]
mod ports;
#[path = "../tests/brokers/servers.rs"]
#[allow(dead_code)]
mod servers;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream;
use common::{DataDir, free_port, notification, start_quiet};
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, ExchangeKind};
use serde_json::Value;
use servers::{NatsServer, Node, RedisServer};

/// Where each broker row publishes.
const STREAM: &str = "airudder-bench";
const EXCHANGE: &str = "airudder-bench";
const QUEUE: &str = "airudder-bench-q";
const SUBJECT: &str = "airudder.bench";
const JETSTREAM: &str = "AIRUDDER_BENCH";

/// Posts `count` distinct notifications to `url` from `concurrency` keep-alive connections;
/// each must be answered 2xx. Returns the whole run's length.
async fn load(url: &str, count: usize, concurrency: usize, prefix: &str) -> Duration {
    let client = common::client();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, next) = (client.clone(), Arc::clone(&next));
            let (url, prefix) = (url.to_owned(), prefix.to_owned());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return;
                    }
                    let answer = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(notification(&format!("{prefix}-{i:08}")))
                        .send()
                        .await
                        .expect("an answer");
                    assert!(answer.status().is_success(), "{}", answer.status());
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    started.elapsed()
}

/// The CPU time the process `pid` has run so far, all its threads (`/proc/PID/task/*/schedstat`,
/// nanoseconds on a CPU); zero once it is gone.
fn cpu(pid: u32) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let mut total = 0u64;
    for task in tasks.flatten() {
        if let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) {
            total += stat
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(total)
}

/// The CPU time so far of each process this bench started, and theirs in turn, but the relay
/// `except`: the broker server's (RabbitMQ's keeper shell, its VM and helpers).
fn others(except: u32) -> HashMap<u32, Duration> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`: the command may hold spaces and parentheses.
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(parent) = parent {
            children.entry(parent).or_default().push(pid);
        }
    }
    let mut found = HashMap::new();
    let mut stack = vec![std::process::id()];
    while let Some(pid) = stack.pop() {
        for &child in children.get(&pid).map_or(&[][..], Vec::as_slice) {
            if child != except {
                found.insert(child, cpu(child));
                stack.push(child);
            }
        }
    }
    found
}

/// The CPU those processes ran between two readings (a process started between them counts
/// from zero; one that ended is lost).
fn others_between(before: &HashMap<u32, Duration>, after: &HashMap<u32, Duration>) -> Duration {
    after
        .iter()
        .map(|(pid, at)| at.saturating_sub(before.get(pid).copied().unwrap_or_default()))
        .sum()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// GET `url` from the relay's admin API, which must answer 200 with JSON.
async fn get(client: &reqwest::Client, url: &str) -> Value {
    let answer = client.get(url).send().await.expect("the admin API answers");
    let status = answer.status();
    let bytes = answer.bytes().await.unwrap();
    assert_eq!(
        status,
        200,
        "GET {url}: {}",
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes).unwrap()
}

fn time(value: &Value) -> SystemTime {
    let text = value.as_str().expect("a time");
    humantime::parse_rfc3339_weak(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// One row's figures.
struct Row {
    name: &'static str,
    elapsed: Duration,
    /// The relay's CPU over the row.
    relay_cpu: Duration,
    /// The broker server's processes' CPU over the row (none for the ingest and HTTP rows).
    broker_cpu: Option<Duration>,
    /// From the relay's receipt to the broker's (or service's) confirmation, sorted.
    latencies: Vec<Duration>,
    /// The last attempt alone (publish to confirmation, or POST to answer), sorted.
    attempts: Vec<Duration>,
}

/// Each notification's time from receipt to confirmation, from the relay's records of the
/// `count` handled notifications (every one confirmed: its last attempt `ok`; each task once),
/// and how long that attempt took, each sorted.
async fn confirmations(admin: &str, count: usize, prefix: &str) -> (Vec<Duration>, Vec<Duration>) {
    let client = common::client();
    let mut records = Vec::with_capacity(count);
    let mut after = 0u64;
    loop {
        let page = get(
            &client,
            &format!("{admin}/admin/notifications?state=handled&limit=1000&after={after}"),
        )
        .await;
        for item in page["items"].as_array().unwrap() {
            records.push((
                item["id"].as_u64().unwrap(),
                item["task_id"].as_str().unwrap().to_owned(),
                time(&item["received_at"]),
            ));
        }
        match page["next_after"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
    }
    let tasks: HashSet<&str> = records.iter().map(|(_, task, _)| task.as_str()).collect();
    assert_eq!(records.len(), count, "handled records");
    assert_eq!(tasks.len(), count, "distinct tasks handled");
    assert!(tasks.iter().all(|task| task.starts_with(prefix)));

    // Each record's attempts, eight asked at a time (after the row's timing).
    let records = Arc::new(records);
    let next = Arc::new(AtomicUsize::new(0));
    let askers: Vec<_> = (0..8)
        .map(|_| {
            let (client, records, next) = (client.clone(), Arc::clone(&records), Arc::clone(&next));
            let admin = admin.to_owned();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((id, _, received)) = records.get(i) else {
                        return latencies;
                    };
                    let record = get(&client, &format!("{admin}/admin/notifications/{id}")).await;
                    let last = record["attempts"]
                        .as_array()
                        .and_then(|attempts| attempts.last())
                        .unwrap_or_else(|| panic!("notification {id} has no attempt: {record}"));
                    assert_eq!(last["outcome"], "ok", "notification {id}: {record}");
                    let attempt = Duration::from_millis(last["duration_ms"].as_u64().unwrap());
                    let confirmed = time(&last["at"]) + attempt;
                    latencies.push((
                        confirmed.duration_since(*received).unwrap_or_default(),
                        attempt,
                    ));
                }
            })
        })
        .collect();
    let (mut latencies, mut attempts) = (Vec::with_capacity(count), Vec::with_capacity(count));
    for asker in askers {
        for (latency, attempt) in asker.await.unwrap() {
            latencies.push(latency);
            attempts.push(attempt);
        }
    }
    latencies.sort_unstable();
    attempts.sort_unstable();
    (latencies, attempts)
}

/// The relay forwarding to `url`, timed from the first post until it counts `count` handled.
async fn through(
    name: &'static str,
    url: &str,
    count: usize,
    concurrency: usize,
    prefix: &str,
    forward_concurrency: Option<&str>,
    broker: bool,
) -> Row {
    let data = DataDir::new();
    let mut env = vec![("AIRUDDER_FORWARD_URL", url)];
    if let Some(n) = forward_concurrency {
        env.push(("AIRUDDER_FORWARD_CONCURRENCY", n));
    }
    let mut relay = start_quiet(&data, &env).await;
    let relay_url = format!("http://{}/airudder/task", relay.addr);
    let admin = format!("http://{}", relay.admin);
    let counter = format!("{admin}/admin/notifications/count?state=handled");
    let client = common::client();
    let pid = relay.child.id().unwrap();
    let within = Duration::from_secs(600);

    let (before, brokers_before) = (cpu(pid), others(pid));
    let started = Instant::now();
    load(&relay_url, count, concurrency, prefix).await;
    loop {
        let handled = get(&client, &counter).await["count"].as_u64().unwrap() as usize;
        assert!(handled <= count, "{handled} handled of {count} posted");
        if handled == count {
            break;
        }
        if started.elapsed() > within {
            let pending = get(
                &client,
                &format!("{admin}/admin/notifications?state=pending&limit=1"),
            )
            .await;
            panic!("{name}: {handled} of {count} handled within {within:?}; pending: {pending}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    let relay_cpu = cpu(pid) - before;
    let broker_cpu = broker.then(|| others_between(&brokers_before, &others(pid)));

    let (latencies, attempts) = confirmations(&admin, count, prefix).await;
    assert!(
        relay.terminate().await.success(),
        "{name}: the relay's exit"
    );
    Row {
        name,
        elapsed,
        relay_cpu,
        broker_cpu,
        latencies,
        attempts,
    }
}

/// A durable topic exchange and a durable queue bound to it, taking everything.
async fn declare(channel: &Channel) {
    channel
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_declare(
            QUEUE.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            QUEUE.into(),
            EXCHANGE.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
}

/// A JetStream context on the server at `port`, with the stream taking `SUBJECT` (tried again
/// while JetStream is still starting).
async fn jetstream_with_stream(port: u16) -> jetstream::Context {
    let client = tokio::time::timeout(
        Duration::from_secs(10),
        async_nats::connect(format!("127.0.0.1:{port}")),
    )
    .await
    .expect("connected within 10 s")
    .expect("the bench connects to nats-server");
    let js = jetstream::new(client);
    let config = jetstream::stream::Config {
        name: JETSTREAM.to_owned(),
        subjects: vec![SUBJECT.to_owned()],
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(err) = js.create_stream(config.clone()).await {
        assert!(
            Instant::now() < deadline,
            "stream {JETSTREAM} not added within 10 s: {err}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    js
}

fn main() {
    let timed = std::env::args().any(|arg| arg == "--bench");
    let count = if timed { 5_000 } else { 200 };
    let concurrency = 64;
    // `-- --forward-concurrency=N` for the relay's AIRUDDER_FORWARD_CONCURRENCY (default 16).
    let forward_concurrency = std::env::args().find_map(|arg| {
        arg.strip_prefix("--forward-concurrency=")
            .map(str::to_owned)
    });
    let forward_concurrency = forward_concurrency.as_deref();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // The HTTP service is another system: a thread and a runtime of its own, until the end.
    let port = free_port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service_thread = std::thread::spawn(move || {
        let own = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        own.block_on(async move {
            let _service = common::Service::start(port).await;
            let _ = stopped.await;
        });
    });
    let run_started = Instant::now();
    let rows = runtime.block_on(async {
        // (a) the relay's durable ingest alone: printing mode, its stdout thrown away.
        let data = DataDir::new();
        let mut ingest = start_quiet(&data, &[]).await;
        let pid = ingest.child.id().unwrap();
        let before = cpu(pid);
        let elapsed = load(
            &format!("http://{}/airudder/task", ingest.addr),
            count,
            concurrency,
            "ingest",
        )
        .await;
        let ingest_cpu = cpu(pid) - before;
        assert!(ingest.terminate().await.success());
        let mut rows = vec![Row {
            name: "(a) the relay's durable ingest alone (printing)",
            elapsed,
            relay_cpu: ingest_cpu,
            broker_cpu: None,
            latencies: Vec::new(),
            attempts: Vec::new(),
        }];

        // (b) to the HTTP service (a 200 at once).
        let url = format!("http://127.0.0.1:{port}/hooks");
        rows.push(
            through(
                "(b) through the relay to an HTTP service",
                &url,
                count,
                concurrency,
                "http",
                forward_concurrency,
                false,
            )
            .await,
        );

        // (c) to Redis Streams: XADD answered with the entry's id.
        let redis = RedisServer::start(free_port(), &[]).await;
        let url = format!("redis://127.0.0.1:{}/0?stream={STREAM}", redis.port);
        rows.push(
            through(
                "(c) through the relay to Redis Streams",
                &url,
                count,
                concurrency,
                "redis",
                forward_concurrency,
                true,
            )
            .await,
        );
        let held: u64 = redis::cmd("XLEN")
            .arg(STREAM)
            .query_async(&mut redis.connection().await)
            .await
            .unwrap();
        assert_eq!(held, count as u64, "entries in the Redis stream");
        drop(redis);

        // (d) to RabbitMQ: publisher confirms, into a durable queue.
        let node = Node::start(free_port(), None);
        let connection = node.connect().await;
        let channel = connection.create_channel().await.unwrap();
        declare(&channel).await;
        let url = format!(
            "amqp://guest:guest@127.0.0.1:{}/%2f?exchange={EXCHANGE}&routing_key=calls.{{kind}}",
            node.port
        );
        rows.push(
            through(
                "(d) through the relay to RabbitMQ",
                &url,
                count,
                concurrency,
                "amqp",
                forward_concurrency,
                true,
            )
            .await,
        );
        let held = channel
            .queue_declare(
                QUEUE.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count();
        assert_eq!(held as usize, count, "messages in the RabbitMQ queue");
        let _ = connection.close(200, "done".into()).await;
        drop(node);

        // (e) to NATS JetStream: the publish acknowledgement, from a file stream.
        let nats_port = free_port();
        let nats = NatsServer::start(nats_port, &[]).await;
        let js = jetstream_with_stream(nats_port).await;
        let url = format!("nats://127.0.0.1:{nats_port}?subject={SUBJECT}");
        rows.push(
            through(
                "(e) through the relay to NATS JetStream",
                &url,
                count,
                concurrency,
                "nats",
                forward_concurrency,
                true,
            )
            .await,
        );
        let held = js
            .get_stream(JETSTREAM)
            .await
            .unwrap()
            .cached_info()
            .state
            .messages;
        assert_eq!(held, count as u64, "messages in the JetStream stream");
        drop(js);
        drop(nats);
        rows
    });
    let _ = stop.send(());
    service_thread.join().unwrap();
    drop(runtime);

    let rate = |row: &Row| count as f64 / row.elapsed.as_secs_f64();
    let per = |cpu: Duration| cpu.as_secs_f64() * 1e6 / count as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let ingest = &rows[0];
    println!(
        "\n{count} distinct notifications (the sender's example, 2.8 KB) a row, {concurrency} \
         keep-alive connections, everything on one machine (the relay, the broker or service and \
         the load share its cores); forward concurrency {}; the whole run {:.1} s\n",
        forward_concurrency.unwrap_or("16 (the default)"),
        run_started.elapsed().as_secs_f64()
    );
    println!(
        "| row | notifications/s | ratio to (a) | post to confirmation, median | p99 | the attempt alone, median | relay CPU a notification | broker server CPU a notification |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    // A percentile of a row's sorted times, blank for the ingest's (none).
    let at = |sorted: &[Duration], p: f64| match sorted {
        [] => String::new(),
        _ => format!("{:.0} ms", ms(percentile(sorted, p))),
    };
    for row in &rows {
        println!(
            "| {} | {:.0} | {:.2} | {} | {} | {} | {:.0} µs | {} |",
            row.name,
            rate(row),
            rate(row) / rate(ingest),
            at(&row.latencies, 0.5),
            at(&row.latencies, 0.99),
            at(&row.attempts, 0.5),
            per(row.relay_cpu),
            row.broker_cpu
                .map_or(String::new(), |cpu| format!("{:.0} µs", per(cpu)))
        );
    }
    println!();
    println!(
        "(a) the ingest alone: {:.0}/s, the relay's CPU {:.0} µs a notification",
        rate(ingest),
        per(ingest.relay_cpu)
    );
    for row in &rows[1..] {
        println!(
            "{}: {:.0}/s ({:.2}x (a)); post to confirmation median {:.0} ms, p99 {:.0} ms (the attempt alone: median {:.0} ms, p99 {:.0} ms); the relay's CPU {:.0} µs a notification ({:.2}x (a)){}",
            row.name,
            rate(row),
            rate(row) / rate(ingest),
            ms(percentile(&row.latencies, 0.5)),
            ms(percentile(&row.latencies, 0.99)),
            ms(percentile(&row.attempts, 0.5)),
            ms(percentile(&row.attempts, 0.99)),
            per(row.relay_cpu),
            per(row.relay_cpu) / per(ingest.relay_cpu),
            row.broker_cpu.map_or(String::new(), |cpu| format!(
                ", the broker server's {:.0} µs",
                per(cpu)
            ))
        );
    }
}
