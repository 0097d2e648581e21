//! Ordered delivery's cost: a backlog drained by a durable receiver (16 workers, a handler that
//! waits 2 ms as a call to the team's service would), unordered, then ordered per key with 40
//! keys and with 4. Each row is the drain rate, and its ratio to the unordered row of the same
//! run (absolute rates on a shared machine are noise; the ratios are the result).
//!
//! The backlog is stored while the receiver's kind is paused, then resumed: the drain is timed
//! from the first handler call to the last one's end.
//!
//! With `--features postgres`, the same on PostgreSQL (a throwaway cluster from Debian's
//! packages), then the durable ack's handler writing one row to the team's own table in its
//! own transaction: committed alone, then marked done by the receiver (the default), against
//! marked done inside that transaction (`Delivery::complete_in`), again as a ratio.
//!
//! Run with: cargo bench --bench ordered --features postgres. Options after `--`:
//! `--events=N` (default 5000). Under `cargo test --benches` it drains 200 once each.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airudder_webhook::model::TaskNotification;
use airudder_webhook::store::{DEFAULT_KIND, RedbStore, Store};
use airudder_webhook::{BoxError, Delivery, Receiver};
use serde_json::json;
use tower::ServiceExt;

const WORKERS: usize = 16;
const HANDLER: Duration = Duration::from_millis(2);

fn arg(name: &str) -> Option<usize> {
    std::env::args()
        .find_map(|arg| arg.strip_prefix(&format!("--{name}=")).map(str::to_owned))
        .and_then(|value| value.parse().ok())
}

/// When the first handler call started and the last one ended, and how many ended.
#[derive(Default)]
struct Drain {
    first: Option<Instant>,
    last: Option<Instant>,
    handled: usize,
}

impl Drain {
    /// A handler call starts.
    fn started(seen: &Mutex<Self>) {
        seen.lock().unwrap().first.get_or_insert_with(Instant::now);
    }

    /// A handler call ended.
    fn ended(seen: &Mutex<Self>) {
        let mut seen = seen.lock().unwrap();
        seen.last = Some(Instant::now());
        seen.handled += 1;
    }
}

/// Drains `events` notifications spread over `keys` task ids (ordered by task id when
/// `ordered`) from `store`; the rate, notifications a second.
async fn drain(store: impl Store + Clone, events: usize, keys: usize, ordered: bool) -> f64 {
    store
        .set_paused(DEFAULT_KIND, true)
        .await
        .expect("the kind pauses");
    let seen = Arc::new(Mutex::new(Drain::default()));
    let handler = {
        let seen = Arc::clone(&seen);
        move |_: Delivery<TaskNotification>| {
            let seen = Arc::clone(&seen);
            async move {
                Drain::started(&seen);
                tokio::time::sleep(HANDLER).await;
                Drain::ended(&seen);
                Ok::<_, BoxError>(())
            }
        }
    };
    let builder = Receiver::builder(handler)
        .allow_unauthenticated()
        .workers(WORKERS)
        .durable(store.clone());
    let receiver = if ordered { builder.ordered() } else { builder }
        .build()
        .expect("the receiver builds");
    let body = |run: u64, n: usize| {
        let mut body = support::example_value();
        body["task_id"] = json!(format!("key-{}", n % keys));
        body["task_name"] = json!(format!("{run}-{n}"));
        body
    };
    post_and_drain(&receiver, &store, &seen, events, body).await
}

/// Posts `events` bodies (`body(run, n)`) while the kind is paused, resumes it, waits until
/// the handlers saw them all, stops `receiver`; the rate, first handler call to last end.
async fn post_and_drain(
    receiver: &Receiver,
    store: &impl Store,
    seen: &Mutex<Drain>,
    events: usize,
    body: impl Fn(u64, usize) -> serde_json::Value,
) -> f64 {
    let run = rand_seed();
    for n in 0..events {
        let response = receiver
            .clone()
            .oneshot(support::post(
                serde_json::to_vec(&body(run, n)).expect("JSON"),
            ))
            .await
            .expect("an answer");
        assert_eq!(response.status(), 200);
    }
    store
        .set_paused(DEFAULT_KIND, false)
        .await
        .expect("the kind resumes");
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen.lock().unwrap().handled < events {
        assert!(Instant::now() < deadline, "drained within 10 minutes");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    receiver.idle().await;
    receiver
        .shutdown_handle()
        .shutdown(Duration::from_secs(10))
        .await;
    let seen = seen.lock().unwrap();
    let took = seen.last.expect("ended") - seen.first.expect("started");
    events as f64 / took.as_secs_f64()
}

/// Distinct bodies for each run (the store de-duplicates).
fn rand_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(0u8)
}

/// The three rows on `store`, after a drain not reported (the first drain on a fresh store
/// ran at half the rate of the next ones).
async fn rows(name: &str, store: impl Store + Clone, events: usize) {
    drain(store.clone(), events.div_ceil(5), 40, false).await;
    let unordered = drain(store.clone(), events, 40, false).await;
    println!("{name}: (a) unordered:        {unordered:>8.0}/s  1.00");
    for keys in [40, 4] {
        let rate = drain(store.clone(), events, keys, true).await;
        println!(
            "{name}: ordered, {keys:>2} keys:     {rate:>8.0}/s  {:.2}",
            rate / unordered
        );
    }
}

/// The team's handler on PostgreSQL: one row in its own transaction, completed in it when
/// `in_tx`. Drains `events` unordered notifications; the rate.
#[cfg(feature = "postgres")]
async fn drain_writing(url: &str, events: usize, in_tx: bool) -> f64 {
    use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
    use tokio_postgres::NoTls;

    let schema = if in_tx { "bench_in_tx" } else { "bench_alone" };
    let store = airudder_webhook::store::PostgresStore::connect_with(
        url,
        airudder_webhook::store::PostgresOptions::default()
            .schema(schema)
            .expect("a schema name"),
    )
    .await
    .expect("the store connects");
    let manager = Manager::from_config(
        url.parse().expect("a URL"),
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(WORKERS)
        .build()
        .expect("a pool");
    let table = format!("{schema}.team_rows");
    pool.get()
        .await
        .expect("a client")
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (task_id TEXT NOT NULL, name TEXT NOT NULL)"
        ))
        .await
        .expect("the team's table");
    store
        .set_paused(DEFAULT_KIND, true)
        .await
        .expect("the kind pauses");
    let seen = Arc::new(Mutex::new(Drain::default()));
    let handler = {
        let (seen, pool, table) = (Arc::clone(&seen), pool.clone(), table.clone());
        move |delivery: Delivery<TaskNotification>| {
            let (seen, pool, table) = (Arc::clone(&seen), pool.clone(), table.clone());
            async move {
                Drain::started(&seen);
                let mut client = pool.get().await?;
                let tx = client.transaction().await?;
                let insert = tx
                    .prepare_cached(&format!(
                        "INSERT INTO {table} (task_id, name) VALUES ($1, $2)"
                    ))
                    .await?;
                tx.execute(&insert, &[&&*delivery.task_id, &&*delivery.task_name])
                    .await?;
                if in_tx {
                    delivery.complete_in(&*tx).await?;
                }
                tx.commit().await?;
                Drain::ended(&seen);
                Ok::<_, BoxError>(())
            }
        }
    };
    let receiver = Receiver::builder(handler)
        .allow_unauthenticated()
        .workers(WORKERS)
        .durable(store.clone())
        .build()
        .expect("the receiver builds");
    let body = |run: u64, n: usize| {
        let mut body = support::example_value();
        body["task_id"] = json!(format!("task-{n}"));
        body["task_name"] = json!(format!("{run}-{n}"));
        body
    };
    post_and_drain(&receiver, &store, &seen, events, body).await
}

fn main() {
    let timed = std::env::args().any(|arg| arg == "--bench");
    let events = arg("events").unwrap_or(if timed { 5_000 } else { 200 });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    println!(
        "\n{events} notifications drained by {WORKERS} workers, a handler of {HANDLER:?}; rate, and ratio to (a)\n"
    );
    runtime.block_on(async {
        let dir = support::process::DataDir::new();
        rows(
            "redb",
            RedbStore::open(&dir.0).expect("the store opens"),
            events,
        )
        .await;
        #[cfg(feature = "postgres")]
        {
            let cluster = support::postgres::Cluster::start();
            let store = airudder_webhook::store::PostgresStore::connect_with(
                &cluster.url(),
                airudder_webhook::store::PostgresOptions::default()
                    .schema("bench_ordered")
                    .expect("a schema name"),
            )
            .await
            .expect("the store connects");
            rows("postgres", store, events).await;
            let alone = drain_writing(&cluster.url(), events, false).await;
            let in_tx = drain_writing(&cluster.url(), events, true).await;
            println!("postgres: team row, then the receiver's mark: {alone:>8.0}/s  1.00");
            println!(
                "postgres: team row and complete_in, one tx:   {in_tx:>8.0}/s  {:.2}",
                in_tx / alone
            );
        }
    });
}
