//! The PostgreSQL store, against a real server that the tests start themselves (a throwaway
//! cluster from Debian's `postgresql` package): the store's contract, migrations raced by
//! several receivers, two receiver processes sharing one database, one of them SIGKILLed
//! under load, and the database restarted under load.

use crate::support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::support::postgres::Cluster;
use crate::support::process::{DataDir, collect, start_in, terminate, wait_printed};
use airudder_webhook::store::{
    Appended, Attempt, AttemptOutcome, DEFAULT_KIND, Envelope, MAX_HISTORY, NewRecord,
    PostgresOptions, PostgresStore, Record, RecordId, RecordQuery, RecordState, RefusedBodyLimits,
    RefusedBodySummary, Store, StoreError, StoreErrorKind,
};
use bytes::Bytes;

/// One cluster for the tests that do not stop it; each test uses a schema of its own.
pub(crate) fn shared_cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::start)
}

pub(crate) async fn store(url: &str, schema: &str, lease: Duration) -> PostgresStore {
    let options = PostgresOptions::default()
        .schema(schema)
        .unwrap()
        .lease(lease);
    PostgresStore::connect_with(url, options).await.unwrap()
}

fn record(key: u8, body: &'static [u8]) -> NewRecord {
    let envelope = Envelope::new(SystemTime::now(), Some("127.0.0.1:9".into()), Vec::new());
    NewRecord::new([key; 32], Bytes::from_static(body), envelope).started(true)
}

/// A record under a 32-byte key made of `n`, not handed on at once (it waits for a claim).
fn waiting(n: u32, kind: &str) -> NewRecord {
    let mut key = [0u8; 32];
    key[..4].copy_from_slice(&n.to_be_bytes());
    let envelope = Envelope::new(SystemTime::now(), None, Vec::new()).with_kind(kind);
    NewRecord::new(key, Bytes::from_static(b"{}"), envelope).started(false)
}

/// A successful attempt, now.
fn ok() -> Attempt {
    Attempt::new(
        SystemTime::now(),
        Duration::from_millis(3),
        AttemptOutcome::Ok,
    )
}

/// A failed attempt, now.
fn failed(error: &str) -> Attempt {
    Attempt::failed_now(error)
}

fn stored(appended: Appended) -> RecordId {
    match appended {
        Appended::Stored(id) => id,
        Appended::Duplicate(id) => panic!("a duplicate of {id}"),
    }
}

fn ids(records: &[airudder_webhook::store::Record]) -> Vec<RecordId> {
    records.iter().map(|record| record.id).collect()
}

#[tokio::test]
async fn the_store_keeps_its_contract() {
    let url = shared_cluster().url();
    let store = store(&url, "contract", Duration::from_secs(30)).await;

    let Appended::Stored(id) = store.append(record(1, b"{\"a\":1}")).await.unwrap() else {
        panic!("a new key is stored");
    };
    assert_eq!(
        store.append(record(1, b"{\"a\":1}")).await.unwrap(),
        Appended::Duplicate(id)
    );
    assert_eq!(
        store.begin_attempt(id).await.unwrap(),
        2,
        "append counts the first"
    );
    store
        .fail(id, failed("boom"), SystemTime::now())
        .await
        .unwrap();
    store.dead_letter(id, failed("gave up")).await.unwrap();
    let dead = store.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].id, dead[0].state, dead[0].attempts),
        (id, RecordState::Dead, 2)
    );
    assert_eq!(dead[0].last_error.as_deref(), Some("gave up"));
    assert_eq!(&dead[0].body[..], b"{\"a\":1}");
    assert_eq!(dead[0].envelope.peer.as_deref(), Some("127.0.0.1:9"));
    let errors: Vec<_> = dead[0].history.iter().map(|a| a.error.as_deref()).collect();
    assert_eq!(
        errors,
        [Some("boom"), Some("gave up")],
        "both attempts kept"
    );
    assert!(store.pending().await.unwrap().is_empty());

    let replayed = store.replay(id).await.unwrap();
    assert_eq!(
        (replayed.state, replayed.attempts),
        (RecordState::Pending, 0)
    );
    assert_eq!(
        store.replay(id).await.unwrap_err().kind(),
        StoreErrorKind::NotFound,
        "only a dead letter or a handled record is replayed"
    );
    assert_eq!(
        store.begin_attempt(id).await.unwrap_err().kind(),
        StoreErrorKind::NotFound,
        "a replayed record is not held: it waits for a claim"
    );
    assert_eq!(ids(&store.claim(DEFAULT_KIND, 10).await.unwrap()), [id]);
    assert_eq!(store.begin_attempt(id).await.unwrap(), 1);
    store.complete_all(vec![(id, ok())]).await.unwrap();
    let done = store
        .get(id)
        .await
        .unwrap()
        .expect("a handled record is kept");
    assert_eq!(done.state, RecordState::Handled, "done");
    assert_eq!(done.history.len(), 3, "its history kept across the replay");
    assert!(store.pending().await.unwrap().is_empty());
    assert_eq!(
        store.complete(id, ok()).await.unwrap_err().kind(),
        StoreErrorKind::NotFound,
        "done once"
    );
    assert_eq!(
        store.append(record(1, b"{\"a\":1}")).await.unwrap(),
        Appended::Duplicate(id),
        "the key stays claimed once done"
    );
    assert_eq!(store.prune(SystemTime::UNIX_EPOCH).await.unwrap(), 0);
    let later = SystemTime::now() + Duration::from_secs(1);
    assert_eq!(
        store.prune(later).await.unwrap(),
        1,
        "done and old: its key forgotten"
    );
    assert_eq!(
        store.get(id).await.unwrap().map(|r| r.state),
        Some(RecordState::Handled),
        "the record stays for its retention"
    );
    assert!(matches!(
        store.append(record(1, b"{\"a\":1}")).await.unwrap(),
        Appended::Stored(new) if new != id
    ));

    let kept = store
        .reject(
            422,
            "wrong shape".into(),
            record(9, b"").envelope,
            Bytes::from_static(b"[1]"),
        )
        .await
        .unwrap();
    let rejected = store.rejected().await.unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        (
            rejected[0].id,
            rejected[0].status,
            &rejected[0].reason[..],
            &rejected[0].body[..]
        ),
        (kept, 422, "wrong shape", &b"[1]"[..])
    );
    store.remove_rejected(kept).await.unwrap();
    assert_eq!(
        store.remove_rejected(kept).await.unwrap_err().kind(),
        StoreErrorKind::NotFound
    );
    assert!(store.rejected().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_lapsed_claim_is_taken_over_and_the_old_owner_stands_down() {
    let url = shared_cluster().url();
    let first = store(&url, "claims", Duration::from_secs(1)).await;
    let second = store(&url, "claims", Duration::from_secs(1)).await;

    let Appended::Stored(id) = first.append(record(2, b"{}")).await.unwrap() else {
        panic!("stored");
    };
    assert!(
        second
            .claim(airudder_webhook::store::DEFAULT_KIND, 10)
            .await
            .unwrap()
            .is_empty(),
        "claimed by its first receiver"
    );
    first.renew().await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    first.renew().await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        second
            .claim(airudder_webhook::store::DEFAULT_KIND, 10)
            .await
            .unwrap()
            .is_empty(),
        "renewed: still the first's"
    );

    tokio::time::sleep(Duration::from_millis(1200)).await; // no renewal: the claim lapses
    let taken = second
        .claim(airudder_webhook::store::DEFAULT_KIND, 10)
        .await
        .unwrap();
    assert_eq!(taken.iter().map(|r| r.id).collect::<Vec<_>>(), [id]);
    assert_eq!(
        first.begin_attempt(id).await.unwrap_err().kind(),
        StoreErrorKind::NotFound,
        "the first receiver no longer holds it"
    );
    assert_eq!(second.begin_attempt(id).await.unwrap(), 2);

    assert_eq!(second.release().await.unwrap(), 1);
    let taken = first
        .claim(airudder_webhook::store::DEFAULT_KIND, 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "released: claimable at once");
    first.complete_all(vec![(id, ok())]).await.unwrap();
    assert!(
        second
            .claim(airudder_webhook::store::DEFAULT_KIND, 10)
            .await
            .unwrap()
            .is_empty(),
        "done is never claimed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_starting_at_once_migrate_the_schema_once() {
    let url = shared_cluster().url();
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { store(&url, "raced", Duration::from_secs(15)).await })
        })
        .collect();
    let mut stores = Vec::new();
    for start in starts {
        stores.push(start.await.unwrap());
    }
    let keys: HashSet<_> = stores.iter().map(PostgresStore::owner).collect();
    assert_eq!(keys.len(), 8, "each store claims under a name of its own");
    assert!(matches!(
        stores[3].append(record(3, b"{}")).await.unwrap(),
        Appended::Stored(_)
    ));
    assert!(matches!(
        stores[5].append(record(3, b"{}")).await.unwrap(),
        Appended::Duplicate(_)
    ));
}

#[tokio::test]
async fn a_bad_schema_name_or_an_unreachable_database_is_an_error() {
    assert_eq!(
        PostgresOptions::default()
            .schema("x; DROP TABLE y")
            .unwrap_err()
            .kind(),
        StoreErrorKind::Invalid
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // nobody listens there once the listener is dropped
    let options = PostgresOptions::default().timeout(Duration::from_secs(2));
    let err =
        PostgresStore::connect_with(&format!("postgres://postgres@127.0.0.1:{port}/x"), options)
            .await
            .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
}

/// Environment for a receiver example process on `url`'s database.
fn receiver_env<'a>(url: &'a str, schema: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("AIRUDDER_DATABASE_URL", url),
        ("AIRUDDER_DATABASE_SCHEMA", schema),
        ("AIRUDDER_LEASE_SECS", "2"),
        ("RUST_LOG", "warn"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_receivers_given_the_same_notification_at_once_handle_it_once() {
    let url = shared_cluster().url();
    let env = receiver_env(&url, "two_receivers");
    let (data_a, data_b) = (DataDir::new(), DataDir::new());
    let printed = Arc::new(Mutex::new(Vec::new()));
    let a = start_in("receiver", &data_a, &env).await;
    let b = start_in("receiver", &data_b, &env).await;
    let (url_a, url_b) = (
        format!("http://{}/airudder/task", a.addr),
        format!("http://{}/airudder/task", b.addr),
    );
    let (mut child_a, reader_a) = collect(a, Arc::clone(&printed));
    let (mut child_b, reader_b) = collect(b, Arc::clone(&printed));

    let mut acked = HashSet::new();
    for i in 0..40 {
        let task = format!("both-{i}");
        let body = support::example_with_task_id(&task);
        let (to_a, to_b) = tokio::join!(
            support::try_send(&url_a, body.clone()),
            support::try_send(&url_b, body)
        );
        assert_eq!((to_a.unwrap().as_u16(), to_b.unwrap().as_u16()), (200, 200));
        acked.insert(task);
    }
    let times = wait_printed(&acked, &printed, Duration::from_secs(30)).await;
    let twice: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "handled more than once: {twice:?}");

    for (child, reader) in [(&mut child_a, reader_a), (&mut child_b, reader_b)] {
        let status = terminate(child).await;
        let logs = reader.await.unwrap();
        assert!(status.success(), "exit {status}:\n{logs}");
    }
}

/// A load client: the task ids it got a 200 for, and how many of each status it saw.
type Client = tokio::task::JoinHandle<(Vec<String>, HashMap<u16, usize>)>;

/// Posts distinct notifications to `url` until `stop` is set or the receiver is gone;
/// returns the acknowledged task ids and every status seen.
fn client(url: String, prefix: String, stop: Arc<AtomicBool>, acks: Arc<AtomicUsize>) -> Client {
    tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut statuses = HashMap::new();
        for i in 0.. {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let task = format!("{prefix}-{i}");
            match support::try_send(&url, support::example_with_task_id(&task)).await {
                Ok(status) => {
                    *statuses.entry(status.as_u16()).or_default() += 1;
                    if status == 200 {
                        acked.push(task);
                        acks.fetch_add(1, Ordering::SeqCst);
                    } else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                Err(_) => break, // the receiver is gone
            }
        }
        (acked, statuses)
    })
}

/// `n` clients posting to `url`, sharing one stop flag and one count of acknowledgements.
fn clients(
    n: usize,
    url: &str,
    prefix: &str,
    stop: &Arc<AtomicBool>,
    acks: &Arc<AtomicUsize>,
) -> Vec<Client> {
    (0..n)
        .map(|c| {
            client(
                url.to_owned(),
                format!("{prefix}{c}"),
                Arc::clone(stop),
                Arc::clone(acks),
            )
        })
        .collect()
}

async fn wait_for(count: &AtomicUsize, at_least: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while count.load(Ordering::SeqCst) < at_least {
        assert!(Instant::now() < deadline, "{what}: too slow");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_killed_under_load_leaves_every_acknowledged_notification_to_the_other() {
    let url = shared_cluster().url();
    let mut env = receiver_env(&url, "killed");
    // A slow handler: A has acknowledged notifications it has not handled when it dies.
    env.push(("AIRUDDER_HANDLER_DELAY_MS", "20"));
    let (data_a, data_b) = (DataDir::new(), DataDir::new());
    let printed_a = Arc::new(Mutex::new(Vec::new()));
    let printed_b = Arc::new(Mutex::new(Vec::new()));
    let a = start_in("receiver", &data_a, &env).await;
    let b = start_in("receiver", &data_b, &env).await;
    let (url_a, url_b) = (
        format!("http://{}/airudder/task", a.addr),
        format!("http://{}/airudder/task", b.addr),
    );
    let (mut child_a, reader_a) = collect(a, Arc::clone(&printed_a));
    let (mut child_b, reader_b) = collect(b, Arc::clone(&printed_b));

    let (stop_a, stop_b) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (acks_a, acks_b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients_a = clients(4, &url_a, "a", &stop_a, &acks_a);
    let clients_b = clients(2, &url_b, "b", &stop_b, &acks_b);
    wait_for(&acks_a, 200, "receiver A").await;
    child_a.start_kill().unwrap(); // SIGKILL, mid-stream
    child_a.wait().await.unwrap();
    stop_a.store(true, Ordering::SeqCst);
    let acked_b_at_kill = acks_b.load(Ordering::SeqCst);
    wait_for(&acks_b, acked_b_at_kill + 50, "receiver B after the kill").await;
    stop_b.store(true, Ordering::SeqCst);

    let mut acked_by_a = HashSet::new();
    let mut acked = HashSet::new();
    for (i, client) in clients_a.into_iter().chain(clients_b).enumerate() {
        let (tasks, statuses) = client.await.unwrap();
        assert_eq!(
            statuses.keys().copied().collect::<Vec<_>>(),
            [200],
            "only 200s: {statuses:?}"
        );
        if i < 4 {
            acked_by_a.extend(tasks.iter().cloned());
        }
        acked.extend(tasks);
    }
    reader_a.await.unwrap();
    let printed_by_a: HashSet<String> = printed_a.lock().unwrap().iter().cloned().collect();
    // From here on B's collector adds to what A printed.
    printed_b
        .lock()
        .unwrap()
        .extend(printed_a.lock().unwrap().iter().cloned());
    let times = wait_printed(&acked, &printed_b, Duration::from_secs(30)).await;
    let taken_over = acked_by_a
        .iter()
        .filter(|t| !printed_by_a.contains(*t))
        .count();
    let twice = times.values().filter(|n| **n > 1).count();
    eprintln!(
        "{} acknowledged ({} by A before its SIGKILL); {taken_over} of A's handled by B, \
         {twice} printed twice (A printed them but died before marking them done)",
        acked.len(),
        acked_by_a.len(),
    );
    assert!(
        taken_over > 0,
        "A had handled everything: nothing to take over"
    );
    let status = terminate(&mut child_b).await;
    let logs = reader_b.await.unwrap();
    assert!(status.success(), "exit {status}:\n{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_restarted_under_load_gives_503s_then_recovers_losing_nothing() {
    let mut cluster = Cluster::start(); // its own: this test stops it
    let url = cluster.url();
    let env = receiver_env(&url, "restarted");
    let data = DataDir::new();
    let printed = Arc::new(Mutex::new(Vec::new()));
    let running = start_in("receiver", &data, &env).await;
    let receiver = format!("http://{}/airudder/task", running.addr);
    let (mut child, reader) = collect(running, Arc::clone(&printed));

    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicUsize::new(0));
    let clients = clients(4, &receiver, "r", &stop, &acks);
    wait_for(&acks, 100, "before the restart").await;
    tokio::task::block_in_place(|| cluster.stop());
    tokio::time::sleep(Duration::from_millis(300)).await; // answers already on their way
    let acked_while_stopping = acks.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2700)).await;
    let acked_while_down = acks.load(Ordering::SeqCst) - acked_while_stopping;
    tokio::task::block_in_place(|| cluster.resume());
    let resumed = acks.load(Ordering::SeqCst);
    wait_for(&acks, resumed + 100, "after the restart").await;
    stop.store(true, Ordering::SeqCst);

    let mut acked = HashSet::new();
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for client in clients {
        let (tasks, seen) = client.await.unwrap();
        acked.extend(tasks);
        for (status, n) in seen {
            *statuses.entry(status).or_default() += n;
        }
    }
    assert_eq!(
        acked_while_down, 0,
        "nothing acknowledged with the database down"
    );
    assert!(
        statuses.get(&503).copied().unwrap_or(0) > 0,
        "503s while down: {statuses:?}"
    );
    let mut kinds: Vec<_> = statuses.keys().copied().collect();
    kinds.sort_unstable();
    assert_eq!(kinds, [200, 503], "{statuses:?}");
    let times = wait_printed(&acked, &printed, Duration::from_secs(30)).await;
    eprintln!(
        "{} acknowledged around a database restart, {} answered 503; {} printed twice",
        acked.len(),
        statuses[&503],
        times.values().filter(|n| **n > 1).count()
    );
    // Down longer than the 2 s lease: the receiver's own claims lapsed, and the notifications it
    // handled while their "done" marks could not be written must not be taken back and handled
    // again.
    assert!(
        times.values().all(|n| *n == 1),
        "handled twice: {:?}",
        times.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    let status = terminate(&mut child).await;
    let logs = reader.await.unwrap();
    assert!(status.success(), "exit {status}:\n{logs}");
}

#[tokio::test]
async fn a_claim_takes_only_its_kind_and_each_receiver_of_a_process_claims_apart() {
    let url = shared_cluster().url();
    let first = store(&url, "kinds", Duration::from_secs(1)).await;
    let chat = Envelope::new(SystemTime::now(), None, vec![]).with_kind("chatbot_session_end");
    let Appended::Stored(task) = first.append(record(7, b"{}")).await.unwrap() else {
        panic!("stored");
    };
    let Appended::Stored(chatbot) = first
        .append(NewRecord::new([8; 32], Bytes::from_static(b"{}"), chat).started(true))
        .await
        .unwrap()
    else {
        panic!("stored");
    };
    tokio::time::sleep(Duration::from_millis(1100)).await; // both claims lapse (1 s at least)
    let other = store(&url, "kinds", Duration::from_secs(1)).await;
    let chats = other.claim("chatbot_session_end", 10).await.unwrap();
    assert_eq!(chats.iter().map(|r| r.id).collect::<Vec<_>>(), [chatbot]);
    assert_eq!(chats[0].envelope.kind(), "chatbot_session_end");
    // The record stored without a kind is the task notification receiver's.
    let sibling = other.for_another_receiver();
    assert_ne!(sibling.owner(), other.owner());
    let tasks = sibling.claim(DEFAULT_KIND, 10).await.unwrap();
    assert_eq!(tasks.iter().map(|r| r.id).collect::<Vec<_>>(), [task]);
    // Releasing one receiver's claims leaves the other's alone.
    assert_eq!(sibling.release().await.unwrap(), 1);
    assert!(
        other
            .claim("chatbot_session_end", 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(other.release().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_arriving_together_are_written_together_and_each_key_is_stored_once() {
    let url = shared_cluster().url();
    let store = store(&url, "groups", Duration::from_secs(15)).await;
    // 400 appends at once, of 50 keys: equal keys land in one group and across groups.
    let appends: Vec<_> = (0..400u32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = (i % 50) as u8;
                (key, store.append(record(key, b"{}")).await.unwrap())
            })
        })
        .collect();
    let mut stored: HashMap<u8, u64> = HashMap::new();
    let mut duplicates: Vec<(u8, u64)> = Vec::new();
    for append in appends {
        match append.await.unwrap() {
            (key, Appended::Stored(id)) => {
                assert!(stored.insert(key, id).is_none(), "key {key} stored twice");
            }
            (key, Appended::Duplicate(id)) => duplicates.push((key, id)),
        }
    }
    assert_eq!(stored.len(), 50);
    assert_eq!(duplicates.len(), 350);
    for (key, id) in duplicates {
        assert_eq!(
            stored[&key], id,
            "a duplicate names the stored record of its key"
        );
    }
    assert_eq!(store.pending().await.unwrap().len(), 50);
}

// ---- Refused bodies are bounded ----------------------------------------------------------------

async fn limited(url: &str, schema: &str, max_bytes: u64, max_age: Duration) -> PostgresStore {
    let options = PostgresOptions::default()
        .schema(schema)
        .unwrap()
        .keep_rejected(RefusedBodyLimits::new(max_bytes, max_age));
    PostgresStore::connect_with(url, options).await.unwrap()
}

async fn reject(store: &PostgresStore, n: u8, len: usize) -> Result<RecordId, StoreError> {
    let envelope = Envelope::new(SystemTime::now(), Some(format!("10.0.0.{n}:1")), Vec::new());
    let body = Bytes::from(vec![n; len]);
    store
        .reject(400, format!("reason {n}"), envelope, body)
        .await
}

async fn kept_ids(store: &PostgresStore) -> Vec<RecordId> {
    let page = store.rejected_page(0, 1000).await.unwrap();
    page.iter().map(|kept| kept.id).collect()
}

#[tokio::test]
async fn refused_bodies_over_the_cap_push_out_the_oldest_and_are_listed_a_page_at_a_time() {
    let url = shared_cluster().url();
    // Ten bodies of 1,000 bytes, each with its record (reason, envelope) and 4 KiB.
    let cap = 10 * (1000 + RefusedBodyLimits::ENTRY_COST + 500);
    let store = limited(
        &url,
        "rejected_cap",
        cap,
        RefusedBodyLimits::DEFAULT_MAX_AGE,
    )
    .await;
    let mut ids = Vec::new();
    for n in 0..25u8 {
        ids.push(reject(&store, n, 1000).await.unwrap());
    }
    assert_eq!(
        kept_ids(&store).await,
        ids[15..],
        "the newest ten fill the cap"
    );
    assert_eq!(store.rejected_dropped(), 15);

    // Under the cap by its bytes, over it with its record's.
    let err = reject(&store, 99, cap as usize - 1000).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Invalid);
    let message = err.to_string();
    assert!(
        message.contains(&format!("a refused body of {} bytes (", cap - 1000))
            && message.contains(&format!("is over the refused bodies' cap of {cap} bytes")),
        "{err}"
    );
    assert_eq!(store.rejected_dropped(), 15, "nothing dropped for it");

    // Pages: ids after the last one seen, oldest first, lengths without bytes.
    let first = store.rejected_page(0, 4).await.unwrap();
    let second = store.rejected_page(first[3].id, 4).await.unwrap();
    let last = store.rejected_page(ids[23], 4).await.unwrap();
    let page_ids =
        |page: &[RefusedBodySummary]| page.iter().map(|kept| kept.id).collect::<Vec<_>>();
    assert_eq!(page_ids(&first), ids[15..19]);
    assert_eq!(page_ids(&second), ids[19..23]);
    assert_eq!(page_ids(&last), [ids[24]]);
    assert!(store.rejected_page(ids[24], 4).await.unwrap().is_empty());
    assert!(store.rejected_page(u64::MAX, 4).await.unwrap().is_empty());
    assert_eq!(
        (
            first[1].status,
            &first[1].reason[..],
            first[1].bytes,
            first[1].envelope.peer.as_deref()
        ),
        (400, "reason 16", 1000, Some("10.0.0.16:1"))
    );
    let one = store.get_rejected(ids[20]).await.unwrap().unwrap();
    assert_eq!(one.body, vec![20u8; 1000]);
    assert!(
        store.get_rejected(ids[0]).await.unwrap().is_none(),
        "dropped"
    );

    // A forgotten body leaves room.
    store.remove_rejected(ids[15]).await.unwrap();
    let next = reject(&store, 30, 1000).await.unwrap();
    assert_eq!(kept_ids(&store).await.len(), 10);
    assert_eq!(*kept_ids(&store).await.last().unwrap(), next);
    assert_eq!(store.rejected_dropped(), 15);

    // A cap of 0 keeps none, not even an empty body.
    let none = limited(&url, "rejected_cap", 0, RefusedBodyLimits::DEFAULT_MAX_AGE).await;
    assert_eq!(
        reject(&none, 1, 0).await.unwrap_err().kind(),
        StoreErrorKind::Invalid
    );
}

#[tokio::test]
async fn a_flood_of_empty_refused_bodies_keeps_the_cap_over_what_each_entry_costs() {
    let url = shared_cluster().url();
    // Each row costs 4 KiB and its reason and envelope (about 60 bytes here): 15 fit.
    let cap = 16 * RefusedBodyLimits::ENTRY_COST;
    let store = limited(
        &url,
        "rejected_flood",
        cap,
        RefusedBodyLimits::DEFAULT_MAX_AGE,
    )
    .await;
    let mut ids = Vec::new();
    for n in 0..100u8 {
        ids.push(reject(&store, n, usize::from(n % 2)).await.unwrap());
    }
    assert_eq!(kept_ids(&store).await, ids[85..], "the newest 15");
    assert_eq!(store.rejected_dropped(), 85);
}

#[tokio::test]
async fn refused_bodies_past_their_age_go_at_the_next_refusal_and_at_the_prune() {
    let url = shared_cluster().url();
    let age = Duration::from_secs(1);
    let store = limited(
        &url,
        "rejected_age",
        RefusedBodyLimits::DEFAULT_MAX_BYTES,
        age,
    )
    .await;
    let old = reject(&store, 1, 10).await.unwrap();
    tokio::time::sleep(age + Duration::from_millis(300)).await;
    let young = reject(&store, 2, 10).await.unwrap();
    assert_eq!(kept_ids(&store).await, [young], "gone at the next refusal");
    assert_eq!(store.rejected_dropped(), 1);
    tokio::time::sleep(age + Duration::from_millis(300)).await;
    // No refusal since; the receiver prunes hourly, and the age goes with it.
    assert_eq!(store.prune(SystemTime::UNIX_EPOCH).await.unwrap(), 0);
    assert!(kept_ids(&store).await.is_empty(), "gone at the prune");
    assert_eq!(store.rejected_dropped(), 2);
    assert!(store.get_rejected(old).await.unwrap().is_none());
}

/// Migration 1 as it shipped, for a schema made before the refused bodies' byte counts.
const MIGRATION_1: &str = r"
    CREATE SCHEMA {schema};
    CREATE TABLE {schema}.schema_migrations (
        version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now());
    CREATE TABLE {schema}.notifications (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        dedup_key   BYTEA NOT NULL UNIQUE,
        state       SMALLINT NOT NULL,
        attempts    INTEGER NOT NULL,
        last_error  TEXT,
        envelope    TEXT NOT NULL,
        body        BYTEA,
        stored_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
        claimed_by  TEXT,
        lease_until TIMESTAMPTZ
    );
    CREATE INDEX notifications_claimable ON {schema}.notifications (lease_until, id)
        WHERE state = 0;
    CREATE INDEX notifications_done ON {schema}.notifications (stored_at) WHERE state = 2;
    CREATE TABLE {schema}.rejected (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        status      SMALLINT NOT NULL,
        reason      TEXT NOT NULL,
        envelope    TEXT NOT NULL,
        body        BYTEA NOT NULL,
        stored_at   TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    INSERT INTO {schema}.schema_migrations (version) VALUES (1);
";

#[tokio::test]
async fn refused_bodies_kept_before_their_byte_counts_are_counted_at_the_migration() {
    let url = shared_cluster().url();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&MIGRATION_1.replace("{schema}", "rejected_v1"))
        .await
        .unwrap();
    let envelope = r#"{"received_at_ms":1700000000000,"peer":null,"headers":[]}"#;
    for body in [vec![1u8; 600], vec![2u8; 300]] {
        client
            .execute(
                "INSERT INTO rejected_v1.rejected (status, reason, envelope, body) \
                 VALUES (400, 'malformed JSON', $1, $2)",
                &[&envelope, &body],
            )
            .await
            .unwrap();
    }

    // Two of them with their records, not three.
    let cap = 2 * RefusedBodyLimits::ENTRY_COST + 1300;
    let store = limited(&url, "rejected_v1", cap, RefusedBodyLimits::DEFAULT_MAX_AGE).await;
    let page = store.rejected_page(0, 10).await.unwrap();
    let listed: Vec<_> = page.iter().map(|kept| (kept.id, kept.bytes)).collect();
    assert_eq!(listed, [(1, 600), (2, 300)]);
    // The counts carry the cap: 300 more push out the oldest.
    let next = reject(&store, 3, 300).await.unwrap();
    assert_eq!(kept_ids(&store).await, [2, next]);
    assert_eq!(store.rejected_dropped(), 1);
}

// ---- The store is the queue ---------------------------------------------------------------------

/// A store on its own schema, dropped first so that a rerun starts empty.
pub(crate) async fn fresh(url: &str, schema: &str, lease: Duration) -> PostgresStore {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .unwrap();
    store(url, schema, lease).await
}

#[tokio::test]
async fn a_claim_takes_due_records_only_soonest_due_first() {
    let url = shared_cluster().url();
    let store = fresh(&url, "due_order", Duration::from_secs(30)).await;
    let now = SystemTime::now();
    // Held by this store (started), then each failed with its due time.
    let mut id = Vec::new();
    for n in 0..4 {
        id.push(stored(store.append(record(n, b"{}")).await.unwrap()));
    }
    let due = [
        now + Duration::from_secs(3600),
        now - Duration::from_secs(1),
        now - Duration::from_secs(3),
        now - Duration::from_secs(2),
    ];
    for (id, due) in id.iter().zip(due) {
        store.fail(*id, failed("later"), due).await.unwrap();
    }
    let first = store.claim(DEFAULT_KIND, 2).await.unwrap();
    assert_eq!(ids(&first), [id[2], id[3]], "soonest due first, a page");
    assert_eq!(
        first[0].due_at_ms,
        due[2]
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    );
    assert_eq!(ids(&store.claim(DEFAULT_KIND, 10).await.unwrap()), [id[1]]);
    assert!(
        store.claim(DEFAULT_KIND, 10).await.unwrap().is_empty(),
        "not due yet, or held"
    );
    assert!(!store.make_due(id[1]).await.unwrap(), "held: left alone");
    assert!(store.make_due(id[0]).await.unwrap(), "due in an hour: now");
    assert!(!store.make_due(id[0]).await.unwrap(), "already due");
    assert_eq!(ids(&store.claim(DEFAULT_KIND, 10).await.unwrap()), [id[0]]);

    // Waiting records (not started): unclaimed, attempts 0, due at once, in id order.
    let a = stored(store.append(waiting(100, DEFAULT_KIND)).await.unwrap());
    let b = stored(store.append(waiting(101, DEFAULT_KIND)).await.unwrap());
    assert_eq!(
        store.begin_attempt(a).await.unwrap_err().kind(),
        StoreErrorKind::NotFound,
        "not held until claimed"
    );
    let claimed = store.claim(DEFAULT_KIND, 10).await.unwrap();
    assert_eq!(ids(&claimed), [a, b]);
    assert_eq!(claimed[0].attempts, 0);
    assert_eq!(store.begin_attempt(a).await.unwrap(), 1);
    assert!(store.claim(DEFAULT_KIND, 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_claim_that_begins_counts_in_its_statement_and_an_unclaim_takes_it_back() {
    let url = shared_cluster().url();
    let first = fresh(&url, "claim_begin", Duration::from_secs(30)).await;
    let second = store(&url, "claim_begin", Duration::from_secs(30)).await;
    let a = stored(first.append(waiting(1, DEFAULT_KIND)).await.unwrap());
    let b = stored(first.append(waiting(2, DEFAULT_KIND)).await.unwrap());
    let claimed = first
        .claim_and_begin(DEFAULT_KIND, 10, usize::MAX, usize::MAX)
        .await
        .unwrap();
    assert_eq!(ids(&claimed), [a, b]);
    assert!(claimed.iter().all(|record| record.attempts == 1));
    assert_eq!(first.get(a).await.unwrap().unwrap().attempts, 1);
    assert!(
        second
            .claim_and_begin(DEFAULT_KIND, 10, usize::MAX, usize::MAX)
            .await
            .unwrap()
            .is_empty(),
        "held by the first"
    );

    // Only its owner gives a record back: another store's unclaim leaves it as it is.
    second.unclaim(vec![a], true).await.unwrap();
    assert!(
        second
            .claim_and_begin(DEFAULT_KIND, 10, usize::MAX, usize::MAX)
            .await
            .unwrap()
            .is_empty()
    );
    first.unclaim(vec![a], true).await.unwrap();
    assert_eq!(first.get(a).await.unwrap().unwrap().attempts, 0);
    let taken = second
        .claim_and_begin(DEFAULT_KIND, 10, usize::MAX, usize::MAX)
        .await
        .unwrap();
    assert_eq!((ids(&taken), taken[0].attempts), (vec![a], 1));

    // A record handled meanwhile is left as it is.
    first.complete_all(vec![(b, ok())]).await.unwrap();
    first.unclaim(vec![b], true).await.unwrap();
    let done = first.get(b).await.unwrap().unwrap();
    assert_eq!((done.state, done.attempts), (RecordState::Handled, 1));
}

#[tokio::test]
async fn a_claim_counts_only_what_begins_at_once_and_an_outcome_counts_a_record_claimed_ahead() {
    let url = shared_cluster().url();
    let store = fresh(&url, "claim_ahead", Duration::from_secs(30)).await;
    let mut appended = Vec::new();
    for key in 1..=4 {
        appended.push(stored(
            store.append(waiting(key, DEFAULT_KIND)).await.unwrap(),
        ));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let [a, b, c, d] = appended[..] else {
        unreachable!()
    };
    let claimed = store
        .claim_and_begin(DEFAULT_KIND, 10, usize::MAX, 1)
        .await
        .unwrap();
    assert_eq!(ids(&claimed), [a, b, c, d]);
    let counts = |records: &[Record]| records.iter().map(|r| r.attempts).collect::<Vec<_>>();
    assert_eq!(
        counts(&claimed),
        [1, 0, 0, 0],
        "only the first begins at once"
    );
    for (id, attempts) in [(a, 1), (b, 0), (c, 0)] {
        assert_eq!(store.get(id).await.unwrap().unwrap().attempts, attempts);
    }

    // Claimed ahead, then started: each outcome's write counts the attempt.
    store
        .fail(b, failed("503").with_number(1), SystemTime::now())
        .await
        .unwrap();
    store
        .complete_all(vec![(c, ok().with_number(1))])
        .await
        .unwrap();
    store
        .dead_letter(d, failed("gone").with_number(1))
        .await
        .unwrap();
    for id in [b, c, d] {
        let record = store.get(id).await.unwrap().unwrap();
        assert_eq!(
            (record.attempts, record.history.len()),
            (1, 1),
            "record {id}"
        );
    }
    // A number below the count changes nothing.
    store.complete_all(vec![(a, ok())]).await.unwrap();
    assert_eq!(store.get(a).await.unwrap().unwrap().attempts, 1);

    // Claimed ahead, given back untried: nothing to take back.
    let taken = store
        .claim_and_begin(DEFAULT_KIND, 10, usize::MAX, 0)
        .await
        .unwrap();
    assert_eq!((ids(&taken), taken[0].attempts), (vec![b], 1));
    store.unclaim(vec![b], false).await.unwrap();
    assert_eq!(store.get(b).await.unwrap().unwrap().attempts, 1);
    let again = store
        .claim_and_begin(DEFAULT_KIND, 10, usize::MAX, 10)
        .await
        .unwrap();
    assert_eq!(
        (ids(&again), again[0].attempts),
        (vec![b], 2),
        "held no more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_claiming_at_once_never_take_the_same_record() {
    let url = shared_cluster().url();
    let first = fresh(&url, "skip_locked", Duration::from_secs(60)).await;
    let second = store(&url, "skip_locked", Duration::from_secs(60)).await;
    let appends: Vec<_> = (0..2000u32)
        .map(|n| {
            let first = first.clone();
            tokio::spawn(
                async move { stored(first.append(waiting(n, DEFAULT_KIND)).await.unwrap()) },
            )
        })
        .collect();
    let mut all = HashSet::new();
    for append in appends {
        all.insert(append.await.unwrap());
    }
    // Four claimers on each store, small pages, as fast as they can.
    let claimers: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            tokio::spawn(async move {
                let mut taken = Vec::new();
                loop {
                    let page = store.claim(DEFAULT_KIND, 7).await.unwrap();
                    if page.is_empty() {
                        return taken;
                    }
                    taken.extend(ids(&page));
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut total = 0;
    for claimer in claimers {
        for id in claimer.await.unwrap() {
            total += 1;
            assert!(seen.insert(id), "record {id} claimed twice");
        }
    }
    assert_eq!(total, all.len());
    assert_eq!(seen, all, "every record claimed once");
}

#[tokio::test]
async fn a_failed_record_is_not_claimed_before_its_due_time() {
    let url = shared_cluster().url();
    let store = fresh(&url, "due_later", Duration::from_secs(30)).await;
    let id = stored(store.append(record(1, b"{}")).await.unwrap());
    let due = SystemTime::now() + Duration::from_millis(1500);
    store
        .fail(id, failed("503 from the service"), due)
        .await
        .unwrap();
    let pending = store.pending().await.unwrap();
    assert_eq!(pending[0].attempts, 1);
    assert_eq!(
        pending[0].last_error.as_deref(),
        Some("503 from the service")
    );
    assert!(
        store.claim(DEFAULT_KIND, 10).await.unwrap().is_empty(),
        "not yet"
    );
    // Another store neither: it is not held, only not due.
    let other = store.for_another_receiver();
    assert!(other.claim(DEFAULT_KIND, 10).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let claimed = other.claim(DEFAULT_KIND, 10).await.unwrap();
    assert_eq!(ids(&claimed), [id], "due now");
    assert_eq!(claimed[0].history.len(), 1);
    assert_eq!(other.begin_attempt(id).await.unwrap(), 2);
    // A timeout without a message leaves how it ended as the last error.
    let timeout = Attempt::new(
        SystemTime::now(),
        Duration::from_secs(30),
        AttemptOutcome::Timeout,
    );
    other.dead_letter(id, timeout).await.unwrap();
    let dead = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        (dead.state, dead.last_error.as_deref(), dead.history.len()),
        (RecordState::Dead, Some("timeout"), 2)
    );
    assert_eq!(dead.history[1].outcome, AttemptOutcome::Timeout);
}

#[tokio::test]
async fn a_paused_kind_is_not_claimed_and_the_pause_is_shared() {
    let url = shared_cluster().url();
    let first = fresh(&url, "paused", Duration::from_secs(30)).await;
    let store = &first;
    let task = stored(store.append(waiting(1, DEFAULT_KIND)).await.unwrap());
    let chat = stored(
        store
            .append(waiting(2, "chatbot_session_end"))
            .await
            .unwrap(),
    );
    assert!(store.paused().await.unwrap().is_empty());
    store.set_paused(DEFAULT_KIND, true).await.unwrap();
    store.set_paused(DEFAULT_KIND, true).await.unwrap(); // twice is once
    let other = self::store(&url, "paused", Duration::from_secs(30)).await;
    assert_eq!(other.paused().await.unwrap(), [DEFAULT_KIND]);
    assert!(
        other.claim(DEFAULT_KIND, 10).await.unwrap().is_empty(),
        "paused"
    );
    assert_eq!(
        ids(&other.claim("chatbot_session_end", 10).await.unwrap()),
        [chat],
        "another kind goes on"
    );
    assert_eq!(store.pending().await.unwrap().len(), 2, "still stored");
    other.set_paused(DEFAULT_KIND, false).await.unwrap();
    assert!(store.paused().await.unwrap().is_empty());
    assert_eq!(ids(&store.claim(DEFAULT_KIND, 10).await.unwrap()), [task]);
}

#[tokio::test]
async fn a_handled_record_is_kept_with_its_history_and_found_by_its_task_id() {
    let url = shared_cluster().url();
    let store = fresh(&url, "handled", Duration::from_secs(30)).await;
    let new = record(1, b"{\"task\":1}").with_task_id("task-42");
    let id = stored(store.append(new).await.unwrap());
    stored(
        store
            .append(record(2, b"{}").with_task_id("task-43"))
            .await
            .unwrap(),
    );
    store
        .fail(id, failed("connection refused"), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(ids(&store.claim(DEFAULT_KIND, 1).await.unwrap()), [id]);
    assert_eq!(store.begin_attempt(id).await.unwrap(), 2);
    store
        .complete(id, ok().with_status(Some(204)))
        .await
        .unwrap();

    let handled = store.get(id).await.unwrap().unwrap();
    assert_eq!(handled.state, RecordState::Handled);
    assert_eq!(handled.task_id.as_deref(), Some("task-42"));
    assert_eq!(&handled.body[..], b"{\"task\":1}");
    let outcomes: Vec<_> = handled
        .history
        .iter()
        .map(|a| (a.outcome, a.status))
        .collect();
    assert_eq!(
        outcomes,
        [
            (AttemptOutcome::Error, None),
            (AttemptOutcome::Ok, Some(204))
        ]
    );
    assert!(
        handled.due_at_ms >= handled.history[1].at_ms,
        "its due time is when it was handled"
    );
    let found = store
        .list(RecordQuery::new().task_id("task-42"))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        (
            found.items[0].id,
            found.items[0].state,
            found.items[0].attempts,
            found.items[0].body_len
        ),
        (id, RecordState::Handled, 2, 10)
    );
    assert_eq!(
        found.items[0].last_error.as_deref(),
        Some("connection refused")
    );
    assert_eq!(
        store
            .count(RecordQuery::new().state(RecordState::Handled))
            .await
            .unwrap(),
        1
    );
    let summary = store.summary().await.unwrap();
    assert_eq!(
        (summary.pending, summary.dead_letters),
        (1, 0),
        "a handled record is neither"
    );

    // Replayed: pending, not held, attempts from 0, history kept.
    let replayed = store.replay(id).await.unwrap();
    assert_eq!(
        (replayed.state, replayed.attempts),
        (RecordState::Pending, 0)
    );
    assert_eq!(replayed.history.len(), 2);
    // The history keeps the first attempt and the newest ones.
    for n in 0..(MAX_HISTORY + 3) {
        assert_eq!(ids(&store.claim(DEFAULT_KIND, 1).await.unwrap()), [id]);
        store
            .fail(id, failed(&format!("again {n}")), SystemTime::now())
            .await
            .unwrap();
    }
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.history.len(), MAX_HISTORY);
    assert_eq!(
        record.history[0].error.as_deref(),
        Some("connection refused")
    );
    let last = format!("again {}", MAX_HISTORY + 2);
    assert_eq!(
        record.history.last().unwrap().error.as_deref(),
        Some(&last[..])
    );
    assert_eq!(record.last_error.as_deref(), Some(&last[..]));
}

#[tokio::test]
async fn dead_and_handled_records_are_purged_by_time_and_their_keys_stay() {
    let url = shared_cluster().url();
    let store = fresh(&url, "purge_time", Duration::from_secs(30)).await;
    let old_dead = stored(store.append(record(1, b"{}")).await.unwrap());
    let old_done = stored(store.append(record(2, b"{}")).await.unwrap());
    store.dead_letter(old_dead, failed("x")).await.unwrap();
    store.complete(old_done, ok()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cut = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let new_dead = stored(store.append(record(3, b"{}")).await.unwrap());
    let new_done = stored(store.append(record(4, b"{}")).await.unwrap());
    let pending = stored(store.append(record(5, b"{}")).await.unwrap());
    store.dead_letter(new_dead, failed("y")).await.unwrap();
    store.complete(new_done, ok()).await.unwrap();

    assert_eq!(
        store
            .purge_before(RecordState::Pending, SystemTime::now())
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.purge_before(RecordState::Dead, cut).await.unwrap(), 1);
    assert!(store.get(old_dead).await.unwrap().is_none());
    assert!(store.get(new_dead).await.unwrap().is_some());
    assert!(
        store.get(old_done).await.unwrap().is_some(),
        "another state"
    );
    assert_eq!(
        store.purge_before(RecordState::Handled, cut).await.unwrap(),
        1
    );
    assert!(store.get(old_done).await.unwrap().is_none());
    assert!(store.get(new_done).await.unwrap().is_some());
    assert_eq!(
        store.purge_before(RecordState::Dead, cut).await.unwrap(),
        0,
        "once"
    );

    assert!(
        !store.purge(pending).await.unwrap(),
        "a pending record stays"
    );
    assert!(store.purge(new_dead).await.unwrap());
    assert!(!store.purge(new_dead).await.unwrap());
    assert_eq!(
        store.replay(new_dead).await.unwrap_err().kind(),
        StoreErrorKind::NotFound
    );
    // Purged, their keys still claimed; the prune forgets them.
    assert_eq!(
        store.append(record(1, b"{}")).await.unwrap(),
        Appended::Duplicate(old_dead)
    );
    assert_eq!(
        store.count(RecordQuery::new()).await.unwrap(),
        2,
        "a purged record is not listed"
    );
    let later = SystemTime::now() + Duration::from_secs(1);
    assert_eq!(
        store.prune(later).await.unwrap(),
        4,
        "three bare keys, one handled record's"
    );
    assert!(
        store.get(new_done).await.unwrap().is_some(),
        "kept, its key forgotten"
    );
    assert!(matches!(
        store.append(record(1, b"{}")).await.unwrap(),
        Appended::Stored(_)
    ));
    // A handled record whose key is forgotten goes at its purge.
    assert!(store.purge(new_done).await.unwrap());
    assert!(store.get(new_done).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_through_ten_thousand_records_with_filters_each_once_in_order() {
    let url = shared_cluster().url();
    let store = fresh(&url, "paging", Duration::from_secs(60)).await;
    const N: u32 = 10_000;
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let kind = |n: u32| {
        if n.is_multiple_of(3) {
            "chatbot_session_end"
        } else {
            DEFAULT_KIND
        }
    };
    let appends: Vec<_> = (0..N)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut key = [7u8; 32];
                key[..4].copy_from_slice(&n.to_be_bytes());
                let received = base + Duration::from_secs(u64::from(n));
                let envelope = Envelope::new(received, None, Vec::new()).with_kind(kind(n));
                let new = NewRecord::new(key, Bytes::from_static(b"{}"), envelope)
                    .with_task_id(format!("task-{}", n % 7))
                    .started(false);
                (n, stored(store.append(new).await.unwrap()))
            })
        })
        .collect();
    let mut by_n = HashMap::new();
    for append in appends {
        let (n, id) = append.await.unwrap();
        by_n.insert(n, id);
    }
    // Every 50th dead, with an error naming it.
    for n in (0..N).step_by(50) {
        store
            .dead_letter(by_n[&n], failed(&format!("refused {}", n % 100)))
            .await
            .unwrap();
    }
    let state = |n: u32| {
        if n.is_multiple_of(50) {
            RecordState::Dead
        } else {
            RecordState::Pending
        }
    };

    type Wanted = Box<dyn Fn(u32) -> bool>;
    let queries: Vec<(RecordQuery, Wanted)> = vec![
        (RecordQuery::new(), Box::new(|_| true)),
        (
            RecordQuery::new()
                .kind(DEFAULT_KIND)
                .state(RecordState::Pending),
            Box::new(move |n| kind(n) == DEFAULT_KIND && state(n) == RecordState::Pending),
        ),
        (
            RecordQuery::new()
                .task_id("task-3")
                .since(base + Duration::from_secs(2000))
                .until(base + Duration::from_secs(8000)),
            Box::new(|n| n % 7 == 3 && (2000..8000).contains(&n)),
        ),
        (
            RecordQuery::new().error("refused 50"),
            Box::new(|n| n % 100 == 50),
        ),
        (
            RecordQuery::new()
                .state(RecordState::Dead)
                .kind("chatbot_session_end"),
            Box::new(move |n| n % 50 == 0 && kind(n) == "chatbot_session_end"),
        ),
        (
            RecordQuery::new().state(RecordState::Handled),
            Box::new(|_| false),
        ),
    ];
    for (query, wanted) in queries {
        let mut expected: Vec<RecordId> = (0..N).filter(|n| wanted(*n)).map(|n| by_n[&n]).collect();
        expected.sort_unstable();
        let mut listed = Vec::new();
        let mut page = query.clone().limit(333);
        loop {
            let items = store.list(page.clone()).await.unwrap();
            assert!(items.len() <= 333);
            for item in &items {
                assert!(query.matches(item), "{item:?} does not match {query:?}");
            }
            listed.extend(items.items.iter().map(|item| item.id));
            match items.next_after {
                Some(after) => page = page.after(after),
                None => break,
            }
        }
        assert_eq!(listed, expected, "{query:?}: each once, in order");
        assert_eq!(
            store.count(query.clone()).await.unwrap(),
            expected.len() as u64,
            "{query:?}"
        );
    }
    // The default page and the cap.
    assert_eq!(
        store.list(RecordQuery::new()).await.unwrap().len(),
        RecordQuery::DEFAULT_LIMIT
    );
    assert_eq!(
        store
            .list(RecordQuery::new().limit(100_000))
            .await
            .unwrap()
            .len(),
        RecordQuery::MAX_LIMIT
    );
    // Each summary as stored (appends raced: ids are not in the order of `n`).
    let n_of: HashMap<RecordId, u32> = by_n.iter().map(|(n, id)| (*id, *n)).collect();
    for item in store.list(RecordQuery::new().limit(1000)).await.unwrap() {
        let n = n_of[&item.id];
        assert_eq!(
            (
                item.kind.as_str(),
                item.task_id.clone(),
                item.received_at(),
                item.state,
                item.body_len
            ),
            (
                kind(n),
                Some(format!("task-{}", n % 7)),
                base + Duration::from_secs(u64::from(n)),
                state(n),
                2
            )
        );
    }
    let summary = store.summary().await.unwrap();
    assert_eq!(
        (summary.pending, summary.dead_letters),
        (u64::from(N) - 200, 200)
    );
    assert_eq!(summary.oldest_pending, Some(base + Duration::from_secs(1)));
}

/// A notification row as schema 2 kept it: key, state, attempts, last error, envelope, body,
/// claim owner, claim end.
type V2Row<'a> = (
    &'a [u8],
    i16,
    i32,
    Option<&'a str>,
    &'a str,
    Option<&'a [u8]>,
    Option<&'a str>,
    Option<SystemTime>,
);

/// Migration 2 as it shipped.
const MIGRATION_2: &str = r"
    ALTER TABLE {schema}.rejected ADD COLUMN bytes BIGINT;
    UPDATE {schema}.rejected SET bytes = octet_length(body);
    ALTER TABLE {schema}.rejected ALTER COLUMN bytes SET NOT NULL;
    CREATE INDEX rejected_stored_at ON {schema}.rejected (stored_at);
    INSERT INTO {schema}.schema_migrations (version) VALUES (2);
";

#[tokio::test]
async fn a_schema_at_version_2_migrates_and_its_records_are_read() {
    let url = shared_cluster().url();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let schema = "queue_v2";
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .unwrap();
    client
        .batch_execute(&(MIGRATION_1.to_owned() + MIGRATION_2).replace("{schema}", schema))
        .await
        .unwrap();
    // As the crate wrote them at version 2: a pending record held by a receiver that is gone, a
    // chatbot record, a dead letter, a done key, and a row whose envelope is damaged.
    let task = r#"{"received_at_ms":1700000000000,"peer":"10.0.0.1:5","headers":[]}"#;
    let chat =
        r#"{"received_at_ms":1700000001000,"peer":null,"headers":[],"kind":"chatbot_session_end"}"#;
    let insert = format!(
        "INSERT INTO {schema}.notifications \
         (dedup_key, state, attempts, last_error, envelope, body, stored_at, claimed_by, lease_until) \
         VALUES ($1, $2, $3, $4, $5, $6, now() - interval '1 hour', $7, $8) RETURNING id"
    );
    let rows: [V2Row<'_>; 5] = [
        (
            b"k-pending",
            0,
            1,
            None,
            task,
            Some(b"{\"p\":1}"),
            Some("gone-1"),
            Some(SystemTime::now() - Duration::from_secs(60)),
        ),
        (b"k-chat", 0, 0, None, chat, Some(b"{\"c\":1}"), None, None),
        (
            b"k-dead",
            1,
            3,
            Some("gave up"),
            task,
            Some(b"{\"d\":1}"),
            None,
            None,
        ),
        (b"k-done", 2, 1, None, task, None, None, None),
        (
            b"k-damaged",
            1,
            1,
            Some("x"),
            "not json",
            Some(b"{}"),
            None,
            None,
        ),
    ];
    let mut id = Vec::new();
    for (key, state, attempts, error, envelope, body, owner, until) in rows {
        let row = client
            .query_one(
                &insert,
                &[
                    &key, &state, &attempts, &error, &envelope, &body, &owner, &until,
                ],
            )
            .await
            .unwrap();
        id.push(row.get::<_, i64>(0) as RecordId);
    }

    let store = store(&url, schema, Duration::from_secs(30)).await;
    let version: i32 = client
        .query_one(
            &format!("SELECT max(version) FROM {schema}.schema_migrations"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 4, "migrated to the latest version");
    let pending = store.pending().await.unwrap();
    assert_eq!(ids(&pending), [id[0], id[1]]);
    assert_eq!(&pending[0].body[..], b"{\"p\":1}");
    assert_eq!(pending[0].attempts, 1);
    assert!(pending[0].history.is_empty());
    assert!(
        pending[0].due_at() < SystemTime::now() - Duration::from_secs(3000),
        "due since stored"
    );
    let dead = store.get(id[2]).await.unwrap().unwrap();
    assert_eq!(
        (
            dead.state,
            dead.attempts,
            dead.last_error.as_deref(),
            dead.envelope.peer.as_deref()
        ),
        (RecordState::Dead, 3, Some("gave up"), Some("10.0.0.1:5"))
    );
    assert!(
        store.get(id[3]).await.unwrap().is_none(),
        "a done key is no record"
    );
    assert_eq!(
        store.get(id[4]).await.unwrap_err().kind(),
        StoreErrorKind::Corrupt,
        "a damaged row is reported, not a panic"
    );
    // Kinds and receipt times come from the envelopes.
    assert_eq!(
        ids(&store.claim(DEFAULT_KIND, 10).await.unwrap()),
        [id[0]],
        "its claim lapsed"
    );
    assert_eq!(
        ids(&store.claim("chatbot_session_end", 10).await.unwrap()),
        [id[1]]
    );
    let since = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
    let until = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_002_000);
    let listed = store
        .list(RecordQuery::new().since(since).until(until))
        .await
        .unwrap();
    assert_eq!(
        listed.items.iter().map(|s| s.id).collect::<Vec<_>>(),
        [id[1]]
    );
    assert_eq!(
        store
            .count(RecordQuery::new().state(RecordState::Dead))
            .await
            .unwrap(),
        2
    );
    // The done key still de-duplicates; the prune forgets it.
    let envelope = Envelope::new(SystemTime::now(), None, Vec::new());
    let mut key = [0u8; 32];
    key[..6].copy_from_slice(b"k-done");
    client
        .execute(
            &format!("UPDATE {schema}.notifications SET dedup_key = $1 WHERE id = $2"),
            &[&&key[..], &(id[3] as i64)],
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .append(NewRecord::new(
                key,
                Bytes::from_static(b"{}"),
                envelope.clone()
            ))
            .await
            .unwrap(),
        Appended::Duplicate(id[3])
    );
    assert_eq!(store.prune(SystemTime::now()).await.unwrap(), 1);
    assert!(matches!(
        store
            .append(NewRecord::new(key, Bytes::from_static(b"{}"), envelope))
            .await
            .unwrap(),
        Appended::Stored(_)
    ));
    // A receiver of this version connecting again migrates nothing.
    drop(store);
    let again = self::store(&url, schema, Duration::from_secs(30)).await;
    assert_eq!(again.pending().await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_claim_that_begins_stops_at_its_bytes_past_the_first_record() {
    let url = shared_cluster().url();
    let store = fresh(&url, "claim_bytes", Duration::from_secs(30)).await;
    let mut appended = Vec::new();
    for key in 1..=3 {
        appended.push(stored(
            store.append(waiting(key, DEFAULT_KIND)).await.unwrap(),
        ));
        // One due after the other.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let size = store.get(appended[0]).await.unwrap().unwrap().body.len();
    let claimed = store
        .claim_and_begin(DEFAULT_KIND, 10, 2 * size, usize::MAX)
        .await
        .unwrap();
    assert_eq!(ids(&claimed), appended[..2], "two bodies fit, not three");
    let left = store.get(appended[2]).await.unwrap().unwrap();
    assert_eq!(left.attempts, 0, "the one past the bytes is not counted");
    // The first record of a claim comes whatever its size.
    let claimed = store
        .claim_and_begin(DEFAULT_KIND, 10, 0, usize::MAX)
        .await
        .unwrap();
    assert_eq!((ids(&claimed), claimed[0].attempts), (vec![appended[2]], 1));
}
