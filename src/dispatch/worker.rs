//! The workers: a task per notification, retries, panics contained.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

use crate::BoxError;
use crate::event::Event;
use crate::handler::{Delivery, HandleNotification};
use crate::hooks::{FailedDelivery, OnFailed};
use crate::rejection::Rejection;
use crate::store::{ErasedStore, RecordId, StoreErrorKind};

use super::*;

/// Starts a job on the workers from outside the dispatcher.
pub(super) trait Launch<E>: Send + Sync {
    /// Starts `job` in a task of its own if a worker is free, else gives it back.
    fn try_launch(self: Arc<Self>, job: Job<E>) -> Result<(), Job<E>>;
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
    /// Handled records, for the completer to mark done.
    pub(super) done: Option<mpsc::UnboundedSender<RecordId>>,
}

/// What a worker does after an attempt.
enum Step {
    Replied,
    Handled,
    GaveUp(String),
    Retry(String),
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
            Self::TooManyAttempts(made) => {
                write!(
                    f,
                    "{made} attempts already started, some ended by a crash: not tried again"
                )
            }
        }
    }
}

impl std::error::Error for AttemptError {}

impl<E: Event, H: HandleNotification<E>> Worker<E, H> {
    /// Takes jobs as fast as they come and runs each in a task of its own, at most `workers`
    /// at once. One task per notification, not per worker: a busy server's connection tasks
    /// cannot starve the hand-off to the handler. Jobs the request path started itself
    /// ([`Queue::hand_off`]) take their slots from the same `workers`.
    pub(super) async fn dispatch(
        self: Arc<Self>,
        rx: mpsc::Receiver<Job<E>>,
        stop: watch::Receiver<bool>,
    ) {
        let mut abort = self.shared.abort.subscribe();
        tokio::select! {
            biased;
            // Past the deadline: the running handlers see the same signal and end.
            _ = abort.wait_for(|abort| *abort) => {}
            () = Arc::clone(&self).take_jobs(rx, stop) => {}
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
            let slot = Arc::clone(&self.slots)
                .acquire_owned()
                .await
                .expect("the slots are never closed");
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
        if *self.shared.abort.borrow() {
            return Err(job);
        }
        let worker = Arc::clone(self);
        let mut abort = self.shared.abort.subscribe();
        self.runtime.spawn(async move {
            let _slot = slot;
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
        let Job {
            event,
            received_at,
            mut reply,
            deadline,
            memory: _memory,
            record,
            first_counted,
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
            record = record,
            attempt = tracing::field::Empty,
        );
        let stored = record.zip(self.store.as_ref());
        let mut next_attempt = 1;
        loop {
            let attempt = match stored {
                Some(_) if first_counted && next_attempt == 1 => 1,
                // Counted before the handler runs, so that a crash mid-attempt still counts.
                Some((id, store)) => match store.begin_attempt(id).await {
                    Ok(attempt) => attempt,
                    Err(err) if err.kind() == StoreErrorKind::NotFound => {
                        // Done, or claimed by another receiver after this one lost its claim.
                        span.in_scope(|| tracing::info!(error = %err, "not this receiver's to handle any more"));
                        bump(&counters.returned);
                        return;
                    }
                    Err(err) => {
                        span.in_scope(|| tracing::error!(error = %err, "could not count the attempt in the store"));
                        next_attempt
                    }
                },
                None => next_attempt,
            };
            span.record("attempt", attempt);
            let delivery = Delivery::new(Arc::clone(&event), attempt, received_at);
            let result = if attempt > self.retry.max_retries() + 1 {
                // Attempts that ended in crashes: the notification may be what kills the process.
                Err(Box::new(AttemptError::TooManyAttempts(attempt - 1)) as BoxError)
            } else {
                let timeout = match deadline {
                    Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                    None => self.handler_timeout,
                };
                self.attempt(delivery.clone(), timeout)
                    .instrument(span.clone())
                    .await
            };
            let step = span.in_scope(|| match reply.take() {
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
                    Step::Replied
                }
                None => match result {
                    Ok(()) => {
                        bump(&counters.handled);
                        tracing::debug!("handled");
                        Step::Handled
                    }
                    Err(err) if attempt > self.retry.max_retries() => {
                        bump(&counters.failed);
                        let error = err.to_string();
                        let failed = FailedDelivery::new(delivery, err);
                        crate::hooks::contain("on_failed", || self.on_failed.on_failed(failed));
                        Step::GaveUp(error)
                    }
                    Err(err) => {
                        let backoff = self.retry.backoff(attempt);
                        tracing::warn!(error = %err, ?backoff, "handler failed; retrying");
                        Step::Retry(err.to_string())
                    }
                },
            });
            let Some((id, store)) = stored else {
                match step {
                    Step::Retry(_) => {}
                    _ => return,
                }
                tokio::time::sleep(self.retry.backoff(attempt)).await;
                next_attempt = attempt + 1;
                continue;
            };
            let (written, retry) = match step {
                Step::Replied | Step::Handled => {
                    if let Some(done) = &self.done {
                        let _ = done.send(id);
                    }
                    return;
                }
                Step::GaveUp(error) => (store.dead_letter(id, error).await, false),
                Step::Retry(error) => (store.fail(id, error).await, true),
            };
            if let Err(err) = written {
                span.in_scope(|| {
                    tracing::error!(error = %err, "could not record the outcome in the store; it may be delivered again after a restart")
                });
            }
            if !retry {
                return;
            }
            tokio::time::sleep(self.retry.backoff(attempt)).await;
            next_attempt = attempt + 1;
        }
    }

    /// Runs the handler in its own task, so that a panic is caught and a timeout can abort it.
    /// Runs the handler once, catching a panic and cancelling it after `timeout`.
    async fn attempt(
        self: &Arc<Self>,
        delivery: Delivery<E>,
        timeout: Duration,
    ) -> Result<(), BoxError> {
        let handled = CatchUnwind {
            inner: self.handler.handle(delivery),
        };
        match tokio::time::timeout(timeout, handled).await {
            Ok(Ok(result)) => result.map_err(Into::into),
            Ok(Err(())) => Err(Box::new(AttemptError::Panicked)),
            Err(_) => Err(Box::new(AttemptError::TimedOut(timeout))),
        }
    }
}

impl<E: Event, H: HandleNotification<E>> Launch<E> for Worker<E, H> {
    fn try_launch(self: Arc<Self>, job: Job<E>) -> Result<(), Job<E>> {
        match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(slot) => self.launch(job, slot),
            Err(_) => Err(job),
        }
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

impl<F: std::future::Future> std::future::Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.project().inner;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(output)) => std::task::Poll::Ready(Ok(output)),
            Err(_) => std::task::Poll::Ready(Err(())),
        }
    }
}
