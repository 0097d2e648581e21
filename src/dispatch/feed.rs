//! The feeder: a durable receiver's workers take their work from the store. As slots free up,
//! it claims the due records of the receiver's kind, a page at a time, and starts each in a
//! slot; a record waiting for its due time waits on disk. Memory holds what is being handled,
//! never the backlog.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, watch};

use super::job::{Job, Origin, StoredAttempt};
use super::shared::lock;
use super::worker::{Next, Outcome, Worker};
use crate::event::Event;
use crate::handler::HandleNotification;
use crate::intake::Decoded;
use crate::stats::Fate;
use crate::store::{Attempt, ErasedStore, MAX_HISTORY, Record};

/// The most records claimed at once.
const PAGE: usize = 64;
/// How often the store is asked when nothing is due and nothing wakes the feeder: the latest a
/// retry comes after its due time, or a record stored by another receiver sharing the store.
pub(super) const POLL: Duration = Duration::from_secs(1);

impl<E: Event, H: HandleNotification<E>> Worker<E, H> {
    /// Claims due records as slots free up, until the receiver stops. Woken at once by a
    /// record stored without a free slot, a replay or a retry-now
    /// ([`Shared::feed`](super::Shared)); otherwise it asks the store every [`POLL`].
    pub(super) async fn feed(
        self: Arc<Self>,
        store: Arc<dyn ErasedStore>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut failing = false;
        let mut asked_paused: Option<tokio::time::Instant> = None;
        loop {
            if asked_paused.is_none_or(|at| at.elapsed() >= POLL) {
                let changes = self.shared.pause_changes();
                match store.paused().await {
                    Ok(paused) => {
                        let ours = paused.iter().any(|kind| **kind == *self.shared.kind);
                        self.shared.store_says_paused(ours, changes);
                    }
                    Err(err) => {
                        tracing::debug!(error = %err, "could not read the paused kinds");
                    }
                }
                asked_paused = Some(tokio::time::Instant::now());
            }
            // A slot first: what is claimed starts at once, never waits in memory.
            let first = tokio::select! {
                slot = Arc::clone(&self.slots).acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return,
                },
                _ = stop.wait_for(|stopping| *stopping) => return,
            };
            let mut slots = vec![first];
            while slots.len() < PAGE {
                match Arc::clone(&self.slots).try_acquire_owned() {
                    Ok(slot) => slots.push(slot),
                    Err(_) => break,
                }
            }
            let asked = slots.len();
            let claimed = match store.claim(&self.shared.kind, asked).await {
                Ok(claimed) => {
                    if failing {
                        tracing::info!("claiming stored notifications again");
                    }
                    failing = false;
                    claimed
                }
                Err(err) => {
                    if !failing {
                        tracing::warn!(error = %err, "could not claim stored notifications; trying again every second");
                    }
                    failing = true;
                    Vec::new()
                }
            };
            let got = claimed.len();
            for record in claimed {
                let Some(slot) = slots.pop() else { break };
                self.start_claimed(record, slot);
            }
            drop(slots);
            if got < asked {
                tokio::select! {
                    () = self.shared.feed.notified() => {}
                    () = tokio::time::sleep(self.until_next_due()) => {}
                    _ = stop.wait_for(|stopping| *stopping) => return,
                }
            }
        }
    }

    /// How long to wait before asking the store again: until the soonest retry this receiver
    /// scheduled, if it comes before the next [`POLL`] (the hint is then taken: a retry
    /// scheduled later sets it again).
    fn until_next_due(&self) -> Duration {
        let now = crate::store::millis(std::time::SystemTime::now());
        let next = self.shared.next_due_ms.swap(i64::MAX, Ordering::Relaxed);
        let poll_ms = POLL.as_millis() as i64;
        if next.saturating_sub(now) >= poll_ms {
            self.shared.next_due_ms.fetch_min(next, Ordering::Relaxed);
            return POLL;
        }
        // A little after the due time, for the outcome's write to land first.
        Duration::from_millis(u64::try_from(next.saturating_sub(now)).unwrap_or(0) + 5)
    }

    /// Starts a claimed record in `slot`. A body that no longer decodes becomes a dead letter.
    fn start_claimed(self: &Arc<Self>, record: Record, slot: OwnedSemaphorePermit) {
        if lock(&self.shared.unmarked).contains(&record.id) {
            tracing::debug!(
                record = record.id,
                "already handled; its done mark is on its way"
            );
            return;
        }
        let decoded = match Decoded::<E>::from_stored(&record) {
            Ok(decoded) => decoded,
            Err(err) => {
                let error = format!("the stored body is not a valid notification: {err}");
                tracing::error!(record = record.id, error = %error, "a stored notification cannot be handed on: made a dead letter");
                self.shared.counters.count(Fate::Queued);
                self.shared.counters.count(Fate::Failed);
                if let Some(done) = &self.done {
                    let _ = done.send(Outcome {
                        id: record.id,
                        attempt: Attempt::failed_now(error),
                        next: Next::Dead,
                    });
                }
                return;
            }
        };
        // More attempts started than finished: one was cut short by a crash or a lost claim.
        let finished = record.history.len();
        if record.attempts as usize > finished && finished < MAX_HISTORY {
            self.shared.counters.redelivered(1);
        }
        let origin = Origin::Stored {
            id: record.id,
            attempt: StoredAttempt::ToCount {
                before: record.attempts,
            },
        };
        let job = Job::new(decoded.event, record.envelope.received_at(), None, origin);
        self.shared.counters.count(Fate::Queued);
        if let Err(job) = self.launch(job, slot) {
            // Past the shutdown's deadline: it stays held until this process ends, and pending.
            drop(job);
            self.shared.counters.count(Fate::Returned);
        }
    }
}
