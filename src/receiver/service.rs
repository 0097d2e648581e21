//! `Receiver`: its methods, and the `Service` impl that answers the sender.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use tower_service::Service;
use tracing::Instrument;

use super::builder::ReceiverBuilder;
use super::future::{ResponseFuture, State};
use super::router::WebhookLayer;
use super::state::Receiver;
use crate::BoxError;
use crate::body::ReceiverBody;
use crate::dispatch::ShutdownHandle;
use crate::event::Event;
use crate::handler::HandleNotification;
use crate::model::TaskNotification;
use crate::stats::Stats;
use crate::store::{
    Appended, Envelope, ErasedStore, RecordId, RecordQuery, RecordState, StoreError, StoreErrorKind,
};

impl Receiver<TaskNotification> {
    /// A builder for a receiver of task notifications; see [`Receiver::builder_for`] for
    /// another event type.
    pub fn builder<H>(handler: H) -> ReceiverBuilder<TaskNotification, H>
    where
        H: HandleNotification<TaskNotification>,
    {
        Self::builder_for(handler)
    }
}

impl<E: Event> Receiver<E> {
    /// A builder for a receiver of any [`Event`] type.
    pub fn builder_for<H>(handler: H) -> ReceiverBuilder<E, H>
    where
        H: HandleNotification<E>,
    {
        ReceiverBuilder::new(handler)
    }

    /// Refuses a record of another receiver's kind, naming the kind.
    fn check_kind(&self, id: RecordId, envelope: &Envelope) -> Result<(), StoreError> {
        let queue = self.inner.queue();
        if queue.owns(envelope) {
            return Ok(());
        }
        Err(StoreError::new(
            StoreErrorKind::NotFound,
            format!(
                "record {id} is a {}, not a {}: replay it on the receiver named {:?}",
                envelope.kind(),
                queue.kind(),
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
        self.inner.shutdown_handle()
    }

    /// Whether the receiver takes notifications now: not stopping. (A durable receiver is ready
    /// as soon as it is built: what it must redeliver waits in its store, for the workers to
    /// claim.) For a readiness probe; the store's own health
    /// is the store's to say (e.g. [`RedbStore::is_recovering`](crate::store::RedbStore::is_recovering)).
    pub fn is_ready(&self) -> bool {
        self.inner.is_accepting()
    }

    /// Waits until every notification accepted so far has been handled, given up on, or handed
    /// back (to the sender with a 503, or to another receiver of a shared store); retries with
    /// backoff count as not yet settled. The 200 comes before the handler runs: a test waits
    /// here before it looks at what the handler did. Keep a clone of the receiver to call it
    /// once the receiver is mounted in a router.
    ///
    /// A durable receiver also waits until its store holds no pending record of its kind
    /// (counting them every 10 ms): those waiting for a worker or for their next attempt,
    /// and those whose outcome is still being written. While its kind is
    /// [paused](crate::store::Store::set_paused), that is forever.
    pub async fn idle(&self) {
        let queue = self.inner.queue();
        loop {
            self.inner.counters().idle().await;
            let Some(store) = queue.store() else {
                return;
            };
            let query = RecordQuery::new()
                .state(RecordState::Pending)
                .kind(queue.kind());
            // A count is read from an index; a list could end on its scan cap, empty.
            match store.count(query).await {
                Ok(0) => return,
                Ok(_) => {}
                Err(err) => tracing::debug!(error = %err, "idle: could not read the store"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// The receiver's counters: every answer by status and reason, every notification by
    /// what became of it.
    pub fn stats(&self) -> Stats {
        self.inner.counters().snapshot()
    }

    /// Makes a dead letter (or a handled notification) pending again, due at once, attempts
    /// reset; the workers claim it from the store at once (durable receivers). A body that is
    /// no longer a valid notification becomes a dead letter again, with the reason.
    ///
    /// # Errors
    /// When the receiver has no store, the store fails, or no dead letter or handled
    /// notification of this receiver's kind has this id.
    pub async fn replay(&self, id: RecordId) -> Result<(), StoreError> {
        let store = self.store()?;
        // A store shared by several receivers: a record goes back to the receiver of its kind.
        if let Some(record) = store.get(id).await? {
            self.check_kind(id, &record.envelope)?;
        }
        store.replay(id).await?;
        self.inner.queue().wake_feeder();
        Ok(())
    }

    /// Pauses (or resumes) handing this receiver's notifications to its handler. While paused
    /// they are still accepted, stored and answered 200, and the receiver stays ready; they
    /// are handed on after the resume, in order of their due time. Kept in the store, so it
    /// holds across restarts and for every receiver sharing the store (they see it within a
    /// second); this receiver at once.
    ///
    /// # Errors
    /// When the receiver has no store, or the store fails.
    pub async fn set_paused(&self, paused: bool) -> Result<(), StoreError> {
        let store = self.store()?;
        let queue = self.inner.queue();
        store.set_paused(queue.kind(), paused).await?;
        queue.set_paused(paused);
        Ok(())
    }

    /// Runs a kept refused body through intake again (after a fix: of the sender, of the
    /// [body hook](crate::ReceiverBuilder::body_hook), of a key) and, if it is valid now,
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
            .intake()
            .decode_kept::<E>(&kept)
            .map_err(|rejection| StoreError::new(StoreErrorKind::Invalid, rejection))?;
        let stored = match self
            .inner
            .queue()
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
            .queue()
            .store()
            .ok_or_else(|| StoreError::new(StoreErrorKind::NotFound, "this receiver has no store"))
    }
}

impl<E, B> Service<Request<B>> for Receiver<E>
where
    E: Event,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<ReceiverBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Overload is answered with 503, never by holding the connection.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> ResponseFuture {
        let started = std::time::Instant::now();
        let span = tracing::info_span!(
            "airudder_notification",
            event = E::NAME,
            task_id = tracing::field::Empty,
            calls = tracing::field::Empty,
            status = tracing::field::Empty,
            outcome = tracing::field::Empty,
            answer_us = tracing::field::Empty,
        );
        let (parts, body) = request.into_parts();
        // Admission is decided on the head alone, before any future is made: a refusal here
        // allocates nothing, and the future of an admitted request holds only what it needs.
        let state = match self.inner.admit(&parts) {
            Ok(()) => State::Running(Box::pin(
                Arc::clone(&self.inner)
                    .accept(parts, body)
                    .instrument(span.clone()),
            )),
            Err(rejection) => State::Refused(rejection),
        };
        ResponseFuture {
            state,
            started,
            span,
            retry_after: self.inner.retry_after(),
            counters: Arc::clone(self.inner.counters()),
        }
    }
}
