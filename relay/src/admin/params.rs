//! The query parameters of the admin API's lists and bulk actions: read strictly, so that a
//! typo (`?task=…`) is a 400 naming what is accepted, never a filter silently dropped from a
//! bulk replay or purge.

use std::time::SystemTime;

use airudder_webhook::store::{RecordQuery, RecordState};

/// The filters every list and bulk action takes.
pub(super) const FILTERS: &[&str] = &["kind", "task_id", "since", "until", "error"];
/// A page: after which id, how many.
pub(super) const PAGE: &[&str] = &["after", "limit"];

/// The parameters of one request, as given.
pub(super) struct Params<'a> {
    pairs: &'a [(String, String)],
}

impl<'a> Params<'a> {
    /// Checks that each parameter is one of `accepted`, given once.
    pub(super) fn new(pairs: &'a [(String, String)], accepted: &[&[&str]]) -> Result<Self, String> {
        for (index, (name, _)) in pairs.iter().enumerate() {
            if !accepted.iter().any(|names| names.contains(&name.as_str())) {
                let names: Vec<&str> = accepted
                    .iter()
                    .flat_map(|names| names.iter().copied())
                    .collect();
                return Err(format!(
                    "unknown parameter {:?}: this endpoint takes {}",
                    crate::shown::cell(name, 64),
                    names.join(", ")
                ));
            }
            if pairs[..index].iter().any(|(earlier, _)| earlier == name) {
                return Err(format!("{name} is given twice"));
            }
        }
        Ok(Self { pairs })
    }

    /// A parameter's value; an empty one counts as not given.
    pub(super) fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }

    /// A time parameter, RFC 3339.
    pub(super) fn time(&self, name: &str) -> Result<Option<SystemTime>, String> {
        self.get(name)
            .map(|value| crate::time::parse(value).map_err(|err| format!("{name}: {err}")))
            .transpose()
    }

    /// `state`, if given.
    pub(super) fn state(&self) -> Result<Option<RecordState>, String> {
        self.get("state")
            .map(|value| {
                value.parse::<RecordState>().map_err(|_| {
                    format!(
                        "state={:?} is not a state: use pending, dead or handled",
                        crate::shown::cell(value, 64)
                    )
                })
            })
            .transpose()
    }

    /// The filters (kind, task id, received between, error text) as a query.
    pub(super) fn filters(&self) -> Result<RecordQuery, String> {
        let mut query = RecordQuery::new();
        if let Some(kind) = self.get("kind") {
            query = query.kind(kind);
        }
        if let Some(task_id) = self.get("task_id") {
            query = query.task_id(task_id);
        }
        if let Some(since) = self.time("since")? {
            query = query.since(since);
        }
        if let Some(until) = self.time("until")? {
            query = query.until(until);
        }
        if let (Some(since), Some(until)) = (query.since_ms, query.until_ms)
            && since >= until
        {
            return Err("since is not before until: no notification is received in between".into());
        }
        if let Some(error) = self.get("error") {
            query = query.error(error);
        }
        Ok(query)
    }

    /// The filters and the page asked for: `after` (default 0), `limit` (1 to 1000, default
    /// 100; more is 1000).
    pub(super) fn page(&self) -> Result<RecordQuery, String> {
        let number = |name: &str, default: u64| match self.get(name) {
            None => Ok(default),
            Some(value) => value.parse::<u64>().map_err(|_| {
                format!(
                    "{name}={:?} is not a whole number",
                    crate::shown::cell(value, 64)
                )
            }),
        };
        let limit = number("limit", RecordQuery::DEFAULT_LIMIT as u64)?;
        if limit == 0 {
            return Err("limit=0 asks for nothing: a page is 1 to 1000 long".into());
        }
        let limit = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .min(RecordQuery::MAX_LIMIT);
        Ok(self.filters()?.after(number("after", 0)?).limit(limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(query: &str) -> Vec<(String, String)> {
        query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (name.to_owned(), value.to_owned())
            })
            .collect()
    }

    #[test]
    fn filters_and_pages_are_read_and_mistakes_named() {
        let given =
            pairs("kind=task_notification&task_id=t1&since=2026-12-01&after=7&limit=5000&error=");
        let params = Params::new(&given, &[FILTERS, PAGE]).unwrap();
        let query = params.page().unwrap();
        assert_eq!(query.kind.as_deref(), Some("task_notification"));
        assert_eq!(query.task_id.as_deref(), Some("t1"));
        assert_eq!((query.after, query.limit, query.error), (7, 1000, None));
        assert!(query.since_ms.is_some() && query.until_ms.is_none());

        for (query, says) in [
            (
                "task=t1",
                "unknown parameter \"task\": this endpoint takes kind, task_id",
            ),
            ("kind=a&kind=b", "kind is given twice"),
            (
                "since=yesterday",
                "since: \"yesterday\" is not an RFC 3339 time",
            ),
            ("limit=ten", "limit=\"ten\" is not a whole number"),
            ("limit=0", "limit=0 asks for nothing"),
            (
                "since=2026-12-02&until=2026-12-01",
                "since is not before until",
            ),
        ] {
            let given = pairs(query);
            let err = Params::new(&given, &[FILTERS, PAGE])
                .and_then(|params| params.page())
                .unwrap_err();
            assert!(err.starts_with(says), "{query}: {err}");
        }
        let given = pairs("state=gone");
        let err = Params::new(&given, &[&["state"]])
            .unwrap()
            .state()
            .unwrap_err();
        assert!(err.contains("use pending, dead or handled"), "{err}");
    }
}
