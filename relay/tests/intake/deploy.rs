//! The deployment files in `deploy/`: the systemd unit's command line and environment, run as
//! systemd would run them (Docker cannot run here; its entry point is checked against the unit).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

const UNIT: &str = include_str!("../../../deploy/airudder-relay.service");
const DOCKERFILE: &str = include_str!("../../../deploy/Dockerfile");
const COMPOSE: &str = include_str!("../../../deploy/compose.yaml");

/// The values of `key=` lines of the unit.
fn unit(key: &str) -> Vec<&'static str> {
    UNIT.lines()
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[tokio::test]
async fn the_systemd_units_command_starts_serves_and_stops_on_its_kill_signal() {
    let exec = unit("ExecStart");
    assert_eq!(
        exec,
        ["/usr/local/bin/airudder-relay"],
        "one command, no arguments"
    );
    assert_eq!(unit("KillSignal"), ["SIGTERM"]);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_airudder-relay"));
    for assignment in unit("Environment") {
        let (name, value) = assignment.split_once('=').expect("NAME=value");
        // The unit's address and state directory, moved where a test may use them.
        let value = match name {
            "AIRUDDER_LISTEN" => "127.0.0.1:0".to_owned(),
            "AIRUDDER_DATA_DIR" => data.to_str().unwrap().to_owned(),
            _ => value.to_owned(),
        };
        command.env(name, value);
    }
    let mut relay = command
        .env("AIRUDDER_ADMIN_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(relay.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), stderr.next_line())
            .await
            .expect("it starts")
            .unwrap()
            .expect("it listens before it exits");
        // A start-up line of the log: `… INFO airudder_relay::startup: listening on http://…`.
        if let Some((_, rest)) = line.split_once("listening on http://") {
            break rest.trim_end_matches("/airudder/task").to_owned();
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ready = reqwest::get(format!("http://{addr}/ready")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let pid = relay.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let stop: u64 = unit("TimeoutStopSec")[0].parse().unwrap();
    let status = tokio::time::timeout(Duration::from_secs(stop), relay.wait())
        .await
        .expect("it stops within the unit's TimeoutStopSec")
        .unwrap();
    assert!(
        status.success(),
        "exit {status}: systemd would count a failure"
    );
}

#[test]
fn the_docker_image_runs_the_same_binary_with_the_same_settings() {
    assert!(DOCKERFILE.contains(r#"ENTRYPOINT ["/usr/local/bin/airudder-relay"]"#));
    assert!(DOCKERFILE.contains("cargo build --release -p airudder-relay"));
    assert!(DOCKERFILE.contains("USER relay"), "not root");
    assert!(DOCKERFILE.contains("AIRUDDER_LISTEN=0.0.0.0:3000"));
    assert!(unit("Environment").contains(&"AIRUDDER_LISTEN=0.0.0.0:3000"));
}

#[test]
fn both_raise_the_file_limit_that_caps_open_connections() {
    assert_eq!(unit("LimitNOFILE"), ["65536"]);
    assert!(DOCKERFILE.contains("--ulimit nofile=65536:65536"));
}

#[test]
fn both_keep_the_store_for_the_relay_alone() {
    assert_eq!(unit("StateDirectoryMode"), ["0700"]);
    assert!(DOCKERFILE.contains("mkdir -m 0700 /data"));
}

#[test]
fn docker_waits_for_the_drain_as_long_as_systemd_does() {
    // Docker and Compose kill 10 s after the stop signal unless told otherwise; the relay's
    // drain takes up to 30 s.
    let stop = unit("TimeoutStopSec")[0];
    assert!(stop.parse::<u64>().unwrap() > 30, "longer than the drain");
    assert!(DOCKERFILE.contains("STOPSIGNAL SIGTERM"));
    assert!(DOCKERFILE.contains(&format!("--stop-timeout {stop} ")));
    let compose: Vec<&str> = COMPOSE.lines().map(str::trim).collect();
    assert!(compose.contains(&format!("stop_grace_period: {stop}s").as_str()));
    assert!(compose.contains(&"stop_signal: SIGTERM"));
    assert!(compose.contains(&"dockerfile: deploy/Dockerfile"));
    assert!(compose.contains(&"soft: 65536") && compose.contains(&"hard: 65536"));
}
