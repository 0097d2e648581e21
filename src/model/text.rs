//! `Text`: the model's string, stored inline when short.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use compact_str::CompactString;

/// A string member of a notification.
///
/// It reads like a `&str` (it dereferences to one, compares with `&str` and `String`, and
/// displays as itself). Short strings (up to 24 bytes, which is most members: labels,
/// timestamps, answers, numbers) are stored inline, without an allocation, which makes decoding
/// faster and a decoded notification smaller.
///
/// ```
/// use airudder_webhook::model::Text;
///
/// let label = Text::from("A");
/// assert_eq!(label, "A");
/// assert_eq!(label.len(), 1);
/// let owned: String = label.into();
/// assert_eq!(owned, "A");
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text(CompactString);

impl Text {
    /// A text holding `text`.
    pub fn new(text: impl AsRef<str>) -> Self {
        Self(CompactString::new(text))
    }

    /// The text as a `&str`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text as a `String`.
    pub fn into_string(self) -> String {
        self.0.into_string()
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0.as_str(), f)
    }
}

impl From<&str> for Text {
    #[inline]
    fn from(text: &str) -> Self {
        Self(CompactString::new(text))
    }
}

impl super::fast::Fast for Text {
    #[inline]
    fn fast(scanner: &mut super::fast::Scanner<'_>) -> Option<Self> {
        scanner.string().map(|text| match text {
            std::borrow::Cow::Borrowed(text) => Self::from(text),
            std::borrow::Cow::Owned(text) => Self::from(text),
        })
    }
}

impl From<String> for Text {
    fn from(text: String) -> Self {
        Self(CompactString::from(text))
    }
}

impl From<Text> for String {
    fn from(text: Text) -> Self {
        text.into_string()
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.0 == other.as_str()
    }
}

impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        self == other.0.as_str()
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.0.as_str()
    }
}

impl PartialEq<Text> for String {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.0.as_str()
    }
}

impl serde::Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = Text;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Text, E> {
                Ok(Text(CompactString::new(text)))
            }

            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Text, E> {
                Ok(Text(CompactString::from(text)))
            }
        }

        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_and_serializes_like_a_string() {
        let text: Text = serde_json::from_str(r#""+8612345678""#).unwrap();
        assert_eq!(text, "+8612345678");
        assert_eq!("+8612345678", text);
        assert_eq!(text, String::from("+8612345678"));
        assert_eq!(serde_json::to_string(&text).unwrap(), r#""+8612345678""#);
        let long: Text =
            serde_json::from_str(r#""a member longer than twenty-four bytes, with \"escapes\"""#)
                .unwrap();
        assert_eq!(
            long.as_str(),
            r#"a member longer than twenty-four bytes, with "escapes""#
        );
        assert_eq!(format!("{long:?}"), format!("{:?}", long.as_str()));
    }
}
