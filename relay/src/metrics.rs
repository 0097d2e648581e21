//! The relay's metrics: the library's (through the `metrics` facade) and the forwarder's,
//! exported in Prometheus' text format at `GET /metrics` on the admin listener. A series shows
//! from its first use on ([`first_use`]): an idle relay's scrape is short.

mod first_use;

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use airudder_webhook::store::{ErasedStore, RecordQuery, RecordState, Store};

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{
    BuildError, Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use self::first_use::FirstUse;

/// Histogram buckets for every `_seconds` metric: from half a millisecond (an answer from
/// memory) to a minute (a slow forward).
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Installs the Prometheus recorder, behind [`FirstUse`], as the process' recorder (before the
/// receiver is built, so that its handles record there) and keeps its histograms trimmed;
/// `None`, with a warning, if another recorder was installed first.
pub(crate) fn install() -> Option<PrometheusHandle> {
    let installed = prometheus()
        .map_err(Box::<dyn Error>::from)
        .and_then(|recorder| {
            let handle = recorder.handle();
            metrics::set_global_recorder(FirstUse::new(recorder))?;
            Ok(handle)
        });
    let handle = match installed {
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

/// The Prometheus recorder with the relay's buckets.
fn prometheus() -> Result<PrometheusRecorder, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
        .map(PrometheusBuilder::build_recorder)
}

fn describe() {
    describe_counter!(
        "airudder_forward_attempts_total",
        "Forwards tried, by result (ok: a 2xx or a broker's confirmation, rejected: a non-2xx answer or a broker's refusal, error: no answer) and the service's status (none without an answer, and for a broker)."
    );
    describe_histogram!(
        "airudder_forward_seconds",
        Unit::Seconds,
        "Time from sending a forward to the service's answer (or its failure), by result."
    );
    describe_gauge!(
        "airudder_forward_retries_waiting",
        "Notifications waiting in the store for their next forward after a failed one (sampled every AIRUDDER_METRICS_INTERVAL)."
    );
    describe_gauge!(
        "airudder_kind_paused",
        "1 while forwarding of the kind is paused (airudder-relay pause KIND), else 0; notifications are still taken in and stored."
    );
    describe_counter!(
        "airudder_unrouted_requests_total",
        "Requests to a path no callback is served at, answered 404: raw (a raw callback not in AIRUDDER_RAW_NAMES) or other."
    );
    describe_gauge!(
        "airudder_broker_connected",
        "1 while the connection to the broker (the destination, without credentials) is up, else 0."
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
    /// A broker confirmed the message.
    Confirmed,
    /// A broker refused it (unroutable, nacked, no stream).
    Refused,
}

/// Counts one forward and its latency.
pub(crate) fn forwarded(outcome: Forwarded, took: Duration) {
    let (result, status) = match outcome {
        Forwarded::Ok(status) => ("ok", status.to_string()),
        Forwarded::Rejected(status) => ("rejected", status.to_string()),
        Forwarded::Error => ("error", "none".into()),
        Forwarded::Confirmed => ("ok", "none".into()),
        Forwarded::Refused => ("rejected", "none".into()),
    };
    counter!("airudder_forward_attempts_total", "result" => result, "status" => status)
        .increment(1);
    histogram!("airudder_forward_seconds", "result" => result).record(took.as_secs_f64());
}

/// Shows whether the connection to the broker `shown` is up (`airudder_broker_connected`).
pub(crate) fn broker_connected(shown: &str, connected: bool) {
    gauge!("airudder_broker_connected", "destination" => shown.to_owned()).set(if connected {
        1.0
    } else {
        0.0
    });
}

/// Counts a request to a path nothing is served at (`raw` or `other`).
pub(crate) fn unrouted(which: &'static str) {
    counter!("airudder_unrouted_requests_total", "path" => which).increment(1);
}

/// Shows whether `kind` is paused (`airudder_kind_paused`).
pub(crate) fn kind_paused(kind: &str, paused: bool) {
    gauge!("airudder_kind_paused", "kind" => kind.to_owned()).set(if paused { 1.0 } else { 0.0 });
}

/// Samples, every `every`, what the store alone knows: which of `kinds` are paused (another
/// relay sharing PostgreSQL may pause one) and how many notifications wait for their next
/// forward after a failed one (pending with a last error; read without bodies).
pub(crate) fn sample_store(store: Arc<dyn ErasedStore>, kinds: Vec<String>, every: Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Ok(paused) = Store::paused(&store).await {
                for kind in &kinds {
                    kind_paused(kind, paused.contains(kind));
                }
            }
            // An empty text is in every last error, and in no record without one.
            let waiting = RecordQuery::new().state(RecordState::Pending).error("");
            if let Ok(count) = Store::count(&store, waiting).await {
                gauge!("airudder_forward_retries_waiting").set(count as f64);
            }
        }
    });
}
