//! Forwarding to brokers, as real processes: the relay and each broker server from Debian's
//! packages (`redis-server`, `rabbitmq-server`, `nats-server` with JetStream) on loopback, and
//! a real client of each reading back what was published. Each broker's tests build with its
//! feature (`--features redis`, `amqp`, `nats`; `.ci/test` builds them all).
#![cfg(any(feature = "redis", feature = "amqp", feature = "nats"))]

#[path = "../common/mod.rs"]
mod common;
#[path = "../../../tests/support/ports.rs"]
#[allow(dead_code)]
mod ports;

#[cfg(any(feature = "redis", feature = "amqp", feature = "nats"))]
mod servers;

#[cfg(feature = "amqp")]
mod amqp;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "redis")]
mod redis;
