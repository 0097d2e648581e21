//! HTTP Basic authentication.

use base64::Engine;
use http::header;
use http::request::Parts;

use super::secret::Secrets;
use super::{AuthConfigError, Authorize, Denied, Secret};

/// HTTP Basic authentication (`Authorization: Basic …`) against user and password pairs.
#[derive(Debug, Clone)]
pub struct BasicAuth {
    // "user:password" as sent, so one constant-time comparison covers both.
    credentials: Secrets,
}

impl BasicAuth {
    /// Accepts any of the `(user, password)` pairs.
    ///
    /// # Errors
    /// When `users` is empty, or a user holds `:` or is empty, or a password is empty.
    pub fn new<I, U, P>(users: I) -> Result<Self, AuthConfigError>
    where
        I: IntoIterator<Item = (U, P)>,
        U: Into<String>,
        P: Into<String>,
    {
        let mut credentials = Vec::new();
        for (user, password) in users {
            let (user, password) = (user.into(), password.into());
            if user.is_empty() || user.contains(':') || password.is_empty() {
                return Err(AuthConfigError::new(
                    "BasicAuth: a user is empty or holds ':', or a password is empty",
                ));
            }
            credentials.push(Secret::new(format!("{user}:{password}")));
        }
        Ok(Self {
            credentials: Secrets::new(credentials, "BasicAuth")?,
        })
    }
}

impl Authorize for BasicAuth {
    fn authorize(&self, request: &Parts) -> Result<(), Denied> {
        let value = request
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        let encoded = match value.and_then(|v| v.get(..6).map(|scheme| (scheme, &v[6..]))) {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"basic ") => rest.trim_ascii(),
            _ => return Err(Denied::unauthorized("expected Authorization: Basic")),
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| Denied::unauthorized("the Basic credentials are not base64"))?;
        if self.credentials.matches(&decoded) {
            Ok(())
        } else {
            Err(Denied::unauthorized("the user or password is not valid"))
        }
    }
}
