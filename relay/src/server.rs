//! Running the relay: the store, a receiver for each callback with its handler, the listener,
//! the shutdown.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use airudder_webhook::auth::QueryToken;
use airudder_webhook::model::{
    ChatbotSessionEnd, PdsEvent, RawEvent, TaskNotification, WorkflowCallCompletion,
    WorkflowListCompletion, WorkflowStatusChange,
};
use airudder_webhook::store::{
    PostgresOptions, PostgresStore, RecordId, RedbOptions, RedbStore, RefusedBodyLimits, StoreError,
};
use airudder_webhook::{
    AckPolicy, Event, HandleNotification, Receiver, ReceiverBuilder, RetryPolicy, ShutdownHandle,
    ShutdownReport, Stats,
};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::admin;
use crate::config::{Ack, Config};
use crate::event::Relayed;
use crate::forward::Forwarder;
use crate::kinds;
use crate::listen::{self, Door};
use crate::print::Printer;
use crate::store::Backend;

/// How long a stop waits for the handlers (forwards in flight) before it leaves the rest
/// stored for the next start.
const DRAIN: Duration = Duration::from_secs(30);

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One callback's receiver, whatever its event type: what the admin API and the shutdown need.
pub(crate) trait Endpoint: Send + Sync {
    /// Its kind: the receiver's name.
    fn kind(&self) -> &str;
    fn stats(&self) -> Stats;
    fn is_ready(&self) -> bool;
    fn shutdown_handle(&self) -> ShutdownHandle;
    /// Makes a dead or handled record pending again and wakes the receiver to take it.
    fn replay(&self, id: RecordId) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Pauses or resumes the kind, in the store and in this receiver at once.
    fn set_paused(&self, paused: bool) -> BoxFuture<'_, Result<(), StoreError>>;
    fn replay_rejected(&self, id: RecordId) -> BoxFuture<'_, Result<RecordId, StoreError>>;
    /// The `webhook-id` a stored body is forwarded with; `None` if it no longer decodes.
    fn webhook_id(&self, body: &[u8]) -> Option<String>;
}

struct Served<E> {
    kind: String,
    receiver: Receiver<Relayed<E>>,
}

impl<E: Event> Endpoint for Served<E> {
    fn kind(&self) -> &str {
        &self.kind
    }
    fn stats(&self) -> Stats {
        self.receiver.stats()
    }
    fn is_ready(&self) -> bool {
        self.receiver.is_ready()
    }
    fn shutdown_handle(&self) -> ShutdownHandle {
        self.receiver.shutdown_handle()
    }
    fn replay(&self, id: RecordId) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.receiver.replay(id))
    }
    fn set_paused(&self, paused: bool) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.receiver.set_paused(paused))
    }
    fn replay_rejected(&self, id: RecordId) -> BoxFuture<'_, Result<RecordId, StoreError>> {
        Box::pin(self.receiver.replay_rejected(id))
    }
    fn webhook_id(&self, body: &[u8]) -> Option<String> {
        let event = Relayed::<E>::decode(body).ok()?;
        Some(crate::event::webhook_id(&self.kind, &event))
    }
}

/// Where the events go.
#[derive(Clone)]
enum Mode {
    Print(Printer),
    Forward(Forwarder),
}

/// Runs until SIGTERM or Ctrl-C.
pub(crate) async fn run(
    config: Config,
    metrics: Option<PrometheusHandle>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mode = match &config.forward {
        Some(forward) => Mode::Forward(Forwarder::new(forward.clone())?),
        None => Mode::Print(Printer {
            delay: config.handler_delay,
        }),
    };
    let kept = RefusedBodyLimits::new(config.rejected_max_bytes, config.rejected_max_age);
    let stored = match config.ack {
        Ack::Durable => match &config.database_url {
            Some(url) => {
                let options = PostgresOptions::default()
                    .schema(config.database_schema.clone())?
                    .lease(config.lease)
                    .keep_rejected(kept);
                Backend::Postgres(PostgresStore::connect_with(url.expose(), options).await?)
            }
            None => Backend::Redb(RedbStore::open_with(
                &config.data_dir,
                RedbOptions::default().keep_rejected(kept),
            )?),
        },
        Ack::Memory | Ack::Handled => Backend::Nothing,
    };
    if config.token.is_none() {
        tracing::warn!(
            target: STARTUP,
            "AIRUDDER_TOKEN is not set: running open, without authentication"
        );
    }

    // One receiver a callback, all on the one store, each handing on its own kind.
    let mut app = Router::new();
    let mut endpoints: Vec<Arc<dyn Endpoint>> = Vec::new();
    let mut mount = |kind: &str, served: Result<(Router, Arc<dyn Endpoint>), String>| {
        let (routes, endpoint) = served.map_err(|err| format!("{kind}: {err}"))?;
        app = std::mem::take(&mut app).merge(routes);
        endpoints.push(endpoint);
        Ok::<_, String>(())
    };
    let build = Build {
        config: &config,
        stored: &stored,
        mode: &mode,
    };
    let [task, call, list, status, chatbot, pds] = kinds::TYPED;
    mount(task.1, build.serve::<TaskNotification>(task.0, task.1))?;
    mount(
        call.1,
        build.serve::<WorkflowCallCompletion>(call.0, call.1),
    )?;
    mount(
        list.1,
        build.serve::<WorkflowListCompletion>(list.0, list.1),
    )?;
    mount(
        status.1,
        build.serve::<WorkflowStatusChange>(status.0, status.1),
    )?;
    mount(
        chatbot.1,
        build.serve::<ChatbotSessionEnd>(chatbot.0, chatbot.1),
    )?;
    mount(pds.1, build.serve::<PdsEvent>(pds.0, pds.1))?;
    for name in config.raw_names() {
        let kind = kinds::raw_kind(name);
        mount(
            &kind,
            build.serve::<RawEvent>(&kinds::raw_path(name), &kind),
        )?;
    }
    let endpoints = Arc::new(endpoints);

    let erased = stored.erased();
    if let Some(store) = &erased {
        let kinds: Vec<String> = endpoints.iter().map(|e| e.kind().to_owned()).collect();
        crate::metrics::sample_store(Arc::clone(store), kinds, config.metrics_interval);
    }
    let brokers = Arc::new(match &mode {
        Mode::Forward(forwarder) => forwarder.brokers(),
        Mode::Print(_) => Vec::new(),
    });
    let admin = admin::router(
        Arc::clone(&endpoints),
        Arc::clone(&brokers),
        stored.clone(),
        config.admin_token.as_ref().map(|t| t.expose().to_owned()),
        metrics.clone(),
        crate::activity::Activity::start(Arc::clone(&endpoints)),
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
    let admin_server = tokio::spawn(listen::serve(
        admin_listener,
        admin,
        Door::Admin,
        None,
        airudder_webhook::shutdown_signal(),
    ));
    // Ready while notifications are taken in and stored. A broker that is down does not make
    // the relay unready (what it sends waits in the store, and a probe that failed would take
    // the relay out of its load balancer, refusing Airudder's calls): the answer says how many
    // are connected; the admin API and `airudder_broker_connected` say which.
    let ready = {
        let (endpoints, stored) = (Arc::clone(&endpoints), stored.clone());
        let brokers = Arc::clone(&brokers);
        move || {
            let (endpoints, stored) = (Arc::clone(&endpoints), stored.clone());
            let brokers = Arc::clone(&brokers);
            async move {
                let (status, mut text) =
                    if endpoints.iter().all(|e| e.is_ready()) && stored.answers().await {
                        (StatusCode::OK, String::from("ready"))
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, String::from("not ready"))
                    };
                if !brokers.is_empty() {
                    let up = brokers.iter().filter(|b| b.connected()).count();
                    text.push_str(&format!("\nbrokers connected: {up} of {}", brokers.len()));
                }
                (status, text)
            }
        }
    };
    let app = app
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .fallback(unrouted);

    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    say(&format!("listening on http://{addr}/airudder/task"));
    let others: Vec<String> = kinds::TYPED[1..]
        .iter()
        .map(|(path, _)| (*path).to_owned())
        .chain(config.raw_names().iter().map(|name| kinds::raw_path(name)))
        .collect();
    say(&format!("and on {}", others.join(", ")));
    match &config.forward {
        Some(forward) => say(&format!(
            "forwarding to {}{}",
            if crate::broker::is_broker(&forward.url) {
                crate::broker::shown(&forward.url)
            } else {
                crate::shown::url(forward.url.as_str())
            },
            if forward.urls.is_empty() {
                String::new()
            } else {
                let kinds: Vec<&str> = forward.urls.iter().map(|(k, _)| k.as_str()).collect();
                format!(" ({} elsewhere)", kinds.join(", "))
            }
        )),
        None => say("printing each event as a line of JSON on stdout"),
    }
    if !config.ordered().is_empty() {
        say(&format!(
            "in order per key: {}{}",
            config.ordered().join(", "),
            if config.ordered_dead_letter_holds {
                ""
            } else {
                " (a dead letter does not hold its key)"
            }
        ));
    }
    // `None`: the cap from the file limit (AIRUDDER_MAX_CONNECTIONS unset).
    listen::serve(
        listener,
        app,
        Door::Main,
        config.max_connections,
        airudder_webhook::shutdown_signal(),
    )
    .await;
    // Every receiver drains at once, within the one deadline.
    let reports: Vec<ShutdownReport> = futures_join(
        endpoints
            .iter()
            .map(|endpoint| {
                let handle = endpoint.shutdown_handle();
                async move { handle.shutdown(DRAIN).await }
            })
            .collect(),
    )
    .await;
    let _ = admin_server.await;
    let total = |f: fn(&ShutdownReport) -> u64| reports.iter().map(f).sum::<u64>();
    say(&format!(
        "stopped: {} handled, {} failed, {} left unhandled",
        total(|r| r.handled),
        total(|r| r.failed),
        total(|r| r.left)
    ));
    Ok(())
}

/// Awaits every future, concurrently, on tasks of their own.
async fn futures_join<T: Send + 'static>(
    futures: Vec<impl Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        if let Ok(value) = handle.await {
            out.push(value);
        }
    }
    out
}

/// What every receiver is built from.
struct Build<'a> {
    config: &'a Config,
    stored: &'a Backend,
    mode: &'a Mode,
}

impl Build<'_> {
    /// The receiver of `E` at `path`, named `kind`, with this mode's handler.
    fn serve<E: Event>(
        &self,
        path: &str,
        kind: &str,
    ) -> Result<(Router, Arc<dyn Endpoint>), String> {
        match self.mode {
            Mode::Print(printer) => self.receiver::<E, _>(path, kind, printer.clone(), |b| b),
            Mode::Forward(forwarder) => {
                let forward = self.config.forward.as_ref().ok_or("no forward settings")?;
                let handler = forwarder.for_kind(kind, forward.url_for(kind))?;
                let ack = self.config.ack;
                let kinds = kinds::all(self.config.raw_names()).len() as u32;
                let (workers, policy, timeout) = forwarding(forward, kinds);
                // One attempt per call: a failed one goes back to the store, due again after
                // the backoff (or the service's Retry-After), and leaves memory until then. So
                // the workers are as many as may be in flight, not one per waiting event.
                self.receiver::<E, _>(path, kind, handler, move |builder| match ack {
                    Ack::Handled => builder,
                    _ => builder
                        .workers(workers)
                        .retry(policy)
                        .handler_timeout(timeout),
                })
            }
        }
    }

    fn receiver<E: Event, H: HandleNotification<Relayed<E>>>(
        &self,
        path: &str,
        kind: &str,
        handler: H,
        tuning: impl FnOnce(ReceiverBuilder<Relayed<E>, H>) -> ReceiverBuilder<Relayed<E>, H>,
    ) -> Result<(Router, Arc<dyn Endpoint>), String> {
        let config = self.config;
        let builder = tuning(Receiver::builder_for(handler))
            .name(kind)
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
        // Checked at start: an ordered kind has the durable ack, so a store.
        let builder = if config.is_ordered(kind) {
            builder
                .ordered()
                .dead_letter_holds_order(config.ordered_dead_letter_holds)
        } else {
            builder
        };
        let builder = match self.stored {
            Backend::Redb(store) => builder.durable(store.clone()),
            // Claims of its own, so that one receiver's shutdown never releases another's.
            Backend::Postgres(store) => builder.durable(store.for_another_receiver()),
            Backend::Nothing => match config.ack {
                Ack::Handled => builder.ack(AckPolicy::handled(Duration::from_secs(10))),
                _ => builder.ack(AckPolicy::Memory),
            },
        };
        let builder = match &config.token {
            Some(token) => {
                builder.authorize(QueryToken::new([token.expose()]).map_err(|e| e.to_string())?)
            }
            // Open, as the operator chose: said once at start ("AIRUDDER_TOKEN is not set"),
            // where `allow_unauthenticated()` would warn once for each of the receivers.
            None => builder.authorize(|_: &axum::http::request::Parts| Ok(())),
        };
        let receiver = builder.build().map_err(|e| e.to_string())?;
        let routes = Router::new().route_service(path, receiver.clone());
        let endpoint = Served {
            kind: kind.to_owned(),
            receiver,
        };
        Ok((routes, Arc::new(endpoint)))
    }
}

/// The wait before the first retry of a forward; it doubles after each.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two tries of a forward.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// A forwarding receiver's workers, retry policy and handler timeout, among `kinds` receivers.
///
/// The handler timeout is a backstop behind the client's own (`AIRUDDER_FORWARD_TIMEOUT`): an
/// attempt also waits for its destination's slot and rate turn, which every kind's workers
/// share. At worst each of the `kinds × concurrency` workers ahead of it holds a slot for a
/// whole timeout, `concurrency` at a time, and takes one turn of the rate.
fn forwarding(forward: &crate::config::Forward, kinds: u32) -> (usize, RetryPolicy, Duration) {
    let workers = forward.concurrency;
    let policy = RetryPolicy::for_duration(forward.retry_for)
        .initial_backoff(FIRST_BACKOFF)
        .max_backoff(MAX_BACKOFF);
    let ahead = u32::try_from(workers)
        .unwrap_or(u32::MAX)
        .saturating_mul(kinds);
    let for_slots = forward.timeout.saturating_mul(kinds);
    let for_rate = forward
        .rate
        .map_or(Duration::ZERO, |rate| rate.interval().saturating_mul(ahead));
    let timeout = forward
        .timeout
        .saturating_add(for_slots)
        .saturating_add(for_rate)
        .saturating_add(Duration::from_secs(5));
    (workers, policy, timeout)
}

/// The answer to a path no callback is served at: a 404 that says why, counted
/// (`airudder_unrouted_requests_total`) and logged at WARN at most once a second, since the
/// sender retries it for minutes. A raw path names the setting that would serve it.
async fn unrouted(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    use std::sync::atomic::{AtomicU64, Ordering};
    static LOGGED_AT: AtomicU64 = AtomicU64::new(0);

    let path = uri.path();
    let (which, message) = match path.strip_prefix("/airudder/raw/") {
        Some(name) => (
            "raw",
            format!(
                "no raw callback is named {:?} here: add it to AIRUDDER_RAW_NAMES (raw_names in the file) to take it",
                airudder_webhook::LogSafe::new(name).limit(64).to_string()
            ),
        ),
        None => (
            "other",
            "no callback is served at this path: the paths are listed in relay/README.md"
                .to_owned(),
        ),
    };
    crate::metrics::unrouted(which);
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    if LOGGED_AT.swap(second, Ordering::Relaxed) != second {
        tracing::warn!(status = 404, path = %airudder_webhook::LogSafe::new(path).limit(128), "refused: {message}");
    }
    let body = serde_json::json!({ "code": "not_found", "error": message });
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

/// Where the relay's start-up and stop lines are logged: at INFO, shown whatever `RUST_LOG`
/// says (see `main`), in the log's format.
pub(crate) const STARTUP: &str = "airudder_relay::startup";

/// A start-up or stop line: where the relay listens, where it forwards, what it did.
fn say(line: &str) {
    tracing::info!(target: STARTUP, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_receivers_have_the_concurrency_as_workers_and_a_timeout_past_every_wait() {
        let mut forward = crate::config::Forward {
            url: "http://127.0.0.1:9/hooks".parse().unwrap(),
            timeout: Duration::from_secs(10),
            retry_for: Duration::from_secs(25),
            concurrency: 16,
            rate: None,
            secret: None,
            urls: Vec::new(),
        };
        let (workers, policy, timeout) = forwarding(&forward, 6);
        assert_eq!((workers, timeout), (16, Duration::from_secs(75)));
        assert_eq!(policy.deadline(), Some(Duration::from_secs(25)));
        assert_eq!(policy.backoff(1), FIRST_BACKOFF);
        assert_eq!(policy.backoff(20), MAX_BACKOFF);
        // At 10/s, the 96 workers ahead take 9.6 s of turns.
        forward.rate = Some("10/s".parse().unwrap());
        let (_, _, timeout) = forwarding(&forward, 6);
        assert_eq!(timeout, Duration::from_millis(84_600));
        forward.timeout = Duration::MAX;
        assert_eq!(forwarding(&forward, 6).2, Duration::MAX, "no overflow");
    }
}
