//! Forwarding, as real processes: signed deliveries, retries on time, the operator's tools, the
//! metrics, ordered delivery per key, and several relays on one PostgreSQL.

#[path = "../common/mod.rs"]
mod common;
#[path = "../../../tests/support/ports.rs"]
mod ports;
#[path = "../../../tests/support/postgres.rs"]
#[allow(dead_code)]
mod postgres;

mod console_api;
mod forward;
mod metrics;
mod on_time;
mod operations;
mod ordered;
mod rehearse;
mod several_relays;
