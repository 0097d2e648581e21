//! Load benchmark over real loopback connections, every server measured in one run.
//!
//! Run with: cargo bench --bench load (add `--features postgres` for row (f))
//!
//! Each server listens on 127.0.0.1 port 0 and gets the same load: the contract's example body,
//! 64 keep-alive HTTP/1.1 connections, each sending its next request as soon as the last is
//! answered, for 5 s, after an unmeasured second of the same load; three rounds of every row.
//! Reported, as medians over the rounds: requests per second, p50, p99 and p99.9 time to the
//! 200, each server's throughput as a ratio to (a), the floor, taken within each round, and the
//! CPU time the server's threads and the load's thread spent per request (from
//! `/proc/self/task/*/schedstat`, Linux only), with the server's difference to (a) in the same
//! round: what a row costs, whoever is the bottleneck.
//! `cargo bench --bench load -- c e` measures (a) and the rows named only;
//! `--server-threads=2` gives the server's runtime 2 worker threads instead of 1;
//! `--rounds=N` measures N rounds instead of 3.
//!
//! - (a) bare hyper 1: reads the body, answers `{}` without parsing it (the floor);
//! - (a2) axum: reads the body (`Bytes`), answers `{}` without parsing it (axum's own floor);
//! - (b) hand-written axum: `Json<serde_json::Value>` plus `tokio::spawn`, answers `{}`;
//! - (c) this crate in axum, in-memory ack, no-op handler;
//! - (c2) as (c), served by hyper 1 directly, as (a) is (what axum costs, apart from the crate);
//! - (d) this crate in axum, durable ack (redb, fsynced before each 200);
//! - (e) as (c), with a handler that sleeps 1 s: the 200 must not wait for it;
//! - (f) with `--features postgres`: this crate, durable ack on PostgreSQL (a throwaway
//!   cluster on the same machine, started by the bench, `synchronous_commit` on);
//! - (c3) with `--features metrics`: as (c), recording into a Prometheus recorder
//!   (`metrics-exporter-prometheus`, with histogram buckets, upkeep every 5 s and a scrape
//!   rendered every second, as a relay scraped by Prometheus does). Row (c), in the same run,
//!   has the feature compiled in and no recorder: what a user without metrics pays.
//!
//! Under `cargo test --benches` (no `--bench` argument) each server runs for a moment only, to
//! prove the program works; timings are printed but mean nothing there.

#[path = "../tests/support/mod.rs"]
mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use airudder_webhook::model::TaskNotification;
use airudder_webhook::store::RedbStore;
use airudder_webhook::{Delivery, Receiver};
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;

const CONNECTIONS: usize = 64;

struct Outcome {
    ok: usize,
    other: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    p999: Duration,
    /// CPU time the server's threads used during the row, where the OS tells it (Linux).
    server_cpu: Option<Duration>,
    /// The same for the load's thread.
    load_cpu: Option<Duration>,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// Server CPU time per request answered, in microseconds (NaN where unknown).
    fn server_us(&self) -> f64 {
        self.server_cpu.map_or(f64::NAN, |cpu| {
            cpu.as_secs_f64() * 1e6 / self.ok.max(1) as f64
        })
    }

    /// The load's CPU time per request, in microseconds (NaN where unknown).
    fn load_us(&self) -> f64 {
        self.load_cpu.map_or(f64::NAN, |cpu| {
            cpu.as_secs_f64() * 1e6 / self.ok.max(1) as f64
        })
    }
}

/// The server's runtime threads (and the redb store's writer thread, which does the server's
/// fsyncs) are named so; the load's runtime thread is named `LOAD_THREAD`.
const SERVER_THREADS: [&str; 2] = ["load-server", "airudder-store"];
const LOAD_THREAD: &str = "load-client";

/// CPU time used so far by this process's threads whose names start with one of `names`, from
/// `/proc/self/task/*/schedstat` (nanoseconds on the CPU). `None` off Linux.
fn cpu_time(names: &[&str]) -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let task = task.ok()?.path();
        let (Ok(name), Ok(stat)) = (
            std::fs::read_to_string(task.join("comm")),
            std::fs::read_to_string(task.join("schedstat")),
        ) else {
            continue; // the thread ended in between
        };
        if names
            .iter()
            .any(|prefix| name.trim_end().starts_with(prefix))
        {
            total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
        }
    }
    Some(Duration::from_nanos(total))
}

/// Runs `drive` for `duration` against `addr` on `client`, with the CPU both sides used.
fn measure(client: &tokio::runtime::Runtime, addr: SocketAddr, duration: Duration) -> Outcome {
    let (server_before, load_before) = (cpu_time(&SERVER_THREADS), cpu_time(&[LOAD_THREAD]));
    let mut outcome = client.block_on(drive(addr, duration));
    let since =
        |before: Option<Duration>, names: &[&str]| Some(cpu_time(names)?.saturating_sub(before?));
    outcome.server_cpu = since(server_before, &SERVER_THREADS);
    outcome.load_cpu = since(load_before, &[LOAD_THREAD]);
    outcome
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Serves `app` (any tower service for `Request<Incoming>`) on loopback until the runtime ends.
async fn serve_axum(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Accepts connections on loopback and hands each to `serve`, until the runtime ends.
async fn accept(serve: impl Fn(tokio::net::TcpStream) + Send + 'static) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            serve(stream);
        }
    });
    addr
}

async fn serve_bare_hyper() -> SocketAddr {
    accept(|stream| {
        let service = hyper::service::service_fn(
            |request: hyper::Request<hyper::body::Incoming>| async move {
                let body = request.into_body().collect().await?.to_bytes();
                std::hint::black_box(body);
                let mut response = hyper::Response::new(Full::new(Bytes::from_static(b"{}")));
                response
                    .headers_mut()
                    .insert("content-type", "application/json".parse().unwrap());
                Ok::<_, hyper::Error>(response)
            },
        );
        tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
    })
    .await
}

/// Serves the receiver on hyper 1's HTTP/1 connections directly, as the floor is served.
async fn serve_hyper(receiver: Receiver) -> SocketAddr {
    accept(move |stream| {
        let service = hyper_util::service::TowerToHyperService::new(receiver.clone());
        tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
    })
    .await
}

/// 64 connections, each posting the example in a loop until `duration` has passed.
async fn drive(addr: SocketAddr, duration: Duration) -> Outcome {
    let body = Bytes::from_static(support::EXAMPLE);
    let started = Instant::now();
    let until = started + duration;
    let connections: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let body = body.clone();
            tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .unwrap();
                tokio::spawn(connection);
                let (mut latencies, mut other) = (Vec::new(), 0usize);
                while Instant::now() < until {
                    let request = hyper::Request::post("/airudder/task")
                        .header("host", "127.0.0.1")
                        .header("content-type", "application/json")
                        .body(Full::new(body.clone()))
                        .unwrap();
                    let sent = Instant::now();
                    let response = sender.send_request(request).await.unwrap();
                    let status = response.status();
                    response.into_body().collect().await.unwrap();
                    if status == 200 {
                        latencies.push(sent.elapsed());
                    } else {
                        other += 1;
                    }
                }
                (latencies, other)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut other = 0;
    for connection in connections {
        let (mine, refused) = connection.await.unwrap();
        latencies.extend(mine);
        other += refused;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Outcome {
        ok: latencies.len(),
        other,
        elapsed,
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        server_cpu: None,
        load_cpu: None,
    }
}

fn receiver_app(receiver: Receiver) -> Router {
    Router::new().route_service("/airudder/task", receiver)
}

fn main() {
    let timed = std::env::args().any(|arg| arg == "--bench");
    let (warm_up, duration, rounds) = if timed {
        (Duration::from_secs(1), Duration::from_secs(5), 3)
    } else {
        (Duration::from_millis(50), Duration::from_millis(300), 1)
    };
    // `--rounds=N` for more rounds where the machine is noisy.
    let rounds = std::env::args()
        .find_map(|arg| arg.strip_prefix("--rounds=")?.parse::<usize>().ok())
        .filter(|_| timed)
        .unwrap_or(rounds);
    // Two configurations, each a table: the server on one runtime thread (the load on the
    // other core), and the server on tokio's default runtime, what `#[tokio::main]` builds (a
    // worker a core, sharing them with the load). `--server-threads=N` measures N alone.
    let given = std::env::args()
        .find_map(|arg| arg.strip_prefix("--server-threads=")?.parse::<usize>().ok());
    let configurations = match given {
        Some(threads) => vec![Some(threads)],
        None => vec![Some(1), None],
    };
    for server_threads in configurations {
        run(server_threads, warm_up, duration, rounds);
    }
}

/// The heading of a configuration's table.
fn given_label(server_threads: usize) -> Option<String> {
    let default = std::thread::available_parallelism().map_or(1, usize::from);
    match server_threads {
        1 => Some("One server thread".to_owned()),
        n if n == default => Some(format!(
            "tokio's default runtime, as #[tokio::main] builds it ({n} worker threads)"
        )),
        _ => None,
    }
}

/// Every row on a server runtime of `server_threads` workers (`None`: tokio's default).
fn run(server_threads: Option<usize>, warm_up: Duration, duration: Duration, rounds: usize) {
    let mut server = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = server_threads {
        server.worker_threads(threads);
    }
    let server = server
        .thread_name(SERVER_THREADS[0])
        .enable_all()
        .build()
        .unwrap();
    let server_threads = server.metrics().num_workers();
    let configuration = match given_label(server_threads) {
        Some(label) => label,
        None => format!("{server_threads} server thread(s)"),
    };
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(LOAD_THREAD)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(format!("threads-{server_threads}"));

    let no_op = |_: Delivery<TaskNotification>| async { Ok::<_, Infallible>(()) };
    let sleepy = |_: Delivery<TaskNotification>| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok::<_, Infallible>(())
    };
    let (bare, axum_floor, hand_written, memory, memory_on_hyper, durable, sleeping) = server
        .block_on(async {
            let bare = serve_bare_hyper().await;
            let axum_floor = serve_axum(Router::new().route(
                "/airudder/task",
                axum::routing::post(|body: Bytes| async move {
                    std::hint::black_box(body);
                    ([("content-type", "application/json")], "{}")
                }),
            ))
            .await;
            let hand_written = serve_axum(Router::new().route(
                "/airudder/task",
                axum::routing::post(
                    |axum::Json(value): axum::Json<serde_json::Value>| async move {
                        tokio::spawn(async move { std::hint::black_box(value) });
                        ([("content-type", "application/json")], "{}")
                    },
                ),
            ))
            .await;
            let memory = Receiver::builder(no_op)
                .allow_unauthenticated()
                .queue_capacity(1 << 16)
                .build()
                .unwrap();
            let durable = Receiver::builder(no_op)
                .allow_unauthenticated()
                .queue_capacity(1 << 16)
                .durable(RedbStore::open(&dir).unwrap())
                .build()
                .unwrap();
            // A sleeping handler needs workers to sleep in: 1 s each, so as many as requests a
            // second (up to about 130,000 here), or the queue grows and (e) measures a backlog.
            let sleeping = Receiver::builder(sleepy)
                .allow_unauthenticated()
                .workers(200_000)
                .queue_capacity(1 << 17)
                .max_bytes_in_flight(1 << 30)
                .build()
                .unwrap();
            (
                bare,
                axum_floor,
                hand_written,
                serve_axum(receiver_app(memory.clone())).await,
                serve_hyper(memory.clone()).await,
                serve_axum(receiver_app(durable.clone())).await,
                serve_axum(receiver_app(sleeping.clone())).await,
            )
        });

    #[allow(unused_mut)]
    let mut runs = vec![
        ("(a) bare hyper, no parsing (floor)", bare),
        ("(a2) axum, reads the body, no parsing", axum_floor),
        ("(b) axum, Json<Value> + tokio::spawn", hand_written),
        ("(c) this crate, memory ack", memory),
        ("(c2) as (c), on hyper 1 without axum", memory_on_hyper),
        ("(d) this crate, durable ack (redb)", durable),
        ("(e) as (c), handler sleeps 1 s", sleeping),
    ];
    #[cfg(feature = "postgres")]
    let cluster = support::postgres::Cluster::start();
    #[cfg(feature = "postgres")]
    runs.push((
        "(f) this crate, durable ack (PostgreSQL)",
        server.block_on(async {
            let store = airudder_webhook::store::PostgresStore::connect(&cluster.url())
                .await
                .unwrap();
            let shared = Receiver::builder(no_op)
                .allow_unauthenticated()
                .queue_capacity(1 << 16)
                .durable(store)
                .build()
                .unwrap();
            serve_axum(receiver_app(shared)).await
        }),
    ));
    #[cfg(feature = "metrics")]
    runs.push((
        "(c3) as (c), metrics on (Prometheus recorder)",
        server.block_on(async {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    ],
                )
                .unwrap()
                .build_recorder();
            let handle = recorder.handle();
            // The recorder only for this row's receiver: its handles are bound at build.
            let metered = metrics::with_local_recorder(&recorder, || {
                Receiver::builder(no_op)
                    .allow_unauthenticated()
                    .queue_capacity(1 << 16)
                    .build()
                    .unwrap()
            });
            // Upkeep and a scrape a second, off the server's threads, as an exporter would.
            std::thread::spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    handle.run_upkeep();
                    std::hint::black_box(handle.render());
                }
            });
            serve_axum(receiver_app(metered)).await
        }),
    ));
    // `cargo bench --bench load -- c e` measures (a) and the rows named, for profiling one.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let wanted = |name: &str| {
        only.is_empty()
            || name.starts_with("(a)")
            || only.iter().any(|row| name.starts_with(&format!("({row})")))
    };
    let rows: Vec<(&str, SocketAddr)> = runs
        .iter()
        .filter(|(name, _)| wanted(name))
        .copied()
        .collect();
    // Rounds of every row, so that a slow phase of the shared machine moves one round's
    // figures, not one row's: the table gives medians, the ratios are taken within a round.
    let rounds: Vec<Vec<Outcome>> = (0..rounds)
        .map(|round| {
            rows.iter()
                .map(|(_, addr)| {
                    if round == 0 {
                        // Unmeasured first: the row measured first used to pay for a cold machine.
                        client.block_on(drive(*addr, warm_up));
                    }
                    measure(&client, *addr, duration)
                })
                .collect()
        })
        .collect();
    println!(
        "\n## {configuration}\n\n{CONNECTIONS} keep-alive connections, {} s each, body {} bytes, {} round(s), \
         {server_threads} server thread(s) and 1 load thread: medians\n",
        duration.as_secs_f64(),
        support::EXAMPLE.len(),
        rounds.len()
    );
    let across = |row: usize, figure: &dyn Fn(&Outcome) -> f64| {
        median(rounds.iter().map(|round| figure(&round[row])).collect())
    };
    println!(
        "| server | requests/s | p50 | p99 | p99.9 | non-200 | throughput / (a) | \
         server CPU / request | over (a) | load CPU / request |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (i, (name, _)) in rows.iter().enumerate() {
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {} | {:.2}x | {:.2} µs | {:+.2} µs \
             | {:.2} µs |",
            across(i, &Outcome::rate),
            across(i, &|o| o.p50.as_secs_f64() * 1e3),
            across(i, &|o| o.p99.as_secs_f64() * 1e3),
            across(i, &|o| o.p999.as_secs_f64() * 1e3),
            rounds.iter().map(|round| round[i].other).sum::<usize>(),
            median(
                rounds
                    .iter()
                    .map(|round| round[i].rate() / round[0].rate())
                    .collect()
            ),
            across(i, &Outcome::server_us),
            median(
                rounds
                    .iter()
                    .map(|round| round[i].server_us() - round[0].server_us())
                    .collect()
            ),
            across(i, &Outcome::load_us),
        );
    }
    let index = |letter: &str| {
        rows.iter()
            .position(|(name, _)| name.starts_with(&format!("({letter})")))
    };
    // Each ratio within each round, then the median and the range over the rounds.
    let ratio = |x: &str, y: &str, figure: fn(&Outcome) -> f64| {
        let (x, y) = (index(x)?, index(y)?);
        Some(
            rounds
                .iter()
                .map(|round| figure(&round[x]) / figure(&round[y]))
                .collect::<Vec<f64>>(),
        )
    };
    let rate: fn(&Outcome) -> f64 = Outcome::rate;
    let p99: fn(&Outcome) -> f64 = |o| o.p99.as_secs_f64();
    // The targets: on one server thread those set first; on the default runtime, issue 18's.
    let one_thread = server_threads == 1;
    let floor_target = if one_thread { 0.8 } else { 0.7 };
    let (floor_target_text, durable_target) = match one_thread {
        true => ("target >= 0.8", "target >= 0.5"),
        false => ("target >= 0.7", "target >= 0.7"),
    };
    let ratios = [
        ("(c)/(a)", ratio("c", "a", rate), floor_target_text),
        (
            "(c)/(a2)",
            ratio("c", "a2", rate),
            "against axum's own floor",
        ),
        (
            "(c2)/(a)",
            ratio("c2", "a", rate),
            "without axum, against hyper's floor",
        ),
        ("(c)/(b)", ratio("c", "b", rate), "target >= 2"),
        ("(d)/(c)", ratio("d", "c", rate), durable_target),
        ("p99 (e)/(c)", ratio("e", "c", p99), "target <= 1.5"),
        (
            "(f)/(c)",
            ratio("f", "c", rate),
            "PostgreSQL against memory",
        ),
        (
            "(f)/(d)",
            ratio("f", "d", rate),
            "PostgreSQL against redb, target >= 0.5",
        ),
        (
            "(c3)/(c)",
            ratio("c3", "c", rate),
            "metrics on against off, target >= 0.95",
        ),
    ];
    println!();
    for (name, values, target) in ratios {
        if let Some(values) = values {
            let low = values.iter().copied().fold(f64::INFINITY, f64::min);
            let high = values.iter().copied().fold(0.0, f64::max);
            println!(
                "{name} = {:.2}, rounds {low:.2} to {high:.2} ({target})",
                median(values)
            );
        }
    }
    // What the (c)/(a) target asks of the crate in server CPU, were the server's cores its
    // own: at 0.8x, a quarter of the floor's CPU a request, all in.
    if let (Some(a), Some(c)) = (index("a"), index("c")) {
        let floor = median(rounds.iter().map(|round| round[a].server_us()).collect());
        let added = median(
            rounds
                .iter()
                .map(|round| round[c].server_us() - round[a].server_us())
                .collect(),
        );
        if floor.is_finite() {
            println!(
                "server CPU a request: (a) {floor:.2} µs; (c) adds {added:.2} µs, where \
                 {floor_target}x (a) leaves it {:.2} µs ({:.2}x by CPU alone)",
                floor * (1.0 / floor_target - 1.0),
                floor / (floor + added)
            );
        }
    }
    drop(server);
}
