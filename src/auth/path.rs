//! A token as the last path segment.

use std::borrow::Cow;

use http::request::Parts;

use super::secret::Secrets;
use super::{AuthConfigError, Authorize, Denied, Secret};

/// A secret token as the last path segment: mount the receiver at `/airudder/task/{token}`.
#[derive(Debug, Clone)]
pub struct PathToken {
    secrets: Secrets,
}

impl PathToken {
    /// Accepts any of `secrets` as the last segment of the path.
    ///
    /// # Errors
    /// When `secrets` is empty or holds an empty secret.
    pub fn new<I>(secrets: I) -> Result<Self, AuthConfigError>
    where
        I: IntoIterator,
        I::Item: Into<Secret>,
    {
        Ok(Self {
            secrets: Secrets::new(secrets, "PathToken")?,
        })
    }
}

impl Authorize for PathToken {
    fn authorize(&self, request: &Parts) -> Result<(), Denied> {
        let segment = request.uri.path().rsplit('/').next().unwrap_or_default();
        let segment = percent_decode(segment);
        if self.secrets.matches(segment.as_bytes()) {
            Ok(())
        } else {
            Err(Denied::unauthorized("the token is not valid"))
        }
    }
}

fn percent_decode(segment: &str) -> Cow<'_, str> {
    if !segment.contains('%') {
        return Cow::Borrowed(segment);
    }
    // form_urlencoded also turns '+' into a space; a path keeps it.
    let escaped = segment.replace('+', "%2B");
    let decoded: String = form_urlencoded::parse(format!("t={escaped}").as_bytes())
        .map(|(_, value)| value.into_owned())
        .collect();
    Cow::Owned(decoded)
}
