//! The relay under load, as real processes: a backlog bigger than its memory, floods of
//! connections, a rate cap held over 30 s, and two relays draining 100,000 notifications.
//!
//! Each test takes [`ALONE`] first: they share the machine's cores and this process' files,
//! and each one's load would skew the others' timing.

#[path = "../common/mod.rs"]
mod common;
#[path = "../../../tests/support/ports.rs"]
mod ports;
#[path = "../../../tests/support/postgres.rs"]
#[allow(dead_code)]
mod postgres;

mod backlog;
mod door;
mod rate;
mod shared_backlog;

/// One test of this binary at a time.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
