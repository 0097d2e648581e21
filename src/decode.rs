//! Decoding a body into an event, with errors that name the offending field.

use std::fmt;

use serde::de::DeserializeOwned;

/// Why a body was refused by [`decode`].
///
/// The message never repeats a value from the body (values can be phone numbers or customer
/// variables): `invalid type: a string, expected i64`, not the string itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    kind: DecodeErrorKind,
    path: Option<String>,
    message: String,
    line: usize,
    column: usize,
}

/// The class of a [`DecodeError`]; it decides the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The body is empty (400).
    Empty,
    /// The body is not JSON: bad syntax, bad UTF-8, a number out of range (400).
    Syntax,
    /// A JSON value is followed by more bytes (400).
    TrailingBytes,
    /// Arrays and objects nest deeper than the limit of 128 (400).
    TooDeep,
    /// Valid JSON of the wrong shape: not an object, a member missing, repeated or of the
    /// wrong type (422).
    Shape,
}

impl DecodeError {
    /// The class of the error.
    pub fn kind(&self) -> DecodeErrorKind {
        self.kind
    }

    /// The path of the offending member, e.g. `details[3].duration`, when there is one.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// What is wrong, without the path or position.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The line (from 1) where the error was found; 0 when unknown.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The column (from 1) where the error was found; 0 when unknown.
    pub fn column(&self) -> usize {
        self.column
    }

    /// The HTTP status this error answers with: 422 for [`DecodeErrorKind::Shape`], else 400.
    pub fn status(&self) -> http::StatusCode {
        match self.kind {
            DecodeErrorKind::Shape => http::StatusCode::UNPROCESSABLE_ENTITY,
            _ => http::StatusCode::BAD_REQUEST,
        }
    }

    fn utf8(bytes: &[u8], valid_up_to: usize) -> Self {
        let before = &bytes[..valid_up_to];
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let column = 1 + before.iter().rev().take_while(|&&b| b != b'\n').count();
        Self {
            kind: DecodeErrorKind::Syntax,
            path: None,
            message: "the body is not valid UTF-8".to_owned(),
            line,
            column,
        }
    }

    fn from_json<T: DeserializeOwned>(err: serde_json::Error, text: &str) -> Self {
        let bytes = text.as_bytes();
        let (line, column) = (err.line(), err.column());
        let raw = err.to_string();
        let raw = match raw.rfind(" at line ") {
            Some(at) if line > 0 => &raw[..at],
            _ => &raw[..],
        };
        let kind = if bytes.iter().all(u8::is_ascii_whitespace) {
            DecodeErrorKind::Empty
        } else if raw.starts_with("trailing characters") {
            DecodeErrorKind::TrailingBytes
        } else if raw.starts_with("recursion limit exceeded") {
            DecodeErrorKind::TooDeep
        } else if err.is_data() {
            DecodeErrorKind::Shape
        } else {
            DecodeErrorKind::Syntax
        };
        let message = match kind {
            DecodeErrorKind::Empty => "the body is empty".to_owned(),
            DecodeErrorKind::TooDeep => "arrays and objects nest deeper than 128 levels".to_owned(),
            _ => scrub(raw),
        };
        let path = (kind == DecodeErrorKind::Shape)
            .then(|| shape_path::<T>(text, &message))
            .flatten();
        Self {
            kind,
            path: path.map(bounded),
            message: bounded(message),
            line,
            column,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{path}: {}", self.message)?,
            None => f.write_str(&self.message)?,
        }
        if self.line > 0 {
            write!(f, " (line {} column {})", self.line, self.column)?;
        }
        Ok(())
    }
}

impl std::error::Error for DecodeError {}

/// Decodes a body into `T`, strictly: one JSON value, nothing after it.
///
/// The fast path parses once. Only when the body has the wrong shape is it read a second time,
/// to find the path of the offending member: refusals are rare, and the common case pays nothing
/// for the path. For a task notification,
/// [`TaskNotification::from_slice`](crate::model::TaskNotification::from_slice) gives the same
/// answers faster; the receiver uses it.
///
/// # Errors
/// A [`DecodeError`] naming the class of the problem and, for a wrong shape, the member's path.
///
/// ```
/// use airudder_webhook::{DecodeErrorKind, model::TaskNotification};
///
/// let err = airudder_webhook::decode::<TaskNotification>(br#"{"task_id": 7}"#).unwrap_err();
/// assert_eq!(err.kind(), DecodeErrorKind::Shape);
/// assert_eq!(err.path(), Some("task_id"));
/// assert_eq!(err.message(), "invalid type: an integer, expected a string");
/// ```
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    decode_with(bytes, |_| None)
}

/// [`decode`] behind a fast path: `fast` reads the text first, and serde_json decides whenever
/// it gives up, so the result and every error are serde_json's.
pub(crate) fn decode_with<T: DeserializeOwned>(
    bytes: &[u8],
    fast: impl FnOnce(&str) -> Option<T>,
) -> Result<T, DecodeError> {
    // One UTF-8 check of the whole body is cheaper than serde_json's check of every string,
    // and simdutf8's, 16 or 32 bytes at a time, cheaper than the standard library's; the
    // standard library says where a body that fails it goes wrong.
    let text = match simdutf8::basic::from_utf8(bytes) {
        Ok(text) => text,
        Err(_) => {
            std::str::from_utf8(bytes).map_err(|err| DecodeError::utf8(bytes, err.valid_up_to()))?
        }
    };
    if let Some(value) = fast(text) {
        return Ok(value);
    }
    serde_json::from_str(text).map_err(|err| DecodeError::from_json::<T>(err, text))
}

/// Reads the body again, tracking the path, to say where a shape error is.
fn shape_path<T: DeserializeOwned>(text: &str, message: &str) -> Option<String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let err = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(_) => return None,
        Err(err) => err,
    };
    let path = err.path().to_string();
    let parent = (path != ".").then_some(path);
    // serde reports a missing or repeated member at the object holding it: name the member.
    let member = ["missing field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.strip_suffix('`'));
    match (parent, member) {
        (Some(parent), Some(field)) => Some(format!("{parent}.{field}")),
        (None, Some(field)) => Some(field.to_owned()),
        (parent, None) => parent,
    }
}

/// The most bytes of a member name an error repeats: the names are the sender's, and a
/// megabyte-long one must not make a megabyte-long answer, stored reason or log line.
const MAX_ERROR_TEXT: usize = 256;

/// `text`, cut after [`MAX_ERROR_TEXT`] bytes at a character boundary, the cut marked `…`.
fn bounded(mut text: String) -> String {
    let kept = crate::redact::prefix(&text, MAX_ERROR_TEXT).len();
    if kept < text.len() {
        text.truncate(kept);
        text.push('…');
    }
    text
}

/// Rewrites serde's `invalid type: string "…", expected …` so that no value from the body
/// survives into an error body or a log line.
fn scrub(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let (found, expected) = match rest.rfind(", expected ") {
                Some(at) => (&rest[..at], &rest[at + ", expected ".len()..]),
                None => (rest, "something else"),
            };
            return format!("{prefix}{}, expected {expected}", category(found));
        }
    }
    message.to_owned()
}

fn category(found: &str) -> &'static str {
    const CATEGORIES: [(&str, &str); 11] = [
        ("string", "a string"),
        ("integer", "an integer"),
        ("floating point", "a floating-point number"),
        ("boolean", "a boolean"),
        ("null", "null"),
        ("unit", "null"),
        ("map", "an object"),
        ("sequence", "an array"),
        ("char", "a character"),
        ("byte array", "bytes"),
        ("option", "an optional value"),
    ];
    CATEGORIES
        .iter()
        .find(|(prefix, _)| found.starts_with(prefix))
        .map_or("another value", |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_a_syntax_error_with_its_position() {
        // Line 2 is `  "a": "` then the bad byte: column 9.
        let err = decode::<serde_json::Value>(b"{\n  \"a\": \"\xff\"}").unwrap_err();
        assert_eq!(
            (err.kind(), err.line(), err.column()),
            (DecodeErrorKind::Syntax, 2, 9)
        );
        assert_eq!(err.message(), "the body is not valid UTF-8");
    }

    #[test]
    fn a_huge_member_name_is_repeated_cut_in_the_error() {
        let example = include_str!("../tests/data/task_notification.example.json");
        let name = format!("\\r\\n{}", "k".repeat(100_000));
        let body = example.replacen('{', &format!("{{\"{name}\": 1, \"{name}\": 2, "), 1);
        let err = crate::model::TaskNotification::from_slice(body.as_bytes()).unwrap_err();
        assert_eq!(err.kind(), DecodeErrorKind::Shape);
        let path = err.path().expect("the member is named");
        assert!(
            path.starts_with("\r\nkkk") && path.ends_with('…'),
            "{path:?}"
        );
        assert!(path.len() <= MAX_ERROR_TEXT + '…'.len_utf8());
        assert!(err.message().len() <= MAX_ERROR_TEXT + '…'.len_utf8());
        assert!(err.to_string().len() < 2 * MAX_ERROR_TEXT + 64, "{err}");
    }

    #[test]
    fn scrub_drops_the_value_and_keeps_the_expectation() {
        let cases = [
            (
                "string",
                "invalid type: string \"+8612345678\", expected i64",
                "invalid type: a string, expected i64",
            ),
            (
                "tricky string",
                "invalid type: string \"a, expected b\", expected i64",
                "invalid type: a string, expected i64",
            ),
            (
                "float",
                "invalid type: floating point `1.5`, expected i64",
                "invalid type: a floating-point number, expected i64",
            ),
            (
                "value",
                "invalid value: integer `-1`, expected u32",
                "invalid value: an integer, expected u32",
            ),
            (
                "other message",
                "missing field `callee`",
                "missing field `callee`",
            ),
        ];
        for (name, raw, want) in cases {
            assert_eq!(scrub(raw), want, "{name}");
        }
    }
}
