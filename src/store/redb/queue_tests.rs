//! The embedded store as the queue: claims and holds, due times, pauses, outcomes and their
//! history, lists without bodies, purges by time, and the move from record format 2.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ::redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use bytes::Bytes;

use super::RedbStore;
use super::format::{BODIES, META, OldHeader, RECORDS, old_format};
use crate::store::{
    Appended, Attempt, AttemptOutcome, Envelope, MAX_HISTORY, NewRecord, Record, RecordId,
    RecordQuery, RecordState, Store, StoreErrorKind,
};

/// A fresh directory for test `name`.
fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("airudder-queue-{name}-"))
        .tempdir()
        .unwrap()
}

/// A notification of `kind` received (so due) at `received`, left for a claim.
fn waiting(key: u32, kind: &str, received: SystemTime) -> NewRecord {
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&key.to_le_bytes());
    let envelope = Envelope::new(received, None, Vec::new()).with_kind(kind);
    NewRecord::new(bytes, Bytes::from(format!("body {key}")), envelope).started(false)
}

/// Appends `record`; its id.
async fn stored(store: &RedbStore, record: NewRecord) -> RecordId {
    match store.append(record).await.unwrap() {
        Appended::Stored(id) => id,
        Appended::Duplicate(id) => panic!("{id} stored before"),
    }
}

fn ok() -> Attempt {
    Attempt::new(SystemTime::now(), Duration::ZERO, AttemptOutcome::Ok)
}

/// The ids of `records`.
fn ids(records: &[crate::store::Record]) -> Vec<RecordId> {
    records.iter().map(|record| record.id).collect()
}

fn ago(secs: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(secs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_come_soonest_due_first_and_never_twice_while_held() {
    let tmp = temp_dir("claim-order");
    let dir = tmp.path();
    let store = RedbStore::open(dir).unwrap();
    let c = stored(&store, waiting(1, "k", ago(10))).await;
    let a = stored(&store, waiting(2, "k", ago(30))).await;
    let b = stored(&store, waiting(3, "k", ago(20))).await;
    // Due at the same time as `a`: the lower id first.
    let a2 = stored(
        &store,
        waiting(4, "k", SystemTime::now() - Duration::from_secs(30)),
    )
    .await;
    let other = stored(&store, waiting(5, "other", ago(40))).await;
    let started = waiting(6, "k", ago(50)).started(true);
    let started = stored(&store, started).await;
    let future = stored(
        &store,
        waiting(7, "k", SystemTime::now() + Duration::from_secs(60)),
    )
    .await;
    assert_eq!(store.held(), 1, "a started append is held");

    let first = store.claim("k", 2).await.unwrap();
    assert_eq!(ids(&first), [a, a2]);
    assert_eq!(&first[0].body[..], b"body 2", "claimed with its body");
    // Another handle of the same store shares the holds.
    let clone = store.clone();
    assert_eq!(ids(&clone.claim("k", 10).await.unwrap()), [b, c]);
    assert!(store.claim("k", 10).await.unwrap().is_empty());
    assert_eq!(store.held(), 5);
    assert_eq!(ids(&store.claim("other", 10).await.unwrap()), [other]);
    assert_eq!(store.held(), 6);

    // Outcomes release; a handled record is not claimed again, a failed one due now is.
    store.complete(a, ok()).await.unwrap();
    store
        .fail(a2, Attempt::failed_now("boom"), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(ids(&store.claim("k", 10).await.unwrap()), [a2]);
    drop(store);
    drop(clone);
    // A restart frees every hold: what was being handled is due again.
    let store = RedbStore::open(dir).unwrap();
    assert_eq!(
        ids(&store.claim("k", 10).await.unwrap()),
        [started, b, c, a2],
        "not `future`, not yet due"
    );
    assert!(store.get(future).await.unwrap().is_some());
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_kind_is_not_claimed_across_a_reopen() {
    let tmp = temp_dir("paused");
    let dir = tmp.path();
    let store = RedbStore::open(dir).unwrap();
    let id = stored(&store, waiting(1, "k", ago(1))).await;
    store.set_paused("k", true).await.unwrap();
    store.set_paused("x", true).await.unwrap();
    store.set_paused("x", false).await.unwrap();
    assert!(store.claim("k", 10).await.unwrap().is_empty());
    drop(store);
    let store = RedbStore::open(dir).unwrap();
    assert_eq!(store.paused().await.unwrap(), ["k"]);
    assert!(store.claim("k", 10).await.unwrap().is_empty());
    assert_eq!(store.held(), 0, "nothing held for a paused kind");
    store.set_paused("k", false).await.unwrap();
    assert!(store.paused().await.unwrap().is_empty());
    assert_eq!(ids(&store.claim("k", 10).await.unwrap()), [id]);
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_due_later_is_claimed_at_its_time_not_before() {
    let tmp = temp_dir("due-later");
    let dir = tmp.path();
    let store = RedbStore::open(dir).unwrap();
    let id = stored(&store, waiting(1, "k", ago(1))).await;
    assert_eq!(ids(&store.claim("k", 1).await.unwrap()), [id]);
    assert_eq!(store.begin_attempt(id).await.unwrap(), 1);
    let due = SystemTime::now() + Duration::from_millis(400);
    store
        .fail(id, Attempt::failed_now("503 from the service"), due)
        .await
        .unwrap();
    assert!(store.claim("k", 1).await.unwrap().is_empty(), "not due yet");
    let summary = &store.list(RecordQuery::new()).await.unwrap().items[0];
    assert_eq!(summary.last_error.as_deref(), Some("503 from the service"));
    assert_eq!(summary.due_at_ms, crate::store::millis(due));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = store.claim("k", 1).await.unwrap();
    assert_eq!(ids(&again), [id]);
    assert_eq!((again[0].attempts, again[0].history.len()), (1, 1));

    // Made due by hand: not while held; once released and due later, yes.
    assert!(!store.make_due(id).await.unwrap(), "held");
    let hour = SystemTime::now() + Duration::from_secs(3600);
    store
        .fail(id, Attempt::failed_now("again"), hour)
        .await
        .unwrap();
    assert!(store.claim("k", 1).await.unwrap().is_empty());
    assert!(store.make_due(id).await.unwrap());
    assert!(!store.make_due(id).await.unwrap(), "already due");
    assert_eq!(ids(&store.claim("k", 1).await.unwrap()), [id]);
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_keeps_the_first_attempt_and_the_newest_bounded() {
    let tmp = temp_dir("history");
    let dir = tmp.path();
    let store = RedbStore::open(dir).unwrap();
    let id = stored(&store, waiting(1, "k", ago(1))).await;
    for n in 0..(MAX_HISTORY + 5) {
        let claimed = store.claim("k", 1).await.unwrap();
        assert_eq!(ids(&claimed), [id], "round {n}");
        store.begin_attempt(id).await.unwrap();
        let attempt = Attempt::failed_now(format!("failure {n}"));
        store.fail(id, attempt, ago(0)).await.unwrap();
    }
    store.claim("k", 1).await.unwrap();
    store
        .dead_letter(id, Attempt::failed_now("last"))
        .await
        .unwrap();
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.state, RecordState::Dead);
    assert_eq!(record.history.len(), MAX_HISTORY);
    assert_eq!(record.history[0].error.as_deref(), Some("failure 0"));
    assert_eq!(
        record.history[MAX_HISTORY - 1].error.as_deref(),
        Some("last")
    );
    assert_eq!(record.last_error.as_deref(), Some("last"));
    assert_eq!(record.attempts, MAX_HISTORY as u32 + 5);
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handled_record_is_kept_found_by_its_task_and_replayed() {
    let tmp = temp_dir("handled");
    let dir = tmp.path();
    let store = RedbStore::open(dir).unwrap();
    let id = stored(&store, waiting(1, "k", ago(1)).with_task_id("T-1")).await;
    stored(&store, waiting(2, "k", ago(1)).with_task_id("T-2")).await;
    store.claim("k", 1).await.unwrap();
    store
        .complete_all(vec![(id, ok()), (999, ok())])
        .await
        .unwrap();
    let found = store.list(RecordQuery::new().task_id("T-1")).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found.items[0].id, found.items[0].state),
        (id, RecordState::Handled)
    );
    assert_eq!(found.items[0].body_len, 6);
    let handled = RecordQuery::new().state(RecordState::Handled);
    assert_eq!(store.count(handled.clone()).await.unwrap(), 1);
    let summary = store.summary().await.unwrap();
    assert_eq!((summary.pending, summary.dead_letters), (1, 0));
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(&record.body[..], b"body 1");
    assert_eq!(record.history[0].outcome, AttemptOutcome::Ok);
    assert!(store.pending().await.unwrap().iter().all(|r| r.id != id));

    let replayed = store.replay(id).await.unwrap();
    assert_eq!(
        (replayed.state, replayed.attempts, replayed.history.len()),
        (RecordState::Pending, 0, 1)
    );
    assert_eq!(store.held(), 0, "a replay is not held");
    // Due now: after the other, due since its arrival.
    assert_eq!(ids(&store.claim("k", 2).await.unwrap()), [id + 1, id]);
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_before_goes_by_when_records_finished() {
    let tmp = temp_dir("purge");
    let dir = tmp.path();
    let store = RedbStore::open(dir).unwrap();
    let (a, b, c, p) = (
        stored(&store, waiting(1, "k", ago(9))).await,
        stored(&store, waiting(2, "k", ago(8))).await,
        stored(&store, waiting(3, "k", ago(7))).await,
        stored(&store, waiting(4, "k", ago(6))).await,
    );
    store.claim("k", 3).await.unwrap();
    store
        .dead_letter(a, Attempt::failed_now("x"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let cut = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(30)).await;
    store
        .dead_letter(b, Attempt::failed_now("y"))
        .await
        .unwrap();
    store.complete(c, ok()).await.unwrap();

    assert_eq!(store.purge_before(RecordState::Dead, cut).await.unwrap(), 1);
    assert!(store.get(a).await.unwrap().is_none());
    assert!(store.get(b).await.unwrap().is_some());
    assert_eq!(
        store.purge_before(RecordState::Handled, cut).await.unwrap(),
        0
    );
    assert_eq!(
        store
            .purge_before(RecordState::Pending, ago(0))
            .await
            .unwrap(),
        0
    );
    let later = SystemTime::now() + Duration::from_secs(1);
    assert_eq!(
        store
            .purge_before(RecordState::Handled, later)
            .await
            .unwrap(),
        1
    );
    assert!(
        !store.purge(p).await.unwrap(),
        "a pending record is not purged"
    );
    assert!(store.purge(b).await.unwrap());
    assert_eq!(ids(&store.pending().await.unwrap()), [p]);
    assert_eq!(store.count(RecordQuery::new()).await.unwrap(), 1);
    drop(store);
}

/// Every page of `query`, followed by `next_after` to the end: the ids, and whether a page came
/// back short of its limit with more to follow (the scan cap ended it).
async fn every_page(store: &RedbStore, query: &RecordQuery) -> (Vec<RecordId>, bool) {
    let (mut seen, mut ended_early) = (Vec::new(), false);
    let mut page_query = query.clone();
    loop {
        let page = store.list(page_query.clone()).await.unwrap();
        assert!(page.len() <= query.page_size());
        for row in &page {
            assert!(query.matches(row), "{row:?} does not match {query:?}");
            seen.push(row.id);
        }
        match page.next_after {
            Some(after) => {
                ended_early |= page.len() < query.page_size();
                page_query.after = after;
            }
            None => return (seen, ended_early),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_a_hundred_thousand_records_list_each_match_once_in_order() {
    const N: u32 = 100_010;
    let tmp = temp_dir("paging");
    let dir = tmp.path();
    let store = Arc::new(RedbStore::open(dir).unwrap());
    let appends: Vec<_> = (0..N - 10)
        .map(|n| {
            let store = Arc::clone(&store);
            let kind = if n % 2 == 0 { "even" } else { "odd" };
            let record = waiting(n, kind, ago(100)).with_task_id(format!("t{}", n % 7));
            tokio::spawn(async move { store.append(record).await })
        })
        .collect();
    for append in appends {
        append.await.unwrap().unwrap();
    }
    // The last ten, after all the others, are the only ones of task "late": past one page's
    // scan.
    for n in N - 10..N {
        let kind = if n % 2 == 0 { "even" } else { "odd" };
        stored(&store, waiting(n, kind, ago(100)).with_task_id("late")).await;
    }
    let query = RecordQuery::new().kind("even").task_id("t3").limit(97);
    let (seen, _) = every_page(&store, &query).await;
    // Rare matches beyond the first page's scan: that page comes back short, not last.
    let late = RecordQuery::new().task_id("late").limit(5);
    let (late_seen, ended_early) = every_page(&store, &late).await;
    assert_eq!(late_seen.len(), 10);
    assert!(ended_early, "the scan cap ended a page");
    assert!(late_seen.windows(2).all(|pair| pair[0] < pair[1]));
    let expected = (0..N - 10).filter(|n| n % 2 == 0 && n % 7 == 3).count();
    assert_eq!(seen.len(), expected);
    assert!(
        seen.windows(2).all(|pair| pair[0] < pair[1]),
        "in id order, each once"
    );
    assert_eq!(store.count(query).await.unwrap(), expected as u64);
    let everything = RecordQuery::new().limit(100_000);
    assert_eq!(
        store.list(everything).await.unwrap().len(),
        RecordQuery::MAX_LIMIT
    );
    assert_eq!(store.summary().await.unwrap().pending, u64::from(N));
    // Counted from the indexes, and by reading metadata: the same.
    let pending = RecordQuery::new().state(RecordState::Pending);
    assert_eq!(store.count(pending.clone()).await.unwrap(), u64::from(N));
    assert_eq!(
        store.count(pending.kind("odd")).await.unwrap(),
        u64::from(N / 2)
    );
    let since = RecordQuery::new().kind("odd").since(ago(200));
    assert_eq!(store.count(since).await.unwrap(), u64::from(N / 2));
    let dead = RecordQuery::new().state(RecordState::Dead);
    assert_eq!(store.count(dead).await.unwrap(), 0);
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_body_breaks_get_and_not_list() {
    let tmp = temp_dir("list-no-body");
    let dir = tmp.path();
    let store = RedbStore::open(dir).unwrap();
    let id = stored(&store, waiting(1, "k", ago(1)).with_task_id("T")).await;
    let fine = stored(&store, waiting(2, "k", ago(1))).await;
    {
        let db = store.inner_db();
        let tx = db.begin_write().unwrap();
        tx.open_table(BODIES)
            .unwrap()
            .insert(id, &b"body X"[..])
            .unwrap();
        tx.commit().unwrap();
    }
    let listed = store.list(RecordQuery::new()).await.unwrap();
    assert_eq!(
        listed.items.iter().map(|row| row.id).collect::<Vec<_>>(),
        [id, fine]
    );
    assert_eq!(listed.items[0].task_id.as_deref(), Some("T"));
    assert_eq!(store.count(RecordQuery::new()).await.unwrap(), 2);
    let err = store.get(id).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{err}");
    // Quarantined with its bytes, and gone from every index.
    let rejected = loop {
        let rejected = store.rejected().await.unwrap();
        if !rejected.is_empty() {
            break rejected;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(rejected[0].body.ends_with(b"body X"));
    assert_eq!(store.quarantined(), 1);
    assert_eq!(ids(&store.claim("k", 10).await.unwrap()), [fine]);
    assert_eq!(store.list(RecordQuery::new()).await.unwrap().len(), 1);
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_format_2_opens_moves_to_format_3_and_reads_back() {
    let tmp = temp_dir("migrate-v2");
    let dir = tmp.path();
    let received = ago(3600);
    let envelope = Envelope::new(received, Some("127.0.0.1:9".into()), Vec::new());
    // More than one batch of the move.
    let count = 2_500u64;
    {
        let store = RedbStore::open(dir).unwrap();
        let db = store.inner_db();
        let tx = db.begin_write().unwrap();
        {
            let mut records = tx.open_table(RECORDS).unwrap();
            for id in 1..=count {
                let body = format!("old body {id}");
                let header = OldHeader {
                    envelope: envelope.clone(),
                    last_error: (id % 2 == 0).then(|| "old error".to_owned()),
                    body_len: body.len() as u64,
                };
                let state = if id % 2 == 0 {
                    RecordState::Dead
                } else {
                    RecordState::Pending
                };
                let value = if id == 3 {
                    old_format::v1(state, 1, &header, body.as_bytes())
                } else {
                    old_format::v2(state, 1, &header, body.as_bytes())
                };
                records.insert(id, value.as_slice()).unwrap();
            }
            let mut changed = old_format::v2(
                RecordState::Pending,
                1,
                &OldHeader {
                    envelope: envelope.clone(),
                    last_error: None,
                    body_len: 4,
                },
                b"five",
            );
            let last = changed.len() - 1;
            changed[last] ^= 1;
            records.insert(count + 1, changed.as_slice()).unwrap();
            let mut meta = tx.open_table(META).unwrap();
            // As the old store left it: no format entry.
            meta.remove("records_format").unwrap();
            meta.insert("next_record", count + 2).unwrap();
        }
        tx.commit().unwrap();
    }
    let store = RedbStore::open(dir).unwrap();
    {
        let db = store.inner_db();
        let tx = db.begin_read().unwrap();
        let records = tx.open_table(RECORDS).unwrap();
        for entry in records.iter().unwrap() {
            let (_, value) = entry.unwrap();
            assert_eq!(value.value()[0], 3, "every record moved");
        }
        assert_eq!(tx.open_table(BODIES).unwrap().len().unwrap(), count);
    }
    assert_eq!(store.quarantined(), 1, "the changed one");
    let one = store.get(3).await.unwrap().unwrap();
    assert_eq!(
        (&one.body[..], one.state),
        (&b"old body 3"[..], RecordState::Pending)
    );
    assert_eq!(one.envelope, envelope);
    let two = store.get(2).await.unwrap().unwrap();
    assert_eq!(
        (two.state, two.last_error.as_deref(), &two.body[..]),
        (RecordState::Dead, Some("old error"), &b"old body 2"[..])
    );
    let summary = store.summary().await.unwrap();
    assert_eq!(
        (summary.pending, summary.dead_letters),
        (count / 2, count / 2)
    );
    let claimed = store.claim(crate::store::DEFAULT_KIND, 5).await.unwrap();
    assert_eq!(ids(&claimed), [1, 3, 5, 7, 9]);
    // Dead letters moved count as dead from the move on, for retention.
    assert_eq!(
        store
            .purge_before(RecordState::Dead, received)
            .await
            .unwrap(),
        0
    );
    let later = SystemTime::now() + Duration::from_secs(1);
    assert_eq!(
        store.purge_before(RecordState::Dead, later).await.unwrap(),
        count / 2
    );
    let next = stored(&store, waiting(1, "k", ago(0))).await;
    assert_eq!(next, count + 2, "ids carry on");
    drop(store);
    // A second open has nothing to move.
    let store = RedbStore::open(dir).unwrap();
    assert_eq!(
        store.count(RecordQuery::new()).await.unwrap(),
        count / 2 + 1
    );
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_and_outcomes_hand_each_record_on_once() {
    let tmp = temp_dir("claim-race");
    let dir = tmp.path();
    let store = RedbStore::open(dir).unwrap();
    for n in 0..300 {
        stored(&store, waiting(n, "k", ago(5))).await;
    }
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let claimed = store.claim("k", 7).await.unwrap();
                    if claimed.is_empty() {
                        return mine;
                    }
                    let done = claimed.iter().map(|record| (record.id, ok())).collect();
                    mine.extend(ids(&claimed));
                    // Written while other workers claim from older snapshots.
                    store.complete_all(done).await.unwrap();
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    all.sort_unstable();
    let before = all.len();
    all.dedup();
    assert_eq!((before, all.len()), (300, 300), "each once");
    assert_eq!(store.held(), 0);
    let handled = RecordQuery::new().state(RecordState::Handled);
    assert_eq!(store.count(handled).await.unwrap(), 300);
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_stops_at_its_scan_cap_and_says_where_to_carry_on() {
    let tmp = temp_dir("scan-cap");
    let dir = tmp.path();
    let store = RedbStore::open(dir).unwrap();
    let mut last = 0;
    for n in 0..200 {
        let kind = if n < 150 { "common" } else { "rare" };
        last = stored(&store, waiting(n, kind, ago(5))).await;
    }
    let db = store.inner_db();
    let rare = RecordQuery::new().kind("rare");
    let page = super::reads::page(&db, &rare, 10, 50).unwrap();
    assert!(page.rows.is_empty(), "50 looked at, none rare");
    assert_eq!(page.next, Some(50));
    let page = super::reads::page(&db, &rare.clone().after(150), 100, 1000).unwrap();
    assert_eq!(page.rows.len(), 50);
    assert_eq!(page.next, None, "the end");
    drop(db);
    // The store's own paging carries on: every rare one made due (each was due at arrival,
    // so failed due in an hour first).
    let claimed = store.claim("rare", 100).await.unwrap();
    let hour = SystemTime::now() + Duration::from_secs(3600);
    for record in &claimed {
        let failed = Attempt::failed_now("later");
        store.fail(record.id, failed, hour).await.unwrap();
    }
    assert_eq!(store.retry_now(rare).await.unwrap(), 50);
    assert_eq!(
        store.claim("rare", 100).await.unwrap().last().map(|r| r.id),
        Some(last)
    );
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_that_begins_counts_each_attempt_and_an_unclaim_takes_it_back() {
    let tmp = temp_dir("claim-begin");
    let dir = tmp.path();
    let store = RedbStore::open(dir).unwrap();
    store.set_paused("k", false).await.unwrap();
    let a = stored(&store, waiting(1, "k", ago(20))).await;
    let b = stored(&store, waiting(2, "k", ago(10))).await;
    let claimed = store
        .claim_and_begin("k", 10, usize::MAX, usize::MAX)
        .await
        .unwrap();
    assert_eq!(ids(&claimed), [a, b]);
    assert!(claimed.iter().all(|record| record.attempts == 1));
    assert_eq!(
        store.get(a).await.unwrap().unwrap().attempts,
        1,
        "counted on disk"
    );
    assert!(
        store
            .claim_and_begin("k", 10, usize::MAX, usize::MAX)
            .await
            .unwrap()
            .is_empty(),
        "held"
    );

    // Given back untried: held no more, the count taken back; the next claim counts again.
    store.unclaim(vec![a], true).await.unwrap();
    assert_eq!(store.get(a).await.unwrap().unwrap().attempts, 0);
    let again = store
        .claim_and_begin("k", 10, usize::MAX, usize::MAX)
        .await
        .unwrap();
    assert_eq!((ids(&again), again[0].attempts), (vec![a], 1));

    // A record handled meanwhile is left as it is by an unclaim.
    store.complete(b, ok()).await.unwrap();
    store.unclaim(vec![b], true).await.unwrap();
    let done = store.get(b).await.unwrap().unwrap();
    assert_eq!((done.state, done.attempts), (RecordState::Handled, 1));
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_counts_only_what_begins_at_once_and_an_outcome_counts_a_record_claimed_ahead() {
    let tmp = temp_dir("claim-ahead");
    let store = RedbStore::open(tmp.path()).unwrap();
    let a = stored(&store, waiting(1, "k", ago(30))).await;
    let b = stored(&store, waiting(2, "k", ago(20))).await;
    let c = stored(&store, waiting(3, "k", ago(10))).await;
    let claimed = store.claim_and_begin("k", 10, usize::MAX, 1).await.unwrap();
    assert_eq!(ids(&claimed), [a, b, c]);
    let counts = |records: &[Record]| records.iter().map(|r| r.attempts).collect::<Vec<_>>();
    assert_eq!(counts(&claimed), [1, 0, 0], "only the first begins at once");
    for (id, attempts) in [(a, 1), (b, 0), (c, 0)] {
        assert_eq!(store.get(id).await.unwrap().unwrap().attempts, attempts);
    }

    // Claimed ahead, then started: the outcome's write counts the attempt.
    store
        .fail(
            b,
            Attempt::failed_now("503").with_number(1),
            SystemTime::now(),
        )
        .await
        .unwrap();
    let failed = store.get(b).await.unwrap().unwrap();
    assert_eq!((failed.attempts, failed.history.len()), (1, 1));
    // A number below the count changes nothing.
    store.complete(a, ok().with_number(0)).await.unwrap();
    assert_eq!(store.get(a).await.unwrap().unwrap().attempts, 1);

    // Claimed ahead, given back untried: nothing to take back.
    store.unclaim(vec![c], false).await.unwrap();
    assert_eq!(store.get(c).await.unwrap().unwrap().attempts, 0);
    let again = store
        .claim_and_begin("k", 10, usize::MAX, 10)
        .await
        .unwrap();
    // Soonest due first: `b` is due again from its failure on.
    assert_eq!(ids(&again), [c, b], "held no more");
    assert_eq!(counts(&again), [1, 2]);
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_that_begins_stops_at_its_bytes_past_the_first_record() {
    let tmp = temp_dir("claim-bytes");
    let store = RedbStore::open(tmp.path()).unwrap();
    // Bodies of 6 bytes each ("body N"), due in this order.
    let a = stored(&store, waiting(1, "k", ago(30))).await;
    let b = stored(&store, waiting(2, "k", ago(20))).await;
    let c = stored(&store, waiting(3, "k", ago(10))).await;
    let claimed = store
        .claim_and_begin("k", 10, 12, usize::MAX)
        .await
        .unwrap();
    assert_eq!(
        ids(&claimed),
        [a, b],
        "two bodies fit in 12 bytes, not three"
    );
    let left = store.get(c).await.unwrap().unwrap();
    assert_eq!(left.attempts, 0, "the one past the bytes is not counted");
    // The first record of a claim comes whatever its size.
    let claimed = store.claim_and_begin("k", 10, 0, usize::MAX).await.unwrap();
    assert_eq!((ids(&claimed), claimed[0].attempts), (vec![c], 1));
    drop(store);
}
