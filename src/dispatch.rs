//! The bounded queue between the request path and the handler, and its workers.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{Mutex, OwnedSemaphorePermit, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::BoxError;
use crate::event::Event;
use crate::handler::{Delivery, HandleNotification};
use crate::hooks::{FailedDelivery, OnFailed};
use crate::rejection::Rejection;

/// How the workers retry a handler that failed, with exponential backoff.
///
/// The default retries 3 times, waiting 1 s, then 2 s, then 4 s (doubling, at most 60 s).
/// After the last retry the notification goes to the [`OnFailed`] hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new(3)
    }
}

impl RetryPolicy {
    /// Retries a failed attempt up to `max_retries` times (so `max_retries + 1` attempts).
    pub fn new(max_retries: u32) -> Self {
        Self {
            max_retries,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }

    /// One attempt, no retry.
    pub fn never() -> Self {
        Self::new(0)
    }

    /// The wait before the first retry; it doubles for each retry after that.
    #[must_use]
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The longest wait between two attempts.
    #[must_use]
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// The number of retries after the first attempt.
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// The wait after failed attempt number `attempt` (from 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

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
    /// Notifications handed back to the sender with a 503 (the "handled" ack), or whose
    /// request went away before a worker took them.
    pub returned: u64,
    /// Bodies refused for their size or content (400, 413, 422).
    pub rejected: u64,
    /// Notifications answered 503 because the queue was full or the receiver was stopping.
    pub unavailable: u64,
}

impl Stats {
    /// Notifications accepted and neither handled, failed nor returned yet.
    pub fn pending(&self) -> u64 {
        self.queued
            .saturating_sub(self.handled + self.failed + self.returned)
    }
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
    /// ack the sender already had its 200 for them: they are lost.
    pub left: u64,
    /// Whether the queue drained before the deadline.
    pub drained: bool,
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    handled: AtomicU64,
    failed: AtomicU64,
    returned: AtomicU64,
    rejected: AtomicU64,
    unavailable: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) struct Shared {
    accepting: AtomicBool,
    stop: watch::Sender<bool>,
    workers: StdMutex<Vec<JoinHandle<()>>>,
    counters: Counters,
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
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("accepting", &self.is_accepting())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Job<E> {
    event: Arc<E>,
    received_at: SystemTime,
    /// Set for the "handled" ack: the request waits for the outcome.
    reply: Option<oneshot::Sender<Result<(), Rejection>>>,
    deadline: Option<Instant>,
    /// The body's share of the receiver's memory cap, given back once the job is done.
    memory: Option<OwnedSemaphorePermit>,
}

/// The request path's end of the queue.
pub(crate) struct Queue<E> {
    tx: mpsc::Sender<Job<E>>,
    pub(crate) shared: Arc<Shared>,
}

impl<E> fmt::Debug for Queue<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("capacity", &self.tx.max_capacity())
            .field("free", &self.tx.capacity())
            .field("shared", &self.shared)
            .finish()
    }
}

pub(crate) struct WorkerConfig<E> {
    pub(crate) workers: usize,
    pub(crate) capacity: usize,
    pub(crate) retry: RetryPolicy,
    pub(crate) handler_timeout: Duration,
    pub(crate) on_failed: Arc<dyn OnFailed<E>>,
}

impl<E: Event> Queue<E> {
    /// Starts the workers on the current tokio runtime.
    pub(crate) fn start<H>(handler: H, config: WorkerConfig<E>) -> Self
    where
        H: HandleNotification<E>,
    {
        let (tx, rx) = mpsc::channel(config.capacity);
        let (stop, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            accepting: AtomicBool::new(true),
            stop,
            workers: StdMutex::new(Vec::with_capacity(config.workers)),
            counters: Counters::default(),
        });
        let worker = Arc::new(Worker {
            handler,
            on_failed: config.on_failed,
            retry: config.retry,
            handler_timeout: config.handler_timeout,
            shared: Arc::clone(&shared),
        });
        let rx = Arc::new(Mutex::new(rx));
        let handles = (0..config.workers)
            .map(|_| {
                let stop = shared.stop.subscribe();
                tokio::spawn(Arc::clone(&worker).run(Arc::clone(&rx), stop))
            })
            .collect();
        *lock(&shared.workers) = handles;
        Self { tx, shared }
    }

    /// Puts a notification in the queue without waiting; with `deadline` set, the returned
    /// receiver gets the handler's outcome.
    #[allow(clippy::type_complexity)]
    pub(crate) fn submit(
        &self,
        event: Arc<E>,
        received_at: SystemTime,
        deadline: Option<Instant>,
        memory: Option<OwnedSemaphorePermit>,
    ) -> Result<Option<oneshot::Receiver<Result<(), Rejection>>>, Rejection> {
        if !self.shared.is_accepting() {
            return Err(Rejection::shutting_down());
        }
        let (reply, outcome) = match deadline {
            Some(_) => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let job = Job {
            event,
            received_at,
            reply,
            deadline,
            memory,
        };
        match self.tx.try_send(job) {
            Ok(()) => {
                bump(&self.shared.counters.queued);
                Ok(outcome)
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(Rejection::queue_full()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Rejection::shutting_down()),
        }
    }
}

fn lock<T>(mutex: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock leaves a plain Vec behind, still usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct Worker<E, H> {
    handler: H,
    on_failed: Arc<dyn OnFailed<E>>,
    retry: RetryPolicy,
    handler_timeout: Duration,
    shared: Arc<Shared>,
}

/// Why one attempt failed, when it was not the handler's own error.
#[derive(Debug)]
enum AttemptError {
    Panicked,
    TimedOut(Duration),
    Cancelled,
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Panicked => f.write_str("the handler panicked"),
            Self::TimedOut(after) => write!(f, "the handler did not finish within {after:?}"),
            Self::Cancelled => f.write_str("the handler was cancelled"),
        }
    }
}

impl std::error::Error for AttemptError {}

/// Aborts the handler's task when the worker stops waiting for it.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<E: Event, H: HandleNotification<E>> Worker<E, H> {
    async fn run(
        self: Arc<Self>,
        rx: Arc<Mutex<mpsc::Receiver<Job<E>>>>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let job = {
                let mut rx = rx.lock().await;
                let next = tokio::select! {
                    biased;
                    job = rx.recv() => Some(job),
                    _ = stop.wait_for(|stopping| *stopping) => None,
                };
                match next {
                    Some(job) => job,
                    None => {
                        // No more sends from here on; drain what is queued, then stop.
                        rx.close();
                        rx.recv().await
                    }
                }
            };
            match job {
                Some(job) => self.process(job).await,
                None => break,
            }
        }
    }

    async fn process(self: &Arc<Self>, job: Job<E>) {
        let Job {
            event,
            received_at,
            mut reply,
            deadline,
            memory: _memory,
        } = job;
        let counters = &self.shared.counters;
        if reply.as_ref().is_some_and(oneshot::Sender::is_closed) {
            // The request went away: the sender saw no 200 and will send it again.
            bump(&counters.returned);
            return;
        }
        let span = tracing::info_span!(
            "airudder_delivery",
            event = E::NAME,
            task_id = event.log_id(),
            attempt = tracing::field::Empty,
        );
        let mut attempt = 1;
        loop {
            span.record("attempt", attempt);
            let delivery = Delivery::new(Arc::clone(&event), attempt, received_at);
            let timeout = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => self.handler_timeout,
            };
            let result = self
                .attempt(delivery.clone(), timeout)
                .instrument(span.clone())
                .await;
            let retry = span.in_scope(|| match reply.take() {
                // The "handled" ack: one attempt; on failure the sender retries in a minute.
                Some(reply) => {
                    let answer = match result {
                        Ok(()) => {
                            bump(&counters.handled);
                            Ok(())
                        }
                        Err(err) => {
                            bump(&counters.returned);
                            tracing::warn!(error = %err, "handler failed; answering 503 so that the sender retries");
                            Err(match err.downcast_ref::<AttemptError>() {
                                Some(AttemptError::TimedOut(_)) => Rejection::handler_timed_out(),
                                _ => Rejection::handler_failed(),
                            })
                        }
                    };
                    let _ = reply.send(answer);
                    false
                }
                None => match result {
                    Ok(()) => {
                        bump(&counters.handled);
                        tracing::debug!("handled");
                        false
                    }
                    Err(err) if attempt > self.retry.max_retries => {
                        bump(&counters.failed);
                        let failed = FailedDelivery::new(delivery, err);
                        crate::hooks::contain("on_failed", || self.on_failed.on_failed(failed));
                        false
                    }
                    Err(err) => {
                        let backoff = self.retry.backoff(attempt);
                        tracing::warn!(error = %err, ?backoff, "handler failed; retrying");
                        true
                    }
                },
            });
            if !retry {
                return;
            }
            tokio::time::sleep(self.retry.backoff(attempt)).await;
            attempt += 1;
        }
    }

    /// Runs the handler in its own task, so that a panic is caught and a timeout can abort it.
    async fn attempt(
        self: &Arc<Self>,
        delivery: Delivery<E>,
        timeout: Duration,
    ) -> Result<(), BoxError> {
        let worker = Arc::clone(self);
        let mut task = AbortOnDrop(tokio::spawn(async move {
            worker.handler.handle(delivery).await.map_err(Into::into)
        }));
        match tokio::time::timeout(timeout, &mut task.0).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) if join.is_panic() => Err(Box::new(AttemptError::Panicked)),
            Ok(Err(_)) => Err(Box::new(AttemptError::Cancelled)),
            Err(_) => Err(Box::new(AttemptError::TimedOut(timeout))),
        }
    }
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
        for worker in &workers {
            worker.abort();
        }
        let stats = self.shared.stats();
        let report = ShutdownReport {
            handled: stats.handled,
            failed: stats.failed,
            left: stats.pending(),
            drained,
        };
        if report.left > 0 {
            tracing::error!(
                left = report.left,
                "shut down with acknowledged notifications not handled"
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy::new(10)
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_millis(500));
        let waits: Vec<_> = (1..=5).map(|a| policy.backoff(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        assert_eq!(policy.backoff(u32::MAX), Duration::from_millis(500));
    }
}
