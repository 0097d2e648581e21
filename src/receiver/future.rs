//! The response future: the answer, recorded.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Response;

use crate::body::{self, ReceiverBody};
use crate::rejection::Rejection;

/// The future of [`Receiver`]'s answer.
pub struct ResponseFuture {
    pub(super) state: State,
    pub(super) started: std::time::Instant,
    pub(super) span: tracing::Span,
    pub(super) retry_after: Duration,
    pub(super) shared: Arc<crate::dispatch::Shared>,
}

pub(super) enum State {
    Running(Pin<Box<dyn Future<Output = Result<(), Rejection>> + Send>>),
    Refused(Rejection),
    Answered,
}

impl Future for ResponseFuture {
    type Output = Result<Response<ReceiverBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let result = match std::mem::replace(&mut self.state, State::Answered) {
            State::Running(mut accept) => match accept.as_mut().poll(cx) {
                Poll::Ready(result) => result,
                Poll::Pending => {
                    self.state = State::Running(accept);
                    return Poll::Pending;
                }
            },
            State::Refused(rejection) => Err(rejection),
            State::Answered => panic!("ResponseFuture polled after it answered"),
        };
        Poll::Ready(Ok(self.answer(result)))
    }
}

impl ResponseFuture {
    /// The response for the outcome, recorded in the request's span.
    fn answer(&self, result: Result<(), Rejection>) -> Response<ReceiverBody> {
        let response = match result {
            Ok(()) => body::ok(),
            Err(ref rejection) => rejection.clone().into_response(self.retry_after),
        };
        let status = response.status().as_u16();
        let outcome = match &result {
            Ok(()) => "accepted",
            Err(rejection) => rejection.code(),
        };
        if status == 503 {
            self.shared.count_unavailable();
        }
        let span = &self.span;
        span.record("status", status);
        span.record("outcome", outcome);
        span.record("answer_us", self.started.elapsed().as_micros() as u64);
        span.in_scope(|| match status {
            200 => tracing::info!("answered"),
            405 | 415 => tracing::debug!("answered"),
            _ => tracing::warn!("answered"),
        });
        response
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
