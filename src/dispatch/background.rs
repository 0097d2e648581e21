//! The background tasks: the dispatcher, and for a durable receiver the feeder, the completer,
//! the renewer (shared store) and the pruner, each a named field of [`Tasks`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::shared::{Shared, lock};
use super::worker::{Next, Outcome};
use crate::store::{ErasedStore, RecordState, StoreErrorKind};

/// The tasks a receiver runs besides its handlers.
pub(super) struct Tasks {
    /// Takes queued jobs and starts their handlers; drains the queue at shutdown.
    pub(super) dispatcher: JoinHandle<()>,
    /// The tasks of a durable receiver.
    pub(super) stored: Option<StoredTasks>,
    /// Samples the gauges (feature `metrics`); ends at the stop signal.
    pub(super) sampler: Option<JoinHandle<()>>,
}

pub(super) struct StoredTasks {
    /// Writes outcomes back in batches; ends once every worker has.
    pub(super) completer: JoinHandle<()>,
    /// Claims due records as workers free up (`Worker::feed`).
    pub(super) feeder: JoinHandle<()>,
    /// Renews this receiver's claims on a shared store.
    pub(super) renewer: Option<JoinHandle<()>>,
    /// Forgets de-duplication keys and handled records past their windows.
    pub(super) pruner: JoinHandle<()>,
}

impl StoredTasks {
    /// Starts the completer, the renewer (shared store) and the pruner for `store`, beside the
    /// `feeder` already started.
    pub(super) fn start(
        shared: &Arc<Shared>,
        store: &Arc<dyn ErasedStore>,
        done: mpsc::UnboundedReceiver<Outcome>,
        feeder: JoinHandle<()>,
        windows: Windows,
    ) -> Self {
        let stop = || shared.stop.subscribe();
        let renewer = store
            .lease()
            .map(|lease| tokio::spawn(renew(Arc::clone(store), lease, stop())));
        Self {
            completer: tokio::spawn(complete(Arc::clone(store), done, Arc::clone(shared))),
            feeder,
            renewer,
            pruner: tokio::spawn(prune(Arc::clone(store), windows, stop())),
        }
    }

    /// Every task, for the shutdown.
    pub(super) fn all(self) -> impl Iterator<Item = JoinHandle<()>> {
        [self.completer, self.feeder, self.pruner]
            .into_iter()
            .chain(self.renewer)
    }
}

/// How long the store keeps what: de-duplication keys, handled records.
#[derive(Debug, Clone, Copy)]
pub(super) struct Windows {
    pub(super) dedup: Duration,
    pub(super) retention: Duration,
}

/// For a store that several receivers share: renews this receiver's claims (what it has in
/// memory) every third of the lease, until the receiver stops.
async fn renew(store: Arc<dyn ErasedStore>, lease: Duration, mut stop: watch::Receiver<bool>) {
    let renew_every = lease / 3;
    let mut renewed = Instant::now();
    let mut tick = tokio::time::interval(renew_every.min(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
        if renewed.elapsed() >= renew_every {
            match store.renew().await {
                Ok(_) => renewed = Instant::now(),
                Err(err) => tracing::warn!(
                    error = %err,
                    unrenewed_for = ?renewed.elapsed(),
                    "could not renew this receiver's claims: past the lease, another receiver takes them over"
                ),
            }
        }
    }
}

/// Writes each stored record's outcome back: the handled ones waiting are marked done in one
/// go (one commit for many), so that a worker never waits for a commit; a failed attempt with
/// its next due time; a dead letter. A write that fails (the store is down) is tried again a
/// second later, or as soon as another outcome comes, with what came in since, until it is
/// written or the shutdown's deadline ends the task. Until then the record stays held, and a
/// handled one in [`Shared::unmarked`], so that nothing in this process hands it to the handler
/// again. Ends once every worker has and the outcomes are written.
async fn complete(
    store: Arc<dyn ErasedStore>,
    mut done: mpsc::UnboundedReceiver<Outcome>,
    shared: Arc<Shared>,
) {
    let mut waiting: Vec<Outcome> = Vec::new();
    let mut open = true;
    let mut failing = false;
    loop {
        if waiting.is_empty() {
            match done.recv().await {
                Some(outcome) => waiting.push(outcome),
                None => return,
            }
        } else if failing {
            let retry = tokio::time::sleep(Duration::from_secs(1));
            tokio::select! {
                outcome = done.recv(), if open => match outcome {
                    Some(outcome) => waiting.push(outcome),
                    None => open = false,
                },
                () = retry => {}
            }
        }
        while let Ok(outcome) = done.try_recv() {
            waiting.push(outcome);
        }
        let count = waiting.len();
        let written = write(&store, &shared, &mut waiting).await;
        if waiting.len() < count {
            // Written: their holds are let go, and the next record of an ordered key may be
            // claimable. A feeder whose last claim found nothing would otherwise wait for its
            // next poll, up to a second, with records to hand on (the drain of a backlog
            // stalled a second at a time).
            shared.feed.notify_one();
        }
        match written {
            Ok(()) => {
                if failing {
                    tracing::info!(count, "wrote the outcomes of handled notifications");
                }
                failing = false;
            }
            Err(err) => {
                if !failing {
                    tracing::warn!(count = waiting.len(), error = %err, "could not write the outcomes of handled notifications; trying again every second");
                }
                failing = true;
            }
        }
    }
}

/// Writes what it can of `waiting`, leaving there what it could not.
async fn write(
    store: &Arc<dyn ErasedStore>,
    shared: &Shared,
    waiting: &mut Vec<Outcome>,
) -> Result<(), crate::store::StoreError> {
    let (handled, others): (Vec<Outcome>, Vec<Outcome>) = std::mem::take(waiting)
        .into_iter()
        .partition(|outcome| outcome.next == Next::Done);
    let mut first_error = None;
    if !handled.is_empty() {
        let batch = handled
            .iter()
            .map(|outcome| (outcome.id, outcome.attempt.clone()))
            .collect();
        match store.complete_all(batch).await {
            Ok(()) => {
                let mut unmarked = lock(&shared.unmarked);
                for outcome in &handled {
                    unmarked.remove(&outcome.id);
                }
            }
            Err(err) => {
                first_error = Some(err);
                waiting.extend(handled);
            }
        }
    }
    for outcome in others {
        let written = match outcome.next {
            Next::Retry(due) => store.fail(outcome.id, outcome.attempt.clone(), due).await,
            _ => store.dead_letter(outcome.id, outcome.attempt.clone()).await,
        };
        match written {
            Ok(()) => {}
            // Not this receiver's any more (purged, or its claim taken over): nothing to keep.
            Err(err) if err.kind() == StoreErrorKind::NotFound => {
                tracing::info!(record = outcome.id, error = %err, "the outcome had no record to go to");
            }
            Err(err) => {
                first_error.get_or_insert(err);
                waiting.push(outcome);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Every hour until the receiver stops: forgets de-duplication keys older than their window,
/// and handled records older than the retention window (by the store's index by time).
async fn prune(store: Arc<dyn ErasedStore>, windows: Windows, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
        let ago = |window| {
            SystemTime::now()
                .checked_sub(window)
                .unwrap_or(SystemTime::UNIX_EPOCH)
        };
        match store.prune(ago(windows.dedup)).await {
            Ok(0) => {}
            Ok(pruned) => tracing::debug!(pruned, "forgot old de-duplication keys"),
            Err(err) => tracing::warn!(error = %err, "could not prune de-duplication keys"),
        }
        match store
            .purge_before(RecordState::Handled, ago(windows.retention))
            .await
        {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(
                purged,
                "forgot handled notifications past the retention window"
            ),
            Err(err) => tracing::warn!(error = %err, "could not forget old handled notifications"),
        }
    }
}
