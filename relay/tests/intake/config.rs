//! The relay's settings through the real binary: durations in every form, the old spellings,
//! per-kind URLs from the file and the environment, a bad value named by its variable and its
//! file key, and a signing key made by `airudder-relay secret`.

use crate::common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::{DataDir, Service, free_port, next_line, notification, start};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Runs `airudder-relay ARGS` with `env` and no relay settings from the test's own; its exit
/// code, stdout and stderr.
async fn relay_command(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_airudder-relay"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("AIRUDDER_")) {
        command.env_remove(name);
    }
    let output = command
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

/// A file `relay.toml` in `data` holding `text`; its path.
fn config_file(data: &DataDir, text: &str) -> String {
    std::fs::create_dir_all(&data.0).unwrap();
    let file = data.0.join("relay.toml");
    std::fs::write(&file, text).unwrap();
    file.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_duration_is_read_in_every_form_and_applied() {
    for form in ["250ms", "10s", "15m", "72h", "7d", "1h 30m", "2min", "1day"] {
        let data = DataDir::new();
        // It listens: the value was taken (a refused one exits 2 before).
        start(&data, &[("AIRUDDER_REJECTED_MAX_AGE", form)])
            .await
            .kill()
            .await;
    }
    // Applied: a printing relay with a handler delay of 600ms prints no sooner.
    let data = DataDir::new();
    let mut relay = start(&data, &[("AIRUDDER_HANDLER_DELAY", "600ms")]).await;
    let posted = Instant::now();
    assert_eq!(relay.post(notification("delayed")).await, 200);
    let line = next_line(relay.stdout.as_mut().unwrap()).await.unwrap();
    assert!(line.contains("delayed") && posted.elapsed() >= Duration::from_millis(600));
    relay.terminate().await;
}

#[tokio::test]
async fn an_old_spelling_is_read_with_a_warning_naming_the_new_one() {
    let data = DataDir::new();
    let mut relay = start(&data, &[("AIRUDDER_HANDLER_DELAY_MS", "600")]).await;
    assert!(
        relay.startup.contains(
            "AIRUDDER_HANDLER_DELAY_MS is deprecated: use AIRUDDER_HANDLER_DELAY, a duration"
        ),
        "{}",
        relay.startup
    );
    let posted = Instant::now();
    assert_eq!(relay.post(notification("old-delay")).await, 200);
    next_line(relay.stdout.as_mut().unwrap()).await.unwrap();
    assert!(
        posted.elapsed() >= Duration::from_millis(600),
        "milliseconds, as before"
    );
    relay.terminate().await;

    // The old lease in seconds, in the file.
    let data = DataDir::new();
    let path = config_file(&data, "lease_secs = 20\n");
    let mut relay = start(&data, &[("AIRUDDER_CONFIG", &path)]).await;
    assert!(
        relay
            .startup
            .contains("use AIRUDDER_LEASE (lease in the file)"),
        "{}",
        relay.startup
    );
    relay.terminate().await;
}

#[tokio::test]
async fn a_kind_goes_to_its_own_url_from_the_file_or_else_the_environment() {
    let (main_port, file_port, env_port) = (free_port(), free_port(), free_port());
    let main = Service::start(main_port).await;
    let from_file = Service::start(file_port).await;
    let from_env = Service::start(env_port).await;
    let data = DataDir::new();
    let path = config_file(
        &data,
        &format!(
            "forward_url = \"http://127.0.0.1:{main_port}/hooks\"\n\n[forward.urls]\ntask_notification = \"http://127.0.0.1:{file_port}/tasks\"\n"
        ),
    );
    let mut relay = start(&data, &[("AIRUDDER_CONFIG", &path)]).await;
    assert_eq!(relay.post(notification("by-the-file")).await, 200);
    let got = from_file.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got[0].header("airudder-event"), "task_notification");
    relay.terminate().await;

    // The variable wins over the file.
    let data = DataDir::new();
    let path = config_file(&data, &std::fs::read_to_string(&path).unwrap_or_default());
    let env_url = format!("http://127.0.0.1:{env_port}/tasks");
    let env = [
        ("AIRUDDER_CONFIG", path.as_str()),
        ("AIRUDDER_FORWARD_URL_TASK_NOTIFICATION", &env_url),
    ];
    let mut relay = start(&data, &env).await;
    assert_eq!(relay.post(notification("by-the-variable")).await, 200);
    from_env.wait_for(1, Duration::from_secs(20)).await;
    relay.terminate().await;
    assert_eq!((main.received().len(), from_file.received().len()), (0, 1));
}

#[tokio::test]
async fn a_bad_value_is_named_by_its_variable_and_its_file_key() {
    let data = DataDir::new();
    let path = config_file(
        &data,
        "forward_url = \"http://127.0.0.1:9/x\"\nretry_for = \"soon\"\n",
    );
    // The file's key only where a file was given.
    for (env, named) in [
        (
            vec![("AIRUDDER_CONFIG", path.as_str())],
            "AIRUDDER_RETRY_FOR (retry_for in the file)",
        ),
        (
            vec![
                ("AIRUDDER_FORWARD_URL", "http://127.0.0.1:9/x"),
                ("AIRUDDER_RETRY_FOR", "soon"),
            ],
            "AIRUDDER_RETRY_FOR",
        ),
    ] {
        let (code, _, err) = relay_command(&[], &env).await;
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains(&format!("{named}: \"soon\" is not a duration: use a number and a unit, like 250ms, 10s or 72h")),
            "{env:?}: {err}"
        );
    }
    let (code, _, err) = relay_command(&[], &[("AIRUDDER_ACK", "later")]).await;
    assert_eq!(code, Some(2));
    assert!(
        err.contains("AIRUDDER_ACK: \"later\" is not one of: durable, memory, handled"),
        "{err}"
    );
}

#[tokio::test]
async fn a_secret_made_by_the_relay_signs_its_forwards() {
    let (code, secret, err) = relay_command(&["secret"], &[]).await;
    assert_eq!(code, Some(0), "{err}");
    let secret = secret.trim();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let (_, again, _) = relay_command(&["secret"], &[]).await;
    assert_ne!(again.trim(), secret, "a fresh key each time");

    let port = free_port();
    let service = Service::start(port).await;
    let data = DataDir::new();
    let url = format!("http://127.0.0.1:{port}/hooks");
    let mut relay = start(
        &data,
        &[
            ("AIRUDDER_FORWARD_URL", &url),
            ("AIRUDDER_FORWARD_SECRET", secret),
        ],
    )
    .await;
    assert_eq!(relay.post(notification("signed")).await, 200);
    let got = service.wait_for(1, Duration::from_secs(20)).await;
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    let signed = format!(
        "{}.{}.",
        got[0].header("webhook-id"),
        got[0].header("webhook-timestamp")
    );
    mac.update(signed.as_bytes());
    mac.update(&got[0].body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(got[0].header("webhook-signature"), format!("v1,{expected}"));
    relay.terminate().await;
}

#[tokio::test]
async fn the_cli_says_whether_the_admin_token_is_missing_or_wrong() {
    let data = DataDir::new();
    let token = "config-admin-token-0123456789";
    let mut relay = start(&data, &[("AIRUDDER_ADMIN_TOKEN", token)]).await;
    let (ok, _, missing) = common::operate(&relay, None, &["stats"]).await;
    assert!(
        !ok && missing.contains("none is set: set AIRUDDER_ADMIN_TOKEN"),
        "{missing}"
    );
    let (ok, _, wrong) =
        common::operate(&relay, Some("another-token-0123456789"), &["stats"]).await;
    assert!(
        !ok && wrong.contains("refused the token: AIRUDDER_ADMIN_TOKEN"),
        "{wrong}"
    );
    assert!(!wrong.contains("another-token"), "{wrong}");
    let (ok, stats, err) = common::operate(&relay, Some(token), &["stats", "--json"]).await;
    assert!(ok && stats.contains("\"handled\""), "{err}");
    relay.terminate().await;
}
