//! The background sampler behind the gauges (feature `metrics`).

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::state::Inner;

/// Samples the receiver's gauges every `every` until it stops or is dropped. It holds the
/// receiver weakly, so that it never keeps the workers alive.
pub(super) fn start<E: Send + Sync + 'static>(inner: &Arc<Inner<E>>, every: Duration) {
    let weak = Arc::downgrade(inner);
    let mut stop = inner.queue().stop_signal();
    let sampler = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|stopping| *stopping) => break,
            }
            if !sample(&weak, true).await {
                return;
            }
        }
        // A last sample, so that the gauges say "not ready" once stopped; the store is left
        // alone, so that nothing holds it once the shutdown returns.
        sample(&weak, false).await;
    });
    inner.queue().attach_sampler(sampler);
}

/// One sample (of the store too, with `store`); false once the receiver is gone.
async fn sample<E>(weak: &Weak<Inner<E>>, store: bool) -> bool {
    let Some(inner) = weak.upgrade() else {
        return false;
    };
    let counters = Arc::clone(inner.counters());
    counters.meters().sample(&inner.sample());
    let Some(store) = inner.queue().store().filter(|_| store).map(Arc::clone) else {
        return true;
    };
    let ordered = inner
        .queue()
        .is_ordered()
        .then(|| inner.queue().kind().to_owned());
    // The store is read without holding the receiver.
    drop(inner);
    let summary = store.summary().await;
    if let Err(err) = &summary {
        tracing::debug!(error = %err, "could not read the store's summary for the gauges");
    }
    counters.meters().sample_store(summary.as_ref().ok());
    if let Some(kind) = ordered {
        match store.keys_held_back(&kind).await {
            Ok(keys) => counters.meters().sample_held_back(keys),
            Err(err) => tracing::debug!(error = %err, "could not count the keys held back"),
        }
    }
    true
}
