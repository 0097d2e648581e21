//! The workers: a task per notification, at most `workers` at once; attempts, retries and
//! outcomes; panics and timeouts contained.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

use super::job::{Job, Origin};
use super::retry::RetryPolicy;
use super::shared::Shared;
use crate::BoxError;
use crate::event::Event;
use crate::handler::{Delivery, GiveUp, HandleNotification, RetryLater};
use crate::hooks::{FailedDelivery, OnFailed};
use crate::meters::AttemptResult;
use crate::rejection::Rejection;
use crate::stats::Fate;
use crate::store::{Attempt, AttemptOutcome, Claims, ErasedStore, RecordId};

/// Starts a job on the workers from outside the dispatcher.
pub(super) trait Launch<E>: Send + Sync {
    /// Starts `job` in a task of its own if a worker is free, else gives it back.
    fn try_launch(self: Arc<Self>, job: Job<E>) -> Result<(), Job<E>>;

    /// A worker's slot, if one is free now.
    fn try_slot(&self) -> Option<OwnedSemaphorePermit>;

    /// Starts `job` in `slot` (see [`Worker::launch`]).
    fn launch_in(self: Arc<Self>, job: Job<E>, slot: OwnedSemaphorePermit) -> Result<(), Job<E>>;
}

pub(super) struct Worker<E, H> {
    /// One per running handler, whether the dispatcher or the request path started it: at
    /// most `workers` at once.
    pub(super) slots: Arc<Semaphore>,
    pub(super) workers: usize,
    /// The runtime the receiver was built on, where every handler runs.
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) handler: Arc<H>,
    pub(super) on_failed: Arc<dyn OnFailed<E>>,
    pub(super) retry: RetryPolicy,
    pub(super) handler_timeout: Duration,
    pub(super) shared: Arc<Shared>,
    pub(super) store: Option<Arc<dyn ErasedStore>>,
    /// Lets the handler complete a stored record in its own transaction (PostgreSQL).
    pub(super) claims: Claims,
    /// Every stored record's outcome, for the completer to write back.
    pub(super) done: Option<mpsc::UnboundedSender<Outcome>>,
}

/// What becomes of a stored record after an attempt, for the completer to write.
#[derive(Debug)]
pub(super) struct Outcome {
    pub(super) id: RecordId,
    pub(super) attempt: Attempt,
    pub(super) next: Next,
}

/// A stored record's next state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Handled.
    Done,
    /// Pending, due again then.
    Retry(SystemTime),
    /// A dead letter.
    Dead,
}

/// Why one attempt failed, when it was not the handler's own error.
#[derive(Debug)]
enum AttemptError {
    Panicked,
    TimedOut(Duration),
    TooManyAttempts(u32),
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Panicked => f.write_str("the handler panicked"),
            Self::TimedOut(after) => write!(f, "the handler did not finish within {after:?}"),
            Self::TooManyAttempts(made) => write!(
                f,
                "{made} attempts already started, some ended by a crash: not tried again"
            ),
        }
    }
}

impl std::error::Error for AttemptError {}

impl<E: Event, H: HandleNotification<E>> Worker<E, H> {
    /// Takes jobs as fast as they come and runs each in a task of its own, at most `workers`
    /// at once. One task per notification, not per worker: a busy server's connection tasks
    /// cannot starve the hand-off to the handler. Jobs the request path started itself
    /// ([`Queue::hand_off`](super::Queue)) take their slots from the same `workers`.
    pub(super) async fn dispatch(
        self: Arc<Self>,
        rx: mpsc::Receiver<Job<E>>,
        stop: watch::Receiver<bool>,
    ) {
        let mut abort = self.shared.abort.subscribe();
        let jobs = async {
            match self.store {
                // A durable receiver's work comes from its store (the feeder): nothing is
                // queued in memory, and a slot held here would be one worker fewer.
                Some(_) => {
                    drop(rx);
                    let mut stop = stop;
                    let _ = stop.wait_for(|stopping| *stopping).await;
                }
                None => Arc::clone(&self).take_jobs(rx, stop).await,
            }
        };
        tokio::select! {
            biased;
            // Past the deadline: the running handlers see the same signal and end.
            _ = abort.wait_for(|abort| *abort) => {}
            () = jobs => {}
        }
        // Every handler ends (the cancelled ones at once) before the workers count as stopped.
        let _all = self.slots.acquire_many(self.workers as u32).await;
    }

    async fn take_jobs(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<Job<E>>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            // A slot first, so that a job is never taken from the queue to wait for one.
            let Ok(slot) = Arc::clone(&self.slots).acquire_owned().await else {
                break;
            };
            let next = tokio::select! {
                biased;
                job = rx.recv() => Some(job),
                _ = stop.wait_for(|stopping| *stopping) => None,
            };
            let job = match next {
                Some(job) => job,
                None => {
                    // No more sends from here on; drain what is queued, then stop.
                    rx.close();
                    rx.recv().await
                }
            };
            let Some(job) = job else { break };
            if self.launch(job, slot).is_err() {
                break;
            }
        }
    }

    /// Runs `job` in a task of its own, holding `slot` until it ends or is cancelled. Past the
    /// shutdown's deadline nothing starts (a slot freed by a cancelled handler could otherwise
    /// start one): the job comes back, and counts as left.
    pub(super) fn launch(
        self: &Arc<Self>,
        job: Job<E>,
        slot: OwnedSemaphorePermit,
    ) -> Result<(), Job<E>> {
        if self.shared.is_aborted() {
            return Err(job);
        }
        let worker = Arc::clone(self);
        let mut abort = self.shared.abort.subscribe();
        self.runtime.spawn(async move {
            let _slot = slot;
            let _running = super::shared::Running::start(&worker.shared);
            tokio::select! {
                // The handler first: one that ends at once never looks at the signal.
                biased;
                () = worker.process(job) => {}
                _ = abort.wait_for(|abort| *abort) => {}
            }
        });
        Ok(())
    }

    async fn process(self: &Arc<Self>, job: Job<E>) {
        let span = tracing::info_span!(
            "airudder_delivery",
            event = E::NAME,
            task_id = &*crate::redact::log_field(job.event.log_id()),
            record = job.record(),
            attempt = tracing::field::Empty,
        );
        let Job {
            event,
            received_at,
            memory: _memory,
            origin,
        } = job;
        let delivery = Delivery::new(event, 1, received_at);
        match origin {
            Origin::Waiting { reply, deadline } => {
                self.answer(delivery, reply, deadline)
                    .instrument(span)
                    .await;
            }
            Origin::Answered => self.deliver(delivery).instrument(span).await,
            Origin::Stored { id, attempt } => {
                let delivery = self.claims.stamp(delivery, id);
                self.deliver_stored(delivery, id, attempt)
                    .instrument(span)
                    .await;
            }
        }
    }

    /// The "handled" ack: one attempt, whose outcome is the answer; on failure the sender
    /// retries in a minute.
    async fn answer(
        &self,
        delivery: Delivery<E>,
        reply: oneshot::Sender<Result<(), Rejection>>,
        deadline: Instant,
    ) {
        let counters = &self.shared.counters;
        if reply.is_closed() {
            // The request went away: the sender saw no 200 and will send it again.
            counters.count(Fate::Returned);
            return;
        }
        tracing::Span::current().record("attempt", 1);
        let timeout = deadline.saturating_duration_since(Instant::now());
        let answer = match self.attempt(delivery, timeout).await.result {
            Ok(()) => {
                counters.count(Fate::Handled);
                self.shared.failures.succeeded();
                Ok(())
            }
            Err(err) => {
                counters.count(Fate::Returned);
                self.shared.failures.answered_503(&err);
                Err(match err.downcast_ref::<AttemptError>() {
                    Some(AttemptError::TimedOut(_)) => Rejection::handler_timed_out(),
                    _ => Rejection::handler_failed(),
                })
            }
        };
        let _ = reply.send(answer);
    }

    /// The memory ack: attempts with backoff, in this task, until one succeeds or the retries
    /// are spent (nothing is stored: a crash loses what is waiting here).
    async fn deliver(&self, mut delivery: Delivery<E>) {
        let counters = &self.shared.counters;
        let span = tracing::Span::current();
        let mut attempt = 1;
        loop {
            span.record("attempt", attempt);
            delivery.set_attempt(attempt);
            let err = match self
                .attempt(delivery.clone(), self.handler_timeout)
                .await
                .result
            {
                Ok(()) => {
                    counters.count(Fate::Handled);
                    self.shared.failures.succeeded();
                    tracing::debug!("handled");
                    return;
                }
                Err(err) => err,
            };
            if attempt > self.retry.max_retries() || err.is::<GiveUp>() {
                let failed = FailedDelivery::new(delivery, err);
                crate::hooks::contain("on_failed", || self.on_failed.on_failed(failed));
                counters.count(Fate::Failed);
                return;
            }
            let backoff = err
                .downcast_ref::<RetryLater>()
                .map_or_else(|| self.retry.backoff(attempt), RetryLater::wait);
            self.shared.failures.retrying(&err, backoff);
            tokio::time::sleep(backoff).await;
            attempt += 1;
        }
    }

    /// The durable ack: one attempt of a stored record, counted in the store before it runs
    /// when it starts at once (so that a crash mid-attempt still counts: on append, or by the
    /// claim; one claimed ahead is counted by its outcome's write), its outcome
    /// handed to the completer, which writes it back: done, due again after the policy's
    /// backoff (the record leaves memory until then), or dead.
    async fn deliver_stored(&self, mut delivery: Delivery<E>, id: RecordId, attempt: u32) {
        let counters = &self.shared.counters;
        let (Some(_), Some(done)) = (&self.store, &self.done) else {
            return;
        };
        tracing::Span::current().record("attempt", attempt);
        delivery.set_attempt(attempt);
        let received_at = delivery.received_at();
        let started = SystemTime::now();
        let (result, attempt_record) = if attempt > self.retry.max_retries().saturating_add(1) {
            // Attempts that ended in crashes: the notification may be what kills the process.
            let err = AttemptError::TooManyAttempts(attempt - 1);
            let record = Attempt::failed_now(err.to_string());
            (Err(Box::new(err) as BoxError), record)
        } else {
            let status = Arc::new(AtomicU16::new(0));
            let tried = self
                .attempt(
                    delivery.clone().reporting_to(Arc::clone(&status)),
                    self.handler_timeout,
                )
                .await;
            let status = match status.load(Ordering::Relaxed) {
                0 => None,
                status => Some(status),
            };
            let mut record =
                Attempt::new(started, tried.elapsed, tried.outcome).with_status(status);
            if let Err(err) = &tried.result {
                record = record.with_error(err.to_string());
            }
            (tried.result, record)
        };
        let next = match &result {
            Ok(()) => {
                counters.count(Fate::Handled);
                self.shared.failures.succeeded();
                tracing::debug!("handled");
                Next::Done
            }
            Err(err) if err.is::<GiveUp>() => Next::Dead,
            Err(err) => {
                let asked = err
                    .downcast_ref::<RetryLater>()
                    .map(RetryLater::wait)
                    .or_else(|| Some(spread(self.retry.backoff(attempt), id, attempt)));
                match self
                    .retry
                    .next_attempt(attempt, received_at, SystemTime::now(), asked)
                {
                    Some(due) => {
                        let wait = due.duration_since(SystemTime::now()).unwrap_or_default();
                        self.shared.failures.retrying(err, wait);
                        self.shared
                            .next_due_ms
                            .fetch_min(crate::store::millis(due), Ordering::Relaxed);
                        counters.count(Fate::Returned);
                        Next::Retry(due)
                    }
                    None => Next::Dead,
                }
            }
        };
        if next == Next::Dead {
            if let Err(err) = result {
                let failed = FailedDelivery::new(delivery, err);
                crate::hooks::contain("on_failed", || self.on_failed.on_failed(failed));
            }
            counters.count(Fate::Failed);
        }
        if next == Next::Done {
            super::shared::lock(&self.shared.unmarked).insert(id);
        }
        let _ = done.send(Outcome {
            id,
            // The store counts the attempt with its outcome if the claim did not.
            attempt: attempt_record.with_number(attempt),
            next,
        });
    }

    /// Runs the handler once, catching a panic and cancelling it after `timeout`.
    async fn attempt(&self, delivery: Delivery<E>, timeout: Duration) -> Tried {
        let started = Instant::now();
        let handled = CatchUnwind {
            inner: self.handler.handle(delivery),
        };
        let (result, class) = match tokio::time::timeout(timeout, handled).await {
            Ok(Ok(Ok(()))) => (Ok(()), AttemptResult::Ok),
            Ok(Ok(Err(err))) => (Err(err.into()), AttemptResult::Error),
            Ok(Err(())) => (
                Err(Box::new(AttemptError::Panicked) as BoxError),
                AttemptResult::Panic,
            ),
            Err(_) => (
                Err(Box::new(AttemptError::TimedOut(timeout)) as BoxError),
                AttemptResult::Timeout,
            ),
        };
        let elapsed = started.elapsed();
        self.shared.counters.attempt(class, elapsed);
        let outcome = match class {
            AttemptResult::Ok => AttemptOutcome::Ok,
            AttemptResult::Error => AttemptOutcome::Error,
            AttemptResult::Panic => AttemptOutcome::Panic,
            AttemptResult::Timeout => AttemptOutcome::Timeout,
        };
        Tried {
            result,
            outcome,
            elapsed,
        }
    }
}

/// `wait` less up to a fifth, by a hash of the record and the attempt that differs from one
/// process to the next: notifications that failed together (a service down) do not all come
/// back at the same instant.
fn spread(wait: Duration, id: RecordId, attempt: u32) -> Duration {
    use std::hash::BuildHasher;
    static SEED: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let hash = SEED.get_or_init(Default::default).hash_one((id, attempt));
    let fifth = wait / 5;
    let nanos = u64::try_from(fifth.as_nanos()).unwrap_or(u64::MAX);
    match nanos {
        0 => wait,
        nanos => wait - Duration::from_nanos(hash % nanos),
    }
}

/// One attempt's result, how it ended and how long it ran.
struct Tried {
    result: Result<(), BoxError>,
    outcome: AttemptOutcome,
    elapsed: Duration,
}

impl<E: Event, H: HandleNotification<E>> Launch<E> for Worker<E, H> {
    fn try_launch(self: Arc<Self>, job: Job<E>) -> Result<(), Job<E>> {
        match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(slot) => self.launch(job, slot),
            Err(_) => Err(job),
        }
    }

    fn try_slot(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.slots).try_acquire_owned().ok()
    }

    fn launch_in(self: Arc<Self>, job: Job<E>, slot: OwnedSemaphorePermit) -> Result<(), Job<E>> {
        self.launch(job, slot)
    }
}

pin_project_lite::pin_project! {
    /// A future whose panic becomes an `Err(())`, so that a handler's panic fails its attempt
    /// instead of its task.
    struct CatchUnwind<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(_) => Poll::Ready(Err(())),
        }
    }
}
