//! Admission: the checks on the request head, before the body is read.

use http::{HeaderMap, header};

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
