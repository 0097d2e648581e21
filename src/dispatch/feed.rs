//! The feeder: a durable receiver's workers take their work from the store. It claims the due
//! records of the receiver's kind a page at a time, each claim counting the attempts about to
//! start at once (one a free worker) in its one write
//! ([`Store::claim_and_begin`](crate::store::Store::claim_and_begin)), and keeps the rest
//! claimed ahead, so that a worker that frees up starts the next record at once instead of
//! waiting for a claim's write. A record claimed ahead is counted by the write of its outcome
//! ([`Attempt::number`](crate::store::Attempt::number)), not by its claim: a crash (a SIGKILL,
//! the OOM killer) must not count an attempt for a record that never started, or a few of them
//! would make innocent notifications dead letters. A record that crashes the process at once
//! is still counted at every start: after a restart it is among the first claimed, and those
//! start at once. A record waiting for its due time waits on disk.
//!
//! Claimed ahead: up to a [`PAGE`] of records (or one a worker, if more) while their bodies
//! stay within [`AHEAD_BYTES`], and whatever their size one a worker. The store reads no body
//! past the budget. Small notifications then come a page a write (with 16 workers, a claim of
//! 16 records a commit was what bound forwarding), and big ones no more than one a worker.
//! Memory holds what is being handled and what is claimed ahead, never the backlog.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;

use super::job::{Job, Origin};
use super::shared::lock;
use super::worker::{Next, Outcome, Worker};
use crate::event::Event;
use crate::handler::HandleNotification;
use crate::intake::Decoded;
use crate::stats::Fate;
use crate::store::{Attempt, BoxFuture, ErasedStore, MAX_HISTORY, Record, RecordId, StoreError};

/// The most records claimed at once, and claimed ahead.
const PAGE: usize = 64;
/// The bodies claimed ahead, past one record a worker.
const AHEAD_BYTES: usize = 4 << 20;
/// How often the store is asked when nothing is due and nothing wakes the feeder: the latest a
/// retry comes after its due time, or a record stored by another receiver sharing the store.
pub(super) const POLL: Duration = Duration::from_secs(1);

/// How long the feeder waits before claiming again after giving back a record whose done mark
/// is still on its way (handled here, its claim lapsed before the mark was written): claiming
/// at once would only take it again, in a loop of claims against the store until the mark lands.
const MARK_WAIT: Duration = Duration::from_millis(50);

/// A claim under way, with the records handled here whose done mark was still on its way
/// when it began: the claim may have read one of them as pending, and the mark may land (its
/// id then leaves [`Shared::unmarked`](super::Shared)) before the claim comes back.
type Claiming = BoxFuture<'static, Result<(Vec<Claimed>, HashSet<RecordId>), StoreError>>;

/// A record claimed for a worker, and whether its claim counted the attempt about to start.
struct Claimed {
    record: Record,
    counted: bool,
}

impl Claimed {
    /// The record, to give back untried.
    fn untried(self) -> Untried {
        (self.record.id, self.counted)
    }
}

/// A claimed record never tried, to give back: its id, and whether its claim counted an attempt.
type Untried = (RecordId, bool);

impl<E: Event, H: HandleNotification<E>> Worker<E, H> {
    /// Claims due records ahead of the workers and starts each as a worker frees up, until the
    /// receiver stops. When a claim finds nothing due, it waits to be woken by a record
    /// stored without a free worker, a replay or a retry-now ([`Shared::feed`](super::Shared)),
    /// for the soonest retry due, or for the next [`POLL`].
    pub(super) async fn feed(
        self: Arc<Self>,
        store: Arc<dyn ErasedStore>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut failing = false;
        let mut asked_paused: Option<Instant> = None;
        // Claimed, waiting for a worker (see the module's guide for how many).
        let mut ready: VecDeque<Claimed> = VecDeque::new();
        let workers = self.workers.max(1);
        // The bodies in `ready`.
        let mut ready_bytes = 0usize;
        let mut claiming: Option<Claiming> = None;
        // After a claim that found nothing: when to ask again at the latest.
        let mut idle_until: Option<Instant> = None;
        loop {
            if asked_paused.is_none_or(|at| at.elapsed() >= POLL) {
                self.read_paused(&store).await;
                asked_paused = Some(Instant::now());
            }
            if self.shared.is_paused() && !ready.is_empty() {
                ready_bytes = 0;
                self.give_back(&store, ready.drain(..).map(Claimed::untried).collect())
                    .await;
            }
            let mut untried = Vec::new();
            while !ready.is_empty() {
                let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
                    break;
                };
                if let Some(claimed) = ready.pop_front() {
                    ready_bytes = ready_bytes.saturating_sub(claimed.record.body.len());
                    untried.extend(self.start_claimed(claimed, slot));
                }
            }
            if !untried.is_empty() {
                idle_until.get_or_insert_with(|| Instant::now() + MARK_WAIT);
            }
            self.give_back(&store, untried).await;
            let (asked, max_bytes) = to_claim(ready.len(), ready_bytes, workers);
            if claiming.is_none() && idle_until.is_none() && asked > 0 {
                let (store, kind) = (Arc::clone(&store), Arc::clone(&self.shared.kind));
                let unmarked = lock(&self.shared.unmarked).clone();
                // What starts as soon as the claim is back: a record a free worker. (A free
                // worker with records ready took one above.)
                let begin = if ready.is_empty() {
                    self.slots.available_permits().min(asked)
                } else {
                    0
                };
                let claim: BoxFuture<'static, _> = Box::pin(async move {
                    let claimed = store
                        .claim_and_begin(&kind, asked, max_bytes, begin)
                        .await?;
                    let claimed = claimed
                        .into_iter()
                        .enumerate()
                        .map(|(at, record)| Claimed {
                            record,
                            counted: at < begin,
                        })
                        .collect();
                    Ok((claimed, unmarked))
                });
                claiming = Some(claim);
            }
            tokio::select! {
                biased;
                () = async { drop(stop.wait_for(|stopping| *stopping).await) } => {
                    // A claim under way is let finish, so that what it took is given back.
                    if let Some(claim) = claiming.take()
                        && let Ok((claimed, _)) = claim.await
                    {
                        ready.extend(claimed);
                    }
                    self.give_back(&store, ready.drain(..).map(Claimed::untried).collect())
                        .await;
                    return;
                }
                slot = Arc::clone(&self.slots).acquire_owned(), if !ready.is_empty() => {
                    let (Ok(slot), Some(claimed)) = (slot, ready.pop_front()) else {
                        return;
                    };
                    ready_bytes = ready_bytes.saturating_sub(claimed.record.body.len());
                    if let Some(untried) = self.start_claimed(claimed, slot) {
                        idle_until.get_or_insert_with(|| Instant::now() + MARK_WAIT);
                        self.give_back(&store, vec![untried]).await;
                    }
                }
                claimed = async {
                    match claiming.as_mut() {
                        Some(claim) => Some(claim.await),
                        None => None,
                    }
                }, if claiming.is_some() => {
                    claiming = None;
                    let got = match claimed {
                        Some(Ok((claimed, unmarked))) => {
                            if failing {
                                tracing::info!("claiming stored notifications again");
                            }
                            failing = false;
                            let got = claimed.len();
                            let (stale, claimed): (Vec<Claimed>, Vec<Claimed>) = claimed
                                .into_iter()
                                .partition(|claimed| unmarked.contains(&claimed.record.id));
                            if !stale.is_empty() {
                                idle_until.get_or_insert_with(|| Instant::now() + MARK_WAIT);
                                self.give_back(&store, stale.into_iter().map(Claimed::untried).collect()).await;
                            }
                            ready_bytes += claimed.iter().map(|claimed| claimed.record.body.len()).sum::<usize>();
                            ready.extend(claimed);
                            got
                        }
                        Some(Err(err)) => {
                            if !failing {
                                tracing::warn!(error = %err, "could not claim stored notifications; trying again every second");
                            }
                            failing = true;
                            0
                        }
                        None => 0,
                    };
                    // Nothing due: wait. A claim that found less than it asked may have been cut
                    // short by its bytes, not by what is due: the next one tells.
                    if got == 0 {
                        idle_until = Some(Instant::now() + self.until_next_due());
                    }
                }
                () = self.shared.feed.notified(), if idle_until.is_some() => idle_until = None,
                () = tokio::time::sleep_until(idle_until.unwrap_or_else(Instant::now)), if idle_until.is_some() => {
                    idle_until = None;
                }
            }
        }
    }

    /// Reads whether this receiver's kind is paused, unless a pause or resume made here since
    /// the read began says otherwise.
    async fn read_paused(&self, store: &Arc<dyn ErasedStore>) {
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
    }

    /// Gives claimed records that were never tried back to the store, the attempt their claim
    /// counted (if it did) taken back ([`Store::unclaim`](crate::store::Store::unclaim)).
    async fn give_back(&self, store: &Arc<dyn ErasedStore>, untried: Vec<Untried>) {
        let (counted, ahead): (Vec<Untried>, Vec<Untried>) =
            untried.into_iter().partition(|(_, counted)| *counted);
        for (ids, counted) in [(counted, true), (ahead, false)] {
            if ids.is_empty() {
                continue;
            }
            let count = ids.len();
            let ids = ids.into_iter().map(|(id, _)| id).collect();
            if let Err(err) = store.unclaim(ids, counted).await {
                tracing::warn!(count, error = %err, "could not give claimed notifications back to the store: each is claimed again once its claim lapses");
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

    /// Starts a claimed record in `slot`, its attempt counted here if its claim did not count
    /// it (the outcome's write counts it in the store). A body that no longer decodes becomes
    /// a dead letter. Returns the record when it is not tried, to give back to the store.
    fn start_claimed(
        self: &Arc<Self>,
        claimed: Claimed,
        slot: OwnedSemaphorePermit,
    ) -> Option<Untried> {
        let Claimed {
            mut record,
            counted,
        } = claimed;
        if lock(&self.shared.unmarked).contains(&record.id) {
            tracing::debug!(
                record = record.id,
                "already handled; its done mark is on its way"
            );
            return Some((record.id, counted));
        }
        if !counted {
            record.attempts = record.attempts.saturating_add(1);
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
                        attempt: Attempt::failed_now(error).with_number(record.attempts),
                        next: Next::Dead,
                    });
                }
                return None;
            }
        };
        // More attempts started before this one than finished: one was cut short by a crash or
        // a lost claim.
        let finished = record.history.len();
        if record.attempts.saturating_sub(1) as usize > finished && finished < MAX_HISTORY {
            self.shared.counters.redelivered(1);
        }
        let origin = Origin::Stored {
            id: record.id,
            attempt: record.attempts,
        };
        let job = Job::new(decoded.event, record.envelope.received_at(), None, origin);
        self.shared.counters.count(Fate::Queued);
        if let Err(job) = self.launch(job, slot) {
            // Past the shutdown's deadline: it stays held until this process ends, and pending.
            drop(job);
            self.shared.counters.count(Fate::Returned);
        }
        None
    }
}

/// How many records to claim, and within how many bytes of bodies, with `ready` records of
/// `ready_bytes` claimed ahead: up to a [`PAGE`] (or one a worker) while the bodies fit within
/// [`AHEAD_BYTES`], and while fewer than one a worker are ready, at least one (the store
/// always gives the first record of a claim, whatever its size).
fn to_claim(ready: usize, ready_bytes: usize, workers: usize) -> (usize, usize) {
    let count = PAGE.max(workers).saturating_sub(ready).min(PAGE);
    let bytes = AHEAD_BYTES.saturating_sub(ready_bytes);
    if ready < workers || bytes > 0 {
        (count, bytes)
    } else {
        (0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_claimed_a_page_ahead_within_the_bytes_and_one_a_worker_whatever_their_size() {
        // Small (2.8 KB): a page, less what is ready, within the bytes left.
        assert_eq!(to_claim(0, 0, 16), (PAGE, AHEAD_BYTES));
        assert_eq!(
            to_claim(40, 40 * 2_800, 16),
            (PAGE - 40, AHEAD_BYTES - 40 * 2_800)
        );
        assert_eq!(to_claim(PAGE, PAGE * 2_800, 16).0, 0);
        // Big (1.5 MB): past the bytes, still one at a time (the first of a claim) until one
        // a worker is ready, then none.
        assert_eq!(to_claim(10, 15_000_000, 16), (PAGE - 10, 0));
        assert_eq!(to_claim(16, 24_000_000, 16), (0, 0));
        // More workers than a page: a page at a time, up to one a worker.
        assert_eq!(to_claim(0, 0, 128), (PAGE, AHEAD_BYTES));
        assert_eq!(to_claim(100, 150_000_000, 128), (28, 0));
        assert_eq!(to_claim(128, 150_000_000, 128), (0, 0));
    }
}
