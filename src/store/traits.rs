//! The [`Store`] trait: where the durable receiver keeps notifications.

use std::future::Future;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::error::{StoreError, StoreErrorKind};
use super::record::{Appended, Envelope, NewRecord, Record, RecordId};
use super::rejected::{RejectedRecord, RejectedSummary};
use super::summary::StoreSummary;

/// Where the durable receiver keeps notifications. See the [module guide](crate::store).
///
/// Every method that changes the store is durable when its future completes. Implementations
/// must make [`append`](Store::append) atomic: of two appends with the same key, at the same
/// instant or not, one stores and the other reports [`Appended::Duplicate`].
pub trait Store: Send + Sync + 'static {
    /// Stores a notification unless its key is already claimed. A stored notification counts
    /// its first attempt as started (the receiver hands it to the handler at once).
    fn append(
        &self,
        record: NewRecord,
    ) -> impl Future<Output = Result<Appended, StoreError>> + Send;

    /// Counts a started attempt after the first (a retry, or a redelivery after a restart, so
    /// that a crash mid-attempt still counts); returns the attempt number.
    fn begin_attempt(&self, id: RecordId) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// The handler succeeded: the record is done (its key stays claimed). The receiver does not
    /// wait for this one: lost to a crash, it means one more delivery, never a lost one.
    fn complete(&self, id: RecordId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// [`complete`](Store::complete) for several records, ideally in one write. The default
    /// starts every completion before it awaits any, so a store that commits in groups commits
    /// them together. A record already done is no error.
    fn complete_all(
        &self,
        ids: Vec<RecordId>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let writes: Vec<_> = ids.into_iter().map(|id| self.complete(id)).collect();
        async move {
            let mut first_error = None;
            for write in writes {
                match write.await {
                    Err(err) if err.kind() != StoreErrorKind::NotFound => {
                        first_error.get_or_insert(err);
                    }
                    _ => {}
                }
            }
            first_error.map_or(Ok(()), Err)
        }
    }

    /// An attempt failed; the record stays pending, with the error kept.
    fn fail(
        &self,
        id: RecordId,
        error: String,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The last attempt failed: the record becomes a dead letter, with the error kept.
    fn dead_letter(
        &self,
        id: RecordId,
        error: String,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every pending record, oldest first: what a restart hands to the handler again.
    fn pending(&self) -> impl Future<Output = Result<Vec<Record>, StoreError>> + Send;

    /// Every dead letter, oldest first.
    fn dead_letters(&self) -> impl Future<Output = Result<Vec<Record>, StoreError>> + Send;

    /// How many records are pending and dead, and since when the oldest pending one waits. The
    /// receiver samples it in the background for its gauges (feature `metrics`). The default
    /// reads [`pending`](Store::pending) and [`dead_letters`](Store::dead_letters); a store
    /// that can count without reading bodies should.
    fn summary(&self) -> impl Future<Output = Result<StoreSummary, StoreError>> + Send {
        async {
            let pending = self.pending().await?;
            let dead = self.dead_letters().await?;
            let oldest = pending
                .iter()
                .map(|record| record.envelope.received_at())
                .min();
            Ok(StoreSummary::new(
                pending.len() as u64,
                dead.len() as u64,
                oldest,
            ))
        }
    }

    /// One record, pending or dead.
    fn get(&self, id: RecordId) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send;

    /// Makes a dead letter pending again, attempts reset; returns it.
    fn replay(&self, id: RecordId) -> impl Future<Output = Result<Record, StoreError>> + Send;

    /// Keeps a refused body. A store with [limits](crate::store::RejectedLimits) drops the
    /// oldest kept ones to make room, and refuses a body over its cap on its own with
    /// [`StoreErrorKind::Invalid`].
    fn reject(
        &self,
        status: u16,
        reason: String,
        envelope: Envelope,
        body: Bytes,
    ) -> impl Future<Output = Result<RecordId, StoreError>> + Send;

    /// Every kept refused body, oldest first, bytes included: it reads every body, so it
    /// suits tests and small stores. A list for people pages with
    /// [`rejected_page`](Store::rejected_page) instead.
    fn rejected(&self) -> impl Future<Output = Result<Vec<RejectedRecord>, StoreError>> + Send;

    /// Up to `limit` kept refused bodies with ids after `after`, oldest first, without their
    /// bytes: pass 0 for the first page, then the last id of each page.
    ///
    /// The default filters [`rejected`](Store::rejected), reading every body; a store that
    /// can list without reading bodies should (the bundled stores do).
    fn rejected_page(
        &self,
        after: RecordId,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RejectedSummary>, StoreError>> + Send {
        async move {
            Ok(self
                .rejected()
                .await?
                .into_iter()
                .filter(|kept| kept.id > after)
                .take(limit)
                .map(RejectedSummary::from)
                .collect())
        }
    }

    /// One kept refused body, bytes included; `None` when none has this id.
    ///
    /// The default finds it in [`rejected`](Store::rejected), reading every body; a store
    /// that can read one by its id should (the bundled stores do).
    fn get_rejected(
        &self,
        id: RecordId,
    ) -> impl Future<Output = Result<Option<RejectedRecord>, StoreError>> + Send {
        async move {
            Ok(self
                .rejected()
                .await?
                .into_iter()
                .find(|kept| kept.id == id))
        }
    }

    /// Forgets a kept refused body (after it was recovered).
    fn remove_rejected(&self, id: RecordId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets de-duplication keys of done notifications claimed before `before`; returns how
    /// many.
    fn prune(&self, before: SystemTime) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// How long a claim lasts, for a store that several receivers share (`None`, the
    /// default, for a store of one receiver alone).
    ///
    /// A shared store's records are claimed: [`append`](Store::append) and
    /// [`replay`](Store::replay) claim for this store, [`begin_attempt`](Store::begin_attempt)
    /// fails with [`StoreErrorKind::NotFound`] once the claim was taken over. The receiver
    /// then [renews](Store::renew) its claims every third of the lease,
    /// [claims](Store::claim) the records whose claim lapsed (instead of reading
    /// [`pending`](Store::pending) once at start), and [releases](Store::release) its claims
    /// when it shuts down.
    fn lease(&self) -> Option<Duration> {
        None
    }

    /// Claims up to `max` pending records of `kind` ([`Envelope::kind`]) that nobody holds a
    /// live claim on, oldest first: each receiver of a shared store claims only its own.
    fn claim(
        &self,
        kind: &str,
        max: usize,
    ) -> impl Future<Output = Result<Vec<Record>, StoreError>> + Send {
        let _ = (kind, max);
        async { Ok(Vec::new()) }
    }

    /// Extends every claim this store holds by one lease; returns how many.
    fn renew(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        async { Ok(0) }
    }

    /// Gives up every claim this store holds (at shutdown), so that another receiver, or
    /// this one started again, takes them at once; returns how many.
    fn release(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        async { Ok(0) }
    }
}
