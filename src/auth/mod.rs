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
