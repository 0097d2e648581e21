//! Where notifications go and how, once the settings are checked.

use std::fmt;
use std::time::Duration;

use reqwest::Url;

/// Where notifications go and how, when they are forwarded.
#[derive(Clone)]
pub(crate) struct Forward {
    pub(crate) url: Url,
    pub(crate) timeout: Duration,
    pub(crate) retry_for: Duration,
    pub(crate) concurrency: usize,
    /// The most forwards started per second, minute or hour, to each destination.
    pub(crate) rate: Option<crate::pace::Rate>,
    /// The signing key, decoded from `whsec_…`.
    pub(crate) secret: Option<Vec<u8>>,
    /// Kinds sent elsewhere than `url` (`AIRUDDER_FORWARD_URL_<KIND>`, `[forward.urls]`).
    pub(crate) urls: Vec<(String, Url)>,
}

impl Forward {
    /// Where events of `kind` go.
    pub(crate) fn url_for(&self, kind: &str) -> Url {
        let elsewhere = self.urls.iter().find(|(k, _)| k == kind);
        elsewhere.map_or_else(|| self.url.clone(), |(_, url)| url.clone())
    }
}

impl fmt::Debug for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<&String> = self.urls.iter().map(|(k, _)| k).collect();
        f.debug_struct("Forward")
            .field("url", &crate::shown::url(self.url.as_str()))
            .field("timeout", &self.timeout)
            .field("retry_for", &self.retry_for)
            .field("concurrency", &self.concurrency)
            .field("rate", &self.rate)
            .field("signed", &self.secret.is_some())
            .field("kinds_elsewhere", &kinds)
            .finish()
    }
}
