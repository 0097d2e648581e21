//! Ordered delivery per key ([`ReceiverBuilder::ordered_by`](crate::ReceiverBuilder::ordered_by)):
//! what the receiver keeps of it. The order itself is kept by the store: each record carries
//! its key ([`NewRecord::ordered`]), and a claim hands out only the first pending record of
//! each key, so the next one waits, on disk, until the one before it is handled (or is a dead
//! letter that does not hold its key). Order then holds across retries, restarts and
//! receivers sharing a store.

use std::fmt;
use std::sync::Arc;

use crate::store::NewRecord;

/// The function that gives an event's key.
pub(crate) type KeyOf<E> = Arc<dyn Fn(&E) -> Option<String> + Send + Sync>;

/// How a receiver orders its notifications.
pub(crate) struct OrderBy<E> {
    key: KeyOf<E>,
    dead_letter_holds: bool,
}

impl<E> OrderBy<E> {
    pub(crate) fn new(key: KeyOf<E>, dead_letter_holds: bool) -> Self {
        Self {
            key,
            dead_letter_holds,
        }
    }

    /// `record`, ordered by `event`'s key if it has one.
    pub(crate) fn apply(&self, event: &E, record: NewRecord) -> NewRecord {
        match (self.key)(event) {
            Some(key) => record.ordered(key, self.dead_letter_holds),
            None => record,
        }
    }
}

impl<E> fmt::Debug for OrderBy<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrderBy")
            .field("dead_letter_holds", &self.dead_letter_holds)
            .finish_non_exhaustive()
    }
}
