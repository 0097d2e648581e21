//! The relay's door under a flood, as a real process whose file limit is 1024 (a systemd
//! service's default): 1,100 connections that send nothing and 100 that send a request head one
//! byte every 4 s. Airudder's POST, `/health` and the admin API still answer at once, and the
//! relay closes a connection that sends nothing, a head that keeps trickling, and a kept-alive
//! connection between requests, after its 10 s header timeout. Then 900 connections that send a
//! whole head and their body one byte every 2 s: Airudder's POST and `/health` still answer.

use crate::common;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::{DataDir, EXAMPLE, client, next_line, start_quiet_with_file_limit};

const RELAY_FILES: u64 = 1024;
const IDLE: usize = 1_100;
const SLOW: usize = 100;
/// The relay's header timeout, and how late a loaded machine may close after it.
const HEAD_WITHIN: Duration = Duration::from_secs(10);
const SLACK: Duration = Duration::from_secs(5);
const SLOW_BODIES: usize = 900;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_and_slow_connections_neither_shuts_the_door_nor_stays_open() {
    let _alone = crate::ALONE.lock().await;
    own_file_limit_at_least(IDLE + SLOW + 300);
    let data = DataDir::new();
    let mut relay = start_quiet_with_file_limit(&data, &[], RELAY_FILES).await;
    let cap = loop {
        let line = next_line(&mut relay.stderr)
            .await
            .expect("the start-up lines");
        if let Some((_, rest)) = line.split_once("main listener: at most ") {
            break rest.split(' ').next().unwrap().parse::<usize>().unwrap();
        }
    };
    assert_eq!(cap, 896, "1024 files less the reserve");

    let flood = Instant::now();
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(connect(&relay.addr).await);
    }
    let slow: Vec<_> = (0..SLOW)
        .map(|_| tokio::spawn(trickle(relay.addr.clone())))
        .collect();
    // Each accepted by the relay before the probes, so that the probes are the newest: closed
    // by the timeout, not to make room. A connect returns once the kernel has answered, which
    // can be before the relay accepts (a full accept queue holds the handshake's end back), so
    // the relay's own counts say when all are in.
    accepted_at_least(&relay, IDLE + SLOW).await;
    let flood_took = flood.elapsed();

    let fresh = connect(&relay.addr).await;
    let fresh_closed = tokio::spawn(closed_after(fresh, Instant::now()));
    let slow_closed = tokio::spawn(trickle(relay.addr.clone()));
    let mut kept = connect(&relay.addr).await;
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: relay\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"\r\n\r\nok") {
        let mut buf = [0; 512];
        let n = within(Duration::from_secs(15), kept.read(&mut buf), "the answer")
            .await
            .unwrap();
        assert!(n > 0, "closed before answering: {answer:?}");
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    let kept_closed = tokio::spawn(closed_after(kept, Instant::now()));

    // Airudder's POST, the load balancer's check and the operator's stats, under the flood.
    let post_took = post_and_check_health(&relay).await;
    let stats = within(
        Duration::from_secs(15),
        client()
            .get(format!("http://{}/admin/stats", relay.admin))
            .send(),
        "GET /admin/stats",
    )
    .await
    .unwrap();
    assert_eq!(stats.status(), 200);
    let metrics = scrape(&relay).await;
    let closed_for_room = sample(
        &metrics,
        "airudder_connections_closed_for_room_total",
        &[r#"listener="main""#, r#"closed="oldest_idle""#],
    );
    assert!(
        closed_for_room >= (IDLE + SLOW + 3 - cap) as f64,
        "{closed_for_room} closed to make room"
    );
    let open = sample(
        &metrics,
        "airudder_connections_open",
        &[r#"listener="main""#],
    );
    // A connection told to close may still be closing.
    assert!(open <= (cap + 8) as f64, "{open} open");

    // Each probe is closed by the header timeout: not before it, and not much after.
    let wait = HEAD_WITHIN + SLACK + Duration::from_secs(2);
    let fresh = within(wait, fresh_closed, "the idle connection closed")
        .await
        .unwrap();
    let slow_head = within(wait, slow_closed, "the slow head closed")
        .await
        .unwrap();
    let kept = within(wait, kept_closed, "the kept-alive connection closed")
        .await
        .unwrap();
    for (what, took) in [
        ("idle", fresh),
        ("slow head", slow_head),
        ("kept alive", kept),
    ] {
        assert!(
            took >= HEAD_WITHIN - Duration::from_secs(1) && took <= HEAD_WITHIN + SLACK,
            "the {what} connection was closed after {took:?}"
        );
    }
    // By now the whole flood is closed too: made room for, or timed out.
    for stream in idle {
        within(
            Duration::from_secs(5),
            closed_after(stream, Instant::now()),
            "a flood connection closed",
        )
        .await;
    }
    let mut slow_took = Vec::new();
    for trickle in slow {
        slow_took.push(
            within(Duration::from_secs(5), trickle, "a slow head closed")
                .await
                .unwrap(),
        );
    }
    eprintln!(
        "flood of {IDLE} idle + {SLOW} slow heads opened in {flood_took:?}; POST under it: {post_took:?}; \
         closed after: idle {fresh:?}, slow head {slow_head:?}, kept alive {kept:?}; \
         {closed_for_room} closed to make room, {open} open at the scrape; \
         flood's slow heads closed after {:?} to {:?}",
        slow_took.iter().min().unwrap(),
        slow_took.iter().max().unwrap()
    );

    assert!(relay.terminate().await.success());
    // The first closing at once, the rest at the next report (here, the stop): at most one
    // WARN every 10 s, with the count.
    let logs = relay.logs().await;
    let warned: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("closed connections to make room"))
        .collect();
    let windows = 1 + flood.elapsed().as_secs() as usize / 10;
    assert!((1..=windows).contains(&warned.len()), "{logs}");
    let counted: f64 = warned
        .iter()
        .filter_map(|line| logged_number(line, "closed_idle"))
        .sum();
    assert_eq!(counted, closed_for_room, "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_slow_bodies_does_not_shut_the_door() {
    // 100 kB each: 900 of them stay under the library's 256 MiB of bodies in flight, above
    // which a head is answered 503 at once and frees its seat.
    const HEAD: &[u8] = b"POST /airudder/task HTTP/1.1\r\nHost: relay\r\n\
        Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{";
    let _alone = crate::ALONE.lock().await;
    own_file_limit_at_least(SLOW_BODIES + 300);
    let data = DataDir::new();
    let mut relay = start_quiet_with_file_limit(&data, &[], RELAY_FILES).await;

    let flood = Instant::now();
    let mut bodies = Vec::with_capacity(SLOW_BODIES);
    for _ in 0..SLOW_BODIES {
        let mut stream = connect(&relay.addr).await;
        stream.write_all(HEAD).await.unwrap();
        bodies.push(stream);
    }
    let flood_took = flood.elapsed();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let trickle = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
            let mut open = Vec::with_capacity(bodies.len());
            for mut stream in bodies {
                if stream.write_all(b" ").await.is_ok() {
                    open.push(stream);
                }
            }
            bodies = open;
        }
    });
    // Every head read, every seat reading its body, and a first byte of each trickled.
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    let post_took = post_and_check_health(&relay).await;
    // Answered while every body of the flood was still within the library's 30 s deadline: no
    // seat was freed by a 408.
    let answered = flood.elapsed();
    assert!(answered < Duration::from_secs(30), "{answered:?}");
    let metrics = scrape(&relay).await;
    let closed = |which: &str| {
        let which = format!(r#"closed="{which}""#);
        sample_or_0(
            &metrics,
            "airudder_connections_closed_for_room_total",
            &[r#"listener="main""#, &which],
        )
    };
    let (slow_body, new) = (closed("slow_body"), closed("new"));
    assert!(
        slow_body >= 1.0,
        "{slow_body} slow bodies closed to make room"
    );
    assert_eq!(new, 0.0, "no new connection closed while bodies trickle");

    stop.send(()).unwrap();
    within(Duration::from_secs(15), trickle, "the trickle's end")
        .await
        .unwrap();
    eprintln!(
        "flood of {SLOW_BODIES} slow bodies opened in {flood_took:?}; POST under it: {post_took:?}; \
         {slow_body} reading a body closed to make room"
    );

    assert!(relay.terminate().await.success());
    let logs = relay.logs().await;
    let counted: f64 = logs
        .lines()
        .filter(|line| line.contains("closed connections to make room"))
        .filter_map(|line| logged_number(line, "closed_slow_body"))
        .sum();
    assert_eq!(counted, slow_body, "{logs}");
}

/// The number a log line gives `field` (`field=N`).
fn logged_number(line: &str, field: &str) -> Option<f64> {
    line.split(&format!("{field}="))
        .nth(1)?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

/// `future`'s output, or a failure naming `what` after `limit`.
/// Airudder's POST gets its 200, and the load balancer's check answers, each within 15 s;
/// returns how long the POST took.
async fn post_and_check_health(relay: &common::Relay) -> Duration {
    let posted = Instant::now();
    let status = within(
        Duration::from_secs(15),
        relay.post(EXAMPLE.to_vec()),
        "the POST",
    )
    .await;
    let post_took = posted.elapsed();
    assert_eq!(status, 200);
    let health = within(
        Duration::from_secs(15),
        client().get(format!("http://{}/health", relay.addr)).send(),
        "GET /health",
    )
    .await
    .unwrap();
    assert_eq!(health.status(), 200);
    post_took
}

/// Waits until the main listener has accepted at least `count` connections: those open and
/// those closed to make room (none has reached its header timeout yet).
async fn accepted_at_least(relay: &common::Relay, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let metrics = scrape(relay).await;
        let closed = |which: &str| {
            sample_or_0(
                &metrics,
                "airudder_connections_closed_for_room_total",
                &[r#"listener="main""#, &format!(r#"closed="{which}""#)],
            )
        };
        let open = sample_or_0(
            &metrics,
            "airudder_connections_open",
            &[r#"listener="main""#],
        );
        let accepted = open + closed("oldest_idle") + closed("slow_body") + closed("new");
        if accepted >= count as f64 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the relay accepted {accepted} of {count} connections"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The relay's metrics, within 15 s.
async fn scrape(relay: &common::Relay) -> String {
    within(
        Duration::from_secs(15),
        client()
            .get(format!("http://{}/metrics", relay.admin))
            .send(),
        "GET /metrics",
    )
    .await
    .unwrap()
    .text()
    .await
    .unwrap()
}

async fn within<T>(limit: Duration, future: impl Future<Output = T>, what: &str) -> T {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {limit:?}"))
}

/// A connection to `addr`, accepted by the kernel within 5 s (a server that stopped accepting
/// fills its backlog, and then a connect waits minutes).
async fn connect(addr: &str) -> TcpStream {
    within(
        Duration::from_secs(5),
        TcpStream::connect(addr),
        "a connection",
    )
    .await
    .unwrap()
}

/// How long after `since` the relay closed `stream` (end of stream, or a reset).
async fn closed_after(mut stream: TcpStream, since: Instant) -> Duration {
    let mut buf = [0; 64];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return since.elapsed(),
            Ok(_) => {}
        }
    }
}

/// Sends a request head one byte every 4 s until the relay closes the connection; how long the
/// relay let it.
async fn trickle(addr: String) -> Duration {
    const HEAD: &[u8] = b"POST /airudder/task HTTP/1.1\r\nHost: relay\r\n\
        Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    let stream = connect(&addr).await;
    let since = Instant::now();
    let (mut read, mut write) = stream.into_split();
    let send = async {
        for byte in HEAD {
            if write.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(4)).await;
        }
        std::future::pending::<()>().await;
    };
    let mut buf = [0; 64];
    tokio::select! {
        _ = read.read(&mut buf) => since.elapsed(),
        () = send => unreachable!(),
    }
}

/// The value of the series of `name` whose labels include `labels`, in Prometheus' text format.
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{text}"))
}

/// As [`sample`], but 0 without the series: the relay shows a series from its first use on
/// (no connection opened or closed yet).
fn sample_or_0(text: &str, name: &str, labels: &[&str]) -> f64 {
    let series = format!("{name}{{");
    if text
        .lines()
        .any(|line| line.starts_with(&series) && labels.iter().all(|label| line.contains(label)))
    {
        sample(text, name, labels)
    } else {
        0.0
    }
}

/// Raises this process' soft limit on open files to `files` if it is lower (the hard limit
/// allows it without privileges on any usual system).
fn own_file_limit_at_least(files: usize) {
    let soft = || {
        std::fs::read_to_string("/proc/self/limits")
            .unwrap()
            .lines()
            .find_map(|line| line.strip_prefix("Max open files"))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<usize>().ok())
            .unwrap_or(usize::MAX)
    };
    if soft() >= files {
        return;
    }
    let raised = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={files}:"),
        ])
        .status()
        .expect("prlimit (util-linux)");
    assert!(
        raised.success() && soft() >= files,
        "this test needs {files} open files; raise the limit (ulimit -n {files})"
    );
}
