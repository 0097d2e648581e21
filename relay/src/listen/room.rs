//! The open connections of one listener: which are idle, which are reading a request's body, and
//! since when; which to close to make room for a new one; and the WARN that says how many were
//! closed.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
    closed_slow_body: Counter,
    closed_new: Counter,
}

/// Where a connection is, as far as closing it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request in flight: closing it loses nothing.
    Idle,
    /// Every request in flight still reading its body: nothing acknowledged, the sender retries.
    Reading,
    /// A request read whole is being handled or answered: it is not closed for room.
    Handling,
}

#[derive(Debug, Default)]
struct Table {
    /// Numbers connections and orders the times they changed phase.
    tick: u64,
    /// The connections not told to close yet, by number.
    seats: HashMap<u64, Slot>,
    /// The idle ones by when they last became idle, oldest first.
    idle: BTreeMap<u64, u64>,
    /// The ones reading a body by when they started, oldest first.
    reading: BTreeMap<u64, u64>,
    report: Report,
}

#[derive(Debug)]
struct Slot {
    phase: Phase,
    /// Its key in `idle` or `reading`.
    since: u64,
    evict: Arc<Notify>,
}

/// What was closed since the last WARN.
#[derive(Debug, Default)]
struct Report {
    last: Option<Instant>,
    closed_idle: u64,
    closed_slow_body: u64,
    closed_new: u64,
    accept_errors: u64,
    last_error: Option<String>,
}

impl Report {
    fn is_empty(&self) -> bool {
        self.closed_idle + self.closed_slow_body + self.closed_new + self.accept_errors == 0
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
        let closed = |which: &'static str| {
            counter!(
                "airudder_connections_closed_for_room_total",
                "listener" => listener, "closed" => which
            )
        };
        Arc::new(Self {
            listener,
            cap: cap.max(1),
            table: Mutex::default(),
            open: gauge!("airudder_connections_open", "listener" => listener),
            closed_idle: closed("oldest_idle"),
            closed_slow_body: closed("slow_body"),
            closed_new: closed("new"),
        })
    }

    /// A seat for a connection just accepted: at the cap, the oldest idle one is told to close
    /// to make room, or if none is idle the one reading a body the longest; `None` when every
    /// one is handling a request (the new one is closed, and its sender retries).
    pub(super) fn admit(self: &Arc<Self>) -> Option<Arc<Seat>> {
        let mut table = self.lock();
        if table.seats.len() >= self.cap && !self.make_room(&mut table) {
            self.closed_new.increment(1);
            table.report.closed_new += 1;
            self.warn(table.report.due(false));
            return None;
        }
        table.tick += 1;
        let (id, evict) = (table.tick, Arc::new(Notify::new()));
        table.seats.insert(
            id,
            Slot {
                phase: Phase::Idle,
                since: id,
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
            unread: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            evict,
        }))
    }

    /// Accepting failed (out of files, most likely): a connection is told to close as for a new
    /// one, so that the retry finds a file.
    pub(super) fn accept_failed(&self, error: &std::io::Error) {
        let mut table = self.lock();
        self.make_room(&mut table);
        table.report.accept_errors += 1;
        table.report.last_error = Some(error.to_string());
        let report = table.report.due(false);
        drop(table);
        self.warn(report);
    }

    /// Tells a connection to close and counts it; `false` if every one is handling a request.
    fn make_room(&self, table: &mut Table) -> bool {
        match table.evict() {
            Some(Phase::Idle) => {
                self.closed_idle.increment(1);
                table.report.closed_idle += 1;
            }
            Some(_) => {
                self.closed_slow_body.increment(1);
                table.report.closed_slow_body += 1;
            }
            None => return false,
        }
        true
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
            closed_slow_body = report.closed_slow_body,
            closed_new = report.closed_new,
            accept_errors = report.accept_errors,
            last_error = report.last_error.as_deref().unwrap_or("none"),
            "closed connections to make room, since the last report: {} idle (the longest idle first), {} reading a body (the longest reading first, when none was idle), {} new (every other handling a request)",
            report.closed_idle,
            report.closed_slow_body,
            report.closed_new,
        );
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table is consistent after every statement: a panic elsewhere leaves it usable.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Table {
    /// Tells the connection idle the longest to close, else the one reading a body the longest,
    /// and forgets it; its phase, or `None` if every one is handling a request.
    fn evict(&mut self) -> Option<Phase> {
        let (_, id) = self.idle.pop_first().or_else(|| self.reading.pop_first())?;
        let slot = self.seats.remove(&id)?;
        // A permit if the connection's task is not waiting yet: the order is not lost.
        slot.evict.notify_one();
        Some(slot.phase)
    }

    /// Moves connection `id` to `phase`, to the back of its queue if it changed.
    fn settle(&mut self, id: u64, phase: Phase) {
        let Self {
            tick,
            seats,
            idle,
            reading,
            ..
        } = self;
        let Some(slot) = seats.get_mut(&id) else {
            return;
        };
        if slot.phase == phase {
            return;
        }
        match slot.phase {
            Phase::Idle => idle.remove(&slot.since),
            Phase::Reading => reading.remove(&slot.since),
            Phase::Handling => None,
        };
        *tick += 1;
        (slot.phase, slot.since) = (phase, *tick);
        match phase {
            Phase::Idle => idle.insert(*tick, id),
            Phase::Reading => reading.insert(*tick, id),
            Phase::Handling => None,
        };
    }
}

/// Why a connection's task asks whether it may close at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Close {
    /// The room told it to close: at once unless a request read whole is being handled.
    ForRoom,
    /// The server stops: at once only if idle; the requests in flight are answered first.
    Stop,
}

/// One open connection's place in its [`Room`]: idle, reading a request's body, or handling a
/// request; leaves the room when the last clone is dropped (the connection's task ended).
#[derive(Debug)]
pub(super) struct Seat {
    room: Arc<Room>,
    id: u64,
    /// Requests in flight, and those of them whose body is still being read; changed under the
    /// room's lock, so that an eviction and a change of phase are ordered.
    in_flight: AtomicUsize,
    unread: AtomicUsize,
    /// Set under the room's lock once the connection's task decided to drop the connection: a
    /// body that ends later must not end well.
    closing: AtomicBool,
    evict: Arc<Notify>,
}

impl Seat {
    /// Resolves when the room told this connection to close.
    pub(super) async fn evicted(&self) {
        self.evict.notified().await;
    }

    /// Whether the connection may be dropped now, losing nothing acknowledged; if so, a body
    /// still being read on it will not end well from now on.
    pub(super) fn close_now(&self, why: Close) -> bool {
        let _table = self.room.lock();
        let close = match (why, self.phase()) {
            (_, Phase::Idle) | (Close::ForRoom, Phase::Reading) => true,
            (Close::Stop, Phase::Reading) | (_, Phase::Handling) => false,
        };
        if close {
            self.closing.store(true, Ordering::SeqCst);
        }
        close
    }

    /// A request started, with a body to read or none; it ends when the [`Busy`] is dropped
    /// (its response sent, or dropped), its body's reading when the [`Unread`] is told or
    /// dropped.
    pub(super) fn busy(self: &Arc<Self>, body: bool) -> (Busy, Option<Unread>) {
        let mut table = self.room.lock();
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        if body {
            self.unread.fetch_add(1, Ordering::SeqCst);
        }
        table.settle(self.id, self.phase());
        (
            Busy(Arc::clone(self)),
            body.then(|| Unread(Some(Arc::clone(self)))),
        )
    }

    /// Under the room's lock.
    fn phase(&self) -> Phase {
        let in_flight = self.in_flight.load(Ordering::SeqCst);
        if in_flight == 0 {
            Phase::Idle
        } else if self.unread.load(Ordering::SeqCst) >= in_flight {
            Phase::Reading
        } else {
            Phase::Handling
        }
    }

    fn done(&self) {
        let mut table = self.room.lock();
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        table.settle(self.id, self.phase());
    }

    /// `false` if the connection is being dropped: the body must not end well.
    fn read(&self) -> bool {
        let mut table = self.room.lock();
        self.unread.fetch_sub(1, Ordering::SeqCst);
        table.settle(self.id, self.phase());
        !self.closing.load(Ordering::SeqCst)
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut table = self.room.lock();
        if let Some(slot) = table.seats.remove(&self.id) {
            match slot.phase {
                Phase::Idle => table.idle.remove(&slot.since),
                Phase::Reading => table.reading.remove(&slot.since),
                Phase::Handling => None,
            };
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

/// A request's body still being read, until [`Unread::read`] or dropped.
#[derive(Debug)]
pub(super) struct Unread(Option<Arc<Seat>>);

impl Unread {
    /// The body was read whole: the request is handled from now on, not closed for room.
    /// `false` if the connection is being dropped (its request is not to be acknowledged).
    pub(super) fn read(&mut self) -> bool {
        self.0.take().is_none_or(|seat| seat.read())
    }
}

impl Drop for Unread {
    fn drop(&mut self) {
        self.read();
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
        drop(a.busy(false));
        let busy_c = c.busy(false);
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
        let (_busy_a, _busy_b) = (a.busy(false), b.busy(false));
        assert!(room.admit().is_none());
        assert!(!a.close_now(Close::ForRoom));
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
    fn when_none_is_idle_the_one_reading_a_body_the_longest_makes_room() {
        let room = Room::new("test", 3);
        let (a, b, c) = (
            room.admit().unwrap(),
            room.admit().unwrap(),
            room.admit().unwrap(),
        );
        let (_busy_a, mut body_a) = a.busy(true);
        let (_busy_b, body_b) = b.busy(true);
        let (_busy_c, body_c) = c.busy(false);
        assert!(body_c.is_none(), "no body: handled at once");
        assert!(body_a.as_mut().unwrap().read(), "a's body read whole");
        // `a` and `c` are handling their request; `b` still reads its body.
        let d = room.admit().expect("room made");
        assert!(
            b.evict.notified().now_or_never_for_test(),
            "b was told to close"
        );
        assert!(b.close_now(Close::ForRoom));
        assert!(
            !body_b.map(|mut body| body.read()).unwrap(),
            "a body that ends once its connection is dropped does not end well"
        );
        assert!(!a.close_now(Close::ForRoom) && !c.close_now(Close::ForRoom));
        let (_busy_d, body_d) = d.busy(true);
        // The body dropped unread (refused early): `d` is handling its request now.
        drop(body_d);
        assert!(room.admit().is_none(), "every one handling a request");
        let table = room.lock();
        assert!(table.idle.is_empty() && table.reading.is_empty());
        assert_eq!(table.report.closed_new, 1, "after the WARN of b's closing");
    }

    #[test]
    fn a_stop_closes_at_once_only_an_idle_connection() {
        let room = Room::new("test", 2);
        let (a, b) = (room.admit().unwrap(), room.admit().unwrap());
        let (_busy_b, mut body_b) = b.busy(true);
        assert!(!b.close_now(Close::Stop), "its request is answered first");
        assert!(body_b.as_mut().unwrap().read());
        assert!(a.close_now(Close::Stop));
    }

    #[test]
    fn a_connection_that_ends_leaves_the_room() {
        let room = Room::new("test", 1);
        let a = room.admit().unwrap();
        drop(a);
        assert!(room.lock().seats.is_empty());
        assert!(idle(&room).is_empty());
        let b = room.admit().unwrap();
        let (busy, body) = b.busy(true);
        assert_eq!(room.lock().reading.len(), 1);
        drop((b, busy, body));
        let table = room.lock();
        assert!(table.seats.is_empty() && table.reading.is_empty());
        drop(table);
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
