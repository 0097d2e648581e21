//! Times as the admin API and the CLI write them: RFC 3339, in UTC, to the millisecond.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `ms` since the Unix epoch as RFC 3339 (`2026-12-02T13:00:00.123Z`).
pub(crate) fn format_ms(ms: i64) -> String {
    humantime::format_rfc3339_millis(from_ms(ms)).to_string()
}

/// Milliseconds since the Unix epoch as a time.
pub(crate) fn from_ms(ms: i64) -> SystemTime {
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// An RFC 3339 time (`2026-12-02T13:00:00Z`, `2026-12-02T14:00:00.5+01:00`), or a date alone
/// (`2026-12-02`, midnight UTC).
pub(crate) fn parse(text: &str) -> Result<SystemTime, String> {
    let bad = || {
        format!(
            "{:?} is not an RFC 3339 time, like 2026-12-02T13:00:00Z or 2026-12-02",
            crate::shown::cell(text, 64)
        )
    };
    let text = text.trim();
    if text.len() == 10 {
        return humantime::parse_rfc3339(&format!("{text}T00:00:00Z")).map_err(|_| bad());
    }
    // The offset, if any: `Z`, or `+HH:MM` / `-HH:MM` after the time.
    let (local, offset) = if let Some(local) = text.strip_suffix(['Z', 'z']) {
        (local, 0i64)
    } else {
        let cut = text.len().checked_sub(6).ok_or_else(bad)?;
        let (local, offset) = text.split_at_checked(cut).ok_or_else(bad)?;
        let sign = match offset.as_bytes().first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Err(bad()),
        };
        let (hours, minutes) = offset[1..].split_once(':').ok_or_else(bad)?;
        let hours: i64 = hours.parse().map_err(|_| bad())?;
        let minutes: i64 = minutes.parse().map_err(|_| bad())?;
        if hours > 23 || minutes > 59 {
            return Err(bad());
        }
        (local, sign * (hours * 3600 + minutes * 60))
    };
    let local = humantime::parse_rfc3339(&format!("{local}Z")).map_err(|_| bad())?;
    let shift = Duration::from_secs(offset.unsigned_abs());
    // A time with +01:00 is an hour ahead of UTC: UTC is an hour earlier.
    if offset >= 0 {
        local.checked_sub(shift)
    } else {
        local.checked_add(shift)
    }
    .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_with_any_offset_and_print_in_utc() {
        let noon = parse("2026-12-02T12:00:00Z").unwrap();
        assert_eq!(parse("2026-12-02T13:00:00+01:00").unwrap(), noon);
        assert_eq!(parse("2026-12-02T07:30:00-04:30").unwrap(), noon);
        assert_eq!(
            parse("2026-12-02").unwrap() + Duration::from_secs(12 * 3600),
            noon
        );
        let ms = noon.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64 + 5;
        assert_eq!(format_ms(ms), "2026-12-02T12:00:00.005Z");
        assert_eq!(parse(&format_ms(ms)).unwrap(), from_ms(ms));
        for bad in [
            "yesterday",
            "2026-13-02",
            "2026-12-02T12:00:00",
            "2026-12-02T12:00:00+1:00",
            "é",
        ] {
            assert!(parse(bad).unwrap_err().contains("RFC 3339"), "{bad}");
        }
    }
}
