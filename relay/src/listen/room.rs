//! The open connections of one listener: which are idle and since when, which to close to make
//! room for a new one, and the WARN that says how many were closed.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, counter, gauge};
use tokio::sync::Notify;

/// At most one WARN this often, with the counts since the last: a flood must not flood the log.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// One listener's open connections, under its cap.
#[derive(Debug)]
pub(super) struct Room {
    listener: &'static str,
    cap: usize,
    table: Mutex<Table>,
    open: Gauge,
    closed_idle: Counter,
    closed_new: Counter,
}

#[derive(Debug, Default)]
struct Table {
    /// Numbers connections and orders the times they became idle.
    tick: u64,
    /// The connections not told to close yet, by number.
    seats: HashMap<u64, Slot>,
    /// The idle ones by when they last became idle, oldest first.
    idle: BTreeMap<u64, u64>,
    report: Report,
}

#[derive(Debug)]
struct Slot {
    idle_since: Option<u64>,
    evict: Arc<Notify>,
}

/// What was closed since the last WARN.
#[derive(Debug, Default)]
struct Report {
    last: Option<Instant>,
    closed_idle: u64,
    closed_new: u64,
    accept_errors: u64,
    last_error: Option<String>,
}

impl Report {
    fn is_empty(&self) -> bool {
        self.closed_idle + self.closed_new + self.accept_errors == 0
    }

    /// The counts to log now, if the last WARN is old enough (or `force`), and a fresh window.
    fn due(&mut self, force: bool) -> Option<Report> {
        let now = Instant::now();
        let due = force || self.last.is_none_or(|last| now - last >= REPORT_EVERY);
        if !due || self.is_empty() {
            return None;
        }
        let report = std::mem::take(self);
        self.last = Some(now);
        Some(report)
    }
}

impl Room {
    pub(super) fn new(listener: &'static str, cap: usize) -> Arc<Self> {
        Arc::new(Self {
            listener,
            cap: cap.max(1),
            table: Mutex::default(),
            open: gauge!("airudder_connections_open", "listener" => listener),
            closed_idle: counter!(
                "airudder_connections_closed_for_room_total",
                "listener" => listener, "closed" => "oldest_idle"
            ),
            closed_new: counter!(
                "airudder_connections_closed_for_room_total",
                "listener" => listener, "closed" => "new"
            ),
        })
    }

    /// A seat for a connection just accepted: at the cap, the oldest idle one is told to close
    /// to make room; `None` when every one is busy (the new one is closed, and its sender
    /// retries).
    pub(super) fn admit(self: &Arc<Self>) -> Option<Arc<Seat>> {
        let mut table = self.lock();
        if table.seats.len() >= self.cap {
            if table.evict_oldest_idle() {
                self.closed_idle.increment(1);
                table.report.closed_idle += 1;
            } else {
                self.closed_new.increment(1);
                table.report.closed_new += 1;
                self.warn(table.report.due(false));
                return None;
            }
        }
        table.tick += 1;
        let (id, evict) = (table.tick, Arc::new(Notify::new()));
        table.seats.insert(
            id,
            Slot {
                idle_since: Some(id),
                evict: Arc::clone(&evict),
            },
        );
        table.idle.insert(id, id);
        let report = table.report.due(false);
        drop(table);
        self.warn(report);
        self.open.increment(1.0);
        Some(Arc::new(Seat {
            room: Arc::clone(self),
            id,
            in_flight: AtomicUsize::new(0),
            evict,
        }))
    }

    /// Accepting failed (out of files, most likely): the oldest idle connection is told to
    /// close, so that the retry finds a file.
    pub(super) fn accept_failed(&self, error: &std::io::Error) {
        let mut table = self.lock();
        if table.evict_oldest_idle() {
            self.closed_idle.increment(1);
            table.report.closed_idle += 1;
        }
        table.report.accept_errors += 1;
        table.report.last_error = Some(error.to_string());
        let report = table.report.due(false);
        drop(table);
        self.warn(report);
    }

    /// Logs what the last window left unsaid; for the end of serving.
    pub(super) fn flush_report(&self) {
        let report = self.lock().report.due(true);
        self.warn(report);
    }

    fn warn(&self, report: Option<Report>) {
        let Some(report) = report else { return };
        tracing::warn!(
            listener = self.listener,
            max_connections = self.cap,
            closed_idle = report.closed_idle,
            closed_new = report.closed_new,
            accept_errors = report.accept_errors,
            last_error = report.last_error.as_deref().unwrap_or("none"),
            "closed connections to make room, since the last report: {} idle (the longest idle first), {} new (every other busy)",
            report.closed_idle,
            report.closed_new,
        );
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table is consistent after every statement: a panic elsewhere leaves it usable.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Table {
    /// Tells the connection idle the longest to close, and forgets it; `false` if none is idle.
    fn evict_oldest_idle(&mut self) -> bool {
        let Some((_, id)) = self.idle.pop_first() else {
            return false;
        };
        if let Some(slot) = self.seats.remove(&id) {
            // A permit if the connection's task is not waiting yet: the order is not lost.
            slot.evict.notify_one();
        }
        true
    }
}

/// One open connection's place in its [`Room`]: busy while a request is in flight on it, idle
/// otherwise; leaves the room when the last clone is dropped (the connection's task ended).
#[derive(Debug)]
pub(super) struct Seat {
    room: Arc<Room>,
    id: u64,
    /// Requests in flight; changed under the room's lock, so that an eviction and the start of
    /// a request are ordered.
    in_flight: AtomicUsize,
    evict: Arc<Notify>,
}

impl Seat {
    /// Resolves when the room told this connection to close.
    pub(super) async fn evicted(&self) {
        self.evict.notified().await;
    }

    /// No request in flight: closing it now loses nothing answered or half-answered.
    pub(super) fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
    }

    /// A request started; it ends when the guard is dropped (its response sent, or dropped).
    pub(super) fn busy(self: &Arc<Self>) -> Busy {
        let mut table = self.room.lock();
        if self.in_flight.fetch_add(1, Ordering::SeqCst) == 0 {
            let table = &mut *table;
            if let Some(since) = table
                .seats
                .get_mut(&self.id)
                .and_then(|s| s.idle_since.take())
            {
                table.idle.remove(&since);
            }
        }
        Busy(Arc::clone(self))
    }

    fn done(&self) {
        let mut table = self.room.lock();
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            let table = &mut *table;
            table.tick += 1;
            if let Some(slot) = table.seats.get_mut(&self.id) {
                slot.idle_since = Some(table.tick);
                table.idle.insert(table.tick, self.id);
            }
        }
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut table = self.room.lock();
        if let Some(since) = table.seats.remove(&self.id).and_then(|s| s.idle_since) {
            table.idle.remove(&since);
        }
        drop(table);
        self.room.open.decrement(1.0);
    }
}

/// A request in flight on its connection, until dropped.
#[derive(Debug)]
pub(super) struct Busy(Arc<Seat>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.done();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle(room: &Room) -> Vec<u64> {
        room.lock().idle.values().copied().collect()
    }

    #[test]
    fn at_the_cap_the_oldest_idle_connection_makes_room() {
        let room = Room::new("test", 3);
        let (a, b, c) = (
            room.admit().unwrap(),
            room.admit().unwrap(),
            room.admit().unwrap(),
        );
        // `a` serves a request, then idles again: now `b` has idled the longest.
        drop(a.busy());
        let busy_c = c.busy();
        assert_eq!(idle(&room), [b.id, a.id]);
        let d = room.admit().expect("room made");
        assert_eq!(idle(&room), [a.id, d.id]);
        assert!(
            b.evict.notified().now_or_never_for_test(),
            "b was told to close"
        );
        assert_eq!(room.lock().seats.len(), 3);
        drop(busy_c);
        assert_eq!(idle(&room), [a.id, d.id, c.id]);
    }

    #[test]
    fn when_every_connection_is_busy_the_new_one_is_refused() {
        let room = Room::new("test", 2);
        let (a, b) = (room.admit().unwrap(), room.admit().unwrap());
        let (_busy_a, _busy_b) = (a.busy(), b.busy());
        assert!(room.admit().is_none());
        assert!(!a.is_idle());
        assert_eq!(
            room.lock().report.closed_new,
            0,
            "the first refusal is logged at once"
        );
        assert!(room.admit().is_none());
        assert_eq!(
            room.lock().report.closed_new,
            1,
            "the next waits for the next window"
        );
    }

    #[test]
    fn a_connection_that_ends_leaves_the_room() {
        let room = Room::new("test", 1);
        let a = room.admit().unwrap();
        drop(a);
        assert!(room.lock().seats.is_empty());
        assert!(idle(&room).is_empty());
        let _b = room.admit().unwrap();
        assert_eq!(room.lock().report.closed_idle, 0);
    }

    trait NowOrNever {
        fn now_or_never_for_test(self) -> bool;
    }

    impl<F: std::future::Future> NowOrNever for F {
        fn now_or_never_for_test(self) -> bool {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            std::pin::pin!(self).poll(&mut cx).is_ready()
        }
    }
}
