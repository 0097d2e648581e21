//! The client address: the peer, or what trusted proxies forwarded; the allow-list.

use std::net::{IpAddr, SocketAddr};

use http::header;
use http::request::Parts;
use ipnet::IpNet;

use super::{AuthConfigError, Authorize, Denied};

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
