//! Where settings come from: the command line and environment (clap's, with its refusals named
//! by variable and key), and the TOML file's values, handed to clap as defaults.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::Path;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgMatches, Command};

use reqwest::Url;

use super::values::forward_url;
use super::{ConfigError, Refused};

/// Which settings were given (by flag, variable or file), and the file's per-kind URLs.
#[derive(Debug, Default)]
pub(super) struct Given {
    pub(super) keys: BTreeSet<String>,
    /// `[forward.urls]` of the file: (kind, URL as written).
    pub(super) urls: Vec<(String, String)>,
}

/// `command` with the file's values as its defaults, each key noted in `given`.
pub(super) fn with_file(
    mut command: Command,
    path: &Path,
    given: &mut Given,
) -> Result<Command, ConfigError> {
    for (key, value) in read_file(path)? {
        if let Some(urls) = forward_urls(&key, &value)? {
            given.urls = urls;
            continue;
        }
        // A setting is an argument with a variable; not `help`, nor the file itself.
        let setting = |a: &&clap::Arg| a.get_id() == key.as_str() && a.get_env().is_some();
        if key == "config" || !command.get_arguments().any(|a| setting(&a)) {
            let message = format!("{}: {key:?} is not a setting", path.display());
            return Err(ConfigError::new("AIRUDDER_CONFIG", message));
        }
        let text = match value {
            toml::Value::Array(items) if LISTS.contains(&key.as_str()) => list(&key, items)?,
            value => scalar(&key, value)?,
        };
        command = command.mut_arg(&key, |arg| arg.default_value(text));
        given.keys.insert(key);
    }
    Ok(command)
}

/// The variable of the file key `key` (`forward_url` → `AIRUDDER_FORWARD_URL`).
pub(super) fn variable(key: &str) -> String {
    format!("AIRUDDER_{}", key.to_uppercase())
}

/// Where the file holds what `variable` sets.
pub(super) fn file_key(variable: &str) -> String {
    match variable.strip_prefix("AIRUDDER_FORWARD_URL_") {
        Some("<KIND>") => "forward.urls".to_owned(),
        Some(kind) => format!("forward.urls.{}", kind.to_lowercase()),
        None => variable.trim_start_matches("AIRUDDER_").to_lowercase(),
    }
}

/// The end of `--help`: what no flag stands for.
pub(super) fn more_help() -> String {
    let kinds: Vec<&str> = crate::kinds::TYPED.iter().map(|(_, kind)| *kind).collect();
    format!(
        "Also read from the environment:
  AIRUDDER_FORWARD_URL_<KIND>
          Forward one kind to its own URL, the others still to AIRUDDER_FORWARD_URL (in the
          file, a [forward.urls] table of kind = \"URL\"). The kinds: raw_<name> for each of
          AIRUDDER_RAW_NAMES, and {} (so AIRUDDER_FORWARD_URL_CHATBOT_SESSION_END)
  RUST_LOG
          Which log lines, as tracing's EnvFilter reads it (warn, or airudder_webhook=debug)
          [default: info]

Old spellings, read for this release with a warning: AIRUDDER_LEASE_SECS (seconds; now
AIRUDDER_LEASE) and AIRUDDER_HANDLER_DELAY_MS (milliseconds; now AIRUDDER_HANDLER_DELAY).",
        kinds.join(", ")
    )
}

/// clap's matches of `args`, a refused value named by its variable and key.
pub(super) fn matches(command: &Command, args: &[OsString]) -> Result<ArgMatches, Refused> {
    let err = match command.clone().try_get_matches_from(args) {
        Ok(matches) => return Ok(matches),
        Err(err) => err,
    };
    // "--retry-for <DURATION>": the flag, and from it the setting.
    let flag = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg.split(' ').next().unwrap_or_default().to_owned(),
        _ => return Err(Refused::Usage(err)),
    };
    let setting = command.get_arguments().find(|arg| {
        arg.get_long()
            .is_some_and(|long| flag == format!("--{long}"))
            && arg.get_env().is_some()
    });
    let message = match (err.kind(), err.get(ContextKind::InvalidValue)) {
        (ErrorKind::ValueValidation, _) => std::error::Error::source(&err).map(ToString::to_string),
        (ErrorKind::InvalidValue, Some(ContextValue::String(value))) => {
            let valid = match err.get(ContextKind::ValidValue) {
                Some(ContextValue::Strings(valid)) => valid.join(", "),
                _ => String::new(),
            };
            Some(format!("{value:?} is not one of: {valid}"))
        }
        _ => None,
    };
    match (setting, message) {
        (Some(setting), Some(message)) => {
            let name = setting.get_env().unwrap_or_default().to_string_lossy();
            Err(ConfigError::new(name, message).into())
        }
        _ => Err(Refused::Usage(err)),
    }
}

/// The file's settings, each as its key and value.
fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        ConfigError::new(
            "AIRUDDER_CONFIG",
            format!("cannot read {}: {err}", path.display()),
        )
    })?;
    text.parse::<toml::Table>().map_err(|err| {
        // The message and the line, not toml's quote of the line: it may be the line of a secret.
        let at = err.span().map_or(0, |span| span.start.min(text.len()));
        let line = 1 + text.as_bytes()[..at]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        let message = crate::shown::cell(err.message().trim(), 512);
        let message = format!(
            "{} is not a valid file: line {line}: {message}",
            path.display()
        );
        ConfigError::new("AIRUDDER_CONFIG", message)
    })
}

/// `[forward.urls]`, each kind and its URL as written; `None` for any other key.
fn forward_urls(
    key: &str,
    value: &toml::Value,
) -> Result<Option<Vec<(String, String)>>, ConfigError> {
    if key != "forward" {
        return Ok(None);
    }
    let refused = || {
        let message = "is not a table of kind = \"URL\": write [forward.urls], then task_notification = \"https://…\"";
        ConfigError::new("AIRUDDER_FORWARD_URL_<KIND>", message)
    };
    let table = value
        .as_table()
        .filter(|t| t.len() == 1)
        .ok_or_else(refused)?;
    let urls = table
        .get("urls")
        .and_then(toml::Value::as_table)
        .ok_or_else(refused)?;
    let urls = urls
        .iter()
        .map(|(kind, url)| Some((kind.clone(), url.as_str()?.to_owned())));
    urls.collect::<Option<_>>().map(Some).ok_or_else(refused)
}

/// The settings the file may also give as a list of strings (`ordered = ["pds_event"]`), read
/// as the variable's comma-separated text.
const LISTS: [&str; 1] = ["ordered"];

/// A TOML list of strings, as the comma-separated text a variable would hold.
fn list(key: &str, items: Vec<toml::Value>) -> Result<String, ConfigError> {
    let names = items.iter().map(toml::Value::as_str);
    let names: Option<Vec<&str>> = names.collect();
    names.map(|names| names.join(",")).ok_or_else(|| {
        ConfigError::new(
            variable(key),
            "is not a list of names: write it as [\"pds_event\", \"task_notification\"], or one string",
        )
    })
}

/// A TOML string, integer, float or boolean, as the text a variable would hold.
fn scalar(key: &str, value: toml::Value) -> Result<String, ConfigError> {
    match value {
        toml::Value::String(text) => Ok(text),
        toml::Value::Integer(n) => Ok(n.to_string()),
        toml::Value::Float(x) => Ok(x.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => Err(ConfigError::new(
            variable(key),
            "is not one value: write it as a string or a number",
        )),
    }
}

/// The kinds sent elsewhere: `AIRUDDER_FORWARD_URL_<KIND>` for each kind served, or else the
/// file's `[forward.urls]`; each kind of the file's table must be served.
pub(super) fn kind_urls(
    raw_names: &[String],
    file: &[(String, String)],
    forwarding: bool,
) -> Result<Vec<(String, Url)>, ConfigError> {
    let mut urls = Vec::new();
    for kind in crate::kinds::all(raw_names) {
        let variable = crate::kinds::url_variable(&kind);
        let from_file = || {
            file.iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, url)| url.clone())
        };
        let Some(text) = std::env::var(&variable).ok().or_else(from_file) else {
            continue;
        };
        if !forwarding {
            let message =
                format!("is not set, and {variable} is: set the URL the other kinds go to");
            return Err(ConfigError::new("AIRUDDER_FORWARD_URL", message));
        }
        urls.push((
            kind,
            forward_url(&text).map_err(|err| ConfigError::new(&variable, err))?,
        ));
    }
    if let Some((kind, _)) = file.iter().find(|(k, _)| !urls.iter().any(|(u, _)| u == k)) {
        let message = format!(
            "{kind:?} is not a kind served: see `airudder-relay kinds`, and AIRUDDER_RAW_NAMES"
        );
        return Err(ConfigError::new("AIRUDDER_FORWARD_URL_<KIND>", message));
    }
    Ok(urls)
}
