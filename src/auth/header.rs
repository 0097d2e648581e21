//! A token in a header, or a bearer token.

use http::request::Parts;
use http::{HeaderName, header};

use super::secret::Secrets;
use super::{AuthConfigError, Authorize, Denied, Secret};

/// A secret token in a header: `X-Webhook-Token: …`, or `Authorization: Bearer …`.
#[derive(Debug, Clone)]
pub struct HeaderToken {
    header: HeaderName,
    bearer: bool,
    secrets: Secrets,
}

impl HeaderToken {
    /// Accepts any of `secrets` as the whole value of `header`.
    ///
    /// # Errors
    /// When `secrets` is empty or holds an empty secret.
    pub fn new<I>(header: HeaderName, secrets: I) -> Result<Self, AuthConfigError>
    where
        I: IntoIterator,
        I::Item: Into<Secret>,
    {
        Ok(Self {
            header,
            bearer: false,
            secrets: Secrets::new(secrets, "HeaderToken")?,
        })
    }

    /// Accepts `Authorization: Bearer <secret>` for any of `secrets`.
    ///
    /// # Errors
    /// When `secrets` is empty or holds an empty secret.
    pub fn bearer<I>(secrets: I) -> Result<Self, AuthConfigError>
    where
        I: IntoIterator,
        I::Item: Into<Secret>,
    {
        Ok(Self {
            header: header::AUTHORIZATION,
            bearer: true,
            secrets: Secrets::new(secrets, "HeaderToken")?,
        })
    }
}

impl Authorize for HeaderToken {
    fn authorize(&self, request: &Parts) -> Result<(), Denied> {
        let mut values = request.headers.get_all(&self.header).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(Denied::unauthorized(
                "the token header is missing or repeated",
            ));
        };
        let value = value.as_bytes();
        let token = if self.bearer {
            match value.get(..7) {
                Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => value[7..].trim_ascii(),
                _ => return Err(Denied::unauthorized("expected Authorization: Bearer")),
            }
        } else {
            value.trim_ascii()
        };
        if self.secrets.matches(token) {
            Ok(())
        } else {
            Err(Denied::unauthorized("the token is not valid"))
        }
    }
}
