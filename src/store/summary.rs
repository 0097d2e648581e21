//! A store's numbers, for gauges and probes.

use std::time::SystemTime;

/// What a store holds and how it is, in numbers: what
/// [`Store::summary`](crate::store::Store::summary) answers, for gauges and probes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreSummary {
    /// Pending records: stored, not handled yet.
    pub pending: u64,
    /// Dead letters.
    pub dead_letters: u64,
    /// When the oldest pending record arrived.
    pub oldest_pending: Option<SystemTime>,
    /// How many times the store recovered from a fault by itself (the embedded store's
    /// reopens; 0 for a store that does not).
    pub recoveries: u64,
    /// Whether the store is down and recovering.
    pub recovering: bool,
}

impl StoreSummary {
    /// A summary (for a [`Store`](crate::store::Store) implementation).
    pub fn new(pending: u64, dead_letters: u64, oldest_pending: Option<SystemTime>) -> Self {
        Self {
            pending,
            dead_letters,
            oldest_pending,
            ..Self::default()
        }
    }

    /// With the store's recoveries and whether it is recovering now.
    pub fn with_recovery(mut self, recoveries: u64, recovering: bool) -> Self {
        self.recoveries = recoveries;
        self.recovering = recovering;
        self
    }
}
