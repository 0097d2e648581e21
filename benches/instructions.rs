//! Instructions a request costs, counted by Valgrind's callgrind: a figure that does not move
//! with the load of a shared machine, where times do.
//!
//! Run with: cargo bench --bench instructions (needs `valgrind`: `apt-get install valgrind`)
//!
//! The bench runs itself under callgrind once with N operations of each kind and once with 2N,
//! and reports the difference divided by N: what one more operation costs, start-up and
//! warm-up excluded. User-space instructions only (the kernel's share, such as the sockets, is
//! not counted), on one thread:
//! - the floor: a tower service that reads the body and answers `{}`, parsing nothing;
//! - parsing the example into a `serde_json::Value` and dropping it, as a hand-written
//!   `Json<Value>` handler does;
//! - decoding the example into a plain `#[derive(Deserialize)]` mirror of the notification
//!   (`benches/plain/mod.rs`) and dropping it, as a typed hand-written handler does;
//! - decoding the example into `TaskNotification` and dropping it: with the fast path
//!   (`TaskNotification::from_slice`, what the receiver runs), and with serde_json alone
//!   (`decode::<TaskNotification>`);
//! - a request through a `Receiver` (memory ack, no-op handler) to its 200, then its handler
//!   to its end.
//!
//! Under `cargo test --benches` each operation runs a few times without Valgrind, to keep the
//! bench working.

mod plain;
#[path = "../tests/support/mod.rs"]
mod support;

use std::convert::Infallible;
use std::hint::black_box;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use airudder_webhook::model::TaskNotification;
use airudder_webhook::{Delivery, Receiver, decode};
use bytes::Bytes;
use tower::ServiceExt;

/// The operations, with what the table calls them.
const OPERATIONS: [(&str, &str); 6] = [
    ("floor", "floor: read the body, answer {}"),
    (
        "value",
        "serde_json::Value, then drop (what a hand-written handler parses)",
    ),
    (
        "plain",
        "plain serde derive of the notification, then drop (a typed hand-written handler)",
    ),
    ("decode", "TaskNotification::from_slice, then drop"),
    (
        "serde_only",
        "decode::<TaskNotification> (serde_json alone), then drop",
    ),
    (
        "request",
        "Receiver: request to 200, then the handler to its end",
    ),
];

/// Operations a measured run makes: N and 2N.
const N: u64 = 1_000;

/// Notifications the no-op handler has seen: the request loop waits for its own with one
/// load, where `Receiver::idle` would add the cost of a stats snapshot to every request.
static HANDLED: AtomicU64 = AtomicU64::new(0);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // A child run: `--run <operation> <count>`, under callgrind or not.
    if let Some(at) = args.iter().position(|arg| arg == "--run") {
        let operation = &args[at + 1];
        let count = args[at + 2].parse().expect("a count");
        run(operation, count);
        return;
    }
    plain::assert_agrees(support::EXAMPLE);
    if !args.iter().any(|arg| arg == "--bench") {
        for (operation, _) in OPERATIONS {
            run(operation, 3);
        }
        return;
    }
    let me = std::env::current_exe().expect("the bench's own path");
    let mut counted = Vec::new();
    for (operation, label) in OPERATIONS {
        let once = instructions(&me, operation, N);
        let twice = instructions(&me, operation, 2 * N);
        counted.push((operation, label, twice.saturating_sub(once) / N));
    }
    let each = |name: &str| {
        counted
            .iter()
            .find(|(operation, _, _)| *operation == name)
            .map(|&(_, _, each)| each)
            .expect("a measured operation")
    };
    let decode = each("decode") as f64;
    println!("\n| operation | instructions each | × decode |");
    println!("| --- | --- | --- |");
    for (_, label, each) in &counted {
        println!("| {label} | {each} | {:.2}x |", *each as f64 / decode);
    }
    let (floor, request) = (each("floor"), each("request"));
    println!(
        "\nthe request beside its decode: {} instructions ({:.0}% of the request is the decode); over the floor: {}",
        request.saturating_sub(each("decode")),
        100.0 * decode / request as f64,
        request.saturating_sub(floor)
    );
    println!(
        "the plain derive beside TaskNotification::from_slice: {:.2}x the instructions; beside serde_json alone into TaskNotification: {:.2}x",
        each("plain") as f64 / decode,
        each("plain") as f64 / each("serde_only") as f64
    );
}

/// The instructions callgrind counts in a child run of `count` operations.
fn instructions(me: &std::path::Path, operation: &str, count: u64) -> u64 {
    let output = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(me)
        .args(["--run", operation, &count.to_string()])
        .output()
        .expect("valgrind runs (apt-get install valgrind)");
    assert!(output.status.success(), "the child run failed: {output:?}");
    let report = String::from_utf8_lossy(&output.stderr);
    report
        .lines()
        .find_map(|line| line.split("Collected : ").nth(1))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or_else(|| panic!("no instruction count in callgrind's report:\n{report}"))
}

/// `count` operations of one kind, on a one-thread runtime, from one task.
fn run(operation: &str, count: u64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = Bytes::from_static(support::EXAMPLE);
    let receiver = runtime.block_on(async {
        Receiver::builder(|_: Delivery<TaskNotification>| async {
            HANDLED.fetch_add(1, Ordering::Relaxed);
            Ok::<_, Infallible>(())
        })
        .allow_unauthenticated()
        .queue_capacity(1 << 16)
        .build()
        .unwrap()
    });
    let floor = tower::service_fn(support::floor);
    let operation = operation.to_owned();
    let work = {
        let receiver = receiver.clone();
        async move {
            for _ in 0..count {
                match operation.as_str() {
                    "floor" => {
                        let response = floor.oneshot(support::post(body.clone())).await.unwrap();
                        assert_eq!(response.status(), 200);
                    }
                    "value" => {
                        let value = serde_json::from_slice::<serde_json::Value>(black_box(&body));
                        drop(black_box(value.unwrap()));
                    }
                    "plain" => {
                        drop(black_box(plain::decode(black_box(&body))));
                    }
                    "decode" => {
                        drop(black_box(
                            TaskNotification::from_slice(black_box(&body)).unwrap(),
                        ));
                    }
                    "serde_only" => {
                        drop(black_box(
                            decode::<TaskNotification>(black_box(&body)).unwrap(),
                        ));
                    }
                    "request" => {
                        let handled = HANDLED.load(Ordering::Relaxed);
                        let response = receiver
                            .clone()
                            .oneshot(support::post(body.clone()))
                            .await
                            .unwrap();
                        assert_eq!(response.status(), 200);
                        while HANDLED.load(Ordering::Relaxed) == handled {
                            tokio::task::yield_now().await;
                        }
                    }
                    other => panic!("no operation {other}"),
                }
            }
        }
    };
    // From a task, as a server's connection task makes its requests.
    runtime.block_on(runtime.spawn(work)).unwrap();
    runtime.block_on(
        receiver
            .shutdown_handle()
            .shutdown(std::time::Duration::from_secs(10)),
    );
}
