//! The types of single settings, each parsed the same from a flag, a variable or the file, with
//! a message that says what it accepts and never repeats a secret.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::ValueEnum;
use reqwest::Url;

/// When the relay answers Airudder 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Ack {
    /// Once stored and fsynced
    Durable,
    /// Once queued
    Memory,
    /// Once printed or forwarded
    Handled,
}

/// How the relay logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Lines for a person
    Text,
    /// One object a line, for log shippers
    Json,
}

/// The longest duration setting: past it, a time computed from it could overflow.
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// A duration as people write it (`250ms`, `10s`, `72h`, `7d`), up to a year.
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    let parsed = humantime::parse_duration(text.trim()).map_err(|_| {
        format!("{text:?} is not a duration: use a number and a unit, like 250ms, 10s or 72h")
    })?;
    if parsed > YEAR {
        return Err(format!(
            "{} is over the longest, {}",
            span(parsed),
            span(YEAR)
        ));
    }
    Ok(parsed)
}

/// A duration as [`duration`] reads it, for a default in `--help`.
pub(crate) fn span(span: Duration) -> String {
    humantime::format_duration(span).to_string()
}

/// A secret setting's text; its `Debug` says only that it is set.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"set\"")
    }
}

/// A token setting: a blank one (a variable emptied by mistake) would leave the door open, a
/// short one can be guessed, and white space at its ends is a copy-and-paste slip that makes
/// a token the sender never sends.
pub(crate) fn token(text: &str) -> Result<Secret, String> {
    let problem = if text.trim().is_empty() {
        "is set but blank"
    } else if text.trim() != text {
        "has white space at its start or end"
    } else if text.len() < 16 {
        "is shorter than 16 bytes"
    } else {
        return Ok(Secret(text.to_owned()));
    };
    Err(format!(
        "{problem}: make one with `openssl rand -hex 32`, or unset it"
    ))
}

/// An `http://` or `https://` URL with a host, shown without its password if refused.
pub(crate) fn http_url(text: &str) -> Result<Url, String> {
    match Url::parse(text.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(url),
        _ => Err(format!(
            "{} is not an http:// or https:// URL",
            crate::shown::url(text)
        )),
    }
}

/// Where a kind is forwarded: an `http://` or `https://` URL, or a broker's (`redis://`,
/// `rediss://`, `amqp://`, `amqps://`, `nats://`, `tls://`) with its settings checked.
pub(crate) fn forward_url(text: &str) -> Result<Url, String> {
    match Url::parse(text.trim()) {
        Ok(url) if crate::broker::is_broker(&url) && url.has_host() => {
            crate::broker::check(&url)?;
            Ok(url)
        }
        _ => http_url(text).map_err(|_| {
            format!(
                "{} is not an http:// or https:// URL, nor a broker's (redis://, rediss://, amqp://, amqps://, nats://, tls://)",
                crate::shown::url(text)
            )
        }),
    }
}

/// `AIRUDDER_FORWARD_URL`: a URL to forward to, or blank for unset (a variable emptied on
/// purpose).
#[derive(Clone)]
pub(crate) struct ForwardUrl(pub(crate) Option<Url>);

impl fmt::Debug for ForwardUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.0.as_ref().map(|url| crate::shown::url(url.as_str()));
        f.debug_tuple("ForwardUrl").field(&shown).finish()
    }
}

impl FromStr for ForwardUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let blank = text.trim().is_empty();
        Ok(Self(if blank {
            None
        } else {
            Some(forward_url(text)?)
        }))
    }
}

/// The raw callbacks' names: comma-separated, each letters, digits, `_` and `-`, once.
#[derive(Debug, Clone)]
pub(crate) struct RawNames(pub(crate) Vec<String>);

impl FromStr for RawNames {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let names: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        for name in &names {
            let fine = name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !fine || names.iter().filter(|n| *n == name).count() > 1 {
                return Err(format!(
                    "{name:?} is not a usable name: letters, digits, _ and -, each once"
                ));
            }
        }
        Ok(Self(names))
    }
}

/// `AIRUDDER_ORDERED`: the kinds whose receivers hand on the notifications of one key one at a
/// time, in the order received. Comma-separated typed kinds (a raw callback's body has no key
/// to order by); blank for none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Ordered(pub(crate) Vec<String>);

impl Ordered {
    /// Whether `kind` is ordered.
    pub(crate) fn contains(&self, kind: &str) -> bool {
        self.0.iter().any(|k| k == kind)
    }
}

impl FromStr for Ordered {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let known: Vec<&str> = crate::kinds::TYPED.iter().map(|(_, kind)| *kind).collect();
        let mut kinds: Vec<String> = Vec::new();
        for kind in text.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            if !known.contains(&kind) {
                let raw = if kind.starts_with("raw_") {
                    " (a raw callback has no key to order by)"
                } else {
                    ""
                };
                return Err(format!(
                    "{kind:?} is not a kind that can be ordered{raw}: use any of {}",
                    known.join(", ")
                ));
            }
            if !kinds.iter().any(|k| k == kind) {
                kinds.push(kind.to_owned());
            }
        }
        Ok(Self(kinds))
    }
}

/// An address and port.
pub(crate) fn address(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!("{text:?} is not an address and port, like 127.0.0.1:3000 or 0.0.0.0:8080")
    })
}

/// A whole number of at least `MIN`.
pub(crate) fn whole<const MIN: u64>(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(n) if n >= MIN => Ok(n),
        _ => Err(format!("{text:?} is not a whole number of at least {MIN}")),
    }
}

/// A count of at least `MIN` and at most `u32::MAX`, past which no limit means more.
pub(crate) fn count<const MIN: u64>(text: &str) -> Result<usize, String> {
    let n = whole::<MIN>(text)?;
    let most = u64::from(u32::MAX);
    usize::try_from(n)
        .ok()
        .filter(|_| n <= most)
        .ok_or_else(|| format!("{n} is over the largest, {most}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_reads_in_every_unit_and_prints_as_it_reads() {
        for (text, span) in [
            ("250ms", Duration::from_millis(250)),
            ("10s", Duration::from_secs(10)),
            (" 15m ", Duration::from_secs(900)),
            ("72h", Duration::from_secs(72 * 3600)),
            ("7d", Duration::from_secs(7 * 24 * 3600)),
            ("1h 30m", Duration::from_secs(5400)),
        ] {
            assert_eq!(duration(text), Ok(span), "{text}");
            assert_eq!(duration(&super::span(span)), Ok(span), "{text}");
        }
        assert!(duration("10").unwrap_err().contains("is not a duration"));
        assert!(
            duration("2years")
                .unwrap_err()
                .starts_with("2years is over the longest")
        );
    }
}
