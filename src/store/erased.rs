//! The erased store: any [`Store`] behind one object-safe trait, boxed futures and all, so that
//! a receiver, or a program holding several, is not generic over its store.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::error::StoreError;
use super::query::{Attempt, RecordPage, RecordQuery};
use super::record::{Appended, Envelope, NewRecord, Record, RecordId, RecordState};
use super::rejected::{RefusedBody, RefusedBodySummary};
use super::summary::StoreSummary;
use super::traits::Store;

/// A boxed future that can be sent between threads: what [`ErasedStore`]'s methods return.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe form of [`Store`]: every store is one (`Arc<dyn ErasedStore>`), and an
/// `Arc<dyn ErasedStore>` is a [`Store`] again. Each method is the [`Store`] method of the same
/// name; see there.
///
/// ```
/// use std::sync::Arc;
/// use airudder_webhook::store::{ErasedStore, RecordQuery, RedbStore, Store};
///
/// # async fn run(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
/// let store: Arc<dyn ErasedStore> = Arc::new(RedbStore::open(dir)?);
/// let first_page = Store::list(&store, RecordQuery::new().limit(10)).await?;
/// # let _ = first_page;
/// # Ok(())
/// # }
/// ```
pub trait ErasedStore: Send + Sync + 'static {
    #[allow(missing_docs)]
    fn append(&self, record: NewRecord) -> BoxFuture<'_, Result<Appended, StoreError>>;
    #[allow(missing_docs)]
    fn begin_attempt(&self, id: RecordId) -> BoxFuture<'_, Result<u32, StoreError>>;
    #[allow(missing_docs)]
    fn complete_all(&self, done: Vec<(RecordId, Attempt)>)
    -> BoxFuture<'_, Result<(), StoreError>>;
    #[allow(missing_docs)]
    fn fail(
        &self,
        id: RecordId,
        attempt: Attempt,
        due: SystemTime,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    #[allow(missing_docs)]
    fn dead_letter(&self, id: RecordId, attempt: Attempt) -> BoxFuture<'_, Result<(), StoreError>>;
    #[allow(missing_docs)]
    fn claim<'a>(
        &'a self,
        kind: &'a str,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<Record>, StoreError>>;
    #[allow(missing_docs)]
    fn claim_and_begin<'a>(
        &'a self,
        kind: &'a str,
        max: usize,
        max_bytes: usize,
        begin: usize,
    ) -> BoxFuture<'a, Result<Vec<Record>, StoreError>>;
    #[allow(missing_docs)]
    fn unclaim(&self, ids: Vec<RecordId>, counted: bool) -> BoxFuture<'_, Result<(), StoreError>>;
    #[allow(missing_docs)]
    fn keys_held_back<'a>(&'a self, kind: &'a str) -> BoxFuture<'a, Result<u64, StoreError>>;
    #[allow(missing_docs)]
    fn pending(&self) -> BoxFuture<'_, Result<Vec<Record>, StoreError>>;
    #[allow(missing_docs)]
    fn dead_letters(&self) -> BoxFuture<'_, Result<Vec<Record>, StoreError>>;
    #[allow(missing_docs)]
    fn list(&self, query: RecordQuery) -> BoxFuture<'_, Result<RecordPage, StoreError>>;
    #[allow(missing_docs)]
    fn count(&self, query: RecordQuery) -> BoxFuture<'_, Result<u64, StoreError>>;
    #[allow(missing_docs)]
    fn summary(&self) -> BoxFuture<'_, Result<StoreSummary, StoreError>>;
    #[allow(missing_docs)]
    fn get(&self, id: RecordId) -> BoxFuture<'_, Result<Option<Record>, StoreError>>;
    #[allow(missing_docs)]
    fn replay(&self, id: RecordId) -> BoxFuture<'_, Result<Record, StoreError>>;
    #[allow(missing_docs)]
    fn make_due(&self, id: RecordId) -> BoxFuture<'_, Result<bool, StoreError>>;
    #[allow(missing_docs)]
    fn purge(&self, id: RecordId) -> BoxFuture<'_, Result<bool, StoreError>>;
    #[allow(missing_docs)]
    fn retry_now(&self, query: RecordQuery) -> BoxFuture<'_, Result<u64, StoreError>>;
    #[allow(missing_docs)]
    fn replay_dead(&self, query: RecordQuery) -> BoxFuture<'_, Result<u64, StoreError>>;
    #[allow(missing_docs)]
    fn purge_before(
        &self,
        state: RecordState,
        before: SystemTime,
    ) -> BoxFuture<'_, Result<u64, StoreError>>;
    #[allow(missing_docs)]
    fn set_paused<'a>(
        &'a self,
        kind: &'a str,
        paused: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    #[allow(missing_docs)]
    fn paused(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;
    #[allow(missing_docs)]
    fn reject(
        &self,
        status: u16,
        reason: String,
        envelope: Envelope,
        body: Bytes,
    ) -> BoxFuture<'_, Result<RecordId, StoreError>>;
    #[allow(missing_docs)]
    fn rejected(&self) -> BoxFuture<'_, Result<Vec<RefusedBody>, StoreError>>;
    #[allow(missing_docs)]
    fn rejected_page(
        &self,
        after: RecordId,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<RefusedBodySummary>, StoreError>>;
    #[allow(missing_docs)]
    fn get_rejected(&self, id: RecordId) -> BoxFuture<'_, Result<Option<RefusedBody>, StoreError>>;
    #[allow(missing_docs)]
    fn remove_rejected(&self, id: RecordId) -> BoxFuture<'_, Result<(), StoreError>>;
    #[allow(missing_docs)]
    fn purge_rejected(&self, before: SystemTime) -> BoxFuture<'_, Result<u64, StoreError>>;
    #[allow(missing_docs)]
    fn prune(&self, before: SystemTime) -> BoxFuture<'_, Result<u64, StoreError>>;
    #[allow(missing_docs)]
    fn renew(&self) -> BoxFuture<'_, Result<u64, StoreError>>;
    #[allow(missing_docs)]
    fn release(&self) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// See [`Store::lease`].
    fn lease(&self) -> Option<Duration>;
}

impl<S: Store> ErasedStore for S {
    fn append(&self, record: NewRecord) -> BoxFuture<'_, Result<Appended, StoreError>> {
        Box::pin(Store::append(self, record))
    }
    fn begin_attempt(&self, id: RecordId) -> BoxFuture<'_, Result<u32, StoreError>> {
        Box::pin(Store::begin_attempt(self, id))
    }
    fn complete_all(
        &self,
        done: Vec<(RecordId, Attempt)>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(Store::complete_all(self, done))
    }
    fn fail(
        &self,
        id: RecordId,
        attempt: Attempt,
        due: SystemTime,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(Store::fail(self, id, attempt, due))
    }
    fn dead_letter(&self, id: RecordId, attempt: Attempt) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(Store::dead_letter(self, id, attempt))
    }
    fn claim<'a>(
        &'a self,
        kind: &'a str,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        Box::pin(Store::claim(self, kind, max))
    }
    fn claim_and_begin<'a>(
        &'a self,
        kind: &'a str,
        max: usize,
        max_bytes: usize,
        begin: usize,
    ) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        Box::pin(Store::claim_and_begin(self, kind, max, max_bytes, begin))
    }
    fn unclaim(&self, ids: Vec<RecordId>, counted: bool) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(Store::unclaim(self, ids, counted))
    }
    fn keys_held_back<'a>(&'a self, kind: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(Store::keys_held_back(self, kind))
    }
    fn pending(&self) -> BoxFuture<'_, Result<Vec<Record>, StoreError>> {
        Box::pin(Store::pending(self))
    }
    fn dead_letters(&self) -> BoxFuture<'_, Result<Vec<Record>, StoreError>> {
        Box::pin(Store::dead_letters(self))
    }
    fn list(&self, query: RecordQuery) -> BoxFuture<'_, Result<RecordPage, StoreError>> {
        Box::pin(Store::list(self, query))
    }
    fn count(&self, query: RecordQuery) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(Store::count(self, query))
    }
    fn summary(&self) -> BoxFuture<'_, Result<StoreSummary, StoreError>> {
        Box::pin(Store::summary(self))
    }
    fn get(&self, id: RecordId) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        Box::pin(Store::get(self, id))
    }
    fn replay(&self, id: RecordId) -> BoxFuture<'_, Result<Record, StoreError>> {
        Box::pin(Store::replay(self, id))
    }
    fn make_due(&self, id: RecordId) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(Store::make_due(self, id))
    }
    fn purge(&self, id: RecordId) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(Store::purge(self, id))
    }
    fn retry_now(&self, query: RecordQuery) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(Store::retry_now(self, query))
    }
    fn replay_dead(&self, query: RecordQuery) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(Store::replay_dead(self, query))
    }
    fn purge_before(
        &self,
        state: RecordState,
        before: SystemTime,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(Store::purge_before(self, state, before))
    }
    fn set_paused<'a>(
        &'a self,
        kind: &'a str,
        paused: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(Store::set_paused(self, kind, paused))
    }
    fn paused(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(Store::paused(self))
    }
    fn reject(
        &self,
        status: u16,
        reason: String,
        envelope: Envelope,
        body: Bytes,
    ) -> BoxFuture<'_, Result<RecordId, StoreError>> {
        Box::pin(Store::reject(self, status, reason, envelope, body))
    }
    fn rejected(&self) -> BoxFuture<'_, Result<Vec<RefusedBody>, StoreError>> {
        Box::pin(Store::rejected(self))
    }
    fn rejected_page(
        &self,
        after: RecordId,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<RefusedBodySummary>, StoreError>> {
        Box::pin(Store::rejected_page(self, after, limit))
    }
    fn get_rejected(&self, id: RecordId) -> BoxFuture<'_, Result<Option<RefusedBody>, StoreError>> {
        Box::pin(Store::get_rejected(self, id))
    }
    fn remove_rejected(&self, id: RecordId) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(Store::remove_rejected(self, id))
    }
    fn purge_rejected(&self, before: SystemTime) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(Store::purge_rejected(self, before))
    }
    fn prune(&self, before: SystemTime) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(Store::prune(self, before))
    }
    fn renew(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(Store::renew(self))
    }
    fn release(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(Store::release(self))
    }
    fn lease(&self) -> Option<Duration> {
        Store::lease(self)
    }
}

/// An erased store is a store again: a receiver takes `Arc<dyn ErasedStore>` as it takes any.
impl Store for Arc<dyn ErasedStore> {
    fn append(
        &self,
        record: NewRecord,
    ) -> impl Future<Output = Result<Appended, StoreError>> + Send {
        ErasedStore::append(&**self, record)
    }
    fn begin_attempt(&self, id: RecordId) -> impl Future<Output = Result<u32, StoreError>> + Send {
        ErasedStore::begin_attempt(&**self, id)
    }
    fn complete_all(
        &self,
        done: Vec<(RecordId, Attempt)>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        ErasedStore::complete_all(&**self, done)
    }
    fn fail(
        &self,
        id: RecordId,
        attempt: Attempt,
        due: SystemTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        ErasedStore::fail(&**self, id, attempt, due)
    }
    fn dead_letter(
        &self,
        id: RecordId,
        attempt: Attempt,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        ErasedStore::dead_letter(&**self, id, attempt)
    }
    fn claim(
        &self,
        kind: &str,
        max: usize,
    ) -> impl Future<Output = Result<Vec<Record>, StoreError>> + Send {
        let kind = kind.to_owned();
        async move { ErasedStore::claim(&**self, &kind, max).await }
    }
    fn claim_and_begin(
        &self,
        kind: &str,
        max: usize,
        max_bytes: usize,
        begin: usize,
    ) -> impl Future<Output = Result<Vec<Record>, StoreError>> + Send {
        let kind = kind.to_owned();
        async move { ErasedStore::claim_and_begin(&**self, &kind, max, max_bytes, begin).await }
    }
    fn unclaim(
        &self,
        ids: Vec<RecordId>,
        counted: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        ErasedStore::unclaim(&**self, ids, counted)
    }
    fn keys_held_back(&self, kind: &str) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let kind = kind.to_owned();
        async move { ErasedStore::keys_held_back(&**self, &kind).await }
    }
    fn pending(&self) -> impl Future<Output = Result<Vec<Record>, StoreError>> + Send {
        ErasedStore::pending(&**self)
    }
    fn dead_letters(&self) -> impl Future<Output = Result<Vec<Record>, StoreError>> + Send {
        ErasedStore::dead_letters(&**self)
    }
    fn list(
        &self,
        query: RecordQuery,
    ) -> impl Future<Output = Result<RecordPage, StoreError>> + Send {
        ErasedStore::list(&**self, query)
    }
    fn count(&self, query: RecordQuery) -> impl Future<Output = Result<u64, StoreError>> + Send {
        ErasedStore::count(&**self, query)
    }
    fn summary(&self) -> impl Future<Output = Result<StoreSummary, StoreError>> + Send {
        ErasedStore::summary(&**self)
    }
    fn get(&self, id: RecordId) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send {
        ErasedStore::get(&**self, id)
    }
    fn replay(&self, id: RecordId) -> impl Future<Output = Result<Record, StoreError>> + Send {
        ErasedStore::replay(&**self, id)
    }
    fn make_due(&self, id: RecordId) -> impl Future<Output = Result<bool, StoreError>> + Send {
        ErasedStore::make_due(&**self, id)
    }
    fn purge(&self, id: RecordId) -> impl Future<Output = Result<bool, StoreError>> + Send {
        ErasedStore::purge(&**self, id)
    }
    fn retry_now(
        &self,
        query: RecordQuery,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        ErasedStore::retry_now(&**self, query)
    }
    fn replay_dead(
        &self,
        query: RecordQuery,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        ErasedStore::replay_dead(&**self, query)
    }
    fn purge_before(
        &self,
        state: RecordState,
        before: SystemTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        ErasedStore::purge_before(&**self, state, before)
    }
    fn set_paused(
        &self,
        kind: &str,
        paused: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let kind = kind.to_owned();
        async move { ErasedStore::set_paused(&**self, &kind, paused).await }
    }
    fn paused(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        ErasedStore::paused(&**self)
    }
    fn reject(
        &self,
        status: u16,
        reason: String,
        envelope: Envelope,
        body: Bytes,
    ) -> impl Future<Output = Result<RecordId, StoreError>> + Send {
        ErasedStore::reject(&**self, status, reason, envelope, body)
    }
    fn rejected(&self) -> impl Future<Output = Result<Vec<RefusedBody>, StoreError>> + Send {
        ErasedStore::rejected(&**self)
    }
    fn rejected_page(
        &self,
        after: RecordId,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RefusedBodySummary>, StoreError>> + Send {
        ErasedStore::rejected_page(&**self, after, limit)
    }
    fn get_rejected(
        &self,
        id: RecordId,
    ) -> impl Future<Output = Result<Option<RefusedBody>, StoreError>> + Send {
        ErasedStore::get_rejected(&**self, id)
    }
    fn remove_rejected(&self, id: RecordId) -> impl Future<Output = Result<(), StoreError>> + Send {
        ErasedStore::remove_rejected(&**self, id)
    }
    fn purge_rejected(
        &self,
        before: SystemTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        ErasedStore::purge_rejected(&**self, before)
    }
    fn prune(&self, before: SystemTime) -> impl Future<Output = Result<u64, StoreError>> + Send {
        ErasedStore::prune(&**self, before)
    }
    fn renew(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        ErasedStore::renew(&**self)
    }
    fn release(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        ErasedStore::release(&**self)
    }
    fn complete(
        &self,
        id: RecordId,
        attempt: Attempt,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        ErasedStore::complete_all(&**self, vec![(id, attempt)])
    }
    fn lease(&self) -> Option<Duration> {
        ErasedStore::lease(&**self)
    }
}
