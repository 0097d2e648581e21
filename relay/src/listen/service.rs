//! The service of one connection: the router, with the peer's address in each request and the
//! connection marked reading from a request's head to the end of its body, then handling until
//! the end of its response.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::BoxError;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::service::TowerToHyperService;

use super::room::{Busy, Seat, Unread};

/// The router as one connection's hyper service.
#[derive(Debug)]
pub(super) struct Tracked {
    inner: TowerToHyperService<Router>,
    seat: Arc<Seat>,
    peer: SocketAddr,
}

impl Tracked {
    pub(super) fn new(router: Router, seat: Arc<Seat>, peer: SocketAddr) -> Self {
        Self {
            inner: TowerToHyperService::new(router),
            seat,
            peer,
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for Tracked {
    type Response = Response<Tracking>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        // hyper calls this once the head is read: from here the connection is not idle.
        let (busy, unread) = self
            .seat
            .busy(!http_body::Body::is_end_stream(request.body()));
        // Where the library's IP allow-list and the store's envelope read the peer.
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let request = request.map(|inner| Reading { inner, unread });
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|inner| Tracking { inner, _busy: busy }))
        })
    }
}

/// A response body that keeps its connection busy until hyper has taken its last frame (and
/// dropped it).
#[derive(Debug)]
pub(super) struct Tracking {
    inner: Body,
    _busy: Busy,
}

impl http_body::Body for Tracking {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that marks its connection handling, no longer reading, once it has ended (or
/// is dropped); its frames pass through.
#[derive(Debug)]
pub(super) struct Reading {
    inner: Incoming,
    /// `None` once read, and for a request without a body.
    unread: Option<Unread>,
}

impl Reading {
    /// The body has ended: `Err` if its connection is being dropped, so that a request nobody
    /// will be answered for is not acted on either.
    fn ended(&mut self) -> Result<(), BoxError> {
        match self.unread.take().map(|mut unread| unread.read()) {
            Some(false) => Err("the connection was closed for room".into()),
            _ => Ok(()),
        }
    }
}

impl http_body::Body for Reading {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        let ended = match &frame {
            None | Some(Err(_)) => true,
            Some(Ok(_)) => self.inner.is_end_stream(),
        };
        if ended && let Err(err) = self.ended() {
            return Poll::Ready(Some(Err(err)));
        }
        Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
