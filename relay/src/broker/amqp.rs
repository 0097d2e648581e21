//! RabbitMQ (AMQP 0-9-1): each notification is published to the exchange the URL names, with
//! its routing key, as a persistent message: the body as received, `message_id` the
//! `webhook-id`, `timestamp` the signed one, `type` the kind, and as headers the Standard
//! Webhooks ones, the kind and the attempt. The publish is mandatory and the channel in confirm
//! mode: delivered means RabbitMQ acknowledged it and did not return it. A message no queue is
//! bound to take comes back, a nack or a closed channel says why, and each is a failed attempt.
//!
//! `amqp://user:password@host:port/vhost?exchange=NAME&routing_key=KEY`, or `amqps://` for TLS
//! (the system's roots). The vhost is the path, `%2f` for `/` (also `/` when the path is empty);
//! without a user, `guest:guest`, which RabbitMQ takes only from loopback. `heartbeat=`
//! (seconds), `frame_max=` and `channel_max=` go to the client. The exchange must exist, and be
//! named: the default exchange (the empty name) is not supported; bind a queue to a named one.
//! RabbitMQ keeps no message ids: a notification tried again after a lost confirm or a crash
//! may be published twice, under the same `message_id` and `webhook-id`, which is what a
//! consumer de-duplicates on.
//!
//! One connection (a [`Link`]), and on it one channel per publish in flight, taken from those
//! idle or opened, so that a confirm or a returned message is always its own publish's: lapin
//! gives a returned message to the next confirm of its channel, which with several publishes in
//! flight on one channel, and RabbitMQ's confirms of several at once, may be another's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ErrorKind};
use reqwest::Url;
use tokio::time::Instant;

use super::{BoxFuture, Broker, Link, Message, Refusal, parameters, shown, with_kind};

/// The longest exchange, routing key, vhost or message id AMQP carries (a short string).
const SHORT: usize = 255;

/// The reply code of a message returned because nothing took it.
const NO_ROUTE: u16 = 312;

/// What an `amqp://` URL says: where to connect, which exchange, which routing key.
pub(crate) struct Settings {
    /// Where to connect, the user and password included: never shown.
    uri: AMQPUri,
    /// The URL as shown: no credentials.
    shown: String,
    /// The exchange's name, `{kind}` in it replaced at each publish.
    exchange: String,
    /// The routing key, `{kind}` in it replaced at each publish.
    routing_key: String,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("url", &self.shown)
            .field("vhost", &self.uri.vhost)
            .field("exchange", &self.exchange)
            .field("routing_key", &self.routing_key)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// The settings of `url`, checked: an exchange and a routing key named, the client's own
    /// parameters numbers, every name short enough for AMQP. No error shows the user or
    /// password.
    pub(crate) fn from_url(url: &Url) -> Result<Self, String> {
        let shown = shown(url);
        let found = parameters(
            url,
            &[
                "exchange",
                "routing_key",
                "heartbeat",
                "frame_max",
                "channel_max",
            ],
            &["exchange", "routing_key"],
        )?;
        let mut query = AMQPQueryString::default();
        let (mut exchange, mut routing_key) = (String::new(), String::new());
        for (name, value) in found {
            match name.as_str() {
                "exchange" => exchange = value,
                "routing_key" => routing_key = value,
                "heartbeat" => {
                    query.heartbeat = Some(number(&shown, &name, &value, "seconds, 0 for none")?);
                }
                "frame_max" => {
                    query.frame_max = Some(number(&shown, &name, &value, "bytes a frame")?);
                }
                _ => {
                    query.channel_max = Some(number(&shown, &name, &value, "channels")?);
                }
            }
        }
        for (name, value) in [("exchange", &exchange), ("routing_key", &routing_key)] {
            if value.len() > SHORT {
                return Err(format!(
                    "{shown}: {name}= is {} bytes long; RabbitMQ takes {SHORT} at most",
                    value.len()
                ));
            }
        }
        let scheme = if url.scheme() == "amqps" {
            AMQPScheme::AMQPS
        } else {
            AMQPScheme::AMQP
        };
        // The host as the URL has it: an IPv6 address without its brackets, a name decoded.
        // (The client's own parser reads an IPv6 address as `localhost`: not used.)
        let host = match url.host_str() {
            Some(host) if !host.is_empty() => {
                let bare = host
                    .strip_prefix('[')
                    .and_then(|host| host.strip_suffix(']'))
                    .unwrap_or(host);
                decoded(bare).ok_or_else(|| format!("{shown}: the host is not UTF-8"))?
            }
            _ => {
                return Err(format!(
                    "{shown}: no host (for instance amqp://relay:PASSWORD@rabbitmq.internal:5672/%2f?exchange=airudder&routing_key=calls.{{kind}})"
                ));
            }
        };
        let port = url.port().unwrap_or_else(|| scheme.default_port());
        let userinfo = if url.username().is_empty() {
            AMQPUserInfo::default()
        } else {
            let username = decoded(url.username())
                .ok_or_else(|| format!("{shown}: the user is not UTF-8 once decoded"))?;
            let password = decoded(url.password().unwrap_or_default())
                .ok_or_else(|| format!("{shown}: the password is not UTF-8 once decoded"))?;
            AMQPUserInfo { username, password }
        };
        let vhost = match url.path() {
            "" | "/" => "/".to_owned(),
            path => decoded(path.strip_prefix('/').unwrap_or(path))
                .ok_or_else(|| format!("{shown}: the vhost is not UTF-8 once decoded"))?,
        };
        if vhost.len() > SHORT {
            return Err(format!(
                "{shown}: the vhost is {} bytes long; RabbitMQ takes {SHORT} at most",
                vhost.len()
            ));
        }
        Ok(Self {
            uri: AMQPUri {
                scheme,
                authority: AMQPAuthority {
                    userinfo,
                    host,
                    port,
                },
                vhost,
                query,
            },
            shown,
            exchange,
            routing_key,
        })
    }
}

/// A client parameter's value: a whole number of `unit`.
fn number<T: std::str::FromStr>(
    shown: &str,
    name: &str,
    value: &str,
    unit: &str,
) -> Result<T, String> {
    value.trim().parse().map_err(|_| {
        format!(
            "{shown}: {name}= is a whole number ({unit}), not {:?}",
            crate::shown::cell(value, 32)
        )
    })
}

/// `text` with each `%XX` decoded; `None` unless the bytes are UTF-8.
fn decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = (bytes[at] == b'%')
            .then(|| bytes.get(at + 1..at + 3))
            .flatten()
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                at += 3;
            }
            None => {
                out.push(bytes[at]);
                at += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The relay's publisher to RabbitMQ.
pub(crate) struct Amqp {
    settings: Arc<Settings>,
    link: Arc<Link<Arc<Session>>>,
    /// The number of the last session made: a failure on an older one forgets nothing.
    sessions: Arc<AtomicU64>,
    /// The forward timeout: each wait's limit.
    timeout: Duration,
}

impl std::fmt::Debug for Amqp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Amqp")
            .field("settings", &self.settings)
            .field("connected", &self.link.connected())
            .finish_non_exhaustive()
    }
}

/// One connection, and its channels in confirm mode that no publish uses now.
struct Session {
    connection: Connection,
    idle: std::sync::Mutex<Vec<Channel>>,
    /// Counted from 1 for each connection made.
    number: u64,
}

impl Session {
    /// A channel no publish uses, still open.
    fn take(&self) -> Option<Channel> {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while let Some(channel) = idle.pop() {
            if channel.status().connected() {
                return Some(channel);
            }
        }
        None
    }

    /// Puts a channel back for the next publish once its own is confirmed.
    fn keep(&self, channel: Channel) {
        if channel.status().connected() {
            self.idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(channel);
        }
    }
}

impl Amqp {
    /// The publisher of `settings`, connecting in the background from now on (when called
    /// within the runtime; otherwise at the first publish).
    pub(crate) fn new(mut settings: Settings, timeout: Duration) -> Self {
        // lapin's own connect (on a thread of its own) gives up within the forward timeout too,
        // rather than when the system does (minutes, to a host that drops packets).
        settings.uri.query.connection_timeout =
            Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        let amqp = Self {
            link: Arc::new(Link::new(settings.shown.clone())),
            settings: Arc::new(settings),
            sessions: Arc::new(AtomicU64::new(0)),
            timeout,
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let link = Arc::clone(&amqp.link);
            let settings = Arc::clone(&amqp.settings);
            let sessions = Arc::clone(&amqp.sessions);
            // The outcome is logged and kept by the link.
            runtime.spawn(async move {
                let _ = link.get(timeout, || connect(&settings, &sessions)).await;
            });
        }
        amqp
    }

    /// The connection, made again first if the one kept has closed since its last use.
    async fn session(&self) -> Result<Arc<Session>, Refusal> {
        let connect = || connect(&self.settings, &self.sessions);
        let mut session = self.link.get(self.timeout, connect).await?;
        if !session.connection.status().connected() {
            self.forget(&session, "the connection was closed").await;
            session = self.link.get(self.timeout, connect).await?;
        }
        if session.connection.status().blocked() {
            return Err(Refusal::Unreachable(
                "RabbitMQ blocks publishing for now: a memory or disk alarm on the broker \
                 (rabbitmq-diagnostics alarms); it is tried again once the alarm clears"
                    .to_owned(),
            ));
        }
        Ok(session)
    }

    /// Forgets `session` after `error` showed it lost, unless a newer one is kept already.
    async fn forget(&self, session: &Session, error: &str) {
        if self.sessions.load(Ordering::SeqCst) == session.number {
            self.link.lost(error).await;
        }
    }

    /// What `error` on `session` means for this publish to `exchange`; a lost connection is
    /// forgotten.
    async fn failed(&self, session: &Session, error: &lapin::Error, exchange: &str) -> Refusal {
        let connection_lost = !session.connection.status().connected()
            || error.is_io_error()
            || error.is_amqp_hard_error()
            || matches!(
                error.kind(),
                ErrorKind::MissingHeartbeatError | ErrorKind::InvalidConnectionState(_)
            );
        if connection_lost {
            let why = format!("the connection was lost: {error}");
            self.forget(session, &why).await;
            return Refusal::Unreachable(why);
        }
        refusal(error, exchange, &self.settings.uri.vhost)
    }

    /// One publish, confirmed or not.
    async fn publish_one(&self, message: &Message<'_>) -> Result<(), Refusal> {
        let exchange = with_kind(&self.settings.exchange, message.kind);
        let routing_key = with_kind(&self.settings.routing_key, message.kind);
        let (Ok(exchange_name), Ok(key)) = (
            ShortString::try_new(exchange.as_str()),
            ShortString::try_new(routing_key.as_str()),
        ) else {
            return Err(Refusal::Refused(format!(
                "exchange {exchange} with routing key {routing_key} is over {SHORT} bytes once {{kind}} is {}: shorten them in the forward URL, then replay the dead letters",
                message.kind
            )));
        };
        let properties = properties(message)?;
        let session = self.session().await?;
        let deadline = Instant::now() + self.timeout;
        let channel = match session.take() {
            Some(channel) => channel,
            None => match tokio::time::timeout_at(deadline, open(&session.connection)).await {
                Ok(Ok(channel)) => channel,
                Ok(Err(error)) => return Err(self.failed(&session, &error, &exchange).await),
                Err(_) => {
                    return Err(Refusal::Unreachable(format!(
                        "RabbitMQ opened no channel within {:?}",
                        self.timeout
                    )));
                }
            },
        };
        let published = tokio::time::timeout_at(deadline, async {
            let options = BasicPublishOptions {
                mandatory: true,
                immediate: false,
            };
            channel
                .basic_publish(exchange_name, key, options, message.body, properties)
                .await?
                .await
        })
        .await;
        // A channel whose publish failed or went unconfirmed is not kept: dropped, it is closed,
        // and a late confirm or return with it.
        match published {
            Ok(Ok(Confirmation::Ack(None))) => {
                session.keep(channel);
                Ok(())
            }
            Ok(Ok(Confirmation::Ack(Some(returned)))) => {
                session.keep(channel);
                Err(Refusal::Refused(if returned.reply_code == NO_ROUTE {
                    format!(
                        "no queue is bound to exchange {exchange} with routing key {routing_key}: bind one, then replay the dead letters"
                    )
                } else {
                    format!(
                        "RabbitMQ returned it from exchange {exchange} with routing key {routing_key} ({} {})",
                        returned.reply_code, returned.reply_text
                    )
                }))
            }
            Ok(Ok(Confirmation::Nack(_))) => {
                session.keep(channel);
                Err(Refusal::Refused(format!(
                    "RabbitMQ nacked it: a queue bound to exchange {exchange} with routing key {routing_key} could not take it (full with x-overflow reject-publish, or unavailable): make room or fix the queue, then replay the dead letters"
                )))
            }
            Ok(Ok(Confirmation::NotRequested)) => Err(Refusal::Unreachable(
                "RabbitMQ was not asked to confirm it: the channel was not in confirm mode"
                    .to_owned(),
            )),
            Ok(Err(error)) => Err(self.failed(&session, &error, &exchange).await),
            Err(_) => Err(Refusal::Unreachable(format!(
                "RabbitMQ did not confirm it within {:?}",
                self.timeout
            ))),
        }
    }
}

impl Broker for Amqp {
    fn publish<'a>(&'a self, message: &'a Message<'a>) -> BoxFuture<'a, Result<(), Refusal>> {
        Box::pin(self.publish_one(message))
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

/// A new connection, with one channel in confirm mode ready.
async fn connect(settings: &Settings, sessions: &AtomicU64) -> Result<Arc<Session>, String> {
    let properties = ConnectionProperties::default().with_connection_name(LongString::from(
        concat!("airudder-relay ", env!("CARGO_PKG_VERSION")),
    ));
    // lapin's errors name no part of the URI: the server's reply, or the socket's error.
    let connection = Connection::connect_uri(settings.uri.clone(), properties)
        .await
        .map_err(|error| error.to_string())?;
    let channel = open(&connection)
        .await
        .map_err(|error| format!("no channel: {error}"))?;
    let number = sessions.fetch_add(1, Ordering::SeqCst) + 1;
    Ok(Arc::new(Session {
        connection,
        idle: std::sync::Mutex::new(vec![channel]),
        number,
    }))
}

/// A new channel in confirm mode.
async fn open(connection: &Connection) -> lapin::Result<Channel> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// The message's properties: persistent, JSON, its id the `webhook-id`, its timestamp the
/// signed one, its type the kind, and every header of an HTTP forward.
fn properties(message: &Message<'_>) -> Result<BasicProperties, Refusal> {
    let (Ok(id), Ok(kind)) = (
        ShortString::try_new(message.webhook_id),
        ShortString::try_new(message.kind),
    ) else {
        return Err(Refusal::Refused(format!(
            "the webhook-id or the kind is over {SHORT} bytes, more than an AMQP property holds"
        )));
    };
    let mut headers = FieldTable::default();
    for (name, value) in message.headers() {
        headers.insert(
            ShortString::from(name),
            AMQPValue::LongString(LongString::from(value)),
        );
    }
    Ok(BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        .with_delivery_mode(2)
        .with_message_id(id)
        .with_timestamp(message.timestamp)
        .with_type(kind)
        .with_headers(headers))
}

/// What a channel closed by RabbitMQ (the connection still up) means for a publish to
/// `exchange` in `vhost`.
fn refusal(error: &lapin::Error, exchange: &str, vhost: &str) -> Refusal {
    let ErrorKind::ProtocolError(said) = error.kind() else {
        return Refusal::Unreachable(format!("the channel failed: {error}"));
    };
    let text = said.get_message().as_str();
    match said.kind() {
        AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) if text.contains("no exchange") => {
            Refusal::Refused(format!(
                "exchange {exchange} does not exist in vhost {vhost}: declare it, then replay the dead letters"
            ))
        }
        // RabbitMQ's text names the user: left out.
        AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) => Refusal::Refused(format!(
            "the user may not publish to exchange {exchange} in vhost {vhost} (ACCESS_REFUSED): give it write permission there (or name an exchange that is not internal), then replay the dead letters"
        )),
        AMQPErrorKind::Soft(_) => Refusal::Refused(format!(
            "RabbitMQ closed the channel of a publish to exchange {exchange}: {text}"
        )),
        AMQPErrorKind::Hard(_) => {
            Refusal::Unreachable(format!("RabbitMQ closed the connection: {text}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::protocol::{AMQPError, AMQPHardError};

    fn settings(url: &str) -> Result<Settings, String> {
        Settings::from_url(&Url::parse(url).unwrap())
    }

    #[test]
    fn a_url_gives_the_connection_the_exchange_and_the_routing_key() {
        let parsed = settings(
            "amqps://relay:p%40ss@mq.internal:5671/prod%2Fcalls?exchange=airudder.{kind}&routing_key=calls.{kind}&heartbeat=30&frame_max=131072&channel_max=64",
        )
        .unwrap();
        let uri = &parsed.uri;
        assert_eq!(uri.scheme, AMQPScheme::AMQPS);
        assert_eq!(
            (uri.authority.host.as_str(), uri.authority.port),
            ("mq.internal", 5671)
        );
        assert_eq!(
            (
                uri.authority.userinfo.username.as_str(),
                uri.authority.userinfo.password.as_str()
            ),
            ("relay", "p@ss")
        );
        assert_eq!(uri.vhost, "prod/calls");
        assert_eq!(
            (
                uri.query.heartbeat,
                uri.query.frame_max,
                uri.query.channel_max
            ),
            (Some(30), Some(131_072), Some(64))
        );
        assert_eq!(
            (parsed.exchange.as_str(), parsed.routing_key.as_str()),
            ("airudder.{kind}", "calls.{kind}")
        );
        assert_eq!(
            parsed.shown,
            "amqps://mq.internal:5671/prod%2Fcalls?exchange=airudder.{kind}&routing_key=calls.{kind}"
        );
        let debug = format!("{parsed:?}");
        assert!(
            !debug.contains("p@ss") && !debug.contains("p%40ss"),
            "{debug}"
        );
    }

    #[test]
    fn an_address_stays_an_address_and_the_defaults_apply() {
        let parsed = settings("amqp://127.0.0.1:5673?exchange=e&routing_key=k").unwrap();
        assert_eq!(parsed.uri.authority.host, "127.0.0.1");
        assert_eq!(parsed.uri.vhost, "/");
        assert_eq!(parsed.uri.authority.userinfo.username, "guest");
        let parsed = settings("amqp://[::1]/%2f?exchange=e&routing_key=k").unwrap();
        assert_eq!(
            (
                parsed.uri.authority.host.as_str(),
                parsed.uri.authority.port,
                parsed.uri.vhost.as_str()
            ),
            ("::1", 5672, "/")
        );
        let parsed = settings("amqps://relay@mq/?exchange=e&routing_key=k").unwrap();
        assert_eq!(
            (
                parsed.uri.authority.port,
                parsed.uri.vhost.as_str(),
                parsed.uri.authority.userinfo.password.as_str()
            ),
            (5671, "/", "")
        );
    }

    #[test]
    fn a_wrong_url_is_refused_saying_why_without_its_credentials() {
        let base = "amqp://relay:s3cret@mq.internal:5672/%2f";
        for (query, expected) in [
            ("?routing_key=k", "exchange= is required"),
            ("?exchange=e", "routing_key= is required"),
            ("?exchange=&routing_key=k", "exchange= is required"),
            (
                "?exchange=e&routing_key=k&typo=1",
                "unknown parameter \"typo\"",
            ),
            (
                "?exchange=e&routing_key=k&heartbeat=soon",
                "heartbeat= is a whole number",
            ),
            (
                "?exchange=e&routing_key=k&channel_max=99999",
                "channel_max= is a whole number",
            ),
            (
                "?exchange=e&exchange=f&routing_key=k",
                "exchange is given twice",
            ),
        ] {
            let err = settings(&format!("{base}{query}")).unwrap_err();
            assert!(err.contains(expected), "{query}: {err}");
            assert!(
                err.starts_with("amqp://mq.internal:5672/%2f"),
                "{query}: {err}"
            );
            assert!(!err.contains("s3cret") && !err.contains("relay"), "{err}");
        }
        let long = "x".repeat(256);
        let err = settings(&format!("{base}?exchange={long}&routing_key=k")).unwrap_err();
        assert!(err.contains("exchange= is 256 bytes long"), "{err}");
        let err = settings(&format!(
            "amqp://relay:s3cret@mq/{long}?exchange=e&routing_key=k"
        ))
        .unwrap_err();
        assert!(err.contains("the vhost is 256 bytes long"), "{err}");
        let err = settings("amqp://relay:%FF@mq/?exchange=e&routing_key=k").unwrap_err();
        assert!(err.contains("the password is not UTF-8"), "{err}");
        assert!(!err.contains("%FF") && !err.contains("relay"), "{err}");
    }

    #[test]
    fn percent_escapes_are_decoded_and_a_stray_percent_kept() {
        assert_eq!(decoded("a%2Fb%2fc").as_deref(), Some("a/b/c"));
        assert_eq!(decoded("100%").as_deref(), Some("100%"));
        assert_eq!(decoded("%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(decoded("%+1").as_deref(), Some("%+1"));
        assert_eq!(decoded("%C3%A9").as_deref(), Some("é"));
        assert_eq!(decoded("%FF"), None);
    }

    #[test]
    fn a_message_carries_its_id_timestamp_and_every_header() {
        let body = bytes::Bytes::from_static(b"{}");
        let message = Message {
            kind: "pds_event",
            body: &body,
            webhook_id: "msg_0123",
            timestamp: 1_764_576_000,
            attempt: 3,
            signature: Some("v1,abc=".to_owned()),
        };
        let built = properties(&message).unwrap();
        assert_eq!(
            built.message_id().as_ref().map(ShortString::as_str),
            Some("msg_0123")
        );
        assert_eq!(*built.timestamp(), Some(1_764_576_000));
        assert_eq!(*built.delivery_mode(), Some(2));
        assert_eq!(
            built.content_type().as_ref().map(ShortString::as_str),
            Some("application/json")
        );
        assert_eq!(
            built.kind().as_ref().map(ShortString::as_str),
            Some("pds_event")
        );
        let headers = built.headers().as_ref().unwrap();
        for (name, value) in message.headers() {
            let found = headers.inner().get(name);
            assert_eq!(
                found,
                Some(&AMQPValue::LongString(LongString::from(value))),
                "{name}"
            );
        }
        assert_eq!(headers.inner().len(), 6);
        let long = "x".repeat(256);
        let too_long = Message {
            webhook_id: &long,
            ..message
        };
        assert!(matches!(properties(&too_long), Err(Refusal::Refused(_))));
    }

    #[test]
    fn a_closed_channel_says_what_to_fix() {
        let said = |kind: AMQPErrorKind, text: &str| {
            lapin::Error::from(ErrorKind::ProtocolError(AMQPError::new(kind, text.into())))
        };
        let missing = said(
            AMQPSoftError::NOTFOUND.into(),
            "NOT_FOUND - no exchange 'calls' in vhost '/'",
        );
        assert_eq!(
            refusal(&missing, "calls", "/"),
            Refusal::Refused(
                "exchange calls does not exist in vhost /: declare it, then replay the dead letters"
                    .to_owned()
            )
        );
        let denied = said(
            AMQPSoftError::ACCESSREFUSED.into(),
            "ACCESS_REFUSED - write access to exchange 'calls' in vhost '/' refused for user 'relay'",
        );
        let Refusal::Refused(why) = refusal(&denied, "calls", "/") else {
            panic!("refused");
        };
        assert!(
            why.contains("give it write permission") && !why.contains("relay"),
            "{why}"
        );
        let large = said(
            AMQPSoftError::PRECONDITIONFAILED.into(),
            "PRECONDITION_FAILED - message size 200 is larger than configured max size 100",
        );
        assert!(
            matches!(refusal(&large, "calls", "/"), Refusal::Refused(why) if why.contains("larger than configured max size"))
        );
        let forced = said(
            AMQPHardError::CONNECTIONFORCED.into(),
            "CONNECTION_FORCED - shutdown",
        );
        assert!(matches!(
            refusal(&forced, "calls", "/"),
            Refusal::Unreachable(_)
        ));
        let io = lapin::Error::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(matches!(
            refusal(&io, "calls", "/"),
            Refusal::Unreachable(_)
        ));
    }
}
