//! Running the relay: the store, the receiver with its handler, the listener, the shutdown.

use std::io::Write;
use std::time::Duration;

use airudder_webhook::auth::QueryToken;
use airudder_webhook::store::{PostgresOptions, PostgresStore, RedbStore};
use airudder_webhook::{AckPolicy, HandleNotification, Receiver, ReceiverBuilder, RetryPolicy};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::admin::{self, Stored};
use crate::config::{Ack, Config};
use crate::event::Relayed;
use crate::forward::Forwarder;
use crate::print::Printer;

/// How long a stop waits for the handlers (forwards in flight) before it leaves the rest
/// stored for the next start.
const DRAIN: Duration = Duration::from_secs(30);

/// Runs until SIGTERM or Ctrl-C.
pub(crate) async fn run(
    config: Config,
    metrics: Option<PrometheusHandle>,
) -> Result<(), Box<dyn std::error::Error>> {
    match config.forward.clone() {
        Some(forward) => {
            let forwarder = Forwarder::new(forward.clone())?;
            // Forwards retry inside the handler, for as long as `retry_for`: every notification
            // waiting for the service holds a handler (cheap: a sleeping task), not a worker,
            // so that intake never waits for the service. The store's attempt count only
            // guards against a notification that crashes the relay at every start.
            let tuning = |builder: ReceiverBuilder<Relayed, Forwarder>| match config.ack {
                Ack::Handled => builder,
                _ => builder
                    .workers(1_000_000)
                    .retry(RetryPolicy::new(100).initial_backoff(Duration::from_secs(1)))
                    .handler_timeout(forward.retry_for + Duration::from_secs(600)),
            };
            serve(&config, metrics, forwarder, tuning).await
        }
        None => {
            let printer = Printer {
                delay: config.handler_delay,
            };
            serve(&config, metrics, printer, |builder| builder).await
        }
    }
}

async fn serve<H: HandleNotification<Relayed> + Clone>(
    config: &Config,
    metrics: Option<PrometheusHandle>,
    handler: H,
    tuning: impl FnOnce(ReceiverBuilder<Relayed, H>) -> ReceiverBuilder<Relayed, H>,
) -> Result<(), Box<dyn std::error::Error>> {
    let builder = tuning(Receiver::builder_for(handler))
        .name("task")
        .body_limit(config.body_limit)
        .max_bytes_in_flight(
            airudder_webhook::receiver::defaults::MAX_BYTES_IN_FLIGHT.max(config.body_limit),
        )
        .queue_capacity(config.queue_capacity)
        .metrics_interval(config.metrics_interval);
    let builder = match config.workers {
        Some(workers) => builder.workers(workers),
        None => builder,
    };
    let mut stored = Stored::Nothing;
    let builder = match config.ack {
        Ack::Durable => match &config.database_url {
            Some(url) => {
                let options = PostgresOptions::default()
                    .schema(config.database_schema.clone())?
                    .lease(config.lease);
                let store = PostgresStore::connect_with(url, options).await?;
                stored = Stored::Postgres(store.clone());
                builder.durable(store)
            }
            None => {
                let store = RedbStore::open(&config.data_dir)?;
                stored = Stored::Redb(store.clone());
                builder.durable(store)
            }
        },
        Ack::Memory => builder.ack(AckPolicy::Memory),
        Ack::Handled => builder.ack(AckPolicy::handled(Duration::from_secs(10))),
    };
    let builder = match &config.token {
        Some(token) => builder.authorize(QueryToken::new([token.as_str()])?),
        None => {
            say("AIRUDDER_TOKEN is not set: running open, without authentication");
            builder.allow_unauthenticated()
        }
    };
    let receiver = builder.build()?;
    let shutdown = receiver.shutdown_handle();
    let admin = admin::router(
        receiver.clone(),
        stored.clone(),
        config.admin_token.clone(),
        metrics.clone(),
    )?;
    let admin_listener = tokio::net::TcpListener::bind(config.admin_listen).await?;
    say(&format!(
        "admin API on http://{}/admin/stats{}",
        admin_listener.local_addr()?,
        if config.admin_token.is_some() {
            ""
        } else {
            " (no AIRUDDER_ADMIN_TOKEN: loopback only)"
        }
    ));
    let admin_server = tokio::spawn(async move {
        axum::serve(admin_listener, admin)
            .with_graceful_shutdown(airudder_webhook::shutdown_signal())
            .await
    });
    let ready = {
        let (receiver, stored) = (receiver.clone(), stored.clone());
        move || {
            let (receiver, stored) = (receiver.clone(), stored.clone());
            async move {
                if receiver.is_ready() && stored.answers().await {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }
        }
    };
    let app = Router::new()
        .route_service("/airudder/task", receiver)
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready));

    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    say(&format!(
        "listening on http://{}/airudder/task",
        listener.local_addr()?
    ));
    match &config.forward {
        Some(forward) => say(&format!(
            "forwarding to {}://{}{}",
            forward.url.scheme(),
            forward.url.host_str().unwrap_or_default(),
            forward.url.path()
        )),
        None => say("printing each notification as a line of JSON on stdout"),
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(airudder_webhook::shutdown_signal())
        .await?;
    let report = shutdown.shutdown(DRAIN).await;
    let _ = admin_server.await;
    say(&format!(
        "stopped: {} handled, {} failed, {} left unhandled",
        report.handled, report.failed, report.left
    ));
    Ok(())
}

/// A line on stderr; a closed stderr is no reason to fail.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
