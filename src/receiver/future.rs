//! The response future: the answer, counted and logged in one place.

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
use crate::stats::{Accepted, Counters};

/// The future of [`Receiver`](super::Receiver)'s answer.
pub struct ResponseFuture {
    pub(super) state: State,
    pub(super) started: std::time::Instant,
    pub(super) span: tracing::Span,
    pub(super) retry_after: Duration,
    pub(super) counters: Arc<Counters>,
}

pub(super) type Accepting = Pin<Box<dyn Future<Output = Result<Accepted, Rejection>> + Send>>;

pub(super) enum State {
    Running(Accepting),
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
    /// The response for the outcome: counted by status and reason, recorded in the request's
    /// span, and for a refusal logged at WARN (rate-limited, see [`crate::stats`]).
    fn answer(&self, result: Result<Accepted, Rejection>) -> Response<ReceiverBody> {
        let span = &self.span;
        let elapsed = self.started.elapsed();
        match &result {
            Ok(_) => self.counters.answered(&result, elapsed),
            // A refusal may log: inside the request's span, so the line carries its fields.
            Err(_) => span.in_scope(|| self.counters.answered(&result, elapsed)),
        }
        let (response, outcome) = match result {
            Ok(accepted) => (body::ok(), accepted.reason()),
            Err(rejection) => {
                let code = rejection.code();
                (rejection.into_response(self.retry_after), code)
            }
        };
        let status = response.status().as_u16();
        span.record("status", status);
        span.record("outcome", outcome);
        span.record("answer_us", elapsed.as_micros() as u64);
        span.in_scope(|| match status {
            200 => tracing::info!("answered"),
            _ => tracing::debug!("answered"),
        });
        response
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
