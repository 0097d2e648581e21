//! The free-form members of a call, kept compactly and in the order sent.

use std::collections::HashMap;
use std::fmt;

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

use super::Text;
use super::fast::{Fast, Scanner};
use crate::redact::MaskedValue;

/// A free-form member (`EventLabel`, `Slots`, `NerSlots`, `variables`): a JSON object's
/// members in the order sent, or any other JSON value, kept as sent.
///
/// The contract documents these members as objects of strings. A `serde_json::Value` object
/// would cost a B-tree node of about 600 bytes each, more than the call's share of the body;
/// `Fields` keeps the members in one vector. A key sent twice keeps its first place and its
/// last value, as serde_json does.
///
/// Its `Debug` output shows the keys only: the values can be personal data.
///
/// ```
/// use airudder_webhook::model::Fields;
/// use serde_json::json;
///
/// let slots: Fields = serde_json::from_str(r#"{"PaymentMethod": "ATM", "Amount": 1520}"#)?;
/// assert_eq!(slots.get_str("PaymentMethod"), Some("ATM"));
/// assert_eq!(slots["Amount"], 1520);
/// assert_eq!(slots.keys().collect::<Vec<_>>(), ["PaymentMethod", "Amount"]);
/// assert_eq!(slots.to_value(), json!({"PaymentMethod": "ATM", "Amount": 1520}));
/// for (key, value) in &slots {
///     println!("{key} = {value}");
/// }
/// // Built by hand, e.g. in a test of your handler:
/// let labels: Fields = [("VerifyPass", "VerifyPass")].into_iter().collect();
/// assert_eq!(labels.len(), 1);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq)]
pub struct Fields(Repr);

#[derive(Clone, PartialEq)]
enum Repr {
    Object(Vec<(Text, Value)>),
    Other(Box<Value>),
}

static NULL: Value = Value::Null;

impl Fields {
    /// The value of a member, when this is an object holding it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.members()
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value)
    }

    /// The value of a member, when this is an object holding it as a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }

    /// The members in the order sent; none when this is not an object.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> + '_ {
        self.into_iter()
    }

    /// The keys in the order sent; none when this is not an object.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.members().iter().map(|(name, _)| name.as_str())
    }

    /// The number of members; 0 when this is not an object.
    pub fn len(&self) -> usize {
        self.members().len()
    }

    /// Whether there are no members (an empty object, or not an object).
    pub fn is_empty(&self) -> bool {
        self.members().is_empty()
    }

    /// Whether the sender sent an object, as the contract documents.
    pub fn is_object(&self) -> bool {
        matches!(self.0, Repr::Object(_))
    }

    /// The value as a `serde_json::Value`, equal to the JSON sent.
    pub fn to_value(&self) -> Value {
        match &self.0 {
            Repr::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(name, value)| (name.to_string(), value.clone()))
                    .collect(),
            ),
            Repr::Other(value) => (**value).clone(),
        }
    }

    fn members(&self) -> &[(Text, Value)] {
        match &self.0 {
            Repr::Object(members) => members,
            Repr::Other(_) => &[],
        }
    }

    fn object(mut members: Vec<(Text, Value)>) -> Self {
        keep_last(&mut members);
        if members.capacity() > members.len() {
            members.shrink_to_fit();
        }
        Self(Repr::Object(members))
    }
}

/// A key sent twice keeps its first place and its last value.
fn keep_last(members: &mut Vec<(Text, Value)>) {
    let repeated = match members.len() {
        0 | 1 => false,
        n if n <= 16 => (1..n).any(|i| members[..i].iter().any(|(k, _)| *k == members[i].0)),
        n => {
            let mut seen = std::collections::HashSet::with_capacity(n);
            !members.iter().all(|(k, _)| seen.insert(k.as_str()))
        }
    };
    if !repeated {
        return;
    }
    let mut first: HashMap<Text, usize> = HashMap::with_capacity(members.len());
    let mut kept: Vec<(Text, Value)> = Vec::with_capacity(members.len());
    for (key, value) in members.drain(..) {
        match first.get(&key) {
            Some(&at) => kept[at].1 = value,
            None => {
                first.insert(key.clone(), kept.len());
                kept.push((key, value));
            }
        }
    }
    *members = kept;
}

impl Default for Fields {
    /// An empty object.
    fn default() -> Self {
        Self(Repr::Object(Vec::new()))
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = (&'a str, &'a Value);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Text, Value)>,
        fn(&'a (Text, Value)) -> (&'a str, &'a Value),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.members()
            .iter()
            .map(|(name, value)| (name.as_str(), value))
    }
}

impl std::ops::Index<&str> for Fields {
    type Output = Value;

    /// The value of a member, or `Value::Null` when there is none (as `Value` indexes).
    fn index(&self, key: &str) -> &Value {
        self.get(key).unwrap_or(&NULL)
    }
}

impl From<Value> for Fields {
    fn from(value: Value) -> Self {
        match value {
            Value::Object(map) => Self::object(
                map.into_iter()
                    .map(|(key, value)| (Text::from(key), value))
                    .collect(),
            ),
            other => Self(Repr::Other(Box::new(other))),
        }
    }
}

impl From<Fields> for Value {
    fn from(fields: Fields) -> Self {
        match fields.0 {
            Repr::Object(members) => Value::Object(
                members
                    .into_iter()
                    .map(|(name, value)| (name.into_string(), value))
                    .collect(),
            ),
            Repr::Other(value) => *value,
        }
    }
}

impl<K: Into<Text>, V: Into<Value>> FromIterator<(K, V)> for Fields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(members: I) -> Self {
        Self::object(
            members
                .into_iter()
                .map(|(key, value)| (key.into(), value.into()))
                .collect(),
        )
    }
}

impl PartialEq<Value> for Fields {
    fn eq(&self, other: &Value) -> bool {
        match (&self.0, other) {
            (Repr::Object(members), Value::Object(map)) => {
                members.len() == map.len()
                    && members
                        .iter()
                        .all(|(name, value)| map.get(name.as_str()) == Some(value))
            }
            (Repr::Other(value), other) => **value == *other,
            _ => false,
        }
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Object(_) => {
                let keys: Vec<&str> = self.keys().collect();
                fmt::Debug::fmt(&MaskedValue(keys), f)
            }
            Repr::Other(_) => f.write_str("a value other than an object (hidden)"),
        }
    }
}

impl serde::Serialize for Fields {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Repr::Object(members) => serializer.collect_map(members.iter().map(|(k, v)| (k, v))),
            Repr::Other(value) => value.serialize(serializer),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldsVisitor)
    }
}

struct FieldsVisitor;

/// An object is kept member by member; anything else as the `Value` serde_json would build.
impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some(key) = map.next_key::<Text>()? {
            members.push((key, map.next_value::<Value>()?));
        }
        Ok(Fields::object(members))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Fields, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Fields::from(Value::Array(items)))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Fields, E> {
        Ok(Fields::from(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Fields, E> {
        Ok(Fields::from(Value::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Fields, E> {
        Ok(Fields::from(Value::from(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Fields, E> {
        Ok(Fields::from(
            Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }

    fn visit_str<E>(self, v: &str) -> Result<Fields, E> {
        Ok(Fields::from(Value::String(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Fields, E> {
        Ok(Fields::from(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<Fields, E> {
        Ok(Fields::from(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Fields, E> {
        Ok(Fields::from(Value::Null))
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Fields, D::Error> {
        serde::Deserialize::deserialize(deserializer)
    }
}

impl Fast for Fields {
    fn fast(scanner: &mut Scanner<'_>) -> Option<Self> {
        if !scanner.at(b'{') {
            return Some(Self(Repr::Other(Box::new(scanner.value()?))));
        }
        scanner.eat(b'{')?;
        let members = scanner.collect(b'}', |scanner| {
            let key = Text::from(scanner.key()?);
            // Strings, the documented case, directly; anything else through serde_json.
            let value = match scanner.at(b'"') {
                true => Value::String(scanner.string()?.into_owned()),
                false => scanner.value()?,
            };
            Some((key, value))
        })?;
        Some(Self::object(members))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_key_sent_twice_keeps_its_first_place_and_last_value_in_short_and_long_objects() {
        for len in [3usize, 40] {
            let mut text = String::from("{");
            for i in 0..len {
                text.push_str(&format!("\"k{i}\": {i}, "));
            }
            text.push_str("\"k1\": \"last\"}");
            let fields: Fields = serde_json::from_str(&text).unwrap();
            assert_eq!(fields.len(), len);
            assert_eq!(fields.keys().nth(1), Some("k1"));
            assert_eq!(fields["k1"], "last");
            let mut scanner = Scanner::new(&text);
            assert_eq!(Fields::fast(&mut scanner), Some(fields));
        }
    }

    #[test]
    fn converts_to_and_from_values_and_compares_with_them() {
        for value in [
            json!({"b": 1, "a": [true, null]}),
            json!([1, 2]),
            json!("text"),
            json!(null),
            json!(1.5),
            json!({}),
        ] {
            let fields = Fields::from(value.clone());
            assert_eq!(fields, value);
            assert_eq!(fields.to_value(), value);
            assert_eq!(serde_json::to_value(&fields).unwrap(), value);
            assert_eq!(Value::from(fields), value);
        }
        assert_ne!(Fields::from(json!({"a": 1})), json!({"a": 2}));
        assert_ne!(Fields::from(json!({"a": 1})), json!([1]));
        assert!(Fields::default().is_object() && Fields::default().is_empty());
    }

    #[test]
    fn debug_shows_keys_never_values() {
        let fields = Fields::from(json!({"birthday": "1224", "creditnumber": "1234"}));
        let shown = format!("{fields:?}");
        assert!(shown.contains("birthday") && shown.contains("creditnumber"));
        assert!(
            !shown.contains("1224") && !shown.contains("1234"),
            "{shown}"
        );
        let other = format!("{:?}", Fields::from(json!("+8612345678")));
        assert!(!other.contains("+8612345678"), "{other}");
    }
}
