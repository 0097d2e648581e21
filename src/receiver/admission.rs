//! Admission: the checks on the request head, before the body is read.

use http::{HeaderMap, Method, header};

use crate::rejection::Rejection;

use super::service::Inner;

/// The checks on the head of a request, before its body is read.
pub(super) fn admit<E>(inner: &Inner<E>, parts: &http::request::Parts) -> Result<(), Rejection> {
    if head_size(parts) > inner.max_header_bytes {
        return Err(Rejection::headers_too_large(inner.max_header_bytes));
    }
    if let Some(auth) = &inner.auth {
        auth.authorize(parts).map_err(Rejection::from_denied)?;
    }
    if parts.method != Method::POST {
        return Err(Rejection::method_not_allowed());
    }
    if !is_json(&parts.headers) {
        return Err(Rejection::unsupported_media_type());
    }
    if !inner.queue.shared().is_accepting() {
        return Err(Rejection::shutting_down());
    }
    Ok(())
}
/// The size of the request head, as a server would have buffered it.
pub(super) fn head_size(parts: &http::request::Parts) -> usize {
    let headers: usize = parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let uri = &parts.uri;
    let target = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    target + uri.authority().map_or(0, |a| a.as_str().len()) + headers
}

/// `application/json`, in any case, with or without parameters such as `charset`.
pub(super) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

pub(super) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let cases = [
            ("plain", Some("application/json"), true),
            ("charset", Some("application/json; charset=utf-8"), true),
            ("upper case", Some("Application/JSON"), true),
            ("spaces", Some("  application/json ;charset=UTF-8"), true),
            ("text", Some("text/plain"), false),
            ("json suffix", Some("application/problem+json"), false),
            ("prefix only", Some("application/jsonx"), false),
            ("missing", None, false),
        ];
        for (name, value, want) in cases {
            let mut headers = HeaderMap::new();
            if let Some(value) = value {
                headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            }
            assert_eq!(is_json(&headers), want, "{name}");
        }
    }
}
