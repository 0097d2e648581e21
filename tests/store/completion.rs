//! Completion in the handler's own transaction, on PostgreSQL: the handler writes one row per
//! call to the team's own table and marks its notification handled in the same transaction,
//! so that each call is written once, even when a stalled receiver's claim is taken over by
//! another; and the plain statement for other drivers, refused once the claim is not ours.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use airudder_webhook::model::TaskNotification;
use airudder_webhook::store::{
    Appended, AttemptOutcome, Completion, Envelope, NewRecord, PostgresStore, Record, RecordQuery,
    RecordState, Store, StoreErrorKind,
};
use airudder_webhook::{BoxError, Delivery, Receiver};
use bytes::Bytes;
use serde_json::json;
use tokio_postgres::{Client, NoTls};
use tower::ServiceExt;

use crate::postgres::{fresh, shared_cluster, store};

/// A client on `url`, its connection driven in the background.
async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// The team's own table, in a schema of its own in the store's database: a row per call
/// written, and no unique key, so that a call written twice shows.
async fn team_table(url: &str, schema: &str) {
    connect(url)
        .await
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; \
             CREATE TABLE {schema}.calls ( \
                 task_id TEXT NOT NULL, call_id BIGINT NOT NULL, written_by TEXT NOT NULL)"
        ))
        .await
        .unwrap();
}

/// The team's rows: task id, call id, who wrote it; in that order.
async fn team_rows(url: &str, schema: &str) -> Vec<(String, i64, String)> {
    connect(url)
        .await
        .query(
            &format!("SELECT task_id, call_id, written_by FROM {schema}.calls ORDER BY 1, 2, 3"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

/// A task notification with `calls` calls, under task id `task`.
fn notification(task: &str, calls: usize) -> Vec<u8> {
    let mut value: serde_json::Value =
        serde_json::from_slice(&support::notification_with_calls(calls)).unwrap();
    value["task_id"] = json!(task);
    serde_json::to_vec(&value).unwrap()
}

async fn post(receiver: &Receiver, body: Vec<u8>) {
    let response = receiver.clone().oneshot(support::post(body)).await.unwrap();
    assert_eq!(response.status(), 200);
}

/// Writes one row per call of `delivery` as `who`, in `tx`.
async fn write_calls(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
    delivery: &Delivery<TaskNotification>,
    who: &str,
) -> Result<(), BoxError> {
    let insert =
        format!("INSERT INTO {schema}.calls (task_id, call_id, written_by) VALUES ($1, $2, $3)");
    for call in &delivery.details {
        tx.execute(&insert, &[&&*delivery.task_id, &call.id, &who])
            .await?;
    }
    Ok(())
}

/// Every record of the store, bodies and histories included.
async fn records(store: &PostgresStore) -> Vec<Record> {
    let page = store.list(RecordQuery::new().limit(1000)).await.unwrap();
    let mut records = Vec::new();
    for summary in page.items {
        records.push(store.get(summary.id).await.unwrap().unwrap());
    }
    records
}

/// Waits (at most 20 s) until `count` records are handled and none is still claimed.
async fn wait_handled(store: &PostgresStore, schema: &str, url: &str, count: u64) {
    let client = connect(url).await;
    let claimed =
        format!("SELECT count(*) FROM {schema}.notifications WHERE claimed_by IS NOT NULL");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let handled = store
            .count(RecordQuery::new().state(RecordState::Handled))
            .await
            .unwrap();
        let held: i64 = client.query_one(&claimed, &[]).await.unwrap().get(0);
        if handled == count && held == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{handled} of {count} handled, {held} still claimed after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_writes_and_completes_in_one_transaction_and_each_call_is_written_once() {
    let url = shared_cluster().url();
    let store = fresh(&url, "in_tx", Duration::from_secs(15)).await;
    team_table(&url, "team_in_tx").await;
    let pool = {
        let config: tokio_postgres::Config = url.parse().unwrap();
        let manager = deadpool_postgres::Manager::from_config(
            config,
            NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        deadpool_postgres::Pool::builder(manager)
            .max_size(4)
            .build()
            .unwrap()
    };
    let handler = move |d: Delivery<TaskNotification>| {
        let pool = pool.clone();
        async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            write_calls(&tx, "team_in_tx", &d, "receiver").await?;
            // Odd tasks leave the mark to the receiver, as before.
            let n: usize = d.task_id.trim_start_matches("task-").parse().unwrap_or(0);
            if n.is_multiple_of(2) {
                d.complete_in(&*tx).await?;
            }
            tx.commit().await?;
            if &*d.task_id == "fails-after-commit" {
                return Err("failed after its commit".into());
            }
            Ok::<_, BoxError>(())
        }
    };
    let receiver = Receiver::builder(handler)
        .allow_unauthenticated()
        .workers(4)
        .durable(store.clone())
        .build()
        .unwrap();
    const TASKS: usize = 20;
    const CALLS: usize = 3;
    for n in 0..TASKS {
        post(&receiver, notification(&format!("task-{n}"), CALLS)).await;
    }
    post(&receiver, notification("fails-after-commit", CALLS)).await;
    wait_handled(&store, "in_tx", &url, TASKS as u64 + 1).await;
    support::stop(&receiver).await;

    let rows = team_rows(&url, "team_in_tx").await;
    assert_eq!(rows.len(), (TASKS + 1) * CALLS, "one row per call");
    let mut distinct = rows.clone();
    distinct.dedup();
    assert_eq!(distinct, rows, "no call written twice");
    for record in records(&store).await {
        let task = record.task_id.clone().unwrap();
        assert_eq!(record.state, RecordState::Handled, "{task}");
        assert_eq!(record.attempts, 1, "{task}: handled at its first attempt");
        let outcomes: Vec<_> = record.history.iter().map(|a| a.outcome).collect();
        if task == "fails-after-commit" {
            // Its transaction committed its rows and the completion: handled, not retried,
            // with the attempt's error in its history.
            assert_eq!(outcomes, [AttemptOutcome::Error], "{task}");
            assert_eq!(
                record.last_error.as_deref(),
                Some("failed after its commit")
            );
        } else {
            assert_eq!(
                outcomes,
                [AttemptOutcome::Ok],
                "{task}: one attempt, marked once"
            );
        }
    }
}

/// What receiver A's handler saw when it tried to complete, late.
type Late = Arc<Mutex<Option<Result<(), StoreErrorKind>>>>;

/// Receiver A, on a runtime of its own in a thread of its own: its handler writes its rows,
/// tells `started`, then stalls the whole runtime (a process frozen: no lease renewal) until
/// `resume` says so, then tries to complete. Returns when A is stopped (`stop`).
fn stalled_receiver(
    url: String,
    started: std::sync::mpsc::Sender<()>,
    resume: std::sync::mpsc::Receiver<()>,
    stop: tokio::sync::oneshot::Receiver<()>,
    late: Late,
) -> std::thread::JoinHandle<()> {
    let resume = Arc::new(Mutex::new(resume));
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let store = store(&url, "taken_over", Duration::from_secs(1)).await;
            let handler = move |d: Delivery<TaskNotification>| {
                let (url, started) = (url.clone(), started.clone());
                let (resume, late) = (Arc::clone(&resume), Arc::clone(&late));
                async move {
                    let mut client = connect(&url).await;
                    let tx = client.transaction().await?;
                    write_calls(&tx, "team_taken_over", &d, "A").await?;
                    let _ = started.send(());
                    // Blocks A's runtime: its claim lapses, and B takes the notification.
                    let resumed = resume.lock().unwrap().recv_timeout(Duration::from_secs(30));
                    assert!(resumed.is_ok(), "B took the notification over within 30 s");
                    let completed = d.complete_in(&tx).await;
                    *late.lock().unwrap() =
                        Some(completed.as_ref().map(drop).map_err(|err| err.kind()));
                    completed?;
                    tx.commit().await?;
                    Ok::<_, BoxError>(())
                }
            };
            let receiver = Receiver::builder(handler)
                .allow_unauthenticated()
                .durable(store)
                .build()
                .unwrap();
            let _ = stop.await;
            support::stop(&receiver).await;
        });
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_receivers_late_commit_is_refused_and_the_call_is_written_once_by_the_other() {
    let url = shared_cluster().url();
    let store_b = fresh(&url, "taken_over", Duration::from_secs(1)).await;
    team_table(&url, "team_taken_over").await;
    let (started_tx, started) = std::sync::mpsc::channel();
    let (resume_a, resume) = std::sync::mpsc::channel();
    let (stop_a, stop) = tokio::sync::oneshot::channel();
    let late: Late = Arc::default();
    let a = stalled_receiver(url.clone(), started_tx, resume, stop, Arc::clone(&late));

    // Stored without a receiver's claim: A, alone so far, claims it.
    let envelope = Envelope::new(SystemTime::now(), None, Vec::new());
    let record = NewRecord::new([7; 32], Bytes::from(notification("slow", 2)), envelope);
    let Appended::Stored(id) = store_b.append(record.started(false)).await.unwrap() else {
        panic!("stored");
    };
    tokio::task::spawn_blocking(move || started.recv_timeout(Duration::from_secs(20)))
        .await
        .unwrap()
        .expect("A's handler started within 20 s");

    // B, started while A is stalled, takes the notification over once A's lease lapses. Its
    // handler wakes A up, and completes only once A has tried and A's outcome has had time
    // to be written: both run at once, and the claim is B's.
    let url_b = url.clone();
    let resume_a = Arc::new(Mutex::new(resume_a));
    let late_b = Arc::clone(&late);
    let receiver_b = Receiver::builder(move |d: Delivery<TaskNotification>| {
        let (url, resume_a, late) = (url_b.clone(), Arc::clone(&resume_a), Arc::clone(&late_b));
        async move {
            let mut client = connect(&url).await;
            let tx = client.transaction().await?;
            write_calls(&tx, "team_taken_over", &d, "B").await?;
            let _ = resume_a.lock().unwrap().send(());
            support::wait_until("A's late completion", || late.lock().unwrap().is_some()).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            d.complete_in(&tx).await?;
            tx.commit().await?;
            Ok::<_, BoxError>(())
        }
    })
    .allow_unauthenticated()
    .durable(store_b.clone())
    .build()
    .unwrap();
    wait_handled(&store_b, "taken_over", &url, 1).await;
    assert_eq!(
        *late.lock().unwrap(),
        Some(Err(StoreErrorKind::NotFound)),
        "A's completion is refused: the claim is B's"
    );
    let _ = stop_a.send(());
    tokio::task::spawn_blocking(move || a.join())
        .await
        .unwrap()
        .unwrap();
    support::stop(&receiver_b).await;

    let rows = team_rows(&url, "team_taken_over").await;
    let by: Vec<_> = rows.iter().map(|(_, _, by)| by.as_str()).collect();
    assert_eq!(
        by,
        ["B", "B"],
        "each call written once, by B; A's rows rolled back"
    );
    let record = store_b.get(id).await.unwrap().unwrap();
    assert_eq!(record.state, RecordState::Handled);
    assert_eq!(record.attempts, 2, "A's attempt, then B's");
    assert_eq!(
        record.history.iter().map(|a| a.outcome).collect::<Vec<_>>(),
        [AttemptOutcome::Ok],
        "B's attempt; A's failure is not written over B's claim"
    );
}

/// Runs `completion` with tokio-postgres' plain `execute`, as any driver would, after a write
/// of its own; commits. Returns the completion's error, if any.
async fn complete_plainly(
    client: &mut Client,
    completion: &Completion,
    schema: &str,
    task: &str,
) -> Result<u64, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute(
        &format!(
            "INSERT INTO {schema}.calls (task_id, call_id, written_by) VALUES ($1, 0, 'plain')"
        ),
        &[&task],
    )
    .await?;
    let completed = tx
        .execute(completion.sql(), &[&completion.id(), &completion.owner()])
        .await;
    // Committed even after a failure, as a careless caller would: PostgreSQL rolls it back.
    let _ = tx.commit().await;
    completed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_statement_completes_with_any_driver_and_refuses_when_not_claimed() {
    let url = shared_cluster().url();
    let store = fresh(&url, "plain", Duration::from_secs(15)).await;
    team_table(&url, "team_plain").await;
    let given: Arc<Mutex<Vec<(Completion, u64)>>> = Arc::default();
    let seen = Arc::clone(&given);
    let url_h = url.clone();
    let receiver = Receiver::builder(move |d: Delivery<TaskNotification>| {
        let (url, seen) = (url_h.clone(), Arc::clone(&seen));
        async move {
            let completion = d.completion()?.clone();
            let mut client = connect(&url).await;
            // With the parameters written into each plan, too: the refusal must not be
            // evaluated ahead of time.
            let mode = match &*d.task_id {
                "custom" => "force_custom_plan",
                _ => "force_generic_plan",
            };
            client
                .batch_execute(&format!("SET plan_cache_mode = {mode}"))
                .await?;
            let rows = complete_plainly(&mut client, &completion, "team_plain", &d.task_id).await?;
            seen.lock().unwrap().push((completion, rows));
            Ok::<_, BoxError>(())
        }
    })
    .allow_unauthenticated()
    .durable(store.clone())
    .build()
    .unwrap();
    post(&receiver, notification("custom", 1)).await;
    post(&receiver, notification("generic", 1)).await;
    wait_handled(&store, "plain", &url, 2).await;
    support::stop(&receiver).await;
    let mut completions = given.lock().unwrap().clone();
    completions.sort_by_key(|(c, _)| c.id());
    assert_eq!(
        completions
            .iter()
            .map(|(_, rows)| *rows)
            .collect::<Vec<_>>(),
        [1, 1],
        "one row each, the id"
    );
    let completions: Vec<Completion> = completions.into_iter().map(|(c, _)| c).collect();
    assert!(completions.iter().all(|c| c.owner() == store.owner()));
    assert!(completions[0].sql().contains("plain.notifications"));

    // Handled: refused, and the write beside it rolled back.
    let mut client = connect(&url).await;
    for (completion, mode) in completions
        .iter()
        .zip(["force_custom_plan", "force_generic_plan"])
    {
        client
            .batch_execute(&format!("SET plan_cache_mode = {mode}"))
            .await
            .unwrap();
        let err = complete_plainly(&mut client, completion, "team_plain", "late")
            .await
            .unwrap_err();
        let db = err.as_db_error().expect("refused by PostgreSQL");
        assert_eq!(
            db.code(),
            &tokio_postgres::error::SqlState::INVALID_TEXT_REPRESENTATION
        );
        assert!(
            db.message().contains(&format!(
                "airudder-webhook: notification {} is no longer pending under the claim of {}",
                completion.id(),
                completion.owner()
            )),
            "{}",
            db.message()
        );
    }

    // Pending again and claimed by another receiver: refused too.
    let id = completions[0].id() as u64;
    store.replay(id).await.unwrap();
    let other = store.for_another_receiver();
    assert_eq!(
        other
            .claim_and_begin("task_notification", 10, usize::MAX, usize::MAX)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        complete_plainly(&mut client, &completions[0], "team_plain", "late")
            .await
            .is_err()
    );
    assert_eq!(
        store.get(id).await.unwrap().unwrap().state,
        RecordState::Pending,
        "still the other's"
    );

    let tasks: Vec<_> = team_rows(&url, "team_plain")
        .await
        .into_iter()
        .map(|(task, _, _)| task)
        .collect();
    assert_eq!(
        tasks,
        ["custom", "generic"],
        "the refused transactions left nothing"
    );
    other.release().await.unwrap();
}

#[tokio::test]
async fn a_delivery_from_another_store_has_nothing_to_complete() {
    let dir = crate::support::process::DataDir::new();
    let store = airudder_webhook::store::RedbStore::open(&dir.0).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let receiver = Receiver::builder(move |d: Delivery<TaskNotification>| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(d.completion().map(drop).map_err(|e| e.kind()));
            Ok::<_, BoxError>(())
        }
    })
    .allow_unauthenticated()
    .durable(store)
    .build()
    .unwrap();
    post(&receiver, notification("redb", 1)).await;
    let seen = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, Err(StoreErrorKind::NotFound));
    support::stop(&receiver).await;
}
