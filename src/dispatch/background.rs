//! The background tasks: the dispatcher, redelivery after a start or claims on a shared store,
//! the completer and the pruner, each a named field of [`Tasks`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Queue;
use super::shared::{Shared, lock};
use crate::event::Event;
use crate::store::{ErasedStore, RecordId};

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
    /// Marks handled records done in batches; ends once every worker has.
    pub(super) completer: JoinHandle<()>,
    /// Redelivers what was stored before the start (embedded store), or renews and takes over
    /// claims (shared store).
    pub(super) feeder: JoinHandle<()>,
    /// Forgets de-duplication keys past the window.
    pub(super) pruner: JoinHandle<()>,
}

impl StoredTasks {
    /// Starts them for `queue`'s store.
    pub(super) fn start<E: Event>(
        queue: &Queue<E>,
        store: &Arc<dyn ErasedStore>,
        done: mpsc::UnboundedReceiver<RecordId>,
        dedup_window: Duration,
    ) -> Self {
        let stop = || queue.shared.stop.subscribe();
        let sender = queue.clone_sender();
        let feeder = match store.lease() {
            Some(lease) => tokio::spawn(sender.share(Arc::clone(store), lease, stop())),
            None => tokio::spawn(sender.redeliver(Arc::clone(store))),
        };
        Self {
            completer: tokio::spawn(complete(Arc::clone(store), done, Arc::clone(&queue.shared))),
            feeder,
            pruner: tokio::spawn(prune(Arc::clone(store), dedup_window, stop())),
        }
    }
}

impl<E: Event> Queue<E> {
    /// After a start: every stored notification not yet handled goes to the handler again.
    ///
    /// The list is read before the receiver says it is ready, so that a notification stored
    /// after it is queued by its request alone, never twice.
    async fn redeliver(self, store: Arc<dyn ErasedStore>) {
        let pending = store.pending().await;
        self.shared.ready.send_replace(true);
        let pending = match pending {
            // A shared store may hold other receivers' records: only this one's kind.
            Ok(pending) => pending
                .into_iter()
                .filter(|record| self.shared.owns(&record.envelope))
                .collect::<Vec<_>>(),
            Err(err) => {
                tracing::error!(error = %err, "could not read the stored notifications to redeliver");
                return;
            }
        };
        if !pending.is_empty() {
            tracing::info!(count = pending.len(), "redelivering stored notifications");
            self.shared.counters.redelivered(pending.len() as u64);
        }
        for record in pending {
            if let Err(err) = self.enqueue_record(record).await {
                tracing::error!(error = %err, "could not redeliver a stored notification");
            }
        }
        drop(self.tx);
    }

    /// For a store that several receivers share: renews this receiver's claims every third of
    /// the lease, and claims the notifications whose claim lapsed (a receiver died, or this
    /// one restarted), until the receiver stops.
    async fn share(
        self,
        store: Arc<dyn ErasedStore>,
        lease: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
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
            // Half the queue stays free for requests.
            loop {
                let room = (self.tx.capacity() / 2).min(256);
                if room == 0 {
                    break;
                }
                let records = match store.claim(&self.shared.kind, room).await {
                    Ok(records) => records,
                    Err(err) => {
                        tracing::warn!(error = %err, "could not claim lapsed notifications");
                        break;
                    }
                };
                let claimed = records.len();
                if claimed > 0 {
                    tracing::info!(
                        count = claimed,
                        "claimed stored notifications nobody was handling"
                    );
                    self.shared.counters.redelivered(claimed as u64);
                }
                for record in records {
                    if let Err(err) = self.enqueue_record(record).await {
                        tracing::error!(error = %err, "could not queue a claimed notification");
                    }
                }
                if claimed < room {
                    break;
                }
            }
        }
    }
}

/// Marks handled records done, all those waiting in one go (one commit for many), so that a
/// worker never waits for a commit after a success. A batch that fails (the store is down) is
/// tried again a second later, or as soon as another record comes, with what came in since,
/// until it is written or the shutdown's deadline ends the task: a record left pending would be
/// handled again. Until then the record stays in [`Shared::unmarked`], so that nothing in this
/// process hands it to the handler again. Ends once every worker has and the marks are written.
async fn complete(
    store: Arc<dyn ErasedStore>,
    mut done: mpsc::UnboundedReceiver<RecordId>,
    shared: Arc<Shared>,
) {
    let mut ids = Vec::new();
    let mut open = true;
    let mut failing = false;
    loop {
        if ids.is_empty() {
            match done.recv().await {
                Some(id) => ids.push(id),
                None => return,
            }
        } else if failing {
            let retry = tokio::time::sleep(Duration::from_secs(1));
            tokio::select! {
                id = done.recv(), if open => match id {
                    Some(id) => ids.push(id),
                    None => open = false,
                },
                () = retry => {}
            }
        }
        while let Ok(id) = done.try_recv() {
            ids.push(id);
        }
        match store
            .complete_all(
                ids.iter()
                    .map(|id| {
                        (
                            *id,
                            crate::store::Attempt::new(
                                SystemTime::now(),
                                Duration::ZERO,
                                crate::store::AttemptOutcome::Ok,
                            ),
                        )
                    })
                    .collect(),
            )
            .await
        {
            Ok(()) => {
                if failing {
                    tracing::info!(count = ids.len(), "marked the handled notifications done");
                }
                let mut unmarked = lock(&shared.unmarked);
                for id in ids.drain(..) {
                    unmarked.remove(&id);
                }
                failing = false;
            }
            Err(err) => {
                if !failing {
                    tracing::warn!(count = ids.len(), error = %err, "could not mark handled notifications done; trying again every second");
                }
                failing = true;
            }
        }
    }
}

/// Forgets de-duplication keys older than the window, every hour, until the receiver stops.
async fn prune(store: Arc<dyn ErasedStore>, window: Duration, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
        let before = SystemTime::now()
            .checked_sub(window)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        match store.prune(before).await {
            Ok(0) => {}
            Ok(pruned) => tracing::debug!(pruned, "forgot old de-duplication keys"),
            Err(err) => tracing::warn!(error = %err, "could not prune de-duplication keys"),
        }
    }
}
