//! Forwarding to a broker instead of a URL: Redis Streams (`redis://`, `rediss://`), RabbitMQ
//! (`amqp://`, `amqps://`) and NATS JetStream (`nats://`, `tls://`), each behind a cargo
//! feature of the relay. A message is delivered only once the broker has confirmed it: the
//! `XADD`'s id, the publisher confirm's ack, the JetStream publish acknowledgement. Anything
//! else is a failed attempt, which goes back to the store and is retried like a refused HTTP
//! forward: the same backoff, dead letters, pauses, rates and order.
//!
//! Each broker keeps one connection (a [`Link`]), made at start and again after a loss, with a
//! backoff between tries; while it is down, an attempt fails at once, saying why.
// Built without any broker's feature, a broker URL is refused when the settings are read, and
// what publishes is never used.
#![cfg_attr(
    not(any(feature = "redis", feature = "amqp", feature = "nats")),
    allow(dead_code, unused_variables, unreachable_code)
)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Url;

#[cfg(feature = "amqp")]
mod amqp;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "redis")]
mod redis;

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One notification as a broker gets it: the body as received, and the headers an HTTP
/// forward has (Standard Webhooks' `webhook-id`, `webhook-timestamp` and, with a signing key,
/// `webhook-signature`; the kind and the attempt), as message headers or stream fields.
#[derive(Debug, Clone)]
pub(crate) struct Message<'a> {
    /// The receiver's name (`task_notification`): `{kind}` in a stream, routing key or
    /// subject is replaced by it.
    pub(crate) kind: &'a str,
    pub(crate) body: &'a Bytes,
    pub(crate) webhook_id: &'a str,
    /// Seconds since the Unix epoch, as signed.
    pub(crate) timestamp: u64,
    pub(crate) attempt: u32,
    /// `v1,…`, when the relay has a signing key.
    pub(crate) signature: Option<String>,
}

impl Message<'_> {
    /// The headers, in the order they are written: `(name, value)`.
    pub(crate) fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("content-type", "application/json".to_owned()),
            ("webhook-id", self.webhook_id.to_owned()),
            ("webhook-timestamp", self.timestamp.to_string()),
            ("airudder-event", self.kind.to_owned()),
            ("airudder-attempt", self.attempt.to_string()),
        ];
        if let Some(signature) = &self.signature {
            headers.push(("webhook-signature", signature.clone()));
        }
        headers
    }
}

/// Why a publish was not confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The broker answered no: an unroutable message, a nack, no stream for the subject, a key
    /// of another type. The message says what an operator can change.
    Refused(String),
    /// No answer: not connected, the connection lost, no confirmation in time.
    Unreachable(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(why) => write!(f, "the broker refused it: {why}"),
            Self::Unreachable(why) => write!(f, "no confirmation from the broker: {why}"),
        }
    }
}

/// A broker the relay publishes to.
pub(crate) trait Broker: Send + Sync {
    /// Publishes one message and waits for the broker's confirmation (within the forward
    /// timeout).
    fn publish<'a>(&'a self, message: &'a Message<'a>) -> BoxFuture<'a, Result<(), Refusal>>;
    /// Whether its connection is up now.
    fn connected(&self) -> bool;
    /// The destination as shown in logs, metrics and the admin API: no credentials.
    fn shown(&self) -> &str;
    /// The last connection error, while not connected.
    fn last_error(&self) -> Option<String>;
}

/// The schemes the relay forwards to besides `http` and `https`.
pub(crate) const SCHEMES: &[&str] = &["redis", "rediss", "amqp", "amqps", "nats", "tls"];

/// Whether `url` names a broker (by its scheme).
pub(crate) fn is_broker(url: &Url) -> bool {
    SCHEMES.contains(&url.scheme())
}

/// The feature a scheme needs.
fn feature(scheme: &str) -> &'static str {
    match scheme {
        "redis" | "rediss" => "redis",
        "amqp" | "amqps" => "amqp",
        _ => "nats",
    }
}

/// Checks a broker URL's settings (the stream, exchange and routing key, or subject) when the
/// configuration is read, so that a typo stops the start, not every attempt.
pub(crate) fn check(url: &Url) -> Result<(), String> {
    match url.scheme() {
        #[cfg(feature = "redis")]
        "redis" | "rediss" => redis::Settings::from_url(url).map(drop),
        #[cfg(feature = "amqp")]
        "amqp" | "amqps" => amqp::Settings::from_url(url).map(drop),
        #[cfg(feature = "nats")]
        "nats" | "tls" => nats::Settings::from_url(url).map(drop),
        scheme => Err(format!(
            "{} needs the relay built with its `{}` feature (cargo build -p airudder-relay --features {})",
            shown(url),
            feature(scheme),
            feature(scheme)
        )),
    }
}

/// The broker `url` names, its connection made in the background from now on.
pub(crate) fn open(url: &Url, timeout: Duration) -> Result<Arc<dyn Broker>, String> {
    remember_secrets(url);
    let broker: Arc<dyn Broker> = match url.scheme() {
        #[cfg(feature = "redis")]
        "redis" | "rediss" => Arc::new(redis::Redis::new(redis::Settings::from_url(url)?, timeout)),
        #[cfg(feature = "amqp")]
        "amqp" | "amqps" => Arc::new(amqp::Amqp::new(amqp::Settings::from_url(url)?, timeout)),
        #[cfg(feature = "nats")]
        "nats" | "tls" => Arc::new(nats::Nats::new(nats::Settings::from_url(url)?, timeout)),
        _ => return Err(check(url).err().unwrap_or_default()),
    };
    Ok(broker)
}

/// A broker URL as shown: scheme, host, port, path and the relay's own parameters (the
/// stream, exchange, routing key or subject), never the user or password.
pub(crate) fn shown(url: &Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    let known: Vec<String> = url
        .query_pairs()
        .filter(|(name, _)| PARAMETERS.contains(&name.as_ref()))
        .map(|(name, value)| format!("{name}={}", crate::shown::cell(&value, 64)))
        .collect();
    if !known.is_empty() {
        shown.push('?');
        shown.push_str(&known.join("&"));
    }
    shown
}

/// Every query parameter a broker URL may have.
const PARAMETERS: &[&str] = &["stream", "maxlen", "exchange", "routing_key", "subject"];

/// The query parameters of `url`, each one of `accepted` and given once, with `required` there.
pub(crate) fn parameters(
    url: &Url,
    accepted: &[&str],
    required: &[&str],
) -> Result<Vec<(String, String)>, String> {
    let mut found: Vec<(String, String)> = Vec::new();
    for (name, value) in url.query_pairs() {
        if !accepted.contains(&name.as_ref()) {
            return Err(format!(
                "{}: unknown parameter {:?}; a {} URL takes {}",
                shown(url),
                crate::shown::cell(&name, 32),
                url.scheme(),
                accepted.join(", ")
            ));
        }
        if found.iter().any(|(n, _)| *n == name) {
            return Err(format!("{}: {name} is given twice", shown(url)));
        }
        found.push((name.into_owned(), value.into_owned()));
    }
    for name in required {
        if !found.iter().any(|(n, v)| n == name && !v.is_empty()) {
            return Err(format!(
                "{}: {name}= is required (for instance ?{name}=airudder.{{kind}})",
                shown(url)
            ));
        }
    }
    Ok(found)
}

/// `template` with `{kind}` replaced by `kind`.
pub(crate) fn with_kind(template: &str, kind: &str) -> String {
    template.replace("{kind}", kind)
}

/// The user names, passwords and tokens of the broker URLs read, as given and percent-decoded:
/// [`scrub`] takes them out of any text from a broker or its client (RabbitMQ's "access
/// refused for user 'relay'", Redis' "User relay has no permissions") before it is logged,
/// stored as a notification's error or shown.
static SECRETS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Keeps the credentials of `url` for [`scrub`].
fn remember_secrets(url: &Url) {
    let mut found: Vec<String> = Vec::new();
    for raw in [url.username(), url.password().unwrap_or_default()] {
        if raw.is_empty() {
            continue;
        }
        found.push(raw.to_owned());
        if let Ok(decoded) = percent_decode(raw) {
            found.push(decoded);
        }
    }
    let mut secrets = SECRETS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for secret in found {
        if !secrets.contains(&secret) {
            secrets.push(secret);
        }
    }
    // The longest first, so that a secret holding another is taken out whole.
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
}

fn percent_decode(text: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
}

/// `text` with every credential of a broker URL replaced by `…`.
pub(crate) fn scrub(text: &str) -> String {
    let secrets = SECRETS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut text = text.to_owned();
    for secret in secrets.iter() {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), "…");
        }
    }
    text
}

/// The first wait after a failed connection, and the longest.
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// One broker connection: made on first use and again after a loss, with a growing wait
/// between failed tries. While it waits, an attempt fails at once (and goes back to the
/// store), rather than each one trying to connect.
pub(crate) struct Link<C> {
    shown: String,
    state: tokio::sync::Mutex<State<C>>,
    connected: AtomicBool,
    last_error: std::sync::Mutex<Option<String>>,
}

struct State<C> {
    connection: Option<C>,
    /// When `connection` was made.
    made: Option<Instant>,
    failures: u32,
    next_try: Option<Instant>,
}

impl<C: Clone + Send> Link<C> {
    pub(crate) fn new(shown: String) -> Self {
        crate::metrics::broker_connected(&shown, false);
        Self {
            shown,
            state: tokio::sync::Mutex::new(State {
                connection: None,
                made: None,
                failures: 0,
                next_try: None,
            }),
            connected: AtomicBool::new(false),
            last_error: std::sync::Mutex::new(None),
        }
    }

    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    pub(crate) fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The connection: the one kept, or a new one made by `connect` (within `timeout`) unless
    /// the last try failed too recently.
    pub(crate) async fn get<F, Fut>(&self, timeout: Duration, connect: F) -> Result<C, Refusal>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<C, String>>,
    {
        let mut state = self.state.lock().await;
        if let Some(connection) = &state.connection {
            return Ok(connection.clone());
        }
        if let Some(next) = state.next_try {
            let now = Instant::now();
            if next > now {
                let error = self.last_error().unwrap_or_default();
                return Err(Refusal::Unreachable(format!(
                    "not connected to {}; trying again in {} ms (the last try: {error})",
                    self.shown,
                    (next - now).as_millis()
                )));
            }
        }
        let made = match tokio::time::timeout(timeout, connect()).await {
            Ok(made) => made.map_err(|error| scrub(&error)),
            Err(_) => Err(format!("no connection within {timeout:?}")),
        };
        match made {
            Ok(connection) => {
                if state.failures > 0 || !self.connected() {
                    tracing::info!(broker = %self.shown, "connected to the broker");
                }
                state.connection = Some(connection.clone());
                state.made = Some(Instant::now());
                state.failures = 0;
                state.next_try = None;
                self.set_connected(true, None);
                Ok(connection)
            }
            Err(error) => {
                state.failures = state.failures.saturating_add(1);
                let wait = backoff(state.failures);
                state.next_try = Some(Instant::now() + wait);
                if state.failures == 1 || state.failures.is_power_of_two() {
                    tracing::warn!(broker = %self.shown, %error, failures = state.failures, "cannot connect to the broker; trying again with a backoff");
                }
                self.set_connected(false, Some(error.clone()));
                Err(Refusal::Unreachable(format!(
                    "cannot connect to {}: {error}",
                    self.shown
                )))
            }
        }
    }

    /// Forgets the connection after `error` showed it lost: the next use makes a new one.
    #[cfg_attr(not(feature = "amqp"), allow(dead_code))]
    pub(crate) async fn lost(&self, error: &str) {
        self.lost_after(Instant::now(), error).await;
    }

    /// The same, for a publish that began at `started`: a connection made since then is
    /// another one, made after the one that failed, and is kept (many publishes in flight on
    /// a lost connection fail one after the other, and the first made a new one).
    pub(crate) async fn lost_after(&self, started: Instant, error: &str) {
        let mut state = self.state.lock().await;
        if state.made.is_some_and(|made| made > started) {
            return;
        }
        let error = scrub(error);
        if state.connection.take().is_some() {
            tracing::warn!(broker = %self.shown, %error, "lost the connection to the broker");
        }
        state.made = None;
        self.set_connected(false, Some(error));
    }

    fn set_connected(&self, connected: bool, error: Option<String>) {
        self.connected.store(connected, Ordering::Relaxed);
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = error;
        crate::metrics::broker_connected(&self.shown, connected);
    }
}

/// The wait after `failures` failed connections in a row: doubling from 200 ms to 30 s, with
/// a quarter of jitter so that relays restarted together do not try together.
fn backoff(failures: u32) -> Duration {
    let doubled = BACKOFF_FIRST.saturating_mul(1 << failures.saturating_sub(1).min(16));
    let wait = doubled.min(BACKOFF_MAX);
    wait.mul_f64(0.75 + fastrand::f64() / 4.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_url_is_shown_without_its_credentials() {
        let url = Url::parse(
            "amqp://relay:s3cret@mq.internal:5672/%2f?exchange=airudder&routing_key=calls.{kind}",
        )
        .unwrap();
        let shown = shown(&url);
        assert_eq!(
            shown,
            "amqp://mq.internal:5672/%2f?exchange=airudder&routing_key=calls.{kind}"
        );
        assert!(!shown.contains("s3cret") && !shown.contains("relay@"));
    }

    #[test]
    fn parameters_are_checked_by_name_and_required() {
        let url = Url::parse("redis://localhost/0?stream=a&typo=1").unwrap();
        let err = parameters(&url, &["stream", "maxlen"], &["stream"]).unwrap_err();
        assert!(err.contains("unknown parameter \"typo\""), "{err}");
        let url = Url::parse("redis://localhost/0?maxlen=5").unwrap();
        let err = parameters(&url, &["stream", "maxlen"], &["stream"]).unwrap_err();
        assert!(err.contains("stream= is required"), "{err}");
        let url = Url::parse("redis://localhost/0?stream=a&stream=b").unwrap();
        let err = parameters(&url, &["stream", "maxlen"], &["stream"]).unwrap_err();
        assert!(err.contains("given twice"), "{err}");
        let url = Url::parse("redis://localhost/0?stream=a.{kind}").unwrap();
        let found = parameters(&url, &["stream", "maxlen"], &["stream"]).unwrap();
        assert_eq!(found, [("stream".to_owned(), "a.{kind}".to_owned())]);
        assert_eq!(with_kind("a.{kind}", "pds_event"), "a.pds_event");
    }

    #[test]
    fn a_brokers_words_lose_the_urls_credentials() {
        let url =
            Url::parse("amqp://ops%2Dteam:p%40ss-w0rd-1234@mq:5672/%2f?exchange=e&routing_key=k")
                .unwrap();
        remember_secrets(&url);
        let said = "NOT_ALLOWED - access to vhost 'prod' refused for user 'ops-team' (p@ss-w0rd-1234, p%40ss-w0rd-1234)";
        let scrubbed = scrub(said);
        assert_eq!(
            scrubbed,
            "NOT_ALLOWED - access to vhost 'prod' refused for user '…' (…, …)"
        );
    }

    #[test]
    fn the_backoff_doubles_up_to_its_ceiling() {
        for (failures, low, high) in [
            (1, 150, 200),
            (2, 300, 400),
            (3, 600, 800),
            (20, 22_500, 30_000),
        ] {
            let wait = backoff(failures).as_millis();
            assert!((low..=high).contains(&wait), "{failures}: {wait}");
        }
    }

    #[tokio::test]
    async fn a_link_waits_out_its_backoff_and_reconnects_after_a_loss() {
        let link: Link<u32> = Link::new("redis://127.0.0.1:1/0?stream=s".into());
        let timeout = Duration::from_secs(1);
        let refused = link
            .get(timeout, || async { Err("refused".to_owned()) })
            .await;
        assert!(matches!(refused, Err(Refusal::Unreachable(ref e)) if e.contains("refused")));
        assert!(!link.connected());
        // Within the backoff: no try, a quick answer that says when.
        let waiting = link
            .get(timeout, || async { panic!("no try within the backoff") })
            .await;
        assert!(
            matches!(waiting, Err(Refusal::Unreachable(ref e)) if e.contains("trying again in"))
        );
        tokio::time::sleep(Duration::from_millis(260)).await;
        assert_eq!(link.get(timeout, || async { Ok(7) }).await, Ok(7));
        assert!(link.connected() && link.last_error().is_none());
        assert_eq!(link.get(timeout, || async { Ok(8) }).await, Ok(7), "kept");
        // A publish begun before the connection was made failing late: the connection is kept.
        let before = Instant::now() - Duration::from_secs(60);
        link.lost_after(before, "late").await;
        assert!(link.connected());
        assert_eq!(
            link.get(timeout, || async { Ok(8) }).await,
            Ok(7),
            "still kept"
        );
        link.lost("reset").await;
        assert_eq!(link.last_error().as_deref(), Some("reset"));
        assert_eq!(
            link.get(timeout, || async { Ok(9) }).await,
            Ok(9),
            "made again"
        );
    }
}
