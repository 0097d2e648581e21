//! Running the examples as child processes, as a user runs them.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader, Lines};
use tokio::process::{Child, Command};

pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) addr: String,
    pub(crate) stdout: Lines<BufReader<tokio::process::ChildStdout>>,
    pub(crate) stderr: Lines<BufReader<tokio::process::ChildStderr>>,
    /// What the example wrote on stderr before it listened.
    pub(crate) startup: String,
}

pub(crate) fn example_binary(name: &str) -> PathBuf {
    // target/<profile>/deps/examples-<hash> → target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run the whole suite with `cargo test`, which builds the examples",
        path.display()
    );
    path
}

/// Builds example `name` as this test binary was built (its profile, its target directory, the
/// library's features it was compiled with), for an example `cargo test --test …` does not
/// build (one with `required-features`); returns its path. Cargo is quick when it is fresh.
pub(crate) fn build_example(name: &str) -> PathBuf {
    // target/<profile>/deps/<test binary>
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let target_dir = profile_dir.parent().unwrap();
    let features: Vec<&str> = [
        ("axum", cfg!(feature = "axum")),
        ("tonic", cfg!(feature = "tonic")),
        ("postgres", cfg!(feature = "postgres")),
        ("metrics", cfg!(feature = "metrics")),
        ("test-util", cfg!(feature = "test-util")),
    ]
    .into_iter()
    .filter_map(|(feature, on)| on.then_some(feature))
    .collect();
    let mut cargo = std::process::Command::new(env!("CARGO"));
    cargo
        .args([
            "build",
            "--quiet",
            "-p",
            "airudder-webhook",
            "--example",
            name,
        ])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .arg("--features")
        .arg(features.join(","));
    if profile_dir.file_name().is_some_and(|dir| dir == "release") {
        cargo.arg("--release");
    }
    let status = cargo.status().unwrap();
    assert!(status.success(), "cargo build --example {name}: {status}");
    example_binary(name)
}

/// A directory of its own for each run's store, removed when the test ends.
/// A data directory not made yet (the receiver makes it), in a temporary directory that is
/// removed when this drops.
pub(crate) struct DataDir(pub(crate) PathBuf, tempfile::TempDir);

impl DataDir {
    pub(crate) fn new() -> Self {
        let temp = tempfile::Builder::new()
            .prefix("airudder-examples-")
            .tempdir()
            .unwrap();
        Self(temp.path().join("data"), temp)
    }
}

pub(crate) async fn start(name: &str, env: &[(&str, &str)]) -> Running {
    let data = DataDir::new();
    start_in(name, &data, env).await
}

pub(crate) async fn start_in(name: &str, data: &DataDir, env: &[(&str, &str)]) -> Running {
    let mut child = Command::new(example_binary(name))
        .env("AIRUDDER_LISTEN", "127.0.0.1:0")
        .env("AIRUDDER_DATA_DIR", &data.0)
        .env("RUST_LOG", "trace")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut startup = String::new();
    let addr = loop {
        let Some(line) = next_line(&mut stderr).await else {
            panic!("the example exited before it listened:\n{startup}");
        };
        if let Some(rest) = line.strip_prefix("listening on http://") {
            break rest.trim_end_matches("/airudder/task").to_owned();
        }
        startup.push_str(&line);
        startup.push('\n');
    };
    Running {
        child,
        addr,
        stdout,
        stderr,
        startup,
    }
}

/// Every line left, up to the end of the stream (the process's exit), one per line.
pub(crate) async fn rest<R: AsyncRead + Unpin>(lines: &mut Lines<BufReader<R>>) -> String {
    let mut text = String::new();
    while let Some(line) = next_line(lines).await {
        text.push_str(&line);
        text.push('\n');
    }
    text
}

pub(crate) async fn next_line<R: AsyncRead + Unpin>(
    lines: &mut Lines<BufReader<R>>,
) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("a line within 20 s")
        .unwrap()
}

pub(crate) async fn post_example(addr: &str) {
    let url = format!("http://{addr}/airudder/task");
    let (status, _, body) = super::send("POST", &url, "application/json", super::EXAMPLE).await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"{}"[..]));
}

/// Sends SIGTERM, as a service manager would, and waits (at most 20 s) for the exit status.
pub(crate) async fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().expect("the child is running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -TERM {pid}");
    tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the child exits within 20 s after SIGTERM")
        .unwrap()
}

/// Collects the task id of every line the receiver prints.
pub(crate) fn collect(
    running: Running,
    printed: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) -> (tokio::process::Child, tokio::task::JoinHandle<String>) {
    collect_as(running, printed, |value| {
        value["task_id"].as_str().unwrap_or_default().to_owned()
    })
}

/// Collects `what` of every line the receiver prints.
pub(crate) fn collect_as(
    mut running: Running,
    printed: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    what: fn(&serde_json::Value) -> String,
) -> (tokio::process::Child, tokio::task::JoinHandle<String>) {
    let mut stderr = running.stderr;
    let reader = tokio::spawn(async move {
        let logs = tokio::spawn(async move {
            let mut logs = String::new();
            while let Ok(Some(line)) = stderr.next_line().await {
                logs.push_str(&line);
                logs.push('\n');
            }
            logs
        });
        while let Ok(Some(line)) = running.stdout.next_line().await {
            // A line cut by the kill is not counted: its notification was not marked done and
            // comes again.
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) {
                printed.lock().unwrap().push(what(&value));
            }
        }
        logs.await.unwrap_or_default()
    });
    (running.child, reader)
}

/// Waits until every acknowledged task was printed; returns how often each was.
pub(crate) async fn wait_printed(
    acked: &std::collections::HashSet<String>,
    printed: &std::sync::Mutex<Vec<String>>,
    within: Duration,
) -> std::collections::HashMap<String, usize> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let seen: std::collections::HashSet<String> =
            printed.lock().unwrap().iter().cloned().collect();
        let missing: Vec<_> = acked.difference(&seen).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "acknowledged but never printed ({} of {}): {:?}",
            missing.len(),
            acked.len(),
            missing.iter().take(10).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // a second print would show by now
    let mut times = std::collections::HashMap::new();
    for task in printed.lock().unwrap().iter() {
        *times.entry(task.clone()).or_default() += 1;
    }
    times
}
