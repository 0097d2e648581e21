//! The builder, its defaults, and the ack policies.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::auth::{AllOf, Authorize};
use crate::decode::DecodeBody;
use crate::dispatch::{Queue, RetryPolicy, WorkerConfig};
use crate::event::Event;
use crate::handler::HandleNotification;
use crate::hooks::{DefaultOnFailed, DefaultOnRejected, OnFailed, OnRejected};
use crate::store::{ErasedStore, Store};

use super::service::Inner;
use super::*;

/// The default body limit: 32 MiB, room for a 10,000-call notification (about 17 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 32 * 1024 * 1024;

/// When the receiver answers 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AckPolicy {
    /// Answer 200 as soon as the notification is in the bounded in-memory queue (503 when the
    /// queue is full). Fast; a crash loses what is queued but not yet handled.
    Memory,
    /// Answer only once the handler has returned: 200 on success, 503 on an error, a panic or
    /// after `timeout` (the handler is then cancelled), so that the sender retries. Slower
    /// answers; nothing is acknowledged before it is handled. The handler must be idempotent:
    /// work it finished before a timeout is done again on the retry.
    Handled {
        /// How long the request waits for the handler, queue time included.
        timeout: Duration,
    },
    /// Answer 200 once the notification is stored and fsynced (set by
    /// [`ReceiverBuilder::durable`]): nothing acknowledged is lost to a crash, duplicates are
    /// handled once, failures end as dead letters. See [`store`](crate::store).
    Durable,
}

impl AckPolicy {
    /// [`AckPolicy::Handled`] with this timeout.
    pub fn handled(timeout: Duration) -> Self {
        Self::Handled { timeout }
    }
}

/// A receiver that could not be built.
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

/// Configures a [`Receiver`]. Every setting has a production default.
#[must_use]
pub struct ReceiverBuilder<E, H> {
    handler: H,
    body_limit: usize,
    workers: usize,
    queue_capacity: usize,
    ack: AckPolicy,
    retry: RetryPolicy,
    handler_timeout: Duration,
    retry_after: Duration,
    on_rejected: Arc<dyn OnRejected>,
    on_failed: Arc<dyn OnFailed<E>>,
    checks: AllOf,
    check_count: usize,
    unauthenticated: bool,
    body_timeout: Duration,
    max_bytes_in_flight: usize,
    max_header_bytes: usize,
    body_hook: Option<Arc<dyn DecodeBody>>,
    store: Option<Arc<dyn ErasedStore>>,
    dedup_window: Duration,
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
            .field("durable", &self.store.is_some())
            .field("dedup_window", &self.dedup_window)
            .finish_non_exhaustive()
    }
}

impl<E: Event, H: HandleNotification<E>> ReceiverBuilder<E, H> {
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

    /// How long a body may take to arrive once the head is in (default 30 s); slower is 408.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// The cap on the bytes of the notifications the receiver holds at once, across all
    /// requests (default 256 MiB), counted as the size of their bodies from the first byte read
    /// until the handler is done: a request that would pass it is answered 503 and retried by
    /// the sender. At least the body limit.
    pub fn max_bytes_in_flight(mut self, bytes: usize) -> Self {
        self.max_bytes_in_flight = bytes;
        self
    }

    /// The largest request head (target and headers) accepted (default 64 KiB); larger is 431.
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes;
        self
    }

    /// Stores every notification in `store`, fsynced, before answering 200, and feeds the
    /// handler from there ([`AckPolicy::Durable`]). See [`store`](crate::store).
    pub fn durable(mut self, store: impl Store) -> Self {
        self.store = Some(Arc::new(store));
        self.ack = AckPolicy::Durable;
        self
    }

    /// How long a durable receiver remembers a handled notification's key to recognise a
    /// duplicate (default 24 hours).
    pub fn dedup_window(mut self, window: Duration) -> Self {
        self.dedup_window = window;
        self
    }

    /// Transforms the raw body before it is decoded, e.g. to decrypt it. An error answers
    /// 400; the rejected hook still receives the raw bytes.
    pub fn decode_body(mut self, hook: impl DecodeBody) -> Self {
        self.body_hook = Some(Arc::new(hook));
        self
    }

    /// The largest body accepted, in bytes (default [`DEFAULT_BODY_LIMIT`]); larger is 413.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// How many handler calls run at once (default 4).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// How many notifications wait for a worker before the receiver answers 503 (default 1024).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// When to answer 200 (default [`AckPolicy::Memory`]).
    pub fn ack(mut self, policy: AckPolicy) -> Self {
        self.ack = policy;
        self
    }

    /// How a failed handler is retried with [`AckPolicy::Memory`] and [`AckPolicy::Durable`]
    /// (default [`RetryPolicy::default`]); durable attempts count across restarts. With
    /// [`AckPolicy::Handled`] the sender's retry is the retry.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How long one handler attempt may run before it is cancelled and counted as failed, with
    /// [`AckPolicy::Memory`] and [`AckPolicy::Durable`] (default 5 minutes).
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.handler_timeout = timeout;
        self
    }

    /// The `Retry-After` of 503 answers (default 60 s: the sender retries every minute).
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }

    /// Where refused bodies go (default [`DefaultOnRejected`], a warning log).
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
    /// When called outside a tokio runtime, or with zero workers, a zero queue capacity or a
    /// zero body limit.
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
        let store = match (self.ack, self.store) {
            (AckPolicy::Durable, None) => {
                return fail("AckPolicy::Durable needs a store: use durable(store)");
            }
            (AckPolicy::Durable, store) => store,
            // Another policy chosen after durable(): the store is not used.
            (_, _) => None,
        };
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
        let queue = Queue::start(
            self.handler,
            WorkerConfig {
                workers: self.workers,
                capacity: self.queue_capacity,
                retry: self.retry,
                handler_timeout: self.handler_timeout,
                on_failed: self.on_failed,
                store,
                dedup_window: self.dedup_window,
            },
        );
        Ok(Receiver {
            inner: Arc::new(Inner {
                body_limit: self.body_limit,
                ack: self.ack,
                retry_after: self.retry_after,
                on_rejected: self.on_rejected,
                auth,
                body_timeout: self.body_timeout,
                in_flight: Arc::new(Semaphore::new(
                    self.max_bytes_in_flight.min(Semaphore::MAX_PERMITS),
                )),
                max_header_bytes: self.max_header_bytes,
                body_hook: self.body_hook,
                queue,
            }),
        })
    }
}

impl<E: Event> Receiver<E> {
    /// A builder for a receiver of any [`Event`] type.
    pub fn builder_for<H>(handler: H) -> ReceiverBuilder<E, H>
    where
        H: HandleNotification<E>,
    {
        ReceiverBuilder {
            handler,
            body_limit: DEFAULT_BODY_LIMIT,
            workers: 4,
            queue_capacity: 1024,
            ack: AckPolicy::Memory,
            retry: RetryPolicy::default(),
            handler_timeout: Duration::from_secs(300),
            retry_after: Duration::from_secs(60),
            on_rejected: Arc::new(DefaultOnRejected),
            on_failed: Arc::new(DefaultOnFailed),
            checks: AllOf::new(),
            check_count: 0,
            unauthenticated: false,
            body_timeout: Duration::from_secs(30),
            max_bytes_in_flight: 256 * 1024 * 1024,
            max_header_bytes: 64 * 1024,
            body_hook: None,
            store: None,
            dedup_window: Duration::from_secs(24 * 3600),
        }
    }
}
