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
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;

fn request_to_200(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let receiver = runtime.block_on(async {
        Receiver::builder(|_: Delivery<TaskNotification>| async { Ok::<_, Infallible>(()) })
            .allow_unauthenticated()
            .queue_capacity(1 << 16)
            .build()
            .unwrap()
    });
    // The floor: read the body, answer `{}`, parse nothing.
    let floor = tower::service_fn(|request: Request<Full<Bytes>>| async move {
        let body = request.into_body().collect().await?.to_bytes();
        black_box(body);
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
    });

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

criterion_group!(benches, request_to_200);
criterion_main!(benches);
