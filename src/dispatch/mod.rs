//! Dispatch: the bounded queue between the request path and the handler, and its workers.
//!
//! - [`Queue`] (here) is the request path's end: it reserves a place, then starts the job at
//!   once or queues it;
//! - [`job`] is what travels, and where it came from ([`Origin`](job::Origin));
//! - [`worker`] runs the handler: attempts, retries, panics, timeouts, outcomes;
//! - [`background`] holds the tasks besides the handlers (dispatcher, redelivery or claims,
//!   completer, pruner);
//! - [`shutdown`] stops it all; [`retry`] is the backoff policy.

mod background;
mod failures;
mod feed;
mod job;
mod order;
mod retry;
mod shared;
mod shutdown;
mod worker;

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;

pub use self::retry::RetryPolicy;
pub use self::shutdown::{ShutdownHandle, ShutdownReport, shutdown_signal};

use self::background::{StoredTasks, Tasks, Windows};
use self::job::{Job, Origin};
pub(crate) use self::order::{KeyOf, OrderBy};
use self::shared::{Shared, lock};
use self::worker::{Launch, Worker};
use crate::event::Event;
use crate::handler::HandleNotification;
use crate::hooks::OnFailed;
use crate::intake::Decoded;
use crate::rejection::Rejection;
use crate::stats::{Accepted, Counters, Fate};
use crate::store::{
    Appended, Claims, Envelope, ErasedStore, NewRecord, StoreError, StoreErrorKind,
};

/// The request path's end of the queue.
pub(crate) struct Queue<E> {
    tx: mpsc::Sender<Job<E>>,
    /// Starts a job in a task of its own straight from the request path (see [`Queue::hand_off`]).
    /// Weak, so that the workers' end (and the completer's after it) does not wait for the
    /// receiver to be dropped.
    launcher: Option<Weak<dyn Launch<E>>>,
    shared: Arc<Shared>,
    /// Set: a durable receiver's records are ordered per key.
    order: Option<Arc<OrderBy<E>>>,
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

/// What the workers need, from the builder.
pub(crate) struct WorkerConfig<E> {
    pub(crate) workers: usize,
    pub(crate) capacity: usize,
    pub(crate) retry: RetryPolicy,
    pub(crate) handler_timeout: Duration,
    pub(crate) on_failed: Arc<dyn OnFailed<E>>,
    pub(crate) store: Option<Arc<dyn ErasedStore>>,
    /// What the handler needs to complete a stored record in its own transaction.
    pub(crate) claims: Claims,
    pub(crate) dedup_window: Duration,
    /// How long handled records stay in the store.
    pub(crate) retention: Duration,
    /// The receiver's name, its `receiver` label in metrics.
    pub(crate) name: String,
    /// Ordered delivery per key (a durable receiver only).
    pub(crate) order: Option<OrderBy<E>>,
}

impl<E> Queue<E> {
    /// The handle that stops the receiver: it clears `accepting`, then drains the queue.
    pub(crate) fn shutdown_handle(&self, accepting: Arc<AtomicBool>) -> ShutdownHandle {
        ShutdownHandle::new(accepting, Arc::clone(&self.shared))
    }

    /// The receiver's name: the kind of the records it stores and the only kind it hands on.
    pub(crate) fn kind(&self) -> &str {
        &self.shared.kind
    }

    /// Whether a stored record is this receiver's to hand on (its kind is this receiver's).
    pub(crate) fn owns(&self, envelope: &Envelope) -> bool {
        self.shared.owns(envelope)
    }

    /// Records what the store says of this receiver's kind; a resume wakes the feeder.
    pub(crate) fn set_paused(&self, paused: bool) {
        self.shared.set_paused(paused);
    }

    /// Wakes the feeder: a record was made due (replayed) in the store.
    pub(crate) fn wake_feeder(&self) {
        self.shared.feed.notify_one();
    }

    /// Handlers running now.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn running(&self) -> usize {
        self.shared.running()
    }

    /// Becomes true when a shutdown begins.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn stop_signal(&self) -> watch::Receiver<bool> {
        self.shared.stop.subscribe()
    }

    /// Hands the gauges' sampler to the shutdown, which waits for it (it may hold the store).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn attach_sampler(&self, sampler: tokio::task::JoinHandle<()>) {
        self.shared.attach_sampler(sampler);
    }

    /// Whether this receiver orders its notifications per key.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn is_ordered(&self) -> bool {
        self.order.is_some()
    }

    /// The store of a durable receiver.
    pub(crate) fn store(&self) -> Option<&Arc<dyn ErasedStore>> {
        self.shared.store.as_ref()
    }

    /// Notifications accepted and waiting for a worker.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

impl<E: Event> Queue<E> {
    /// Starts the workers and the background tasks on the current tokio runtime.
    pub(crate) fn start<H>(handler: H, config: WorkerConfig<E>, counters: Arc<Counters>) -> Self
    where
        H: HandleNotification<E>,
    {
        let (tx, rx) = mpsc::channel(config.capacity);
        // Every running handler holds one of `workers` slots; waiting for all of them is
        // waiting for every handler to end.
        let workers = config
            .workers
            .min(u32::MAX as usize)
            .min(Semaphore::MAX_PERMITS);
        let shared = Arc::new(Shared::new(config.store.clone(), &config.name, counters));

        let (done_tx, done_rx) = match &config.store {
            Some(_) => {
                let (tx, rx) = mpsc::unbounded_channel();
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let worker = Arc::new(Worker {
            handler: Arc::new(handler),
            on_failed: config.on_failed,
            retry: config.retry,
            handler_timeout: config.handler_timeout,
            shared: Arc::clone(&shared),
            store: config.store.clone(),
            claims: config.claims,
            done: done_tx,
            slots: Arc::new(Semaphore::new(workers)),
            workers,
            runtime: tokio::runtime::Handle::current(),
        });
        let launcher: Arc<dyn Launch<E>> = Arc::clone(&worker) as Arc<dyn Launch<E>>;
        let launcher = Arc::downgrade(&launcher);
        let dispatcher = tokio::spawn(Arc::clone(&worker).dispatch(rx, shared.stop.subscribe()));
        let stored = match (&config.store, done_rx) {
            (Some(store), Some(done)) => {
                let feeder = tokio::spawn(
                    Arc::clone(&worker).feed(Arc::clone(store), shared.stop.subscribe()),
                );
                let windows = Windows {
                    dedup: config.dedup_window,
                    retention: config.retention,
                };
                Some(StoredTasks::start(&shared, store, done, feeder, windows))
            }
            _ => None,
        };
        drop(worker); // the completer ends once the last worker is gone
        let queue = Self {
            tx,
            launcher: Some(launcher),
            shared: Arc::clone(&shared),
            order: config.order.map(Arc::new),
        };
        *lock(&shared.tasks) = Some(Tasks {
            dispatcher,
            stored,
            sampler: None,
        });
        queue
    }

    /// The memory ack: queued (or started), so that the 200 may go out.
    pub(crate) fn submit(
        &self,
        decoded: Decoded<E>,
        received_at: SystemTime,
        memory: Option<OwnedSemaphorePermit>,
    ) -> Result<(), Rejection> {
        let slot = self.reserve()?;
        self.shared.counters.count(Fate::Queued);
        let job = Job::new(decoded.event, received_at, memory, Origin::Answered);
        self.hand_off(slot, job);
        Ok(())
    }

    /// The "handled" ack: queued with a reply, whose receiver gets the handler's outcome.
    pub(crate) fn submit_waiting(
        &self,
        decoded: Decoded<E>,
        received_at: SystemTime,
        memory: Option<OwnedSemaphorePermit>,
        deadline: Instant,
    ) -> Result<oneshot::Receiver<Result<(), Rejection>>, Rejection> {
        let slot = self.reserve()?;
        let (reply, outcome) = oneshot::channel();
        self.shared.counters.count(Fate::Queued);
        let origin = Origin::Waiting { reply, deadline };
        self.hand_off(slot, Job::new(decoded.event, received_at, memory, origin));
        Ok(outcome)
    }

    /// The durable ack: stores the notification (fsynced, de-duplicated) and starts it at once
    /// when a worker is free; else it waits in the store, due now, for the feeder to claim it.
    /// Returns once it is safe to answer 200, whatever the backlog.
    pub(crate) async fn submit_stored(
        &self,
        decoded: Decoded<E>,
        envelope: Envelope,
        memory: Option<OwnedSemaphorePermit>,
    ) -> Result<Accepted, Rejection> {
        let Some(store) = &self.shared.store else {
            return Err(Rejection::store_unavailable());
        };
        let received_at = envelope.received_at();
        let record = self.record(&decoded, envelope);
        // A worker's slot first, so that a record stored as started is started at once. An
        // ordered record waits for a claim instead: one stored before it may be pending.
        let launcher = self.launcher.as_ref().and_then(Weak::upgrade);
        let slot = launcher
            .as_ref()
            .filter(|_| !self.shared.is_paused() && record.order_key.is_none())
            .and_then(|launcher| launcher.try_slot());
        let record = record.started(slot.is_some());
        match store.append(record).await {
            Ok(Appended::Stored(id)) => {
                match (launcher, slot) {
                    (Some(launcher), Some(slot)) => {
                        self.shared.counters.count(Fate::Queued);
                        let origin = Origin::Stored { id, attempt: 1 };
                        let job = Job::new(decoded.event, received_at, memory, origin);
                        if launcher.launch_in(job, slot).is_err() {
                            // Past the shutdown's deadline: it stays stored for the next start.
                            self.shared.counters.count(Fate::Returned);
                        }
                    }
                    _ => self.shared.feed.notify_one(),
                }
                Ok(Accepted::New)
            }
            Ok(Appended::Duplicate(id)) => {
                tracing::info!(
                    record = id,
                    "duplicate delivery: already stored, not handled again"
                );
                Ok(Accepted::Duplicate)
            }
            Err(err) => {
                tracing::error!(error = %err, "could not store a notification: answering 503");
                Err(Rejection::store_unavailable())
            }
        }
    }

    /// Stores a notification that did not come from a request (a recovered refused body), due
    /// at once, for the feeder to claim: what [`submit_stored`](Self::submit_stored) does, for
    /// an operator instead of a sender.
    pub(crate) async fn store_and_enqueue(
        &self,
        decoded: Decoded<E>,
        envelope: Envelope,
    ) -> Result<Appended, StoreError> {
        let store = self.shared.store.as_ref().ok_or_else(no_store)?;
        let appended = store.append(self.record(&decoded, envelope)).await?;
        self.shared.feed.notify_one();
        Ok(appended)
    }

    /// What the store keeps of `decoded`: ordered by its key, if this receiver orders.
    fn record(&self, decoded: &Decoded<E>, envelope: Envelope) -> NewRecord {
        let record = decoded.record(envelope);
        match &self.order {
            Some(order) => order.apply(&decoded.event, record),
            None => record,
        }
    }

    /// Starts `job` at once, in a task of its own, when nothing waits in the queue and a worker
    /// is free; else queues it in `slot`, its reserved place in the queue, for the dispatcher.
    ///
    /// Starting from the request path spares the hop through the dispatcher, and spreads the
    /// spawns over the requests: a dispatcher spawning a burst of queued jobs at once fills the
    /// runtime's local run queue, which then spills tasks (connections among them) into the
    /// global queue, where they wait (measured: 10 to 65 ms stalls of single connections under
    /// a sleeping handler, gone this way). The queue's slot is given back only once the task holds
    /// a worker's, so a draining dispatcher still waits for it.
    fn hand_off(&self, slot: mpsc::OwnedPermit<Job<E>>, job: Job<E>) {
        // Our own reserved slot counts against the free capacity: the queue is empty when it
        // is the only one taken. From a runtime's task, a spawn lands in that worker's own run
        // queue; from outside any task (`block_on`) it would wake a worker across threads
        // anyway, and the dispatcher does that as cheaply (see benches/README.md).
        let direct =
            self.tx.capacity() + 1 >= self.tx.max_capacity() && tokio::task::try_id().is_some();
        let launcher = self
            .launcher
            .as_ref()
            .filter(|_| direct)
            .and_then(Weak::upgrade);
        let queued = match launcher {
            Some(launcher) => launcher.try_launch(job),
            None => Err(job),
        };
        if let Err(job) = queued {
            slot.send(job);
        }
    }

    /// A place in the queue, or the answer that says why there is none.
    fn reserve(&self) -> Result<mpsc::OwnedPermit<Job<E>>, Rejection> {
        self.tx
            .clone()
            .try_reserve_owned()
            .map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => Rejection::queue_full(),
                mpsc::error::TrySendError::Closed(_) => Rejection::shutting_down(),
            })
    }
}

fn no_store() -> StoreError {
    StoreError::new(StoreErrorKind::NotFound, "this receiver has no store")
}
