//! Several receivers in one axum app, each on its own path with its own handler and event type,
//! sharing one store: each stores its own kind, redelivers only its own after a restart, and
//! replays only its own.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use airudder_webhook::model::{ChatbotSessionEnd, RawEvent, TaskNotification};
use airudder_webhook::store::{RedbStore, Store, StoreErrorKind};
use airudder_webhook::{Delivery, Event, GiveUp, HandleNotification, Receiver, RetryPolicy};
use axum::Router;
use http::StatusCode;
use tower::ServiceExt;

const CHATBOT: &[u8] = include_bytes!("../data/chatbot_session_end.example.json");
const RAW: &[u8] = br#"{"plan_id": "plan-7", "state": "done"}"#;

/// What each handler saw: its kind and the event's log id.
type Seen = Arc<Mutex<Vec<(&'static str, String)>>>;

/// A handler that records what it saw, or (`stuck`) never finishes, or (`fails`) gives up.
#[derive(Clone)]
struct Handler {
    kind: &'static str,
    seen: Seen,
    stuck: bool,
    fails: bool,
}

impl<E: Event> HandleNotification<E> for Handler {
    type Error = GiveUp;

    async fn handle(&self, delivery: Delivery<E>) -> Result<(), GiveUp> {
        if self.stuck {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        self.seen
            .lock()
            .unwrap()
            .push((self.kind, delivery.event().log_id().to_owned()));
        if self.fails {
            return Err(GiveUp::new("not now"));
        }
        Ok(())
    }
}

struct App {
    router: Router,
    task: Receiver<TaskNotification>,
    chatbot: Receiver<ChatbotSessionEnd>,
    raw: Receiver<RawEvent>,
}

fn app(store: &RedbStore, seen: &Seen, stuck: bool, fails: bool) -> App {
    let handler = |kind| Handler {
        kind,
        seen: Arc::clone(seen),
        stuck,
        fails,
    };
    let task = Receiver::builder(handler("task"))
        .allow_unauthenticated()
        .retry(RetryPolicy::new(2).initial_backoff(Duration::from_millis(10)))
        .durable(store.clone())
        .build()
        .unwrap();
    let chatbot = Receiver::builder_for(handler("chatbot"))
        .allow_unauthenticated()
        .retry(RetryPolicy::new(2).initial_backoff(Duration::from_millis(10)))
        .durable(store.clone())
        .build()
        .unwrap();
    let raw = Receiver::builder_for(handler("raw"))
        .name("raw_plan")
        .allow_unauthenticated()
        .retry(RetryPolicy::new(2).initial_backoff(Duration::from_millis(10)))
        .durable(store.clone())
        .build()
        .unwrap();
    let router = Router::new()
        .route_service("/airudder/task", task.clone())
        .route_service("/airudder/chatbot/session", chatbot.clone())
        .route_service("/airudder/raw/plan", raw.clone());
    App {
        router,
        task,
        chatbot,
        raw,
    }
}

impl App {
    async fn post(&self, path: &str, body: &'static [u8]) -> StatusCode {
        let request = http::Request::post(path)
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(body)))
            .unwrap();
        self.router.clone().oneshot(request).await.unwrap().status()
    }

    async fn stop(self, deadline: Duration) {
        self.task.shutdown_handle().shutdown(deadline).await;
        self.chatbot.shutdown_handle().shutdown(deadline).await;
        self.raw.shutdown_handle().shutdown(deadline).await;
    }
}

fn sorted(seen: &Seen) -> Vec<(&'static str, String)> {
    let mut all = seen.lock().unwrap().clone();
    all.sort();
    all
}

#[tokio::test]
async fn each_receiver_redelivers_its_own_records_after_a_restart() {
    let dir = support::process::DataDir::new();
    let path = dir.0.join("store.redb");
    let seen: Seen = Arc::default();
    {
        // First run: every handler hangs; the three notifications stay stored.
        let store = RedbStore::open(&path).unwrap();
        let first = app(&store, &seen, true, false);
        assert_eq!(first.post("/airudder/task", support::EXAMPLE).await, 200);
        assert_eq!(first.post("/airudder/chatbot/session", CHATBOT).await, 200);
        assert_eq!(first.post("/airudder/raw/plan", RAW).await, 200);
        // The same body at another receiver's path is not its duplicate: refused as its shape.
        assert_eq!(first.post("/airudder/chatbot/session", RAW).await, 422);
        let kinds: Vec<String> = store
            .pending()
            .await
            .unwrap()
            .iter()
            .map(|r| r.envelope.kind().to_owned())
            .collect();
        assert_eq!(
            kinds,
            ["task_notification", "chatbot_session_end", "raw_plan"]
        );
        first.stop(Duration::from_millis(50)).await;
    }
    assert!(seen.lock().unwrap().is_empty());

    // Second run on the same store: each record goes to its own handler, once.
    let store = RedbStore::open(&path).unwrap();
    let second = app(&store, &seen, false, false);
    second.task.idle().await;
    second.chatbot.idle().await;
    second.raw.idle().await;
    for _ in 0..500 {
        if seen.lock().unwrap().len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        sorted(&seen),
        [
            ("chatbot", "4a786086d05xxxxxxxx9dfb8abb1de7".to_owned()),
            ("raw", "-".to_owned()),
            ("task", "ic1a7a8f2bxxx9f5e343a2ec25a9b2".to_owned()),
        ]
    );
    // A retry of each is a duplicate of its own kind.
    assert_eq!(second.post("/airudder/raw/plan", RAW).await, 200);
    assert_eq!(second.raw.stats().duplicates, 1);
    second.stop(Duration::from_secs(5)).await;
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_dead_letter_is_replayed_by_the_receiver_of_its_kind_only() {
    let dir = support::process::DataDir::new();
    let store = RedbStore::open(dir.0.join("store.redb")).unwrap();
    let seen: Seen = Arc::default();
    let failing = app(&store, &seen, false, true);
    assert_eq!(
        failing.post("/airudder/chatbot/session", CHATBOT).await,
        200
    );
    failing.chatbot.idle().await;
    let dead = store.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].envelope.kind(), "chatbot_session_end");
    failing.stop(Duration::from_secs(5)).await;

    let seen: Seen = Arc::default();
    let fixed = app(&store, &seen, false, false);
    let err = fixed.task.replay(dead[0].id).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::NotFound);
    assert!(
        err.to_string().contains("is a chatbot_session_end"),
        "{err}"
    );
    assert_eq!(
        store.dead_letters().await.unwrap().len(),
        1,
        "still a dead letter"
    );
    fixed.chatbot.replay(dead[0].id).await.unwrap();
    fixed.chatbot.idle().await;
    assert_eq!(
        sorted(&seen),
        [("chatbot", "4a786086d05xxxxxxxx9dfb8abb1de7".to_owned())]
    );
    fixed.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_record_stored_before_kinds_belongs_to_the_task_notification_receiver() {
    // What an older version stored: an envelope without a kind.
    let dir = support::process::DataDir::new();
    let store = RedbStore::open(dir.0.join("store.redb")).unwrap();
    let envelope =
        airudder_webhook::store::Envelope::new(std::time::SystemTime::now(), None, vec![]);
    assert_eq!(envelope.kind(), "task_notification");
    let event: TaskNotification = airudder_webhook::decode(support::EXAMPLE).unwrap();
    let record = airudder_webhook::store::NewRecord::new(
        event.dedup_key(),
        bytes::Bytes::from_static(support::EXAMPLE),
        envelope,
    );
    store.append(record).await.unwrap();
    let seen: Seen = Arc::default();
    let app = app(&store, &seen, false, false);
    for _ in 0..500 {
        if !seen.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.task.idle().await;
    assert_eq!(
        sorted(&seen),
        [("task", "ic1a7a8f2bxxx9f5e343a2ec25a9b2".to_owned())]
    );
    // And a retry of it is its duplicate: the key of the default kind is the bare key.
    assert_eq!(app.post("/airudder/task", support::EXAMPLE).await, 200);
    assert_eq!(app.task.stats().duplicates, 1);
    app.stop(Duration::from_secs(5)).await;
}
