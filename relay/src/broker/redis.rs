//! Redis Streams: each notification is one `XADD` to the stream the URL names, its fields the
//! body, the `webhook-id`, the kind, the timestamp, the attempt and the rest of the Standard
//! Webhooks headers. Delivered means Redis answered the entry's id.
//!
//! `redis://[user:password@]host:port/db?stream=NAME[&maxlen=N]`, or `rediss://` for TLS: the
//! client is made from the URL without its query (the redis crate reads the user, password and
//! database), and the relay reads the query. Redis keeps no message id of its own: a
//! notification tried again after a lost answer or a crash may be added twice, under the same
//! `webhook-id`, which is what a consumer de-duplicates on.

use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, Client, Cmd, ErrorKind, RedisError};
use reqwest::Url;
use tokio::time::Instant;

use super::{BoxFuture, Broker, Link, Message, Refusal, parameters, shown, with_kind};

/// What a `redis://` URL says: where to connect, which stream, how long it may grow.
pub(crate) struct Settings {
    /// Made from the URL without its query; holds the credentials, so never shown.
    client: Client,
    /// The URL as shown: no credentials.
    shown: String,
    /// The stream's name, `{kind}` in it replaced at each publish.
    stream: String,
    /// `XADD … MAXLEN ~ N`: the stream is trimmed to about this many entries.
    maxlen: Option<u64>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("url", &self.shown)
            .field("stream", &self.stream)
            .field("maxlen", &self.maxlen)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// The settings of `url`, checked: a stream named, `maxlen` a positive number, the path a
    /// database number. No error shows the user or password.
    pub(crate) fn from_url(url: &Url) -> Result<Self, String> {
        let shown = shown(url);
        let found = parameters(url, &["stream", "maxlen"], &["stream"])?;
        let mut stream = String::new();
        let mut maxlen = None;
        for (name, value) in found {
            if name == "stream" {
                stream = value;
            } else {
                maxlen = Some(match value.trim().parse::<u64>() {
                    Ok(n) if n > 0 => n,
                    _ => {
                        return Err(format!(
                            "{shown}: maxlen= is the stream's length to keep (XADD MAXLEN ~ N), a whole number above 0, not {:?}",
                            crate::shown::cell(&value, 32)
                        ));
                    }
                });
            }
        }
        let database = url.path().trim_matches('/');
        if !database.is_empty() && database.parse::<u16>().is_err() {
            return Err(format!(
                "{shown}: the path is the database's number (/0, /1, …), not {:?}",
                crate::shown::cell(database, 32)
            ));
        }
        let mut connect = url.clone();
        connect.set_query(None);
        let client = Client::open(connect.as_str()).map_err(|error| {
            // The crate's text names no part of the URL; its kind and detail are enough.
            format!("{shown}: not a Redis URL the client takes: {error}")
        })?;
        Ok(Self {
            client,
            shown,
            stream,
            maxlen,
        })
    }

    /// The `XADD` of `message` to `stream`.
    fn command(&self, stream: &str, message: &Message<'_>) -> Cmd {
        let mut command = ::redis::cmd("XADD");
        command.arg(stream);
        if let Some(maxlen) = self.maxlen {
            command.arg("MAXLEN").arg("~").arg(maxlen);
        }
        command
            .arg("*")
            .arg("body")
            .arg(&message.body[..])
            .arg("webhook-id")
            .arg(message.webhook_id)
            .arg("kind")
            .arg(message.kind)
            .arg("timestamp")
            .arg(message.timestamp)
            .arg("attempt")
            .arg(message.attempt);
        // The other headers an HTTP forward has, under their own names: `content-type`,
        // `webhook-timestamp` and, when signed, `webhook-signature`.
        for (name, value) in message.headers() {
            if !matches!(name, "webhook-id" | "airudder-event" | "airudder-attempt") {
                command.arg(name).arg(value);
            }
        }
        command
    }
}

/// A Redis server, one multiplexed connection shared by every publish.
pub(crate) struct Redis {
    settings: Settings,
    link: Arc<Link<MultiplexedConnection>>,
    timeout: Duration,
}

impl Redis {
    /// Connects in the background from now on (when there is a runtime to), so that the
    /// connection's state is known before the first notification.
    pub(crate) fn new(settings: Settings, timeout: Duration) -> Self {
        let link = Arc::new(Link::new(settings.shown.clone()));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (link, client) = (Arc::clone(&link), settings.client.clone());
            runtime.spawn(async move {
                // A failure is logged and kept by the link; the first publish tries again.
                let _ = link.get(timeout, || connect(client, timeout)).await;
            });
        }
        Self {
            settings,
            link,
            timeout,
        }
    }

    /// What a failed `XADD` to `stream` means: a lost connection, or Redis' refusal with what
    /// an operator can do about it.
    async fn failed(
        &self,
        started: std::time::Instant,
        stream: &str,
        error: &RedisError,
    ) -> Refusal {
        if error.is_io_error() || error.kind() == ErrorKind::Parse {
            self.link.lost_after(started, &error.to_string()).await;
            return Refusal::Unreachable(format!(
                "the connection to {} was lost during XADD: {error}",
                self.settings.shown
            ));
        }
        let Some(code) = error.code() else {
            return Refusal::Refused(format!(
                "XADD to {} on {} failed: {error}",
                crate::shown::cell(stream, 128),
                self.settings.shown
            ));
        };
        refusal(
            code,
            error.detail().unwrap_or_default(),
            stream,
            &self.settings.shown,
        )
    }
}

/// A new connection to the server, every wait bound by `timeout`.
async fn connect(client: Client, timeout: Duration) -> Result<MultiplexedConnection, String> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|error| error.to_string())
}

/// Redis' error reply `code` (`WRONGTYPE`, `OOM`, …) with its `detail`, to an `XADD` to
/// `stream` on `server`, as an operator reads it: the cause, and what to change. Loading and
/// busy servers answer again later: those are no refusal.
fn refusal(code: &str, detail: &str, stream: &str, server: &str) -> Refusal {
    let stream = crate::shown::cell(stream, 128);
    let said = crate::shown::cell(&format!("{code} {detail}"), 256);
    let then = "then replay the dead letters";
    let why = match code {
        "WRONGTYPE" => format!(
            "the key {stream} holds another type than a stream; delete or rename it (or name another stream in the URL's stream=), {then}"
        ),
        "OOM" => format!(
            "the server is out of memory (maxmemory reached, and its policy evicts nothing); free memory, raise maxmemory, or bound the stream with maxlen= in the URL, {then}"
        ),
        "NOPERM" => format!(
            "the URL's user may not XADD to {stream}; grant it (ACL SETUSER <user> +xadd ~{stream}) or use another user, {then}"
        ),
        "NOAUTH" => format!(
            "the server asks for a password; put the user and password in the URL (redis://user:password@host:port/db), {then}"
        ),
        "READONLY" => {
            format!("{server} is a read-only replica; point the URL at the primary, {then}")
        }
        "MOVED" | "ASK" | "CROSSSLOT" | "CLUSTERDOWN" => format!(
            "{server} is a node of a Redis Cluster and {stream} is served by another node; the relay publishes to one server: point the URL at the node that holds the key, or at a standalone Redis, {then}"
        ),
        "MISCONF" => format!(
            "the server refuses writes because it cannot save its snapshot to disk; fix its disk or its `dir` and `dbfilename`, {then}"
        ),
        "LOADING" | "BUSY" | "MASTERDOWN" | "TRYAGAIN" => {
            return Refusal::Unreachable(format!(
                "Redis answered {said} to XADD: it cannot take writes for now; the store tries again"
            ));
        }
        _ => format!("fix what it says on {server}, {then}"),
    };
    Refusal::Refused(format!("Redis answered {said} to XADD {stream}: {why}"))
}

impl Broker for Redis {
    fn publish<'a>(&'a self, message: &'a Message<'a>) -> BoxFuture<'a, Result<(), Refusal>> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let client = self.settings.client.clone();
            let mut connection = self
                .link
                .get(self.timeout, || connect(client, self.timeout))
                .await?;
            // The XADD's own time, whatever the wait for a connection took.
            let deadline = Instant::now() + self.timeout;
            let stream = with_kind(&self.settings.stream, message.kind);
            let command = self.settings.command(&stream, message);
            let added =
                tokio::time::timeout_at(deadline, command.query_async::<String>(&mut connection))
                    .await;
            match added {
                Ok(Ok(_id)) => Ok(()),
                Ok(Err(error)) => Err(self.failed(started, &stream, &error).await),
                Err(_) => {
                    let error = format!("no answer to XADD within {:?}", self.timeout);
                    self.link.lost_after(started, &error).await;
                    Err(Refusal::Unreachable(format!(
                        "{error} from {}",
                        self.settings.shown
                    )))
                }
            }
        })
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
    fn the_url_names_the_stream_and_may_bound_it() {
        let read = settings(
            "redis://relay:s3cret@cache.internal:6380/2?stream=airudder.{kind}&maxlen=10000",
        )
        .unwrap();
        assert_eq!(read.stream, "airudder.{kind}");
        assert_eq!(read.maxlen, Some(10_000));
        assert_eq!(
            read.shown,
            "redis://cache.internal:6380/2?stream=airudder.{kind}&maxlen=10000"
        );
        let info = read.client.get_connection_info();
        assert_eq!(info.redis_settings().db(), 2);
        assert_eq!(info.redis_settings().username(), Some("relay"));
        assert_eq!(info.redis_settings().password(), Some("s3cret"));
        let debug = format!("{read:?}");
        assert!(!debug.contains("s3cret"), "{debug}");

        let plain = settings("rediss://cache.internal?stream=events").unwrap();
        assert_eq!((plain.stream.as_str(), plain.maxlen), ("events", None));
        assert_eq!(plain.client.get_connection_info().redis_settings().db(), 0);
    }

    #[test]
    fn a_missing_stream_an_unknown_parameter_or_a_bad_maxlen_is_refused_without_credentials() {
        for (url, said) in [
            ("redis://u:s3cret@h:6379/0", "stream= is required"),
            ("redis://u:s3cret@h:6379/0?stream=", "stream= is required"),
            (
                "redis://u:s3cret@h:6379/0?stream=s&max_len=5",
                "unknown parameter \"max_len\"",
            ),
            (
                "redis://u:s3cret@h:6379/0?stream=s&maxlen=0",
                "maxlen= is the stream's length",
            ),
            (
                "redis://u:s3cret@h:6379/0?stream=s&maxlen=lots",
                "not \"lots\"",
            ),
            (
                "redis://u:s3cret@h:6379/zero?stream=s",
                "the path is the database's number",
            ),
        ] {
            let error = settings(url).unwrap_err();
            assert!(error.contains(said), "{url}: {error}");
            assert!(error.starts_with("redis://h:6379/"), "{url}: {error}");
            assert!(
                !error.contains("s3cret") && !error.contains("u:"),
                "{error}"
            );
        }
    }

    #[test]
    fn the_entry_has_the_body_the_id_the_kind_the_time_the_attempt_and_the_headers() {
        let read = settings("redis://h/0?stream=airudder.{kind}&maxlen=5").unwrap();
        let body = bytes::Bytes::from_static(br#"{"task_id":"t"}"#);
        let message = Message {
            kind: "task_notification",
            body: &body,
            webhook_id: "msg_1",
            timestamp: 1_700_000_000,
            attempt: 2,
            signature: Some("v1,abc".to_owned()),
        };
        let stream = with_kind(&read.stream, message.kind);
        let packed =
            String::from_utf8(read.command(&stream, &message).get_packed_command()).unwrap();
        // `*<count>`, then `$<length>` and the word, for each word.
        let words: Vec<&str> = packed.split("\r\n").skip(2).step_by(2).collect();
        assert_eq!(
            words,
            [
                "XADD",
                "airudder.task_notification",
                "MAXLEN",
                "~",
                "5",
                "*",
                "body",
                r#"{"task_id":"t"}"#,
                "webhook-id",
                "msg_1",
                "kind",
                "task_notification",
                "timestamp",
                "1700000000",
                "attempt",
                "2",
                "content-type",
                "application/json",
                "webhook-timestamp",
                "1700000000",
                "webhook-signature",
                "v1,abc",
            ]
        );
    }

    #[test]
    fn each_error_reply_says_its_cause_and_what_to_change() {
        let server = "redis://h:6379/0?stream=s";
        let Refusal::Refused(wrongtype) = refusal(
            "WRONGTYPE",
            "Operation against a key holding the wrong kind of value",
            "airudder.task_notification",
            server,
        ) else {
            panic!("a refusal");
        };
        assert!(
            wrongtype.starts_with("Redis answered WRONGTYPE Operation against")
                && wrongtype.contains("the key airudder.task_notification holds another type")
                && wrongtype.contains("delete or rename it")
                && wrongtype.ends_with("then replay the dead letters"),
            "{wrongtype}"
        );
        for (code, said) in [
            ("OOM", "raise maxmemory"),
            ("NOPERM", "ACL SETUSER"),
            ("NOAUTH", "put the user and password in the URL"),
            ("READONLY", "point the URL at the primary"),
            ("MOVED", "Redis Cluster"),
            ("ERR", "fix what it says on redis://h:6379/0?stream=s"),
        ] {
            let refused = refusal(code, "detail", "s", server);
            assert!(
                matches!(&refused, Refusal::Refused(why) if why.contains(said)),
                "{code}: {refused:?}"
            );
        }
        assert!(matches!(
            refusal("LOADING", "Redis is loading the dataset in memory", "s", server),
            Refusal::Unreachable(why) if why.contains("the store tries again")
        ));
    }
}
