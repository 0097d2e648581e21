//! Forwarding: each notification POSTed to the team's service, signed per Standard Webhooks,
//! retried with backoff and jitter until it is accepted or its time is up.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use airudder_webhook::{Delivery, Event, GiveUp, HandleNotification};
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use sha2::Sha256;
use tokio::sync::Semaphore;

use crate::config::Forward;
use crate::event::{Relayed, webhook_id};
use crate::metrics::{Forwarded, WaitingRetry};

/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// The wait after the first failed try; it doubles after each.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The handler of a forwarding relay, for one kind of event.
#[derive(Clone)]
pub(crate) struct Forwarder {
    inner: Arc<Inner>,
    /// The receiver's name, sent as `airudder-event`.
    kind: Arc<str>,
    /// Where this kind goes (`AIRUDDER_FORWARD_URL_<KIND>`, or the common URL).
    url: reqwest::Url,
}

struct Inner {
    client: reqwest::Client,
    config: Forward,
    /// One per forward in flight.
    slots: Semaphore,
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
        }
    }
}

impl Forwarder {
    /// The same forwarder (its client, its concurrency) for events of `kind`, posted to `url`.
    pub(crate) fn for_kind(&self, kind: &str, url: reqwest::Url) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            kind: Arc::from(kind),
            url,
        }
    }

    /// A forwarder with its own HTTP client (rustls, the system's roots).
    pub(crate) fn new(config: Forward) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            // A 3xx is a failed attempt, never a hop (see `Failure::Redirect`); and no
            // `Referer`, which would carry the forward URL's query.
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .user_agent(concat!("airudder-relay/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            kind: Arc::from(airudder_webhook::store::DEFAULT_KIND),
            url: config.url.clone(),
            inner: Arc::new(Inner {
                slots: Semaphore::new(config.concurrency),
                client,
                config,
            }),
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
        let retry_after = match status.as_u16() {
            429 | 503 => response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
            _ => None,
        };
        Err(Failure::Status {
            status: status.as_u16(),
            retry_after,
        })
    }
}

/// What went wrong with a request, without the URL's query (it may carry a token).
fn describe(err: &reqwest::Error) -> String {
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

/// Half the backoff, and a random part of the other half: tries of many notifications spread
/// out instead of hitting a recovering service at once.
fn jittered(backoff: Duration) -> Duration {
    let half = backoff / 2;
    half + half.mul_f64(fastrand::f64())
}

impl<E: Event> HandleNotification<Relayed<E>> for Forwarder {
    type Error = GiveUp;

    async fn handle(&self, delivery: Delivery<Relayed<E>>) -> Result<(), GiveUp> {
        let id = webhook_id(&self.kind, delivery.event());
        let deadline = delivery.received_at() + self.inner.config.retry_for;
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let tried = {
                let _slot = self.inner.slots.acquire().await;
                let started = Instant::now();
                let tried = self.post(&delivery.event().body, &id, attempt).await;
                let outcome = match &tried {
                    Ok(status) => Forwarded::Ok(*status),
                    Err(Failure::Status { status, .. } | Failure::Redirect { status, .. }) => {
                        Forwarded::Rejected(*status)
                    }
                    Err(Failure::Transport(_)) => Forwarded::Error,
                };
                crate::metrics::forwarded(outcome, started.elapsed());
                tried
            };
            let failure = match tried {
                Ok(_) => {
                    tracing::info!(webhook_id = %id, attempt, "forwarded");
                    return Ok(());
                }
                Err(failure) => failure,
            };
            let wait = match &failure {
                Failure::Status {
                    retry_after: Some(after),
                    ..
                } => *after,
                _ => jittered(backoff),
            };
            backoff = (backoff * 2).min(MAX_BACKOFF);
            // Any wait, the backoff or the service's Retry-After (whatever number it gives), is
            // cut short to the time left: a last try at the deadline, then a dead letter, never
            // one while time is left. No instant is ever added to.
            let left = deadline
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            let wait = wait.min(left);
            if left.is_zero() {
                tracing::error!(webhook_id = %id, attempt, error = %failure, "not forwarded in time: a dead letter now");
                return Err(GiveUp::new(format!(
                    "not forwarded within {} of receipt, after {attempt} tries; the last: {failure}",
                    humantime::format_duration(self.inner.config.retry_for)
                )));
            }
            tracing::warn!(webhook_id = %id, attempt, error = %failure, retry_in_ms = wait.as_millis() as u64, "forward failed; retrying");
            let _waiting = WaitingRetry::start();
            tokio::time::sleep(wait).await;
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
    fn the_jitter_stays_between_half_and_the_whole_backoff() {
        for _ in 0..1000 {
            let wait = jittered(Duration::from_secs(8));
            assert!(wait >= Duration::from_secs(4) && wait <= Duration::from_secs(8));
        }
    }
}
