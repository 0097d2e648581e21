//! NATS JetStream (`nats://`, `tls://`): each notification published to the subject the URL
//! names (`?subject=airudder.{kind}`), done once the stream that takes the subject has
//! acknowledged it. The Standard Webhooks headers travel as NATS headers, and `Nats-Msg-Id` is
//! the `webhook-id`: a message published again (a retry after a lost acknowledgement, a
//! redelivery after a crash, a replay) is stored once within the stream's duplicate window (two
//! minutes by default), and its acknowledgement, marked duplicate, is a success.
//!
//! The connection: async-nats reconnects by itself after a loss, but only a few times at once
//! ([`RECONNECTS`]); past those its client closes, and the [`Link`] takes over with its
//! backoff. An attempt that finds the client disconnected makes the link forget it, so that the
//! link's state (`airudder_broker_connected`, the admin API) and the next try agree with what
//! async-nats knows, and no attempt waits out a timeout on a connection that is gone.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::{ConnectErrorKind, HeaderMap, HeaderName, HeaderValue};
use reqwest::Url;

use super::{BoxFuture, Broker, Link, Message, Refusal};

/// The port of a URL without one: NATS's own, with or without TLS.
const DEFAULT_PORT: u16 = 4222;

/// How many times async-nats tries to reconnect, one right after the other (0, 2 and 4 ms
/// apart), after a loss: enough for a connection dropped by the network with the server still
/// up; past them the link's backoff decides.
const RECONNECTS: usize = 3;

/// Where and how to publish: a `nats://` or `tls://` URL.
pub(crate) struct Settings {
    /// The server as async-nats takes it: scheme, host and port, no user info.
    server: String,
    tls: bool,
    auth: Auth,
    /// The subject, `{kind}` in it replaced for each message.
    subject: String,
    /// The URL as shown: no credentials.
    shown: String,
}

/// The credentials of the URL's user info.
#[derive(PartialEq, Eq)]
enum Auth {
    None,
    /// `nats://user:password@host`.
    UserPassword(String, String),
    /// `nats://token@host` (or `nats://:token@host`).
    Token(String),
}

impl std::fmt::Debug for Settings {
    /// Without the credentials: whether there are some, and which.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match self.auth {
            Auth::None => "none",
            Auth::UserPassword(..) => "user and password",
            Auth::Token(_) => "token",
        };
        f.debug_struct("Settings")
            .field("server", &self.server)
            .field("tls", &self.tls)
            .field("auth", &auth)
            .field("subject", &self.subject)
            .finish()
    }
}

impl Settings {
    /// The settings of `nats://[user:password@|token@]host[:port]?subject=NAME` (`tls://` for
    /// TLS). An error names the URL as shown, never its credentials.
    pub(crate) fn from_url(url: &Url) -> Result<Self, String> {
        let shown = super::shown(url);
        let tls = match url.scheme() {
            "nats" => false,
            "tls" => true,
            other => {
                return Err(format!(
                    "{shown}: a NATS URL starts with nats:// (or tls:// for TLS), not {other}://"
                ));
            }
        };
        let host = url
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| {
                format!("{shown}: no server; write nats://HOST:{DEFAULT_PORT}?subject=NAME")
            })?;
        if !matches!(url.path(), "" | "/") {
            return Err(format!(
                "{shown}: a NATS URL has no path; the subject goes in ?subject= (nats://HOST:{DEFAULT_PORT}?subject=airudder.{{kind}})"
            ));
        }
        if url.fragment().is_some() {
            return Err(format!(
                "{shown}: a # ends the URL where it stands; write it %23 in a password or token"
            ));
        }
        let parameters = super::parameters(url, &["subject"], &["subject"])?;
        let subject = parameters
            .into_iter()
            .find_map(|(name, value)| (name == "subject").then_some(value))
            .unwrap_or_default();
        check_subject(&subject).map_err(|why| {
            format!(
                "{shown}: subject {:?} {why}",
                crate::shown::cell(&subject, 64)
            )
        })?;
        let (user, password) = match (decoded(url.username()), url.password().map(decoded)) {
            (Some(user), None) => (user, String::new()),
            (Some(user), Some(Some(password))) => (user, password),
            _ => {
                return Err(format!(
                    "{shown}: the user, password or token in the URL is not UTF-8 once percent-decoded"
                ));
            }
        };
        let auth = match (user.is_empty(), password.is_empty()) {
            (true, true) => Auth::None,
            (false, true) => Auth::Token(user),
            (true, false) => Auth::Token(password),
            (false, false) => Auth::UserPassword(user, password),
        };
        let port = url.port().unwrap_or(DEFAULT_PORT);
        Ok(Self {
            server: format!("{}://{host}:{port}", url.scheme()),
            tls,
            auth,
            subject,
            shown,
        })
    }
}

/// Why `subject` cannot be published to, if it cannot: each dot-separated token non-empty,
/// no blank or control character, no wildcard (`*`, `>`).
fn check_subject(subject: &str) -> Result<(), &'static str> {
    let subject = super::with_kind(subject, "kind");
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("has a blank or control character; NATS subjects have none");
    }
    if subject.split('.').any(str::is_empty) {
        return Err("has an empty token: no dot at either end, nor two in a row");
    }
    if subject.split('.').any(|token| token == "*" || token == ">") {
        return Err("has a wildcard (* or >): a message is published to one subject");
    }
    Ok(())
}

/// `text` percent-decoded (`%40` is `@`; a `%` not followed by two hex digits stays); `None`
/// unless the bytes are UTF-8.
fn decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes[i] == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        if escape {
            let hex = |b: u8| (b as char).to_digit(16).unwrap_or_default() as u8;
            out.push(hex(bytes[i + 1]) << 4 | hex(bytes[i + 2]));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// One connection: the client (for its state) and its JetStream context, both cheap to clone
/// for each publish.
#[derive(Clone)]
struct Connection {
    client: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
}

/// A NATS JetStream destination.
pub(crate) struct Nats {
    settings: Arc<Settings>,
    timeout: Duration,
    link: Arc<Link<Connection>>,
}

impl Nats {
    /// The destination, its first connection started now in the background (when called
    /// within the runtime; else by the first publish).
    pub(crate) fn new(settings: Settings, timeout: Duration) -> Self {
        let settings = Arc::new(settings);
        let link = Arc::new(Link::new(settings.shown.clone()));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (settings, link) = (Arc::clone(&settings), Arc::clone(&link));
            runtime.spawn(async move {
                // A failure is logged and kept by the link; the first publish says it too.
                let _ = link.get(timeout, || connect(&settings, timeout)).await;
            });
        }
        Self {
            settings,
            timeout,
            link,
        }
    }

    async fn publish_once(&self, message: &Message<'_>) -> Result<(), Refusal> {
        let timeout = self.timeout;
        let started = std::time::Instant::now();
        let connection = self
            .link
            .get(timeout, || connect(&self.settings, timeout))
            .await?;
        let subject = super::with_kind(&self.settings.subject, message.kind);
        let mut headers = HeaderMap::new();
        for (name, value) in message.headers() {
            let (Ok(name), Ok(value)) = (HeaderName::from_str(name), HeaderValue::from_str(&value))
            else {
                return Err(Refusal::Refused(format!(
                    "the header {name} cannot be a NATS header (a line break in its value)"
                )));
            };
            headers.insert(name, value);
        }
        let Ok(id) = HeaderValue::from_str(message.webhook_id) else {
            return Err(Refusal::Refused(
                "the webhook-id cannot be a NATS header (a line break in it)".to_owned(),
            ));
        };
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
        let publish = PublishMessage::build()
            .payload(message.body.clone())
            .headers(headers);
        let jetstream = &connection.jetstream;
        let acknowledged = tokio::time::timeout(timeout, async {
            jetstream
                .send_publish(subject.clone(), publish)
                .await?
                .await
        })
        .await
        .unwrap_or_else(|_| Err(PublishError::new(PublishErrorKind::TimedOut)));
        let error = match acknowledged {
            Ok(ack) => {
                if ack.duplicate {
                    tracing::debug!(webhook_id = %message.webhook_id, stream = %ack.stream, "the stream already held it: a duplicate within its window");
                }
                return Ok(());
            }
            Err(error) => error,
        };
        let connected = connection.client.connection_state() == State::Connected;
        let refusal = refusal(&error, &subject, connected, self.shown(), timeout);
        if let (false, Refusal::Unreachable(why)) = (connected, &refusal) {
            self.link.lost_after(started, why).await;
        }
        Err(refusal)
    }
}

/// A new client, connected now (one try: the link waits between tries), and its JetStream
/// context; every wait bounded by `timeout`.
async fn connect(settings: &Settings, timeout: Duration) -> Result<Connection, String> {
    let mut options = async_nats::ConnectOptions::new()
        .name(concat!("airudder-relay/", env!("CARGO_PKG_VERSION")))
        .connection_timeout(timeout)
        .request_timeout(Some(timeout))
        // A connection that stopped answering is found out after three pings unanswered.
        .ping_interval(timeout.max(Duration::from_secs(1)))
        .max_reconnects(RECONNECTS)
        .require_tls(settings.tls);
    match &settings.auth {
        Auth::None => {}
        Auth::UserPassword(user, password) => {
            options = options.user_and_password(user.clone(), password.clone());
        }
        Auth::Token(token) => options = options.token(token.clone()),
    }
    let client = options
        .connect(settings.server.as_str())
        .await
        .map_err(|err| match err.kind() {
            ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => format!(
                "the server refused the credentials ({err}): check the user and password, or the token, in the URL"
            ),
            ConnectErrorKind::Tls => format!(
                "{err}: check that the server has TLS on (tls:// needs it) and a certificate this host trusts"
            ),
            _ => format!("{err}: check that the NATS server is up and reachable"),
        })?;
    let jetstream = async_nats::jetstream::ContextBuilder::new()
        .timeout(timeout)
        .ack_timeout(timeout)
        .build(client.clone());
    Ok(Connection { client, jetstream })
}

/// What a failed publish to `subject` means for the operator: the stream's refusal, or no
/// acknowledgement (with the client `connected` or not).
fn refusal(
    error: &PublishError,
    subject: &str,
    connected: bool,
    shown: &str,
    timeout: Duration,
) -> Refusal {
    let server_said = std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<async_nats::jetstream::Error>());
    match (error.kind(), server_said) {
        (PublishErrorKind::StreamNotFound, _) => Refusal::Refused(format!(
            "no JetStream stream takes subject {subject}: add a stream with this subject (nats stream add NAME --subjects '{subject}', on a server with JetStream enabled), then replay the dead letters"
        )),
        (_, Some(said)) => Refusal::Refused(format!(
            "the stream of subject {subject} answered {said}: change the stream (its limits, its discard policy: nats stream info, nats stream edit) or make room in it, then replay the dead letters"
        )),
        (PublishErrorKind::MaxPayloadExceeded, _) => Refusal::Refused(format!(
            "{error}: raise max_payload in the NATS server's configuration, then replay the dead letters"
        )),
        _ if !connected => Refusal::Unreachable(format!(
            "lost the connection to {shown} ({error}): check that the NATS server is up and reachable; the relay connects again and retries"
        )),
        (PublishErrorKind::TimedOut, _) => Refusal::Unreachable(format!(
            "no acknowledgement within {timeout:?} for subject {subject}, while connected to {shown}: check the stream's health (nats stream info) and that a stream takes this subject; the relay retries"
        )),
        (PublishErrorKind::Other, _) => Refusal::Refused(format!(
            "the answer on subject {subject} is not a JetStream acknowledgement ({error}): let a stream, and nothing else, answer this subject, then replay the dead letters"
        )),
        _ => Refusal::Unreachable(format!(
            "{error} for subject {subject} on {shown}; the relay retries"
        )),
    }
}

impl Broker for Nats {
    fn publish<'a>(&'a self, message: &'a Message<'a>) -> BoxFuture<'a, Result<(), Refusal>> {
        Box::pin(self.publish_once(message))
    }

    fn connected(&self) -> bool {
        self.link.connected()
    }

    fn shown(&self) -> &str {
        self.link.shown()
    }

    fn last_error(&self) -> Option<String> {
        self.link.last_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> Result<Settings, String> {
        Settings::from_url(&Url::parse(url).unwrap())
    }

    #[test]
    fn a_url_gives_the_server_the_credentials_and_the_subject() {
        let found =
            settings("nats://relay:s3cr%40t@nats.internal:4333?subject=airudder.{kind}").unwrap();
        assert_eq!(found.server, "nats://nats.internal:4333");
        assert!(!found.tls);
        assert!(found.auth == Auth::UserPassword("relay".into(), "s3cr@t".into()));
        assert_eq!(found.subject, "airudder.{kind}");
        assert_eq!(
            found.shown,
            "nats://nats.internal:4333?subject=airudder.{kind}"
        );
        let debug = format!("{found:?}");
        assert!(
            !debug.contains("s3cr") && !debug.contains("relay\""),
            "{debug}"
        );

        let found = settings("tls://t0ken@nats.internal/?subject=calls").unwrap();
        assert_eq!(found.server, "tls://nats.internal:4222");
        assert!(found.tls);
        assert!(found.auth == Auth::Token("t0ken".into()));
        let found = settings("nats://:t0ken@127.0.0.1?subject=calls").unwrap();
        assert!(found.auth == Auth::Token("t0ken".into()));
        let found = settings("nats://[::1]:4222?subject=calls").unwrap();
        assert_eq!(found.server, "nats://[::1]:4222");
        assert!(found.auth == Auth::None);
    }

    #[test]
    fn a_wrong_url_is_refused_saying_why_without_its_credentials() {
        for (url, says) in [
            (
                "nats://relay:s3cret@nats.internal:4222",
                "subject= is required",
            ),
            (
                "nats://relay:s3cret@nats.internal:4222?subject=",
                "subject= is required",
            ),
            (
                "nats://relay:s3cret@nats.internal:4222?subject=a&stream=b",
                "unknown parameter \"stream\"",
            ),
            (
                "nats://relay:s3cret@nats.internal:4222?subject=a&subject=b",
                "subject is given twice",
            ),
            (
                "nats://relay:s3cret@nats.internal:4222/calls?subject=a",
                "has no path",
            ),
            (
                "nats://relay:s3cret@nats.internal:4222?subject=airudder.*",
                "has a wildcard",
            ),
            (
                "nats://relay:s3cret@nats.internal:4222?subject=airudder.>",
                "has a wildcard",
            ),
            (
                "nats://relay:s3cret@nats.internal:4222?subject=airudder..{kind}",
                "has an empty token",
            ),
            (
                "nats://relay:s3cret@nats.internal:4222?subject=airudder.{kind}.",
                "has an empty token",
            ),
            (
                "nats://relay:s3cret@nats.internal:4222?subject=air%20udder",
                "has a blank or control character",
            ),
            (
                "nats://relay:s3cret@nats.internal:4222?subject=a#x",
                "a # ends the URL",
            ),
            (
                "nats://relay:s3cret%FF@nats.internal:4222?subject=a",
                "not UTF-8",
            ),
        ] {
            let err = settings(url).unwrap_err();
            assert!(err.contains(says), "{url}: {err}");
            assert!(err.starts_with("nats://nats.internal:4222"), "{url}: {err}");
            assert!(
                !err.contains("s3cret") && !err.contains("relay"),
                "{url}: {err}"
            );
        }
        for url in ["nats:?subject=a", "nats:///?subject=a"] {
            let err = settings(url).unwrap_err();
            assert!(err.contains("no server"), "{url}: {err}");
        }
    }

    #[test]
    fn percent_escapes_are_decoded_and_a_stray_percent_kept() {
        assert_eq!(decoded("p%40ss%2Fw%3a").as_deref(), Some("p@ss/w:"));
        assert_eq!(decoded("100%").as_deref(), Some("100%"));
        assert_eq!(decoded("%+1%zz").as_deref(), Some("%+1%zz"));
        assert_eq!(decoded("%C3%A9").as_deref(), Some("é"));
        assert_eq!(decoded("%FF"), None);
    }

    #[test]
    fn each_failed_publish_says_what_to_do() {
        let timeout = Duration::from_secs(10);
        let shown = "nats://127.0.0.1:4222?subject=airudder.{kind}";
        let subject = "airudder.task_notification";
        let refused = |error: PublishError, connected: bool| {
            refusal(&error, subject, connected, shown, timeout)
        };
        assert_eq!(
            refused(PublishError::new(PublishErrorKind::StreamNotFound), true),
            Refusal::Refused(
                "no JetStream stream takes subject airudder.task_notification: add a stream with this subject (nats stream add NAME --subjects 'airudder.task_notification', on a server with JetStream enabled), then replay the dead letters".into()
            )
        );
        let full: async_nats::jetstream::Error = serde_json::from_str(
            r#"{"code":503,"err_code":10077,"description":"maximum messages exceeded"}"#,
        )
        .unwrap();
        assert_eq!(
            refused(
                PublishError::with_source(PublishErrorKind::Other, full),
                true
            ),
            Refusal::Refused(
                "the stream of subject airudder.task_notification answered maximum messages exceeded (code 503, error code 10077): change the stream (its limits, its discard policy: nats stream info, nats stream edit) or make room in it, then replay the dead letters".into()
            )
        );
        let Refusal::Unreachable(lost) =
            refused(PublishError::new(PublishErrorKind::BrokenPipe), false)
        else {
            panic!("a lost connection is no answer");
        };
        assert!(
            lost.starts_with("lost the connection to nats://127.0.0.1:4222")
                && lost.contains("check that the NATS server is up"),
            "{lost}"
        );
        let Refusal::Unreachable(slow) =
            refused(PublishError::new(PublishErrorKind::TimedOut), true)
        else {
            panic!("no acknowledgement in time is no answer");
        };
        assert!(slow.starts_with("no acknowledgement within 10s"), "{slow}");
        assert!(matches!(
            refused(
                PublishError::with_source(PublishErrorKind::MaxPayloadExceeded, "1 MiB"),
                true
            ),
            Refusal::Refused(why) if why.contains("raise max_payload")
        ));
    }

    #[tokio::test]
    async fn a_server_not_listening_is_a_prompt_failure_and_a_backoff() {
        // Port 1 of loopback: nothing listens there.
        let settings = settings("nats://127.0.0.1:1?subject=airudder.{kind}").unwrap();
        let nats = Nats::new(settings, Duration::from_secs(5));
        let body = bytes::Bytes::from_static(b"{}");
        let message = Message {
            kind: "task_notification",
            body: &body,
            webhook_id: "msg_0123",
            timestamp: 1_764_576_000,
            attempt: 1,
            signature: None,
        };
        let started = std::time::Instant::now();
        let Err(Refusal::Unreachable(why)) = nats.publish(&message).await else {
            panic!("published with no server");
        };
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert!(
            why.contains("nats://127.0.0.1:1?subject=airudder.{kind}"),
            "{why}"
        );
        assert!(!nats.connected());
        assert!(
            nats.last_error()
                .is_some_and(|error| error.contains("check that the NATS server is up")),
            "{:?}",
            nats.last_error()
        );
    }
}
