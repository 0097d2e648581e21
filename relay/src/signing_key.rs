//! The Standard Webhooks key the relay signs its forwards with (`AIRUDDER_FORWARD_SECRET`):
//! `whsec_` and the key in base64. `airudder-relay secret` makes one.

use std::fmt;
use std::process::ExitCode;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The fewest bytes of key accepted, and the number `secret` makes is [`MADE_BYTES`].
const MIN_BYTES: usize = 24;
/// 256 bits, as Standard Webhooks' own libraries make.
const MADE_BYTES: usize = 32;

/// A decoded signing key; its `Debug` shows no byte of it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SigningKey(Vec<u8>);

impl SigningKey {
    /// A fresh random key, from the operating system's generator (through ring).
    fn generate() -> Result<Self, String> {
        let mut key = vec![0; MADE_BYTES];
        rustls::crypto::ring::default_provider()
            .secure_random
            .fill(&mut key)
            .map_err(|_| "the operating system gave no random bytes".to_owned())?;
        Ok(Self(key))
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl std::str::FromStr for SigningKey {
    type Err = String;

    /// The message never repeats the text: it is a secret, or most of one.
    fn from_str(text: &str) -> Result<Self, String> {
        text.trim()
            .strip_prefix("whsec_")
            .and_then(|encoded| STANDARD.decode(encoded).ok())
            .filter(|key| key.len() >= MIN_BYTES)
            .map(Self)
            .ok_or_else(|| {
                "is not a Standard Webhooks key: `whsec_` and at least 24 bytes in base64 \
                 (make one with `airudder-relay secret`)"
                    .to_owned()
            })
    }
}

impl fmt::Display for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "whsec_{}", STANDARD.encode(&self.0))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

/// `airudder-relay secret`: prints a fresh key on stdout.
pub(crate) fn print_new() -> ExitCode {
    match SigningKey::generate() {
        Ok(key) => {
            println!("{key}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("airudder-relay: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_made_key_reads_back_and_two_differ() {
        let key = SigningKey::generate().unwrap();
        let text = key.to_string();
        assert!(text.starts_with("whsec_") && text.len() == 6 + 44, "{text}");
        assert_eq!(text.parse::<SigningKey>().unwrap(), key);
        assert_ne!(SigningKey::generate().unwrap(), key);
        assert_eq!(format!("{key:?}"), "SigningKey(..)");
    }

    #[test]
    fn a_short_or_unprefixed_key_is_refused_without_repeating_it() {
        for text in [
            "s3cret",
            "whsec_c2hvcnQ=",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ] {
            let err = text.parse::<SigningKey>().unwrap_err();
            assert!(err.starts_with("is not a Standard Webhooks key") && !err.contains(text));
        }
        let key: SigningKey = " whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n".parse().unwrap();
        assert_eq!(key.into_bytes().len(), 24);
    }
}
