//! Forwarding: each notification POSTed to the team's service, signed per Standard Webhooks,
//! one attempt per call. The store does the waiting: a failed attempt goes back to it with its
//! next due time (the receiver's retry policy, or the service's `Retry-After`), and comes back
//! when due, until it is accepted or its time (`AIRUDDER_RETRY_FOR`) is up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use airudder_webhook::{BoxError, Delivery, Event, HandleNotification, RetryLater};
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use sha2::Sha256;

use crate::broker::{self, Broker, Message, Refusal};
use crate::config::Forward;
use crate::event::{Relayed, webhook_id};
use crate::metrics::Forwarded;
use crate::pace::Pace;

/// The handler of a forwarding relay, for one kind of event.
#[derive(Clone)]
pub(crate) struct Forwarder {
    inner: Arc<Inner>,
    /// The receiver's name, sent as `airudder-event`.
    kind: Arc<str>,
    /// Where this kind goes (`AIRUDDER_FORWARD_URL_<KIND>`, or the common URL).
    url: reqwest::Url,
    /// The limits of that destination, shared by every kind posted to it.
    pace: Arc<Pace>,
    /// The broker `url` names, when it names one rather than an HTTP service.
    broker: Option<Arc<dyn Broker>>,
}

struct Inner {
    /// One client for every kind and destination, so that connections are reused.
    client: reqwest::Client,
    config: Forward,
    /// Each destination's limits, by URL.
    paces: std::sync::Mutex<HashMap<reqwest::Url, Arc<Pace>>>,
    /// Each broker, by URL: one connection for every kind sent to it.
    brokers: std::sync::Mutex<HashMap<reqwest::Url, Arc<dyn Broker>>>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("kind", &self.kind)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Why one try failed.
#[derive(Debug)]
enum Failure {
    /// The service answered, but not 2xx (nor 3xx).
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// The service answered 3xx. A redirect is never followed: a 307 or 308 would post the
    /// body, phone numbers and a valid signature included, to whatever host it names, and a
    /// 301 or 302 would become a GET without the body whose 200 would lose the notification.
    /// Standard Webhooks counts a 3xx as a failure.
    Redirect {
        status: u16,
        /// The host `Location` names (`None`: none, or this URL's own host).
        to: Option<String>,
    },
    /// No answer: refused, reset, timed out.
    Transport(String),
    /// The broker did not confirm the message.
    Broker(Refusal),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status { status, .. } => write!(f, "the service answered {status}"),
            Self::Redirect { status, to } => write!(
                f,
                "the service answered {status}, a redirect to {}: redirects are not followed",
                to.as_deref().unwrap_or("the same host")
            ),
            Self::Transport(err) => write!(f, "no answer from the service: {err}"),
            Self::Broker(refusal) => refusal.fmt(f),
        }
    }
}

impl Forwarder {
    /// The same forwarder (its client) for events of `kind`, posted to `url` within that
    /// destination's limits; a broker's URL opens its connection (once for every kind sent
    /// there).
    pub(crate) fn for_kind(&self, kind: &str, url: reqwest::Url) -> Result<Self, String> {
        let broker = if broker::is_broker(&url) {
            let mut brokers = self
                .inner
                .brokers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Some(match brokers.get(&url) {
                Some(open) => Arc::clone(open),
                None => {
                    let open = broker::open(&url, self.inner.config.timeout)?;
                    brokers.insert(url.clone(), Arc::clone(&open));
                    open
                }
            })
        } else {
            None
        };
        let pace = {
            let mut paces = self
                .inner
                .paces
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let config = &self.inner.config;
            Arc::clone(
                paces
                    .entry(url.clone())
                    .or_insert_with(|| Arc::new(Pace::new(config.concurrency, config.rate))),
            )
        };
        Ok(Self {
            inner: Arc::clone(&self.inner),
            kind: Arc::from(kind),
            url,
            pace,
            broker,
        })
    }

    /// The brokers forwarded to, each once.
    pub(crate) fn brokers(&self) -> Vec<Arc<dyn Broker>> {
        let brokers = self
            .inner
            .brokers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        brokers.values().cloned().collect()
    }

    /// A forwarder with its own HTTP client (rustls, the system's roots).
    pub(crate) fn new(config: Forward) -> Result<Self, Box<dyn std::error::Error>> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            // Connections are kept and reused: as many idle per host as may be in flight,
            // closed after 90 s unused (under most servers' own idle timeout of a few minutes,
            // over the gaps of a steady flow).
            .pool_max_idle_per_host(config.concurrency)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .tcp_keepalive(Duration::from_secs(60))
            // A 3xx is a failed attempt, never a hop (see `Failure::Redirect`); and no
            // `Referer`, which would carry the forward URL's query.
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .user_agent(concat!("airudder-relay/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let url = config.url.clone();
        let forwarder = Self {
            kind: Arc::from(airudder_webhook::store::DEFAULT_KIND),
            url: url.clone(),
            pace: Arc::new(Pace::new(config.concurrency, config.rate)),
            broker: None,
            inner: Arc::new(Inner {
                client,
                config,
                paces: std::sync::Mutex::default(),
                brokers: std::sync::Mutex::default(),
            }),
        };
        Ok(forwarder.for_kind(airudder_webhook::store::DEFAULT_KIND, url)?)
    }

    /// One try to a broker: done when it confirms.
    async fn publish(
        &self,
        broker: &dyn Broker,
        body: &bytes::Bytes,
        id: &str,
        attempt: u32,
    ) -> Result<(), Failure> {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let signature = self
            .inner
            .config
            .secret
            .as_ref()
            .map(|key| sign(key, id, timestamp, body));
        let message = Message {
            kind: &self.kind,
            body,
            webhook_id: id,
            timestamp,
            attempt,
            signature,
        };
        // What the broker said may name the URL's user: never stored, logged or shown.
        broker.publish(&message).await.map_err(|refusal| {
            Failure::Broker(match refusal {
                Refusal::Refused(why) => Refusal::Refused(broker::scrub(&why)),
                Refusal::Unreachable(why) => Refusal::Unreachable(broker::scrub(&why)),
            })
        })
    }

    /// One try: 2xx is done (its status returned).
    async fn post(&self, body: &bytes::Bytes, id: &str, attempt: u32) -> Result<u16, Failure> {
        let inner = &self.inner;
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let mut request = inner
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("airudder-event", &*self.kind)
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("airudder-attempt", attempt.to_string())
            .body(body.clone());
        if let Some(key) = &inner.config.secret {
            request = request.header("webhook-signature", sign(key, id, timestamp, body));
        }
        let response = request
            .send()
            .await
            .map_err(|err| Failure::Transport(describe(&err)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(status.as_u16());
        }
        if status.is_redirection() {
            let to = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|location| self.url.join(location).ok())
                .and_then(|target| target.host_str().map(str::to_owned))
                .filter(|host| Some(host.as_str()) != self.url.host_str());
            return Err(Failure::Redirect {
                status: status.as_u16(),
                to,
            });
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(retry_after);
        Err(Failure::Status {
            status: status.as_u16(),
            retry_after,
        })
    }
}

/// What went wrong with a request, and its root cause (`Connection refused`, `failed to lookup
/// address`), without the URL: its query may carry a token.
pub(crate) fn describe(err: &reqwest::Error) -> String {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    if cause.is_empty() {
        what.to_owned()
    } else {
        format!("{what} ({cause})")
    }
}

/// `v1,` and the base64 of HMAC-SHA256(key, "{id}.{timestamp}.{body}"), per Standard Webhooks.
pub(crate) fn sign(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    // An HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("v1,{signature}")
}

/// A `Retry-After`: seconds, or an HTTP date (a date past is no wait).
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = http_date(value)?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// An HTTP date as servers send it today (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`),
/// read as RFC 3339; the obsolete forms are not (a wait then follows the backoff).
fn http_date(value: &str) -> Option<SystemTime> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = value.split_ascii_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts[..] else {
        return None;
    };
    let month = MONTHS.iter().position(|m| *m == month)? + 1;
    humantime::parse_rfc3339(&format!("{year}-{month:02}-{day:0>2}T{time}Z")).ok()
}

impl<E: Event> HandleNotification<Relayed<E>> for Forwarder {
    type Error = BoxError;

    /// One attempt. A failure goes back to the store, due again after the policy's backoff, or
    /// after the service's `Retry-After` (either cut short to the deadline by the receiver).
    async fn handle(&self, delivery: Delivery<Relayed<E>>) -> Result<(), BoxError> {
        let id = webhook_id(&self.kind, delivery.event());
        // Counted by the store before this call: across restarts.
        let attempt = delivery.attempt();
        let tried = {
            let _turn = self.pace.turn().await;
            let started = Instant::now();
            let body = &delivery.event().body;
            let tried = match &self.broker {
                Some(broker) => self
                    .publish(broker.as_ref(), body, &id, attempt)
                    .await
                    .map(|()| None),
                None => self.post(body, &id, attempt).await.map(Some),
            };
            let outcome = match &tried {
                Ok(Some(status)) => Forwarded::Ok(*status),
                Ok(None) => Forwarded::Confirmed,
                Err(Failure::Status { status, .. } | Failure::Redirect { status, .. }) => {
                    Forwarded::Rejected(*status)
                }
                Err(Failure::Broker(Refusal::Refused(_))) => Forwarded::Refused,
                Err(Failure::Transport(_) | Failure::Broker(Refusal::Unreachable(_))) => {
                    Forwarded::Error
                }
            };
            crate::metrics::forwarded(outcome, started.elapsed());
            tried
        };
        let failure = match tried {
            Ok(Some(status)) => {
                delivery.report_status(status);
                tracing::info!(webhook_id = %id, attempt, status, "forwarded");
                return Ok(());
            }
            Ok(None) => {
                tracing::info!(webhook_id = %id, attempt, "published: the broker confirmed it");
                return Ok(());
            }
            Err(failure) => failure,
        };
        if let Failure::Status { status, .. } | Failure::Redirect { status, .. } = &failure {
            delivery.report_status(*status);
        }
        let retry_for = self.inner.config.retry_for;
        let late = SystemTime::now()
            .duration_since(delivery.received_at())
            .is_ok_and(|since| since >= retry_for);
        if late {
            // The receiver makes it a dead letter: this was the try at or past the deadline.
            tracing::error!(webhook_id = %id, attempt, error = %failure, "not forwarded in time: a dead letter now");
            return Err(format!(
                "not forwarded within {} of receipt, after {attempt} tries; the last: {failure}",
                humantime::format_duration(retry_for)
            )
            .into());
        }
        // DEBUG: through an outage every notification fails at each retry; the receiver logs
        // the first failure at WARN and then one line every 10 s with how many followed. This
        // line adds the ids, to match one with the service's log (`RUST_LOG=debug`).
        tracing::debug!(webhook_id = %id, attempt, error = %failure, "forward failed; the store retries it");
        match failure {
            // The service's wait, whatever number it gives, is at most the retry time (the
            // receiver cuts it to the deadline): no instant is ever added to past its range.
            Failure::Status {
                retry_after: Some(wait),
                ..
            } => Err(RetryLater::after(wait.min(retry_for), failure.to_string()).into()),
            failure => Err(failure.to_string().into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_standard_webhooks_one() {
        // The example of the Standard Webhooks specification's reference libraries.
        let key = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        let signature = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_retry_after_is_seconds_or_a_date() {
        assert_eq!(retry_after(" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(120))
            .to_string();
        // 2026-12-02T13:02:00Z as Wed, 02 Dec 2026 13:02:00 GMT (the weekday is not read).
        let (date, time) = later.trim_end_matches('Z').split_once('T').unwrap();
        let [year, month, day] = date.split('-').collect::<Vec<_>>()[..] else {
            panic!("{date}")
        };
        let months = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let month = months[month.parse::<usize>().unwrap() - 1];
        let wait = retry_after(&format!("Wed, {day} {month} {year} {time} GMT")).unwrap();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        assert_eq!(retry_after("soon"), None);
    }
}
