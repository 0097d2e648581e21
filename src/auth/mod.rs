//! Authentication: who may post notifications, decided before one byte of the body is read.
//!
//! Airudder signs nothing, and the one thing an integrator configures on its side is the URL.
//! So the check the sender can actually pass is a **secret token in the URL**: a query
//! parameter ([`QueryToken`], `?token=…`) or a path segment ([`PathToken`],
//! `/airudder/task/{token}`). For a proxy in front, or another sender, there are
//! [`HeaderToken`] (including `Authorization: Bearer`) and [`BasicAuth`]; [`IpAllowList`]
//! checks the client address against CIDRs; [`AllOf`] and [`AnyOf`] combine checks; and any
//! `Fn(&Parts) -> Result<(), Denied>` is a check of your own.
//!
//! Every token check takes several secrets at once, so a token can be rotated without losing a
//! notification: add the new one, move the URL on Airudder's side, then drop the old one. Tokens
//! are compared in constant time, and a [`Secret`] never shows in `Debug`, a log line or an
//! error body.
//!
//! A refusal answers 401 (403 for the allow-list) with a JSON body; the body of the request is
//! never read.
//!
//! ```
//! use airudder_webhook::auth::{AnyOf, HeaderToken, IpAllowList, QueryToken};
//!
//! # fn main() -> Result<(), airudder_webhook::auth::AuthConfigError> {
//! // The sender's URL carries ?token=…; during a rotation both tokens are valid.
//! let sender = QueryToken::new(["new-token-7f3a", "old-token-19c2"])?;
//! // An internal replay tool authenticates with a bearer token from the office network.
//! let replay = airudder_webhook::auth::AllOf::new()
//!     .and(HeaderToken::bearer(["replay-token-55d1"])?)
//!     .and(IpAllowList::new(["10.0.0.0/8"])?);
//! let check = AnyOf::new().or(sender).or(replay);
//! # let _ = check;
//! # Ok(())
//! # }
//! ```
//!
//! # The checks
//!
//! | check | how | refusal |
//! | --- | --- | --- |
//! | [`QueryToken::new([secret, …])`](QueryToken::new) | `POST /airudder/task?token=<secret>` (parameter name configurable): **what Airudder can send** | 401 |
//! | [`PathToken::new([secret, …])`](PathToken::new) | `POST /airudder/task/<secret>`; mount at `/airudder/task/{token}` | 401 |
//! | [`HeaderToken::new`], [`HeaderToken::bearer`] | a header, or `Authorization: Bearer`, for a proxy in front or another sender | 401 |
//! | [`BasicAuth::new([(user, password), …])`](BasicAuth::new) | `Authorization: Basic` | 401 |
//! | [`IpAllowList::new([cidr, …])`](IpAllowList::new) | the peer address in IPv4 or IPv6 CIDRs; `Forwarded` / `X-Forwarded-For` believed only from proxies named in [`trust_proxies`](IpAllowList::trust_proxies) | 403 |
//! | [`AllOf`], [`AnyOf`] | combinations | the first refusal |
//! | any `Fn(&Parts) -> Result<(), Denied>` | your own check | yours |
//!
//! The peer address comes from the request's extensions: axum's `ConnectInfo<SocketAddr>`
//! (feature `axum`, serve with `into_make_service_with_connect_info`), tonic's
//! `TcpConnectInfo` (feature `tonic`), or [`PeerAddr`] inserted in a plain hyper accept loop.
//! With no peer address the allow-list refuses. Every check runs before the store is touched:
//! a refused request writes nothing.
//!
//! # Rotating a token without losing a notification
//!
//! Airudder retries a refused notification only 5 times over 5 minutes, so never let the old
//! token stop working before Airudder uses the new one:
//!
//! 1. deploy with both tokens: `QueryToken::new([new, old])`;
//! 2. change the callback URL on Airudder's side to `?token=<new>`;
//! 3. once notifications arrive with the new token, deploy with `QueryToken::new([new])`.
//!
//! # Hostile input and personal data
//!
//! - A slow body times out (408); the body limit holds for chunked bodies without
//!   `Content-Length` (413); nesting deeper than 128 levels is refused without recursion and
//!   invalid UTF-8 is refused (400); the bytes held for notifications are capped across
//!   requests (503 past [`max_bytes_in_flight`](crate::ReceiverBuilder::max_bytes_in_flight),
//!   so a burst of large bodies becomes a retry, not an out-of-memory kill); a request head over
//!   [`max_header_bytes`](crate::ReceiverBuilder::max_header_bytes) is 431. A property test
//!   feeds arbitrary bytes and near-miss notifications to the service: every answer is 200 or
//!   a JSON error.
//! - Phone numbers and customer variables never reach a log line or an error body at any
//!   level: `Debug` of a call masks numbers to their last four characters and shows only the
//!   keys of `variables`; refusal messages name the type, never the value. Only the
//!   [`OnRejected`](crate::OnRejected) hook and the store receive the raw bytes, so that an
//!   operator can recover a refused notification.
//! - Encrypted bodies (Airudder offers AES-encrypted callbacks to some accounts): a
//!   [body hook](crate::ReceiverBuilder::body_hook) decrypts before parsing.

mod basic;
mod check;
mod combine;
mod header;
mod ip;
mod path;
mod query;
mod secret;
#[cfg(test)]
mod tests;

pub use self::basic::BasicAuth;
pub use self::check::{AuthConfigError, Authorize, Denied};
pub use self::combine::{AllOf, AnyOf};
pub use self::header::HeaderToken;
pub use self::ip::{IpAllowList, PeerAddr, peer_addr};
pub use self::path::PathToken;
pub use self::query::QueryToken;
pub use self::secret::Secret;
