//! A notification on its way to the handler, and where it came from.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::time::Instant;

use crate::rejection::Rejection;
use crate::store::RecordId;

/// One notification for the workers.
pub(crate) struct Job<E> {
    pub(super) event: Arc<E>,
    pub(super) received_at: SystemTime,
    /// The body's share of the receiver's memory cap, given back once the job is done.
    pub(super) memory: Option<OwnedSemaphorePermit>,
    pub(super) origin: Origin,
}

/// Where a job came from, which decides how its attempts are counted and its outcome kept.
pub(crate) enum Origin {
    /// The memory ack: the sender has its 200; retried here, given up to the failed hook.
    Answered,
    /// The "handled" ack: the request waits for the one attempt's outcome until `deadline`.
    Waiting {
        reply: oneshot::Sender<Result<(), Rejection>>,
        deadline: Instant,
    },
    /// A stored record (the durable ack, redelivery, replay): attempts are counted in the
    /// store, the outcome is written there. `attempt` is the attempt about to start, already
    /// counted: as the record was stored (a notification just received, started at once), or
    /// by the claim that took it.
    Stored { id: RecordId, attempt: u32 },
}

impl<E> Job<E> {
    pub(super) fn new(
        event: Arc<E>,
        received_at: SystemTime,
        memory: Option<OwnedSemaphorePermit>,
        origin: Origin,
    ) -> Self {
        Self {
            event,
            received_at,
            memory,
            origin,
        }
    }

    /// The stored record, if the job has one.
    pub(super) fn record(&self) -> Option<RecordId> {
        match self.origin {
            Origin::Stored { id, .. } => Some(id),
            _ => None,
        }
    }
}
