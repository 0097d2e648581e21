//! Secrets, compared in constant time and never shown.

use std::fmt;

use subtle::ConstantTimeEq;

use super::AuthConfigError;

/// A secret (token or password). Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct Secret(Box<[u8]>);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into().into_bytes().into_boxed_slice())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(secret: &str) -> Self {
        Self::new(secret)
    }
}

impl From<String> for Secret {
    fn from(secret: String) -> Self {
        Self::new(secret)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Several valid secrets, compared in constant time.
#[derive(Clone)]
pub(super) struct Secrets(Vec<Secret>);

impl Secrets {
    pub(super) fn new<I>(secrets: I, what: &str) -> Result<Self, AuthConfigError>
    where
        I: IntoIterator,
        I::Item: Into<Secret>,
    {
        let secrets: Vec<Secret> = secrets.into_iter().map(Into::into).collect();
        if secrets.is_empty() {
            return Err(AuthConfigError::new(format!(
                "{what} needs at least one secret"
            )));
        }
        if secrets.iter().any(Secret::is_empty) {
            return Err(AuthConfigError::new(format!("{what}: a secret is empty")));
        }
        Ok(Self(secrets))
    }

    /// Compares against every secret, without stopping at a match.
    pub(super) fn matches(&self, candidate: &[u8]) -> bool {
        self.0
            .iter()
            .fold(subtle::Choice::from(0), |found, secret| {
                found | secret.0.ct_eq(candidate)
            })
            .into()
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} secret(s)", self.0.len())
    }
}
