//! A fast path for the contract's own shapes, in front of serde_json.
//!
//! serde_json drives the typed model through serde's visitors: every member costs a key
//! visitor, a value visitor and the bookkeeping between them, and that is most of the time spent
//! decoding a notification. This module reads the same bytes in one pass written for the shapes
//! [`wire_struct!`](super::macros) generates, with no visitor in between.
//!
//! It never decides that a body is wrong. Whatever it is not sure of (an escape in a key, a lone
//! surrogate, a number serde_json would read as a float, a repeated or missing member, anything
//! malformed) makes it give up with `None`, and the caller decodes the body again with serde_json, which
//! then accepts it or produces the usual [`DecodeError`](crate::DecodeError). So a body the fast
//! path accepts decodes to the value serde_json gives, and every error is serde_json's own: the
//! differential tests in `tests/decoding/model.rs` hold it to that.

use std::borrow::Cow;

use serde_json::Value;

/// How deep the fast path follows a free-form value before it leaves the body to serde_json,
/// whose limit (128 levels from the root) then decides.
const MAX_DEPTH: u32 = 64;

const SPACES: u64 = u64::from_le_bytes([b' '; 8]);
const ONES: u64 = u64::from_le_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);

/// Where the first byte that ends a string run is: a quote, a backslash or a control character.
#[inline]
fn string_end(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    // Eight bytes at a time: a byte is flagged when it is zero after XOR with `"` or `\\`, or when
    // subtracting 0x20 borrows. Flags above the first true one may be false; the first is exact.
    while let Some(chunk) = bytes[at..].first_chunk::<8>() {
        let word = u64::from_le_bytes(*chunk);
        let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
        let flags = zero(word ^ (ONES * u64::from(b'"')))
            | zero(word ^ (ONES * u64::from(b'\\')))
            | (word.wrapping_sub(ONES * 0x20) & !word & HIGHS);
        if flags != 0 {
            return Some(at + (flags.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    bytes[at..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|i| at + i)
}

/// The bytes a [`Key`] compares at once: a quoted key of up to 30 bytes.
const KEY_BYTES: usize = 32;

/// A member's name as [`Scanner::key_is`] compares it: quoted, in words, with masks that
/// leave out the bytes past its closing quote.
pub(crate) struct Key {
    name: &'static str,
    /// Whether the quoted name fits in `KEY_BYTES`; a longer one is compared as a slice.
    fits: bool,
    words: [u64; KEY_BYTES / 8],
    masks: [u64; KEY_BYTES / 8],
}

impl Key {
    pub(crate) const fn new(name: &'static str) -> Self {
        let quoted = name.len() + 2;
        let mut key = Self {
            name,
            fits: quoted <= KEY_BYTES,
            words: [0; KEY_BYTES / 8],
            masks: [0; KEY_BYTES / 8],
        };
        if !key.fits {
            return key;
        }
        let mut at = 0;
        while at < quoted {
            let byte = if at == 0 || at == quoted - 1 {
                b'"'
            } else {
                name.as_bytes()[at - 1]
            };
            let shift = (at % 8) * 8;
            key.words[at / 8] |= (byte as u64) << shift;
            key.masks[at / 8] |= 0xff << shift;
            at += 1;
        }
        key
    }

    /// The name with its quotes.
    const fn quoted_len(&self) -> usize {
        self.name.len() + 2
    }
}

/// A cursor over a body known to be UTF-8.
pub(crate) struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

/// A type the fast path can read; `None` hands the body to serde_json.
pub(crate) trait Fast: Sized {
    fn fast(scanner: &mut Scanner<'_>) -> Option<Self>;
}

/// Reads `text` as one `T` with nothing but white space after it, or gives up.
pub(crate) fn decode<T: Fast>(text: &str) -> Option<T> {
    let mut scanner = Scanner::new(text);
    let value = T::fast(&mut scanner)?;
    scanner.skip_white_space();
    (scanner.pos == text.len()).then_some(value)
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    #[inline]
    fn skip_white_space(&mut self) {
        let bytes = self.bytes();
        // Most calls find a token next (every white space byte is at most b' '), or one space
        // before it, as after the colons of an indented body.
        match bytes.get(self.pos) {
            Some(&b) if b > b' ' => return,
            Some(b' ') if bytes.get(self.pos + 1).is_some_and(|&b| b > b' ') => {
                self.pos += 1;
                return;
            }
            Some(b' ' | b'\n' | b'\r' | b'\t') => {}
            _ => return,
        }
        loop {
            // A white space byte, then the spaces after it: the sender indents its bodies, and
            // the lowest byte of the next eight that is not a space ends the run.
            self.pos += 1;
            while let Some(chunk) = bytes.get(self.pos..).and_then(<[u8]>::first_chunk::<8>) {
                let spaces = (u64::from_le_bytes(*chunk) ^ SPACES).trailing_zeros() / 8;
                self.pos += spaces as usize;
                if spaces < 8 {
                    break;
                }
            }
            match bytes.get(self.pos) {
                Some(b' ' | b'\n' | b'\r' | b'\t') => {}
                _ => return,
            }
        }
    }

    /// The next byte that is not white space, without consuming it.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.skip_white_space();
        self.bytes().get(self.pos).copied()
    }

    /// Whether `byte` comes next (after white space).
    #[inline]
    pub(crate) fn at(&mut self, byte: u8) -> bool {
        self.peek() == Some(byte)
    }

    #[inline]
    pub(crate) fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    /// Consumes a `null` if one comes next.
    #[inline(always)]
    pub(crate) fn null(&mut self) -> bool {
        let at = self.peek().map(|_| self.pos);
        match at {
            Some(at) if self.bytes()[at..].starts_with(b"null") => {
                self.pos = at + 4;
                true
            }
            _ => false,
        }
    }

    /// A string without escapes, borrowed from the body.
    #[inline]
    pub(crate) fn str(&mut self) -> Option<&'a str> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.pos + 1;
        let len = string_end(&self.bytes()[start..])?;
        if self.bytes()[start + len] != b'"' {
            return None;
        }
        self.pos = start + len + 1;
        // Both ends sit next to an ASCII quote, so they are character boundaries.
        self.text.get(start..start + len)
    }

    /// A string, borrowed from the body when it holds no escape, else with its escapes read as
    /// serde_json reads them (a lone surrogate gives up, as serde_json refuses it).
    #[inline(always)]
    pub(crate) fn string(&mut self) -> Option<Cow<'a, str>> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.pos + 1;
        let end = start + string_end(&self.bytes()[start..])?;
        match self.bytes()[end] {
            b'"' => {
                self.pos = end + 1;
                self.text.get(start..end).map(Cow::Borrowed)
            }
            b'\\' => {
                self.pos = start;
                self.escaped().map(Cow::Owned)
            }
            _ => None,
        }
    }

    /// The rest of a string holding escapes, from `pos` to its closing quote.
    #[cold]
    #[inline(never)]
    fn escaped(&mut self) -> Option<String> {
        let mut out = String::new();
        loop {
            let run = string_end(&self.bytes()[self.pos..])?;
            // A run starts after a quote or an escape and ends before one: ASCII on both sides.
            out.push_str(self.text.get(self.pos..self.pos + run)?);
            self.pos += run;
            match self.bytes()[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return Some(out);
                }
                b'\\' => {
                    let escape = *self.bytes().get(self.pos + 1)?;
                    self.pos += 2;
                    out.push(match escape {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return None,
                    });
                }
                _ => return None,
            }
        }
    }

    /// The character of a `\u` escape whose `\u` was just read, with its low surrogate if any.
    fn unicode_escape(&mut self) -> Option<char> {
        let first = self.hex4()?;
        match first {
            0xD800..=0xDBFF => {
                if self.bytes().get(self.pos..self.pos + 2)? != b"\\u" {
                    return None;
                }
                self.pos += 2;
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return None;
                }
                char::from_u32(0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00))
            }
            0xDC00..=0xDFFF => None,
            scalar => char::from_u32(scalar),
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.bytes().get(self.pos..self.pos + 4)?;
        let mut value = 0;
        for &digit in digits {
            value = value * 16 + char::from(digit).to_digit(16)?;
        }
        self.pos += 4;
        Some(value)
    }

    /// An integer serde_json would hand to an `i64` visitor as one.
    pub(crate) fn i64(&mut self) -> Option<i64> {
        self.skip_white_space();
        let bytes = self.bytes();
        let negative = bytes.get(self.pos) == Some(&b'-');
        let start = self.pos + usize::from(negative);
        // One pass over the digits: nineteen of them cannot overflow a u64, more are checked.
        let mut magnitude: u64 = 0;
        let mut end = start;
        while let Some(&digit) = bytes.get(end).filter(|b| b.is_ascii_digit()) {
            let digit = u64::from(digit - b'0');
            magnitude = if end - start < 19 {
                magnitude * 10 + digit
            } else {
                magnitude.checked_mul(10)?.checked_add(digit)?
            };
            end += 1;
        }
        let digits = end - start;
        // No digits, a leading zero before more digits, or a fraction or exponent next.
        if digits == 0
            || (digits > 1 && bytes[start] == b'0')
            || matches!(bytes.get(end), Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        self.pos = end;
        if negative {
            // serde_json reads `-0` as a float; anything below i64::MIN is one too.
            match magnitude {
                0 => None,
                m if m <= i64::MAX as u64 => Some(-(m as i64)),
                m if m == i64::MAX as u64 + 1 => Some(i64::MIN),
                _ => None,
            }
        } else {
            i64::try_from(magnitude).ok()
        }
    }

    /// Enters an object: `Some(true)` when it has members.
    #[inline]
    pub(crate) fn begin_object(&mut self) -> Option<bool> {
        self.eat(b'{')?;
        self.close(b'}')
    }

    /// Enters an array: `Some(true)` when it has elements.
    #[inline]
    pub(crate) fn begin_array(&mut self) -> Option<bool> {
        self.eat(b'[')?;
        self.close(b']')
    }

    /// An object key and its colon.
    #[inline]
    pub(crate) fn key(&mut self) -> Option<&'a str> {
        let key = self.str()?;
        self.eat(b':')?;
        Some(key)
    }

    /// The key `expected` and its colon, if that key comes next: `Some(false)` (nothing read)
    /// when another does. Comparing with the key the sender usually writes next needs no scan
    /// for the key's end.
    #[inline(always)]
    pub(crate) fn key_is(&mut self, expected: &Key) -> Option<bool> {
        self.skip_white_space();
        let rest = &self.bytes()[self.pos..];
        let matches = match (expected.fits, rest.first_chunk::<KEY_BYTES>()) {
            // The quoted key against the next 32 bytes, a word at a time, past its end masked.
            (true, Some(next)) => {
                let mut differ = 0;
                for (i, word) in next.chunks_exact(8).enumerate() {
                    let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
                    differ |= (word ^ expected.words[i]) & expected.masks[i];
                }
                differ == 0
            }
            _ => rest.get(..expected.quoted_len()).is_some_and(|next| {
                next[0] == b'"'
                    && next[next.len() - 1] == b'"'
                    && &next[1..next.len() - 1] == expected.name.as_bytes()
            }),
        };
        if !matches {
            return Some(false);
        }
        self.pos += expected.quoted_len();
        self.eat(b':')?;
        Some(true)
    }

    /// After a member: `Some(true)` when another follows.
    #[inline(always)]
    pub(crate) fn next_member(&mut self) -> Option<bool> {
        self.separator(b'}')
    }

    /// After an element: `Some(true)` when another follows.
    #[inline(always)]
    pub(crate) fn next_element(&mut self) -> Option<bool> {
        self.separator(b']')
    }

    #[inline(always)]
    fn close(&mut self, end: u8) -> Option<bool> {
        if self.peek()? == end {
            self.pos += 1;
            Some(false)
        } else {
            Some(true)
        }
    }

    #[inline(always)]
    fn separator(&mut self, end: u8) -> Option<bool> {
        match self.peek()? {
            b',' => {
                self.pos += 1;
                Some(true)
            }
            b if b == end => {
                self.pos += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// The elements of an array or the members of an object whose opening bracket was just
    /// read, up to `end`, in a vector of exactly their number.
    ///
    /// The arrays and maps of a call hold one to four items: they are gathered on the stack
    /// first, so that the vector is allocated once, at its size, never grown and shrunk.
    pub(crate) fn collect<T>(
        &mut self,
        end: u8,
        mut read: impl FnMut(&mut Self) -> Option<T>,
    ) -> Option<Vec<T>> {
        let mut head: [Option<T>; 4] = Default::default();
        let mut count = 0;
        let mut more = self.close(end)?;
        while more && count < head.len() {
            head[count] = Some(read(self)?);
            count += 1;
            more = self.separator(end)?;
        }
        let mut items = Vec::with_capacity(if more { 2 * head.len() } else { count });
        items.extend(head.into_iter().flatten());
        while more {
            items.push(read(self)?);
            more = self.separator(end)?;
        }
        if items.capacity() > items.len() {
            items.shrink_to_fit();
        }
        Some(items)
    }

    /// Any JSON value, read by serde_json from its own extent of the body.
    pub(crate) fn value(&mut self) -> Option<Value> {
        self.skip_white_space();
        let start = self.pos;
        self.skip_value(0)?;
        serde_json::from_str(self.text.get(start..self.pos)?).ok()
    }

    /// Finds the end of a value. Only the extent matters: serde_json validates what is inside.
    fn skip_value(&mut self, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' => {
                let mut more = self.begin_object()?;
                while more {
                    self.skip_string()?;
                    self.eat(b':')?;
                    self.skip_value(depth + 1)?;
                    more = self.next_member()?;
                }
                Some(())
            }
            b'[' => {
                let mut more = self.begin_array()?;
                while more {
                    self.skip_value(depth + 1)?;
                    more = self.next_element()?;
                }
                Some(())
            }
            _ => {
                let len = self.bytes()[self.pos..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.'))
                    .count();
                self.pos += len;
                (len > 0).then_some(())
            }
        }
    }

    fn skip_string(&mut self) -> Option<()> {
        if self.peek()? != b'"' {
            return None;
        }
        self.pos += 1;
        loop {
            let rest = &self.bytes()[self.pos..];
            let at = string_end(rest)?;
            match rest[at] {
                b'"' => {
                    self.pos += at + 1;
                    return Some(());
                }
                // An escape: step over the backslash and the byte after it.
                b'\\' if at + 1 < rest.len() => self.pos += at + 2,
                _ => return None,
            }
        }
    }
}

impl Fast for i64 {
    #[inline]
    fn fast(scanner: &mut Scanner<'_>) -> Option<Self> {
        scanner.i64()
    }
}

impl Fast for Value {
    fn fast(scanner: &mut Scanner<'_>) -> Option<Self> {
        scanner.value()
    }
}

impl<T: Fast> Fast for Vec<T> {
    fn fast(scanner: &mut Scanner<'_>) -> Option<Self> {
        scanner.eat(b'[')?;
        scanner.collect(b']', T::fast)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan<T: Fast>(text: &str) -> Option<T> {
        decode(text)
    }

    #[test]
    fn integers_are_read_exactly_as_serde_json_reads_them_or_left_to_it() {
        for text in [
            "0",
            "7",
            "-7",
            " 42 ",
            "9223372036854775807",
            "-9223372036854775808",
            "1000000000000000000",
            "931888898",
        ] {
            let expected: i64 = serde_json::from_str(text).unwrap();
            assert_eq!(scan::<i64>(text), Some(expected), "{text}");
        }
        // serde_json refuses each of these as an i64: the fast path must not accept them.
        for text in [
            "-0",
            "01",
            "1.0",
            "1e3",
            "9223372036854775808",
            "-9223372036854775809",
            "18446744073709551616",
            "18446744073709551615",
            "10000000000000000000",
            "99999999999999999999",
            "-10000000000000000000",
            "-",
            "",
            "1 2",
            "+1",
        ] {
            assert_eq!(scan::<i64>(text), None, "{text}");
            assert!(serde_json::from_str::<i64>(text).is_err(), "{text}");
        }
    }

    #[test]
    fn free_form_values_are_serde_json_values_of_their_extent() {
        for text in [
            r#"{"a": "b", "c": [1, 2.5, {"d": null}], "e": "x\"y\\"}"#,
            "[]",
            "{}",
            r#""plain""#,
            "-12.5e3",
            "true",
        ] {
            let expected: Value = serde_json::from_str(text).unwrap();
            assert_eq!(scan::<Value>(text), Some(expected), "{text}");
        }
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(scan::<Value>(&deep), None);
        for text in [r#"{"a" 1}"#, r#"{"a": tru}"#, "[1,]", "\"a\nb\"", "{"] {
            assert_eq!(scan::<Value>(text), None, "{text}");
        }
    }

    #[test]
    fn arrays_of_any_length_are_read_whole_into_vectors_of_their_size() {
        for len in [0usize, 1, 3, 4, 5, 8, 9, 100] {
            let items: Vec<i64> = (0..len as i64).collect();
            let text = serde_json::to_string_pretty(&items).unwrap();
            let read = scan::<Vec<i64>>(&text).unwrap();
            assert_eq!(read, items);
            assert_eq!(
                read.capacity(),
                len,
                "no unused capacity for {len} elements"
            );
        }
        assert_eq!(scan::<Vec<i64>>("[1, 2, 3, 4, 5,]"), None);
        assert_eq!(scan::<Vec<i64>>("[1 2]"), None);
    }

    #[test]
    fn the_example_and_its_escaped_variants_are_read_without_serde_json() {
        let example = std::str::from_utf8(include_bytes!(
            "../../tests/data/task_notification.example.json"
        ))
        .unwrap();
        let escaped = example
            .replace("xxxxxxxxxxc25a9b2_ic_task", r"\u50ac\u6536 \\ task")
            .replace("yes i will", r#"yes \"i\" will"#);
        for text in [example, escaped.as_str()] {
            let fast =
                decode::<crate::model::TaskNotification>(text).expect("read by the fast path");
            let serde_only: crate::model::TaskNotification = serde_json::from_str(text).unwrap();
            assert_eq!(fast, serde_only);
        }
    }

    #[test]
    fn strings_are_read_as_serde_json_reads_them_escapes_included() {
        for text in [
            r#""plain""#,
            r#""a\"b\\c\/d""#,
            r#""\b\f\n\r\t""#,
            r#""\u4e2d\u6587 task""#,
            r#""\u00E9\u00e9""#,
            r#""\ud83d\ude00 smile""#,
            r#""\u0000""#,
            r#""中文 \"quoted\"""#,
        ] {
            let expected: String = serde_json::from_str(text).unwrap();
            let mut scanner = Scanner::new(text);
            assert_eq!(
                scanner.string().as_deref(),
                Some(expected.as_str()),
                "{text}"
            );
            assert_eq!(scanner.pos, text.len(), "{text}");
        }
        // serde_json refuses each of these: the fast path gives up on them.
        for text in [
            r#""\ud83d""#,
            r#""\udc00""#,
            r#""\ud83d\u0041""#,
            r#""\ud83dx""#,
            r#""\x""#,
            r#""\u12""#,
            r#""\u12g4""#,
            "\"tab\there\"",
            r#""unterminated\""#,
        ] {
            assert!(serde_json::from_str::<String>(text).is_err(), "{text}");
            assert_eq!(Scanner::new(text).string(), None, "{text}");
        }
        // Keys are read without escapes: a key with one is left to serde_json.
        let mut scanner = Scanner::new(r#""ok" "a\"b""#);
        assert_eq!(scanner.str(), Some("ok"));
        assert_eq!(scanner.str(), None);
    }

    #[test]
    fn white_space_of_every_run_length_and_kind_is_stepped_over() {
        for run in 0..20 {
            for filler in [" ", "\n", "\t", "\r\n", " \n  ", "\t "] {
                let gap: String = std::iter::repeat_n(filler, run).collect();
                let text =
                    format!("{gap}{{{gap}\"k\"{gap}:{gap}[{gap}7{gap},{gap}8{gap}]{gap}}}{gap}");
                let mut scanner = Scanner::new(&text);
                assert_eq!(scanner.begin_object(), Some(true), "{text:?}");
                assert_eq!(scanner.key(), Some("k"), "{text:?}");
                assert_eq!(Vec::<i64>::fast(&mut scanner), Some(vec![7, 8]), "{text:?}");
                assert_eq!(scanner.next_member(), Some(false), "{text:?}");
                scanner.skip_white_space();
                assert_eq!(scanner.pos, text.len(), "{text:?}");
            }
        }
        // Not white space: a form feed or a non-breaking space stops the run.
        for text in ["\x0c1", "\u{a0}1"] {
            let mut scanner = Scanner::new(text);
            assert_eq!(scanner.i64(), None, "{text:?}");
        }
    }

    #[test]
    fn a_key_is_matched_whole_at_any_length_and_anywhere_in_the_body() {
        let names: Vec<String> = (1..=40).map(|len| "k".repeat(len)).collect();
        for name in &names {
            let name: &'static str = Box::leak(name.clone().into_boxed_str());
            let key = Key::new(name);
            // Far from the end of the body (compared a word at a time when it fits) and at it.
            for tail in ["", r#", "padding to pass the thirty-two bytes": 2}"#] {
                let body = format!(" \"{name}\" :1{tail}");
                let mut scanner = Scanner::new(&body);
                assert_eq!(scanner.key_is(&key), Some(true), "{body:?}");
                assert_eq!(scanner.i64(), Some(1), "{body:?}");
                // A longer key, a shorter one, and one with another last byte are other keys.
                for other in [
                    format!("{name}k"),
                    name[1..].to_owned(),
                    format!("{}j", &name[1..]),
                ] {
                    let body = format!("\"{other}\":1{tail}");
                    let mut scanner = Scanner::new(&body);
                    assert_eq!(scanner.key_is(&key), Some(false), "{name} in {body:?}");
                    assert_eq!(scanner.pos, 0, "nothing read: {body:?}");
                }
            }
        }
        // A key without its colon is not a member.
        assert_eq!(Scanner::new(r#""kk" 1"#).key_is(&Key::new("kk")), None);
    }
}
