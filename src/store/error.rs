//! What a store reports when it cannot do what was asked.

use std::fmt;

/// A store that could not do what was asked.
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    source: Option<crate::BoxError>,
}

/// The class of a [`StoreError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The storage failed: I/O, disk full, read-only, a lock held by another process.
    Unavailable,
    /// A record or the file is corrupt: reported, never skipped.
    Corrupt,
    /// No record has this id (or it is not in a state that allows the operation).
    NotFound,
    /// The store was closed.
    Closed,
    /// A stored body is not a valid notification (it became a dead letter).
    Invalid,
}

impl StoreError {
    /// A new error of this kind, caused by `source`.
    pub fn new(kind: StoreErrorKind, source: impl Into<crate::BoxError>) -> Self {
        Self {
            kind,
            source: Some(source.into()),
        }
    }

    pub(crate) fn bare(kind: StoreErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// The class of the error.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            StoreErrorKind::Unavailable => "the store is unavailable",
            StoreErrorKind::Corrupt => "the store holds a corrupt record",
            StoreErrorKind::NotFound => "no such record in that state",
            StoreErrorKind::Closed => "the store is closed",
            StoreErrorKind::Invalid => "the stored body is not a valid notification",
        };
        match &self.source {
            Some(source) => write!(f, "{what}: {source}"),
            None => f.write_str(what),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}
