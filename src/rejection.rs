//! Every answer other than 200, as a value and as an HTTP response: one table.

use std::fmt;
use std::time::Duration;

use http::{HeaderValue, Response, StatusCode, header};

use crate::auth::Denied;
use crate::body::ReceiverBody;
use crate::decode::{DecodeError, DecodeErrorKind};

/// Why a request was not answered 200.
///
/// Each refusal becomes a response with a JSON body
/// `{"error": "<code>", "message": "<what is wrong>", "path": "<member>"}` (`path` only where
/// there is one). It never holds a value from the body or a secret. Every 503 carries
/// `Retry-After`, and a 405 carries `Allow: POST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    kind: RejectionKind,
}

/// The table: each refusal with its constructor, status, code and message. A refusal added
/// here is counted, logged and answered everywhere else without another edit.
///
/// The last sections hold the refusals that wrap an error of another module (authentication's
/// [`Denied`], the decoder's [`DecodeError`]): their constructor picks the row by matching the
/// error, and the message and `source()` are the error's own.
macro_rules! rejections {
    (
        $(
            $(#[$doc:meta])*
            $kind:ident $({ $($field:ident: $ty:ty),* })?
                => $new:ident, $status:ident, $code:literal, $($message:expr),+;
        )*
        $(
            ($from:ident($var:ident: $source:ty) by $key:expr) {
                $(
                    $(#[$wdoc:meta])*
                    $wkind:ident($pat:pat) => $wstatus:ident, $wcode:literal;
                )*
            }
        )*
    ) => {
        #[derive(Debug, Clone, PartialEq, Eq)]
        enum RejectionKind {
            $( $(#[$doc])* $kind $({ $($field: $ty),* })?, )*
            $( $( $(#[$wdoc])* $wkind($source), )* )*
        }

        impl Rejection {
            $(
                pub(crate) fn $new($($($field: $ty),*)?) -> Self {
                    Self { kind: RejectionKind::$kind $({ $($field),* })? }
                }
            )*
            $(
                pub(crate) fn $from($var: $source) -> Self {
                    let kind = match $key {
                        $( $pat => RejectionKind::$wkind($var), )*
                    };
                    Self { kind }
                }
            )*

            /// The status code of the answer.
            pub fn status(&self) -> StatusCode {
                match &self.kind {
                    $( RejectionKind::$kind { .. } => StatusCode::$status, )*
                    $( $( RejectionKind::$wkind(_) => StatusCode::$wstatus, )* )*
                }
            }

            /// A stable, machine-readable code, the `error` member of the body.
            pub fn code(&self) -> &'static str {
                match &self.kind {
                    $( RejectionKind::$kind { .. } => $code, )*
                    $( $( RejectionKind::$wkind(_) => $wcode, )* )*
                }
            }
        }

        impl fmt::Display for Rejection {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match &self.kind {
                    $(
                        #[allow(unused_variables)]
                        RejectionKind::$kind $({ $($field),* })? => write!(f, $($message),+),
                    )*
                    $( $( RejectionKind::$wkind(err) => fmt::Display::fmt(err, f), )* )*
                }
            }
        }

        impl std::error::Error for Rejection {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                match &self.kind {
                    $( RejectionKind::$kind { .. } => None, )*
                    $( $( RejectionKind::$wkind(err) => Some(err), )* )*
                }
            }
        }

        /// Every code the table can answer, with its status, in the table's order.
        const CODES: &[(&str, StatusCode)] = &[
            $( ($code, StatusCode::$status), )*
            $( $( ($wcode, StatusCode::$wstatus), )* )*
        ];
    };
}

rejections! {
    /// The request head is larger than the limit.
    HeadersTooLarge { limit: usize }
        => headers_too_large, REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large",
           "the request head is larger than the limit of {} bytes", limit;
    /// Another method than POST.
    MethodNotAllowed => method_not_allowed, METHOD_NOT_ALLOWED, "method_not_allowed",
           "only POST is allowed";
    /// Another content type than JSON.
    UnsupportedMediaType => unsupported_media_type, UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
           "the content type must be application/json";
    /// The body is larger than the limit.
    PayloadTooLarge { limit: usize } => payload_too_large, PAYLOAD_TOO_LARGE, "payload_too_large",
           "the body is larger than the limit of {} bytes", limit;
    /// The connection failed while the body was read.
    BodyRead { message: String } => body_read, BAD_REQUEST, "body_read_failed",
           "the body could not be read: {}", message;
    /// The body was slower than the deadline.
    BodyTimeout { after: Duration } => body_timeout, REQUEST_TIMEOUT, "body_timeout",
           "the body did not arrive within {} ms", after.as_millis();
    /// The body hook refused the body.
    BodyHook => body_hook, BAD_REQUEST, "body_hook_failed",
           "the body hook could not decode the body";
    /// The bounded queue is full.
    QueueFull => queue_full, SERVICE_UNAVAILABLE, "queue_full",
           "the queue is full; retry later";
    /// The store failed.
    StoreUnavailable => store_unavailable, SERVICE_UNAVAILABLE, "store_unavailable",
           "the notification could not be stored; retry later";
    /// The cap on bytes in flight across requests.
    TooManyBytesInFlight => too_many_bytes_in_flight, SERVICE_UNAVAILABLE, "too_many_bytes_in_flight",
           "too many bodies are being received at once; retry later";
    /// The receiver is stopping.
    ShuttingDown => shutting_down, SERVICE_UNAVAILABLE, "shutting_down",
           "the receiver is shutting down; retry later";
    /// The handler failed (the "handled" ack).
    HandlerFailed => handler_failed, SERVICE_UNAVAILABLE, "handler_failed",
           "the handler failed; retry later";
    /// The handler did not finish in time (the "handled" ack).
    HandlerTimedOut => handler_timed_out, SERVICE_UNAVAILABLE, "handler_timed_out",
           "the handler timed out; retry later";
    // Refused by authentication, by the status its check chose.
    (from_denied(denied: Denied) by denied.status()) {
        /// No or wrong token, wrong Basic credentials.
        Unauthorized(StatusCode::UNAUTHORIZED) => UNAUTHORIZED, "unauthorized";
        /// Refused by the IP allow-list.
        Forbidden(_) => FORBIDDEN, "forbidden";
    }
    // The body is not a valid event, by the decoder's kind: 400, or 422 for the wrong shape.
    (decode(err: DecodeError) by err.kind()) {
        /// An empty body.
        EmptyBody(DecodeErrorKind::Empty) => BAD_REQUEST, "empty_body";
        /// Malformed JSON or bad UTF-8.
        MalformedJson(DecodeErrorKind::Syntax) => BAD_REQUEST, "malformed_json";
        /// Bytes after the value.
        TrailingBytes(DecodeErrorKind::TrailingBytes) => BAD_REQUEST, "trailing_bytes";
        /// Nesting deeper than 128.
        NestingTooDeep(DecodeErrorKind::TooDeep) => BAD_REQUEST, "nesting_too_deep";
        /// Valid JSON of the wrong shape.
        InvalidNotification(DecodeErrorKind::Shape) => UNPROCESSABLE_ENTITY, "invalid_notification";
    }
}

/// Every refusal's code with its status, in a fixed order: the table's.
pub(crate) fn all_codes() -> impl Iterator<Item = (&'static str, StatusCode)> {
    CODES.iter().copied()
}

/// Whether an answer with this status refuses the body itself (its size, pace or content): 400,
/// 408, 413, 422. The one definition behind [`Rejection::is_body_refusal`] and
/// [`Stats::refused`](crate::Stats::refused).
pub(crate) fn refuses_the_body(status: StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 408 | 413 | 422)
}

/// How many codes [`all_codes`] yields.
pub(crate) const CODE_COUNT: usize = CODES.len();

impl Rejection {
    /// Where [`code`](Self::code) stands in the fixed list of codes, for counting.
    pub(crate) fn code_index(&self) -> usize {
        let code = self.code();
        all_codes()
            .position(|(known, _)| known == code)
            .unwrap_or(CODE_COUNT - 1)
    }

    /// Whether the body itself was refused (its size, its pace or its content: 400, 408, 413,
    /// 422): such a refusal goes to the [`OnRejected`](crate::OnRejected) hook.
    pub fn is_body_refusal(&self) -> bool {
        refuses_the_body(self.status())
    }

    /// The refusal of the authentication check, when there was one.
    pub fn denied(&self) -> Option<&Denied> {
        std::error::Error::source(self)?.downcast_ref()
    }

    /// The decoding error, when the body was refused for its content.
    pub fn decode_error(&self) -> Option<&DecodeError> {
        std::error::Error::source(self)?.downcast_ref()
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
        // The decoder's path has a member of its own in the body.
        let message = match self.decode_error() {
            Some(err) if err.line() > 0 => format!(
                "{} (line {} column {})",
                err.message(),
                err.line(),
                err.column()
            ),
            Some(err) => err.message().to_owned(),
            None => self.to_string(),
        };
        let body = ErrorBody {
            error: self.code(),
            message,
            path: self.path(),
        };
        // Serializing a struct of strings into a Vec cannot fail.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let status = self.status();
        let mut response = crate::body::json_response(status, bytes.into());
        let headers = response.headers_mut();
        if status == StatusCode::METHOD_NOT_ALLOWED {
            headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs()),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed_once() {
        let codes: Vec<_> = all_codes().map(|(code, _)| code).collect();
        let mut unique = codes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), codes.len(), "{codes:?}");
        assert_eq!(codes.len(), CODE_COUNT);
    }

    #[test]
    fn each_refusal_answers_its_listed_status_and_headers() {
        let cases = [
            Rejection::headers_too_large(10),
            Rejection::method_not_allowed(),
            Rejection::unsupported_media_type(),
            Rejection::payload_too_large(10),
            Rejection::body_read("reset".into()),
            Rejection::body_timeout(Duration::from_secs(1)),
            Rejection::body_hook(),
            Rejection::queue_full(),
            Rejection::store_unavailable(),
            Rejection::too_many_bytes_in_flight(),
            Rejection::shutting_down(),
            Rejection::handler_failed(),
            Rejection::handler_timed_out(),
            Rejection::from_denied(Denied::forbidden("no")),
            Rejection::from_denied(Denied::unauthorized("no")),
        ];
        for rejection in cases {
            let code = rejection.code();
            let listed = all_codes().find(|(c, _)| *c == code).map(|(_, s)| s);
            assert_eq!(listed, Some(rejection.status()), "{code}");
            assert_eq!(all_codes().nth(rejection.code_index()).unwrap().0, code);
            let response = rejection.clone().into_response(Duration::from_secs(60));
            assert_eq!(response.status(), rejection.status(), "{code}");
            let retry_after = response.headers().get(header::RETRY_AFTER);
            assert_eq!(retry_after.is_some(), response.status() == 503, "{code}");
            assert!(!rejection.to_string().is_empty(), "{code}");
        }
    }

    #[test]
    fn each_decode_error_answers_its_row() {
        use serde::de::IgnoredAny;
        let deep = [b'['; 200];
        let cases: [(&str, Result<(), DecodeError>, u16); 5] = [
            (
                "empty_body",
                crate::decode::<IgnoredAny>(b" ").map(drop),
                400,
            ),
            (
                "malformed_json",
                crate::decode::<IgnoredAny>(b"{").map(drop),
                400,
            ),
            (
                "trailing_bytes",
                crate::decode::<IgnoredAny>(b"{} x").map(drop),
                400,
            ),
            (
                "nesting_too_deep",
                crate::decode::<serde_json::Value>(&deep).map(drop),
                400,
            ),
            (
                "invalid_notification",
                crate::decode::<crate::model::TaskNotification>(b"[]").map(drop),
                422,
            ),
        ];
        for (code, result, status) in cases {
            let rejection = Rejection::decode(result.expect_err(code));
            assert_eq!(rejection.code(), code);
            assert_eq!(rejection.status().as_u16(), status, "{code}");
            assert_eq!(all_codes().nth(rejection.code_index()).unwrap().0, code);
            assert!(rejection.decode_error().is_some(), "{code}");
        }
    }
}
