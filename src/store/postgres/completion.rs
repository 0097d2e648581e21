//! Completion in the handler's own transaction: the statement that marks a stored notification
//! handled under its claim, for the handler to run beside its own writes.

use std::fmt;
use std::sync::Arc;

use tokio_postgres::GenericClient;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use crate::store::{RecordId, StoreError, StoreErrorKind};

/// Words the refusal's message starts with (see `Sql::complete_in`).
const REFUSED: &str = "airudder-webhook: notification ";

/// What every completion of one store shares: who claims, and the statement with its table.
pub(crate) struct Claimant {
    owner: Arc<str>,
    sql: String,
}

impl Claimant {
    pub(super) fn new(owner: Arc<str>, sql: String) -> Self {
        Self { owner, sql }
    }

    /// The completion of record `id`, claimed under this store's owner.
    pub(crate) fn completion(self: &Arc<Self>, id: RecordId) -> Option<Completion> {
        Some(Completion {
            id: i64::try_from(id).ok()?,
            claimant: Arc::clone(self),
        })
    }
}

impl fmt::Debug for Claimant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claimant")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// Marks one stored notification handled, inside a transaction of the handler's: the statement
/// and its parameters, for any PostgreSQL driver (feature `postgres`). Given by
/// [`Delivery::completion`](crate::Delivery::completion); with tokio-postgres,
/// [`Delivery::complete_in`](crate::Delivery::complete_in) runs it. See
/// [the store's guide](crate::store#completing-in-your-own-transaction).
///
/// The statement ([`sql`](Self::sql)) takes [`id`](Self::id) as `$1` (`bigint`) and
/// [`owner`](Self::owner) as `$2` (`text`), and returns one row, the id. When the notification
/// is no longer pending under this receiver's claim (handled already, or its lease lapsed and
/// another receiver took it over), the statement itself fails (SQLSTATE `22P02`, a message
/// starting `invalid input syntax for type bigint: "airudder-webhook: notification …`), which
/// aborts the transaction: its writes never land, whatever the caller does next.
///
/// Cloning is cheap.
#[derive(Clone)]
pub struct Completion {
    id: i64,
    claimant: Arc<Claimant>,
}

impl Completion {
    /// The statement, with the store's table written in: `$1` the [`id`](Self::id), `$2` the
    /// [`owner`](Self::owner).
    pub fn sql(&self) -> &str {
        &self.claimant.sql
    }

    /// The notification's record id: the statement's `$1`, a `bigint`.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The owner of the claim this attempt runs under
    /// ([`PostgresStore::owner`](crate::store::PostgresStore::owner)): the statement's `$2`, a
    /// `text`.
    pub fn owner(&self) -> &str {
        &self.claimant.owner
    }

    /// Runs the statement on `client` (see [`Delivery::complete_in`](crate::Delivery::complete_in)).
    pub(crate) async fn run<C>(&self, client: &C) -> Result<(), StoreError>
    where
        C: GenericClient + Sync,
    {
        let owner = self.owner();
        // Typed: one round trip, no statement prepared first.
        let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 2] =
            [(&self.id, Type::INT8), (&owner, Type::TEXT)];
        match client.query_typed(self.sql(), &params).await {
            Ok(rows) if rows.len() == 1 => Ok(()),
            Ok(rows) => Err(StoreError::new(
                StoreErrorKind::Unavailable,
                format!("the completion answered {} rows instead of one", rows.len()),
            )),
            Err(err) => Err(refusal(self.id, &err)
                .unwrap_or_else(|| StoreError::new(StoreErrorKind::Unavailable, err))),
        }
    }
}

/// The refusal of the completion of `id` as [`StoreErrorKind::NotFound`], if `err` is one.
fn refusal(id: i64, err: &tokio_postgres::Error) -> Option<StoreError> {
    let db = err.as_db_error()?;
    let refused =
        *db.code() == SqlState::INVALID_TEXT_REPRESENTATION && db.message().contains(REFUSED);
    refused.then(|| {
        StoreError::new(
            StoreErrorKind::NotFound,
            format!(
                "notification {id} is no longer pending under this receiver's claim (handled \
                 already, or taken over by another receiver): PostgreSQL aborted the transaction"
            ),
        )
    })
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion")
            .field("id", &self.id)
            .field("owner", &self.owner())
            .finish_non_exhaustive()
    }
}
