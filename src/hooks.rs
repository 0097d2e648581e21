//! Hooks: the body hook before decoding, and the hooks for refused bodies and for
//! notifications the handler gave up on.

use std::fmt;
use std::time::SystemTime;

use bytes::Bytes;
use http::request::Parts;

use crate::BoxError;
use crate::event::Event;
use crate::handler::Delivery;
use crate::rejection::Rejection;

/// Transforms a raw body before it is decoded: the seam for an encrypted body (the sender
/// offers AES-encrypted callbacks to some accounts), or any other envelope.
///
/// Any `Fn(&Parts, Bytes) -> Result<Bytes, E>` is a hook. It runs on the request path, after
/// the body is read and before it is parsed; an `Err` answers 400 `body_hook_failed`.
///
/// ```
/// use airudder_webhook::{BodyHook, BoxError};
/// use bytes::Bytes;
///
/// // A toy "cipher" for the example: XOR with a key byte.
/// let decrypt = |_: &http::request::Parts, body: Bytes| -> Result<Bytes, BoxError> {
///     Ok(body.iter().map(|b| b ^ 0x5a).collect::<Vec<u8>>().into())
/// };
/// # fn takes(_: impl BodyHook) {}
/// takes(decrypt);
/// ```
pub trait BodyHook: Send + Sync + 'static {
    /// Returns the bytes to decode.
    ///
    /// # Errors
    /// When the body cannot be transformed; the request is answered 400.
    fn decode_body(&self, request: &Parts, body: Bytes) -> Result<Bytes, BoxError>;
}

impl<F, Err> BodyHook for F
where
    F: Fn(&Parts, Bytes) -> Result<Bytes, Err> + Send + Sync + 'static,
    Err: Into<BoxError>,
{
    fn decode_body(&self, request: &Parts, body: Bytes) -> Result<Bytes, BoxError> {
        self(request, body).map_err(Into::into)
    }
}

/// Called with every body refused for its size, pace or content (400, 408, 413, 422).
///
/// The sender drops a notification after 5 refused retries, so this hook is where an operator
/// can keep the raw bytes to recover it (a durable receiver also keeps them in its store). It runs on the request path: keep it quick (hand the
/// bytes to a channel or a file). Any `Fn(Refusal)` is a hook.
pub trait OnRejected: Send + Sync + 'static {
    /// Receives one refused body.
    fn on_rejected(&self, rejected: Refusal);
}

impl<F> OnRejected for F
where
    F: Fn(Refusal) + Send + Sync + 'static,
{
    fn on_rejected(&self, rejected: Refusal) {
        self(rejected)
    }
}

/// The default [`OnRejected`]: a debug log with the reason and the size, never the bytes. The
/// receiver itself logs every refusal at WARN, at most once a second for each reason.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultOnRejected;

impl OnRejected for DefaultOnRejected {
    fn on_rejected(&self, rejected: Refusal) {
        tracing::debug!(
            status = rejected.rejection.status().as_u16(),
            error = rejected.rejection.code(),
            path = rejected
                .rejection
                .path()
                .map(crate::redact::log_field)
                .as_deref(),
            bytes = rejected.body.as_ref().map(Bytes::len),
            "refused a body: {}",
            crate::LogSafe::new(&rejected.rejection.to_string()).limit(1024),
        );
    }
}

/// A refused body and why it was refused.
#[derive(Clone)]
pub struct Refusal {
    rejection: Rejection,
    body: Option<Bytes>,
    received_at: SystemTime,
}

/// The argument of [`OnRejected`], under its old name.
#[deprecated(since = "0.2.0", note = "renamed to `Refusal`")]
pub type Rejected = Refusal;

impl Refusal {
    pub(crate) fn new(rejection: Rejection, body: Option<Bytes>, received_at: SystemTime) -> Self {
        Self {
            rejection,
            body,
            received_at,
        }
    }

    /// Why the body was refused; also what the sender was answered.
    pub fn rejection(&self) -> &Rejection {
        &self.rejection
    }

    /// The raw bytes of the body, as received; `None` when it was not read whole (too large,
    /// too slow, or the connection failed).
    pub fn body(&self) -> Option<&Bytes> {
        self.body.as_ref()
    }

    /// When the request arrived.
    pub fn received_at(&self) -> SystemTime {
        self.received_at
    }
}

impl fmt::Debug for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refusal")
            .field("rejection", &self.rejection)
            .field("body_len", &self.body.as_ref().map(Bytes::len))
            .field("received_at", &self.received_at)
            .finish()
    }
}

/// Called when the handler has failed every attempt at a notification.
///
/// With the in-memory ack the sender already has its 200 and will not send the notification
/// again: this hook is the last chance to keep it. Any `Fn(FailedDelivery<E>)` is a hook.
pub trait OnFailed<E>: Send + Sync + 'static {
    /// Receives one notification that could not be handled.
    fn on_failed(&self, failed: FailedDelivery<E>);
}

impl<F, E> OnFailed<E> for F
where
    F: Fn(FailedDelivery<E>) + Send + Sync + 'static,
{
    fn on_failed(&self, failed: FailedDelivery<E>) {
        self(failed)
    }
}

/// The default [`OnFailed`]: an error log with the event's id, the attempts and the last error.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultOnFailed;

impl<E: Event> OnFailed<E> for DefaultOnFailed {
    fn on_failed(&self, failed: FailedDelivery<E>) {
        tracing::error!(
            event = E::NAME,
            task_id = &*crate::redact::log_field(failed.delivery.log_id()),
            attempts = failed.delivery.attempt(),
            error = %failed.error,
            "handler gave up on a notification",
        );
    }
}

/// A notification the handler failed on, every attempt.
pub struct FailedDelivery<E> {
    delivery: Delivery<E>,
    error: BoxError,
}

impl<E> FailedDelivery<E> {
    pub(crate) fn new(delivery: Delivery<E>, error: BoxError) -> Self {
        Self { delivery, error }
    }

    /// The last delivery; [`Delivery::attempt`] is the number of attempts made.
    pub fn delivery(&self) -> &Delivery<E> {
        &self.delivery
    }

    /// The error of the last attempt.
    pub fn error(&self) -> &BoxError {
        &self.error
    }

    /// The parts, to keep the notification somewhere.
    pub fn into_parts(self) -> (Delivery<E>, BoxError) {
        (self.delivery, self.error)
    }
}

impl<E: fmt::Debug> fmt::Debug for FailedDelivery<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailedDelivery")
            .field("delivery", &self.delivery)
            .field("error", &self.error)
            .finish()
    }
}

/// Runs a user hook so that its panic is logged instead of killing a worker or dropping a
/// connection without an answer.
pub(crate) fn contain(hook: &'static str, run: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).is_err() {
        tracing::error!(hook, "a hook panicked; carrying on");
    }
}
