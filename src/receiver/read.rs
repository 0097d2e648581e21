//! Reading the body, within the limit and the cap on bytes in flight.

use std::pin::pin;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::BoxError;
use crate::rejection::Rejection;

/// The bytes of the bodies the receiver holds, across all requests, from the first byte read
/// until the handler is done with the notification: past the cap, 503 (the sender retries)
/// rather than running out of memory.
pub(super) struct InFlight<'a> {
    semaphore: &'a Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
    bytes: usize,
}

impl<'a> InFlight<'a> {
    pub(super) fn new(semaphore: &'a Arc<Semaphore>) -> Self {
        Self {
            semaphore,
            held: None,
            bytes: 0,
        }
    }

    /// Holds at least `total` bytes.
    pub(super) fn reserve(&mut self, total: usize) -> Result<(), Rejection> {
        let Some(more) = total.checked_sub(self.bytes).filter(|&more| more > 0) else {
            return Ok(());
        };
        let more_permits =
            u32::try_from(more).map_err(|_| Rejection::too_many_bytes_in_flight())?;
        let permit = Arc::clone(self.semaphore)
            .try_acquire_many_owned(more_permits)
            .map_err(|_| Rejection::too_many_bytes_in_flight())?;
        match &mut self.held {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
        self.bytes = total;
        Ok(())
    }

    /// The reservation, to be held until the notification is handled.
    pub(super) fn into_permit(self) -> Option<OwnedSemaphorePermit> {
        self.held
    }
}
/// Reads the whole body, refusing it as soon as it passes `limit`. A body in one chunk is
/// kept without a copy; a body in several is copied once into a buffer sized from the
/// declared length.
pub(super) async fn read_body<B>(
    body: B,
    limit: usize,
    declared: usize,
    in_flight: &mut InFlight<'_>,
) -> Result<Bytes, Rejection>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let mut body = pin!(body);
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut total = 0usize;
    while let Some(frame) = body.as_mut().frame().await {
        let frame = frame.map_err(|err| Rejection::body_read(err.into().to_string()))?;
        let Ok(mut data) = frame.into_data() else {
            continue; // trailers carry nothing of the notification
        };
        let len = data.remaining();
        total = total.saturating_add(len);
        if total > limit {
            return Err(Rejection::payload_too_large(limit));
        }
        in_flight.reserve(total)?;
        if len == 0 {
            continue;
        }
        match (&first, &mut joined) {
            (None, _) => first = Some(data.copy_to_bytes(len)),
            (Some(head), None) => {
                let mut buf = BytesMut::with_capacity(declared.max(total));
                buf.extend_from_slice(head);
                buf.put(data);
                joined = Some(buf);
            }
            (Some(_), Some(buf)) => buf.put(data),
        }
    }
    Ok(match joined {
        Some(buf) => buf.freeze(),
        None => first.unwrap_or_default(),
    })
}
