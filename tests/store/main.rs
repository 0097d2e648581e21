//! The durable receiver and its store: the ack after the write, the store as the queue, a disk's
//! bad day, SIGKILLed processes, and the PostgreSQL store.

#[path = "../support/mod.rs"]
mod support;

#[cfg(feature = "postgres")]
mod completion;
mod crash;
mod durable;
mod faults;
#[cfg(feature = "postgres")]
mod once;
mod ordered;
#[cfg(feature = "postgres")]
mod postgres;
mod queue;
