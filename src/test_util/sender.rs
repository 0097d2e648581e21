//! A sender that behaves as Airudder does: the same request, a retry a minute after each
//! answer other than 200, at most 5 retries, then nothing.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use tower_service::Service;

use crate::BoxError;

/// The sender's wait between two tries.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(60);
/// How many times the sender retries after the first try.
pub const MAX_RETRIES: u32 = 5;

/// Posts a notification as Airudder does: `POST` with `Content-Type: application/json` and
/// `User-Agent: Airudder`, the body as given; after each answer other than 200 (or no answer)
/// it waits [`retry_interval`](Self::retry_interval) (60 s, shorter in tests) and tries again,
/// at most [`max_retries`](Self::max_retries) (5) times; then it gives up, as Airudder drops
/// the notification. The [`Report`] lists every attempt and its answer.
///
/// Into a tower service (an axum `Router`, a [`Receiver`](crate::Receiver)) with
/// [`send_to`](Self::send_to), to an `http://` URL with [`post`](Self::post), or through any
/// client with [`send_with`](Self::send_with).
#[derive(Clone)]
pub struct Sender {
    body: Bytes,
    headers: HeaderMap,
    retry_interval: Duration,
    max_retries: u32,
    on_attempt: Option<OnAttempt>,
}

/// What [`Sender::on_attempt`] keeps.
type OnAttempt = Arc<dyn Fn(&Attempt) + Send + Sync>;

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("body_len", &self.body.len())
            .field("retry_interval", &self.retry_interval)
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

/// One try and what came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempt {
    /// From 1.
    pub number: u32,
    /// How long after the first try this one started.
    pub after: Duration,
    /// The answer, or why there was none (refused, reset, timed out).
    pub outcome: Result<Reply, String>,
}

impl Attempt {
    /// Whether this try was answered 200: the sender is done.
    pub fn delivered(&self) -> bool {
        matches!(&self.outcome, Ok(answer) if answer.status == StatusCode::OK)
    }
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "attempt {} at +{:.1}s: ",
            self.number,
            self.after.as_secs_f64()
        )?;
        match &self.outcome {
            Ok(answer) => write!(
                f,
                "{} {}",
                answer.status.as_u16(),
                String::from_utf8_lossy(&answer.body)
            ),
            Err(err) => write!(f, "no answer: {err}"),
        }
    }
}

/// The receiver's reply to one post: its status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The body, whole.
    pub body: Bytes,
}

/// [`Reply`], under its old name (which [`stats::Answer`](crate::stats::Answer) also had).
#[deprecated(since = "0.2.0", note = "renamed to `Reply`")]
pub type Answer = Reply;

impl Reply {
    /// An answer (for a client given to [`Sender::send_with`]).
    pub fn new(status: StatusCode, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            body: body.into(),
        }
    }
}

/// Every attempt of one [`Sender`] run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    attempts: Vec<Attempt>,
}

impl Report {
    /// Whether the last attempt was answered 200.
    pub fn delivered(&self) -> bool {
        self.attempts.last().is_some_and(Attempt::delivered)
    }

    /// Every attempt, in order.
    pub fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }

    /// The statuses answered, in order (`None` for a try without an answer).
    pub fn statuses(&self) -> Vec<Option<u16>> {
        self.attempts
            .iter()
            .map(|a| a.outcome.as_ref().ok().map(|answer| answer.status.as_u16()))
            .collect()
    }
}

impl Sender {
    /// A sender of `body`, with Airudder's headers and retries.
    pub fn new(body: impl Into<Bytes>) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::USER_AGENT, HeaderValue::from_static("Airudder"));
        Self {
            body: body.into(),
            headers,
            retry_interval: RETRY_INTERVAL,
            max_retries: MAX_RETRIES,
            on_attempt: None,
        }
    }

    /// The wait after an answer other than 200 (default 60 s, Airudder's).
    pub fn retry_interval(mut self, interval: Duration) -> Self {
        self.retry_interval = interval;
        self
    }

    /// How many retries after the first try (default 5, Airudder's).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Adds a header, or replaces one (a proxy's, a test of the receiver's checks).
    pub fn header(mut self, name: http::HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Called with each attempt as soon as it is answered (to print progress).
    pub fn on_attempt(mut self, report: impl Fn(&Attempt) + Send + Sync + 'static) -> Self {
        self.on_attempt = Some(Arc::new(report));
        self
    }

    /// The request of one try, to `uri`.
    fn request(&self, uri: &str) -> Result<Request<Bytes>, BoxError> {
        let mut request = Request::post(uri).body(self.body.clone())?;
        request.headers_mut().extend(self.headers.clone());
        Ok(request)
    }

    /// Sends through `post`, which makes one try of the request it is given.
    pub async fn send_with<F, Fut>(&self, uri: &str, mut post: F) -> Report
    where
        F: FnMut(Request<Bytes>) -> Fut,
        Fut: Future<Output = Result<Reply, BoxError>>,
    {
        let started = Instant::now();
        let mut attempts = Vec::new();
        for number in 1..=self.max_retries.saturating_add(1) {
            if number > 1 {
                tokio::time::sleep(self.retry_interval).await;
            }
            let after = started.elapsed();
            let outcome = match self.request(uri) {
                Ok(request) => post(request).await.map_err(|err| err.to_string()),
                Err(err) => Err(err.to_string()),
            };
            let attempt = Attempt {
                number,
                after,
                outcome,
            };
            if let Some(report) = &self.on_attempt {
                report(&attempt);
            }
            let done = attempt.delivered();
            attempts.push(attempt);
            if done {
                break;
            }
        }
        Report { attempts }
    }

    /// Sends straight into a tower service (a router, a receiver), as a request to `uri`
    /// (`/airudder/task?token=…`).
    pub async fn send_to<S, B>(&self, uri: &str, service: S) -> Report
    where
        S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
        S::Error: Into<BoxError>,
        B: Body,
        B::Error: Into<BoxError>,
    {
        self.send_with(uri, |request| {
            let mut service = service.clone();
            async move {
                std::future::poll_fn(|cx| service.poll_ready(cx))
                    .await
                    .map_err(Into::into)?;
                let response = service
                    .call(request.map(Full::new))
                    .await
                    .map_err(Into::into)?;
                read_answer(response).await
            }
        })
        .await
    }

    /// Posts to an `http://` URL over a new connection for each try, as a sender across the
    /// internet would. For `https://`, use [`send_with`](Self::send_with) with a client that
    /// speaks TLS.
    pub async fn post(&self, url: &str) -> Report {
        self.send_with(url, post_once).await
    }
}

async fn read_answer<B>(response: Response<B>) -> Result<Reply, BoxError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(Into::into)?
        .to_bytes();
    Ok(Reply { status, body })
}

/// One try over a connection of its own, HTTP/1.1.
async fn post_once(mut request: Request<Bytes>) -> Result<Reply, BoxError> {
    let uri = request.uri().clone();
    if uri.scheme_str() != Some("http") {
        return Err(format!("{uri}: only http:// URLs; send_with takes a client for https").into());
    }
    let host = uri.host().ok_or("the URL has no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    let stream = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port)).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let path = uri
        .path_and_query()
        .map_or("/", |path| path.as_str())
        .parse()?;
    *request.uri_mut() = path;
    request
        .headers_mut()
        .insert(header::HOST, HeaderValue::from_str(&authority)?);
    let response = sender.send_request(request.map(Full::new)).await?;
    let answer = read_answer(response).await;
    drop(sender);
    driver.abort();
    answer
}
