//! The user's handler and what it receives.

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, SystemTime};

use crate::BoxError;
use crate::model::TaskNotification;

/// Handles decoded notifications, on the receiver's workers, after the sender has its answer.
///
/// Implement it on your own type, or pass a closure: any
/// `Fn(Delivery<E>) -> impl Future<Output = Result<(), Err>>` is a handler.
///
/// An `Err` (or a panic) is logged with the event's id and retried with backoff; see
/// [`RetryPolicy`](crate::RetryPolicy). A [`GiveUp`] error is not retried. A notification can reach the handler more than once
/// (the sender retries after a lost answer), so make the handler idempotent;
/// [`Delivery::attempt`] says which attempt this is.
///
/// ```
/// use airudder_webhook::{Delivery, HandleNotification, model::TaskNotification};
///
/// struct Outcomes;
///
/// impl HandleNotification for Outcomes {
///     type Error = std::io::Error;
///
///     async fn handle(&self, delivery: Delivery<TaskNotification>) -> Result<(), Self::Error> {
///         for call in &delivery.details {
///             let _ = (&delivery.task_id, call.id, &call.result_label);
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait HandleNotification<E = TaskNotification>: Send + Sync + 'static {
    /// What a failed attempt returns; it is logged and the attempt retried.
    type Error: Into<BoxError>;

    /// Handles one delivery of a notification.
    fn handle(&self, delivery: Delivery<E>)
    -> impl Future<Output = Result<(), Self::Error>> + Send;
}

impl<F, Fut, E, Err> HandleNotification<E> for F
where
    F: Fn(Delivery<E>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Err>> + Send,
    Err: Into<BoxError>,
{
    type Error = Err;

    fn handle(&self, delivery: Delivery<E>) -> impl Future<Output = Result<(), Err>> + Send {
        self(delivery)
    }
}

/// Returned by a handler (as its error, or boxed in a `BoxError`), stops the retries of this
/// notification at once: it goes to the [`OnFailed`](crate::OnFailed) hook, and with the durable
/// ack becomes a dead letter, kept until replayed. For a handler that knows a retry cannot help
/// (the notification is refused for good) or that retries on its own and has run out of time.
///
/// ```
/// use airudder_webhook::{BoxError, Delivery, GiveUp, model::TaskNotification};
///
/// async fn handle(delivery: Delivery<TaskNotification>) -> Result<(), BoxError> {
///     if delivery.details.is_empty() {
///         return Err(GiveUp::new("a notification without calls is of no use to us").into());
///     }
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct GiveUp {
    reason: BoxError,
}

impl GiveUp {
    /// Gives up, for this reason (kept as the dead letter's last error).
    pub fn new(reason: impl Into<BoxError>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "given up: {}", self.reason)
    }
}

impl std::error::Error for GiveUp {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.reason)
    }
}

/// A failed attempt that asks for its next one after a given wait instead of the retry
/// policy's backoff: what a handler returns when the service it calls said when to come back
/// (the relay passes on a `Retry-After`). The wait still ends at the policy's
/// [`retry_for`](crate::RetryPolicy::retry_for) deadline, and the retries still count.
///
/// ```
/// use std::time::Duration;
/// use airudder_webhook::{BoxError, Delivery, RetryLater, model::TaskNotification};
///
/// async fn handle(delivery: Delivery<TaskNotification>) -> Result<(), BoxError> {
///     let busy = delivery.attempt() < 3; // the service answered 429, `Retry-After: 30`
///     if busy {
///         return Err(RetryLater::after(Duration::from_secs(30), "the service answered 429").into());
///     }
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct RetryLater {
    wait: Duration,
    reason: BoxError,
}

impl RetryLater {
    /// Fails this attempt for `reason` (kept as the record's last error); the next one comes
    /// after `wait`.
    pub fn after(wait: Duration, reason: impl Into<BoxError>) -> Self {
        Self {
            wait,
            reason: reason.into(),
        }
    }

    /// The wait asked for.
    pub fn wait(&self) -> Duration {
        self.wait
    }
}

impl fmt::Display for RetryLater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.reason, f)
    }
}

impl std::error::Error for RetryLater {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.reason.source()
    }
}

/// One delivery of a notification to the handler: the event, and which attempt this is.
///
/// It dereferences to the event, so `delivery.task_id` reads the notification's field. Cloning
/// is cheap: the event is shared.
pub struct Delivery<E = TaskNotification> {
    event: Arc<E>,
    attempt: u32,
    received_at: SystemTime,
    /// Where [`report_status`](Self::report_status) writes, for a stored notification.
    status: Option<Arc<AtomicU16>>,
    /// How to complete in the handler's transaction: a record a PostgreSQL store claimed.
    #[cfg(feature = "postgres")]
    completion: Option<crate::store::Completion>,
}

impl<E> Delivery<E> {
    pub(crate) fn new(event: Arc<E>, attempt: u32, received_at: SystemTime) -> Self {
        Self {
            event,
            attempt,
            received_at,
            status: None,
            #[cfg(feature = "postgres")]
            completion: None,
        }
    }

    /// The same delivery, able to complete in the handler's transaction.
    #[cfg(feature = "postgres")]
    pub(crate) fn completing_with(mut self, completion: crate::store::Completion) -> Self {
        self.completion = Some(completion);
        self
    }

    /// The same delivery, keeping the status the handler reports in `status`.
    pub(crate) fn reporting_to(mut self, status: Arc<AtomicU16>) -> Self {
        self.status = Some(status);
        self
    }

    /// Tells the receiver what the service this handler called answered (an HTTP status):
    /// with the durable ack it is kept in the attempt's history, beside its outcome, so that
    /// an operator can see what the service said. Elsewhere it is ignored. The last report of
    /// an attempt counts.
    pub fn report_status(&self, status: u16) {
        if let Some(cell) = &self.status {
            cell.store(status, Ordering::Relaxed);
        }
    }

    /// The decoded notification.
    pub fn event(&self) -> &E {
        &self.event
    }

    /// The notification, shared.
    pub fn into_shared(self) -> Arc<E> {
        self.event
    }

    /// Which attempt this is, from 1. With the durable ack it counts the attempts across
    /// restarts (the store counts each before it runs); otherwise, in this process.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    pub(crate) fn set_attempt(&mut self, attempt: u32) {
        self.attempt = attempt;
    }

    /// When the receiver accepted the request.
    pub fn received_at(&self) -> SystemTime {
        self.received_at
    }
}

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
impl<E> Delivery<E> {
    /// Marks this notification handled inside the handler's transaction (tokio-postgres), so
    /// that it is handled if and only if the handler's own writes commit (feature `postgres`).
    /// Call it last, just before the commit: from here to the commit the notification's row is
    /// locked. After the handler returns `Ok`, the receiver adds the attempt to the record's
    /// history without marking it again. See
    /// [the store's guide](crate::store#completing-in-your-own-transaction).
    ///
    /// `client` is a `tokio_postgres::Transaction` (with deadpool-postgres, `&*transaction`),
    /// or a `Client` inside a transaction begun by hand; on the store's database.
    ///
    /// # Errors
    /// [`StoreErrorKind::NotFound`](crate::store::StoreErrorKind::NotFound) when the
    /// notification is no longer pending under this receiver's claim (handled already, or its
    /// lease lapsed and another receiver took it over): PostgreSQL has aborted the
    /// transaction, so that none of its writes land; return the error (`?`). The same kind
    /// when this delivery holds no claim (see [`completion`](Self::completion)).
    /// [`StoreErrorKind::Unavailable`](crate::store::StoreErrorKind::Unavailable) when the
    /// statement could not run.
    pub async fn complete_in<C>(&self, client: &C) -> Result<(), crate::store::StoreError>
    where
        C: tokio_postgres::GenericClient + Sync,
    {
        self.completion()?.run(client).await
    }

    /// The statement that marks this notification handled, and its parameters, for a driver
    /// other than tokio-postgres (sqlx, diesel, …): run it in the handler's transaction, last
    /// (feature `postgres`). It fails by itself, aborting the transaction, when the
    /// notification is no longer this receiver's. See [`Completion`](crate::store::Completion).
    ///
    /// # Errors
    /// [`StoreErrorKind::NotFound`](crate::store::StoreErrorKind::NotFound) when this delivery
    /// holds no claim to complete: only a durable receiver built with a
    /// [`PostgresStore`](crate::store::PostgresStore) (given to
    /// [`durable`](crate::ReceiverBuilder::durable) as itself) hands on claimed records.
    pub fn completion(&self) -> Result<&crate::store::Completion, crate::store::StoreError> {
        self.completion.as_ref().ok_or_else(|| {
            crate::store::StoreError::new(
                crate::store::StoreErrorKind::NotFound,
                "this delivery holds no claim to complete: only a durable receiver on a \
                 PostgresStore hands on claimed notifications",
            )
        })
    }
}

#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
impl<E> Delivery<E> {
    /// A delivery of `event` made by hand, to unit-test a handler (feature `test-util`):
    /// attempt 1, received now. See [`test_util`](crate::test_util) for valid events.
    pub fn for_test(event: E) -> Self {
        Self::new(Arc::new(event), 1, SystemTime::now())
    }

    /// The same delivery as attempt `attempt` (a retry, a redelivery after a restart).
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// The same delivery, received at `at`.
    pub fn with_received_at(mut self, at: SystemTime) -> Self {
        self.received_at = at;
        self
    }
}

impl<E> Deref for Delivery<E> {
    type Target = E;

    fn deref(&self) -> &E {
        &self.event
    }
}

impl<E> Clone for Delivery<E> {
    fn clone(&self) -> Self {
        Self {
            event: Arc::clone(&self.event),
            attempt: self.attempt,
            received_at: self.received_at,
            status: self.status.clone(),
            #[cfg(feature = "postgres")]
            completion: self.completion.clone(),
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for Delivery<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("attempt", &self.attempt)
            .field("received_at", &self.received_at)
            .field("event", &self.event)
            .finish()
    }
}
