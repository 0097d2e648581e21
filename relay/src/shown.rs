//! What the relay shows a person: log fields and CLI cells with no control character in them,
//! and URLs without their user info and query.

use std::fmt::{self, Write as _};

use airudder_webhook::LogSafe;
use tracing::field::Field;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::field::delimited::Delimited;
use tracing_subscriber::fmt::format::{FieldFn, Writer, debug_fn};

/// The most bytes of one log field in text mode. The library already cuts what it takes from a
/// request at 256; this bounds everything else (an error chain, a service's answer).
const LOG_FIELD_LIMIT: usize = 2048;

/// The text log's fields: each value escaped by [`LogSafe`] (tracing-subscriber escapes some
/// escape sequences in the message only; a carriage return and line feed in any field would
/// start a forged line), then cut at [`LOG_FIELD_LIMIT`].
pub(crate) fn log_fields() -> Delimited<&'static str, FieldFn<FieldWriter>> {
    debug_fn(log_field as FieldWriter).delimited(" ")
}

type FieldWriter = fn(&mut Writer<'_>, &Field, &dyn fmt::Debug) -> fmt::Result;

fn log_field(writer: &mut Writer<'_>, field: &Field, value: &dyn fmt::Debug) -> fmt::Result {
    let text = format!("{value:?}");
    let shown = LogSafe::new(&text).limit(LOG_FIELD_LIMIT);
    match field.name() {
        "message" => write!(writer, "{shown}"),
        name => write!(writer, "{}={shown}", name.trim_start_matches("r#")),
    }
}

/// A cell of a table or a line for a terminal: escaped, and cut at `limit` bytes.
pub(crate) fn cell(text: &str, limit: usize) -> String {
    LogSafe::new(text).limit(limit).to_string()
}

/// A multi-line text for a terminal (a pretty-printed body): each line escaped, whole; the
/// line breaks kept.
pub(crate) fn lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = write!(out, "{}", LogSafe::new(line).limit(usize::MAX));
    }
    out
}

/// JSON for a script that may well print it on a terminal: serde_json leaves DEL, the C1
/// controls and the line-reordering characters raw in strings; written `\uXXXX` they read the
/// same to any JSON parser. (Only strings can hold them: JSON's syntax is ASCII.)
pub(crate) fn json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control()
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
        {
            if c == '\n' {
                out.push(c);
            } else {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A URL as it may be shown: scheme, host, port and path; never its user info (a password)
/// or its query (a token). Text that is no URL is not shown at all: it may be a secret typed in
/// the wrong place.
pub(crate) fn url(text: &str) -> String {
    match reqwest::Url::parse(text.trim()) {
        Ok(url) if url.has_host() => {
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            let hidden = if url.query().is_some() || !url.username().is_empty() {
                " (user info and query not shown)"
            } else {
                ""
            };
            format!(
                "{}://{}{port}{}{hidden}",
                url.scheme(),
                url.host_str().unwrap_or_default(),
                cell(url.path(), 256)
            )
        }
        _ => "the value given (not shown: it may hold a secret)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_shown_without_user_info_or_query() {
        assert_eq!(
            url("https://user:s3cret@team.example:8443/hooks?token=abc"),
            "https://team.example:8443/hooks (user info and query not shown)"
        );
        assert_eq!(url("http://127.0.0.1:3001"), "http://127.0.0.1:3001/");
        assert_eq!(
            url("ftp//user:s3cret@host"),
            "the value given (not shown: it may hold a secret)"
        );
    }

    #[test]
    fn cells_and_lines_escape_what_a_terminal_obeys() {
        assert_eq!(
            cell("t1\r\n     9  fake row", 64),
            r"t1\r\n     9  fake row"
        );
        assert_eq!(cell("\u{1b}]0;pwned\u{7}", 64), r"\u{1b}]0;pwned\u{7}");
        let value = serde_json::json!({ "task_id": "a\u{9b}2J\u{202e}b\u{7f}" });
        let text = json(&format!("{value:#}"));
        assert_eq!(text, "{\n  \"task_id\": \"a\\u009b2J\\u202eb\\u007f\"\n}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            value
        );
        assert_eq!(
            lines("{\n  \"a\": \"\u{9b}2J\"\n}"),
            "{\n  \"a\": \"\\u{9b}2J\"\n}"
        );
    }
}
