//! Exactly once, as real processes: two receivers (examples/postgres_once.rs) share one
//! database; their handler writes one row per call to the team's own table and completes in
//! the same transaction. 5,000 notifications are posted, alternating between the two, while
//! the test SIGKILLs either receiver at random moments (and restarts it) and the handlers
//! abort their process right after some commits. At the end the team's table holds exactly
//! one row per call of every notification acknowledged: none missing, none twice.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airudder_webhook::store::{PostgresStore, RecordQuery, RecordState, Store};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::postgres::{fresh, shared_cluster};
use crate::support::process::{DataDir, build_example, start_in, terminate};

const NOTIFICATIONS: usize = 5_000;
const CALLS: usize = 3;
/// Posts in flight at once, as Airudder's senders.
const CLIENTS: usize = 8;
/// The test's own SIGKILLs, at random moments while posting.
const KILLS: usize = 6;
/// The probability that a handler aborts its process right after its commit.
const CRASH_AFTER_COMMIT: &str = "0.002";
const SCHEMA: &str = "once";
const TEAM_TABLE: &str = "once_team_calls";
/// Short, so that a dead receiver's claims are taken over soon.
const LEASE_SECS: &str = "2";

/// A uniform draw below `n`, from std's randomly keyed hasher.
fn below(n: u64) -> u64 {
    RandomState::new().hash_one(n) % n
}

/// What the receivers' ends were, for the report and the verdict.
#[derive(Default)]
struct Ends {
    /// SIGKILLed by the test.
    killed: AtomicUsize,
    /// Aborted by its handler right after a commit.
    crashed_after_commit: AtomicUsize,
    /// Failed handler attempts (each is retried).
    failed: AtomicUsize,
    /// Of those, completions refused: the claim was not the attempt's any more.
    refused: AtomicUsize,
    /// Anything else: a failure of the test.
    unexpected: Mutex<Vec<String>>,
}

/// The addresses of the running receivers (`None` while one is down).
type Addrs = Arc<Mutex<[Option<String>; 2]>>;

/// Runs receiver `slot` until `stop`: restarts it whenever it dies (a kill from `kills`, or an
/// abort of its own), then SIGTERMs it and checks it stops cleanly.
async fn supervise(
    slot: usize,
    url: String,
    addrs: Addrs,
    mut kills: mpsc::UnboundedReceiver<()>,
    mut stop: watch::Receiver<bool>,
    ends: Arc<Ends>,
) {
    let data = DataDir::new(); // unused by this example; start_in wants one
    loop {
        let running = start_in(
            "postgres_once",
            &data,
            &[
                // Every failed attempt, not one a second.
                (
                    "RUST_LOG",
                    "warn,airudder_webhook::dispatch::failures=debug",
                ),
                ("AIRUDDER_DATABASE_URL", &url),
                ("AIRUDDER_DATABASE_SCHEMA", SCHEMA),
                ("AIRUDDER_LEASE_SECS", LEASE_SECS),
                ("AIRUDDER_TEAM_TABLE", TEAM_TABLE),
                ("AIRUDDER_COMMIT_DELAY_MS", "5"),
                ("AIRUDDER_CRASH_AFTER_COMMIT", CRASH_AFTER_COMMIT),
            ],
        )
        .await;
        let mut child = running.child;
        let mut stdout = running.stdout;
        let mut stderr = running.stderr;
        let drain_stdout =
            tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        let read_stderr = tokio::spawn(async move {
            let mut logs = String::new();
            while let Ok(Some(line)) = stderr.next_line().await {
                logs.push_str(&line);
                logs.push('\n');
            }
            logs
        });
        addrs.lock().unwrap()[slot] = Some(running.addr);

        enum End {
            Died(std::process::ExitStatus),
            Killed,
            Stopped(std::process::ExitStatus),
        }
        let end = tokio::select! {
            status = child.wait() => End::Died(status.unwrap()),
            Some(()) = kills.recv() => {
                addrs.lock().unwrap()[slot] = None;
                child.start_kill().unwrap(); // SIGKILL
                child.wait().await.unwrap();
                End::Killed
            }
            () = async { let _ = stop.wait_for(|stop| *stop).await; } => {
                addrs.lock().unwrap()[slot] = None;
                End::Stopped(terminate(&mut child).await)
            }
        };
        addrs.lock().unwrap()[slot] = None;
        let logs = read_stderr.await.unwrap();
        drain_stdout.await.unwrap();
        for line in logs.lines().filter(|line| line.contains("handler failed")) {
            ends.failed.fetch_add(1, Ordering::SeqCst);
            if line.contains("no longer pending") {
                ends.refused.fetch_add(1, Ordering::SeqCst);
            }
        }
        match end {
            End::Killed => {
                ends.killed.fetch_add(1, Ordering::SeqCst);
            }
            End::Died(status)
                if status.signal() == Some(6) && logs.contains("crashing after the commit of") =>
            {
                ends.crashed_after_commit.fetch_add(1, Ordering::SeqCst);
            }
            End::Died(status) => ends
                .unexpected
                .lock()
                .unwrap()
                .push(format!("receiver {slot} died: {status}\n{logs}")),
            End::Stopped(status) => {
                if !status.success() {
                    ends.unexpected
                        .lock()
                        .unwrap()
                        .push(format!("receiver {slot} stopped with {status}\n{logs}"));
                }
                return;
            }
        }
    }
}

/// Task notification `n`: its own task id, `CALLS` calls.
fn notification(n: usize) -> Vec<u8> {
    let mut value: serde_json::Value =
        serde_json::from_slice(&support::notification_with_calls(CALLS)).unwrap();
    value["task_id"] = json!(format!("once-{n}"));
    serde_json::to_vec(&value).unwrap()
}

/// Posts notification `n` until a receiver answers 200, first to receiver `n % 2`, then to
/// whichever is up, as Airudder retries a post that got no answer. Returns the retries.
async fn post_until_acked(n: usize, addrs: &Addrs, deadline: Instant) -> usize {
    let body = notification(n);
    let mut retries = 0;
    for turn in n.. {
        assert!(Instant::now() < deadline, "once-{n}: no 200 in time");
        let addr = {
            let addrs = addrs.lock().unwrap();
            addrs[turn % 2]
                .clone()
                .or_else(|| addrs[(turn + 1) % 2].clone())
        };
        let Some(addr) = addr else {
            tokio::time::sleep(Duration::from_millis(20)).await; // both down
            continue;
        };
        let url = format!("http://{addr}/airudder/task");
        match support::try_send(&url, body.clone()).await {
            Ok(status) if status == 200 => return retries,
            Ok(status) if status.is_client_error() => panic!("once-{n}: {status}"),
            // No answer (the receiver died under the post) or a 5xx: again, to the other one.
            Ok(_) | Err(_) => retries += 1,
        }
    }
    unreachable!()
}

/// Waits (at most `within`) until `count` notifications are handled, failing at once on a
/// dead letter.
async fn wait_handled(store: &PostgresStore, count: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let of = |state| store.count(RecordQuery::new().state(state));
        let (handled, pending, dead) = (
            of(RecordState::Handled).await.unwrap(),
            of(RecordState::Pending).await.unwrap(),
            of(RecordState::Dead).await.unwrap(),
        );
        if dead > 0 {
            let dead: Vec<_> = store
                .dead_letters()
                .await
                .unwrap()
                .into_iter()
                .map(|r| (r.id, r.task_id, r.attempts, r.last_error))
                .collect();
            panic!("dead letters: {dead:?}");
        }
        if handled == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{handled} of {count} handled, {pending} pending after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_two_receivers_sigkilled_at_random_write_each_call_once() {
    build_example("postgres_once");
    let started = Instant::now();
    let url = shared_cluster().url();
    let store = fresh(&url, SCHEMA, Duration::from_secs(2)).await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS {TEAM_TABLE}"))
        .await
        .unwrap();

    let addrs: Addrs = Arc::default();
    let ends = Arc::new(Ends::default());
    let (stop, stopping) = watch::channel(false);
    let mut kill = Vec::new();
    let mut supervisors = Vec::new();
    for slot in 0..2 {
        let (tx, rx) = mpsc::unbounded_channel();
        kill.push(tx);
        supervisors.push(tokio::spawn(supervise(
            slot,
            url.clone(),
            Arc::clone(&addrs),
            rx,
            stopping.clone(),
            Arc::clone(&ends),
        )));
        // One at a time: the first creates the schema and the team's table.
        support::wait_until("the receiver listens", || {
            addrs.lock().unwrap()[slot].is_some()
        })
        .await;
    }

    // The posters: each takes the next notification until all are acknowledged.
    let next = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(120);
    let posters: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (next, acked, addrs) = (Arc::clone(&next), Arc::clone(&acked), Arc::clone(&addrs));
            tokio::spawn(async move {
                let mut retries = 0;
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= NOTIFICATIONS {
                        return retries;
                    }
                    retries += post_until_acked(n, &addrs, deadline).await;
                    acked.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();

    // The kills: at random points of the stream, to either receiver that is up.
    let mut points: Vec<usize> = (0..KILLS)
        .map(|_| 200 + below((NOTIFICATIONS - 400) as u64) as usize)
        .collect();
    points.sort();
    for point in points {
        while acked.load(Ordering::SeqCst) < point {
            assert!(Instant::now() < deadline, "posting too slow");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(below(30))).await;
        let up = |slot: usize| addrs.lock().unwrap()[slot].is_some();
        let first = below(2) as usize;
        let slot = if up(first) { first } else { 1 - first };
        kill[slot].send(()).unwrap();
    }
    let mut retries = 0;
    for poster in posters {
        retries += poster.await.unwrap();
    }
    let posted_in = started.elapsed();

    wait_handled(&store, NOTIFICATIONS as u64, Duration::from_secs(60)).await;
    let handled_in = started.elapsed();
    stop.send(true).unwrap();
    for supervisor in supervisors {
        supervisor.await.unwrap();
    }

    let unexpected = ends.unexpected.lock().unwrap().clone();
    assert!(unexpected.is_empty(), "{}", unexpected.join("\n---\n"));
    // The team's rows, counted per call.
    let mut rows: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for row in client
        .query(
            &format!("SELECT task_id, call_index, count(*) FROM {TEAM_TABLE} GROUP BY 1, 2"),
            &[],
        )
        .await
        .unwrap()
    {
        rows.insert((row.get(0), row.get(1)), row.get(2));
    }
    let twice: Vec<_> = rows.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "calls written more than once ({}): {:?}",
        twice.len(),
        twice.iter().take(20).collect::<Vec<_>>()
    );
    let expected: BTreeSet<(String, i32)> = (0..NOTIFICATIONS)
        .flat_map(|n| (0..CALLS as i32).map(move |call| (format!("once-{n}"), call)))
        .collect();
    let written: BTreeSet<(String, i32)> = rows.into_keys().collect();
    let missing: Vec<_> = expected.difference(&written).collect();
    let extra: Vec<_> = written.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing ({}): {:?}; not sent ({}): {:?}",
        missing.len(),
        missing.iter().take(20).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(20).collect::<Vec<_>>()
    );
    let redelivered: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {SCHEMA}.notifications WHERE attempts > 1"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    eprintln!(
        "{NOTIFICATIONS} notifications ({} calls) acknowledged in {posted_in:.1?} ({retries} \
         posts retried on the other receiver), all handled after {handled_in:.1?}; \
         {} SIGKILLs by the test, {} handler runs cut right after their commit, {} \
         failed handler attempts ({} of them refused completions), {redelivered} \
         notifications claimed more than once (attempts > 1); each call written exactly once",
        NOTIFICATIONS * CALLS,
        ends.killed.load(Ordering::SeqCst),
        ends.crashed_after_commit.load(Ordering::SeqCst),
        ends.failed.load(Ordering::SeqCst),
        ends.refused.load(Ordering::SeqCst),
    );
    assert_eq!(ends.killed.load(Ordering::SeqCst), KILLS);
}
