//! The embedded store: a redb file, and a folder of the refused bodies' files, written by one
//! thread that commits in groups.
//!
//! ```text
//! <dir>/airudder.redb    notifications (metadata and bodies apart, indexed by due time and by
//!                        finish time: format.rs), de-duplication keys, paused kinds, refused
//!                        bodies' headers, counters
//! <dir>/rejected/<id>    one refused body's bytes, as received (bodies.rs)
//! ```

mod bodies;
mod format;
mod migrate;
mod options;
#[cfg(test)]
mod queue_tests;
mod reads;
mod recovery;
mod rejected;
mod shared;
mod store;
mod tables;
mod writer;

pub use self::options::RedbOptions;
pub use self::store::RedbStore;
