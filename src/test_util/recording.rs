//! A handler that keeps every delivery it saw, and fails its first attempts when asked to.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::event::Event;
use crate::handler::{Delivery, HandleNotification};
use crate::model::TaskNotification;

/// A handler for tests: it records each delivery (every attempt, in order), and fails the first
/// attempts when made with [`failing_first`](Self::failing_first). Clones share the record,
/// so keep one and give the receiver the other.
pub struct Recording<E = TaskNotification> {
    inner: Arc<Inner<E>>,
}

struct Inner<E> {
    seen: Mutex<Vec<Delivery<E>>>,
    failures_left: AtomicU32,
    changed: Notify,
}

impl<E> Clone for Recording<E> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<E> fmt::Debug for Recording<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recording")
            .field("seen", &self.len())
            .field(
                "failures_left",
                &self.inner.failures_left.load(Ordering::Relaxed),
            )
            .finish()
    }
}

impl<E> Default for Recording<E> {
    fn default() -> Self {
        Self::failing_first(0)
    }
}

impl<E> Recording<E> {
    /// A handler that succeeds every time.
    pub fn new() -> Self {
        Self::default()
    }

    /// A handler whose first `attempts` attempts fail (with [`RecordedFailure`]), across all
    /// notifications; the rest succeed.
    pub fn failing_first(attempts: u32) -> Self {
        Self {
            inner: Arc::new(Inner {
                seen: Mutex::new(Vec::new()),
                failures_left: AtomicU32::new(attempts),
                changed: Notify::new(),
            }),
        }
    }

    /// Every delivery seen so far, in order.
    pub fn deliveries(&self) -> Vec<Delivery<E>> {
        self.lock().clone()
    }

    /// How many deliveries it saw.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it saw none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until it saw `count` deliveries, and returns them (wrap it in a timeout).
    pub async fn wait_for(&self, count: usize) -> Vec<Delivery<E>> {
        loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let seen = self.lock();
                if seen.len() >= count {
                    return seen.clone();
                }
            }
            changed.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Delivery<E>>> {
        // A panic while holding it leaves a plain list behind, still usable.
        self.inner
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The error of an attempt [`Recording::failing_first`] made fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedFailure;

impl fmt::Display for RecordedFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the recording handler was told to fail this attempt")
    }
}

impl std::error::Error for RecordedFailure {}

impl<E: Event> HandleNotification<E> for Recording<E> {
    type Error = RecordedFailure;

    async fn handle(&self, delivery: Delivery<E>) -> Result<(), RecordedFailure> {
        self.lock().push(delivery);
        self.inner.changed.notify_waiters();
        let fail = self
            .inner
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail { Err(RecordedFailure) } else { Ok(()) }
    }
}
