//! The builder: every setting, checked once by `build`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;

use super::ack::AckPolicy;
use super::defaults;
use super::state::{Inner, Receiver, Settings};
use crate::auth::{AllOf, Authorize};
use crate::dispatch::{KeyOf, OrderBy, RetryPolicy, WorkerConfig};
use crate::event::Event;
use crate::handler::HandleNotification;
use crate::hooks::{BodyHook, DefaultOnFailed, DefaultOnRejected, OnFailed, OnRejected};
use crate::intake::Intake;
use crate::store::{Claims, ErasedStore, Store};

/// The default body limit: [`defaults::BODY_LIMIT`], its one name from 0.2 on.
#[deprecated(since = "0.2.0", note = "use `receiver::defaults::BODY_LIMIT`")]
pub const DEFAULT_BODY_LIMIT: usize = defaults::BODY_LIMIT;

/// A receiver that could not be built: its message says what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    message: &'static str,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message)
    }
}

impl std::error::Error for BuildError {}

/// Configures a [`Receiver`]. Every setting has a production default, listed in
/// [`defaults`].
#[must_use]
pub struct ReceiverBuilder<E, H> {
    handler: H,
    body_limit: usize,
    workers: usize,
    queue_capacity: usize,
    /// Set by `ack`; `None` until then.
    ack: Option<AckPolicy>,
    retry: Option<RetryPolicy>,
    handler_timeout: Option<Duration>,
    retry_after: Duration,
    on_rejected: Arc<dyn OnRejected>,
    on_failed: Arc<dyn OnFailed<E>>,
    checks: AllOf,
    check_count: usize,
    unauthenticated: bool,
    body_timeout: Duration,
    max_bytes_in_flight: usize,
    max_header_bytes: usize,
    body_hook: Option<Arc<dyn BodyHook>>,
    keep_headers: Vec<HeaderName>,
    store: Option<Arc<dyn ErasedStore>>,
    /// What the handler needs to complete in its own transaction (a `PostgresStore`).
    claims: Claims,
    dedup_window: Option<Duration>,
    retention: Option<Duration>,
    order: Option<KeyOf<E>>,
    dead_letter_holds_order: Option<bool>,
    name: Option<String>,
    metrics_interval: Duration,
}

impl<E, H> fmt::Debug for ReceiverBuilder<E, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiverBuilder")
            .field("body_limit", &self.body_limit)
            .field("workers", &self.workers)
            .field("queue_capacity", &self.queue_capacity)
            .field("ack", &self.ack)
            .field("retry", &self.retry)
            .field("handler_timeout", &self.handler_timeout)
            .field("retry_after", &self.retry_after)
            .field("checks", &self.check_count)
            .field("unauthenticated", &self.unauthenticated)
            .field("body_timeout", &self.body_timeout)
            .field("max_bytes_in_flight", &self.max_bytes_in_flight)
            .field("max_header_bytes", &self.max_header_bytes)
            .field("body_hook", &self.body_hook.is_some())
            .field("keep_headers", &self.keep_headers)
            .field("durable", &self.store.is_some())
            .field("dedup_window", &self.dedup_window)
            .field("retention", &self.retention)
            .field("ordered", &self.order.is_some())
            .field("dead_letter_holds_order", &self.dead_letter_holds_order)
            .field("name", &self.name)
            .field("metrics_interval", &self.metrics_interval)
            .finish_non_exhaustive()
    }
}

impl<E: Event, H: HandleNotification<E>> ReceiverBuilder<E, H> {
    /// A builder with every setting at its default: see [`Receiver::builder_for`].
    pub(super) fn new(handler: H) -> Self {
        Self {
            handler,
            body_limit: defaults::BODY_LIMIT,
            workers: defaults::WORKERS,
            queue_capacity: defaults::QUEUE_CAPACITY,
            ack: None,
            retry: None,
            handler_timeout: None,
            retry_after: defaults::RETRY_AFTER,
            on_rejected: Arc::new(DefaultOnRejected),
            on_failed: Arc::new(DefaultOnFailed),
            checks: AllOf::new(),
            check_count: 0,
            unauthenticated: false,
            body_timeout: defaults::BODY_TIMEOUT,
            max_bytes_in_flight: defaults::MAX_BYTES_IN_FLIGHT,
            max_header_bytes: defaults::MAX_HEADER_BYTES,
            body_hook: None,
            keep_headers: Vec::new(),
            store: None,
            claims: Claims::default(),
            dedup_window: None,
            retention: None,
            order: None,
            dead_letter_holds_order: None,
            name: None,
            metrics_interval: defaults::METRICS_INTERVAL,
        }
    }
}

impl<E: Event, H: HandleNotification<E>> ReceiverBuilder<E, H> {
    /// The receiver's name: the kind of the records it stores (receivers sharing a store must
    /// have distinct names: each hands on only its own records, and replays only them), and
    /// the `receiver` label of its metrics (feature `metrics`). The default is the event's name
    /// with underscores (`task_notification`, `chatbot_session_end`, …). Records stored before
    /// kinds existed are `task_notification`'s.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How often the gauges (queue depth, handlers running, bytes in flight, readiness, and
    /// the store's pending, dead letters, oldest pending and recovery) are sampled in the
    /// background ([default](defaults::METRICS_INTERVAL) 5 s). Only with the feature `metrics`.
    #[cfg(feature = "metrics")]
    pub fn metrics_interval(mut self, every: Duration) -> Self {
        self.metrics_interval = every;
        self
    }

    /// Adds an authentication check, decided before the body is read; with several calls,
    /// every check must pass. See [`auth`](crate::auth).
    pub fn authorize(mut self, check: impl Authorize) -> Self {
        self.checks = self.checks.and(check);
        self.check_count += 1;
        self
    }

    /// Runs without authentication: anyone who finds the URL can post notifications. Without
    /// this or [`authorize`](Self::authorize), [`build`](Self::build) fails, and with it the
    /// receiver warns once when built.
    pub fn allow_unauthenticated(mut self) -> Self {
        self.unauthenticated = true;
        self
    }

    /// How long a body may take to arrive once the head is in ([default](defaults::BODY_TIMEOUT));
    /// slower is 408.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// The cap on the bytes of the notifications the receiver holds at once, across all
    /// requests ([default](defaults::MAX_BYTES_IN_FLIGHT)), counted as the size of their bodies
    /// from the first byte read until the handler is done: a request that would pass it is
    /// answered 503 and retried by the sender. At least the body limit.
    pub fn max_bytes_in_flight(mut self, bytes: usize) -> Self {
        self.max_bytes_in_flight = bytes;
        self
    }

    /// The largest request head, target and headers ([default](defaults::MAX_HEADER_BYTES));
    /// larger is 431.
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes;
        self
    }

    /// Stores every notification in `store`, fsynced, before answering 200, and feeds the
    /// handler from there: the [durable ack](AckPolicy::Durable). See [`store`](crate::store).
    pub fn durable(mut self, store: impl Store) -> Self {
        self.claims = Claims::of(&store);
        self.store = Some(Arc::new(store));
        self
    }

    /// Hands the handler the notifications of one key one at a time, in the order they were
    /// received, the key being the one each event type documents
    /// ([`Event::order_key`](crate::Event::order_key)): a task notification's `task_id`, a
    /// workflow's `workflow_id`, a chatbot session, a predictive-dialer contact's call, agent
    /// or task. See [`ordered_by`](Self::ordered_by).
    pub fn ordered(self) -> Self {
        self.ordered_by(E::order_key)
    }

    /// Hands the handler the notifications of one key one at a time, in the order they were
    /// received: the next one of a key waits until the one before it is handled, or is a dead
    /// letter (which holds it back unless
    /// [`dead_letter_holds_order(false)`](Self::dead_letter_holds_order)). Notifications of
    /// other keys go on in parallel, within the [`workers`](Self::workers); one whose `key` is
    /// `None` is not ordered. Needs [`durable`](Self::durable): the order is kept by the store,
    /// so it holds across retries, restarts and receivers sharing a PostgreSQL store (a claim
    /// takes only the first pending notification of each key; two notifications of one key
    /// received at the same instant by two receivers are in the order of their ids).
    ///
    /// An ordered notification is never started from the request path: it waits for the
    /// feeder's claim, a little later. The key is stored and shown to operators: never a
    /// customer's personal data (a phone number).
    pub fn ordered_by<F>(mut self, key: F) -> Self
    where
        F: Fn(&E) -> Option<String> + Send + Sync + 'static,
    {
        self.order = Some(Arc::new(key));
        self
    }

    /// Whether a dead letter holds back the later notifications of its key until it is
    /// replayed or purged (default `true`: a state machine never sees a later event without
    /// the one before it). With `false` they go on without it, and a replayed dead letter
    /// comes back unordered. Only with [`ordered_by`](Self::ordered_by).
    pub fn dead_letter_holds_order(mut self, holds: bool) -> Self {
        self.dead_letter_holds_order = Some(holds);
        self
    }

    /// How long a durable receiver remembers a handled notification's key to recognise a
    /// duplicate ([default](defaults::DEDUP_WINDOW)). Only with [`durable`](Self::durable).
    pub fn dedup_window(mut self, window: Duration) -> Self {
        self.dedup_window = Some(window);
        self
    }

    /// How long a durable receiver keeps a handled notification in its store, with its
    /// attempts, to be found ("did we receive task X on Monday, and what did our service
    /// say?") and replayed ([default](defaults::RETENTION): 7 days). Pruned every hour by the
    /// store's index by time. Only with [`durable`](Self::durable).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// Transforms the raw body before it is decoded, e.g. to decrypt it. An error answers
    /// 400; the rejected hook still receives the raw bytes, and a durable receiver keeps them,
    /// so that [`Receiver::replay_rejected`] can run them through the fixed hook later.
    pub fn body_hook(mut self, hook: impl BodyHook) -> Self {
        self.body_hook = Some(Arc::new(hook));
        self
    }

    /// The [body hook](Self::body_hook), under its old name.
    #[deprecated(since = "0.2.0", note = "renamed to `body_hook`")]
    pub fn decode_body(self, hook: impl BodyHook) -> Self {
        self.body_hook(hook)
    }

    /// Keeps these request headers with each stored notification and refused body, besides
    /// `content-type`, `user-agent` and `content-length`: what the [body
    /// hook](Self::body_hook) reads (a key id, say) and must see again when a refused body
    /// is recovered. Never name a header that carries a credential.
    pub fn keep_headers(mut self, headers: impl IntoIterator<Item = HeaderName>) -> Self {
        self.keep_headers.extend(headers);
        self
    }

    /// The largest body accepted, in bytes ([default](defaults::BODY_LIMIT)); larger is 413.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// How many handler calls run at once ([default](defaults::WORKERS)).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// How many notifications wait in memory for a worker before the receiver answers 503
    /// ([default](defaults::QUEUE_CAPACITY)). A durable receiver keeps its waiting
    /// notifications in its store instead, whatever their number.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// When to answer 200: [`AckPolicy::Memory`] (the default) or [`AckPolicy::Handled`]. The
    /// durable ack is chosen with [`durable`](Self::durable), which takes its store.
    pub fn ack(mut self, policy: AckPolicy) -> Self {
        self.ack = Some(policy);
        self
    }

    /// How a failed handler is retried with the memory and durable acks (default
    /// [`RetryPolicy::default`]); durable attempts count across restarts. Refused with
    /// [`AckPolicy::Handled`], where the sender's retry is the retry.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// How long one handler attempt may run before it is cancelled and counted as failed, with
    /// the memory and durable acks ([default](defaults::HANDLER_TIMEOUT)). Refused with
    /// [`AckPolicy::Handled`], whose own timeout bounds the attempt.
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.handler_timeout = Some(timeout);
        self
    }

    /// The `Retry-After` of 503 answers ([default](defaults::RETRY_AFTER)).
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }

    /// Where refused bodies go (default [`DefaultOnRejected`]).
    pub fn on_rejected(mut self, hook: impl OnRejected) -> Self {
        self.on_rejected = Arc::new(hook);
        self
    }

    /// Where notifications go after the handler failed every attempt (default
    /// [`DefaultOnFailed`], an error log).
    pub fn on_failed(mut self, hook: impl OnFailed<E>) -> Self {
        self.on_failed = Arc::new(hook);
        self
    }

    /// Starts the workers and returns the receiver.
    ///
    /// # Errors
    /// When called outside a tokio runtime; with zero workers, a zero queue capacity or a body
    /// limit out of range; without authentication or `allow_unauthenticated`; and when the
    /// settings contradict each other: `durable(store)` with `ack(Memory)` or `ack(Handled)`,
    /// `ack(AckPolicy::Durable)` without a store, `retry` or `handler_timeout` with the
    /// "handled" ack, `dedup_window` without a store. The message says what to change.
    pub fn build(self) -> Result<Receiver<E>, BuildError> {
        let fail = |message| Err(BuildError { message });
        if tokio::runtime::Handle::try_current().is_err() {
            return fail("Receiver::build must be called inside a tokio runtime");
        }
        if self.workers == 0 {
            return fail("workers must be at least 1");
        }
        if self.queue_capacity == 0 {
            return fail("queue_capacity must be at least 1");
        }
        if self.body_limit == 0 || self.body_limit > u32::MAX as usize {
            return fail("body_limit must be between 1 byte and 4 GiB");
        }
        if self.max_bytes_in_flight < self.body_limit {
            return fail("max_bytes_in_flight must be at least body_limit");
        }
        let ack = match (self.ack, &self.store) {
            (None | Some(AckPolicy::Durable), Some(_)) => AckPolicy::Durable,
            (Some(AckPolicy::Durable), None) => {
                return fail(
                    "AckPolicy::Durable needs a store: use durable(store) instead of ack(...)",
                );
            }
            (Some(_), Some(_)) => {
                return fail(
                    "durable(store) chooses the durable ack, and ack(...) chose another: \
                     keep durable(store) to answer once stored, or drop it to answer from memory",
                );
            }
            (None, None) => AckPolicy::Memory,
            (Some(policy), None) => policy,
        };
        if let AckPolicy::Handled { .. } = ack {
            if self.retry.is_some() {
                return fail(
                    "retry(...) does not apply to the \"handled\" ack, where the sender's retry \
                     is the retry: drop it",
                );
            }
            if self.handler_timeout.is_some() {
                return fail(
                    "handler_timeout(...) does not apply to the \"handled\" ack, whose own \
                     timeout bounds the attempt: set it in AckPolicy::handled(timeout)",
                );
            }
        }
        if self.metrics_interval.is_zero() {
            return fail("metrics_interval must be longer than zero");
        }
        if self.dedup_window.is_some() && self.store.is_none() {
            return fail("dedup_window(...) needs a store: use durable(store), or drop it");
        }
        if self.retention.is_some() && self.store.is_none() {
            return fail("retention(...) needs a store: use durable(store), or drop it");
        }
        if self.order.is_some() && self.store.is_none() {
            return fail(
                "ordered_by(...) needs a store, which keeps the order: use durable(store), \
                 or drop it",
            );
        }
        if self.dead_letter_holds_order.is_some() && self.order.is_none() {
            return fail(
                "dead_letter_holds_order(...) applies to ordered delivery: add ordered() or \
                 ordered_by(...), or drop it",
            );
        }
        let auth: Option<Arc<dyn Authorize>> = match (self.check_count, self.unauthenticated) {
            (0, false) => {
                return fail(
                    "no authentication is configured: call authorize(...), or \
                     allow_unauthenticated() to accept anyone who finds the URL",
                );
            }
            (0, true) => {
                tracing::warn!(
                    "the receiver accepts notifications without authentication: \
                     anyone who finds its URL can post one"
                );
                None
            }
            _ => Some(Arc::new(self.checks)),
        };
        let name = self.name.unwrap_or_else(|| E::NAME.replace(' ', "_"));
        let settings = Settings {
            body_limit: self.body_limit,
            ack,
            retry_after: self.retry_after,
            on_rejected: self.on_rejected,
            auth,
            body_timeout: self.body_timeout,
            max_bytes_in_flight: self.max_bytes_in_flight,
            max_header_bytes: self.max_header_bytes,
            intake: Intake::new(self.body_hook, self.keep_headers, &name),
        };
        let workers = WorkerConfig {
            workers: self.workers,
            capacity: self.queue_capacity,
            retry: self.retry.unwrap_or_default(),
            handler_timeout: self.handler_timeout.unwrap_or(defaults::HANDLER_TIMEOUT),
            on_failed: self.on_failed,
            store: self.store,
            claims: self.claims,
            dedup_window: self.dedup_window.unwrap_or(defaults::DEDUP_WINDOW),
            retention: self.retention.unwrap_or(defaults::RETENTION),
            name,
            order: self
                .order
                .map(|key| OrderBy::new(key, self.dead_letter_holds_order.unwrap_or(true))),
        };
        let receiver = Receiver {
            inner: Arc::new(Inner::start(self.handler, settings, workers)),
        };
        #[cfg(feature = "metrics")]
        super::gauges::start(&receiver.inner, self.metrics_interval);
        Ok(receiver)
    }
}
