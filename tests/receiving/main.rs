//! The receiver on the request path: the status table, authentication and hostile input, a
//! real socket, its logs and metrics, several receivers in one app.

#[path = "../support/mod.rs"]
mod support;

mod http;
mod logs;
#[cfg(feature = "metrics")]
mod metrics;
mod security;
mod several;
mod socket;
