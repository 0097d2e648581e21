//! The kinds served, each with its counts, and pausing and resuming one. The pause is kept in
//! the store: it holds across restarts, and for every relay sharing a PostgreSQL store. While
//! paused, a kind's notifications are still taken in, stored and answered 200.

use airudder_webhook::store::{RecordQuery, RecordState, Store};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Admin, error, store_error};

/// `GET /admin/kinds`: `{"items": [{"kind", "paused", "pending", "dead",
/// "oldest_pending_at"}]}`, the kinds served and any other kind still paused.
pub(super) async fn list(State(admin): State<Admin>) -> Response {
    match rows(&admin).await {
        Ok(items) => Json(json!({ "items": items })).into_response(),
        Err(answer) => answer,
    }
}

/// `GET /admin/overview`: what the console's first view shows, in one answer: whether the
/// relay is ready, the store's health and numbers, each kind's row as `/admin/kinds` has it,
/// the brokers forwarded to and their connections, and the last hour minute by minute
/// (`activity`).
pub(super) async fn overview(State(admin): State<Admin>) -> Response {
    let kinds = match rows(&admin).await {
        Ok(kinds) => kinds,
        Err(answer) => return answer,
    };
    let answers = admin.backend.answers().await;
    let mut store = json!({ "backend": admin.backend.name(), "answers": answers });
    if let Some(erased) = &admin.store {
        match Store::summary(erased).await {
            Ok(summary) => {
                store["recovering"] = json!(summary.recovering);
                store["recoveries"] = json!(summary.recoveries);
                store["pending"] = json!(summary.pending);
                store["dead_letters"] = json!(summary.dead_letters);
                store["oldest_pending_at"] = json!(
                    summary
                        .oldest_pending
                        .map(|at| humantime::format_rfc3339_millis(at).to_string())
                );
            }
            Err(err) => {
                store["answers"] = json!(false);
                store["error"] = json!(err.to_string());
            }
        }
    }
    let ready = answers && admin.endpoints.iter().all(|e| e.is_ready());
    // Each broker forwarded to, and whether its connection is up (the last error if not).
    let brokers: Vec<Value> = admin
        .brokers
        .iter()
        .map(|broker| {
            json!({
                "destination": broker.shown(),
                "connected": broker.connected(),
                "last_error": broker.last_error(),
            })
        })
        .collect();
    Json(json!({
        "ready": ready,
        "store": store,
        "kinds": kinds,
        "brokers": brokers,
        "activity": admin.activity.last_hour(),
    }))
    .into_response()
}

/// Each kind's row: the kinds served and any other kind still paused, with what waits of it.
async fn rows(admin: &Admin) -> Result<Vec<Value>, Response> {
    let mut kinds: Vec<String> = admin
        .endpoints
        .iter()
        .map(|e| e.kind().to_owned())
        .collect();
    let Some(store) = &admin.store else {
        return Ok(kinds
            .iter()
            .map(|kind| {
                json!({
                    "kind": kind,
                    "paused": false,
                    "pending": 0,
                    "dead": 0,
                    "oldest_pending_at": null,
                })
            })
            .collect());
    };
    let paused = Store::paused(store).await.map_err(store_error)?;
    for kind in &paused {
        if !kinds.contains(kind) {
            kinds.push(kind.clone());
        }
    }
    let mut items = Vec::with_capacity(kinds.len());
    for kind in kinds {
        let query = |state| RecordQuery::new().state(state).kind(kind.clone());
        let pending = Store::count(store, query(RecordState::Pending))
            .await
            .map_err(store_error)?;
        let dead = Store::count(store, query(RecordState::Dead))
            .await
            .map_err(store_error)?;
        // Lists go in id order, the order received: the first pending is the oldest.
        let oldest = if pending == 0 {
            None
        } else {
            Store::list(store, query(RecordState::Pending).limit(1))
                .await
                .map_err(store_error)?
                .items
                .first()
                .map(|first| crate::time::format_ms(first.received_at_ms))
        };
        items.push(json!({
            "kind": kind,
            "paused": paused.contains(&kind),
            "pending": pending,
            "dead": dead,
            "oldest_pending_at": oldest,
        }));
    }
    Ok(items)
}

/// `POST /admin/kinds/{kind}/pause`.
pub(super) async fn pause(State(admin): State<Admin>, Path(kind): Path<String>) -> Response {
    set(&admin, &kind, true).await
}

/// `POST /admin/kinds/{kind}/resume`.
pub(super) async fn resume(State(admin): State<Admin>, Path(kind): Path<String>) -> Response {
    set(&admin, &kind, false).await
}

async fn set(admin: &Admin, kind: &str, paused: bool) -> Response {
    let Some(store) = &admin.store else {
        return error(
            StatusCode::CONFLICT,
            "pausing keeps notifications in the store, and this relay keeps none (AIRUDDER_ACK is memory or handled)",
        );
    };
    let served = admin.endpoint(kind).is_some();
    // A kind no longer served may still be resumed, if it was left paused.
    let known = served
        || (!paused
            && store
                .paused()
                .await
                .is_ok_and(|all| all.iter().any(|k| k == kind)));
    if !known {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "no kind {:?}: GET /admin/kinds lists them",
                crate::shown::cell(kind, 64)
            ),
        );
    }
    // The receiver of the kind, when it is served: it stops (or starts) at once, not at its
    // next look at the store.
    let set = match admin.endpoint(kind) {
        Some(endpoint) => endpoint.set_paused(paused).await,
        None => Store::set_paused(store, kind, paused).await,
    };
    if let Err(err) = set {
        return store_error(err);
    }
    crate::metrics::kind_paused(kind, paused);
    if paused {
        tracing::warn!(
            kind,
            "forwarding paused: notifications are stored until resumed"
        );
    } else {
        tracing::info!(kind, "forwarding resumed");
    }
    Json(json!({ "kind": kind, "paused": paused })).into_response()
}
