//! What the relay shows a person: log fields and CLI cells with no control character in them,
//! and URLs without their user info and query.

use std::fmt::{self, Write as _};

use airudder_webhook::LogSafe;
use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::Writer;

/// The most bytes of one log field in text mode. The library already cuts what it takes from a
/// request at 256; this bounds everything else (an error chain, a service's answer).
const LOG_FIELD_LIMIT: usize = 2048;

/// The text log's fields, none of which an attacker can break out of. tracing-subscriber's
/// own escapes some escape sequences in the message only: a carriage return and line feed in a
/// field shown with `%` would start a forged line, and a space and an `=` would pose as a field.
/// Here every message and value goes through [`LogSafe`], a string value is always quoted, any
/// other value whenever it holds a space, an `=` or a quote, and each is cut at
/// [`LOG_FIELD_LIMIT`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LogFields;

impl<'w> MakeVisitor<Writer<'w>> for LogFields {
    type Visitor = LogVisitor<'w>;

    fn make_visitor(&self, writer: Writer<'w>) -> Self::Visitor {
        LogVisitor {
            writer,
            first: true,
            result: Ok(()),
        }
    }
}

/// Writes one event's or span's fields for [`LogFields`].
pub(crate) struct LogVisitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl LogVisitor<'_> {
    fn write(&mut self, field: &Field, value: Value<'_>) {
        if self.result.is_err() {
            return;
        }
        let separator = if std::mem::take(&mut self.first) {
            ""
        } else {
            " "
        };
        let name = field.name().trim_start_matches("r#");
        self.result = match value {
            Value::Text(text) if name == "message" => {
                write!(self.writer, "{separator}{}", safe(text))
            }
            Value::Text(text) => write!(self.writer, "{separator}{name}={}", quoted(&safe(text))),
            // Rust's `Debug` of a string escapes every control character already.
            Value::Debugged(text)
                if text.len() >= 2 && text.starts_with('"') && text.ends_with('"') =>
            {
                write!(self.writer, "{separator}{name}={}", cut_quoted(text))
            }
            Value::Debugged(text) => {
                let shown = safe(text);
                if shown.is_empty() || shown.contains([' ', '=', '"']) {
                    write!(self.writer, "{separator}{name}={}", quoted(&shown))
                } else {
                    write!(self.writer, "{separator}{name}={shown}")
                }
            }
        };
    }
}

/// A field's value as the visitor gets it.
enum Value<'a> {
    /// A string (`record_str`), or the message.
    Text(&'a str),
    /// Anything else, as its `Debug` (`%` fields arrive here as their `Display`).
    Debugged(&'a str),
}

impl Visit for LogVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, Value::Text(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.write(field, Value::Text(&text));
        } else {
            self.write(field, Value::Debugged(&text));
        }
    }
}

impl VisitOutput<fmt::Result> for LogVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for LogVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

fn safe(text: &str) -> String {
    LogSafe::new(text).limit(LOG_FIELD_LIMIT).to_string()
}

/// `"…"`, a quote inside escaped (a backslash is already escaped by [`LogSafe`]).
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\\\""))
}

/// A `Debug`-quoted string, cut at [`LOG_FIELD_LIMIT`] and closed again.
fn cut_quoted(text: &str) -> String {
    if text.len() <= LOG_FIELD_LIMIT {
        return text.to_owned();
    }
    let mut end = LOG_FIELD_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[cut: {} bytes]\"", &text[..end], text.len())
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
        // JSON escapes its own backslashes, and its pretty-printed lines are meant.
        if LogSafe::escapes(c) && !matches!(c, '\\' | '\n') {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// A URL as it may be shown: scheme, host and port; never its user info (a password), its
/// path (Slack's, Teams' and many a service's webhook URLs hold their secret there) or its
/// query (a token). Text that is no URL is not shown at all: it may be a secret typed in the
/// wrong place.
pub(crate) fn url(text: &str) -> String {
    match reqwest::Url::parse(text.trim()) {
        Ok(url) if url.has_host() => {
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            let rest = if url.path() == "/" && url.query().is_none() && url.username().is_empty() {
                "/"
            } else {
                "/… (path, query and user info not shown)"
            };
            format!(
                "{}://{}{port}{rest}",
                url.scheme(),
                url.host_str().unwrap_or_default(),
            )
        }
        _ => "the value given (not shown: it may hold a secret)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the relay's text log writes for one event.
    fn logged(event: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .fmt_fields(LogFields)
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .finish();
        tracing::subscriber::with_default(subscriber, event);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn no_field_or_message_breaks_out_of_its_line_or_its_value() {
        let hostile = "t1\r\nERROR forged \u{1b}]0;x\u{7} outcome=\"accepted\"";
        let line = logged(|| {
            tracing::warn!(
                shown = %hostile,
                plain = hostile,
                debugged = ?hostile,
                huge = %"h".repeat(10_000),
                "refused: {hostile}"
            );
        });
        assert_eq!(line.matches('\n').count(), 1, "one line: {line:?}");
        assert!(!line.contains(['\r', '\u{1b}', '\u{7}']), "{line:?}");
        assert!(
            line.trim_start()
                .starts_with(r"WARN refused: t1\r\nERROR forged \u{1b}]0;x\u{7}"),
            "{line:?}"
        );
        for (name, value) in [
            (
                "shown",
                r#""t1\r\nERROR forged \u{1b}]0;x\u{7} outcome=\"accepted\"""#,
            ),
            (
                "plain",
                r#""t1\r\nERROR forged \u{1b}]0;x\u{7} outcome=\"accepted\"""#,
            ),
            (
                "debugged",
                r#""t1\r\nERROR forged \u{1b}]0;x\u{7} outcome=\"accepted\"""#,
            ),
        ] {
            assert!(
                line.contains(&format!(" {name}={value}")),
                "{name}: {line:?}"
            );
        }
        assert!(line.contains("…[cut: 10000 bytes]"), "{line:?}");
        assert!(line.len() < 3 * LOG_FIELD_LIMIT + 1024, "{}", line.len());
        // Ordinary values read as before.
        let line = logged(|| tracing::info!(attempt = 3, webhook_id = %"msg_1", "forwarded"));
        assert_eq!(
            line.trim_start(),
            "INFO forwarded attempt=3 webhook_id=msg_1\n"
        );
    }

    #[test]
    fn a_url_is_shown_without_user_info_or_query() {
        assert_eq!(
            url("https://user:s3cret@team.example:8443/hooks?token=abc"),
            "https://team.example:8443/… (path, query and user info not shown)"
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
