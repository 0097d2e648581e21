//! Operations on a built receiver: mounting as a layer, stats, shutdown, replay.

use std::sync::Arc;

use super::service::Receiver;
use crate::dispatch::ShutdownHandle;
use crate::event::Event;
use crate::layer::WebhookLayer;
use crate::stats::Stats;
use crate::store::{Appended, Envelope, ErasedStore, RecordId, StoreError, StoreErrorKind};

impl<E: Event> Receiver<E> {
    /// Refuses a record of another receiver's kind, naming the kind.
    fn check_kind(&self, id: RecordId, envelope: &Envelope) -> Result<(), StoreError> {
        let shared = self.inner.queue.shared();
        if shared.owns(envelope) {
            return Ok(());
        }
        Err(StoreError::new(
            StoreErrorKind::NotFound,
            format!(
                "record {id} is a {}, not a {}: replay it on the receiver named {:?}",
                envelope.kind(),
                shared.kind,
                envelope.kind()
            ),
        ))
    }

    /// A layer that answers `path` with this receiver and passes every other request on.
    pub fn layer(&self, path: impl Into<String>) -> WebhookLayer<E> {
        WebhookLayer::new(path, self.clone())
    }

    /// The handle that stops this receiver.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle::new(Arc::clone(self.inner.queue.shared()))
    }

    /// Whether the receiver takes notifications now: started (a durable receiver has read
    /// what it must redeliver) and not stopping. For a readiness probe; the store's own health
    /// is the store's to say (e.g. [`RedbStore::is_recovering`](crate::store::RedbStore::is_recovering)).
    pub fn is_ready(&self) -> bool {
        let shared = self.inner.queue.shared();
        shared.is_ready() && shared.is_accepting()
    }

    /// Waits until every notification accepted so far has been handled, given up on, or handed
    /// back (to the sender with a 503, or to another receiver of a shared store); retries with
    /// backoff count as not yet settled. The 200 comes before the handler runs: a test waits
    /// here before it looks at what the handler did. Keep a clone of the receiver to call it
    /// once the receiver is mounted in a router. Notifications that a durable receiver is
    /// still reading back from its store at start-up count once queued.
    pub async fn idle(&self) {
        self.inner.queue.shared().counters.idle().await;
    }

    /// The receiver's counters: every answer by status and reason, every notification by
    /// what became of it.
    pub fn stats(&self) -> Stats {
        self.inner.queue.shared().stats()
    }

    /// Makes a dead letter pending again and hands it to the handler (durable receivers).
    ///
    /// # Errors
    /// When the receiver has no store, the store fails, no dead letter has this id, or the
    /// stored body is no longer a valid notification.
    pub async fn replay(&self, id: RecordId) -> Result<(), StoreError> {
        let store = self.store()?;
        // A store shared by several receivers: a record goes back to the receiver of its kind.
        if let Some(record) = store.get(id).await? {
            self.check_kind(id, &record.envelope)?;
        }
        let record = store.replay(id).await?;
        self.inner.queue.enqueue_record(record).await
    }

    /// Runs a kept refused body through intake again (after a fix: of the sender, of the
    /// [body hook](crate::ReceiverBuilder::decode_body), of a key) and, if it is valid now,
    /// stores and queues it as a new notification, and forgets the refused copy. Returns the
    /// new record's id, or the existing one's when it was already stored.
    ///
    /// # Errors
    /// When the receiver has no store, the store fails, no refused body has this id, or the
    /// body is still not a valid notification (the error says why).
    pub async fn replay_rejected(&self, id: RecordId) -> Result<RecordId, StoreError> {
        let store = self.store()?;
        let Some(kept) = store.get_rejected(id).await? else {
            return Err(StoreError::new(
                StoreErrorKind::NotFound,
                format!("no refused body {id}"),
            ));
        };
        self.check_kind(id, &kept.envelope)?;
        let decoded = self
            .inner
            .intake
            .decode_kept::<E>(&kept)
            .map_err(|rejection| StoreError::new(StoreErrorKind::Invalid, rejection))?;
        let stored = match self
            .inner
            .queue
            .store_and_enqueue(decoded, kept.envelope.clone())
            .await?
        {
            Appended::Stored(id) | Appended::Duplicate(id) => id,
        };
        store.remove_rejected(id).await?;
        Ok(stored)
    }

    fn store(&self) -> Result<&Arc<dyn ErasedStore>, StoreError> {
        self.inner
            .queue
            .store()
            .ok_or_else(|| StoreError::new(StoreErrorKind::NotFound, "this receiver has no store"))
    }
}
