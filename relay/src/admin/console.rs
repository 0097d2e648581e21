//! The operator's console: a web page on the admin listener, at `GET /admin/`. Its HTML, CSS
//! and scripts are built into the binary and hold no data, so they load without the token;
//! everything they show comes from the admin API, asked with the token the operator types.
//!
//! Every answer here carries a strict Content-Security-Policy (scripts and styles from the
//! relay's own files only, nothing inline, no connection but to the relay itself, no frame),
//! `nosniff` and `no-referrer`.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// What the page may load and run: its own files, and requests to its own origin.
pub(super) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The page's files: the name under `/admin/console/`, the media type, the text.
const FILES: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../console/style.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/api.js"),
    ),
    (
        "views.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/views.js"),
    ),
    (
        "mask.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/mask.js"),
    ),
    (
        "chart.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/chart.js"),
    ),
];

const INDEX: &str = include_str!("../../console/index.html");

/// The console's routes, outside the token's guard (they hold no data).
pub(super) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/admin", get(|| async { Redirect::permanent("/admin/") }))
        .route(
            "/admin/",
            get(|| async { file("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/admin/console/{name}",
            get(
                |axum::extract::Path(name): axum::extract::Path<String>| async move {
                    match FILES.iter().find(|(file_name, _, _)| *file_name == name) {
                        Some((_, media, text)) => file(media, text),
                        None => super::error(
                            StatusCode::NOT_FOUND,
                            "no such file of the console: open /admin/",
                        ),
                    }
                },
            ),
        )
}

/// One of the console's files, with the headers every console answer has. `no-cache`: a
/// relay upgraded in place serves its new page at once (the browser asks again, cheaply).
fn file(media: &'static str, text: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(media)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        text,
    )
        .into_response()
}

/// The headers that keep the page (and any answer of the admin listener a browser opens)
/// to itself: set on every answer of the admin listener.
pub(super) fn secure_headers(headers: &mut axum::http::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}
