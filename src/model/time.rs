//! Timestamps, kept as sent.

use std::fmt;

use jiff::civil::DateTime;
use jiff::tz::Offset;

/// A timestamp exactly as the sender wrote it.
///
/// The contract documents `YYYY-MM-DD HH:MM:SS` without a zone; other Airudder APIs send
/// RFC 3339 (`…T…Z`, `…+08:00`) and epoch milliseconds as strings. Decoding never fails on the
/// format: the string is kept, and [`Timestamp::parse`] reads it when you need it.
///
/// ```
/// use airudder_webhook::model::{ParsedTime, Timestamp};
///
/// let sent = Timestamp::from("2022-12-19 15:14:52");
/// let ParsedTime::Civil(local) = sent.parse()? else { unreachable!() };
/// assert_eq!(local.hour(), 15);
/// // A zoneless time is in the account's zone: say which to get an instant.
/// let instant = sent.to_instant(jiff::tz::offset(8))?;
/// assert_eq!(instant.to_string(), "2022-12-19T07:14:52Z");
/// # Ok::<(), airudder_webhook::model::TimestampError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Timestamp(super::Text);

/// A [`Timestamp`] read into a time value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParsedTime {
    /// A wall-clock time without a zone, as the contract documents (`2022-12-19 15:14:52`).
    Civil(DateTime),
    /// An instant: RFC 3339 with `Z` or an offset, or epoch milliseconds.
    Instant(jiff::Timestamp),
}

/// A timestamp in none of the known formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampError {
    len: usize,
}

impl fmt::Display for TimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timestamp of {} bytes is in none of the known formats \
             (`YYYY-MM-DD HH:MM:SS`, RFC 3339, epoch milliseconds)",
            self.len
        )
    }
}

impl std::error::Error for TimestampError {}

impl Timestamp {
    /// The timestamp as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reads the timestamp in any of the formats the sender is known to use.
    ///
    /// # Errors
    /// [`TimestampError`] when the string is in none of them.
    pub fn parse(&self) -> Result<ParsedTime, TimestampError> {
        let s = self.0.trim();
        let err = || TimestampError { len: self.0.len() };
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            let ms: i64 = s.parse().map_err(|_| err())?;
            return jiff::Timestamp::from_millisecond(ms)
                .map(ParsedTime::Instant)
                .map_err(|_| err());
        }
        if let Ok(instant) = s.parse::<jiff::Timestamp>() {
            return Ok(ParsedTime::Instant(instant));
        }
        s.parse::<DateTime>()
            .map(ParsedTime::Civil)
            .map_err(|_| err())
    }

    /// The instant this timestamp names, reading a zoneless time at `offset` (the zone of the
    /// Airudder account, e.g. `jiff::tz::offset(8)` for China).
    ///
    /// # Errors
    /// [`TimestampError`] when the string is in no known format or out of range.
    pub fn to_instant(&self, offset: Offset) -> Result<jiff::Timestamp, TimestampError> {
        match self.parse()? {
            ParsedTime::Instant(instant) => Ok(instant),
            ParsedTime::Civil(civil) => offset
                .to_timestamp(civil)
                .map_err(|_| TimestampError { len: self.0.len() }),
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Timestamp {
    fn from(value: String) -> Self {
        Self(value.into())
    }
}

impl super::fast::Fast for Timestamp {
    #[inline]
    fn fast(scanner: &mut super::fast::Scanner<'_>) -> Option<Self> {
        super::Text::fast(scanner).map(Self)
    }
}

impl From<&str> for Timestamp {
    fn from(value: &str) -> Self {
        Self(value.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_known_format() {
        let cases = [
            ("documented", "2022-12-19 15:14:52", "2022-12-19T07:14:52Z"),
            (
                "rfc3339 utc",
                "2022-12-19T07:14:52Z",
                "2022-12-19T07:14:52Z",
            ),
            (
                "rfc3339 offset",
                "2022-12-19T15:14:52+08:00",
                "2022-12-19T07:14:52Z",
            ),
            ("epoch ms", "1671434092000", "2022-12-19T07:14:52Z"),
            (
                "T without zone",
                "2022-12-19T15:14:52",
                "2022-12-19T07:14:52Z",
            ),
        ];
        for (name, sent, want) in cases {
            let got = Timestamp::from(sent).to_instant(jiff::tz::offset(8));
            assert_eq!(got.map(|t| t.to_string()).as_deref(), Ok(want), "{name}");
        }
    }

    #[test]
    fn unknown_format_is_an_error_not_a_panic() {
        for sent in [
            "",
            "yesterday",
            "2022-13-45 99:99:99",
            "99999999999999999999999",
        ] {
            assert!(Timestamp::from(sent).parse().is_err(), "{sent:?}");
        }
    }
}
