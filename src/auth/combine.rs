//! Checks combined: all of them, or any of them.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;

use super::{Authorize, Denied};

/// Lets a request in only when every check does. The first refusal answers.
#[derive(Clone, Default)]
pub struct AllOf(Vec<Arc<dyn Authorize>>);

impl AllOf {
    /// No check yet (which lets everything in: add at least one).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check.
    #[must_use]
    pub fn and(mut self, check: impl Authorize) -> Self {
        self.0.push(Arc::new(check));
        self
    }
}

impl Authorize for AllOf {
    fn authorize(&self, request: &Parts) -> Result<(), Denied> {
        self.0.iter().try_for_each(|check| check.authorize(request))
    }
}

impl fmt::Debug for AllOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AllOf({} checks)", self.0.len())
    }
}

/// Lets a request in when any check does. When all refuse, the first refusal answers.
#[derive(Clone, Default)]
pub struct AnyOf(Vec<Arc<dyn Authorize>>);

impl AnyOf {
    /// No check yet (which lets nothing in: add at least one).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an alternative.
    #[must_use]
    pub fn or(mut self, check: impl Authorize) -> Self {
        self.0.push(Arc::new(check));
        self
    }
}

impl Authorize for AnyOf {
    fn authorize(&self, request: &Parts) -> Result<(), Denied> {
        let mut first = None;
        for check in &self.0 {
            match check.authorize(request) {
                Ok(()) => return Ok(()),
                Err(denied) => {
                    first.get_or_insert(denied);
                }
            }
        }
        Err(first.unwrap_or_else(|| Denied::unauthorized("no credentials are accepted")))
    }
}

impl fmt::Debug for AnyOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AnyOf({} checks)", self.0.len())
    }
}
