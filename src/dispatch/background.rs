//! The background tasks: redelivery after a start, claims on a shared store, the completer, the pruner.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::event::Event;
use crate::store::{ErasedStore, RecordId};

use super::*;

impl<E: Event> Queue<E> {
    /// After a start: every stored notification not yet handled goes to the handler again.
    ///
    /// The list is read before the receiver says it is ready, so that a notification stored
    /// after it is queued by its request alone, never twice.
    pub(super) async fn redeliver(self, store: Arc<dyn ErasedStore>) {
        let pending = store.pending().await;
        self.shared.ready.send_replace(true);
        let pending = match pending {
            Ok(pending) => pending,
            Err(err) => {
                tracing::error!(error = %err, "could not read the stored notifications to redeliver");
                return;
            }
        };
        if !pending.is_empty() {
            tracing::info!(count = pending.len(), "redelivering stored notifications");
        }
        for record in pending {
            if let Err(err) = self.enqueue_stored(record).await {
                tracing::error!(error = %err, "could not redeliver a stored notification");
            }
        }
        drop(self.tx);
    }

    /// For a store that several receivers share: renews this receiver's claims every third of
    /// the lease, and claims the notifications whose claim lapsed (a receiver died, or this
    /// one restarted), until the receiver stops.
    pub(super) async fn share(
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
                let records = match store.claim(room).await {
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
                }
                for record in records {
                    if let Err(err) = self.enqueue_stored(record).await {
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
/// worker never waits for a commit after a success. A batch that fails is tried again a second
/// later with what came in since: a record left pending would be handled again. Ends once
/// every worker has.
pub(super) async fn complete(
    store: Arc<dyn ErasedStore>,
    mut done: mpsc::UnboundedReceiver<RecordId>,
) {
    let mut ids = Vec::new();
    let mut open = true;
    while open || !ids.is_empty() {
        if ids.is_empty() {
            match done.recv().await {
                Some(id) => ids.push(id),
                None => return,
            }
        } else if open {
            tokio::select! {
                id = done.recv() => match id {
                    Some(id) => ids.push(id),
                    None => open = false,
                },
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        while let Ok(id) = done.try_recv() {
            ids.push(id);
        }
        match store.complete_all(ids.clone()).await {
            Ok(()) => ids.clear(),
            Err(err) if open => {
                tracing::warn!(count = ids.len(), error = %err, "could not mark handled notifications done; trying again");
            }
            Err(err) => {
                tracing::error!(count = ids.len(), error = %err, "could not mark handled notifications done; they will be delivered again");
                return;
            }
        }
    }
}

/// Forgets de-duplication keys older than the window, every hour, until the receiver stops.
pub(super) async fn prune(
    store: Arc<dyn ErasedStore>,
    window: Duration,
    mut stop: watch::Receiver<bool>,
) {
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
