//! A recorder whose handles register their series with the inner (Prometheus) recorder on
//! their first use, not when they are made.
//!
//! The library registers every handle of a receiver when the receiver is built, one per answer
//! status of each receiver: an idle relay would show some 1,600 series, mostly histogram
//! buckets of answers never given. Handed out by [`FirstUse`], a handle shows nothing until
//! its first increment, set or record. Any value counts as a use, 0 too: a sampled
//! `absolute(0)` or `set(0.0)` is a reading, and its series shows 0.

use std::sync::{Arc, OnceLock};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Level, Metadata,
    Recorder, SharedString, Unit,
};

/// Wraps `inner`: handles that register with it on first use; descriptions go straight to it.
#[derive(Debug)]
pub(super) struct FirstUse<R> {
    inner: Arc<R>,
}

impl<R> FirstUse<R> {
    pub(super) fn new(inner: R) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }
}

impl<R: Recorder + Send + Sync + 'static> Recorder for FirstUse<R> {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Deferred::new(&self.inner, key, metadata)))
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(Arc::new(Deferred::new(&self.inner, key, metadata)))
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Deferred::new(&self.inner, key, metadata)))
    }
}

/// A handle of kind `H` (counter, gauge or histogram): what to register, and the inner handle
/// once registered.
struct Deferred<R, H> {
    recorder: Arc<R>,
    key: Key,
    // The metadata's parts, owned: the handle outlives the call that made it.
    target: Box<str>,
    level: Level,
    module_path: Option<Box<str>>,
    handle: OnceLock<H>,
}

impl<R: Recorder, H: Register> Deferred<R, H> {
    fn new(recorder: &Arc<R>, key: &Key, metadata: &Metadata<'_>) -> Self {
        Self {
            recorder: Arc::clone(recorder),
            key: key.clone(),
            target: metadata.target().into(),
            level: *metadata.level(),
            module_path: metadata.module_path().map(Into::into),
            handle: OnceLock::new(),
        }
    }

    /// The inner handle, registered on the first call; after it, one atomic load.
    #[inline]
    fn handle(&self) -> &H {
        self.handle.get_or_init(|| {
            let metadata = Metadata::new(&self.target, self.level, self.module_path.as_deref());
            H::register(&*self.recorder, &self.key, &metadata)
        })
    }
}

/// Registers a handle of its kind with a recorder.
trait Register {
    fn register(recorder: &impl Recorder, key: &Key, metadata: &Metadata<'_>) -> Self;
}

impl Register for Counter {
    fn register(recorder: &impl Recorder, key: &Key, metadata: &Metadata<'_>) -> Self {
        recorder.register_counter(key, metadata)
    }
}

impl Register for Gauge {
    fn register(recorder: &impl Recorder, key: &Key, metadata: &Metadata<'_>) -> Self {
        recorder.register_gauge(key, metadata)
    }
}

impl Register for Histogram {
    fn register(recorder: &impl Recorder, key: &Key, metadata: &Metadata<'_>) -> Self {
        recorder.register_histogram(key, metadata)
    }
}

impl<R: Recorder> CounterFn for Deferred<R, Counter> {
    fn increment(&self, value: u64) {
        self.handle().increment(value);
    }

    fn absolute(&self, value: u64) {
        self.handle().absolute(value);
    }
}

impl<R: Recorder> GaugeFn for Deferred<R, Gauge> {
    fn increment(&self, value: f64) {
        self.handle().increment(value);
    }

    fn decrement(&self, value: f64) {
        self.handle().decrement(value);
    }

    fn set(&self, value: f64) {
        self.handle().set(value);
    }
}

impl<R: Recorder> HistogramFn for Deferred<R, Histogram> {
    fn record(&self, value: f64) {
        self.handle().record(value);
    }

    fn record_many(&self, value: f64, count: usize) {
        self.handle().record_many(value, count);
    }
}

#[cfg(test)]
mod tests {
    use metrics::{Unit, counter, describe_counter, gauge, histogram, with_local_recorder};
    use metrics_exporter_prometheus::PrometheusHandle;

    use super::FirstUse;

    fn recorder() -> (
        FirstUse<metrics_exporter_prometheus::PrometheusRecorder>,
        PrometheusHandle,
    ) {
        let prometheus = super::super::prometheus().unwrap();
        let handle = prometheus.handle();
        (FirstUse::new(prometheus), handle)
    }

    /// The sample lines of a scrape, sorted (the exporter's order is a hash map's).
    fn samples(handle: &PrometheusHandle) -> Vec<String> {
        let mut lines: Vec<String> = handle
            .render()
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    }

    #[test]
    fn a_handle_shows_nothing_until_used_and_then_what_it_was_given() {
        let (recorder, handle) = recorder();
        let (requests, depth, took) = with_local_recorder(&recorder, || {
            describe_counter!("t_requests_total", Unit::Count, "Requests.");
            (
                counter!("t_requests_total", "status" => "200"),
                gauge!("t_depth"),
                histogram!("t_answer_seconds"),
            )
        });
        assert_eq!(handle.render(), "", "nothing used yet");

        requests.increment(2);
        depth.set(3.0);
        depth.decrement(1.0);
        took.record(0.004);
        took.record_many(0.2, 2);
        let text = handle.render();
        assert!(text.contains("# HELP t_requests_total Requests."), "{text}");
        let seen = samples(&handle);
        for line in [
            r#"t_requests_total{status="200"} 2"#,
            "t_depth 2",
            // The relay's buckets apply.
            r#"t_answer_seconds_bucket{le="0.005"} 1"#,
            r#"t_answer_seconds_bucket{le="0.25"} 3"#,
            "t_answer_seconds_count 3",
        ] {
            assert!(seen.iter().any(|s| s == line), "no {line} in {seen:#?}");
        }
    }

    #[test]
    fn zero_is_a_use_and_values_add_up_as_without_the_wrapper() {
        let (recorder, handle) = recorder();
        let (added, sampled, gauge, twin) = with_local_recorder(&recorder, || {
            (
                counter!("t_added_total"),
                counter!("t_sampled_total"),
                gauge!("t_gauge"),
                counter!("t_added_total"),
            )
        });
        added.increment(0);
        sampled.absolute(0);
        gauge.set(0.0);
        assert_eq!(
            samples(&handle),
            ["t_added_total 0", "t_gauge 0", "t_sampled_total 0"],
            "each at 0"
        );

        // Two handles of one series count into it, and `absolute` never goes back.
        added.increment(1);
        twin.increment(2);
        sampled.absolute(5);
        sampled.absolute(3);
        gauge.increment(1.5);
        assert_eq!(
            samples(&handle),
            ["t_added_total 3", "t_gauge 1.5", "t_sampled_total 5"]
        );
    }
}
