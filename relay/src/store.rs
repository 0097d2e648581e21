//! The store behind the relay: the embedded one, PostgreSQL, or none (the memory and
//! "handled" acks keep nothing).

use std::sync::Arc;
use std::time::Duration;

use airudder_webhook::store::{ErasedStore, PostgresStore, RedbStore, Store};

/// The store the receivers write to, as opened.
#[derive(Clone)]
pub(crate) enum Backend {
    Redb(RedbStore),
    Postgres(PostgresStore),
    /// The memory and "handled" acks keep nothing.
    Nothing,
}

impl Backend {
    /// Whether the store answers now: the embedded one is not recovering from an I/O error;
    /// PostgreSQL answers a read by key within 2 s.
    pub(crate) async fn answers(&self) -> bool {
        match self {
            Self::Redb(store) => !store.is_recovering(),
            Self::Postgres(store) => matches!(
                tokio::time::timeout(Duration::from_secs(2), Store::get(store, 0)).await,
                Ok(Ok(_))
            ),
            Self::Nothing => true,
        }
    }

    /// Which store it is, as the console shows it.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Redb(_) => "redb",
            Self::Postgres(_) => "postgres",
            Self::Nothing => "none",
        }
    }

    /// The same store, type-erased, for the admin API; `None` without one.
    pub(crate) fn erased(&self) -> Option<Arc<dyn ErasedStore>> {
        match self {
            Self::Redb(store) => Some(Arc::new(store.clone())),
            Self::Postgres(store) => Some(Arc::new(store.clone())),
            Self::Nothing => None,
        }
    }
}
