//! The admin API, live while the relay runs: counters, notifications in any state by page
//! and filter, dead letters and refused bodies, replays, bulk actions and pauses, as JSON
//! behind a bearer token (and the browser guard, for every change).

use std::sync::Arc;

use airudder_webhook::Stats;
use airudder_webhook::auth::{Authorize, HeaderToken};
use airudder_webhook::store::{
    ErasedStore, RecordId, RecordState, RecordSummary, RefusedBodySummary, Store, StoreError,
    StoreErrorKind,
};
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{Value, json};

use crate::activity::Activity;
use crate::broker::Broker;
use crate::server::Endpoint;
use crate::store::Backend;

mod console;
mod guard;
mod kinds;
mod notifications;
mod params;

use params::{FILTERS, PAGE, Params};

/// A request without `Authorization`, to an admin API behind a token (401).
const NO_TOKEN: &str =
    "this admin API needs its token: send Authorization: Bearer <AIRUDDER_ADMIN_TOKEN>";
/// A request whose `Authorization` is not `Bearer <the token>` (401). Says nothing of the token.
const WRONG_TOKEN: &str = "the Authorization header is not Bearer <AIRUDDER_ADMIN_TOKEN>: the token sent is not this relay's";

#[derive(Clone)]
struct Admin {
    endpoints: Arc<Vec<Arc<dyn Endpoint>>>,
    /// The brokers forwarded to, for their connections' state.
    brokers: Arc<Vec<Arc<dyn Broker>>>,
    /// `None` for the memory and "handled" acks, which keep nothing.
    store: Option<Arc<dyn ErasedStore>>,
    /// The same store as opened, for its health.
    backend: Backend,
    metrics: Option<PrometheusHandle>,
    activity: Arc<Activity>,
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
    brokers: Arc<Vec<Arc<dyn Broker>>>,
    backend: Backend,
    token: Option<String>,
    metrics: Option<PrometheusHandle>,
    activity: Arc<Activity>,
) -> Result<Router, String> {
    let admin = Admin {
        endpoints,
        brokers,
        store: backend.erased(),
        backend,
        metrics,
        activity,
    };
    let routes = Router::new()
        .route("/metrics", get(scrape))
        .route("/admin/stats", get(stats))
        .route("/admin/overview", get(kinds::overview))
        .route("/admin/pending", get(pending))
        .route("/admin/dead-letters", get(dead_letters))
        .route("/admin/dead-letters/{id}", get(dead_letter))
        .route("/admin/dead-letters/{id}/replay", post(replay))
        .route("/admin/notifications", get(notifications::list))
        .route("/admin/notifications/count", get(notifications::count))
        .route(
            "/admin/notifications/retry-now",
            post(notifications::retry_now),
        )
        .route("/admin/notifications/{id}", get(notifications::one))
        .route(
            "/admin/notifications/{id}/replay",
            post(notifications::replay),
        )
        .route(
            "/admin/dead-letters/replay",
            post(notifications::replay_dead),
        )
        .route("/admin/dead-letters/purge", post(notifications::purge_dead))
        .route("/admin/kinds", get(kinds::list))
        .route("/admin/kinds/{kind}/pause", post(kinds::pause))
        .route("/admin/kinds/{kind}/resume", post(kinds::resume))
        .route("/admin/rejected", get(rejected))
        .route("/admin/rejected/purge", post(purge_rejected))
        .route("/admin/rejected/{id}", get(rejected_one))
        .route("/admin/rejected/{id}/replay", post(replay_rejected))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such admin endpoint: see relay/README.md for the list",
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
                        Err(_) if !parts.headers.contains_key(AUTHORIZATION) => {
                            error(StatusCode::UNAUTHORIZED, NO_TOKEN)
                        }
                        Err(_) => error(StatusCode::UNAUTHORIZED, WRONG_TOKEN),
                    }
                }
            }))
        }
    };
    // The console's page holds no data: it loads without the token, and asks for it.
    let routes = routes.merge(console::routes());
    // Outermost: a request from a browser is refused before anything else looks at it, and
    // every answer carries the headers that keep a browser from mixing it with other sites.
    Ok(routes.layer(middleware::from_fn(
        move |request: Request, next: Next| async move {
            let mut response = match guard::browser_guard(&request, guarded) {
                Ok(()) => next.run(request).await,
                Err(refused) => error(refused.status, refused.message),
            };
            console::secure_headers(response.headers_mut());
            response
        },
    )))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn bad_request(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, message)
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
        "rejected": sum(|s| s.refused),
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

/// The page asked for: `after` (default 0) and `limit` (1 to 1000, default 100).
fn page_query(pairs: &[(String, String)]) -> Result<(RecordId, usize), String> {
    let query = Params::new(pairs, &[PAGE])?.page()?;
    Ok((query.after, query.page_size()))
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

/// A row of `/admin/pending` and `/admin/dead-letters`: the fields they always had, and the
/// times as RFC 3339 (when a pending one is due next; since when a dead one is dead).
fn summary(record: &RecordSummary) -> Value {
    let mut json = json!({
        "id": record.id,
        "kind": record.kind,
        "state": record.state.as_str(),
        "attempts": record.attempts,
        "last_error": record.last_error,
        "received_at_ms": record.received_at_ms,
        "received_at": crate::time::format_ms(record.received_at_ms),
        "task_id": record.task_id,
        "bytes": record.body_len,
    });
    if let Some(key) = &record.order_key {
        json["order_key"] = json!(key);
    }
    if let Some(id) = record.held_back_by {
        json["held_back_by"] = json!(id);
    }
    match record.state {
        RecordState::Pending => json["due_at"] = json!(crate::time::format_ms(record.due_at_ms)),
        RecordState::Dead => json["dead_since"] = json!(crate::time::format_ms(record.due_at_ms)),
        _ => {}
    }
    json
}

fn rejected_summary(rejected: &RefusedBodySummary) -> Value {
    json!({
        "id": rejected.id,
        "kind": rejected.envelope.kind(),
        "status": rejected.status,
        "reason": rejected.reason,
        "received_at": crate::time::format_ms(rejected.envelope.received_at_ms),
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
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    records(&admin, &pairs, RecordState::Pending).await
}

async fn dead_letters(
    State(admin): State<Admin>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    records(&admin, &pairs, RecordState::Dead).await
}

/// A page of the records in `state`, listed by the store: no body is read.
async fn records(admin: &Admin, pairs: &[(String, String)], state: RecordState) -> Response {
    let query = match Params::new(pairs, &[FILTERS, PAGE]).and_then(|params| params.page()) {
        Ok(query) => query.state(state),
        Err(message) => return bad_request(message),
    };
    let Some(store) = &admin.store else {
        return listing(Vec::new(), None);
    };
    match Store::list(store, query).await {
        Ok(page) => listing(page.items.iter().map(summary).collect(), page.next_after),
        Err(err) => store_error(err),
    }
}

/// One dead letter, the only record read.
async fn dead_letter(State(admin): State<Admin>, Path(id): Path<RecordId>) -> Response {
    let found = match &admin.store {
        Some(store) => Store::get(store, id).await,
        None => Ok(None),
    };
    match found {
        Ok(Some(record)) if record.state == RecordState::Dead => {
            let mut json = summary(&RecordSummary::from(&record));
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
    notifications::replay_one(&admin, id, "dead letter").await
}

/// A page of refused bodies, paged by the store: no body is read.
async fn rejected(
    State(admin): State<Admin>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let (after, limit) = match page_query(&pairs) {
        Ok(asked) => asked,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let Some(store) = &admin.store else {
        return listing(Vec::new(), None);
    };
    match Store::rejected_page(store, after, limit + 1).await {
        Ok(items) => {
            let (items, next) = cut(items, limit, |rejected| rejected.id);
            listing(items.iter().map(rejected_summary).collect(), next)
        }
        Err(err) => store_error(err),
    }
}

/// One refused body, the only one read.
async fn rejected_one(State(admin): State<Admin>, Path(id): Path<RecordId>) -> Response {
    let found = match &admin.store {
        Some(store) => Store::get_rejected(store, id).await,
        None => Ok(None),
    };
    match found {
        Ok(Some(kept)) => {
            let mut json = rejected_summary(&RefusedBodySummary::from(kept.clone()));
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

/// `POST /admin/rejected/purge?before=T`: `{"purged": N}`, the refused bodies received before
/// `T` deleted.
async fn purge_rejected(
    State(admin): State<Admin>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let before = match notifications::before(&pairs, "the refused bodies received") {
        Ok(before) => before,
        Err(message) => return bad_request(message),
    };
    let Some(store) = &admin.store else {
        return notifications::no_store();
    };
    match Store::purge_rejected(store, before).await {
        Ok(purged) => {
            tracing::info!(purged, "refused bodies purged");
            Json(json!({ "purged": purged })).into_response()
        }
        Err(err) => store_error(err),
    }
}

async fn replay_rejected(State(admin): State<Admin>, Path(id): Path<RecordId>) -> Response {
    let found = match &admin.store {
        Some(store) => Store::get_rejected(store, id).await,
        None => Ok(None),
    };
    let kind = match found {
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
