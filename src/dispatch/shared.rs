//! The state shared by the request path, the workers and the shutdown handle.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::ErasedStore;

/// A snapshot of the receiver's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Notifications put in the queue.
    pub queued: u64,
    /// Notifications the handler handled.
    pub handled: u64,
    /// Notifications the handler gave up on (passed to the failed hook).
    pub failed: u64,
    /// Notifications handed back to the sender with a 503 (the "handled" ack), whose
    /// request went away before a worker took them, or (with a shared store) left to the
    /// receiver that took over their claim.
    pub returned: u64,
    /// Bodies refused for their size or content (400, 413, 422).
    pub rejected: u64,
    /// Notifications answered 503 because the queue was full, the store failed or the
    /// receiver was starting or stopping.
    pub unavailable: u64,
    /// Notifications answered 200 without a second delivery: already stored (durable ack).
    pub duplicates: u64,
}

impl Stats {
    /// Notifications accepted and neither handled, failed nor returned yet.
    pub fn pending(&self) -> u64 {
        self.queued
            .saturating_sub(self.handled + self.failed + self.returned)
    }
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) queued: AtomicU64,
    pub(super) handled: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) returned: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) unavailable: AtomicU64,
    pub(super) duplicates: AtomicU64,
}

pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) struct Shared {
    pub(super) accepting: AtomicBool,
    /// False while a durable receiver reads what it must redeliver.
    pub(super) ready: watch::Sender<bool>,
    pub(super) durable: bool,
    /// A store shared with other receivers: its claims are released at shutdown.
    pub(super) shared_store: Option<Arc<dyn ErasedStore>>,
    pub(super) stop: watch::Sender<bool>,
    /// Set when a shutdown's deadline passed: cancel the handlers still running.
    pub(super) abort: watch::Sender<bool>,
    pub(super) workers: StdMutex<Vec<JoinHandle<()>>>,
    pub(super) counters: Counters,
}

impl Shared {
    pub(crate) fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            queued: c.queued.load(Ordering::Relaxed),
            handled: c.handled.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            returned: c.returned.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            unavailable: c.unavailable.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn count_rejected(&self) {
        bump(&self.counters.rejected);
    }

    pub(crate) fn count_unavailable(&self) {
        bump(&self.counters.unavailable);
    }

    pub(crate) fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::Acquire)
    }

    /// Whether a durable receiver has read what it must redeliver (always, without a store).
    pub(crate) fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits (briefly) until a durable receiver has read what it must redeliver; callers ask
    /// [`is_ready`](Self::is_ready) first, so that a started receiver never waits here.
    pub(crate) async fn wait_ready(&self) -> bool {
        let mut ready = self.ready.subscribe();
        matches!(
            tokio::time::timeout(Duration::from_secs(5), ready.wait_for(|r| *r)).await,
            Ok(Ok(_))
        )
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("accepting", &self.is_accepting())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
