//! The checks, case by case.

use base64::Engine;
use http::request::Parts;
use http::{HeaderName, StatusCode};

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
