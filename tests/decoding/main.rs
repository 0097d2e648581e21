//! What is read from a body and what is kept of it: the task notification's model, Airudder's
//! other callbacks, and personal data kept out of logs and error bodies.
//!
//! `personal_data` installs a global TRACE subscriber and reads every line it keeps: it lives
//! here, beside tests that log next to nothing, so that other tests' lines don't answer for it.

#[path = "../support/mod.rs"]
mod support;

mod model;
mod personal_data;
mod siblings;
