//! Code generation for the wire types.
//!
//! A derive with `#[serde(flatten)]` would buffer every member before matching it, and an
//! `Option` cannot tell an absent member from a `null` one. These macros generate a map visitor
//! that matches keys in place, keeps unknown members, and remembers explicit nulls, so that every
//! accepted body serializes back to an equal JSON value.

/// The Rust type of a field of each kind.
macro_rules! wire_field_type {
    (required $ty:ty) => { $ty };
    (nullable $ty:ty) => { Option<$ty> };
    (optional $ty:ty) => { Option<$ty> };
}

/// What the visitor reads for a field of each kind.
macro_rules! wire_slot_type {
    (required $ty:ty) => { $ty };
    (nullable $ty:ty) => { Option<$ty> };
    (optional $ty:ty) => { Option<$ty> };
}

/// Turns the visitor's slot into the field's value, or reports a missing member.
macro_rules! wire_finish {
    (required, $slot:ident, $wire:literal, $nulls:ident, $bit:expr, $err:ty) => {
        match $slot {
            Some(value) => value,
            None => return Err(<$err as serde::de::Error>::missing_field($wire)),
        }
    };
    (nullable, $slot:ident, $wire:literal, $nulls:ident, $bit:expr, $err:ty) => {
        match $slot {
            Some(value) => value,
            None => return Err(<$err as serde::de::Error>::missing_field($wire)),
        }
    };
    (optional, $slot:ident, $wire:literal, $nulls:ident, $bit:expr, $err:ty) => {
        match $slot {
            Some(Some(value)) => Some(value),
            Some(None) => {
                $nulls |= $bit;
                None
            }
            None => None,
        }
    };
}

/// Reads one field's value on the fast path; `None` from `?` hands the body to serde_json.
macro_rules! wire_fast_slot {
    (required $ty:ty, $scanner:ident) => {
        <$ty as $crate::model::fast::Fast>::fast($scanner)?
    };
    (nullable $ty:ty, $scanner:ident) => {
        match $scanner.null() {
            true => None,
            false => Some(<$ty as $crate::model::fast::Fast>::fast($scanner)?),
        }
    };
    (optional $ty:ty, $scanner:ident) => {
        wire_fast_slot!(nullable $ty, $scanner)
    };
}

/// [`wire_finish!`] for the fast path: a missing member hands the body to serde_json.
macro_rules! wire_fast_finish {
    (required, $slot:ident, $nulls:ident, $bit:expr) => {
        $slot?
    };
    (nullable, $slot:ident, $nulls:ident, $bit:expr) => {
        $slot?
    };
    (optional, $slot:ident, $nulls:ident, $bit:expr) => {
        // An optional member cannot be missing: the serde path's arm never uses the error.
        wire_finish!(optional, $slot, "", $nulls, $bit, ())
    };
}

/// Writes one field, leaving out an absent optional member.
macro_rules! wire_serialize {
    (required, $map:ident, $value:expr, $wire:literal, $was_null:expr) => {
        serde::ser::SerializeMap::serialize_entry(&mut $map, $wire, $value)?
    };
    (nullable, $map:ident, $value:expr, $wire:literal, $was_null:expr) => {
        serde::ser::SerializeMap::serialize_entry(&mut $map, $wire, $value)?
    };
    (optional, $map:ident, $value:expr, $wire:literal, $was_null:expr) => {
        match $value {
            Some(value) => serde::ser::SerializeMap::serialize_entry(&mut $map, $wire, value)?,
            None if $was_null => serde::ser::SerializeMap::serialize_entry(&mut $map, $wire, &())?,
            None => {}
        }
    };
}

/// A JSON object of the contract: known members as typed fields, the rest kept in `extra`.
///
/// Field kinds: `required` (present, not null), `nullable` (present, may be null) and
/// `optional` (may be absent or null).
macro_rules! wire_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident expecting $expecting:literal {
            $(
                $(#[$fmeta:meta])*
                $kind:ident $field:ident : $ty:ty = $wire:literal,
            )*
        }
    ) => {
        $(#[$meta])*
        #[non_exhaustive]
        pub struct $name {
            $(
                $(#[$fmeta])*
                pub $field: wire_field_type!($kind $ty),
            )*
            /// Members the contract does not name, kept verbatim and serialized again.
            pub extra: serde_json::Map<String, serde_json::Value>,
            // Bit i set: the i-th member of `WIRE_NAMES` was sent as an explicit `null`.
            explicit_nulls: u32,
        }

        impl $name {
            const WIRE_NAMES: &'static [&'static str] = &[$($wire),*];

            /// `WIRE_NAMES` as the fast path compares them, quoted, a word at a time.
            const WIRE_KEYS: &'static [$crate::model::fast::Key] =
                &[$($crate::model::fast::Key::new($wire)),*];

            /// The position of a wire name in `WIRE_NAMES`.
            const fn index(wire: &str) -> usize {
                let mut i = 0;
                while i < Self::WIRE_NAMES.len() {
                    if $crate::model::macros::const_str_eq(Self::WIRE_NAMES[i], wire) {
                        return i;
                    }
                    i += 1;
                }
                usize::MAX
            }

            const fn null_bit(wire: &str) -> u32 {
                match Self::index(wire) {
                    usize::MAX => 0,
                    i => 1 << i,
                }
            }

            /// Whether the member with this wire name was sent as an explicit JSON `null`
            /// (as opposed to left out).
            pub fn was_null(&self, wire_name: &str) -> bool {
                let bit = Self::null_bit(wire_name);
                bit != 0 && self.explicit_nulls & bit != 0
            }
        }

        const _: () = assert!($name::WIRE_NAMES.len() <= 32, "explicit_nulls holds 32 bits");

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D>(deserializer: D) -> Result<Self, D::Error>
            where
                D: serde::Deserializer<'de>,
            {
                struct Visitor;

                impl<'de> serde::de::Visitor<'de> for Visitor {
                    type Value = $name;

                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str($expecting)
                    }

                    fn visit_map<A>(self, mut map: A) -> Result<$name, A::Error>
                    where
                        A: serde::de::MapAccess<'de>,
                    {
                        $( let mut $field: Option<wire_slot_type!($kind $ty)> = None; )*
                        let mut extra = serde_json::Map::new();
                        #[allow(unused_mut)]
                        let mut explicit_nulls = 0u32;
                        while let Some(key) = map.next_key::<$crate::model::macros::WireKey<'de>>()? {
                            match key.as_str() {
                                $(
                                    $wire => {
                                        if $field.is_some() {
                                            return Err(<A::Error as serde::de::Error>::duplicate_field($wire));
                                        }
                                        $field = Some(map.next_value()?);
                                    }
                                )*
                                _ => {
                                    let value: serde_json::Value = map.next_value()?;
                                    let key = key.into_string();
                                    if extra.contains_key(&key) {
                                        return Err(<A::Error as serde::de::Error>::custom(
                                            format_args!("duplicate field `{key}`"),
                                        ));
                                    }
                                    extra.insert(key, value);
                                }
                            }
                        }
                        $(
                            let $field = wire_finish!(
                                $kind, $field, $wire, explicit_nulls, $name::null_bit($wire), A::Error
                            );
                        )*
                        Ok($name { $($field,)* extra, explicit_nulls })
                    }
                }

                deserializer.deserialize_map(Visitor)
            }
        }

        impl $crate::model::fast::Fast for $name {
            fn fast(scanner: &mut $crate::model::fast::Scanner<'_>) -> Option<Self> {
                $( let mut $field: Option<wire_slot_type!($kind $ty)> = None; )*
                let mut extra = serde_json::Map::new();
                #[allow(unused_mut)]
                let mut explicit_nulls = 0u32;
                let mut more = scanner.begin_object()?;
                // The sender writes members in one order: try the one after the last first.
                let mut next = 0;
                while more {
                    let expected = Self::WIRE_KEYS.get(next);
                    let (at, key) = if let Some(expected) = expected
                        && scanner.key_is(expected)?
                    {
                        (next, Self::WIRE_NAMES[next])
                    } else {
                        let key = scanner.key()?;
                        let at = Self::WIRE_NAMES
                            .iter()
                            .position(|&name| name == key)
                            .unwrap_or(usize::MAX);
                        (at, key)
                    };
                    next = at.wrapping_add(1);
                    match at {
                        $(
                            at if at == const { $name::index($wire) } => {
                                if $field.is_some() {
                                    return None;
                                }
                                $field = Some(wire_fast_slot!($kind $ty, scanner));
                            }
                        )*
                        _ => {
                            let value = scanner.value()?;
                            if extra.contains_key(key) {
                                return None;
                            }
                            extra.insert(key.to_owned(), value);
                        }
                    }
                    more = scanner.next_member()?;
                }
                $(
                    let $field = wire_fast_finish!(
                        $kind, $field, explicit_nulls, $name::null_bit($wire)
                    );
                )*
                Some($name { $($field,)* extra, explicit_nulls })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S>(&self, serializer: S) -> Result<S::Ok, S::Error>
            where
                S: serde::Serializer,
            {
                let mut map = serializer.serialize_map(None)?;
                $(
                    wire_serialize!(
                        $kind, map, &self.$field, $wire,
                        self.explicit_nulls & $name::null_bit($wire) != 0
                    );
                )*
                for (key, value) in &self.extra {
                    serde::ser::SerializeMap::serialize_entry(&mut map, key, value)?;
                }
                serde::ser::SerializeMap::end(map)
            }
        }
    };
}

/// A string enum of the contract: the documented values as variants, anything else verbatim.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $wire:literal,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $(
                $(#[$vmeta])*
                $variant,
            )*
            /// A value the contract does not document, kept verbatim.
            Other(String),
        }

        impl $name {
            /// The value as it is sent on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )*
                    Self::Other(value) => value,
                }
            }

            /// Reads a wire value; an undocumented one becomes [`Self::Other`].
            pub fn from_wire(value: &str) -> Self {
                match value {
                    $( $wire => Self::$variant, )*
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self::from_wire(value)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S>(&self, serializer: S) -> Result<S::Ok, S::Error>
            where
                S: serde::Serializer,
            {
                serializer.serialize_str(self.as_str())
            }
        }

        impl $crate::model::fast::Fast for $name {
            #[inline]
            fn fast(scanner: &mut $crate::model::fast::Scanner<'_>) -> Option<Self> {
                scanner.string().map(|value| match value {
                    std::borrow::Cow::Borrowed(value) => $name::from_wire(value),
                    std::borrow::Cow::Owned(value) => match $name::from_wire(&value) {
                        $name::Other(_) => $name::Other(value),
                        known => known,
                    },
                })
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D>(deserializer: D) -> Result<Self, D::Error>
            where
                D: serde::Deserializer<'de>,
            {
                struct Visitor;

                impl serde::de::Visitor<'_> for Visitor {
                    type Value = $name;

                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a string")
                    }

                    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<$name, E> {
                        Ok($name::from_wire(value))
                    }

                    fn visit_string<E: serde::de::Error>(self, value: String) -> Result<$name, E> {
                        Ok(match $name::from_wire(&value) {
                            $name::Other(_) => $name::Other(value),
                            known => known,
                        })
                    }
                }

                deserializer.deserialize_str(Visitor)
            }
        }
    };
}

/// An object key, borrowed from the body when it holds no escape.
pub(crate) struct WireKey<'de>(std::borrow::Cow<'de, str>);

impl WireKey<'_> {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn into_string(self) -> String {
        self.0.into_owned()
    }
}

impl<'de> serde::Deserialize<'de> for WireKey<'de> {
    fn deserialize<D>(deserializer: D) -> Result<Self, D::Error>
    where
        D: serde::Deserializer<'de>,
    {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = WireKey<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object key")
            }

            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(WireKey(std::borrow::Cow::Borrowed(v)))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(WireKey(std::borrow::Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(WireKey(std::borrow::Cow::Owned(v)))
            }
        }

        deserializer.deserialize_str(Visitor)
    }
}

pub(crate) const fn const_str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}
