//! The admin API, live while the relay runs: counters, pending notifications, dead letters and
//! refused bodies, and replays, as JSON behind a bearer token.

use std::collections::HashMap;
use std::sync::Arc;

use airudder_webhook::Stats;
use airudder_webhook::auth::{Authorize, HeaderToken};
use airudder_webhook::store::{
    PostgresStore, Record, RecordId, RecordState, RedbStore, RejectedRecord, RejectedSummary,
    Store, StoreError, StoreErrorKind,
};
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{Value, json};

use crate::server::Endpoint;

mod guard;

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

    async fn get(&self, id: RecordId) -> Result<Option<Record>, StoreError> {
        match self {
            Self::Redb(store) => store.get(id).await,
            Self::Postgres(store) => store.get(id).await,
            Self::Nothing => Ok(None),
        }
    }

    /// A page of refused bodies, without their bytes: read by the store, not here.
    async fn rejected_page(
        &self,
        after: RecordId,
        limit: usize,
    ) -> Result<Vec<RejectedSummary>, StoreError> {
        match self {
            Self::Redb(store) => store.rejected_page(after, limit).await,
            Self::Postgres(store) => store.rejected_page(after, limit).await,
            Self::Nothing => Ok(Vec::new()),
        }
    }

    async fn get_rejected(&self, id: RecordId) -> Result<Option<RejectedRecord>, StoreError> {
        match self {
            Self::Redb(store) => store.get_rejected(id).await,
            Self::Postgres(store) => store.get_rejected(id).await,
            Self::Nothing => Ok(None),
        }
    }
}

#[derive(Clone)]
struct Admin {
    endpoints: Arc<Vec<Arc<dyn Endpoint>>>,
    store: Stored,
    metrics: Option<PrometheusHandle>,
}

impl Admin {
    /// The receiver of records of `kind`.
    fn endpoint(&self, kind: &str) -> Option<&Arc<dyn Endpoint>> {
        self.endpoints.iter().find(|e| e.kind() == kind)
    }
}

/// The admin routes, behind `token` when there is one.
pub(crate) fn router(
    endpoints: Arc<Vec<Arc<dyn Endpoint>>>,
    store: Stored,
    token: Option<String>,
    metrics: Option<PrometheusHandle>,
) -> Result<Router, String> {
    let admin = Admin {
        endpoints,
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
    let guarded = token.is_none();
    let routes = match token {
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
    };
    // Outermost: a request from a browser is refused before anything else looks at it.
    Ok(routes.layer(middleware::from_fn(
        move |request: Request, next: Next| async move {
            match guard::browser_guard(&request, guarded) {
                Ok(()) => next.run(request).await,
                Err(refused) => error(refused.status, refused.message),
            }
        },
    )))
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

/// One receiver's counters, or the sum of several.
fn counters(stats: &[Stats], ready: bool) -> Value {
    let sum = |f: fn(&Stats) -> u64| stats.iter().map(f).sum::<u64>();
    let mut answers: Vec<(u16, &'static str, u64)> = Vec::new();
    for answer in stats.iter().flat_map(|s| s.answers().iter()) {
        if answer.count == 0 {
            continue;
        }
        match answers
            .iter_mut()
            .find(|(_, reason, _)| *reason == answer.reason)
        {
            Some((_, _, count)) => *count += answer.count,
            None => answers.push((answer.status.as_u16(), answer.reason, answer.count)),
        }
    }
    json!({
        "ready": ready,
        "queued": sum(|s| s.queued),
        "handled": sum(|s| s.handled),
        "failed": sum(|s| s.failed),
        "returned": sum(|s| s.returned),
        "pending": sum(Stats::pending),
        "rejected": sum(|s| s.rejected),
        "unavailable": sum(|s| s.unavailable),
        "duplicates": sum(|s| s.duplicates),
        "answers": answers
            .iter()
            .map(|(status, reason, count)| json!({ "status": status, "reason": reason, "count": count }))
            .collect::<Vec<_>>(),
    })
}

/// Every receiver's counters summed, and each kind's apart under `kinds` (those that saw a
/// request).
async fn stats(State(admin): State<Admin>) -> Response {
    let all: Vec<Stats> = admin.endpoints.iter().map(|e| e.stats()).collect();
    let mut body = counters(&all, admin.endpoints.iter().all(|e| e.is_ready()));
    let kinds: serde_json::Map<String, Value> = admin
        .endpoints
        .iter()
        .zip(&all)
        .filter(|(_, stats)| stats.answers().iter().any(|a| a.count > 0) || stats.queued > 0)
        .map(|(endpoint, stats)| {
            (
                endpoint.kind().to_owned(),
                counters(std::slice::from_ref(stats), endpoint.is_ready()),
            )
        })
        .collect();
    body["kinds"] = Value::Object(kinds);
    Json(body).into_response()
}

/// `?after=ID&limit=N`: the page after `after`, in id order, `limit` (1 to 1000, default 100)
/// long.
fn page<T>(
    items: Vec<T>,
    id: impl Fn(&T) -> RecordId,
    query: &HashMap<String, String>,
) -> Result<(Vec<T>, Option<RecordId>), String> {
    let (after, limit) = page_query(query)?;
    let mut items: Vec<T> = items.into_iter().filter(|item| id(item) > after).collect();
    items.sort_by_key(|item| id(item));
    Ok(cut(items, limit, id))
}

/// The page asked for: `after` (default 0) and `limit` (1 to 1000, default 100).
fn page_query(query: &HashMap<String, String>) -> Result<(RecordId, usize), String> {
    let number = |name: &str, default: u64| match query.get(name) {
        None => Ok(default),
        Some(value) => value
            .parse::<u64>()
            .map_err(|_| format!("{name}={value:?} is not a whole number")),
    };
    Ok((
        number("after", 0)?,
        number("limit", 100)?.clamp(1, 1000) as usize,
    ))
}

/// The first `limit` of `items` (in id order), and the id to ask the next page after when
/// there were more.
fn cut<T>(
    mut items: Vec<T>,
    limit: usize,
    id: impl Fn(&T) -> RecordId,
) -> (Vec<T>, Option<RecordId>) {
    let more = items.len() > limit;
    items.truncate(limit);
    let next = more.then(|| items.last().map(&id)).flatten();
    (items, next)
}

fn summary(record: &Record) -> Value {
    // The task id where the event has one (task notifications, workflow call completions).
    let task_id = serde_json::from_slice::<Value>(&record.body)
        .ok()
        .and_then(|body| body.get("task_id")?.as_str().map(str::to_owned));
    json!({
        "id": record.id,
        "kind": record.envelope.kind(),
        "state": format!("{:?}", record.state).to_lowercase(),
        "attempts": record.attempts,
        "last_error": record.last_error,
        "received_at_ms": record.envelope.received_at_ms,
        "task_id": task_id,
        "bytes": record.body.len(),
    })
}

fn rejected_summary(rejected: &RejectedSummary) -> Value {
    json!({
        "id": rejected.id,
        "kind": rejected.envelope.kind(),
        "status": rejected.status,
        "reason": rejected.reason,
        "received_at_ms": rejected.envelope.received_at_ms,
        "bytes": rejected.bytes,
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

fn records(read: Result<Vec<Record>, StoreError>, query: &HashMap<String, String>) -> Response {
    list(read, |record| record.id, summary, query)
}

/// One dead letter, the only record read.
async fn dead_letter(State(admin): State<Admin>, Path(id): Path<RecordId>) -> Response {
    match admin.store.get(id).await {
        Ok(Some(record)) if record.state == RecordState::Dead => {
            let mut json = summary(&record);
            json["body"] = body_value(&record.body);
            Json(json).into_response()
        }
        Ok(_) => error(
            StatusCode::NOT_FOUND,
            format!("no dead letter {id}: see GET /admin/dead-letters"),
        ),
        Err(err) => store_error(err),
    }
}

async fn replay(State(admin): State<Admin>, Path(id): Path<RecordId>) -> Response {
    // To the receiver of the record's kind.
    let kind = match admin.store.get(id).await {
        Ok(Some(record)) => record.envelope.kind().to_owned(),
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no dead letter {id}: see GET /admin/dead-letters"),
            );
        }
        Err(err) => return store_error(err),
    };
    let Some(endpoint) = admin.endpoint(&kind) else {
        return error(
            StatusCode::CONFLICT,
            format!("dead letter {id} is a {kind}, which this relay does not serve now"),
        );
    };
    match endpoint.replay(id).await {
        Ok(()) => Json(json!({ "replayed": id })).into_response(),
        Err(err) if err.kind() == StoreErrorKind::NotFound => error(
            StatusCode::NOT_FOUND,
            format!("no dead letter {id}: see GET /admin/dead-letters"),
        ),
        Err(err) => store_error(err),
    }
}

/// A page of refused bodies, paged by the store: no body is read.
async fn rejected(
    State(admin): State<Admin>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (after, limit) = match page_query(&query) {
        Ok(asked) => asked,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    match admin.store.rejected_page(after, limit + 1).await {
        Ok(items) => {
            let (items, next) = cut(items, limit, |rejected| rejected.id);
            listing(items.iter().map(rejected_summary).collect(), next)
        }
        Err(err) => store_error(err),
    }
}

/// One refused body, the only one read.
async fn rejected_one(State(admin): State<Admin>, Path(id): Path<RecordId>) -> Response {
    match admin.store.get_rejected(id).await {
        Ok(Some(kept)) => {
            let mut json = rejected_summary(&RejectedSummary::from(kept.clone()));
            json["body"] = body_value(&kept.body);
            Json(json).into_response()
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("no refused body {id}: see GET /admin/rejected"),
        ),
        Err(err) => store_error(err),
    }
}

async fn replay_rejected(State(admin): State<Admin>, Path(id): Path<RecordId>) -> Response {
    let kind = match admin.store.get_rejected(id).await {
        Ok(Some(kept)) => kept.envelope.kind().to_owned(),
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no refused body {id}: see GET /admin/rejected"),
            );
        }
        Err(err) => return store_error(err),
    };
    let Some(endpoint) = admin.endpoint(&kind) else {
        return error(
            StatusCode::CONFLICT,
            format!("refused body {id} is a {kind}, which this relay does not serve now"),
        );
    };
    match endpoint.replay_rejected(id).await {
        Ok(stored) => Json(json!({ "rejected": id, "stored": stored })).into_response(),
        Err(err) if err.kind() == StoreErrorKind::Invalid => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("refused body {id} is still not a valid notification: {err}"),
        ),
        Err(err) => store_error(err),
    }
}
