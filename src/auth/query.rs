//! A token in a query parameter.

use std::borrow::Cow;

use http::request::Parts;

use super::secret::Secrets;
use super::{AuthConfigError, Authorize, Denied, Secret};

/// A secret token in a query parameter: `POST /airudder/task?token=…` (name configurable).
#[derive(Debug, Clone)]
pub struct QueryToken {
    param: Cow<'static, str>,
    secrets: Secrets,
}

impl QueryToken {
    /// Accepts any of `secrets` in the `token` query parameter.
    ///
    /// # Errors
    /// When `secrets` is empty or holds an empty secret.
    pub fn new<I>(secrets: I) -> Result<Self, AuthConfigError>
    where
        I: IntoIterator,
        I::Item: Into<Secret>,
    {
        Ok(Self {
            param: Cow::Borrowed("token"),
            secrets: Secrets::new(secrets, "QueryToken")?,
        })
    }

    /// Reads the token from this query parameter instead of `token`.
    #[must_use]
    pub fn param(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.param = name.into();
        self
    }
}

impl Authorize for QueryToken {
    fn authorize(&self, request: &Parts) -> Result<(), Denied> {
        let query = request.uri.query().unwrap_or_default();
        let mut tokens = form_urlencoded::parse(query.as_bytes())
            .filter(|(name, _)| *name == *self.param)
            .map(|(_, value)| value);
        match (tokens.next(), tokens.next()) {
            (Some(token), None) if self.secrets.matches(token.as_bytes()) => Ok(()),
            (None, _) => Err(Denied::unauthorized("the token query parameter is missing")),
            _ => Err(Denied::unauthorized("the token is not valid")),
        }
    }
}
