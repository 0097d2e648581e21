//! How hard one destination is hit: a cap on forwards in flight, and an optional rate
//! (`AIRUDDER_FORWARD_RATE`), shared by every kind posted to the same URL.

use std::fmt;
use std::time::Duration;

use tokio::sync::{Mutex, Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// A rate: at most `count` forwards each `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    count: u32,
    per: Duration,
}

/// The fastest rate accepted: past it the spacing between two forwards would be under a
/// microsecond, which no timer keeps.
const MAX_PER_SECOND: u64 = 100_000;

impl Rate {
    /// The time between two forwards.
    pub(crate) fn interval(self) -> Duration {
        self.per / self.count
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "min",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl std::str::FromStr for Rate {
    type Err = String;

    /// `50/s`, `600/min`, `1000/h` (also `sec`, `second`, `m`, `minute`, `hour`).
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{text:?} is not a rate: use a whole number per second, minute or hour, like 50/s or 600/min"
            )
        };
        let (count, unit) = text.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        if count == 0 {
            return Err(format!(
                "{text:?} allows no forward at all: pause a kind instead (airudder-relay pause KIND)"
            ));
        }
        if u64::from(count) > MAX_PER_SECOND * per.as_secs() {
            return Err(format!(
                "{text:?} is over the fastest rate, {MAX_PER_SECOND}/s"
            ));
        }
        Ok(Self { count, per })
    }
}

/// The limits of one destination.
#[derive(Debug)]
pub(crate) struct Pace {
    /// One per forward in flight.
    slots: Semaphore,
    rate: Option<Bucket>,
}

/// A token bucket of one token, kept as the instant the next forward may start (a GCRA):
/// forwards are spaced evenly, never in bursts. Hand-written rather than a crate such as
/// `governor`: twenty lines, no dependency, and the waiters queue in order on tokio's fair
/// mutex, so none starves.
#[derive(Debug)]
struct Bucket {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl Bucket {
    /// Waits for this forward's turn. Each caller books the next free instant before it
    /// sleeps, so a late wake-up never shifts the ones after it; a turn booked by a caller
    /// that is then cancelled is lost, which keeps the rate under its cap, never over.
    async fn turn(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let at = next.map_or(now, |next| next.max(now));
            *next = Some(at + self.interval);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// A forward's place: held while it is in flight.
pub(crate) struct Turn<'a> {
    _slot: SemaphorePermit<'a>,
}

impl Pace {
    /// `concurrency` forwards in flight at most, started at `rate` at most.
    pub(crate) fn new(concurrency: usize, rate: Option<Rate>) -> Self {
        Self {
            slots: Semaphore::new(concurrency),
            rate: rate.map(|rate| Bucket {
                interval: rate.interval(),
                next: Mutex::new(None),
            }),
        }
    }

    /// Waits for a slot, then for the rate's next turn.
    pub(crate) async fn turn(&self) -> Turn<'_> {
        // The semaphore is never closed.
        let slot = self.slots.acquire().await.expect("never closed");
        if let Some(bucket) = &self.rate {
            bucket.turn().await;
        }
        Turn { _slot: slot }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_bad_ones_say_what_is_accepted() {
        let rate: Rate = "50/s".parse().unwrap();
        assert_eq!(rate.interval(), Duration::from_millis(20));
        assert_eq!(rate.to_string(), "50/s");
        let rate: Rate = " 600 / min ".parse().unwrap();
        assert_eq!(rate.interval(), Duration::from_millis(100));
        assert_eq!(
            "3600/hour".parse::<Rate>().unwrap().interval(),
            Duration::from_secs(1)
        );
        for bad in ["50", "fast", "50/day", "-1/s", "1.5/s", "/s"] {
            let err = bad.parse::<Rate>().unwrap_err();
            assert!(err.contains("like 50/s or 600/min"), "{bad}: {err}");
        }
        assert!("0/s".parse::<Rate>().unwrap_err().contains("pause"));
        assert!("200000/s".parse::<Rate>().unwrap_err().contains("fastest"));
    }

    #[tokio::test(start_paused = true)]
    async fn turns_are_spaced_by_the_interval_from_the_first() {
        let pace = Pace::new(4, Some("10/s".parse().unwrap()));
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..5 {
            let _turn = pace.turn().await;
            at.push(start.elapsed().as_millis());
        }
        assert_eq!(at, [0, 100, 200, 300, 400]);
    }
}
