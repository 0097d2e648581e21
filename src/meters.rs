//! Recording through the [`metrics`](https://docs.rs/metrics) facade, behind the feature
//! `metrics`; without it every call here is an empty inline function.
//!
//! Every handle is registered once, when the receiver is built, with the recorder installed
//! then (the global one, or a local one around `build()`): a request bumps a counter and
//! records one histogram sample, with no lookup and no allocation. The gauges are sampled in
//! the background (see [`crate::receiver::ReceiverBuilder::metrics_interval`]).

use std::time::Duration;

use crate::store::StoreSummary;

/// How one handler attempt ended, for `airudder_handler_attempts_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) enum AttemptResult {
    Ok,
    Error,
    Panic,
    Timeout,
}

/// What the sampler reads off a running receiver.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) struct Sample {
    pub(crate) queue_depth: usize,
    pub(crate) handlers_running: usize,
    pub(crate) bytes_in_flight: usize,
    pub(crate) ready: bool,
}

#[cfg(feature = "metrics")]
pub(crate) use self::on::Meters;

#[cfg(not(feature = "metrics"))]
pub(crate) use self::off::Meters;

#[cfg(not(feature = "metrics"))]
mod off {
    use super::*;

    /// Nothing is recorded without the feature.
    #[derive(Debug, Default)]
    pub(crate) struct Meters;

    #[allow(clippy::unused_self)]
    impl Meters {
        pub(crate) fn new(_receiver: &str) -> Self {
            Self
        }
        #[inline(always)]
        pub(crate) fn answered(&self, _slot: usize, _elapsed: Duration) {}
        #[inline(always)]
        pub(crate) fn attempt(&self, _result: AttemptResult, _elapsed: Duration) {}
        #[inline(always)]
        pub(crate) fn dead_letter(&self) {}
        #[inline(always)]
        pub(crate) fn redelivered(&self, _count: u64) {}
        #[allow(dead_code)]
        pub(crate) fn sample(&self, _sample: &Sample) {}
        #[allow(dead_code)]
        pub(crate) fn sample_store(&self, _summary: Option<&StoreSummary>) {}
        #[allow(dead_code)]
        pub(crate) fn sample_held_back(&self, _keys: u64) {}
    }
}

#[cfg(feature = "metrics")]
mod on {
    use std::fmt;
    use std::time::SystemTime;

    use http::StatusCode;
    use metrics::{Counter, Gauge, Histogram, Unit};

    use super::*;
    use crate::rejection;

    /// Every handle a receiver records through, registered once.
    pub(crate) struct Meters {
        /// `airudder_requests_total`, by answer slot: accepted, duplicate, then each refusal code.
        requests: Vec<Counter>,
        /// `airudder_answer_seconds`, by answer slot (labelled by the slot's status).
        answer_seconds: Vec<Histogram>,
        /// `airudder_handler_attempts_total`, by [`AttemptResult`].
        attempts: [Counter; 4],
        handler_seconds: Histogram,
        dead_letters: Counter,
        redeliveries: Counter,
        queue_depth: Gauge,
        handlers_running: Gauge,
        bytes_in_flight: Gauge,
        ready: Gauge,
        store_pending: Gauge,
        store_dead_letters: Gauge,
        store_oldest_pending: Gauge,
        store_recovering: Gauge,
        /// Only an ordered receiver sets it (so only its series is exported).
        ordered_keys_held_back: Gauge,
        store_recoveries: Counter,
    }

    impl fmt::Debug for Meters {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Meters").finish_non_exhaustive()
        }
    }

    /// Every answer slot with its status and `outcome` label, in slot order.
    fn slots() -> impl Iterator<Item = (StatusCode, &'static str)> {
        [(StatusCode::OK, "accepted"), (StatusCode::OK, "duplicate")]
            .into_iter()
            .chain(rejection::all_codes().map(|(code, status)| (status, code)))
    }

    fn describe() {
        use metrics::{describe_counter, describe_gauge, describe_histogram};
        describe_counter!(
            "airudder_requests_total",
            "Requests answered, by HTTP status and outcome (accepted, duplicate, or the refusal's code)."
        );
        describe_histogram!(
            "airudder_answer_seconds",
            Unit::Seconds,
            "Time from the request to its answer, by HTTP status."
        );
        describe_counter!(
            "airudder_handler_attempts_total",
            "Handler attempts, by result: ok, error, panic, timeout."
        );
        describe_histogram!(
            "airudder_handler_seconds",
            Unit::Seconds,
            "Duration of each handler attempt."
        );
        describe_counter!(
            "airudder_dead_letters_total",
            "Notifications the handler gave up on (every attempt failed, or GiveUp)."
        );
        describe_counter!(
            "airudder_redeliveries_total",
            "Stored notifications handed to the handler again after a restart or a lapsed claim."
        );
        describe_gauge!(
            "airudder_queue_depth",
            "Notifications accepted and waiting for a free worker."
        );
        describe_gauge!("airudder_handlers_running", "Handlers running now.");
        describe_gauge!(
            "airudder_bytes_in_flight",
            Unit::Bytes,
            "Body bytes held (being read, queued or handled) against max_bytes_in_flight."
        );
        describe_gauge!(
            "airudder_ready",
            "1 when the receiver accepts notifications (started, not stopping), else 0."
        );
        describe_gauge!(
            "airudder_ordered_keys_held_back",
            "Of an ordered receiver: keys whose notifications wait behind a first one that failed (retrying, or a dead letter that holds the key)."
        );
        describe_gauge!(
            "airudder_store_pending",
            "Stored notifications not handled yet, in the whole store (receivers sharing it report the same)."
        );
        describe_gauge!(
            "airudder_store_dead_letters",
            "Dead letters in the whole store (receivers sharing it report the same)."
        );
        describe_gauge!(
            "airudder_store_oldest_pending_seconds",
            Unit::Seconds,
            "Age of the oldest pending notification (0 when none)."
        );
        describe_gauge!(
            "airudder_store_recovering",
            "1 while the store is down: recovering from an I/O error, or not answering."
        );
        describe_counter!(
            "airudder_store_recoveries_total",
            "Times the embedded store reopened itself after an I/O error."
        );
    }

    impl Meters {
        /// Registers every handle with the current recorder, labelled `receiver`.
        pub(crate) fn new(receiver: &str) -> Self {
            use metrics::{counter, gauge, histogram};
            describe();
            let name = receiver.to_owned();
            let requests = slots()
                .map(|(status, outcome)| {
                    counter!(
                        "airudder_requests_total",
                        "receiver" => name.clone(),
                        "status" => status.as_str().to_owned(),
                        "outcome" => outcome,
                    )
                })
                .collect();
            let answer_seconds = slots()
                .map(|(status, _)| {
                    histogram!(
                        "airudder_answer_seconds",
                        "receiver" => name.clone(),
                        "status" => status.as_str().to_owned(),
                    )
                })
                .collect();
            let attempt = |result: &'static str| counter!("airudder_handler_attempts_total", "receiver" => name.clone(), "result" => result);
            let gauge = |key: &'static str| gauge!(key, "receiver" => name.clone());
            Self {
                requests,
                answer_seconds,
                attempts: [
                    attempt("ok"),
                    attempt("error"),
                    attempt("panic"),
                    attempt("timeout"),
                ],
                handler_seconds: histogram!("airudder_handler_seconds", "receiver" => name.clone()),
                dead_letters: counter!("airudder_dead_letters_total", "receiver" => name.clone()),
                redeliveries: counter!("airudder_redeliveries_total", "receiver" => name.clone()),
                queue_depth: gauge("airudder_queue_depth"),
                handlers_running: gauge("airudder_handlers_running"),
                bytes_in_flight: gauge("airudder_bytes_in_flight"),
                ready: gauge("airudder_ready"),
                store_pending: gauge("airudder_store_pending"),
                store_dead_letters: gauge("airudder_store_dead_letters"),
                store_oldest_pending: gauge("airudder_store_oldest_pending_seconds"),
                store_recovering: gauge("airudder_store_recovering"),
                ordered_keys_held_back: gauge("airudder_ordered_keys_held_back"),
                store_recoveries: counter!("airudder_store_recoveries_total", "receiver" => name),
            }
        }

        /// One answer, by its slot: 0 accepted, 1 duplicate, then 2 + the refusal's code index.
        #[inline]
        pub(crate) fn answered(&self, slot: usize, elapsed: Duration) {
            if let (Some(counter), Some(histogram)) =
                (self.requests.get(slot), self.answer_seconds.get(slot))
            {
                counter.increment(1);
                histogram.record(elapsed.as_secs_f64());
            }
        }

        #[inline]
        pub(crate) fn attempt(&self, result: AttemptResult, elapsed: Duration) {
            self.attempts[result as usize].increment(1);
            self.handler_seconds.record(elapsed.as_secs_f64());
        }

        #[inline]
        pub(crate) fn dead_letter(&self) {
            self.dead_letters.increment(1);
        }

        #[inline]
        pub(crate) fn redelivered(&self, count: u64) {
            self.redeliveries.increment(count);
        }

        pub(crate) fn sample(&self, sample: &Sample) {
            self.queue_depth.set(sample.queue_depth as f64);
            self.handlers_running.set(sample.handlers_running as f64);
            self.bytes_in_flight.set(sample.bytes_in_flight as f64);
            self.ready.set(if sample.ready { 1.0 } else { 0.0 });
        }

        /// The store's numbers, or `None` when the store did not answer (it counts as down; the
        /// other gauges keep their last values).
        pub(crate) fn sample_held_back(&self, keys: u64) {
            self.ordered_keys_held_back.set(keys as f64);
        }

        pub(crate) fn sample_store(&self, summary: Option<&StoreSummary>) {
            let Some(summary) = summary else {
                self.store_recovering.set(1.0);
                return;
            };
            self.store_pending.set(summary.pending as f64);
            self.store_dead_letters.set(summary.dead_letters as f64);
            let age = summary
                .oldest_pending
                .and_then(|at| SystemTime::now().duration_since(at).ok())
                .map_or(0.0, |age| age.as_secs_f64());
            self.store_oldest_pending.set(age);
            self.store_recovering
                .set(if summary.recovering { 1.0 } else { 0.0 });
            self.store_recoveries.absolute(summary.recoveries);
        }
    }
}
