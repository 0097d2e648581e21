//! The service of one connection: the router, with the peer's address in each request and the
//! connection marked busy from a request's head to the end of its response.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::service::TowerToHyperService;

use super::room::{Busy, Seat};

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
        let busy = self.seat.busy();
        // Where the library's IP allow-list and the store's envelope read the peer.
        request.extensions_mut().insert(ConnectInfo(self.peer));
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
