//! What keeps a web page in the operator's browser away from the admin API: a check of the
//! request's head, before any handler runs.

use axum::extract::Request;
use axum::http::{Method, StatusCode, header};

/// Why a request was refused: its status and what the answer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refused {
    pub(super) status: StatusCode,
    pub(super) message: &'static str,
}

/// Every refusal of the guard, in one place.
const NOT_LOOPBACK: Refused = Refused {
    status: StatusCode::FORBIDDEN,
    message: "without AIRUDDER_ADMIN_TOKEN the admin API answers only requests to a loopback host (127.0.0.1, [::1], localhost)",
};
const FOREIGN_ORIGIN: Refused = Refused {
    status: StatusCode::FORBIDDEN,
    message: "a change from another origin is refused: send it from the CLI or a script",
};
const NOT_JSON: Refused = Refused {
    status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
    message: "a change must be sent with Content-Type: application/json",
};

/// What keeps a web page in the operator's browser away from the admin API.
///
/// - Without a token (loopback only), any page could reach `127.0.0.1:3001` through a name it
///   controls that resolves to loopback (DNS rebinding) and read the dead letters: so the
///   `Host` must be a loopback name or address.
/// - A change (anything but GET and HEAD) must say `Content-Type: application/json`, which a
///   cross-site form or a simple `fetch` cannot send without the browser asking first, and
///   must carry no `Origin` but the admin API's own.
pub(super) fn browser_guard(request: &Request, loopback_only: bool) -> Result<(), Refused> {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if loopback_only && !is_loopback_authority(host) {
        return Err(NOT_LOOPBACK);
    }
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return Ok(());
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let own = origin
            .to_str()
            .ok()
            .and_then(|origin| origin.split_once("://"))
            .is_some_and(|(_, authority)| !host.is_empty() && authority.eq_ignore_ascii_case(host));
        if !own {
            return Err(FOREIGN_ORIGIN);
        }
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(NOT_JSON);
    }
    Ok(())
}

/// Whether a `Host` names loopback: `localhost`, 127.0.0.0/8 or `[::1]`, with any port.
fn is_loopback_authority(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, headers: &[(&str, &str)]) -> Request {
        let mut request = Request::builder()
            .method(method)
            .uri("/admin/dead-letters/1/replay");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn each_browser_request_is_refused_and_the_cli_passes() {
        let own = ("host", "127.0.0.1:3001");
        let json = ("content-type", "application/json; charset=utf-8");
        // What, the method, the headers, loopback only (no token), the answer.
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a [(&'a str, &'a str)],
            bool,
            Result<(), Refused>,
        );
        let cases: [Case<'_>; 9] = [
            ("the CLI's read", "GET", &[own], true, Ok(())),
            ("the CLI's change", "POST", &[own, json], true, Ok(())),
            (
                "a rebound name",
                "GET",
                &[("host", "attacker.example:3001")],
                true,
                Err(NOT_LOOPBACK),
            ),
            ("no host at all", "GET", &[], true, Err(NOT_LOOPBACK)),
            (
                "any host, with a token",
                "GET",
                &[("host", "relay.internal:3001")],
                false,
                Ok(()),
            ),
            (
                "a cross-site fetch",
                "POST",
                &[own, json, ("origin", "http://attacker.example")],
                true,
                Err(FOREIGN_ORIGIN),
            ),
            (
                "an opaque origin",
                "POST",
                &[own, json, ("origin", "null")],
                false,
                Err(FOREIGN_ORIGIN),
            ),
            (
                "its own page",
                "POST",
                &[own, json, ("origin", "http://127.0.0.1:3001")],
                true,
                Ok(()),
            ),
            (
                "a form",
                "POST",
                &[own, ("content-type", "application/x-www-form-urlencoded")],
                true,
                Err(NOT_JSON),
            ),
        ];
        for (what, method, headers, loopback_only, expected) in cases {
            assert_eq!(
                browser_guard(&request(method, headers), loopback_only),
                expected,
                "{what}"
            );
        }
    }

    #[test]
    fn loopback_hosts_are_told_apart_from_the_rest() {
        for host in [
            "127.0.0.1:3001",
            "127.8.9.10",
            "localhost:3001",
            "LOCALHOST",
            "[::1]:3001",
            "[::1]",
        ] {
            assert!(is_loopback_authority(host), "{host}");
        }
        for host in [
            "",
            "attacker.example",
            "attacker.example:3001",
            "localhost.attacker.example",
            "127.0.0.1.nip.io",
            "10.0.0.1:3001",
            "[::2]:3001",
            "::1",
        ] {
            assert!(!is_loopback_authority(host), "{host}");
        }
    }
}
