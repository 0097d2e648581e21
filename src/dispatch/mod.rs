//! The bounded queue between the request path and the handler, and its workers.

mod background;
mod job;
mod retry;
mod shared;
mod shutdown;
mod worker;

pub use self::retry::RetryPolicy;
pub use self::shared::Stats;
pub use self::shutdown::{ShutdownHandle, ShutdownReport};

use self::background::{complete, prune};
pub(crate) use self::job::Job;
pub(crate) use self::shared::Shared;
use self::shared::{Counters, bump};
use self::worker::{Launch, Worker};

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::{Duration, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::event::Event;
use crate::handler::HandleNotification;
use crate::hooks::OnFailed;
use crate::rejection::Rejection;
use crate::store::{
    Appended, Envelope, ErasedStore, NewRecord, Record, StoreError, StoreErrorKind,
};

/// The request path's end of the queue.
pub(crate) struct Queue<E> {
    pub(super) tx: mpsc::Sender<Job<E>>,
    /// Starts a job in a task of its own straight from the request path (see [`Queue::hand_off`]).
    /// Weak, so that the workers' end (and the completer's after it) does not wait for the
    /// receiver to be dropped.
    launcher: Option<Weak<dyn Launch<E>>>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) store: Option<Arc<dyn ErasedStore>>,
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
    pub(crate) store: Option<Arc<dyn ErasedStore>>,
    pub(crate) dedup_window: Duration,
}

impl<E: Event> Queue<E> {
    /// Starts the workers on the current tokio runtime.
    pub(crate) fn start<H>(handler: H, config: WorkerConfig<E>) -> Self
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
        let (stop, _) = watch::channel(false);
        let durable = config.store.is_some();
        let lease = config.store.as_ref().and_then(|store| store.lease());
        let shared_store = config.store.clone().filter(|_| lease.is_some());
        let (done_tx, done_rx) = match &config.store {
            Some(_) => {
                let (tx, rx) = mpsc::unbounded_channel();
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let shared = Arc::new(Shared {
            accepting: AtomicBool::new(true),
            // A shared store needs no snapshot at start: claims keep receivers apart.
            ready: watch::channel(!durable || lease.is_some()).0,
            durable,
            shared_store,
            stop,
            abort: watch::channel(false).0,
            workers: StdMutex::new(Vec::with_capacity(config.workers)),
            counters: Counters::default(),
        });
        let worker = Arc::new(Worker {
            handler: Arc::new(handler),
            on_failed: config.on_failed,
            retry: config.retry,
            handler_timeout: config.handler_timeout,
            shared: Arc::clone(&shared),
            store: config.store.clone(),
            done: done_tx,
            slots: Arc::new(Semaphore::new(workers)),
            workers,
            runtime: tokio::runtime::Handle::current(),
        });
        let launcher: Arc<dyn Launch<E>> = Arc::clone(&worker) as Arc<dyn Launch<E>>;
        let launcher = Arc::downgrade(&launcher);
        let mut handles = vec![tokio::spawn(
            Arc::clone(&worker).dispatch(rx, shared.stop.subscribe()),
        )];
        let queue = Self {
            tx,
            launcher: Some(launcher),
            shared: Arc::clone(&shared),
            store: config.store,
        };
        drop(worker); // the completer ends once the last worker is gone
        if let (Some(store), Some(done_rx)) = (&queue.store, done_rx) {
            handles.push(tokio::spawn(complete(Arc::clone(store), done_rx)));
            let sender = queue.clone_sender();
            handles.push(match lease {
                Some(lease) => {
                    tokio::spawn(sender.share(Arc::clone(store), lease, shared.stop.subscribe()))
                }
                None => tokio::spawn(sender.redeliver(Arc::clone(store))),
            });
            let stop = shared.stop.subscribe();
            handles.push(tokio::spawn(prune(
                Arc::clone(store),
                config.dedup_window,
                stop,
            )));
        }
        *lock(&shared.workers) = handles;
        queue
    }

    pub(super) fn clone_sender(&self) -> Self {
        Self {
            launcher: None,
            tx: self.tx.clone(),
            shared: Arc::clone(&self.shared),
            store: self.store.clone(),
        }
    }

    /// Hands a stored record to the workers, waiting for room in the queue.
    pub(crate) async fn enqueue_stored(&self, record: Record) -> Result<(), StoreError> {
        let event = match E::decode(&record.body) {
            Ok(event) => event,
            Err(err) => {
                let error = format!("the stored body is not a valid notification: {err}");
                if let Some(store) = &self.store {
                    store.dead_letter(record.id, error.clone()).await?;
                }
                return Err(StoreError::new(StoreErrorKind::Invalid, error));
            }
        };
        let job = Job {
            event: Arc::new(event),
            received_at: record.envelope.received_at(),
            reply: None,
            deadline: None,
            memory: None,
            record: Some(record.id),
            first_counted: false,
        };
        self.tx
            .send(job)
            .await
            .map_err(|_| StoreError::bare(StoreErrorKind::Closed))?;
        bump(&self.shared.counters.queued);
        Ok(())
    }

    /// The durable ack: stores the notification (fsynced, de-duplicated), then queues it.
    /// Returns once it is safe to answer 200.
    pub(crate) async fn submit_durable(
        &self,
        event: Arc<E>,
        body: bytes::Bytes,
        envelope: Envelope,
        memory: Option<OwnedSemaphorePermit>,
    ) -> Result<(), Rejection> {
        let Some(store) = &self.store else {
            return Err(Rejection::store_unavailable());
        };
        // A slot first: a stored notification must never wait for room to be queued.
        let slot = self.reserve()?;
        let received_at = envelope.received_at();
        let record = NewRecord {
            key: event.dedup_key(),
            body,
            envelope,
        };
        match store.append(record).await {
            Ok(Appended::Stored(id)) => {
                bump(&self.shared.counters.queued);
                self.hand_off(
                    slot,
                    Job {
                        event,
                        received_at,
                        reply: None,
                        deadline: None,
                        memory,
                        record: Some(id),
                        first_counted: true,
                    },
                );
                Ok(())
            }
            Ok(Appended::Duplicate(id)) => {
                bump(&self.shared.counters.duplicates);
                tracing::info!(
                    record = id,
                    "duplicate delivery: already stored, not handled again"
                );
                Ok(())
            }
            Err(err) => {
                tracing::error!(error = %err, "could not store a notification: answering 503");
                Err(Rejection::store_unavailable())
            }
        }
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
        let slot = self.reserve()?;
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
            record: None,
            first_counted: false,
        };
        bump(&self.shared.counters.queued);
        self.hand_off(slot, job);
        Ok(outcome)
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
        // anyway, and the dispatcher does that as cheaply (`cargo bench --bench service`, whose
        // requests come from `block_on`: 5.8 µs through the dispatcher, 6.9 µs spawned directly).
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
        if !self.shared.is_accepting() {
            return Err(Rejection::shutting_down());
        }
        self.tx
            .clone()
            .try_reserve_owned()
            .map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => Rejection::queue_full(),
                mpsc::error::TrySendError::Closed(_) => Rejection::shutting_down(),
            })
    }
}

pub(super) fn lock<T>(mutex: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock leaves a plain Vec behind, still usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
