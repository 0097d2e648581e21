//! The relay's door and its set-up, as real processes: what it accepts and refuses, its
//! configuration, its probes, the deployment files and the Python receiver of the README.

#[path = "../common/mod.rs"]
mod common;
#[path = "../../../tests/support/ports.rs"]
mod ports;

mod callbacks;
mod config;
mod deploy;
mod monitoring;
mod probe;
mod python;
