//! The state the workers, the background tasks and the shutdown handle share.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

use tokio::sync::{Notify, watch};

use super::background::Tasks;
use crate::stats::{Counters, Stats};
use crate::store::{ErasedStore, RecordId};

pub(super) struct Shared {
    /// A durable receiver's store.
    pub(super) store: Option<Arc<dyn ErasedStore>>,
    /// Set when a shutdown begins: the background loops end, the dispatcher drains.
    pub(super) stop: watch::Sender<bool>,
    /// Set when a shutdown's deadline passed: cancel the handlers still running.
    pub(super) abort: watch::Sender<bool>,
    /// The background tasks, taken by the shutdown.
    pub(super) tasks: StdMutex<Option<Tasks>>,
    /// Stored notifications handled whose "done" mark is not written yet: never handed to the
    /// handler again (a lapsed claim taken back, a replay) while the completer retries.
    pub(super) unmarked: StdMutex<HashSet<RecordId>>,
    /// The receiver's counters: the workers count what became of each notification.
    pub(super) counters: Arc<Counters>,
    /// Handlers running now.
    running: AtomicUsize,
    /// The receiver's name: the kind of the records it stores and the only kind it hands on.
    pub(super) kind: Arc<str>,
    /// Wakes the feeder: a record was stored without a free worker, replayed, or made due.
    pub(super) feed: Notify,
    /// Whether this receiver's kind is paused, as the store last said (the feeder reads it
    /// every poll; [`Receiver::set_paused`](crate::Receiver::set_paused) sets it at once).
    /// Paused until first read, so that nothing is handed on before the store has said.
    paused: AtomicBool,
    /// Pauses and resumes made in this process ([`Receiver::set_paused`](crate::Receiver::set_paused)),
    /// counted: a read of the store that began before one is older than it and must not undo it.
    /// Every write of `paused` holds this lock.
    pause_changes: StdMutex<u64>,
    /// Failed attempts, for a log that stays readable through an outage.
    pub(super) failures: super::failures::Failures,
    /// The soonest due time of a retry this receiver scheduled, in milliseconds since the Unix
    /// epoch (`i64::MAX`: none): the feeder wakes for it rather than at its next poll, so that a
    /// short backoff is kept. A hint only: the store says what is due.
    pub(super) next_due_ms: AtomicI64,
}

/// Counts one running handler in [`Shared`] while it lives.
pub(super) struct Running<'a>(#[cfg_attr(not(feature = "metrics"), allow(dead_code))] &'a Shared);

impl<'a> Running<'a> {
    /// Counts only with the feature `metrics`, whose gauge is the one reader: without it a
    /// handler pays nothing for it.
    pub(super) fn start(shared: &'a Shared) -> Self {
        #[cfg(feature = "metrics")]
        shared.running.fetch_add(1, Ordering::Relaxed);
        Self(shared)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shared {
    pub(super) fn new(
        store: Option<Arc<dyn ErasedStore>>,
        name: &str,
        counters: Arc<Counters>,
    ) -> Self {
        // Paused until the store says otherwise (a durable receiver's feeder reads it first).
        let paused = AtomicBool::new(store.is_some());
        Self {
            store,
            stop: watch::channel(false).0,
            abort: watch::channel(false).0,
            tasks: StdMutex::new(None),
            unmarked: StdMutex::new(HashSet::new()),
            counters,
            running: AtomicUsize::new(0),
            kind: Arc::from(name),
            feed: Notify::new(),
            paused,
            pause_changes: StdMutex::new(0),
            failures: super::failures::Failures::default(),
            next_due_ms: AtomicI64::new(i64::MAX),
        }
    }

    /// A store shared with other receivers (one with a [lease](crate::store::Store::lease)):
    /// its claims are released at shutdown.
    pub(super) fn leased_store(&self) -> Option<&Arc<dyn ErasedStore>> {
        self.store.as_ref().filter(|store| store.lease().is_some())
    }

    pub(super) fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    /// Whether a stored record is this receiver's to hand on (its kind is this receiver's).
    pub(super) fn owns(&self, envelope: &crate::store::Envelope) -> bool {
        envelope.kind() == &*self.kind
    }

    /// Handlers running now.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(super) fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// Whether this receiver's kind is paused: a stored notification then waits in the store
    /// even when a worker is free.
    pub(super) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// A pause or resume made here, once the store has it; a resume wakes the feeder.
    pub(super) fn set_paused(&self, paused: bool) {
        let mut changes = lock(&self.pause_changes);
        *changes += 1;
        self.apply_paused(paused);
    }

    /// How many pauses and resumes were made here so far: taken before reading the store.
    pub(super) fn pause_changes(&self) -> u64 {
        *lock(&self.pause_changes)
    }

    /// What a read of the store said of this receiver's kind, unless a pause or resume was made
    /// here since the read began (`changes_before`): the newer one stands.
    pub(super) fn store_says_paused(&self, paused: bool, changes_before: u64) {
        let changes = lock(&self.pause_changes);
        if *changes == changes_before {
            self.apply_paused(paused);
        }
    }

    fn apply_paused(&self, paused: bool) {
        let was = self.paused.swap(paused, Ordering::AcqRel);
        if was && !paused {
            self.feed.notify_one();
        }
    }

    /// Hands the gauges' sampler to the shutdown, which waits for it (it may hold the store).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(super) fn attach_sampler(&self, sampler: tokio::task::JoinHandle<()>) {
        match lock(&self.tasks).as_mut() {
            Some(tasks) => tasks.sampler = Some(sampler),
            None => sampler.abort(),
        }
    }

    pub(super) fn is_aborted(&self) -> bool {
        *self.abort.borrow()
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

pub(super) fn lock<T>(mutex: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock leaves plain data behind, still usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
