//! Which deliveries may complete in the handler's own transaction: those of the records a
//! PostgreSQL store claimed (feature `postgres`).

#[cfg(feature = "postgres")]
use std::sync::Arc;

use super::{RecordId, Store};
use crate::handler::Delivery;

/// Gives each delivery of a stored record what it needs to complete in the handler's
/// transaction when the receiver's store is a `PostgresStore`; nothing otherwise (and nothing
/// at all without the feature, where it has no size).
#[derive(Clone, Default)]
pub(crate) struct Claims {
    #[cfg(feature = "postgres")]
    claimant: Option<Arc<super::postgres::Claimant>>,
}

impl Claims {
    /// The claims of `store`: a `PostgresStore`'s, given to a receiver as itself (a store
    /// behind another type, `Arc<dyn ErasedStore>` included, gives none).
    #[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
    pub(crate) fn of<S: Store>(store: &S) -> Self {
        Self {
            #[cfg(feature = "postgres")]
            claimant: (store as &dyn std::any::Any)
                .downcast_ref::<super::PostgresStore>()
                .map(super::PostgresStore::claimant),
        }
    }

    /// `delivery`, of record `id`, able to complete in the handler's transaction if the store
    /// allows it.
    #[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
    pub(crate) fn stamp<E>(&self, delivery: Delivery<E>, id: RecordId) -> Delivery<E> {
        #[cfg(feature = "postgres")]
        if let Some(completion) = self.claimant.as_ref().and_then(|c| c.completion(id)) {
            return delivery.completing_with(completion);
        }
        delivery
    }
}
