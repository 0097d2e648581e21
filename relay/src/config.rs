//! The relay's configuration: flags, environment variables and a TOML file, validated once at
//! start into one [`Config`], with errors that name the key and what it accepts.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use clap::{Args, Parser};
use serde::Deserialize;

/// Receives Airudder's task notifications, stores them, and prints them as JSON lines on stdout
/// or forwards them, signed, to your service.
///
/// Every setting is a flag, an environment variable, or a key of the TOML file given with
/// `--config`: the key is the flag's name with `_` for `-` (`forward_url = "https://…"`).
/// A flag wins over the variable, the variable over the file.
#[derive(Debug, Parser)]
#[command(name = "airudder-relay", version, about, long_about)]
pub(crate) struct Cli {
    /// A TOML file with any of the settings below.
    #[arg(long, value_name = "FILE", env = "AIRUDDER_CONFIG")]
    pub(crate) config: Option<PathBuf>,

    #[command(flatten)]
    pub(crate) settings: Settings,

    /// Without a command, the relay runs; a command asks a running relay's admin API, or
    /// rehearses Airudder (`send`, `example`).
    #[command(subcommand)]
    pub(crate) command: Option<crate::Command>,
}

/// Every setting as given, before validation; the same fields are the file's keys.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    /// The address to listen on for Airudder (also /health and /ready) [default: 127.0.0.1:3000]
    #[arg(long, env = "AIRUDDER_LISTEN", value_name = "ADDR")]
    #[serde(default, deserialize_with = "scalar")]
    listen: Option<String>,

    /// When to answer Airudder 200: `durable` (once stored and fsynced), `memory` (once
    /// queued) or `handled` (once printed or forwarded) [default: durable]
    #[arg(long, env = "AIRUDDER_ACK", value_name = "ACK")]
    #[serde(default, deserialize_with = "scalar")]
    ack: Option<String>,

    /// The embedded store's directory [default: ./airudder-data]
    #[arg(long, env = "AIRUDDER_DATA_DIR", value_name = "DIR")]
    #[serde(default, deserialize_with = "scalar")]
    data_dir: Option<String>,

    /// Store in PostgreSQL instead (`postgres://user:password@host:port/db`), shared by every
    /// relay given the same URL [default: unset, the embedded store]
    #[arg(
        long,
        env = "AIRUDDER_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    #[serde(default, deserialize_with = "scalar")]
    database_url: Option<String>,

    /// The PostgreSQL schema of the relay's tables [default: airudder]
    #[arg(long, env = "AIRUDDER_DATABASE_SCHEMA", value_name = "NAME")]
    #[serde(default, deserialize_with = "scalar")]
    database_schema: Option<String>,

    /// Seconds before a dead relay's notifications go to the others (PostgreSQL) [default: 15]
    #[arg(long, env = "AIRUDDER_LEASE_SECS", value_name = "SECS")]
    #[serde(default, deserialize_with = "scalar")]
    lease_secs: Option<String>,

    /// The token Airudder's URL must carry as `?token=…`: at least 16 bytes, no white space
    /// at its ends (make one with `openssl rand -hex 32`) [default: unset, the relay runs open
    /// and says so]
    #[arg(
        long,
        env = "AIRUDDER_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    #[serde(default, deserialize_with = "scalar")]
    token: Option<String>,

    /// Printing mode: wait this long before printing, as a slow handler would [default: 0]
    #[arg(long, env = "AIRUDDER_HANDLER_DELAY_MS", value_name = "MS")]
    #[serde(default, deserialize_with = "scalar")]
    handler_delay_ms: Option<String>,

    /// Forward each notification to this http or https URL instead of printing it [default:
    /// unset, print JSON lines on stdout]
    #[arg(
        long,
        env = "AIRUDDER_FORWARD_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    #[serde(default, deserialize_with = "scalar")]
    forward_url: Option<String>,

    /// How long one forward may take before it counts as failed [default: 10s]
    #[arg(long, env = "AIRUDDER_FORWARD_TIMEOUT", value_name = "DURATION")]
    #[serde(default, deserialize_with = "scalar")]
    forward_timeout: Option<String>,

    /// How long after receipt a notification is retried before it becomes a dead letter
    /// [default: 72h]
    #[arg(long, env = "AIRUDDER_RETRY_FOR", value_name = "DURATION")]
    #[serde(default, deserialize_with = "scalar")]
    retry_for: Option<String>,

    /// The most forwards in flight at once, to each destination URL [default: 16]
    #[arg(long, env = "AIRUDDER_FORWARD_CONCURRENCY", value_name = "N")]
    #[serde(default, deserialize_with = "scalar")]
    forward_concurrency: Option<String>,

    /// The most forwards started to each destination URL, per second, minute or hour (`50/s`,
    /// `600/min`), spaced evenly [default: unset, no cap but the concurrency]
    #[arg(long, env = "AIRUDDER_FORWARD_RATE", value_name = "RATE")]
    #[serde(default, deserialize_with = "scalar")]
    forward_rate: Option<String>,

    /// Sign each forward per Standard Webhooks with this key (`whsec_` and base64)
    /// [default: unset, unsigned]
    #[arg(
        long,
        env = "AIRUDDER_FORWARD_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    #[serde(default, deserialize_with = "scalar")]
    forward_secret: Option<String>,

    /// The admin API's address (GET /admin/stats, /admin/dead-letters, …) [default:
    /// 127.0.0.1:3001]
    #[arg(long, env = "AIRUDDER_ADMIN_LISTEN", value_name = "ADDR")]
    #[serde(default, deserialize_with = "scalar")]
    admin_listen: Option<String>,

    /// The bearer token the admin API asks for, at least 16 bytes (`openssl rand -hex 32`);
    /// without it the admin API listens on loopback only and answers loopback hosts only
    /// [default: unset]
    #[arg(
        long,
        env = "AIRUDDER_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    #[serde(default, deserialize_with = "scalar")]
    admin_token: Option<String>,

    /// The largest body accepted, in bytes; larger is answered 413 [default: 33554432, 32 MiB]
    #[arg(long, env = "AIRUDDER_BODY_LIMIT", value_name = "BYTES")]
    #[serde(default, deserialize_with = "scalar")]
    body_limit: Option<String>,

    /// How many notifications are printed or forwarded at once, per kind [default: 4 when
    /// printing, AIRUDDER_FORWARD_CONCURRENCY when forwarding]
    #[arg(long, env = "AIRUDDER_WORKERS", value_name = "N")]
    #[serde(default, deserialize_with = "scalar")]
    workers: Option<String>,

    /// With the memory ack, how many notifications may wait for a worker before Airudder is
    /// answered 503 (with the durable ack they wait in the store) [default: 1024]
    #[arg(long, env = "AIRUDDER_QUEUE_CAPACITY", value_name = "N")]
    #[serde(default, deserialize_with = "scalar")]
    queue_capacity: Option<String>,

    /// How often the gauges of GET /metrics (queue, store, readiness) are sampled [default: 5s]
    #[arg(long, env = "AIRUDDER_METRICS_INTERVAL", value_name = "DURATION")]
    #[serde(default, deserialize_with = "scalar")]
    metrics_interval: Option<String>,

    /// Names of callbacks whose bodies are not public, each served at `/airudder/raw/{name}`
    /// as any JSON object (comma-separated; letters, digits, `_` and `-`) [default: none]
    #[arg(long, env = "AIRUDDER_RAW_NAMES", value_name = "NAMES")]
    #[serde(default, deserialize_with = "scalar")]
    raw_names: Option<String>,

    /// The most bytes of refused bodies kept for replay (`rejected`), all kinds together; past
    /// it the oldest go first [default: 67108864, 64 MiB]
    #[arg(long, env = "AIRUDDER_REJECTED_MAX_BYTES", value_name = "BYTES")]
    #[serde(default, deserialize_with = "scalar")]
    rejected_max_bytes: Option<String>,

    /// How long a refused body is kept for replay [default: 7d]
    #[arg(long, env = "AIRUDDER_REJECTED_MAX_AGE", value_name = "DURATION")]
    #[serde(default, deserialize_with = "scalar")]
    rejected_max_age: Option<String>,

    /// The most connections the Airudder listener keeps open; past it the oldest idle one is
    /// closed for a new one [default: from the file limit (ulimit -n), less a reserve]
    #[arg(long, env = "AIRUDDER_MAX_CONNECTIONS", value_name = "N")]
    #[serde(default, deserialize_with = "scalar")]
    max_connections: Option<String>,

    /// The log's format on stderr: `text`, or `json` (one object a line, for log shippers)
    /// [default: text]
    #[arg(long, env = "AIRUDDER_LOG_FORMAT", value_name = "FORMAT")]
    #[serde(default, deserialize_with = "scalar")]
    log_format: Option<String>,
}

/// A TOML string, integer, float or boolean, as the text a variable would hold.
fn scalar<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Integer(i64),
        Float(f64),
        Bool(bool),
    }
    Ok(Some(match Scalar::deserialize(deserializer)? {
        Scalar::Text(text) => text,
        Scalar::Integer(n) => n.to_string(),
        Scalar::Float(x) => x.to_string(),
        Scalar::Bool(b) => b.to_string(),
    }))
}

/// How the relay logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// When the relay answers Airudder 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ack {
    Durable,
    Memory,
    Handled,
}

/// Where notifications go and how, when they are forwarded.
#[derive(Clone)]
pub(crate) struct Forward {
    pub(crate) url: reqwest::Url,
    pub(crate) timeout: Duration,
    pub(crate) retry_for: Duration,
    pub(crate) concurrency: usize,
    /// The most forwards started per second, minute or hour, to each destination.
    pub(crate) rate: Option<crate::pace::Rate>,
    /// The signing key, decoded from `whsec_…`.
    pub(crate) secret: Option<Vec<u8>>,
    /// Kinds sent elsewhere than `url` (`AIRUDDER_FORWARD_URL_<KIND>`).
    pub(crate) urls: Vec<(String, reqwest::Url)>,
}

impl Forward {
    /// Where events of `kind` go.
    pub(crate) fn url_for(&self, kind: &str) -> reqwest::Url {
        self.urls
            .iter()
            .find(|(k, _)| k == kind)
            .map_or_else(|| self.url.clone(), |(_, url)| url.clone())
    }
}

impl fmt::Debug for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forward")
            .field("url", &crate::shown::url(self.url.as_str()))
            .field("timeout", &self.timeout)
            .field("retry_for", &self.retry_for)
            .field("concurrency", &self.concurrency)
            .field("rate", &self.rate)
            .field("signed", &self.secret.is_some())
            .field(
                "kinds_elsewhere",
                &self.urls.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The validated configuration.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) listen: SocketAddr,
    pub(crate) ack: Ack,
    pub(crate) data_dir: PathBuf,
    pub(crate) database_url: Option<String>,
    pub(crate) database_schema: String,
    pub(crate) lease: Duration,
    pub(crate) token: Option<String>,
    pub(crate) handler_delay: Duration,
    pub(crate) forward: Option<Forward>,
    pub(crate) admin_listen: SocketAddr,
    pub(crate) admin_token: Option<String>,
    pub(crate) body_limit: usize,
    /// Set: overrides the mode's default.
    pub(crate) workers: Option<usize>,
    pub(crate) queue_capacity: usize,
    pub(crate) metrics_interval: Duration,
    pub(crate) log_format: LogFormat,
    /// The raw callbacks' names.
    pub(crate) raw_names: Vec<String>,
    /// How many bytes of refused bodies the store keeps, and for how long.
    pub(crate) rejected_max_bytes: u64,
    pub(crate) rejected_max_age: Duration,
    /// Set: overrides the cap the file limit gives.
    pub(crate) max_connections: Option<usize>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("ack", &self.ack)
            .field("data_dir", &self.data_dir)
            .field("database", &self.database_url.as_ref().map(|_| "set"))
            .field("database_schema", &self.database_schema)
            .field("lease", &self.lease)
            .field("token", &self.token.as_ref().map(|_| "set"))
            .field("handler_delay", &self.handler_delay)
            .field("forward", &self.forward)
            .field("admin_listen", &self.admin_listen)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "set"))
            .field("body_limit", &self.body_limit)
            .field("workers", &self.workers)
            .field("queue_capacity", &self.queue_capacity)
            .field("metrics_interval", &self.metrics_interval)
            .field("log_format", &self.log_format)
            .field("raw_names", &self.raw_names)
            .field("rejected_max_bytes", &self.rejected_max_bytes)
            .field("rejected_max_age", &self.rejected_max_age)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// A setting that cannot be used, named by its variable and its file key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError {
    key: &'static str,
    message: String,
}

impl ConfigError {
    fn new(key: &'static str, message: impl Into<String>) -> Self {
        Self {
            key,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file_key = self.key.trim_start_matches("AIRUDDER_").to_lowercase();
        write!(f, "{} ({file_key} in the file): {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Settings {
    /// Each setting from `self`, or else from `file`.
    fn or(self, file: Self) -> Self {
        Self {
            listen: self.listen.or(file.listen),
            ack: self.ack.or(file.ack),
            data_dir: self.data_dir.or(file.data_dir),
            database_url: self.database_url.or(file.database_url),
            database_schema: self.database_schema.or(file.database_schema),
            lease_secs: self.lease_secs.or(file.lease_secs),
            token: self.token.or(file.token),
            handler_delay_ms: self.handler_delay_ms.or(file.handler_delay_ms),
            forward_url: self.forward_url.or(file.forward_url),
            forward_timeout: self.forward_timeout.or(file.forward_timeout),
            retry_for: self.retry_for.or(file.retry_for),
            forward_concurrency: self.forward_concurrency.or(file.forward_concurrency),
            forward_rate: self.forward_rate.or(file.forward_rate),
            forward_secret: self.forward_secret.or(file.forward_secret),
            admin_listen: self.admin_listen.or(file.admin_listen),
            admin_token: self.admin_token.or(file.admin_token),
            body_limit: self.body_limit.or(file.body_limit),
            workers: self.workers.or(file.workers),
            queue_capacity: self.queue_capacity.or(file.queue_capacity),
            metrics_interval: self.metrics_interval.or(file.metrics_interval),
            log_format: self.log_format.or(file.log_format),
            raw_names: self.raw_names.or(file.raw_names),
            rejected_max_bytes: self.rejected_max_bytes.or(file.rejected_max_bytes),
            rejected_max_age: self.rejected_max_age.or(file.rejected_max_age),
            max_connections: self.max_connections.or(file.max_connections),
        }
    }
}

impl Cli {
    /// The settings given, merged with the file's, validated.
    pub(crate) fn load(self) -> Result<Config, ConfigError> {
        let file = match &self.config {
            None => Settings::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|err| {
                    ConfigError::new(
                        "AIRUDDER_CONFIG",
                        format!("cannot read {}: {err}", path.display()),
                    )
                })?;
                toml::from_str(&text).map_err(|err: toml::de::Error| {
                    // The message and the line, not toml's quote of the line: it may be the
                    // line of a secret.
                    let line = err.span().map_or(0, |span| {
                        1 + text.as_bytes()[..span.start.min(text.len())]
                            .iter()
                            .filter(|&&b| b == b'\n')
                            .count()
                    });
                    ConfigError::new(
                        "AIRUDDER_CONFIG",
                        format!(
                            "{} is not a valid file: line {line}: {}",
                            path.display(),
                            crate::shown::cell(err.message().trim(), 512)
                        ),
                    )
                })?
            }
        };
        self.settings.or(file).validate()
    }
}

fn duration(
    key: &'static str,
    value: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    humantime::parse_duration(value.trim()).map_err(|_| {
        ConfigError::new(
            key,
            format!("{value:?} is not a duration: use a number and a unit, like 25s, 10m or 72h"),
        )
    })
}

fn number(
    key: &'static str,
    value: Option<&str>,
    default: u64,
    min: u64,
) -> Result<u64, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    match value.trim().parse::<u64>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(ConfigError::new(
            key,
            format!("{value:?} is not a whole number of at least {min}"),
        )),
    }
}

impl Settings {
    fn validate(self) -> Result<Config, ConfigError> {
        let listen = self.listen.as_deref().unwrap_or("127.0.0.1:3000");
        let listen = listen.trim().parse::<SocketAddr>().map_err(|_| {
            ConfigError::new(
                "AIRUDDER_LISTEN",
                format!(
                    "{listen:?} is not an address and port, like 127.0.0.1:3000 or 0.0.0.0:8080"
                ),
            )
        })?;
        let ack = match self.ack.as_deref().map(str::trim) {
            None | Some("durable") => Ack::Durable,
            Some("memory") => Ack::Memory,
            Some("handled") => Ack::Handled,
            Some(other) => {
                return Err(ConfigError::new(
                    "AIRUDDER_ACK",
                    format!("{other:?} is not an ack: use durable, memory or handled"),
                ));
            }
        };
        let database_schema = self.database_schema.unwrap_or_else(|| "airudder".into());
        let lease = Duration::from_secs(number(
            "AIRUDDER_LEASE_SECS",
            self.lease_secs.as_deref(),
            15,
            1,
        )?);
        let handler_delay = Duration::from_millis(number(
            "AIRUDDER_HANDLER_DELAY_MS",
            self.handler_delay_ms.as_deref(),
            0,
            0,
        )?);
        let token = secret_token("AIRUDDER_TOKEN", self.token)?;
        let raw_names: Vec<String> = self
            .raw_names
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect();
        for name in &raw_names {
            let fine = name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !fine || raw_names.iter().filter(|n| *n == name).count() > 1 {
                return Err(ConfigError::new(
                    "AIRUDDER_RAW_NAMES",
                    format!("{name:?} is not a usable name: letters, digits, _ and -, each once"),
                ));
            }
        }
        // AIRUDDER_FORWARD_URL_<KIND>: a variable only, read for every kind served.
        let mut urls = Vec::new();
        for kind in crate::kinds::all(&raw_names) {
            let variable = crate::kinds::url_variable(&kind);
            let Ok(value) = std::env::var(&variable) else {
                continue;
            };
            if self.forward_url.is_none() {
                return Err(ConfigError::new(
                    "AIRUDDER_FORWARD_URL",
                    format!("is not set, and {variable} is: set the URL the other kinds go to"),
                ));
            }
            urls.push((
                kind,
                http_url("AIRUDDER_FORWARD_URL", &value).map_err(|_| {
                    ConfigError::new(
                        "AIRUDDER_FORWARD_URL",
                        format!(
                            "{variable}: {} is not an http:// or https:// URL",
                            crate::shown::url(&value)
                        ),
                    )
                })?,
            ));
        }
        let forward = match self
            .forward_url
            .as_deref()
            .map(str::trim)
            .filter(|url| !url.is_empty())
        {
            None => {
                for (key, set) in [
                    ("AIRUDDER_FORWARD_SECRET", self.forward_secret.is_some()),
                    ("AIRUDDER_FORWARD_TIMEOUT", self.forward_timeout.is_some()),
                    ("AIRUDDER_RETRY_FOR", self.retry_for.is_some()),
                    (
                        "AIRUDDER_FORWARD_CONCURRENCY",
                        self.forward_concurrency.is_some(),
                    ),
                    ("AIRUDDER_FORWARD_RATE", self.forward_rate.is_some()),
                ] {
                    if set {
                        return Err(ConfigError::new(
                            key,
                            "is set, but AIRUDDER_FORWARD_URL is not: set the URL to forward to, or drop this",
                        ));
                    }
                }
                None
            }
            Some(url) => Some(Forward {
                url: http_url("AIRUDDER_FORWARD_URL", url)?,
                urls,
                timeout: duration(
                    "AIRUDDER_FORWARD_TIMEOUT",
                    self.forward_timeout.as_deref(),
                    Duration::from_secs(10),
                )?,
                retry_for: at_most(
                    "AIRUDDER_RETRY_FOR",
                    duration(
                        "AIRUDDER_RETRY_FOR",
                        self.retry_for.as_deref(),
                        Duration::from_secs(72 * 3600),
                    )?,
                    YEAR,
                )?,
                concurrency: number(
                    "AIRUDDER_FORWARD_CONCURRENCY",
                    self.forward_concurrency.as_deref(),
                    16,
                    1,
                )? as usize,
                rate: self
                    .forward_rate
                    .as_deref()
                    .map(|rate| {
                        rate.parse()
                            .map_err(|err| ConfigError::new("AIRUDDER_FORWARD_RATE", err))
                    })
                    .transpose()?,
                secret: self
                    .forward_secret
                    .as_deref()
                    .map(signing_key)
                    .transpose()?,
            }),
        };
        if handler_delay > Duration::ZERO && forward.is_some() {
            return Err(ConfigError::new(
                "AIRUDDER_HANDLER_DELAY_MS",
                "applies to the printing mode only, and AIRUDDER_FORWARD_URL is set: drop one",
            ));
        }
        let admin_listen = self.admin_listen.as_deref().unwrap_or("127.0.0.1:3001");
        let admin_listen = admin_listen.trim().parse::<SocketAddr>().map_err(|_| {
            ConfigError::new(
                "AIRUDDER_ADMIN_LISTEN",
                format!("{admin_listen:?} is not an address and port, like 127.0.0.1:3001"),
            )
        })?;
        let admin_token = secret_token("AIRUDDER_ADMIN_TOKEN", self.admin_token)?;
        if admin_token.is_none() && !admin_listen.ip().is_loopback() {
            return Err(ConfigError::new(
                "AIRUDDER_ADMIN_LISTEN",
                format!(
                    "{admin_listen} is not on loopback, and AIRUDDER_ADMIN_TOKEN is not set: set a token, or listen on 127.0.0.1"
                ),
            ));
        }
        let body_limit = number(
            "AIRUDDER_BODY_LIMIT",
            self.body_limit.as_deref(),
            32 * 1024 * 1024,
            1,
        )?;
        if body_limit > u64::from(u32::MAX) {
            return Err(ConfigError::new(
                "AIRUDDER_BODY_LIMIT",
                format!("{body_limit} is over the largest limit, 4294967295 bytes"),
            ));
        }
        let workers = self
            .workers
            .as_deref()
            .map(|n| number("AIRUDDER_WORKERS", Some(n), 0, 1).map(|n| n as usize))
            .transpose()?;
        let queue_capacity = number(
            "AIRUDDER_QUEUE_CAPACITY",
            self.queue_capacity.as_deref(),
            1024,
            1,
        )? as usize;
        let metrics_interval = duration(
            "AIRUDDER_METRICS_INTERVAL",
            self.metrics_interval.as_deref(),
            Duration::from_secs(5),
        )?;
        if metrics_interval.is_zero() {
            return Err(ConfigError::new(
                "AIRUDDER_METRICS_INTERVAL",
                "must be longer than zero, like 5s",
            ));
        }
        let log_format = match self.log_format.as_deref().map(str::trim) {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::new(
                    "AIRUDDER_LOG_FORMAT",
                    format!("{other:?} is not a log format: use text or json"),
                ));
            }
        };
        let rejected_max_bytes = number(
            "AIRUDDER_REJECTED_MAX_BYTES",
            self.rejected_max_bytes.as_deref(),
            64 * 1024 * 1024,
            0,
        )?;
        let rejected_max_age = at_most(
            "AIRUDDER_REJECTED_MAX_AGE",
            duration(
                "AIRUDDER_REJECTED_MAX_AGE",
                self.rejected_max_age.as_deref(),
                Duration::from_secs(7 * 24 * 3600),
            )?,
            YEAR,
        )?;
        let max_connections = self
            .max_connections
            .as_deref()
            .map(|n| number("AIRUDDER_MAX_CONNECTIONS", Some(n), 0, 1).map(|n| n as usize))
            .transpose()?;
        Ok(Config {
            rejected_max_bytes,
            rejected_max_age,
            max_connections,
            admin_listen,
            admin_token,
            body_limit: body_limit as usize,
            workers,
            queue_capacity,
            metrics_interval,
            log_format,
            raw_names,
            listen,
            ack,
            data_dir: PathBuf::from(self.data_dir.unwrap_or_else(|| "./airudder-data".into())),
            database_url: self.database_url.filter(|url| !url.is_empty()),
            database_schema,
            lease,
            token,
            handler_delay,
            forward,
        })
    }
}

/// The longest a duration setting may be: past it, a time computed from it could overflow.
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

fn at_most(key: &'static str, value: Duration, max: Duration) -> Result<Duration, ConfigError> {
    if value > max {
        return Err(ConfigError::new(
            key,
            format!(
                "{} is over the longest, {}",
                humantime::format_duration(value),
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(value)
}

/// The shortest token accepted: 16 bytes, 128 bits of a random one.
const MIN_TOKEN_BYTES: usize = 16;

/// A token setting: unset is `None`; set, it must be a usable secret. A blank one (a variable
/// emptied by mistake) would leave the door open; a short one can be guessed; white space at
/// its ends is a copy-and-paste slip that makes a token the sender never sends.
fn secret_token(key: &'static str, value: Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(token) = value else {
        return Ok(None);
    };
    const MAKE: &str = "make one with `openssl rand -hex 32`, or unset it";
    let problem = if token.trim().is_empty() {
        "is set but blank"
    } else if token.trim() != token {
        "has white space at its start or end"
    } else if token.len() < MIN_TOKEN_BYTES {
        "is shorter than 16 bytes"
    } else {
        return Ok(Some(token));
    };
    Err(ConfigError::new(key, format!("{problem}: {MAKE}")))
}

/// An `http://` or `https://` URL with a host.
fn http_url(key: &'static str, url: &str) -> Result<reqwest::Url, ConfigError> {
    match reqwest::Url::parse(url.trim()) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {
            Ok(parsed)
        }
        _ => Err(ConfigError::new(
            key,
            format!(
                "{} is not an http:// or https:// URL",
                crate::shown::url(url)
            ),
        )),
    }
}

/// A Standard Webhooks key: `whsec_` and the key in base64.
fn signing_key(secret: &str) -> Result<Vec<u8>, ConfigError> {
    let bad = || {
        ConfigError::new(
            "AIRUDDER_FORWARD_SECRET",
            "is not a Standard Webhooks key: `whsec_` and at least 24 bytes in base64",
        )
    };
    let encoded = secret.trim().strip_prefix("whsec_").ok_or_else(bad)?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| bad())?;
    if key.len() < 24 {
        return Err(bad());
    }
    Ok(key)
}

#[cfg(test)]
mod tests;
