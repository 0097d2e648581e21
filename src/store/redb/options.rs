//! How the embedded store is opened.

use crate::store::RefusedBodyLimits;

/// How the embedded store is opened; see
/// [`RedbStore::open_with`](crate::store::RedbStore::open_with).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedbOptions {
    pub(super) cache_size: usize,
    pub(super) rejected: RefusedBodyLimits,
}

impl RedbOptions {
    /// The default page cache: 8 MiB, what a small VM can spare. redb's own default, 1 GiB,
    /// is slowly filled by the keys of a 24-hour de-duplication window.
    pub const DEFAULT_CACHE_SIZE: usize = 8 * 1024 * 1024;

    /// The most memory redb's page cache may hold, in bytes (default
    /// [`DEFAULT_CACHE_SIZE`](Self::DEFAULT_CACHE_SIZE)).
    #[must_use]
    pub fn cache_size(mut self, bytes: usize) -> Self {
        self.cache_size = bytes;
        self
    }

    /// How much of the refused bodies to keep (default [`RefusedBodyLimits::default`]: 64 MiB in
    /// all, 7 days each). Applied at open too: lowered limits drop what they no longer allow.
    #[must_use]
    pub fn keep_rejected(mut self, limits: RefusedBodyLimits) -> Self {
        self.rejected = limits;
        self
    }
}

impl Default for RedbOptions {
    fn default() -> Self {
        Self {
            cache_size: Self::DEFAULT_CACHE_SIZE,
            rejected: RefusedBodyLimits::default(),
        }
    }
}
