//! Operations on a built receiver: stats, shutdown, replay.

use std::sync::Arc;

use crate::dispatch::{ShutdownHandle, Stats};
use crate::event::Event;
use crate::layer::WebhookLayer;
use crate::store::{Appended, ErasedStore, NewRecord, RecordId, StoreError, StoreErrorKind};

use super::*;

impl<E: Event> Receiver<E> {
    /// A layer that answers `path` with this receiver and passes every other request on.
    pub fn layer(&self, path: impl Into<String>) -> WebhookLayer<E> {
        WebhookLayer::new(path, self.clone())
    }

    /// The handle that stops this receiver.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle::new(Arc::clone(&self.inner.queue.shared))
    }

    /// The receiver's counters.
    pub fn stats(&self) -> Stats {
        self.inner.queue.shared.stats()
    }

    /// Makes a dead letter pending again and hands it to the handler (durable receivers).
    ///
    /// # Errors
    /// When the receiver has no store, the store fails, no dead letter has this id, or the
    /// stored body is no longer a valid notification.
    pub async fn replay(&self, id: RecordId) -> Result<(), StoreError> {
        let store = self.store()?;
        let record = store.replay(id).await?;
        self.inner.queue.enqueue_stored(record).await
    }

    /// Decodes a kept refused body again (after a fix) and, if it is now valid, stores and
    /// queues it as a new notification, and forgets the refused copy. Returns the new record's
    /// id, or the existing one's when it was already stored.
    ///
    /// # Errors
    /// When the receiver has no store, the store fails, no refused body has this id, or the
    /// body is still not a valid notification.
    pub async fn replay_rejected(&self, id: RecordId) -> Result<RecordId, StoreError> {
        let store = self.store()?;
        let rejected = store.rejected().await?;
        let Some(kept) = rejected.into_iter().find(|r| r.id == id) else {
            return Err(StoreError::new(
                StoreErrorKind::NotFound,
                format!("no refused body {id}"),
            ));
        };
        let event =
            E::decode(&kept.body).map_err(|err| StoreError::new(StoreErrorKind::Invalid, err))?;
        let record = NewRecord {
            key: event.dedup_key(),
            body: kept.body.clone(),
            envelope: kept.envelope.clone(),
        };
        let new_id = match store.append(record).await? {
            Appended::Stored(new_id) => {
                let record = store
                    .get(new_id)
                    .await?
                    .ok_or_else(|| StoreError::bare(StoreErrorKind::NotFound))?;
                self.inner.queue.enqueue_stored(record).await?;
                new_id
            }
            Appended::Duplicate(existing) => existing,
        };
        store.remove_rejected(id).await?;
        Ok(new_id)
    }

    fn store(&self) -> Result<&Arc<dyn ErasedStore>, StoreError> {
        self.inner
            .queue
            .store
            .as_ref()
            .ok_or_else(|| StoreError::new(StoreErrorKind::NotFound, "this receiver has no store"))
    }
}
