//! The bounded queue between the request path and the handler, and its workers.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::{Duration, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::BoxError;
use crate::event::Event;
use crate::handler::{Delivery, HandleNotification};
use crate::hooks::{FailedDelivery, OnFailed};
use crate::rejection::Rejection;
use crate::store::{
    Appended, Envelope, ErasedStore, NewRecord, Record, RecordId, StoreError, StoreErrorKind,
};

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

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    handled: AtomicU64,
    failed: AtomicU64,
    returned: AtomicU64,
    rejected: AtomicU64,
    unavailable: AtomicU64,
    duplicates: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) struct Shared {
    accepting: AtomicBool,
    /// False while a durable receiver reads what it must redeliver.
    ready: watch::Sender<bool>,
    durable: bool,
    /// A store shared with other receivers: its claims are released at shutdown.
    shared_store: Option<Arc<dyn ErasedStore>>,
    stop: watch::Sender<bool>,
    /// Set when a shutdown's deadline passed: cancel the handlers still running.
    abort: watch::Sender<bool>,
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

pub(crate) struct Job<E> {
    event: Arc<E>,
    received_at: SystemTime,
    /// Set for the "handled" ack: the request waits for the outcome.
    reply: Option<oneshot::Sender<Result<(), Rejection>>>,
    deadline: Option<Instant>,
    /// The body's share of the receiver's memory cap, given back once the job is done.
    memory: Option<OwnedSemaphorePermit>,
    /// The stored record, with the durable ack.
    record: Option<RecordId>,
    /// Whether the store already counts the first attempt (a notification just stored).
    first_counted: bool,
}

/// The request path's end of the queue.
pub(crate) struct Queue<E> {
    tx: mpsc::Sender<Job<E>>,
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

    fn clone_sender(&self) -> Self {
        Self {
            launcher: None,
            tx: self.tx.clone(),
            shared: Arc::clone(&self.shared),
            store: self.store.clone(),
        }
    }

    /// After a start: every stored notification not yet handled goes to the handler again.
    ///
    /// The list is read before the receiver says it is ready, so that a notification stored
    /// after it is queued by its request alone, never twice.
    async fn redeliver(self, store: Arc<dyn ErasedStore>) {
        let pending = store.pending().await;
        self.shared.ready.send_replace(true);
        let pending = match pending {
            Ok(pending) => pending,
            Err(err) => {
                tracing::error!(error = %err, "could not read the stored notifications to redeliver");
                return;
            }
        };
        if !pending.is_empty() {
            tracing::info!(count = pending.len(), "redelivering stored notifications");
        }
        for record in pending {
            if let Err(err) = self.enqueue_stored(record).await {
                tracing::error!(error = %err, "could not redeliver a stored notification");
            }
        }
        drop(self.tx);
    }

    /// For a store that several receivers share: renews this receiver's claims every third of
    /// the lease, and claims the notifications whose claim lapsed (a receiver died, or this
    /// one restarted), until the receiver stops.
    async fn share(
        self,
        store: Arc<dyn ErasedStore>,
        lease: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        let renew_every = lease / 3;
        let mut renewed = Instant::now();
        let mut tick = tokio::time::interval(renew_every.min(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|stopping| *stopping) => return,
            }
            if renewed.elapsed() >= renew_every {
                match store.renew().await {
                    Ok(_) => renewed = Instant::now(),
                    Err(err) => tracing::warn!(
                        error = %err,
                        unrenewed_for = ?renewed.elapsed(),
                        "could not renew this receiver's claims: past the lease, another receiver takes them over"
                    ),
                }
            }
            // Half the queue stays free for requests.
            loop {
                let room = (self.tx.capacity() / 2).min(256);
                if room == 0 {
                    break;
                }
                let records = match store.claim(room).await {
                    Ok(records) => records,
                    Err(err) => {
                        tracing::warn!(error = %err, "could not claim lapsed notifications");
                        break;
                    }
                };
                let claimed = records.len();
                if claimed > 0 {
                    tracing::info!(
                        count = claimed,
                        "claimed stored notifications nobody was handling"
                    );
                }
                for record in records {
                    if let Err(err) = self.enqueue_stored(record).await {
                        tracing::error!(error = %err, "could not queue a claimed notification");
                    }
                }
                if claimed < room {
                    break;
                }
            }
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

fn lock<T>(mutex: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock leaves a plain Vec behind, still usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts a job on the workers from outside the dispatcher.
trait Launch<E>: Send + Sync {
    /// Starts `job` in a task of its own if a worker is free, else gives it back.
    fn try_launch(self: Arc<Self>, job: Job<E>) -> Result<(), Job<E>>;
}

struct Worker<E, H> {
    /// One per running handler, whether the dispatcher or the request path started it: at
    /// most `workers` at once.
    slots: Arc<Semaphore>,
    workers: usize,
    /// The runtime the receiver was built on, where every handler runs.
    runtime: tokio::runtime::Handle,
    handler: Arc<H>,
    on_failed: Arc<dyn OnFailed<E>>,
    retry: RetryPolicy,
    handler_timeout: Duration,
    shared: Arc<Shared>,
    store: Option<Arc<dyn ErasedStore>>,
    /// Handled records, for the completer to mark done.
    done: Option<mpsc::UnboundedSender<RecordId>>,
}

/// Marks handled records done, all those waiting in one go (one commit for many), so that a
/// worker never waits for a commit after a success. A batch that fails is tried again a second
/// later with what came in since: a record left pending would be handled again. Ends once
/// every worker has.
async fn complete(store: Arc<dyn ErasedStore>, mut done: mpsc::UnboundedReceiver<RecordId>) {
    let mut ids = Vec::new();
    let mut open = true;
    while open || !ids.is_empty() {
        if ids.is_empty() {
            match done.recv().await {
                Some(id) => ids.push(id),
                None => return,
            }
        } else if open {
            tokio::select! {
                id = done.recv() => match id {
                    Some(id) => ids.push(id),
                    None => open = false,
                },
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        while let Ok(id) = done.try_recv() {
            ids.push(id);
        }
        match store.complete_all(ids.clone()).await {
            Ok(()) => ids.clear(),
            Err(err) if open => {
                tracing::warn!(count = ids.len(), error = %err, "could not mark handled notifications done; trying again");
            }
            Err(err) => {
                tracing::error!(count = ids.len(), error = %err, "could not mark handled notifications done; they will be delivered again");
                return;
            }
        }
    }
}

/// Forgets de-duplication keys older than the window, every hour, until the receiver stops.
async fn prune(store: Arc<dyn ErasedStore>, window: Duration, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
        let before = SystemTime::now()
            .checked_sub(window)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        match store.prune(before).await {
            Ok(0) => {}
            Ok(pruned) => tracing::debug!(pruned, "forgot old de-duplication keys"),
            Err(err) => tracing::warn!(error = %err, "could not prune de-duplication keys"),
        }
    }
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
    async fn dispatch(self: Arc<Self>, rx: mpsc::Receiver<Job<E>>, stop: watch::Receiver<bool>) {
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
    fn launch(self: &Arc<Self>, job: Job<E>, slot: OwnedSemaphorePermit) -> Result<(), Job<E>> {
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
            let result = if attempt > self.retry.max_retries + 1 {
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
                    Err(err) if attempt > self.retry.max_retries => {
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
