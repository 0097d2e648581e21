//! The ack policies: when the receiver answers 200.

use std::time::Duration;

/// When the receiver answers 200.
///
/// Choose [`Memory`](Self::Memory) or [`Handled`](Self::Handled) with
/// [`ReceiverBuilder::ack`](crate::ReceiverBuilder::ack), and the durable ack with [`ReceiverBuilder::durable`](crate::ReceiverBuilder::durable), which takes
/// its store: the two cannot be combined, and [`build`](crate::ReceiverBuilder::build) says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AckPolicy {
    /// Answer 200 as soon as the notification is in the bounded in-memory queue (503 when the
    /// queue is full), the default. Fast; a crash loses what is queued but not yet handled.
    /// A failed handler is retried ([`ReceiverBuilder::retry`](crate::ReceiverBuilder::retry)), then given to the
    /// [`OnFailed`](crate::OnFailed) hook.
    Memory,
    /// Answer only once the handler has returned: 200 on success, 503 on an error, a panic or
    /// after `timeout` (the handler is then cancelled), so that the sender retries. Slower
    /// answers; nothing is acknowledged before it is handled. The handler must be idempotent:
    /// work it finished before a timeout is done again on the retry. The sender's retry is
    /// the retry: [`ReceiverBuilder::retry`](crate::ReceiverBuilder::retry) and [`ReceiverBuilder::handler_timeout`](crate::ReceiverBuilder::handler_timeout) do not
    /// apply, and `build` refuses them. The [`OnFailed`](crate::OnFailed) hook is never called: a notification
    /// the handler fails on was answered 503 and stays with the sender.
    Handled {
        /// How long the request waits for the handler, queue time included.
        timeout: Duration,
    },
    /// Answer 200 once the notification is stored and fsynced (chosen by
    /// [`ReceiverBuilder::durable`](crate::ReceiverBuilder::durable)): nothing acknowledged is lost to a crash, duplicates are
    /// handled once, failures end as dead letters. See [`store`](crate::store).
    Durable,
}

impl AckPolicy {
    /// [`AckPolicy::Handled`] with this timeout.
    pub fn handled(timeout: Duration) -> Self {
        Self::Handled { timeout }
    }
}
