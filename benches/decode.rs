//! Decoding task notifications and the other callbacks, beside `serde_json::Value` on the same
//! bytes, and the task notification beside a plain `#[derive(Deserialize)]` mirror of it
//! (`benches/plain/mod.rs`).
//!
//! Run with: cargo bench --bench decode

mod plain;
#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;

use airudder_webhook::model::{
    ChatbotSessionEnd, PdsEvent, RawEvent, TaskNotification, WorkflowCallCompletion,
    WorkflowListCompletion, WorkflowStatusChange,
};
use airudder_webhook::{Event, decode};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;

fn decode_bodies(c: &mut Criterion) {
    // The example (1 call), then the scale curve; 6,000 calls is the size of a large list.
    let bodies = [
        ("example", support::EXAMPLE.to_vec()),
        // As a sender that escapes non-ASCII writes it: Chinese names as `\u` escapes.
        (
            "example, escaped Chinese",
            String::from_utf8(support::EXAMPLE.to_vec())
                .unwrap()
                .replace("xxxxxxxxxxc25a9b2_ic_task", r"\u50ac\u6536\u4efb\u52a1")
                .replace("ABCD Reverification", r"\u6838\u5b9e\u8eab\u4efd")
                .into_bytes(),
        ),
        ("100 calls", support::notification_with_calls(100)),
        ("1000 calls", support::notification_with_calls(1000)),
        ("6000 calls", support::notification_with_calls(6000)),
        ("10000 calls", support::notification_with_calls(10_000)),
    ];
    for (name, body) in &bodies {
        plain::assert_agrees(body);
        let mut group = c.benchmark_group(format!("decode/{name}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        if body.len() > 1 << 20 {
            group.sample_size(10);
        }
        group.bench_function("serde_json::Value (baseline)", |b| {
            b.iter(|| serde_json::from_slice::<Value>(black_box(body)).unwrap())
        });
        group.bench_function("plain serde derive", |b| {
            b.iter(|| plain::decode(black_box(body)))
        });
        group.bench_function("TaskNotification", |b| {
            b.iter(|| TaskNotification::from_slice(black_box(body)).unwrap())
        });
        group.bench_function("TaskNotification, serde_json only", |b| {
            b.iter(|| decode::<TaskNotification>(black_box(body)).unwrap())
        });
        group.finish();
    }
}

/// Each of the other callbacks' example, through `Event::decode` (what the receiver runs),
/// beside `serde_json::Value` on the same bytes.
fn decode_siblings(c: &mut Criterion) {
    fn row<E: Event>(c: &mut Criterion, body: &[u8]) {
        let mut group = c.benchmark_group(format!("decode/{}", E::NAME));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function("serde_json::Value (baseline)", |b| {
            b.iter(|| serde_json::from_slice::<Value>(black_box(body)).unwrap())
        });
        group.bench_function("Event::decode", |b| {
            b.iter(|| E::decode(black_box(body)).unwrap())
        });
        group.finish();
    }
    let data = |file: &str| {
        std::fs::read(format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    };
    row::<WorkflowCallCompletion>(c, &data("workflow_call_completion.example.json"));
    row::<WorkflowListCompletion>(c, &data("workflow_list_completion.example.json"));
    row::<WorkflowStatusChange>(c, &data("workflow_status_change.example.json"));
    row::<ChatbotSessionEnd>(c, &data("chatbot_session_end.example.json"));
    row::<PdsEvent>(c, &data("pds_agent_status.example.json"));
    row::<RawEvent>(c, &data("chatbot_session_end.example.json"));
}

/// The de-duplication key the durable ack computes for every notification (the event
/// serialized again and hashed), beside the serialization alone.
fn dedup_key(c: &mut Criterion) {
    let event = TaskNotification::from_slice(support::EXAMPLE).unwrap();
    let mut group = c.benchmark_group("dedup key/example");
    group.bench_function("serde_json::to_vec (baseline)", |b| {
        b.iter(|| serde_json::to_vec(black_box(&event)).unwrap())
    });
    group.bench_function("Event::dedup_key", |b| {
        b.iter(|| black_box(&event).dedup_key())
    });
    group.finish();
}

criterion_group!(benches, decode_bodies, decode_siblings, dedup_key);
criterion_main!(benches);
