//! Notifications in any state, by page and filter, one with its attempts, and the actions on
//! them: replay one, replay the dead letters that match, purge old dead letters, make pending
//! ones due now. Every list and count is the store's, reading no body.

use std::time::SystemTime;

use airudder_webhook::store::{
    Attempt, Record, RecordId, RecordQuery, RecordState, RecordSummary, Store, StoreErrorKind,
};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::params::{FILTERS, PAGE, Params};
use super::{Admin, bad_request, body_value, error, store_error};

/// One row of a list, as the contract has it; an ordered one with its key, and a pending one
/// waiting its turn with the record that holds it back.
pub(super) fn item(summary: &RecordSummary) -> Value {
    let mut item = json!({
        "id": summary.id,
        "kind": summary.kind,
        "state": summary.state.as_str(),
        "task_id": summary.task_id,
        "received_at": crate::time::format_ms(summary.received_at_ms),
        "attempts": summary.attempts,
        "last_error": summary.last_error,
    });
    if let Some(key) = &summary.order_key {
        item["order_key"] = json!(key);
    }
    if let Some(id) = summary.held_back_by {
        item["held_back_by"] = json!(id);
    }
    item
}

fn attempt(attempt: &Attempt) -> Value {
    json!({
        "at": crate::time::format_ms(attempt.at_ms),
        "duration_ms": attempt.duration_ms,
        "outcome": attempt.outcome.as_str(),
        "status": attempt.status,
        "error": attempt.error,
    })
}

/// The answer to a change without a store (the memory and "handled" acks).
pub(super) fn no_store() -> Response {
    error(
        StatusCode::CONFLICT,
        "this relay keeps nothing (AIRUDDER_ACK is memory or handled): there is nothing to change",
    )
}

/// `GET /admin/notifications?state=&kind=&task_id=&since=&until=&error=&after=&limit=`
pub(super) async fn list(
    State(admin): State<Admin>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let query = match Params::new(&pairs, &[&["state"], FILTERS, PAGE]).and_then(|params| {
        let query = params.page()?;
        Ok(match params.state()? {
            Some(state) => query.state(state),
            None => query,
        })
    }) {
        Ok(query) => query,
        Err(message) => return bad_request(message),
    };
    let Some(store) = &admin.store else {
        return Json(json!({ "items": [], "next_after": null })).into_response();
    };
    match Store::list(store, query).await {
        Ok(page) => Json(json!({
            "items": page.items.iter().map(item).collect::<Vec<_>>(),
            "next_after": page.next_after,
        }))
        .into_response(),
        Err(err) => store_error(err),
    }
}

/// `GET /admin/notifications/count?state=&<filters>`: `{"count": N}`, counted by the store
/// (what a bulk action on the same filters would act on, asked before it).
pub(super) async fn count(
    State(admin): State<Admin>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let query = match Params::new(&pairs, &[&["state"], FILTERS]).and_then(|params| {
        let query = params.filters()?;
        Ok(match params.state()? {
            Some(state) => query.state(state),
            None => query,
        })
    }) {
        Ok(query) => query,
        Err(message) => return bad_request(message),
    };
    let Some(store) = &admin.store else {
        return Json(json!({ "count": 0 })).into_response();
    };
    match Store::count(store, query).await {
        Ok(count) => Json(json!({ "count": count })).into_response(),
        Err(err) => store_error(err),
    }
}

/// The record `id`, or the answer that there is none.
async fn record(admin: &Admin, id: RecordId) -> Result<Record, Response> {
    let none = || {
        error(
            StatusCode::NOT_FOUND,
            format!("no notification {id}: see GET /admin/notifications"),
        )
    };
    let Some(store) = &admin.store else {
        return Err(none());
    };
    match Store::get(store, id).await {
        Ok(Some(record)) => Ok(record),
        Ok(None) => Err(none()),
        Err(err) => Err(store_error(err)),
    }
}

/// `GET /admin/notifications/{id}`: the row, its attempts (oldest first, bounded) and its
/// body. `attempts` is the history here; `attempts_started` the count a row shows as
/// `attempts`.
pub(super) async fn one(State(admin): State<Admin>, Path(id): Path<RecordId>) -> Response {
    let record = match record(&admin, id).await {
        Ok(record) => record,
        Err(answer) => return answer,
    };
    let mut json = item(&RecordSummary::from(&record));
    json["attempts_started"] = json!(record.attempts);
    // The id the service sees in `webhook-id`, when the relay still serves the kind and the
    // body still decodes.
    json["webhook_id"] = json!(
        admin
            .endpoint(record.envelope.kind())
            .and_then(|endpoint| endpoint.webhook_id(&record.body))
    );
    json["attempts"] = record.history.iter().map(attempt).collect();
    if record.state == RecordState::Pending {
        json["due_at"] = json!(crate::time::format_ms(record.due_at_ms));
    }
    json["body"] = body_value(&record.body);
    Json(json).into_response()
}

/// Makes the dead or handled record `id` pending again, due now, for the receiver of its kind;
/// `what` names it in the answers ("dead letter", "notification").
pub(super) async fn replay_one(admin: &Admin, id: RecordId, what: &str) -> Response {
    let record = match record(admin, id).await {
        Ok(record) => record,
        Err(_) if what != "notification" => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no {what} {id}: see GET /admin/dead-letters"),
            );
        }
        Err(answer) => return answer,
    };
    let kind = record.envelope.kind();
    if record.state == RecordState::Pending {
        return error(
            StatusCode::CONFLICT,
            format!(
                "{what} {id} is pending: it is forwarded when due (POST /admin/notifications/retry-now makes it due at once)"
            ),
        );
    }
    let Some(endpoint) = admin.endpoint(kind) else {
        return error(
            StatusCode::CONFLICT,
            format!("{what} {id} is a {kind}, which this relay does not serve now"),
        );
    };
    match endpoint.replay(id).await {
        Ok(()) => {
            tracing::info!(id, kind, "replayed: pending again, due now");
            Json(json!({ "replayed": id })).into_response()
        }
        Err(err) if err.kind() == StoreErrorKind::NotFound => error(
            StatusCode::NOT_FOUND,
            format!("no {what} {id} to replay: replayed meanwhile, or purged"),
        ),
        Err(err) => store_error(err),
    }
}

/// `POST /admin/notifications/{id}/replay`: a dead letter or a handled notification.
pub(super) async fn replay(State(admin): State<Admin>, Path(id): Path<RecordId>) -> Response {
    replay_one(&admin, id, "notification").await
}

/// The filters of a bulk action on records in `state` (a `state` given must be that one).
fn bulk_filters(pairs: &[(String, String)], state: RecordState) -> Result<RecordQuery, String> {
    let params = Params::new(pairs, &[&["state"], FILTERS])?;
    match params.state()? {
        Some(given) if given != state => Err(format!(
            "state={} does not apply here: this acts on {} notifications only",
            given.as_str(),
            state.as_str()
        )),
        _ => Ok(params.filters()?.state(state)),
    }
}

/// `POST /admin/dead-letters/replay?<filters>`: `{"replayed": N}`.
pub(super) async fn replay_dead(
    State(admin): State<Admin>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let query = match bulk_filters(&pairs, RecordState::Dead) {
        Ok(query) => query,
        Err(message) => return bad_request(message),
    };
    let Some(store) = &admin.store else {
        return no_store();
    };
    match Store::replay_dead(store, query).await {
        Ok(replayed) => {
            tracing::info!(replayed, "dead letters replayed: pending again, due now");
            Json(json!({ "replayed": replayed })).into_response()
        }
        Err(err) => store_error(err),
    }
}

/// A purge's `before=T`, the only parameter it takes: `what` ("the dead letters that died")
/// before it are purged.
pub(super) fn before(pairs: &[(String, String)], what: &str) -> Result<SystemTime, String> {
    Params::new(pairs, &[&["before"]])
        .and_then(|params| params.time("before"))?
        .ok_or_else(|| {
            format!("before= is required: an RFC 3339 time; {what} before it are purged")
        })
}

/// `POST /admin/dead-letters/purge?before=T`: `{"purged": N}`, the dead letters that died
/// before `T`.
pub(super) async fn purge_dead(
    State(admin): State<Admin>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let before = match before(&pairs, "the dead letters that died") {
        Ok(before) => before,
        Err(message) => return bad_request(message),
    };
    let Some(store) = &admin.store else {
        return no_store();
    };
    match Store::purge_before(store, RecordState::Dead, before).await {
        Ok(purged) => {
            tracing::info!(purged, "dead letters purged");
            Json(json!({ "purged": purged })).into_response()
        }
        Err(err) => store_error(err),
    }
}

/// `POST /admin/notifications/retry-now?<filters>`: `{"due_now": N}`, pending ones made due
/// at once (those being forwarded now aside).
pub(super) async fn retry_now(
    State(admin): State<Admin>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let query = match bulk_filters(&pairs, RecordState::Pending) {
        Ok(query) => query,
        Err(message) => return bad_request(message),
    };
    let Some(store) = &admin.store else {
        return no_store();
    };
    match Store::retry_now(store, query).await {
        Ok(due_now) => {
            tracing::info!(due_now, "pending notifications made due now");
            Json(json!({ "due_now": due_now })).into_response()
        }
        Err(err) => store_error(err),
    }
}
