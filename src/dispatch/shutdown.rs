//! Stopping a receiver: stop accepting, drain, report.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::*;

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
    shared: Arc<Shared>,
}

impl ShutdownHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// From now on, answer every notification 503 with `Retry-After` (the sender retries).
    pub fn stop_accepting(&self) {
        self.shared.accepting.store(false, Ordering::Release);
    }

    /// Stops accepting, lets the workers drain the queue for at most `deadline`, then stops
    /// them and reports what was handled and what was left.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        self.stop_accepting();
        self.shared.stop.send_replace(true);
        let mut workers = std::mem::take(&mut *lock(&self.shared.workers));
        let drained = tokio::time::timeout(deadline, async {
            for worker in &mut workers {
                let _ = worker.await;
            }
        })
        .await
        .is_ok();
        // Past the deadline: the dispatcher (the first task) cancels its handlers and waits for
        // them; the other tasks are aborted. Waiting for all releases what they held (the store).
        self.shared.abort.send_replace(true);
        for (i, worker) in workers.into_iter().enumerate() {
            if i > 0 {
                worker.abort();
            }
            if !worker.is_finished() {
                let _ = worker.await;
            }
        }
        if let Some(store) = &self.shared.shared_store {
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
        let stats = self.shared.stats();
        let report = ShutdownReport {
            handled: stats.handled,
            failed: stats.failed,
            left: stats.pending(),
            drained,
        };
        if report.left > 0 && self.shared.durable {
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
