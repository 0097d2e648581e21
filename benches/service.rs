//! A whole request through the service to its 200, beside a floor that only reads the body.
//!
//! Run with: cargo bench --bench service

#[path = "../tests/support/mod.rs"]
mod support;

use std::convert::Infallible;
use std::hint::black_box;

use airudder_webhook::model::TaskNotification;
use airudder_webhook::{Delivery, Receiver};
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tower::ServiceExt;

/// A receiver with the memory ack and a handler that does nothing, built on `runtime`.
fn no_op_receiver(runtime: &tokio::runtime::Runtime) -> Receiver {
    runtime.block_on(async {
        Receiver::builder(|_: Delivery<TaskNotification>| async { Ok::<_, Infallible>(()) })
            .allow_unauthenticated()
            .queue_capacity(1 << 16)
            .build()
            .unwrap()
    })
}

fn request_to_200(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let receiver = no_op_receiver(&runtime);
    let floor = tower::service_fn(support::floor);

    for (name, body) in [
        ("example", Bytes::from_static(support::EXAMPLE)),
        ("100 calls", support::notification_with_calls(100).into()),
    ] {
        let mut group = c.benchmark_group(format!("service/{name}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function("read body, answer {} (floor)", |b| {
            b.iter(|| {
                let response = runtime
                    .block_on(floor.oneshot(support::post(body.clone())))
                    .unwrap();
                assert_eq!(response.status(), 200);
            })
        });
        group.bench_function("Receiver, memory ack", |b| {
            b.iter(|| {
                let response = runtime
                    .block_on(receiver.clone().oneshot(support::post(body.clone())))
                    .unwrap();
                assert_eq!(response.status(), 200);
            })
        });
        group.finish();
    }
    runtime.block_on(
        receiver
            .shutdown_handle()
            .shutdown(std::time::Duration::from_secs(10)),
    );
}

/// On one thread, what a request costs beside its decode: the request to its 200, then the
/// no-op handler's task to its end (the notification freed), against decoding (and freeing) the
/// same body alone.
fn request_beside_decode(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let receiver = no_op_receiver(&runtime);
    let body = Bytes::from_static(support::EXAMPLE);
    let mut group = c.benchmark_group("one thread/example");
    group.bench_function("decode and free (TaskNotification::from_slice)", |b| {
        b.iter(|| TaskNotification::from_slice(black_box(&body)).unwrap())
    });
    // The requests come from one task, as a server's connection task makes them (a request from
    // a task starts its handler itself when it can).
    group.bench_function("request to 200, then the handler to its end", |b| {
        b.iter_custom(|iters| request_and_handle(&runtime, &receiver, &body, iters))
    });
    // The same with `--features metrics` and a Prometheus recorder: what recording costs a
    // request (a counter, a histogram sample; the gauges are sampled off the request path).
    #[cfg(feature = "metrics")]
    {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                &[0.0005, 0.001, 0.005, 0.01, 0.1, 1.0],
            )
            .unwrap()
            .build_recorder();
        let handle = recorder.handle();
        let metered = metrics::with_local_recorder(&recorder, || no_op_receiver(&runtime));
        group.bench_function("the same, metrics on (Prometheus recorder)", |b| {
            b.iter_custom(|iters| {
                let took = request_and_handle(&runtime, &metered, &body, iters);
                // What an exporter's upkeep does between scrapes, outside the timing.
                handle.run_upkeep();
                took
            })
        });
        assert!(handle.render().contains("airudder_requests_total"));
    }
    group.finish();
}

/// `iters` requests from one task, each to its 200 and then its handler's end.
fn request_and_handle(
    runtime: &tokio::runtime::Runtime,
    receiver: &Receiver,
    body: &Bytes,
    iters: u64,
) -> std::time::Duration {
    let (receiver, body) = (receiver.clone(), body.clone());
    let requests = async move {
        let started = std::time::Instant::now();
        for _ in 0..iters {
            let handled = receiver.stats().handled;
            let response = receiver
                .clone()
                .oneshot(support::post(body.clone()))
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            while receiver.stats().handled == handled {
                tokio::task::yield_now().await;
            }
        }
        started.elapsed()
    };
    runtime.block_on(runtime.spawn(requests)).unwrap()
}

/// 64 requests at once, distinct notifications: the in-memory ack against the durable one
/// (stored and fsynced before each 200, committed in groups).
fn concurrent_load(c: &mut Criterion) {
    const CONCURRENT: usize = 64;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let template = std::str::from_utf8(support::EXAMPLE).unwrap().to_owned();
    let next = std::sync::atomic::AtomicU64::new(0);
    // A body with a task id of its own, so that no request is a duplicate of another.
    let distinct = || {
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Bytes::from(template.replacen("ic1a7a8f2bxxx9f5e343a2ec25a9b2", &format!("{n:030}"), 1))
    };
    let receivers = runtime.block_on(async {
        let handler = |_: Delivery<TaskNotification>| async { Ok::<_, Infallible>(()) };
        let memory = Receiver::builder(handler)
            .allow_unauthenticated()
            .queue_capacity(1 << 16)
            .build()
            .unwrap();
        let store = airudder_webhook::store::RedbStore::open(&dir).unwrap();
        let durable = Receiver::builder(handler)
            .allow_unauthenticated()
            .queue_capacity(1 << 16)
            .durable(store)
            .build()
            .unwrap();
        [
            ("in-memory ack (baseline)", memory),
            ("durable ack, redb", durable),
        ]
    });

    let mut group = c.benchmark_group(format!("concurrent/{CONCURRENT} requests"));
    group.throughput(Throughput::Elements(CONCURRENT as u64));
    group.sample_size(20);
    for (name, receiver) in &receivers {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let bodies: Vec<Vec<Bytes>> = (0..iters)
                    .map(|_| (0..CONCURRENT).map(|_| distinct()).collect())
                    .collect();
                let start = std::time::Instant::now();
                for batch in bodies {
                    runtime.block_on(async {
                        let requests: Vec<_> = batch
                            .into_iter()
                            .map(|body| tokio::spawn(receiver.clone().oneshot(support::post(body))))
                            .collect();
                        for request in requests {
                            assert_eq!(request.await.unwrap().unwrap().status(), 200);
                        }
                    });
                }
                start.elapsed()
            })
        });
    }
    group.finish();
    for (_, receiver) in receivers {
        runtime.block_on(
            receiver
                .shutdown_handle()
                .shutdown(std::time::Duration::from_secs(30)),
        );
    }
}

criterion_group!(
    benches,
    request_to_200,
    request_beside_decode,
    concurrent_load
);
criterion_main!(benches);
