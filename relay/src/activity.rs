//! What each kind did minute by minute over the last hour, from the receivers' own counters:
//! notifications received, forwarded, and attempts that failed. The console's overview draws
//! it. A snapshot of the counters is kept at each minute's start, at most 61 of them, whatever
//! the traffic: a minute's figures are the difference between two snapshots (the current
//! minute's, between its start and now).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use airudder_webhook::Stats;
use serde_json::{Map, Value, json};

use crate::server::Endpoint;

/// Minutes kept: the last hour, the current minute included.
const MINUTES: usize = 60;
const MINUTE_MS: i64 = 60_000;

/// One kind's counters at an instant, counted since the relay started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    /// New notifications answered 200 (`accepted`; duplicates are not counted again).
    received: u64,
    /// Attempts that delivered (the service's 2xx).
    forwarded: u64,
    /// Attempts that did not: put back for a retry, or given up as dead letters.
    failed: u64,
}

impl Counts {
    fn of(stats: &Stats) -> Self {
        let received = stats
            .answers()
            .iter()
            .filter(|answer| answer.reason == "accepted")
            .map(|answer| answer.count)
            .sum();
        Self {
            received,
            forwarded: stats.handled,
            failed: stats.failed + stats.returned,
        }
    }

    fn since(self, earlier: Self) -> Self {
        Self {
            received: self.received.saturating_sub(earlier.received),
            forwarded: self.forwarded.saturating_sub(earlier.forwarded),
            failed: self.failed.saturating_sub(earlier.failed),
        }
    }
}

/// The counters of every kind at a minute's start.
struct Snapshot {
    minute_ms: i64,
    counts: Vec<Counts>,
}

/// The last hour, minute by minute, for every kind served.
pub(crate) struct Activity {
    endpoints: Arc<Vec<Arc<dyn Endpoint>>>,
    snapshots: Mutex<VecDeque<Snapshot>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

fn minute_of(ms: i64) -> i64 {
    ms - ms.rem_euclid(MINUTE_MS)
}

impl Activity {
    /// Starts keeping the counters of `endpoints`, from now: the first minute is the current
    /// one, counted from 0.
    pub(crate) fn start(endpoints: Arc<Vec<Arc<dyn Endpoint>>>) -> Arc<Self> {
        let activity = Arc::new(Self {
            snapshots: Mutex::new(VecDeque::with_capacity(MINUTES + 1)),
            endpoints,
        });
        activity.snap(minute_of(now_ms()));
        let ticking = Arc::downgrade(&activity);
        tokio::spawn(async move {
            loop {
                let now = now_ms();
                let next = minute_of(now) + MINUTE_MS;
                let wait = u64::try_from(next - now).unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(wait)).await;
                let Some(activity) = ticking.upgrade() else {
                    return;
                };
                activity.snap(minute_of(now_ms()));
            }
        });
        activity
    }

    fn counts(&self) -> Vec<Counts> {
        self.endpoints
            .iter()
            .map(|endpoint| Counts::of(&endpoint.stats()))
            .collect()
    }

    /// Keeps the counters as they are now as the start of the minute `minute_ms`.
    fn snap(&self, minute_ms: i64) {
        let counts = self.counts();
        let mut snapshots = self
            .snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if snapshots
            .back()
            .is_some_and(|last| last.minute_ms >= minute_ms)
        {
            return;
        }
        snapshots.push_back(Snapshot { minute_ms, counts });
        while snapshots.len() > MINUTES {
            snapshots.pop_front();
        }
    }

    /// `{"minutes": [start of each minute, oldest first], "kinds": {kind: {"received": […],
    /// "forwarded": […], "failed": […]}}}`: the minutes since the relay started, the last 60 at
    /// most, the last being the current one, up to now. A kind that did nothing is left out.
    pub(crate) fn last_hour(&self) -> Value {
        let now = self.counts();
        let snapshots = self
            .snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let minutes: Vec<String> = snapshots
            .iter()
            .map(|snapshot| crate::time::format_ms(snapshot.minute_ms))
            .collect();
        let mut kinds = Map::new();
        for (index, endpoint) in self.endpoints.iter().enumerate() {
            let at = |snapshot: &Snapshot| snapshot.counts.get(index).copied().unwrap_or_default();
            let ends = snapshots.iter().skip(1).map(at).chain([now[index]]);
            let per_minute: Vec<Counts> = snapshots
                .iter()
                .zip(ends)
                .map(|(start, end)| end.since(at(start)))
                .collect();
            if per_minute.iter().all(|counts| *counts == Counts::default()) {
                continue;
            }
            let series =
                |field: fn(&Counts) -> u64| -> Vec<u64> { per_minute.iter().map(field).collect() };
            kinds.insert(
                endpoint.kind().to_owned(),
                json!({
                    "received": series(|c| c.received),
                    "forwarded": series(|c| c.forwarded),
                    "failed": series(|c| c.failed),
                }),
            );
        }
        json!({ "minutes": minutes, "kinds": kinds })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_starts_on_the_minute() {
        assert_eq!(minute_of(125_000), 120_000);
        assert_eq!(minute_of(120_000), 120_000);
        assert_eq!(minute_of(-1), -60_000);
    }

    #[test]
    fn a_difference_never_goes_below_zero() {
        let later = Counts {
            received: 5,
            forwarded: 3,
            failed: 1,
        };
        let earlier = Counts {
            received: 2,
            forwarded: 4,
            failed: 1,
        };
        assert_eq!(
            later.since(earlier),
            Counts {
                received: 3,
                forwarded: 0,
                failed: 0
            }
        );
    }
}
