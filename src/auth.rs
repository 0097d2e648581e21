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

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use base64::Engine;
use http::request::Parts;
use http::{HeaderName, StatusCode, header};
use ipnet::IpNet;
use subtle::ConstantTimeEq;

/// Decides whether a request may post a notification, from its head alone.
///
/// Any `Fn(&Parts) -> Result<(), Denied> + Send + Sync + 'static` is a check.
pub trait Authorize: Send + Sync + 'static {
    /// `Ok` lets the request through; a [`Denied`] answers it.
    ///
    /// # Errors
    /// A [`Denied`] with the status (401 or 403) and a reason that holds no secret.
    fn authorize(&self, request: &Parts) -> Result<(), Denied>;
}

impl<F> Authorize for F
where
    F: Fn(&Parts) -> Result<(), Denied> + Send + Sync + 'static,
{
    fn authorize(&self, request: &Parts) -> Result<(), Denied> {
        self(request)
    }
}

impl Authorize for Arc<dyn Authorize> {
    fn authorize(&self, request: &Parts) -> Result<(), Denied> {
        (**self).authorize(request)
    }
}

/// A refused request: 401 (no or wrong credentials) or 403 (not from an allowed address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    status: StatusCode,
    reason: Cow<'static, str>,
}

impl Denied {
    /// 401: the request carries no valid credentials. The reason is sent to the client: never
    /// put a secret in it.
    pub fn unauthorized(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            reason: reason.into(),
        }
    }

    /// 403: the request may not come from where it comes from.
    pub fn forbidden(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            reason: reason.into(),
        }
    }

    /// The status of the answer.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Why, as sent to the client.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Denied {}

/// A check that could not be configured: no secret, an empty secret, a bad CIDR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfigError {
    message: String,
}

impl AuthConfigError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for AuthConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AuthConfigError {}

/// A secret (token or password). Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct Secret(Box<[u8]>);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into().into_bytes().into_boxed_slice())
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(secret: &str) -> Self {
        Self::new(secret)
    }
}

impl From<String> for Secret {
    fn from(secret: String) -> Self {
        Self::new(secret)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Several valid secrets, compared in constant time.
#[derive(Clone)]
struct Secrets(Vec<Secret>);

impl Secrets {
    fn new<I>(secrets: I, what: &str) -> Result<Self, AuthConfigError>
    where
        I: IntoIterator,
        I::Item: Into<Secret>,
    {
        let secrets: Vec<Secret> = secrets.into_iter().map(Into::into).collect();
        if secrets.is_empty() {
            return Err(AuthConfigError::new(format!(
                "{what} needs at least one secret"
            )));
        }
        if secrets.iter().any(Secret::is_empty) {
            return Err(AuthConfigError::new(format!("{what}: a secret is empty")));
        }
        Ok(Self(secrets))
    }

    /// Compares against every secret, without stopping at a match.
    fn matches(&self, candidate: &[u8]) -> bool {
        self.0
            .iter()
            .fold(subtle::Choice::from(0), |found, secret| {
                found | secret.0.ct_eq(candidate)
            })
            .into()
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} secret(s)", self.0.len())
    }
}

/// A secret token in a query parameter: `POST /airudder/task?token=…` (name configurable).
#[derive(Debug, Clone)]
pub struct QueryToken {
    param: Cow<'static, str>,
    secrets: Secrets,
}

impl QueryToken {
    /// Accepts any of `secrets` in the `token` query parameter.
    ///
    /// # Errors
    /// When `secrets` is empty or holds an empty secret.
    pub fn new<I>(secrets: I) -> Result<Self, AuthConfigError>
    where
        I: IntoIterator,
        I::Item: Into<Secret>,
    {
        Ok(Self {
            param: Cow::Borrowed("token"),
            secrets: Secrets::new(secrets, "QueryToken")?,
        })
    }

    /// Reads the token from this query parameter instead of `token`.
    #[must_use]
    pub fn param(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.param = name.into();
        self
    }
}

impl Authorize for QueryToken {
    fn authorize(&self, request: &Parts) -> Result<(), Denied> {
        let query = request.uri.query().unwrap_or_default();
        let mut tokens = form_urlencoded::parse(query.as_bytes())
            .filter(|(name, _)| *name == *self.param)
            .map(|(_, value)| value);
        match (tokens.next(), tokens.next()) {
            (Some(token), None) if self.secrets.matches(token.as_bytes()) => Ok(()),
            (None, _) => Err(Denied::unauthorized("the token query parameter is missing")),
            _ => Err(Denied::unauthorized("the token is not valid")),
        }
    }
}

/// A secret token as the last path segment: mount the receiver at `/airudder/task/{token}`.
#[derive(Debug, Clone)]
pub struct PathToken {
    secrets: Secrets,
}

impl PathToken {
    /// Accepts any of `secrets` as the last segment of the path.
    ///
    /// # Errors
    /// When `secrets` is empty or holds an empty secret.
    pub fn new<I>(secrets: I) -> Result<Self, AuthConfigError>
    where
        I: IntoIterator,
        I::Item: Into<Secret>,
    {
        Ok(Self {
            secrets: Secrets::new(secrets, "PathToken")?,
        })
    }
}

impl Authorize for PathToken {
    fn authorize(&self, request: &Parts) -> Result<(), Denied> {
        let segment = request.uri.path().rsplit('/').next().unwrap_or_default();
        let segment = percent_decode(segment);
        if self.secrets.matches(segment.as_bytes()) {
            Ok(())
        } else {
            Err(Denied::unauthorized("the token is not valid"))
        }
    }
}

fn percent_decode(segment: &str) -> Cow<'_, str> {
    if !segment.contains('%') {
        return Cow::Borrowed(segment);
    }
    // form_urlencoded also turns '+' into a space; a path keeps it.
    let escaped = segment.replace('+', "%2B");
    let decoded: String = form_urlencoded::parse(format!("t={escaped}").as_bytes())
        .map(|(_, value)| value.into_owned())
        .collect();
    Cow::Owned(decoded)
}

/// A secret token in a header: `X-Webhook-Token: …`, or `Authorization: Bearer …`.
#[derive(Debug, Clone)]
pub struct HeaderToken {
    header: HeaderName,
    bearer: bool,
    secrets: Secrets,
}

impl HeaderToken {
    /// Accepts any of `secrets` as the whole value of `header`.
    ///
    /// # Errors
    /// When `secrets` is empty or holds an empty secret.
    pub fn new<I>(header: HeaderName, secrets: I) -> Result<Self, AuthConfigError>
    where
        I: IntoIterator,
        I::Item: Into<Secret>,
    {
        Ok(Self {
            header,
            bearer: false,
            secrets: Secrets::new(secrets, "HeaderToken")?,
        })
    }

    /// Accepts `Authorization: Bearer <secret>` for any of `secrets`.
    ///
    /// # Errors
    /// When `secrets` is empty or holds an empty secret.
    pub fn bearer<I>(secrets: I) -> Result<Self, AuthConfigError>
    where
        I: IntoIterator,
        I::Item: Into<Secret>,
    {
        Ok(Self {
            header: header::AUTHORIZATION,
            bearer: true,
            secrets: Secrets::new(secrets, "HeaderToken")?,
        })
    }
}

impl Authorize for HeaderToken {
    fn authorize(&self, request: &Parts) -> Result<(), Denied> {
        let mut values = request.headers.get_all(&self.header).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(Denied::unauthorized(
                "the token header is missing or repeated",
            ));
        };
        let value = value.as_bytes();
        let token = if self.bearer {
            match value.get(..7) {
                Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => value[7..].trim_ascii(),
                _ => return Err(Denied::unauthorized("expected Authorization: Bearer")),
            }
        } else {
            value.trim_ascii()
        };
        if self.secrets.matches(token) {
            Ok(())
        } else {
            Err(Denied::unauthorized("the token is not valid"))
        }
    }
}

/// HTTP Basic authentication (`Authorization: Basic …`) against user and password pairs.
#[derive(Debug, Clone)]
pub struct BasicAuth {
    // "user:password" as sent, so one constant-time comparison covers both.
    credentials: Secrets,
}

impl BasicAuth {
    /// Accepts any of the `(user, password)` pairs.
    ///
    /// # Errors
    /// When `users` is empty, or a user holds `:` or is empty, or a password is empty.
    pub fn new<I, U, P>(users: I) -> Result<Self, AuthConfigError>
    where
        I: IntoIterator<Item = (U, P)>,
        U: Into<String>,
        P: Into<String>,
    {
        let mut credentials = Vec::new();
        for (user, password) in users {
            let (user, password) = (user.into(), password.into());
            if user.is_empty() || user.contains(':') || password.is_empty() {
                return Err(AuthConfigError::new(
                    "BasicAuth: a user is empty or holds ':', or a password is empty",
                ));
            }
            credentials.push(Secret::new(format!("{user}:{password}")));
        }
        Ok(Self {
            credentials: Secrets::new(credentials, "BasicAuth")?,
        })
    }
}

impl Authorize for BasicAuth {
    fn authorize(&self, request: &Parts) -> Result<(), Denied> {
        let value = request
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        let encoded = match value.and_then(|v| v.get(..6).map(|scheme| (scheme, &v[6..]))) {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"basic ") => rest.trim_ascii(),
            _ => return Err(Denied::unauthorized("expected Authorization: Basic")),
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| Denied::unauthorized("the Basic credentials are not base64"))?;
        if self.credentials.matches(&decoded) {
            Ok(())
        } else {
            Err(Denied::unauthorized("the user or password is not valid"))
        }
    }
}

/// The peer address of a connection, as an extension of the request.
///
/// The allow-list reads it, or axum's `ConnectInfo<SocketAddr>` (feature `axum`, with
/// `into_make_service_with_connect_info`), or tonic's `TcpConnectInfo` (feature `tonic`). With
/// plain hyper, insert it yourself in the accept loop:
///
/// ```
/// # use airudder_webhook::auth::PeerAddr;
/// # let remote: std::net::SocketAddr = "192.0.2.7:50000".parse().unwrap();
/// # let mut request = http::Request::new(());
/// request.extensions_mut().insert(PeerAddr(remote));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// The address of the peer of the connection, from the request's extensions.
pub fn peer_addr(extensions: &http::Extensions) -> Option<SocketAddr> {
    if let Some(PeerAddr(addr)) = extensions.get::<PeerAddr>() {
        return Some(*addr);
    }
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) =
        extensions.get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(*addr);
    }
    #[cfg(feature = "tonic")]
    if let Some(info) = extensions.get::<tonic::transport::server::TcpConnectInfo>() {
        return info.remote_addr();
    }
    None
}

/// Lets in only clients whose address is in one of the allowed IPv4 or IPv6 CIDRs (403
/// otherwise).
///
/// The client is the connection's peer, unless the peer is a proxy you name as trusted: then
/// the client is read from `Forwarded` (or else `X-Forwarded-For`), walking from the nearest
/// hop back past every trusted proxy. A forwarding header from an untrusted peer is ignored,
/// so a stranger cannot claim an allowed address.
#[derive(Debug, Clone)]
pub struct IpAllowList {
    allowed: Vec<IpNet>,
    trusted_proxies: Vec<IpNet>,
}

impl IpAllowList {
    /// Allows these CIDRs (`203.0.113.0/24`, `2001:db8::/32`, or a bare address).
    ///
    /// # Errors
    /// When the list is empty or an entry is not a CIDR or an address.
    pub fn new<I>(allowed: I) -> Result<Self, AuthConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let allowed = parse_nets(allowed)?;
        if allowed.is_empty() {
            return Err(AuthConfigError::new("IpAllowList needs at least one CIDR"));
        }
        Ok(Self {
            allowed,
            trusted_proxies: Vec::new(),
        })
    }

    /// Trusts these proxies' `Forwarded` and `X-Forwarded-For` headers.
    ///
    /// # Errors
    /// When an entry is not a CIDR or an address.
    pub fn trust_proxies<I>(mut self, proxies: I) -> Result<Self, AuthConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.trusted_proxies = parse_nets(proxies)?;
        Ok(self)
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// The client's address as this list sees it, if it can be told.
    pub fn client_ip(&self, request: &Parts) -> Option<IpAddr> {
        let peer = peer_addr(&request.extensions)?.ip().to_canonical();
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let hops = forwarded_hops(&request.headers);
        let mut client = peer;
        for hop in hops.iter().rev() {
            // An obfuscated or unparsable hop hides the client: it cannot be allowed.
            client = (*hop)?;
            if !self.is_trusted(client) {
                break;
            }
        }
        Some(client)
    }
}

impl Authorize for IpAllowList {
    fn authorize(&self, request: &Parts) -> Result<(), Denied> {
        match self.client_ip(request) {
            Some(ip) if self.allowed.iter().any(|net| net.contains(&ip)) => Ok(()),
            Some(_) => Err(Denied::forbidden("the client address is not allowed")),
            None => Err(Denied::forbidden("the client address is unknown")),
        }
    }
}

fn parse_nets<I>(nets: I) -> Result<Vec<IpNet>, AuthConfigError>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    nets.into_iter()
        .map(|net| {
            let net = net.as_ref().trim();
            net.parse::<IpNet>()
                .or_else(|_| net.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| AuthConfigError::new(format!("not a CIDR or an IP address: {net:?}")))
        })
        .collect()
}

/// The hops a request passed, nearest last: from `Forwarded` if present, else
/// `X-Forwarded-For`. `None` marks a hop that names no address.
fn forwarded_hops(headers: &http::HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<_> = headers.get_all(header::FORWARDED).iter().collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|value| value.to_str().unwrap_or("for=unknown").split(','))
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, node)| parse_node(node.trim().trim_matches('"')))
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("unknown").split(','))
        .map(|hop| parse_node(hop.trim()))
        .collect()
}

/// An address with or without a port: `192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]:80`,
/// `2001:db8::1`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        return rest
            .split(']')
            .next()?
            .parse::<IpAddr>()
            .ok()
            .map(|ip| ip.to_canonical());
    }
    node.parse::<IpAddr>()
        .ok()
        .or_else(|| node.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
        .map(|ip| ip.to_canonical())
}

/// Lets a request in only when every check does. The first refusal answers.
#[derive(Clone, Default)]
pub struct AllOf(Vec<Arc<dyn Authorize>>);

impl AllOf {
    /// No check yet (which lets everything in: add at least one).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check.
    #[must_use]
    pub fn and(mut self, check: impl Authorize) -> Self {
        self.0.push(Arc::new(check));
        self
    }
}

impl Authorize for AllOf {
    fn authorize(&self, request: &Parts) -> Result<(), Denied> {
        self.0.iter().try_for_each(|check| check.authorize(request))
    }
}

impl fmt::Debug for AllOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AllOf({} checks)", self.0.len())
    }
}

/// Lets a request in when any check does. When all refuse, the first refusal answers.
#[derive(Clone, Default)]
pub struct AnyOf(Vec<Arc<dyn Authorize>>);

impl AnyOf {
    /// No check yet (which lets nothing in: add at least one).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an alternative.
    #[must_use]
    pub fn or(mut self, check: impl Authorize) -> Self {
        self.0.push(Arc::new(check));
        self
    }
}

impl Authorize for AnyOf {
    fn authorize(&self, request: &Parts) -> Result<(), Denied> {
        let mut first = None;
        for check in &self.0 {
            match check.authorize(request) {
                Ok(()) => return Ok(()),
                Err(denied) => {
                    first.get_or_insert(denied);
                }
            }
        }
        Err(first.unwrap_or_else(|| Denied::unauthorized("no credentials are accepted")))
    }
}

impl fmt::Debug for AnyOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AnyOf({} checks)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)], peer: Option<&str>) -> Parts {
        let mut request = http::Request::post(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        if let Some(peer) = peer {
            parts.extensions.insert(PeerAddr(peer.parse().unwrap()));
        }
        parts
    }

    #[test]
    fn query_token_accepts_every_current_secret_and_nothing_else() {
        let check = QueryToken::new(["new-7f3a", "old-19c2"]).unwrap();
        let cases = [
            ("new", "/t?token=new-7f3a", true),
            ("old", "/t?a=1&token=old-19c2", true),
            ("encoded", "/t?token=new%2D7f3a", true),
            ("wrong", "/t?token=new-7f3b", false),
            ("prefix", "/t?token=new-7f3", false),
            ("longer", "/t?token=new-7f3aa", false),
            ("missing", "/t", false),
            ("empty", "/t?token=", false),
            ("other name", "/t?tok=new-7f3a", false),
            ("twice", "/t?token=new-7f3a&token=evil", false),
        ];
        for (name, uri, ok) in cases {
            assert_eq!(
                check.authorize(&parts(uri, &[], None)).is_ok(),
                ok,
                "{name}"
            );
        }
        let renamed = QueryToken::new(["s3cret"]).unwrap().param("key");
        assert!(
            renamed
                .authorize(&parts("/t?key=s3cret", &[], None))
                .is_ok()
        );
    }

    #[test]
    fn empty_secrets_are_refused_at_configuration() {
        assert!(QueryToken::new(Vec::<String>::new()).is_err());
        assert!(QueryToken::new([""]).is_err());
        assert!(PathToken::new(["a", ""]).is_err());
        assert!(BasicAuth::new([("user:x", "pw")]).is_err());
        assert!(IpAllowList::new(["10.0.0.0/33"]).is_err());
    }

    #[test]
    fn path_token_reads_the_last_segment() {
        let check = PathToken::new(["s3cret+1"]).unwrap();
        assert!(
            check
                .authorize(&parts("/airudder/task/s3cret+1", &[], None))
                .is_ok()
        );
        assert!(
            check
                .authorize(&parts("/airudder/task/s3cret%2B1", &[], None))
                .is_ok()
        );
        assert!(
            check
                .authorize(&parts("/airudder/task/s3cret", &[], None))
                .is_err()
        );
        assert!(
            check
                .authorize(&parts("/airudder/task", &[], None))
                .is_err()
        );
    }

    #[test]
    fn header_and_bearer_tokens() {
        let header = HeaderToken::new(HeaderName::from_static("x-webhook-token"), ["abc"]).unwrap();
        assert!(
            header
                .authorize(&parts("/", &[("x-webhook-token", "abc")], None))
                .is_ok()
        );
        assert!(
            header
                .authorize(&parts("/", &[("x-webhook-token", "abd")], None))
                .is_err()
        );
        assert!(
            header
                .authorize(&parts(
                    "/",
                    &[("x-webhook-token", "abc"), ("x-webhook-token", "abc")],
                    None
                ))
                .is_err()
        );
        let bearer = HeaderToken::bearer(["abc"]).unwrap();
        assert!(
            bearer
                .authorize(&parts("/", &[("authorization", "Bearer abc")], None))
                .is_ok()
        );
        assert!(
            bearer
                .authorize(&parts("/", &[("authorization", "bearer  abc ")], None))
                .is_ok()
        );
        assert!(
            bearer
                .authorize(&parts("/", &[("authorization", "Basic abc")], None))
                .is_err()
        );
        assert!(bearer.authorize(&parts("/", &[], None)).is_err());
    }

    #[test]
    fn basic_auth_checks_user_and_password_together() {
        let check = BasicAuth::new([("airudder", "pa:ss"), ("ops", "other")]).unwrap();
        let header = |user_pass: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(user_pass)
            )
        };
        let cases = [
            ("first", header("airudder:pa:ss"), true),
            ("second", header("ops:other"), true),
            ("crossed", header("airudder:other"), false),
            ("no password", header("airudder"), false),
            ("not base64", "Basic %%%".to_owned(), false),
            ("bearer", "Bearer abc".to_owned(), false),
        ];
        for (name, value, ok) in cases {
            assert_eq!(
                check
                    .authorize(&parts("/", &[("authorization", &value)], None))
                    .is_ok(),
                ok,
                "{name}"
            );
        }
    }

    #[test]
    fn the_allow_list_believes_forwarding_headers_only_from_trusted_proxies() {
        let list = IpAllowList::new(["203.0.113.0/24", "2001:db8::/32"])
            .unwrap()
            .trust_proxies(["10.0.0.0/8"])
            .unwrap();
        // (name, headers, peer, allowed)
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>, bool);
        let cases: [Case<'_>; 12] = [
            ("allowed peer", &[], Some("203.0.113.9:5000"), true),
            ("allowed v6 peer", &[], Some("[2001:db8::7]:5000"), true),
            (
                "v4-mapped v6 peer",
                &[],
                Some("[::ffff:203.0.113.9]:5000"),
                true,
            ),
            ("other peer", &[], Some("198.51.100.1:5000"), false),
            ("no peer address", &[], None, false),
            (
                "stranger claims an allowed address",
                &[("x-forwarded-for", "203.0.113.9")],
                Some("198.51.100.1:5000"),
                false,
            ),
            (
                "through a trusted proxy",
                &[("x-forwarded-for", "203.0.113.9")],
                Some("10.1.2.3:5000"),
                true,
            ),
            (
                "spoofed hop before a real client",
                &[("x-forwarded-for", "203.0.113.9, 198.51.100.1")],
                Some("10.1.2.3:5000"),
                false,
            ),
            (
                "two trusted proxies",
                &[("x-forwarded-for", "203.0.113.9:443, 10.0.0.2")],
                Some("10.1.2.3:5000"),
                true,
            ),
            (
                "forwarded header",
                &[("forwarded", "for=\"[2001:db8::1]:4711\";proto=https")],
                Some("10.1.2.3:5000"),
                true,
            ),
            (
                "forwarded wins over x-forwarded-for",
                &[
                    ("forwarded", "for=198.51.100.1"),
                    ("x-forwarded-for", "203.0.113.9"),
                ],
                Some("10.1.2.3:5000"),
                false,
            ),
            (
                "obfuscated hop",
                &[("forwarded", "for=_hidden")],
                Some("10.1.2.3:5000"),
                false,
            ),
        ];
        for (name, headers, peer, ok) in cases {
            let result = list.authorize(&parts("/", headers, peer));
            assert_eq!(result.is_ok(), ok, "{name}");
            if let Err(denied) = result {
                assert_eq!(denied.status(), StatusCode::FORBIDDEN, "{name}");
            }
        }
    }

    #[test]
    fn combinations() {
        let token = QueryToken::new(["t"]).unwrap();
        let office = IpAllowList::new(["10.0.0.0/8"]).unwrap();
        let both = AllOf::new().and(token.clone()).and(office.clone());
        let either = AnyOf::new().or(token).or(office);
        let cases = [
            (
                "token from the office",
                "/?token=t",
                "10.0.0.1:1",
                true,
                true,
            ),
            (
                "token from outside",
                "/?token=t",
                "192.0.2.1:1",
                false,
                true,
            ),
            ("no token from the office", "/", "10.0.0.1:1", false, true),
            ("no token from outside", "/", "192.0.2.1:1", false, false),
        ];
        for (name, uri, peer, want_both, want_either) in cases {
            let request = parts(uri, &[], Some(peer));
            assert_eq!(
                both.authorize(&request).is_ok(),
                want_both,
                "all of: {name}"
            );
            assert_eq!(
                either.authorize(&request).is_ok(),
                want_either,
                "any of: {name}"
            );
        }
        assert_eq!(
            AnyOf::new()
                .authorize(&parts("/", &[], None))
                .unwrap_err()
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let check = AnyOf::new()
            .or(QueryToken::new(["hunter2"]).unwrap())
            .or(BasicAuth::new([("u", "hunter3")]).unwrap());
        let debug = format!(
            "{check:?} {:?} {:?}",
            QueryToken::new(["hunter2"]).unwrap(),
            BasicAuth::new([("u", "hunter3")]).unwrap()
        );
        assert!(!debug.contains("hunter"), "{debug}");
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }
}
