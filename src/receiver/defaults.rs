//! The defaults of every [`ReceiverBuilder`](super::ReceiverBuilder) setting, in one place.

use std::time::Duration;

/// The body limit: 32 MiB, room for a 10,000-call notification (about 17 MiB).
pub const BODY_LIMIT: usize = 32 * 1024 * 1024;
/// How long a body may take to arrive once the head is in.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request head (target and headers).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// The cap on the bytes of the bodies held at once, across requests.
pub const MAX_BYTES_IN_FLIGHT: usize = 256 * 1024 * 1024;
/// How many handler calls run at once.
pub const WORKERS: usize = 4;
/// How many notifications wait for a worker before the receiver answers 503.
pub const QUEUE_CAPACITY: usize = 1024;
/// How long one handler attempt may run (memory and durable acks).
pub const HANDLER_TIMEOUT: Duration = Duration::from_secs(300);
/// The `Retry-After` of 503 answers: the sender retries every minute anyway.
pub const RETRY_AFTER: Duration = Duration::from_secs(60);
/// How long a durable receiver remembers a handled notification's key.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// How long a durable receiver keeps a handled notification, to be found and replayed.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often the gauges are sampled (feature `metrics`).
pub const METRICS_INTERVAL: Duration = Duration::from_secs(5);
