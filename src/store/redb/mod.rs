//! The embedded store: a redb file, and a folder of the refused bodies' files, written by one
//! thread that commits in groups.
//!
//! ```text
//! <dir>/airudder.redb    notifications, de-duplication keys, refused bodies' headers, counters
//! <dir>/rejected/<id>    one refused body's bytes, as received (bodies.rs)
//! ```

mod bodies;
mod format;
mod options;
mod recovery;
mod rejected;
mod shared;
mod store;
mod writer;

pub use self::options::RedbOptions;
pub use self::store::RedbStore;
