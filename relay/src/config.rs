//! The relay's configuration: flags, environment variables and a TOML file, each setting typed
//! by clap and its default written once, validated at start into one [`Config`], with errors
//! that name the variable, and the file key when a file was given.
//!
//! The file's values become clap's defaults, so clap merges the three: a flag wins over its
//! variable, the variable over the file, the file over the built-in default.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use airudder_webhook::receiver::defaults;
use airudder_webhook::store::RefusedBodyLimits;
use clap::parser::ValueSource;
use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser};

pub(crate) use self::error::{ConfigError, Refused};
pub(crate) use self::forward::Forward;
use self::sources::{Given, variable};
pub(crate) use self::values::{Ack, LogFormat, Secret};
use self::values::{ForwardUrl, Ordered, RawNames, address, count, duration, span, token, whole};
use crate::signing_key::SigningKey;

mod error;
mod forward;
mod sources;
mod values;

/// Receives Airudder's task notifications, stores them, and prints them as JSON lines on stdout
/// or forwards them, signed, to your service.
///
/// Every setting is a flag, an environment variable, or a key of the TOML file given with
/// `--config`: the key is the flag's name with `_` for `-` (`forward_url = "https://…"`).
/// A flag wins over the variable, the variable over the file. Durations read as `250ms`, `10s`,
/// `15m`, `72h` or `7d`.
#[derive(Debug, Parser)]
#[command(name = "airudder-relay", version, about, long_about)]
pub(crate) struct Cli {
    /// A TOML file with any of the settings below, and `[forward.urls]` (see the end).
    #[arg(long, value_name = "FILE", env = "AIRUDDER_CONFIG")]
    config: Option<PathBuf>,

    #[command(flatten)]
    settings: Config,

    /// Without a command, the relay runs; a command asks a running relay's admin API, or
    /// rehearses Airudder (`send`, `example`), or makes a signing key (`secret`).
    #[command(subcommand)]
    pub(crate) command: Option<crate::Command>,

    /// Which settings were given (by flag, variable or file), and the file's per-kind URLs.
    #[arg(skip)]
    given: Given,
}

/// Every setting, typed, with its default; the field names are the file's keys. [`Cli::load`]
/// checks them together and fills `forward`.
#[derive(Clone, Debug, Args)]
pub(crate) struct Config {
    /// The address to listen on for Airudder (also /health and /ready)
    #[arg(long, env = "AIRUDDER_LISTEN", value_name = "ADDR", value_parser = address)]
    #[arg(default_value = "127.0.0.1:3000")]
    pub(crate) listen: SocketAddr,
    /// When to answer Airudder 200
    #[arg(long, env = "AIRUDDER_ACK", value_enum, default_value_t = Ack::Durable)]
    pub(crate) ack: Ack,
    /// The embedded store's directory
    #[arg(long, env = "AIRUDDER_DATA_DIR", value_name = "DIR")]
    #[arg(default_value = "./airudder-data")]
    pub(crate) data_dir: PathBuf,
    /// Store in PostgreSQL instead (`postgres://user:password@host:port/db`), shared by every
    /// relay given the same URL [default: unset, the embedded store]
    #[arg(
        long,
        env = "AIRUDDER_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub(crate) database_url: Option<Secret>,
    /// The PostgreSQL schema of the relay's tables
    #[arg(long, env = "AIRUDDER_DATABASE_SCHEMA", value_name = "NAME")]
    #[arg(default_value = "airudder")]
    pub(crate) database_schema: String,
    /// How long before a dead relay's notifications go to the others (PostgreSQL)
    #[arg(long, env = "AIRUDDER_LEASE", value_name = "DURATION", value_parser = duration)]
    #[arg(default_value = "15s")]
    pub(crate) lease: Duration,
    /// The old spelling of --lease, in seconds.
    #[arg(long, env = "AIRUDDER_LEASE_SECS", hide = true, value_parser = whole::<1>)]
    lease_secs: Option<u64>,
    /// The token Airudder's URL must carry as `?token=…`: at least 16 bytes, no white space
    /// at its ends (make one with `openssl rand -hex 32`) [default: unset, the relay runs open
    /// and says so]
    #[arg(long, env = "AIRUDDER_TOKEN", value_name = "TOKEN", value_parser = token)]
    #[arg(hide_env_values = true)]
    pub(crate) token: Option<Secret>,
    /// Printing mode: wait this long before printing, as a slow handler would
    #[arg(long, env = "AIRUDDER_HANDLER_DELAY", value_name = "DURATION")]
    #[arg(value_parser = duration, default_value = "0s")]
    pub(crate) handler_delay: Duration,
    /// The old spelling of --handler-delay, in milliseconds.
    #[arg(long, env = "AIRUDDER_HANDLER_DELAY_MS", hide = true, value_parser = whole::<0>)]
    handler_delay_ms: Option<u64>,
    /// Forward each notification to this http or https URL instead of printing it [default:
    /// unset, print JSON lines on stdout]
    #[arg(
        long,
        env = "AIRUDDER_FORWARD_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    forward_url: Option<ForwardUrl>,
    /// How long one forward may take before it counts as failed
    #[arg(long, env = "AIRUDDER_FORWARD_TIMEOUT", value_name = "DURATION")]
    #[arg(value_parser = duration, default_value = "10s")]
    forward_timeout: Duration,
    /// How long after receipt a notification is retried before it becomes a dead letter
    #[arg(long, env = "AIRUDDER_RETRY_FOR", value_name = "DURATION")]
    #[arg(value_parser = duration, default_value = "72h")]
    retry_for: Duration,
    /// The most forwards in flight at once, to each destination URL
    #[arg(long, env = "AIRUDDER_FORWARD_CONCURRENCY", value_name = "N")]
    #[arg(value_parser = count::<1>, default_value = "16")]
    forward_concurrency: usize,
    /// The most forwards started to each destination URL, per second, minute or hour (`50/s`,
    /// `600/min`), spaced evenly [default: unset, no cap but the concurrency]
    #[arg(long, env = "AIRUDDER_FORWARD_RATE", value_name = "RATE")]
    forward_rate: Option<crate::pace::Rate>,
    /// Sign each forward per Standard Webhooks with this key (`whsec_` and base64; make one
    /// with `airudder-relay secret`) [default: unset, unsigned]
    #[arg(long, env = "AIRUDDER_FORWARD_SECRET", value_name = "SECRET")]
    #[arg(hide_env_values = true)]
    forward_secret: Option<SigningKey>,
    /// The admin API's address (GET /admin/stats, /admin/dead-letters, …)
    #[arg(long, env = "AIRUDDER_ADMIN_LISTEN", value_name = "ADDR", value_parser = address)]
    #[arg(default_value = "127.0.0.1:3001")]
    pub(crate) admin_listen: SocketAddr,
    /// The bearer token the admin API asks for, and the commands send, at least 16 bytes
    /// (`openssl rand -hex 32`); without it the admin API listens on loopback only and answers
    /// loopback hosts only [default: unset]
    #[arg(long, env = "AIRUDDER_ADMIN_TOKEN", value_name = "TOKEN", value_parser = token)]
    #[arg(hide_env_values = true)]
    pub(crate) admin_token: Option<Secret>,
    /// The largest body accepted, in bytes; larger is answered 413
    #[arg(long, env = "AIRUDDER_BODY_LIMIT", value_name = "BYTES", value_parser = count::<1>)]
    #[arg(default_value_t = defaults::BODY_LIMIT)]
    pub(crate) body_limit: usize,
    /// How many notifications are printed or forwarded at once, per kind [default: 4 when
    /// printing, AIRUDDER_FORWARD_CONCURRENCY when forwarding]
    #[arg(long, env = "AIRUDDER_WORKERS", value_name = "N", value_parser = count::<1>)]
    pub(crate) workers: Option<usize>,
    /// With the memory ack, how many notifications may wait for a worker before Airudder is
    /// answered 503 (with the durable ack they wait in the store)
    #[arg(long, env = "AIRUDDER_QUEUE_CAPACITY", value_name = "N", value_parser = count::<1>)]
    #[arg(default_value_t = defaults::QUEUE_CAPACITY)]
    pub(crate) queue_capacity: usize,
    /// How often the gauges of GET /metrics (queue, store, readiness) are sampled
    #[arg(long, env = "AIRUDDER_METRICS_INTERVAL", value_name = "DURATION")]
    #[arg(value_parser = duration, default_value = span(defaults::METRICS_INTERVAL))]
    pub(crate) metrics_interval: Duration,
    /// Names of callbacks whose bodies are not public, each served at `/airudder/raw/{name}`
    /// as any JSON object (comma-separated; letters, digits, `_` and `-`) [default: none]
    #[arg(long, env = "AIRUDDER_RAW_NAMES", value_name = "NAMES")]
    raw_names: Option<RawNames>,
    /// Kinds whose notifications are handed on one at a time per key, each once the one
    /// before it is done, in the order received (comma-separated; in the file a string or a
    /// list, `ordered = ["pds_event"]`). The keys: a task notification's `task_id`, a
    /// workflow's `workflow_id`, a chatbot session, and for `pds_event` the contact's call, the
    /// agent or the task. Needs the durable ack [default: none]
    #[arg(long, env = "AIRUDDER_ORDERED", value_name = "KINDS")]
    ordered: Option<Ordered>,
    /// With AIRUDDER_ORDERED: whether a dead letter holds back the later notifications of its
    /// key until it is replayed or purged (`false`: they go on without it)
    #[arg(long, env = "AIRUDDER_ORDERED_DEAD_LETTER_HOLDS", value_name = "BOOL")]
    #[arg(action = ArgAction::Set, default_value_t = true)]
    pub(crate) ordered_dead_letter_holds: bool,
    /// The most bytes of refused bodies kept for replay (`rejected`), all kinds together; past
    /// it the oldest go first
    #[arg(long, env = "AIRUDDER_REJECTED_MAX_BYTES", value_name = "BYTES")]
    #[arg(value_parser = whole::<0>, default_value_t = RefusedBodyLimits::DEFAULT_MAX_BYTES)]
    pub(crate) rejected_max_bytes: u64,
    /// How long a refused body is kept for replay
    #[arg(long, env = "AIRUDDER_REJECTED_MAX_AGE", value_name = "DURATION")]
    #[arg(value_parser = duration, default_value = span(RefusedBodyLimits::DEFAULT_MAX_AGE))]
    pub(crate) rejected_max_age: Duration,
    /// The most connections the Airudder listener keeps open; past it the oldest idle one is
    /// closed for a new one [default: from the file limit (ulimit -n), less a reserve]
    #[arg(long, env = "AIRUDDER_MAX_CONNECTIONS", value_name = "N", value_parser = count::<1>)]
    pub(crate) max_connections: Option<usize>,
    /// The log's format on stderr
    #[arg(long, env = "AIRUDDER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    /// Where notifications go, once checked: set when `forward_url` is.
    #[arg(skip)]
    pub(crate) forward: Option<Forward>,
    /// Old spellings used, each with its new name: logged once logging is set up.
    #[arg(skip)]
    pub(crate) deprecated: Vec<String>,
}

impl Config {
    /// The raw callbacks' names.
    pub(crate) fn raw_names(&self) -> &[String] {
        self.raw_names.as_ref().map_or(&[], |names| &names.0)
    }

    /// The kinds ordered per key (`AIRUDDER_ORDERED`).
    pub(crate) fn ordered(&self) -> &[String] {
        self.ordered.as_ref().map_or(&[], |kinds| &kinds.0)
    }

    /// Whether `kind`'s receiver is ordered per key.
    pub(crate) fn is_ordered(&self, kind: &str) -> bool {
        self.ordered
            .as_ref()
            .is_some_and(|kinds| kinds.contains(kind))
    }
}

impl Cli {
    /// Parses `args` and the environment, then again with the file's values as defaults.
    pub(crate) fn from_args(args: impl IntoIterator<Item = OsString>) -> Result<Self, Refused> {
        let args: Vec<OsString> = args.into_iter().collect();
        let mut command = Self::command().after_long_help(sources::more_help());
        let mut matches = sources::matches(&command, &args)?;
        let mut given = Given::default();
        if let Some(path) = matches.get_one::<PathBuf>("config") {
            command = sources::with_file(command, path, &mut given).map_err(|e| e.in_file(true))?;
            matches = sources::matches(&command, &args).map_err(|refused| match refused {
                Refused::Setting(err) => Refused::Setting(err.in_file(true)),
                usage => usage,
            })?;
        }
        let given_here = |id: &&clap::Id| {
            let source = matches.value_source(id.as_str());
            matches!(
                source,
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        };
        let here = matches
            .ids()
            .filter(given_here)
            .map(|id| id.as_str().to_owned());
        given.keys.extend(here.collect::<Vec<_>>());
        let mut cli = Self::from_arg_matches(&matches).map_err(Refused::Usage)?;
        cli.given = given;
        Ok(cli)
    }

    /// The admin token the commands send (`AIRUDDER_ADMIN_TOKEN`, or the file's).
    pub(crate) fn admin_token(&self) -> Option<String> {
        self.settings
            .admin_token
            .as_ref()
            .map(|t| t.expose().to_owned())
    }

    /// The settings checked together; an error names the file key if a file was given.
    pub(crate) fn load(self) -> Result<Config, ConfigError> {
        let file = self.config.is_some();
        self.check(file).map_err(|err| err.in_file(file))
    }

    fn check(self, file: bool) -> Result<Config, ConfigError> {
        let (mut c, given) = (self.settings, self.given);
        let is_given = |key: &str| given.keys.contains(key);
        let mut old = |old: &str, new: &str| {
            let (was, is) = (variable(old), variable(new));
            let line = if file {
                format!(
                    "{was} ({old} in the file) is deprecated: use {is} ({new} in the file), a duration such as 10s"
                )
            } else {
                format!("{was} is deprecated: use {is}, a duration such as 10s")
            };
            c.deprecated.push(line);
            !is_given(new)
        };
        if let Some(secs) = c.lease_secs.filter(|_| old("lease_secs", "lease")) {
            c.lease = Duration::from_secs(secs);
        }
        let mut delay_key = "AIRUDDER_HANDLER_DELAY";
        if let Some(ms) = c
            .handler_delay_ms
            .filter(|_| old("handler_delay_ms", "handler_delay"))
        {
            (c.handler_delay, delay_key) = (Duration::from_millis(ms), "AIRUDDER_HANDLER_DELAY_MS");
        }
        let forward_url = c.forward_url.take().and_then(|url| url.0);
        let urls = sources::kind_urls(c.raw_names(), &given.urls, forward_url.is_some())?;
        let forward_only = [
            "forward_secret",
            "forward_timeout",
            "retry_for",
            "forward_concurrency",
            "forward_rate",
        ];
        c.forward = match forward_url {
            None => match forward_only.into_iter().find(|key| is_given(key)) {
                Some(key) => {
                    let message = "is set, but AIRUDDER_FORWARD_URL is not: set the URL to forward to, or drop this";
                    return Err(ConfigError::new(variable(key), message));
                }
                None => None,
            },
            Some(url) => Some(Forward {
                url,
                urls,
                timeout: c.forward_timeout,
                retry_for: c.retry_for,
                concurrency: c.forward_concurrency,
                rate: c.forward_rate,
                secret: c.forward_secret.take().map(SigningKey::into_bytes),
            }),
        };
        if c.handler_delay > Duration::ZERO && c.forward.is_some() {
            let message =
                "applies to the printing mode only, and AIRUDDER_FORWARD_URL is set: drop one";
            return Err(ConfigError::new(delay_key, message));
        }
        if c.admin_token.is_none() && !c.admin_listen.ip().is_loopback() {
            let message = format!(
                "{} is not on loopback, and AIRUDDER_ADMIN_TOKEN is not set: set a token, or listen on 127.0.0.1",
                c.admin_listen
            );
            return Err(ConfigError::new("AIRUDDER_ADMIN_LISTEN", message));
        }
        // The store keeps the order: the memory and handled acks have none.
        if !c.ordered().is_empty() && c.ack != Ack::Durable {
            let message = "needs the durable ack (AIRUDDER_ACK=durable, the default), whose store keeps the order: drop one";
            return Err(ConfigError::new("AIRUDDER_ORDERED", message));
        }
        if c.ordered().is_empty() && is_given("ordered_dead_letter_holds") {
            let message =
                "is set, but AIRUDDER_ORDERED is not: list the kinds to order, or drop this";
            return Err(ConfigError::new(
                "AIRUDDER_ORDERED_DEAD_LETTER_HOLDS",
                message,
            ));
        }
        if c.metrics_interval.is_zero() {
            let message = "must be longer than zero, like 5s";
            return Err(ConfigError::new("AIRUDDER_METRICS_INTERVAL", message));
        }
        c.database_url = c.database_url.filter(|url| !url.expose().is_empty());
        Ok(c)
    }
}

#[cfg(test)]
mod tests;
