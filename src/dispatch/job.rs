//! A notification on its way to the handler.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::time::Instant;

use crate::rejection::Rejection;
use crate::store::RecordId;

pub(crate) struct Job<E> {
    pub(super) event: Arc<E>,
    pub(super) received_at: SystemTime,
    /// Set for the "handled" ack: the request waits for the outcome.
    pub(super) reply: Option<oneshot::Sender<Result<(), Rejection>>>,
    pub(super) deadline: Option<Instant>,
    /// The body's share of the receiver's memory cap, given back once the job is done.
    pub(super) memory: Option<OwnedSemaphorePermit>,
    /// The stored record, with the durable ack.
    pub(super) record: Option<RecordId>,
    /// Whether the store already counts the first attempt (a notification just stored).
    pub(super) first_counted: bool,
}
