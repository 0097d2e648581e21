//! The admin API, live while the relay runs: counters, pending notifications, dead letters and
//! refused bodies, and replays, as JSON behind a bearer token.

use std::collections::HashMap;
use std::sync::Arc;

use airudder_webhook::auth::{Authorize, HeaderToken};
use airudder_webhook::store::{
    PostgresStore, Record, RecordId, RedbStore, RejectedRecord, Store, StoreError, StoreErrorKind,
};
use airudder_webhook::{Event, Receiver};
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{Value, json};

use crate::event::Relayed;

/// The store behind the relay, for reading.
#[derive(Clone)]
pub(crate) enum Stored {
    Redb(RedbStore),
    Postgres(PostgresStore),
    /// The memory and "handled" acks keep nothing.
    Nothing,
}

impl Stored {
    /// Whether the store answers now: the embedded one is not recovering from an I/O error;
    /// PostgreSQL answers a read by key within 2 s.
    pub(crate) async fn answers(&self) -> bool {
        match self {
            Self::Redb(store) => !store.is_recovering(),
            Self::Postgres(store) => matches!(
                tokio::time::timeout(std::time::Duration::from_secs(2), store.get(0)).await,
                Ok(Ok(_))
            ),
            Self::Nothing => true,
        }
    }

    async fn pending(&self) -> Result<Vec<Record>, StoreError> {
        match self {
            Self::Redb(store) => store.pending().await,
            Self::Postgres(store) => store.pending().await,
            Self::Nothing => Ok(Vec::new()),
        }
    }

    async fn dead_letters(&self) -> Result<Vec<Record>, StoreError> {
        match self {
            Self::Redb(store) => store.dead_letters().await,
            Self::Postgres(store) => store.dead_letters().await,
            Self::Nothing => Ok(Vec::new()),
        }
    }

    async fn rejected(&self) -> Result<Vec<RejectedRecord>, StoreError> {
        match self {
            Self::Redb(store) => store.rejected().await,
            Self::Postgres(store) => store.rejected().await,
            Self::Nothing => Ok(Vec::new()),
        }
    }
}

#[derive(Clone)]
struct Admin {
    receiver: Receiver<Relayed>,
    store: Stored,
    metrics: Option<PrometheusHandle>,
}

/// The admin routes, behind `token` when there is one.
pub(crate) fn router(
    receiver: Receiver<Relayed>,
    store: Stored,
    token: Option<String>,
    metrics: Option<PrometheusHandle>,
) -> Result<Router, String> {
    let admin = Admin {
        receiver,
        store,
        metrics,
    };
    let routes = Router::new()
        .route("/metrics", get(scrape))
        .route("/admin/stats", get(stats))
        .route("/admin/pending", get(pending))
        .route("/admin/dead-letters", get(dead_letters))
        .route("/admin/dead-letters/{id}", get(dead_letter))
        .route("/admin/dead-letters/{id}/replay", post(replay))
        .route("/admin/rejected", get(rejected))
        .route("/admin/rejected/{id}", get(rejected_one))
        .route("/admin/rejected/{id}/replay", post(replay_rejected))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such admin endpoint: see the README for the list",
            )
        })
        .with_state(admin);
    Ok(match token {
        None => routes,
        Some(token) => {
            let check: Arc<dyn Authorize> =
                Arc::new(HeaderToken::bearer([token]).map_err(|err| err.to_string())?);
            routes.layer(middleware::from_fn(move |request: Request, next: Next| {
                let check = Arc::clone(&check);
                async move {
                    let (parts, body) = request.into_parts();
                    match check.authorize(&parts) {
                        Ok(()) => next.run(Request::from_parts(parts, body)).await,
                        Err(_) => error(
                            StatusCode::UNAUTHORIZED,
                            "send Authorization: Bearer <AIRUDDER_ADMIN_TOKEN>",
                        ),
                    }
                }
            }))
        }
    })
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn store_error(err: StoreError) -> Response {
    let status = match err.kind() {
        StoreErrorKind::NotFound => StatusCode::NOT_FOUND,
        StoreErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, err.to_string())
}

/// Every metric in Prometheus' text format.
async fn scrape(State(admin): State<Admin>) -> Response {
    match &admin.metrics {
        Some(handle) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            handle.render(),
        )
            .into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "metrics are off: another recorder was installed first",
        ),
    }
}

async fn stats(State(admin): State<Admin>) -> Response {
    let stats = admin.receiver.stats();
    let answers: Vec<Value> = stats
        .answers()
        .iter()
        .filter(|answer| answer.count > 0)
        .map(|answer| json!({ "status": answer.status.as_u16(), "reason": answer.reason, "count": answer.count }))
        .collect();
    Json(json!({
        "ready": admin.receiver.is_ready(),
        "queued": stats.queued,
        "handled": stats.handled,
        "failed": stats.failed,
        "returned": stats.returned,
        "pending": stats.pending(),
        "rejected": stats.rejected,
        "unavailable": stats.unavailable,
        "duplicates": stats.duplicates,
        "answers": answers,
    }))
    .into_response()
}

/// `?after=ID&limit=N`: the page after `after`, in id order, `limit` (1 to 1000, default 100)
/// long.
fn page<T>(
    items: Vec<T>,
    id: impl Fn(&T) -> RecordId,
    query: &HashMap<String, String>,
) -> Result<(Vec<T>, Option<RecordId>), String> {
    let number = |name: &str, default: u64| match query.get(name) {
        None => Ok(default),
        Some(value) => value
            .parse::<u64>()
            .map_err(|_| format!("{name}={value:?} is not a whole number")),
    };
    let after = number("after", 0)?;
    let limit = number("limit", 100)?.clamp(1, 1000) as usize;
    let mut items: Vec<T> = items.into_iter().filter(|item| id(item) > after).collect();
    items.sort_by_key(|item| id(item));
    let more = items.len() > limit;
    items.truncate(limit);
    let next = more.then(|| items.last().map(&id)).flatten();
    Ok((items, next))
}

fn summary(record: &Record) -> Value {
    let task_id = Relayed::decode(&record.body)
        .ok()
        .map(|event| event.log_id().to_owned());
    json!({
        "id": record.id,
        "state": format!("{:?}", record.state).to_lowercase(),
        "attempts": record.attempts,
        "last_error": record.last_error,
        "received_at_ms": record.envelope.received_at_ms,
        "task_id": task_id,
        "bytes": record.body.len(),
    })
}

fn rejected_summary(rejected: &RejectedRecord) -> Value {
    json!({
        "id": rejected.id,
        "status": rejected.status,
        "reason": rejected.reason,
        "received_at_ms": rejected.envelope.received_at_ms,
        "bytes": rejected.body.len(),
    })
}

fn body_value(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned().into())
}

fn listing(items: Vec<Value>, next: Option<RecordId>) -> Response {
    Json(json!({ "items": items, "next_after": next })).into_response()
}

async fn pending(
    State(admin): State<Admin>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    records(admin.store.pending().await, &query)
}

async fn dead_letters(
    State(admin): State<Admin>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    records(admin.store.dead_letters().await, &query)
}

/// A page of `read`, each item as `summary` makes it.
fn list<T>(
    read: Result<Vec<T>, StoreError>,
    id: impl Fn(&T) -> RecordId,
    summary: impl Fn(&T) -> Value,
    query: &HashMap<String, String>,
) -> Response {
    let all = match read {
        Ok(all) => all,
        Err(err) => return store_error(err),
    };
    match page(all, id, query) {
        Ok((items, next)) => listing(items.iter().map(summary).collect(), next),
        Err(message) => error(StatusCode::BAD_REQUEST, message),
    }
}

/// One item of `read`, its summary with its body; `missing` says where to look instead.
fn one<T>(
    read: Result<Vec<T>, StoreError>,
    wanted: impl Fn(&T) -> bool,
    summary: impl Fn(&T) -> Value,
    body: impl Fn(&T) -> &[u8],
    missing: String,
) -> Response {
    match read {
        Ok(all) => match all.iter().find(|item| wanted(item)) {
            Some(item) => {
                let mut json = summary(item);
                json["body"] = body_value(body(item));
                Json(json).into_response()
            }
            None => error(StatusCode::NOT_FOUND, missing),
        },
        Err(err) => store_error(err),
    }
}

fn records(read: Result<Vec<Record>, StoreError>, query: &HashMap<String, String>) -> Response {
    list(read, |record| record.id, summary, query)
}

async fn dead_letter(State(admin): State<Admin>, Path(id): Path<RecordId>) -> Response {
    one(
        admin.store.dead_letters().await,
        |record| record.id == id,
        summary,
        |record| &record.body,
        format!("no dead letter {id}: see GET /admin/dead-letters"),
    )
}

async fn replay(State(admin): State<Admin>, Path(id): Path<RecordId>) -> Response {
    match admin.receiver.replay(id).await {
        Ok(()) => Json(json!({ "replayed": id })).into_response(),
        Err(err) if err.kind() == StoreErrorKind::NotFound => error(
            StatusCode::NOT_FOUND,
            format!("no dead letter {id}: see GET /admin/dead-letters"),
        ),
        Err(err) => store_error(err),
    }
}

async fn rejected(
    State(admin): State<Admin>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    list(
        admin.store.rejected().await,
        |rejected| rejected.id,
        rejected_summary,
        &query,
    )
}

async fn rejected_one(State(admin): State<Admin>, Path(id): Path<RecordId>) -> Response {
    one(
        admin.store.rejected().await,
        |rejected| rejected.id == id,
        rejected_summary,
        |rejected| &rejected.body,
        format!("no refused body {id}: see GET /admin/rejected"),
    )
}

async fn replay_rejected(State(admin): State<Admin>, Path(id): Path<RecordId>) -> Response {
    match admin.receiver.replay_rejected(id).await {
        Ok(stored) => Json(json!({ "rejected": id, "stored": stored })).into_response(),
        Err(err) if err.kind() == StoreErrorKind::Invalid => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("refused body {id} is still not a valid notification: {err}"),
        ),
        Err(err) => store_error(err),
    }
}
