//! The check trait, and what a check answers.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use http::StatusCode;
use http::request::Parts;

/// Decides whether a request may post a notification, from its head alone.
///
/// Any `Fn(&Parts) -> Result<(), Denied> + Send + Sync + 'static` is a check.
pub trait Authorize: Send + Sync + 'static {
    /// `Ok` lets the request through; a [`Denied`] answers it.
    ///
    /// # Errors
    /// A [`Denied`] with the status (401 or 403) and a reason that holds no secret.
    fn authorize(&self, request: &Parts) -> Result<(), Denied>;
}

impl<F> Authorize for F
where
    F: Fn(&Parts) -> Result<(), Denied> + Send + Sync + 'static,
{
    fn authorize(&self, request: &Parts) -> Result<(), Denied> {
        self(request)
    }
}

impl Authorize for Arc<dyn Authorize> {
    fn authorize(&self, request: &Parts) -> Result<(), Denied> {
        (**self).authorize(request)
    }
}

/// A refused request: 401 (no or wrong credentials) or 403 (not from an allowed address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    status: StatusCode,
    reason: Cow<'static, str>,
}

impl Denied {
    /// 401: the request carries no valid credentials. The reason is sent to the client: never
    /// put a secret in it.
    pub fn unauthorized(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            reason: reason.into(),
        }
    }

    /// 403: the request may not come from where it comes from.
    pub fn forbidden(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            reason: reason.into(),
        }
    }

    /// The status of the answer.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Why, as sent to the client.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Denied {}

/// A check that could not be configured: no secret, an empty secret, a bad CIDR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfigError {
    message: String,
}

impl AuthConfigError {
    pub(super) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for AuthConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AuthConfigError {}
