//! Peak memory while decoding 1 to 10,000 calls, beside `serde_json::Value` and a plain
//! `#[derive(Deserialize)]` mirror of the notification (`benches/plain/mod.rs`), and the memory
//! a queued notification holds.
//!
//! Run with: cargo bench --bench memory
//!
//! The peak is the most heap in use at once during the decode, above what was in use before
//! it (the body itself is not counted), measured by a counting global allocator.

mod plain;
#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;

use airudder_webhook::decode;
use airudder_webhook::model::TaskNotification;
use peak_alloc::PeakAlloc;
use serde_json::Value;

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

/// Heap bytes at the peak of `work`, above the heap in use before it; and what it left held.
fn peak<T>(work: impl FnOnce() -> T) -> (usize, T) {
    let before = HEAP.current_usage();
    HEAP.reset_peak_usage();
    let out = work();
    (HEAP.peak_usage().saturating_sub(before), out)
}

fn main() {
    let timed = std::env::args().any(|arg| arg == "--bench");
    let sizes: &[usize] = if timed {
        &[1, 100, 1_000, 6_000, 10_000]
    } else {
        &[1, 100]
    };
    println!(
        "\n| calls | body | TaskNotification::from_slice peak | × body | decode (serde_json only) | × body | plain serde derive peak | × body | Value peak | × body |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for &calls in sizes {
        let body = if calls == 1 {
            support::EXAMPLE.to_vec()
        } else {
            support::notification_with_calls(calls)
        };
        plain::assert_agrees(&body);
        let (typed, decoded) = peak(|| TaskNotification::from_slice(&body).unwrap());
        assert_eq!(decoded.details.len(), calls);
        drop(decoded);
        let (serde_only, decoded) = peak(|| decode::<TaskNotification>(&body).unwrap());
        drop(decoded);
        let (plain, decoded) = peak(|| plain::decode(&body));
        assert_eq!(decoded.details.len(), calls);
        drop(decoded);
        let (value, decoded) = peak(|| serde_json::from_slice::<Value>(&body).unwrap());
        drop(decoded);
        let len = body.len() as f64;
        println!(
            "| {calls} | {:.1} KB | {:.1} KB | {:.2}x | {:.1} KB | {:.2}x | {:.1} KB | {:.2}x | {:.1} KB | {:.2}x |",
            len / 1e3,
            typed as f64 / 1e3,
            typed as f64 / len,
            serde_only as f64 / 1e3,
            serde_only as f64 / len,
            plain as f64 / 1e3,
            plain as f64 / len,
            value as f64 / 1e3,
            value as f64 / len
        );
    }

    // What each queued notification holds: the decoded event behind its Arc (the body is
    // dropped once decoded).
    const QUEUED: usize = 1_000;
    let before = HEAP.current_usage();
    let queued: Vec<Arc<TaskNotification>> = (0..QUEUED)
        .map(|_| Arc::new(TaskNotification::from_slice(support::EXAMPLE).unwrap()))
        .collect();
    let held = HEAP.current_usage().saturating_sub(before);
    println!(
        "\nmemory per queued notification (the example, {} bytes of body): {:.0} bytes",
        support::EXAMPLE.len(),
        held as f64 / QUEUED as f64
    );
    drop(queued);
    let before = HEAP.current_usage();
    let held_plain: Vec<Arc<plain::TaskNotification>> = (0..QUEUED)
        .map(|_| Arc::new(plain::decode(support::EXAMPLE)))
        .collect();
    let held = HEAP.current_usage().saturating_sub(before);
    println!(
        "the plain serde derive mirror of the example, held the same way: {:.0} bytes",
        held as f64 / QUEUED as f64
    );
    drop(held_plain);
}
