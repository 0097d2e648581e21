//! The erased store: any [`Store`] behind one object-safe trait, boxed futures and all.

use std::future::Future;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::error::StoreError;
use super::record::{Appended, Envelope, NewRecord, Record, RecordId};
use super::rejected::RejectedRecord;
use super::summary::StoreSummary;
use super::traits::Store;

/// The object-safe form of [`Store`], so that the receiver is not generic over it.
pub(crate) trait ErasedStore: Send + Sync + 'static {
    fn append(&self, record: NewRecord) -> BoxFuture<'_, Result<Appended, StoreError>>;
    fn begin_attempt(&self, id: RecordId) -> BoxFuture<'_, Result<u32, StoreError>>;
    fn complete_all(&self, ids: Vec<RecordId>) -> BoxFuture<'_, Result<(), StoreError>>;
    fn fail(&self, id: RecordId, error: String) -> BoxFuture<'_, Result<(), StoreError>>;
    fn dead_letter(&self, id: RecordId, error: String) -> BoxFuture<'_, Result<(), StoreError>>;
    fn pending(&self) -> BoxFuture<'_, Result<Vec<Record>, StoreError>>;
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    fn summary(&self) -> BoxFuture<'_, Result<StoreSummary, StoreError>>;
    fn get(&self, id: RecordId) -> BoxFuture<'_, Result<Option<Record>, StoreError>>;
    fn replay(&self, id: RecordId) -> BoxFuture<'_, Result<Record, StoreError>>;
    fn get_rejected(
        &self,
        id: RecordId,
    ) -> BoxFuture<'_, Result<Option<RejectedRecord>, StoreError>>;
    fn remove_rejected(&self, id: RecordId) -> BoxFuture<'_, Result<(), StoreError>>;
    fn reject(
        &self,
        status: u16,
        reason: String,
        envelope: Envelope,
        body: Bytes,
    ) -> BoxFuture<'_, Result<RecordId, StoreError>>;
    fn prune(&self, before: SystemTime) -> BoxFuture<'_, Result<u64, StoreError>>;
    fn lease(&self) -> Option<Duration>;
    fn claim<'a>(
        &'a self,
        kind: &'a str,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<Record>, StoreError>>;
    fn renew(&self) -> BoxFuture<'_, Result<u64, StoreError>>;
    fn release(&self) -> BoxFuture<'_, Result<u64, StoreError>>;
}

pub(crate) type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl<S: Store> ErasedStore for S {
    fn append(&self, record: NewRecord) -> BoxFuture<'_, Result<Appended, StoreError>> {
        Box::pin(Store::append(self, record))
    }
    fn begin_attempt(&self, id: RecordId) -> BoxFuture<'_, Result<u32, StoreError>> {
        Box::pin(Store::begin_attempt(self, id))
    }
    fn complete_all(&self, ids: Vec<RecordId>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(Store::complete_all(self, ids))
    }
    fn fail(&self, id: RecordId, error: String) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(Store::fail(self, id, error))
    }
    fn dead_letter(&self, id: RecordId, error: String) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(Store::dead_letter(self, id, error))
    }
    fn pending(&self) -> BoxFuture<'_, Result<Vec<Record>, StoreError>> {
        Box::pin(Store::pending(self))
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
    fn get_rejected(
        &self,
        id: RecordId,
    ) -> BoxFuture<'_, Result<Option<RejectedRecord>, StoreError>> {
        Box::pin(Store::get_rejected(self, id))
    }
    fn remove_rejected(&self, id: RecordId) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(Store::remove_rejected(self, id))
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
    fn prune(&self, before: SystemTime) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(Store::prune(self, before))
    }
    fn lease(&self) -> Option<Duration> {
        Store::lease(self)
    }
    fn claim<'a>(
        &'a self,
        kind: &'a str,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        Box::pin(Store::claim(self, kind, max))
    }
    fn renew(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(Store::renew(self))
    }
    fn release(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(Store::release(self))
    }
}
