//! A durable receiver's memory under steady load: distinct notifications at a fixed rate for
//! minutes, every key kept for the 24-hour de-duplication window, the process's resident set
//! sampled as it goes.
//!
//! Run with: cargo bench --bench soak
//! Options after `--`: `--seconds=N` (default 180), `--rate=N` notifications a second (default
//! 2000), `--cache-mib=N` for the store's page cache (default `RedbOptions`' 8 MiB; redb's own
//! default is 1024). Under `cargo test --benches` it runs for two seconds only.

#[path = "../tests/support/mod.rs"]
mod support;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use airudder_webhook::model::TaskNotification;
use airudder_webhook::store::{RedbOptions, RedbStore};
use airudder_webhook::{Delivery, Receiver};
use tower::ServiceExt;

fn arg(name: &str) -> Option<u64> {
    std::env::args()
        .find_map(|arg| arg.strip_prefix(&format!("--{name}=")).map(str::to_owned))
        .and_then(|value| value.parse().ok())
}

/// The resident set of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let timed = std::env::args().any(|arg| arg == "--bench");
    let seconds = arg("seconds").unwrap_or(if timed { 180 } else { 2 });
    let rate = arg("rate").unwrap_or(if timed { 2000 } else { 200 });
    let options = match arg("cache-mib") {
        Some(mib) => RedbOptions::default().cache_size(mib as usize * 1024 * 1024),
        None => RedbOptions::default(),
    };
    let sample_every = Duration::from_secs(if timed { 10 } else { 1 });
    let dir = support::process::DataDir::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let receiver =
            Receiver::builder(|_: Delivery<TaskNotification>| async { Ok::<_, Infallible>(()) })
                .allow_unauthenticated()
                .durable(RedbStore::open_with(&dir.0, options.clone()).expect("the store opens"))
                .queue_capacity(65_536)
                .build()
                .expect("the receiver builds");
        let template = String::from_utf8(support::EXAMPLE.to_vec()).expect("UTF-8");
        let marker = "ic1a7a8f2bxxx9f5e343a2ec25a9b2";
        assert!(template.contains(marker), "the example's task id");

        println!(
            "\n{rate} distinct notifications a second for {seconds} s into a durable receiver \
             ({options:?}), 24 h de-duplication window\n"
        );
        println!("| elapsed | notifications | refused | RSS |");
        println!("| --- | --- | --- | --- |");
        let started = Instant::now();
        let mut next_sample = started;
        let mut samples = Vec::new();
        let mut sent = 0u64;
        let mut refused = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut in_flight = tokio::task::JoinSet::new();
        while started.elapsed() < Duration::from_secs(seconds) {
            tick.tick().await;
            // As many as the rate owes by now.
            let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
            while sent < due {
                let body = template.replace(marker, &format!("soak-{sent:012}"));
                let receiver = receiver.clone();
                in_flight.spawn(async move {
                    receiver
                        .oneshot(support::post(body))
                        .await
                        .map(|response| response.status().is_success())
                        .unwrap_or(false)
                });
                sent += 1;
            }
            while let Some(done) = in_flight.try_join_next() {
                if !done.unwrap_or(false) {
                    refused += 1;
                }
            }
            if Instant::now() >= next_sample {
                let rss = rss_kib();
                samples.push((started.elapsed(), rss));
                println!(
                    "| {:.0} s | {sent} | {refused} | {:.1} MiB |",
                    started.elapsed().as_secs_f64(),
                    rss as f64 / 1024.0
                );
                next_sample += sample_every;
            }
        }
        while let Some(done) = in_flight.join_next().await {
            if !done.unwrap_or(false) {
                refused += 1;
            }
        }
        let end = rss_kib();
        println!(
            "| {:.0} s (end) | {sent} | {refused} | {:.1} MiB |",
            started.elapsed().as_secs_f64(),
            end as f64 / 1024.0
        );
        // The first minute warms the caches; after it, the resident set should stay flat.
        let warm = samples
            .iter()
            .find(|(at, _)| *at >= Duration::from_secs(60))
            .or(samples.first())
            .map_or(end, |(_, rss)| *rss);
        println!(
            "\nRSS at the end / RSS after the first minute: {:.2}x (target <= 1.30x)",
            end as f64 / warm.max(1) as f64
        );
        receiver
            .shutdown_handle()
            .shutdown(Duration::from_secs(30))
            .await;
    });
}
