//! The [`Store`] trait: where the durable receiver keeps notifications.

use std::future::Future;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::error::{StoreError, StoreErrorKind};
use super::query::{Attempt, RecordPage, RecordQuery, RecordSummary};
use super::record::{Appended, Envelope, NewRecord, Record, RecordId, RecordState};
use super::rejected::{RefusedBody, RefusedBodySummary};
use super::summary::StoreSummary;

/// Where the durable receiver keeps notifications. See the [module guide](crate::store).
///
/// Every method that changes the store is durable when its future completes. Implementations
/// must make [`append`](Store::append) atomic: of two appends with the same key, at the same
/// instant or not, one stores and the other reports [`Appended::Duplicate`].
///
/// The store is the queue. A pending record has a due time; a receiver [claims](Store::claim)
/// the due ones a page at a time, as its workers free up, and writes each attempt's outcome
/// back: [done](Store::complete), [due again later](Store::fail), or
/// [dead](Store::dead_letter). A record waiting for its due time waits on disk, not in memory.
///
/// A record handed to a receiver is *held* until its outcome is written: no other claim takes
/// it. A store of one receiver holds in memory (a restart frees every hold, so what was being
/// handled at a crash is due again); a shared store ([`lease`](Store::lease)) holds by a claim
/// that lapses unless renewed.
pub trait Store: Send + Sync + 'static {
    /// Stores a notification unless its key is already claimed, due at once. A record
    /// [`started`](NewRecord::started) counts its first attempt as started and is held for
    /// this receiver (it hands it to the handler at once); otherwise it waits for a
    /// [claim](Store::claim).
    fn append(
        &self,
        record: NewRecord,
    ) -> impl Future<Output = Result<Appended, StoreError>> + Send;

    /// Counts a started attempt of a claimed record (so that a crash mid-attempt still
    /// counts); returns the attempt number. Fails with [`StoreErrorKind::NotFound`] when the
    /// record is not pending, or (shared store) its claim was taken over.
    fn begin_attempt(&self, id: RecordId) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// The handler succeeded: the record is [handled](RecordState::Handled), kept with its
    /// history until [`purge_before`](Store::purge_before) (its key stays claimed), and no
    /// longer held. The receiver does not wait for this one: lost to a crash, it means one
    /// more delivery, never a lost one.
    fn complete(
        &self,
        id: RecordId,
        attempt: Attempt,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// [`complete`](Store::complete) for several records, ideally in one write. The default
    /// starts every completion before it awaits any, so a store that commits in groups commits
    /// them together. A record already done is no error.
    fn complete_all(
        &self,
        done: Vec<(RecordId, Attempt)>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let writes: Vec<_> = done
            .into_iter()
            .map(|(id, attempt)| self.complete(id, attempt))
            .collect();
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

    /// An attempt failed: the record stays pending, due again at `due`, with the attempt in
    /// its history and its error as the last; no longer held.
    fn fail(
        &self,
        id: RecordId,
        attempt: Attempt,
        due: SystemTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The last attempt failed: the record becomes a dead letter, with the attempt in its
    /// history; no longer held.
    fn dead_letter(
        &self,
        id: RecordId,
        attempt: Attempt,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Claims up to `max` pending records of `kind` ([`Envelope::kind`]) that are due, held
    /// by nobody, and whose kind is not [paused](Store::set_paused): soonest due first, then
    /// oldest. Each is held for this store (a shared store's claim lasts one
    /// [lease](Store::lease)) until its outcome is written. The receiver calls it as its
    /// workers free up, so memory holds what is being handled, never the backlog.
    fn claim(
        &self,
        kind: &str,
        max: usize,
    ) -> impl Future<Output = Result<Vec<Record>, StoreError>> + Send;

    /// [`claim`](Store::claim)s up to `max` records whose bodies come to at most `max_bytes`
    /// (the first one whatever its size), and counts the attempt about to start on the first
    /// `begin` of them, as [`begin_attempt`](Store::begin_attempt) would: those come back with
    /// their [`attempts`](Record::attempts) including that one. The others are claimed ahead,
    /// not counted: nothing says whether they ever start, and a crash must not count an
    /// attempt for them (enough crashes would make innocent notifications dead letters). The
    /// receiver counts such a record's attempt in the write of its outcome
    /// ([`Attempt::number`]).
    ///
    /// The receiver's workers take their work this way, a page at a time, `begin` being the
    /// workers free: a record starts without a write of its own to wait for, a record that
    /// crashes the process at once is counted at every start (after a restart it is claimed
    /// among the first), and the bytes bound what the receiver holds claimed ahead.
    ///
    /// The bundled stores count in one write for the whole page (the claim's own, on
    /// PostgreSQL), and read no body past `max_bytes`. The default claims `max` records (it
    /// cannot give any back, so it does not look at `max_bytes`), then counts the first
    /// `begin` in turn; a record whose count fails is left out (claimed until the store lets
    /// it go), and when every count failed the first error is returned.
    fn claim_and_begin(
        &self,
        kind: &str,
        max: usize,
        max_bytes: usize,
        begin: usize,
    ) -> impl Future<Output = Result<Vec<Record>, StoreError>> + Send {
        let _ = max_bytes;
        async move {
            let claimed = self.claim(kind, max).await?;
            let (mut begun, mut first_error) = (Vec::with_capacity(claimed.len()), None);
            let mut counted = 0;
            for mut record in claimed {
                if counted == begin {
                    begun.push(record);
                    continue;
                }
                match self.begin_attempt(record.id).await {
                    Ok(attempts) => {
                        record.attempts = attempts;
                        counted += 1;
                        begun.push(record);
                    }
                    Err(err) if err.kind() == StoreErrorKind::NotFound => {}
                    Err(err) => {
                        first_error.get_or_insert(err);
                    }
                }
            }
            match first_error {
                Some(err) if begun.is_empty() => Err(err),
                _ => Ok(begun),
            }
        }
    }

    /// Gives back records [claimed](Store::claim_and_begin) that were never tried (the
    /// receiver stopped, or its kind was paused, before a worker took them): each is held no
    /// more, and when `counted`, the attempt its claim counted is taken back. A record no
    /// longer pending, or no longer this store's, is left as it is.
    ///
    /// The default does nothing: a store whose claims end with a [lease](Store::lease) gets
    /// the records back when it lapses, with that attempt counted.
    fn unclaim(
        &self,
        ids: Vec<RecordId>,
        counted: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = (ids, counted);
        async { Ok(()) }
    }

    /// How many keys of `kind` have ordered records
    /// ([`NewRecord::ordered`](super::NewRecord::ordered)) waiting behind a head that failed:
    /// pending with an error, or a dead letter that holds its key. For the gauge
    /// `airudder_ordered_keys_held_back`. The default answers 0 (a store that does not order).
    fn keys_held_back(&self, kind: &str) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let _ = kind;
        async { Ok(0) }
    }

    /// Every pending record, oldest first, bodies included: it reads the whole backlog, so it
    /// suits tests and small stores. Lists for people page with [`list`](Store::list).
    fn pending(&self) -> impl Future<Output = Result<Vec<Record>, StoreError>> + Send;

    /// Every dead letter, oldest first, bodies included (see [`pending`](Store::pending)).
    fn dead_letters(&self) -> impl Future<Output = Result<Vec<Record>, StoreError>> + Send;

    /// One page of records matching `query`, in id order, without their bodies, and where the
    /// next page starts ([`RecordPage::next_after`]).
    ///
    /// The default filters [`pending`](Store::pending) and
    /// [`dead_letters`](Store::dead_letters), reading every body and no handled record; a
    /// store that can page should (the bundled stores do, reading no body).
    fn list(
        &self,
        query: RecordQuery,
    ) -> impl Future<Output = Result<RecordPage, StoreError>> + Send {
        async move {
            let mut records = self.pending().await?;
            records.extend(self.dead_letters().await?);
            records.sort_by_key(|record| record.id);
            let rows = records
                .iter()
                .filter(|record| record.id > query.after)
                .map(RecordSummary::from)
                .filter(|summary| query.matches(summary))
                .take(query.page_size() + 1)
                .collect();
            Ok(RecordPage::from_rows(&query, rows))
        }
    }

    /// How many records match `query` (its `after` and `limit` aside). The default pages
    /// through [`list`](Store::list).
    fn count(&self, query: RecordQuery) -> impl Future<Output = Result<u64, StoreError>> + Send {
        async move {
            let mut query = query.after(0).limit(RecordQuery::MAX_LIMIT);
            let mut count = 0;
            loop {
                let page = self.list(query.clone()).await?;
                count += page.len() as u64;
                match page.next_after {
                    Some(after) => query.after = after,
                    None => return Ok(count),
                }
            }
        }
    }

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

    /// One record, in any state, with its body and history.
    fn get(&self, id: RecordId) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send;

    /// Makes a dead letter or a handled record pending again, due at once, attempts reset
    /// (its history kept); returns it. [`StoreErrorKind::NotFound`] when no dead or handled
    /// record has this id.
    fn replay(&self, id: RecordId) -> impl Future<Output = Result<Record, StoreError>> + Send;

    /// Makes a pending record due at once, unless it is held (being handled); returns whether
    /// it did. For when the service is back and the backoff has grown to minutes.
    fn make_due(&self, id: RecordId) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Forgets a dead letter or a handled record, body and history (its de-duplication key
    /// stays until [`prune`](Store::prune)); returns whether there was one.
    fn purge(&self, id: RecordId) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// [Makes due](Store::make_due) every pending record matching `query` (its state, `after`
    /// and `limit` aside); returns how many. The default pages through [`list`](Store::list).
    fn retry_now(
        &self,
        query: RecordQuery,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        async move {
            let mut query = query
                .state(RecordState::Pending)
                .after(0)
                .limit(RecordQuery::MAX_LIMIT);
            let mut done = 0;
            loop {
                let page = self.list(query.clone()).await?;
                for summary in &page {
                    done += u64::from(self.make_due(summary.id).await?);
                }
                match page.next_after {
                    Some(after) => query.after = after,
                    None => return Ok(done),
                }
            }
        }
    }

    /// [Replays](Store::replay) every dead letter matching `query` (its state, `after` and
    /// `limit` aside); returns how many. The default pages through [`list`](Store::list).
    fn replay_dead(
        &self,
        query: RecordQuery,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        async move {
            let mut query = query
                .state(RecordState::Dead)
                .after(0)
                .limit(RecordQuery::MAX_LIMIT);
            let mut done = 0;
            loop {
                let page = self.list(query.clone()).await?;
                for summary in &page {
                    match self.replay(summary.id).await {
                        Ok(_) => done += 1,
                        // Replayed or purged meanwhile.
                        Err(err) if err.kind() == StoreErrorKind::NotFound => {}
                        Err(err) => return Err(err),
                    }
                }
                match page.next_after {
                    Some(after) => query.after = after,
                    None => return Ok(done),
                }
            }
        }
    }

    /// [Purges](Store::purge) every record in `state` (dead or handled) that changed to it
    /// before `before` (for a dead letter, when it died; for a handled one, when it was
    /// handled); returns how many. Handled records past the retention window go this way.
    /// The default pages through [`list`](Store::list); the bundled stores read an index by
    /// time instead.
    fn purge_before(
        &self,
        state: RecordState,
        before: SystemTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        async move {
            let before_ms = super::record::millis(before);
            let mut query = RecordQuery::new()
                .state(state)
                .limit(RecordQuery::MAX_LIMIT);
            let mut done = 0;
            loop {
                let page = self.list(query.clone()).await?;
                for summary in &page {
                    if summary.state == state
                        && summary.due_at_ms < before_ms
                        && self.purge(summary.id).await?
                    {
                        done += 1;
                    }
                }
                match page.next_after {
                    Some(after) => query.after = after,
                    None => return Ok(done),
                }
            }
        }
    }

    /// Pauses (or resumes) handing on records of `kind`: while paused, [`claim`](Store::claim)
    /// takes none of them; they are still stored. Kept in the store, so it holds across
    /// restarts and for every receiver sharing it.
    fn set_paused(
        &self,
        kind: &str,
        paused: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The paused kinds.
    fn paused(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Keeps a refused body. A store with [limits](crate::store::RefusedBodyLimits) drops the
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
    fn rejected(&self) -> impl Future<Output = Result<Vec<RefusedBody>, StoreError>> + Send;

    /// Up to `limit` kept refused bodies with ids after `after`, oldest first, without their
    /// bytes: pass 0 for the first page, then the last id of each page.
    ///
    /// The default filters [`rejected`](Store::rejected), reading every body; a store that
    /// can list without reading bodies should (the bundled stores do).
    fn rejected_page(
        &self,
        after: RecordId,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RefusedBodySummary>, StoreError>> + Send {
        async move {
            Ok(self
                .rejected()
                .await?
                .into_iter()
                .filter(|kept| kept.id > after)
                .take(limit)
                .map(RefusedBodySummary::from)
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
    ) -> impl Future<Output = Result<Option<RefusedBody>, StoreError>> + Send {
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

    /// Forgets every kept refused body received before `before`; returns how many. The
    /// default pages through [`rejected_page`](Store::rejected_page).
    fn purge_rejected(
        &self,
        before: SystemTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        async move {
            let before_ms = super::record::millis(before);
            let (mut after, mut done) = (0, 0);
            loop {
                let page = self.rejected_page(after, RecordQuery::MAX_LIMIT).await?;
                for kept in &page {
                    if kept.envelope.received_at_ms < before_ms {
                        self.remove_rejected(kept.id).await?;
                        done += 1;
                    }
                }
                match page.last() {
                    Some(last) if page.len() == RecordQuery::MAX_LIMIT => after = last.id,
                    _ => return Ok(done),
                }
            }
        }
    }

    /// Forgets de-duplication keys of done notifications claimed before `before`; returns how
    /// many.
    fn prune(&self, before: SystemTime) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// How long a claim lasts, for a store that several receivers share (`None`, the
    /// default, for a store of one receiver alone, which holds its claims in memory).
    ///
    /// The receiver then [renews](Store::renew) its claims every third of the lease and
    /// [releases](Store::release) them when it shuts down.
    fn lease(&self) -> Option<Duration> {
        None
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
