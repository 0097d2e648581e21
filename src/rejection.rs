//! Every answer other than 200, as a value and as an HTTP response.

use std::fmt;
use std::time::Duration;

use http::{HeaderValue, Response, StatusCode, header};

use crate::auth::Denied;
use crate::body::ReceiverBody;
use crate::decode::DecodeError;

/// Why a request was not answered 200.
///
/// Each refusal becomes a response with a JSON body
/// `{"error": "<code>", "message": "<what is wrong>", "path": "<member>"}` (`path` only where
/// there is one). It never holds a value from the body or a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    kind: RejectionKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RejectionKind {
    Denied(Denied),
    HeadersTooLarge { limit: usize },
    MethodNotAllowed,
    UnsupportedMediaType,
    PayloadTooLarge { limit: usize },
    BodyRead { message: String },
    BodyTimeout { after: Duration },
    BodyHook,
    Decode(DecodeError),
    QueueFull,
    StoreUnavailable,
    Starting,
    TooManyBytesInFlight,
    ShuttingDown,
    HandlerFailed,
    HandlerTimedOut,
}

impl Rejection {
    pub(crate) fn from_denied(denied: Denied) -> Self {
        Self {
            kind: RejectionKind::Denied(denied),
        }
    }

    pub(crate) fn headers_too_large(limit: usize) -> Self {
        Self {
            kind: RejectionKind::HeadersTooLarge { limit },
        }
    }

    pub(crate) fn body_timeout(after: Duration) -> Self {
        Self {
            kind: RejectionKind::BodyTimeout { after },
        }
    }

    pub(crate) fn body_hook() -> Self {
        Self {
            kind: RejectionKind::BodyHook,
        }
    }

    pub(crate) fn too_many_bytes_in_flight() -> Self {
        Self {
            kind: RejectionKind::TooManyBytesInFlight,
        }
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self {
            kind: RejectionKind::MethodNotAllowed,
        }
    }

    pub(crate) fn unsupported_media_type() -> Self {
        Self {
            kind: RejectionKind::UnsupportedMediaType,
        }
    }

    pub(crate) fn payload_too_large(limit: usize) -> Self {
        Self {
            kind: RejectionKind::PayloadTooLarge { limit },
        }
    }

    pub(crate) fn body_read(message: String) -> Self {
        Self {
            kind: RejectionKind::BodyRead { message },
        }
    }

    pub(crate) fn decode(err: DecodeError) -> Self {
        Self {
            kind: RejectionKind::Decode(err),
        }
    }

    pub(crate) fn store_unavailable() -> Self {
        Self {
            kind: RejectionKind::StoreUnavailable,
        }
    }

    pub(crate) fn starting() -> Self {
        Self {
            kind: RejectionKind::Starting,
        }
    }

    pub(crate) fn queue_full() -> Self {
        Self {
            kind: RejectionKind::QueueFull,
        }
    }

    pub(crate) fn shutting_down() -> Self {
        Self {
            kind: RejectionKind::ShuttingDown,
        }
    }

    pub(crate) fn handler_failed() -> Self {
        Self {
            kind: RejectionKind::HandlerFailed,
        }
    }

    pub(crate) fn handler_timed_out() -> Self {
        Self {
            kind: RejectionKind::HandlerTimedOut,
        }
    }

    /// The status code of the answer.
    pub fn status(&self) -> StatusCode {
        match &self.kind {
            RejectionKind::Denied(denied) => denied.status(),
            RejectionKind::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            RejectionKind::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            RejectionKind::BodyHook => StatusCode::BAD_REQUEST,
            RejectionKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            RejectionKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RejectionKind::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RejectionKind::BodyRead { .. } => StatusCode::BAD_REQUEST,
            RejectionKind::Decode(err) => err.status(),
            RejectionKind::QueueFull
            | RejectionKind::StoreUnavailable
            | RejectionKind::Starting
            | RejectionKind::TooManyBytesInFlight
            | RejectionKind::ShuttingDown
            | RejectionKind::HandlerFailed
            | RejectionKind::HandlerTimedOut => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A stable, machine-readable code, the `error` member of the body.
    pub fn code(&self) -> &'static str {
        use crate::decode::DecodeErrorKind as K;
        match &self.kind {
            RejectionKind::Denied(denied) if denied.status() == StatusCode::FORBIDDEN => {
                "forbidden"
            }
            RejectionKind::Denied(_) => "unauthorized",
            RejectionKind::HeadersTooLarge { .. } => "headers_too_large",
            RejectionKind::BodyTimeout { .. } => "body_timeout",
            RejectionKind::BodyHook => "body_hook_failed",
            RejectionKind::TooManyBytesInFlight => "too_many_bytes_in_flight",
            RejectionKind::MethodNotAllowed => "method_not_allowed",
            RejectionKind::UnsupportedMediaType => "unsupported_media_type",
            RejectionKind::PayloadTooLarge { .. } => "payload_too_large",
            RejectionKind::BodyRead { .. } => "body_read_failed",
            RejectionKind::Decode(err) => match err.kind() {
                K::Empty => "empty_body",
                K::TrailingBytes => "trailing_bytes",
                K::TooDeep => "nesting_too_deep",
                K::Shape => "invalid_notification",
                _ => "malformed_json",
            },
            RejectionKind::QueueFull => "queue_full",
            RejectionKind::StoreUnavailable => "store_unavailable",
            RejectionKind::Starting => "starting",
            RejectionKind::ShuttingDown => "shutting_down",
            RejectionKind::HandlerFailed => "handler_failed",
            RejectionKind::HandlerTimedOut => "handler_timed_out",
        }
    }

    /// The refusal of the authentication check, when there was one.
    pub fn denied(&self) -> Option<&Denied> {
        match &self.kind {
            RejectionKind::Denied(denied) => Some(denied),
            _ => None,
        }
    }

    /// The decoding error, when the body was refused for its content.
    pub fn decode_error(&self) -> Option<&DecodeError> {
        match &self.kind {
            RejectionKind::Decode(err) => Some(err),
            _ => None,
        }
    }

    /// The path of the offending member, when there is one.
    pub fn path(&self) -> Option<&str> {
        self.decode_error().and_then(DecodeError::path)
    }

    pub(crate) fn into_response(self, retry_after: Duration) -> Response<ReceiverBody> {
        #[derive(serde::Serialize)]
        struct ErrorBody<'a> {
            error: &'a str,
            message: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            path: Option<&'a str>,
        }
        let message = match &self.kind {
            RejectionKind::Decode(err) if err.line() > 0 => format!(
                "{} (line {} column {})",
                err.message(),
                err.line(),
                err.column()
            ),
            RejectionKind::Decode(err) => err.message().to_owned(),
            _ => self.to_string(),
        };
        let body = ErrorBody {
            error: self.code(),
            message,
            path: self.path(),
        };
        // Serializing a struct of strings into a Vec cannot fail.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = crate::body::json_response(self.status(), bytes.into());
        let headers = response.headers_mut();
        match self.kind {
            RejectionKind::MethodNotAllowed => {
                headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            _ if self.status() == StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after.as_secs()),
                );
            }
            _ => {}
        }
        response
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            RejectionKind::Denied(denied) => fmt::Display::fmt(denied, f),
            RejectionKind::HeadersTooLarge { limit } => {
                write!(
                    f,
                    "the request head is larger than the limit of {limit} bytes"
                )
            }
            RejectionKind::BodyTimeout { after } => {
                write!(f, "the body did not arrive within {} ms", after.as_millis())
            }
            RejectionKind::BodyHook => f.write_str("the body hook could not decode the body"),
            RejectionKind::TooManyBytesInFlight => {
                f.write_str("too many bodies are being received at once; retry later")
            }
            RejectionKind::MethodNotAllowed => f.write_str("only POST is allowed"),
            RejectionKind::UnsupportedMediaType => {
                f.write_str("the content type must be application/json")
            }
            RejectionKind::PayloadTooLarge { limit } => {
                write!(f, "the body is larger than the limit of {limit} bytes")
            }
            RejectionKind::BodyRead { message } => {
                write!(f, "the body could not be read: {message}")
            }
            RejectionKind::Decode(err) => fmt::Display::fmt(err, f),
            RejectionKind::QueueFull => f.write_str("the queue is full; retry later"),
            RejectionKind::StoreUnavailable => {
                f.write_str("the notification could not be stored; retry later")
            }
            RejectionKind::Starting => f.write_str("the receiver is starting; retry later"),
            RejectionKind::ShuttingDown => {
                f.write_str("the receiver is shutting down; retry later")
            }
            RejectionKind::HandlerFailed => f.write_str("the handler failed; retry later"),
            RejectionKind::HandlerTimedOut => f.write_str("the handler timed out; retry later"),
        }
    }
}

impl std::error::Error for Rejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.decode_error().map(|err| err as _)
    }
}
