//! Stopping a receiver: stop accepting, drain, report; and the signal that starts it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::background::StoredTasks;
use super::shared::{Shared, lock};
use crate::store::{ErasedStore, RecordQuery, RecordState};

/// Resolves when the process is asked to stop: SIGTERM (what a deploy or `docker stop` sends)
/// or Ctrl-C (SIGINT). Hand it to your server's graceful shutdown, then shut the receiver down
/// once the server has stopped:
///
/// ```no_run
/// # async fn run(
/// #     receiver: airudder_webhook::Receiver,
/// #     listener: tokio::net::TcpListener,
/// # ) -> std::io::Result<()> {
/// let shutdown = receiver.shutdown_handle();
/// let app = axum::Router::new().route_service("/airudder/task", receiver);
/// axum::serve(listener, app)
///     .with_graceful_shutdown(airudder_webhook::shutdown_signal())
///     .await?;
/// // The server has answered its last request: now drain what was accepted.
/// shutdown.shutdown(std::time::Duration::from_secs(30)).await;
/// # Ok(())
/// # }
/// ```
///
/// Without a signal handler, a plain `axum::serve(...).await` never returns: the process dies
/// on SIGTERM with whatever the memory ack had answered 200 and not handled.
///
/// # Panics
/// Outside a tokio runtime with its signal driver (any `#[tokio::main]` runtime has it), or
/// when the process cannot install a signal handler.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler can be installed");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("stop signal received: finishing the requests in flight, then draining");
}

/// What [`ShutdownHandle::shutdown`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Notifications handled over the receiver's life.
    pub handled: u64,
    /// Notifications the handler gave up on over the receiver's life.
    pub failed: u64,
    /// Notifications accepted but not handled when the deadline passed. With the in-memory
    /// ack the sender already had its 200 for them: they are lost. With the durable ack they
    /// stay stored and are handled after the next start.
    pub left: u64,
    /// Whether the queue drained before the deadline.
    pub drained: bool,
}

/// Stops a receiver: no new notification is accepted (503), the queue drains, the workers end.
///
/// Get it from [`Receiver::shutdown_handle`](crate::Receiver::shutdown_handle).
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    /// The receiver's readiness: cleared here, read on its request path.
    accepting: Arc<AtomicBool>,
    shared: Arc<Shared>,
}

impl ShutdownHandle {
    pub(super) fn new(accepting: Arc<AtomicBool>, shared: Arc<Shared>) -> Self {
        Self { accepting, shared }
    }

    /// From now on, answer every notification 503 with `Retry-After` (the sender retries).
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::Release);
    }

    /// Stops accepting, lets the workers drain the queue for at most `deadline`, then stops
    /// them and reports what was handled and what was left.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        self.stop_accepting();
        self.shared.stop.send_replace(true);
        let Some(tasks) = lock(&self.shared.tasks).take() else {
            // Shut down already, by another handle: report what there is.
            return self.report(true, None);
        };
        let mut dispatcher = tasks.dispatcher;
        let mut stored = tasks.stored;
        let mut sampler = tasks.sampler;
        let drained = tokio::time::timeout(deadline, async {
            // The dispatcher drains the queue and waits for every handler; the completer
            // then marks the last ones done; the other two end at the stop signal.
            let _ = (&mut dispatcher).await;
            if let Some(stored) = &mut stored {
                let _ = (&mut stored.feeder).await;
                let _ = (&mut stored.completer).await;
                let _ = (&mut stored.pruner).await;
                if let Some(renewer) = &mut stored.renewer {
                    let _ = renewer.await;
                }
            }
            if let Some(sampler) = &mut sampler {
                let _ = sampler.await;
            }
        })
        .await
        .is_ok();
        // Past the deadline: the dispatcher cancels its handlers and waits for them; the other
        // tasks are aborted. Waiting for all releases what they held (the store).
        self.shared.abort.send_replace(true);
        if !dispatcher.is_finished() {
            let _ = dispatcher.await;
        }
        let stored_tasks = stored.map(StoredTasks::all);
        for task in stored_tasks.into_iter().flatten().chain(sampler) {
            task.abort();
            // One already awaited to its end must not be polled again.
            if !task.is_finished() {
                let _ = task.await;
            }
        }
        if let Some(store) = self.shared.leased_store() {
            match store.release().await {
                Ok(0) => {}
                Ok(released) => tracing::info!(
                    released,
                    "released this receiver's claims: the next receiver to poll takes them"
                ),
                Err(err) => tracing::warn!(
                    error = %err,
                    "could not release this receiver's claims: they lapse after the lease"
                ),
            }
        }
        let unmarked = lock(&self.shared.unmarked).len();
        if unmarked > 0 {
            tracing::error!(
                count = unmarked,
                "could not mark handled notifications done before the deadline: the store was down; they will be handled again after the restart"
            );
        }
        let left = match &self.shared.store {
            Some(store) => self.left_in(store).await,
            None => None,
        };
        self.report(drained, left)
    }

    /// A durable receiver's pending records of its kind, from its store (`None` if the store
    /// cannot say).
    async fn left_in(&self, store: &Arc<dyn ErasedStore>) -> Option<u64> {
        let query = RecordQuery::new()
            .state(RecordState::Pending)
            .kind(&*self.shared.kind);
        match store.count(query).await {
            Ok(left) => Some(left),
            Err(err) => {
                tracing::warn!(error = %err, "could not count what is left in the store");
                None
            }
        }
    }

    /// What was handled and failed here, and what is left: for a durable receiver what its
    /// store holds pending of its kind (`left`), else what was in memory.
    fn report(&self, drained: bool, left: Option<u64>) -> ShutdownReport {
        let stats = self.shared.stats();
        let report = ShutdownReport {
            handled: stats.handled,
            failed: stats.failed,
            left: left.unwrap_or_else(|| stats.pending()),
            drained,
        };
        if report.left > 0 && self.shared.store.is_some() {
            tracing::info!(
                left = report.left,
                "shut down; the notifications not handled yet stay stored for the next start"
            );
        } else if report.left > 0 {
            tracing::error!(
                left = report.left,
                "shut down with acknowledged notifications not handled: they are lost"
            );
        } else {
            tracing::info!(
                handled = report.handled,
                failed = report.failed,
                "shut down, queue drained"
            );
        }
        report
    }
}
