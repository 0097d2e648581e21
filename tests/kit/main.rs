//! What a user runs first: the examples as child processes, and the test kit (`test_util`).
//!
//! `cargo test` builds the examples before it runs this binary.

#[path = "../support/mod.rs"]
mod support;

mod examples;
#[cfg(feature = "test-util")]
mod test_kit;
