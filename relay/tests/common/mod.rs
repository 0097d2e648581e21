//! The relay as a real process, a team's service as a real server, both on 127.0.0.1.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

/// The sender's example body.
pub(crate) const EXAMPLE: &[u8] =
    include_bytes!("../../../tests/data/task_notification.example.json");

/// The example with its own task id, bytes otherwise as the sender wrote them.
pub(crate) fn notification(task: &str) -> Vec<u8> {
    let text = std::str::from_utf8(EXAMPLE).unwrap();
    text.replace("ic1a7a8f2bxxx9f5e343a2ec25a9b2", task)
        .into_bytes()
}

/// A data folder of its own, inside a temporary directory removed when dropped. The folder
/// itself does not exist until the relay makes it, as on a first start.
pub(crate) struct DataDir(pub(crate) PathBuf, tempfile::TempDir);

impl DataDir {
    pub(crate) fn new() -> Self {
        let parent = tempfile::Builder::new()
            .prefix("airudder-relay-test-")
            .tempdir()
            .unwrap();
        Self(parent.path().join("data"), parent)
    }
}

pub(crate) struct Relay {
    pub(crate) child: Child,
    pub(crate) addr: String,
    /// The admin API's address.
    pub(crate) admin: String,
    /// `None` when thrown away.
    pub(crate) stdout: Option<Lines<BufReader<ChildStdout>>>,
    pub(crate) stderr: Lines<BufReader<ChildStderr>>,
    /// What it wrote on stderr up to its address lines.
    pub(crate) startup: String,
}

pub(crate) async fn next_line<R: tokio::io::AsyncRead + Unpin>(
    lines: &mut Lines<BufReader<R>>,
) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("a line within 30 s")
        .unwrap()
}

/// The address in a start-up log line after `marker` (`listening on http://`), in either log
/// format (text, or JSON's `"message"`).
pub(crate) fn listening_at(line: &str, marker: &str) -> Option<String> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let end = rest
        .find(|c: char| c == '/' || c == '"' || c.is_whitespace())
        .unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

/// Starts the relay on port 0 with `data` and `env`; returns once it listens.
pub(crate) async fn start(data: &DataDir, env: &[(&str, &str)]) -> Relay {
    start_with(data, env, Stdio::piped()).await
}

/// The same, its stdout thrown away and its log at WARN (a log line a request would fill the
/// pipe nobody reads), for a load.
pub(crate) async fn start_quiet(data: &DataDir, env: &[(&str, &str)]) -> Relay {
    let mut quiet = vec![("RUST_LOG", "warn")];
    quiet.extend_from_slice(env);
    start_with(data, &quiet, Stdio::null()).await
}

/// `start_quiet`, the relay's open files limited to `files` (soft and hard) as by a service
/// manager's `LimitNOFILE`: the shell sets the limit, then becomes the relay.
pub(crate) async fn start_quiet_with_file_limit(
    data: &DataDir,
    env: &[(&str, &str)],
    files: u64,
) -> Relay {
    let mut quiet = vec![("RUST_LOG", "warn")];
    quiet.extend_from_slice(env);
    let mut command = Command::new("sh");
    command.args([
        "-c",
        &format!("ulimit -n {files} && exec \"$0\""),
        env!("CARGO_BIN_EXE_airudder-relay"),
    ]);
    start_command(command, data, &quiet, Stdio::null()).await
}

async fn start_with(data: &DataDir, env: &[(&str, &str)], stdout: Stdio) -> Relay {
    let command = Command::new(env!("CARGO_BIN_EXE_airudder-relay"));
    start_command(command, data, env, stdout).await
}

async fn start_command(
    mut command: Command,
    data: &DataDir,
    env: &[(&str, &str)],
    stdout: Stdio,
) -> Relay {
    let mut child = command
        .env("AIRUDDER_LISTEN", "127.0.0.1:0")
        .env("AIRUDDER_ADMIN_LISTEN", "127.0.0.1:0")
        .env("AIRUDDER_DATA_DIR", &data.0)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().map(|out| BufReader::new(out).lines());
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut startup = String::new();
    let (mut addr, mut admin) = (None, None);
    while addr.is_none() || admin.is_none() {
        let Some(line) = next_line(&mut stderr).await else {
            panic!("the relay exited before it listened:\n{startup}");
        };
        if let Some(found) = listening_at(&line, "listening on http://") {
            addr = Some(found);
        }
        if let Some(found) = listening_at(&line, "admin API on http://") {
            admin = Some(found);
        }
        startup.push_str(&line);
        startup.push('\n');
    }
    Relay {
        child,
        addr: addr.unwrap(),
        admin: admin.unwrap(),
        stdout,
        stderr,
        startup,
    }
}

impl Relay {
    /// Posts a body as Airudder does; returns the status.
    pub(crate) async fn post(&self, body: Vec<u8>) -> u16 {
        client()
            .post(format!("http://{}/airudder/task", self.addr))
            .header("content-type", "application/json")
            .header("user-agent", "Airudder")
            .body(body)
            .send()
            .await
            .expect("the relay answers")
            .status()
            .as_u16()
    }

    /// SIGTERM, and the exit status (within 60 s).
    pub(crate) async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("the relay exits after SIGTERM")
            .unwrap()
    }

    /// SIGKILL, as a crash.
    pub(crate) async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// Everything left on stderr.
    pub(crate) async fn logs(&mut self) -> String {
        let mut logs = String::new();
        while let Some(line) = next_line(&mut self.stderr).await {
            logs.push_str(&line);
            logs.push('\n');
        }
        logs
    }
}

pub(crate) fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

pub(crate) use crate::ports::free_port;

/// The process' resident memory now and at its peak, in bytes (`/proc/PID/status`).
pub(crate) fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kib| kib << 10)
            .unwrap_or_else(|| panic!("no {name} in {status}"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One request the service received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Bytes,
    /// When it arrived.
    pub(crate) at: Instant,
    /// The status the service answered it (as set when it arrived).
    pub(crate) status: u16,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// A team's service: records every request, answers `status` after `delay_ms`.
#[derive(Clone)]
pub(crate) struct Service {
    pub(crate) received: Arc<Mutex<Vec<Received>>>,
    pub(crate) status: Arc<AtomicU16>,
    pub(crate) delay_ms: Arc<AtomicU64>,
    /// Headers added to every answer (`Location`, `Retry-After`).
    pub(crate) headers: Arc<Mutex<Vec<(String, String)>>>,
}

impl Service {
    /// Listens on `port` of 127.0.0.1 until the test ends.
    pub(crate) async fn start(port: u16) -> Self {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], port))).await
    }

    /// Listens on `addr` (127.0.0.2 may stand for another host) until the test ends.
    pub(crate) async fn start_at(addr: SocketAddr) -> Self {
        let service = Self {
            received: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            delay_ms: Arc::new(AtomicU64::new(0)),
            headers: Arc::default(),
        };
        // A process another test spawns at the same moment holds a copy of every open socket
        // between its fork and its exec (free_port's probe among them): the port is busy for
        // that moment, so a refused bind is tried again for a while.
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => break listener,
                Err(e)
                    if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("the test service cannot listen on {addr}: {e}"),
            }
        };
        let this = service.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let this = this.clone();
                tokio::spawn(async move {
                    let answer = hyper::service::service_fn(
                        move |request: http::Request<hyper::body::Incoming>| {
                            let this = this.clone();
                            async move {
                                let at = Instant::now();
                                let (parts, body) = request.into_parts();
                                let body = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let status = this.status.load(Ordering::SeqCst);
                                this.received.lock().unwrap().push(Received {
                                    headers: parts.headers,
                                    body,
                                    at,
                                    status,
                                });
                                let delay = this.delay_ms.load(Ordering::SeqCst);
                                if delay > 0 {
                                    tokio::time::sleep(Duration::from_millis(delay)).await;
                                }
                                let mut response =
                                    http::Response::new(Full::new(Bytes::from_static(b"{}")));
                                *response.status_mut() =
                                    http::StatusCode::from_u16(status).unwrap();
                                for (name, value) in this.headers.lock().unwrap().iter() {
                                    response.headers_mut().insert(
                                        http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                                        http::HeaderValue::from_str(value).unwrap(),
                                    );
                                }
                                Ok::<_, Infallible>(response)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), answer)
                        .await;
                });
            }
        });
        service
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The requests it answered 2xx: the deliveries.
    pub(crate) fn delivered(&self) -> Vec<Received> {
        let received = self.received.lock().unwrap();
        received
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .cloned()
            .collect()
    }

    /// How many times each task was delivered (answered 2xx).
    pub(crate) fn deliveries(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for delivered in self.delivered() {
            *counts.entry(task_id(&delivered.body)).or_default() += 1;
        }
        counts
    }

    /// Waits until `count` deliveries (answered 2xx) have arrived.
    pub(crate) async fn wait_for_delivered(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let delivered = self.delivered();
            if delivered.len() >= count {
                return delivered;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} deliveries arrived within {within:?}",
                delivered.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `count` requests have arrived.
    pub(crate) async fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            // Counted under the lock; copied once, at the end (a copy each poll of a long
            // list would cost the load it measures).
            let arrived = self.received.lock().unwrap().len();
            if arrived >= count {
                return self.received();
            }
            assert!(
                Instant::now() < deadline,
                "{arrived} of {count} forwards arrived within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The task id of a forwarded body.
pub(crate) fn task_id(body: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap();
    value["task_id"].as_str().unwrap().to_owned()
}

/// A relay's admin API, with its token when it has one.
pub(crate) struct AdminApi {
    base: String,
    token: Option<String>,
}

impl Relay {
    /// Its admin API, asked with `token`.
    pub(crate) fn admin_api(&self, token: Option<&str>) -> AdminApi {
        AdminApi {
            base: format!("http://{}", self.admin),
            token: token.map(str::to_owned),
        }
    }

    /// Posts each body, `at_once` at a time; panics unless each is answered 200.
    pub(crate) async fn post_all(&self, bodies: Vec<Vec<u8>>, at_once: usize) {
        let http = client();
        let url = format!("http://{}/airudder/task", self.addr);
        let mut bodies = bodies.into_iter();
        loop {
            let batch: Vec<_> = bodies
                .by_ref()
                .take(at_once)
                .map(|body| {
                    let (http, url) = (http.clone(), url.clone());
                    tokio::spawn(async move {
                        http.post(url)
                            .header("content-type", "application/json")
                            .body(body)
                            .send()
                            .await
                            .map_or(0, |answer| answer.status().as_u16())
                    })
                })
                .collect();
            if batch.is_empty() {
                return;
            }
            for posted in batch {
                assert_eq!(posted.await.unwrap(), 200, "every post answered 200");
            }
        }
    }
}

impl AdminApi {
    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let answer = request.send().await.expect("the admin API answers");
        let status = answer.status().as_u16();
        let bytes = answer.bytes().await.unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("{status}, not JSON: {}", String::from_utf8_lossy(&bytes)));
        (status, value)
    }

    /// GET `path` (and query): the status and the JSON.
    pub(crate) async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.send(client().get(format!("{}{path}", self.base)))
            .await
    }

    /// POST `path` (and query) as the CLI does, JSON: the status and the JSON.
    pub(crate) async fn post(&self, path: &str) -> (u16, serde_json::Value) {
        let request = client()
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body("{}");
        self.send(request).await
    }

    /// GET `path`, which must answer 200.
    pub(crate) async fn ok(&self, path: &str) -> serde_json::Value {
        let (status, value) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}: {value}");
        value
    }

    /// Waits until `path` answers a JSON for which `done` holds; returns it.
    pub(crate) async fn until(
        &self,
        path: &str,
        within: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let value = self.ok(path).await;
            if done(&value) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "GET {path} within {within:?}: {value}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Runs `airudder-relay ARGS --admin <relay's>` with `token` as AIRUDDER_ADMIN_TOKEN and no
/// terminal on stdin: its exit success, stdout and stderr.
pub(crate) async fn operate(
    relay: &Relay,
    token: Option<&str>,
    args: &[&str],
) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_airudder-relay"));
    command
        .args(args)
        .args(["--admin", &format!("http://{}", relay.admin)])
        .env_remove("AIRUDDER_ADMIN_TOKEN")
        .stdin(Stdio::null());
    if let Some(token) = token {
        command.env("AIRUDDER_ADMIN_TOKEN", token);
    }
    let output = command.output().await.unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
