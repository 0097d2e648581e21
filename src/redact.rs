//! Masking of personal data in `Debug` output and logs, and [`LogSafe`]: text from a request
//! made safe for a log line or a terminal.

use std::borrow::Cow;
use std::fmt;

/// Text from a request (or from anyone else not to be trusted), made safe to write on a log
/// line or a terminal: control characters are escaped, and a long text is cut, the cut marked.
///
/// A member name or a `task_id` is the sender's to choose: written raw, a carriage return and
/// a line feed in it start a forged log line, and an escape sequence clears an operator's
/// screen or sets its title. Every value of a request that this crate logs goes through it;
/// use it for what your handler logs too.
///
/// - Escaped: every control character (C0, DEL, C1) as `\n`, `\r`, `\t` or `\u{1b}`, the
///   characters that reorder or break a line on screen (bidirectional overrides and isolates,
///   U+2028 and U+2029), and the backslash itself (`\\`), so that an escape written by the
///   sender never reads as one made here. Everything else, Chinese task names included, is kept
///   as it is.
/// - Cut after [`LogSafe::DEFAULT_LIMIT`] bytes (at a character boundary), followed by
///   `…[cut: N bytes]` with the whole text's length.
///
/// ```
/// use airudder_webhook::LogSafe;
///
/// assert_eq!(LogSafe::new("ic1a\r\nERROR forged").to_string(), r"ic1a\r\nERROR forged");
/// assert_eq!(LogSafe::new(r"typed \r").to_string(), r"typed \\r");
/// assert_eq!(LogSafe::new("\u{1b}]0;title\u{7}").to_string(), r"\u{1b}]0;title\u{7}");
/// let long = "x".repeat(1_000_000);
/// assert_eq!(LogSafe::new(&long).to_string().len(), 256 + "…[cut: 1000000 bytes]".len());
/// assert_eq!(LogSafe::new(&long).limit(4).to_string(), "xxxx…[cut: 1000000 bytes]");
/// ```
#[derive(Clone, Copy)]
pub struct LogSafe<'a> {
    text: &'a str,
    limit: usize,
}

impl<'a> LogSafe<'a> {
    /// How many bytes of a text are shown by default: enough for any real id.
    pub const DEFAULT_LIMIT: usize = 256;

    /// `text`, escaped, cut after [`DEFAULT_LIMIT`](Self::DEFAULT_LIMIT) bytes.
    pub fn new(text: &'a str) -> Self {
        Self {
            text,
            limit: Self::DEFAULT_LIMIT,
        }
    }

    /// Whether `c` is written escaped: a control character, a character that reorders or
    /// breaks a line on screen, or the backslash. (For output that escapes in a syntax of its
    /// own, JSON for one, and must leave the same characters out.)
    pub fn escapes(c: char) -> bool {
        unsafe_char(c)
    }

    /// Cut after `bytes` instead (`usize::MAX`: never).
    #[must_use]
    pub fn limit(mut self, bytes: usize) -> Self {
        self.limit = bytes;
        self
    }
}

/// The longest start of `text` at most `max` bytes long that ends at a character boundary.
pub(crate) fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Whether `c` must not reach a log line or a terminal as it is.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\\' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

/// A request's text for a log field: borrowed as it is when nothing needs escaping or cutting
/// (an ordinary id costs no allocation), else [`LogSafe`]'s form. Recorded as a `&str`, a
/// subscriber quotes it (text) or writes it as a JSON string: a space in it cannot pose as
/// another field.
pub(crate) fn log_field(text: &str) -> Cow<'_, str> {
    if text.len() <= LogSafe::DEFAULT_LIMIT && !text.contains(unsafe_char) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(LogSafe::new(text).to_string())
    }
}

impl fmt::Display for LogSafe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = prefix(self.text, self.limit);
        let cut = shown.len() < self.text.len();
        let mut rest = shown;
        while let Some(at) = rest.find(unsafe_char) {
            f.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\\' => f.write_str("\\\\")?,
                other => write!(f, "\\u{{{:x}}}", u32::from(other))?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        f.write_str(rest)?;
        if cut {
            write!(f, "…[cut: {} bytes]", self.text.len())?;
        }
        Ok(())
    }
}

impl fmt::Debug for LogSafe<'_> {
    /// Quoted, a quote inside escaped: one token however many spaces and quotes it holds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        let shown = self.to_string();
        let mut parts = shown.split('"');
        f.write_str(parts.next().unwrap_or_default())?;
        for part in parts {
            f.write_str("\\\"")?;
            f.write_str(part)?;
        }
        f.write_str("\"")
    }
}

/// A phone number shown by its last four characters only: `+86••••5678` style.
pub(crate) struct MaskedPhone<'a>(pub(crate) &'a str);

impl fmt::Debug for MaskedPhone<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for MaskedPhone<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chars = self.0.chars().count();
        let shown = if chars > 6 { 4 } else { 0 };
        f.write_str("\"")?;
        for _ in 0..chars - shown {
            f.write_str("*")?;
        }
        for c in self.0.chars().skip(chars - shown) {
            write!(f, "{c}")?;
        }
        f.write_str("\"")
    }
}

/// The keys of a map whose values are personal data.
pub(crate) struct MaskedValue<T>(pub(crate) T);

impl<T: fmt::Debug> fmt::Debug for MaskedValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "keys {:?} (values hidden)", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_safe_text_escapes_what_a_terminal_would_obey_and_keeps_the_rest() {
        for (text, shown) in [
            ("plain ic1a7a8f2b", "plain ic1a7a8f2b"),
            ("任务 ✓", "任务 ✓"),
            ("a\r\nb\tc", r"a\r\nb\tc"),
            ("\u{1b}[2J\u{7f}\u{9b}", r"\u{1b}[2J\u{7f}\u{9b}"),
            ("\u{202e}cod.exe\u{2028}", r"\u{202e}cod.exe\u{2028}"),
            ("\0", r"\u{0}"),
            (r"C:\dir \n", r"C:\\dir \\n"),
        ] {
            assert_eq!(LogSafe::new(text).to_string(), shown, "{text:?}");
        }
    }

    #[test]
    fn log_safe_text_is_cut_at_a_character_boundary_and_says_so() {
        // 3-byte characters: a cut at 256 bytes falls inside the 86th.
        let text = "任".repeat(100);
        let shown = LogSafe::new(&text).to_string();
        assert_eq!(shown, format!("{}…[cut: 300 bytes]", "任".repeat(85)));
        assert_eq!(LogSafe::new("short").limit(5).to_string(), "short");
        assert_eq!(format!("{:?}", LogSafe::new("a\nb")), r#""a\nb""#);
        assert_eq!(
            format!("{:?}", LogSafe::new(r#"x" outcome="accepted"#)),
            r#""x\" outcome=\"accepted""#
        );
    }

    #[test]
    fn an_ordinary_id_is_logged_without_a_copy() {
        assert!(matches!(log_field("ic1a7a8f2b"), Cow::Borrowed(_)));
        assert!(matches!(log_field("任务-1"), Cow::Borrowed(_)));
        assert_eq!(log_field("a\rb"), r"a\rb");
        assert_eq!(
            log_field(&"x".repeat(300)).len(),
            256 + "…[cut: 300 bytes]".len()
        );
    }

    #[test]
    fn phone_numbers_keep_only_their_last_four_characters() {
        assert_eq!(MaskedPhone("+8612345678").to_string(), "\"*******5678\"");
        assert_eq!(MaskedPhone("12345").to_string(), "\"*****\"");
        assert_eq!(MaskedPhone("").to_string(), "\"\"");
        assert_eq!(
            MaskedPhone("+62１２３４５６７８").to_string(),
            "\"*******５６７８\""
        );
    }
}
