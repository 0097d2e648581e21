//! The kinds served, each with its counts, and pausing and resuming one. The pause is kept in
//! the store: it holds across restarts, and for every relay sharing a PostgreSQL store. While
//! paused, a kind's notifications are still taken in, stored and answered 200.

use airudder_webhook::store::{RecordQuery, RecordState, Store};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Admin, error, store_error};

/// `GET /admin/kinds`: `{"items": [{"kind", "paused", "pending", "dead"}]}`, the kinds served
/// and any other kind still paused.
pub(super) async fn list(State(admin): State<Admin>) -> Response {
    let mut kinds: Vec<String> = admin
        .endpoints
        .iter()
        .map(|e| e.kind().to_owned())
        .collect();
    let Some(store) = &admin.store else {
        let items: Vec<_> = kinds
            .iter()
            .map(|kind| json!({ "kind": kind, "paused": false, "pending": 0, "dead": 0 }))
            .collect();
        return Json(json!({ "items": items })).into_response();
    };
    let paused = match Store::paused(store).await {
        Ok(paused) => paused,
        Err(err) => return store_error(err),
    };
    for kind in &paused {
        if !kinds.contains(kind) {
            kinds.push(kind.clone());
        }
    }
    let mut items = Vec::with_capacity(kinds.len());
    for kind in kinds {
        let count = |state| Store::count(store, RecordQuery::new().state(state).kind(kind.clone()));
        let (pending, dead) = match (
            count(RecordState::Pending).await,
            count(RecordState::Dead).await,
        ) {
            (Ok(pending), Ok(dead)) => (pending, dead),
            (Err(err), _) | (_, Err(err)) => return store_error(err),
        };
        items.push(json!({
            "kind": kind,
            "paused": paused.contains(&kind),
            "pending": pending,
            "dead": dead,
        }));
    }
    Json(json!({ "items": items })).into_response()
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
