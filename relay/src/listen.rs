//! Serving a router on a TCP listener so that slow and idle clients cannot shut the door.
//!
//! `axum::serve` closes nothing: a connection that sends no request, or its head a byte at a
//! time, stays open for good, and about a thousand of them use up the process' files, after
//! which Airudder's notifications go unanswered. Here each connection is hyper's HTTP/1 server
//! with a timer and a [header timeout](HEAD_WITHIN): the head of every request, the first on a
//! connection or the next on a kept-alive one, arrives within it or the connection is closed;
//! it is the idle timeout too. On top, a cap on open connections below the file limit (its
//! default: [`limit`]): at the cap, the connection idle the longest (no request in flight:
//! nothing sent yet, a head still arriving, or kept alive between requests) is closed to make
//! room for the new one; if none is idle, the one reading a request's body the longest (a body
//! trickling in holds a file as long as the library's body deadline, and the request is not
//! acknowledged yet, so its sender retries); when every one is handling a request read whole,
//! the new one is closed at once, and its sender retries. What was closed is counted in
//! `airudder_connections_closed_for_room_total` (`closed`: `oldest_idle`, `slow_body`, `new`)
//! and logged at WARN at most once every 10 s.
//!
//! - [`limit`]: the file limit and the default caps.
//! - [`room`]: the open connections, idle, reading a body or handling, and which to close.
//! - [`service`]: the router as each connection's service, marking its phase per request.

mod limit;
mod room;
mod service;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use self::limit::FileLimit;
use self::room::{Close, Room, Seat};
use self::service::Tracked;

/// How long a connection may take to send a request's head (or, between requests, to start
/// the next): Airudder sends its head at once; anyone slower is holding a file.
pub(crate) const HEAD_WITHIN: Duration = Duration::from_secs(10);

/// After an accept error (out of files), the pause before the next try: long enough for the
/// connection told to close to close, short enough that the backlog barely waits.
const RETRY_ACCEPT: Duration = Duration::from_millis(50);

/// Which listener: its name in logs and metrics, and its default cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Door {
    /// The callbacks, `/health` and `/ready`.
    Main,
    /// The admin API and `/metrics`.
    Admin,
}

impl Door {
    fn label(self) -> &'static str {
        match self {
            Self::Main => "main",
            Self::Admin => "admin",
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, at most `max_connections` open at
/// once (`None`: the door's default, from the file limit for [`Door::Main`]); then stops
/// accepting, closes idle connections, and returns once the requests in flight are answered.
///
/// Says its cap when called, with the other start-up lines.
pub(crate) fn serve(
    listener: TcpListener,
    app: Router,
    door: Door,
    max_connections: Option<usize>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let (cap, line) = cap(door, max_connections, FileLimit::of_this_process());
    tracing::info!(target: crate::server::STARTUP, "{line}");
    let room = Room::new(door.label(), cap);
    accept(listener, app, room, shutdown)
}

/// The cap and the line that says it.
fn cap(door: Door, max_connections: Option<usize>, files: FileLimit) -> (usize, String) {
    let head = HEAD_WITHIN.as_secs();
    let (cap, why) = match (door, max_connections) {
        (_, Some(cap)) if cap > files.main_cap_without_ceiling() => (
            cap,
            format!(
                "as set; WARNING: over the file limit {} less {}, the process may run out of files and refuse Airudder: raise the limit (LimitNOFILE) or lower the cap",
                files.soft,
                limit::RESERVE
            ),
        ),
        (_, Some(cap)) => (cap.max(1), format!("as set; file limit {}", files.soft)),
        (Door::Admin, None) => (limit::ADMIN, "its own".to_owned()),
        (Door::Main, None) => (
            files.main_cap(),
            format!(
                "file limit {}{} less {} kept for the rest, at most {}",
                files.soft,
                if files.read { "" } else { " (assumed)" },
                limit::RESERVE,
                limit::MAX_DEFAULT
            ),
        ),
    };
    let line = format!(
        "{} listener: at most {cap} connections ({why}), the idle longest closed first to make room; request heads within {head}s",
        door.label()
    );
    (cap, line)
}

async fn accept(
    listener: TcpListener,
    app: Router,
    room: Arc<Room>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut http = http1::Builder::new();
    // hyper arms the header timeout only with a timer; without one a head may take forever.
    http.timer(TokioTimer::new())
        .header_read_timeout(HEAD_WITHIN);
    // Each connection holds a receiver: the sender's `closed()` is every connection gone.
    let (stop, stopping) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) if is_connection_error(&err) => continue,
                Err(err) => {
                    room.accept_failed(&err);
                    tokio::time::sleep(RETRY_ACCEPT).await;
                    continue;
                }
            },
        };
        let Some(seat) = room.admit() else {
            drop(stream);
            continue;
        };
        tokio::spawn(connection(
            &http,
            stream,
            peer,
            app.clone(),
            seat,
            stopping.clone(),
        ));
    }
    drop(listener);
    drop(stopping);
    stop.send_replace(());
    stop.closed().await;
    room.flush_report();
}

/// Errors of one connection that did not make it, not of the listener (as `axum::serve`).
fn is_connection_error(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        err.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// One connection, served until it ends, the room tells it to close, or the server stops.
fn connection(
    http: &http1::Builder,
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    seat: Arc<Seat>,
    mut stopping: watch::Receiver<()>,
) -> impl Future<Output = ()> + Send + 'static {
    let service = Tracked::new(app, Arc::clone(&seat), peer);
    let connection = http.serve_connection(TokioIo::new(stream), service);
    async move {
        let mut connection = pin!(connection);
        let (mut evicted, mut stopped) = (false, false);
        loop {
            let why = tokio::select! {
                // Errors are the peer's (a reset, a header timeout): nothing to do but close.
                _ = connection.as_mut() => return,
                () = seat.evicted(), if !evicted => {
                    evicted = true;
                    Close::ForRoom
                }
                Ok(()) = stopping.changed(), if !stopped => {
                    stopped = true;
                    Close::Stop
                }
            };
            // Idle, or (for room) a body still arriving: no request acknowledged to lose, and
            // hyper's graceful close would wait for the head or body; dropping closes it now.
            if seat.close_now(why) {
                return;
            }
            // A request is being handled: it is answered, then the connection closes.
            connection.as_mut().graceful_shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::extract::ConnectInfo;
    use axum::routing::get;
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn requests_carry_the_peer_and_a_stop_closes_idle_connections_and_answers_the_rest() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let started = Arc::new(tokio::sync::Notify::new());
        let slow_started = Arc::clone(&started);
        let app = Router::new()
            .route(
                "/peer",
                get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
            )
            .route(
                "/slow",
                get(|| async move {
                    // A permit: the test may wait after this has run.
                    slow_started.notify_one();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    "done"
                }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, app, Door::Admin, Some(8), async {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::new();
        let peer = client
            .get(format!("http://{addr}/peer"))
            .send()
            .await
            .unwrap();
        let peer: SocketAddr = peer.text().await.unwrap().parse().unwrap();
        assert!(
            peer.ip().is_loopback() && peer.port() != addr.port(),
            "{peer}"
        );

        let mut idle = TcpStream::connect(addr).await.unwrap();
        let slow = tokio::spawn(client.get(format!("http://{addr}/slow")).send());
        tokio::time::timeout(Duration::from_secs(10), started.notified())
            .await
            .expect("/slow reached its handler");
        stop.send(()).unwrap();
        let closed = tokio::time::timeout(Duration::from_secs(1), idle.read(&mut [0; 8])).await;
        assert!(matches!(closed, Ok(Ok(0) | Err(_))), "{closed:?}");
        let slow = slow.await.unwrap().unwrap();
        assert_eq!(slow.text().await.unwrap(), "done");
        tokio::time::timeout(Duration::from_secs(2), server)
            .await
            .expect("serving ends once the last request is answered")
            .unwrap();
    }

    #[test]
    fn the_start_up_line_says_the_cap_and_where_it_comes_from() {
        let files = FileLimit {
            soft: 1024,
            read: true,
        };
        assert_eq!(
            cap(Door::Main, None, files),
            (
                896,
                "main listener: at most 896 connections (file limit 1024 less 128 kept for the rest, at most 8192), the idle longest closed first to make room; request heads within 10s".to_owned()
            )
        );
        assert_eq!(cap(Door::Admin, None, files).0, 64);
        let (over, line) = cap(Door::Main, Some(5000), files);
        assert_eq!(over, 5000, "as set, however unwise");
        assert!(
            line.contains("WARNING: over the file limit 1024 less 128"),
            "{line}"
        );
        let (under, line) = cap(Door::Main, Some(500), files);
        assert!(under == 500 && !line.contains("WARNING"), "{line}");
        assert_eq!(cap(Door::Main, Some(0), files).0, 1);
    }
}
