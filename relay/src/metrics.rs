//! The relay's metrics: the library's (through the `metrics` facade) and the forwarder's,
//! exported in Prometheus' text format at `GET /metrics` on the admin listener.

use std::time::Duration;

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets for every `_seconds` metric: from half a millisecond (an answer from
/// memory) to a minute (a slow forward).
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Installs the Prometheus recorder as the process' recorder (before the receiver is built, so
/// that its handles record there) and keeps its histograms trimmed; `None`, with a warning, if
/// another recorder was installed first.
pub(crate) fn install() -> Option<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
        .and_then(PrometheusBuilder::install_recorder);
    let handle = match handle {
        Ok(handle) => handle,
        Err(err) => {
            tracing::warn!(error = %err, "metrics are off: GET /metrics answers 404");
            return None;
        }
    };
    describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Some(handle)
}

fn describe() {
    describe_counter!(
        "airudder_forward_attempts_total",
        "Forwards tried, by result (ok, rejected: a non-2xx answer, error: no answer) and the service's status (none without an answer)."
    );
    describe_histogram!(
        "airudder_forward_seconds",
        Unit::Seconds,
        "Time from sending a forward to the service's answer (or its failure), by result."
    );
    describe_gauge!(
        "airudder_forward_retries_waiting",
        "Notifications waiting for their next forward after a failed one."
    );
    describe_gauge!(
        "airudder_connections_open",
        "Open connections, by listener (main, admin)."
    );
    describe_counter!(
        "airudder_connections_closed_for_room_total",
        "Connections closed at the cap, by listener and which (oldest_idle: the one idle the longest, for a new one; slow_body: the one reading its body the longest, none being idle; new: the new one, every other handling a request)."
    );
}

/// How one forward ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Forwarded {
    Ok(u16),
    Rejected(u16),
    Error,
}

/// Counts one forward and its latency.
pub(crate) fn forwarded(outcome: Forwarded, took: Duration) {
    let (result, status) = match outcome {
        Forwarded::Ok(status) => ("ok", status.to_string()),
        Forwarded::Rejected(status) => ("rejected", status.to_string()),
        Forwarded::Error => ("error", "none".into()),
    };
    counter!("airudder_forward_attempts_total", "result" => result, "status" => status)
        .increment(1);
    histogram!("airudder_forward_seconds", "result" => result).record(took.as_secs_f64());
}

/// Counts a notification waiting for its next forward while the guard lives.
pub(crate) struct WaitingRetry(());

impl WaitingRetry {
    pub(crate) fn start() -> Self {
        gauge!("airudder_forward_retries_waiting").increment(1.0);
        Self(())
    }
}

impl Drop for WaitingRetry {
    fn drop(&mut self) {
        gauge!("airudder_forward_retries_waiting").decrement(1.0);
    }
}
