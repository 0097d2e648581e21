//! The relay probed as an attacker on the network would probe it, as real processes on
//! loopback: redirects from the service, forged log lines and terminal escapes, a hostile
//! `Retry-After`, secrets in every setting, weak tokens, and a browser page at the admin API.

use crate::common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{DataDir, Relay, Service, client, free_port, notification, start};
use serde_json::Value;

const ADMIN_TOKEN: &str = "probe-admin-token-0123456789";

/// Runs `airudder-relay ARGS` with `env`; its exit code, stdout and stderr.
async fn relay_command(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_airudder-relay"))
        .args(args)
        .env_remove("AIRUDDER_TOKEN")
        .env_remove("AIRUDDER_ADMIN_TOKEN")
        .env_remove("AIRUDDER_FORWARD_URL")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// An operator command against `relay`'s admin API, with the admin token.
async fn operate(relay: &Relay, args: &[&str]) -> String {
    let admin = format!("http://{}", relay.admin);
    let mut all = args.to_vec();
    all.extend(["--admin", &admin]);
    let (code, stdout, stderr) =
        relay_command(&all, &[("AIRUDDER_ADMIN_TOKEN", ADMIN_TOKEN)]).await;
    assert_eq!(code, Some(0), "{args:?}: {stderr}");
    stdout
}

/// The admin API's JSON at `path`, with the token.
async fn admin_get(relay: &Relay, path: &str) -> Value {
    client()
        .get(format!("http://{}{path}", relay.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|bytes| serde_json::from_slice(&bytes).unwrap())
        .unwrap()
}

/// Waits until the relay lists `count` dead letters; returns them.
async fn dead_letters(relay: &Relay, count: usize, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let page = admin_get(relay, "/admin/dead-letters").await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= count {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} dead letters within {within:?}",
            items.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_a_failed_attempt_and_the_other_host_receives_nothing() {
    // 127.0.0.2 stands for another host, ready to take whatever the relay would send it.
    let other_port = free_port();
    let other = Service::start_at(SocketAddr::from(([127, 0, 0, 2], other_port))).await;
    let location = format!("http://127.0.0.2:{other_port}/steal?x=1");

    let mut runs = Vec::new();
    for status in [307u16, 308, 301, 302] {
        let port = free_port();
        let service = Service::start(port).await;
        service.status.store(status, Ordering::SeqCst);
        service
            .headers
            .lock()
            .unwrap()
            .push(("location".into(), location.clone()));
        let data = DataDir::new();
        let url = format!("http://127.0.0.1:{port}/hooks?token=service-query-token");
        let relay = start(
            &data,
            &[
                ("AIRUDDER_FORWARD_URL", url.as_str()),
                ("AIRUDDER_RETRY_FOR", "2s"),
                ("AIRUDDER_ADMIN_TOKEN", ADMIN_TOKEN),
            ],
        )
        .await;
        let task = format!("redirected-{status}");
        assert_eq!(relay.post(notification(&task)).await, 200);
        runs.push((status, service, data, relay, task));
    }
    for (status, service, _data, mut relay, task) in runs {
        let dead = dead_letters(&relay, 1, Duration::from_secs(20)).await;
        assert_eq!(dead[0]["task_id"], task.as_str());
        let error = dead[0]["last_error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&format!("answered {status}, a redirect to 127.0.0.2")),
            "{status}: {error}"
        );
        let tries = service.received();
        assert!(tries.len() >= 2, "{status}: retried, {} tries", tries.len());
        assert!(
            tries.iter().all(|t| t.header("referer").is_empty()),
            "no Referer"
        );
        let stats = admin_get(&relay, "/admin/stats").await;
        assert_eq!(stats["handled"], 0, "{status}: never counted as forwarded");
        relay.terminate().await;
        let logs = relay.logs().await;
        assert!(
            logs.contains(&format!("answered {status}, a redirect to 127.0.0.2")),
            "{logs}"
        );
        assert!(!logs.contains("service-query-token"), "{logs}");
    }
    assert!(other.received().is_empty(), "the other host got nothing");
}

/// A body whose `task_id` forges a log line and sets the terminal's title.
fn forging_task() -> Vec<u8> {
    let text = String::from_utf8(notification("TASKID")).unwrap();
    text.replace(
        "\"TASKID\"",
        r#""t1\r\nERROR forged by task_id \u001b]0;pwned\u0007\u009b2J""#,
    )
    .into_bytes()
}

/// A body with a repeated unknown member whose name forges a line: refused 422, and kept.
fn forging_member() -> Vec<u8> {
    let text = String::from_utf8(notification("member")).unwrap();
    let name = r#""x\r\nERROR forged by a member \u001b[2J""#;
    text.replacen('{', &format!("{{{name}: 1, {name}: 2, "), 1)
        .into_bytes()
}

/// No line starts with a forgery, and no escape character reaches the screen.
fn assert_clean(what: &str, text: &str) {
    for line in text.lines() {
        assert!(
            !line.trim_start().starts_with("ERROR forged"),
            "{what}: a forged line: {line:?}"
        );
    }
    for bad in ['\u{1b}', '\u{7}', '\u{9b}', '\r'] {
        assert!(!text.contains(bad), "{what}: {bad:?} raw in {text:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_an_attacker_writes_reaches_a_log_line_or_a_terminal_raw() {
    for format in ["text", "json"] {
        let port = free_port();
        let service = Service::start(port).await;
        service.status.store(500, Ordering::SeqCst);
        let data = DataDir::new();
        let url = format!("http://127.0.0.1:{port}/hooks");
        let mut relay = start(
            &data,
            &[
                ("AIRUDDER_FORWARD_URL", url.as_str()),
                ("AIRUDDER_RETRY_FOR", "1s"),
                ("AIRUDDER_ADMIN_TOKEN", ADMIN_TOKEN),
                ("AIRUDDER_LOG_FORMAT", format),
            ],
        )
        .await;
        assert_eq!(relay.post(forging_task()).await, 200);
        assert_eq!(relay.post(forging_member()).await, 422);
        // A megabyte of task id makes no megabyte of log line.
        let huge = String::from_utf8(notification("HUGE"))
            .unwrap()
            .replace("HUGE", &"h".repeat(1 << 20));
        assert_eq!(relay.post(huge.into_bytes()).await, 200);
        let dead = dead_letters(&relay, 2, Duration::from_secs(20)).await;

        // The operator's commands.
        let forged = dead
            .iter()
            .find(|d| d["task_id"].as_str().is_some_and(|t| t.starts_with("t1")))
            .expect("the forging notification is a dead letter");
        let id = forged["id"].to_string();
        let rejected = admin_get(&relay, "/admin/rejected").await;
        let rejected_id = rejected["items"][0]["id"].to_string();
        for args in [
            vec!["dead-letters"],
            vec!["show", id.as_str()],
            vec!["rejected"],
            vec!["show-rejected", rejected_id.as_str()],
        ] {
            let out = operate(&relay, &args).await;
            assert_clean(&format!("{format}: {args:?}"), &out);
            assert!(
                out.contains("t1") || out.contains("member"),
                "{args:?}: {out}"
            );
        }
        let json = operate(&relay, &["show", &id, "--json"]).await;
        assert_clean(&format!("{format}: show --json"), &json);
        let value: Value = serde_json::from_str(&json).expect("--json stays JSON");
        assert!(value["task_id"].as_str().unwrap().contains('\u{1b}'));

        relay.terminate().await;
        let logs = relay.logs().await;
        assert_clean(&format!("{format} logs"), &logs);
        // There, escaped, within its line.
        assert!(logs.contains("nERROR forged by task_id"), "{logs}");
        for line in logs.lines() {
            assert!(line.len() < 8 * 1024, "a line of {} bytes", line.len());
            if format == "json" && line.starts_with('{') {
                serde_json::from_str::<Value>(line).expect("each JSON line parses");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_retry_after_waits_only_until_the_deadline_and_panics_nothing() {
    let port = free_port();
    let service = Service::start(port).await;
    service.status.store(503, Ordering::SeqCst);
    service
        .headers
        .lock()
        .unwrap()
        .push(("retry-after".into(), u64::MAX.to_string()));
    let data = DataDir::new();
    let url = format!("http://127.0.0.1:{port}/hooks");
    let mut relay = start(
        &data,
        &[
            ("AIRUDDER_FORWARD_URL", url.as_str()),
            ("AIRUDDER_RETRY_FOR", "2s"),
            ("AIRUDDER_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    )
    .await;
    let posted = Instant::now();
    assert_eq!(relay.post(notification("retry-after-max")).await, 200);
    let dead = dead_letters(&relay, 1, Duration::from_secs(15)).await;
    assert!(
        posted.elapsed() < Duration::from_secs(10),
        "dead within its 2 s and a try"
    );
    assert!(dead[0]["last_error"].as_str().unwrap().contains("503"));
    // The first try, and one more at the deadline (a third only if the wall clock and the
    // timer disagree by the length of a try).
    let tries = service.received().len();
    assert!((2..=3).contains(&tries), "{tries} tries");
    relay.terminate().await;
    let logs = relay.logs().await;
    assert!(!logs.contains("panic"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_help_errors_or_logs() {
    let forward_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let port = free_port();
    let service = Service::start(port).await;
    let forward_url =
        format!("http://relayuser:pw-SECRET-forward@127.0.0.1:{port}/hooks?key=SECRET-query");
    let secrets: [(&str, &str); 6] = [
        ("AIRUDDER_TOKEN", "SECRET-intake-token-0123"),
        ("AIRUDDER_ADMIN_TOKEN", "SECRET-admin-token-0123"),
        ("AIRUDDER_FORWARD_URL", &forward_url),
        ("AIRUDDER_FORWARD_SECRET", forward_secret),
        (
            "AIRUDDER_ADMIN_URL",
            "http://op:pw-SECRET-admin@127.0.0.1:9/?t=SECRET-admin-query",
        ),
        (
            "AIRUDDER_DATABASE_URL",
            "postgres://db:pw-SECRET-db@127.0.0.1:9/x",
        ),
    ];
    let leaks = |what: &str, text: &str| {
        // Every secret above holds "SECRET-" (`<SECRET>` is --forward-secret's placeholder).
        for needle in ["SECRET-", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] {
            assert!(!text.contains(needle), "{what} shows a secret: {text}");
        }
    };
    for args in [&["--help"][..], &["stats", "--help"], &["send", "--help"]] {
        let (code, out, err) = relay_command(args, &secrets).await;
        assert_eq!(code, Some(0), "{err}");
        leaks(&format!("{args:?}"), &format!("{out}{err}"));
    }
    // Errors: an admin API that is not there, a send to nowhere with a token, a malformed
    // forward URL with a password, a file whose secret's line is broken.
    let (code, out, err) = relay_command(&["stats"], &secrets).await;
    assert_eq!(code, Some(1));
    leaks("stats", &format!("{out}{err}"));
    let (code, out, err) = relay_command(
        &[
            "send",
            "--to",
            "http://127.0.0.1:9/airudder/task",
            "--max-retries",
            "0",
        ],
        &secrets,
    )
    .await;
    assert_eq!(code, Some(1), "{out}{err}");
    leaks("send", &format!("{out}{err}"));
    let data = DataDir::new();
    std::fs::create_dir_all(&data.0).unwrap();
    let file = data.0.join("relay.toml");
    std::fs::write(
        &file,
        "admin_token = \"SECRET-in-the-file-0123\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    for (args, env) in [
        (
            vec![],
            vec![("AIRUDDER_FORWARD_URL", "htp://u:pw-SECRET-bad@host/x")],
        ),
        (vec!["--config", file.to_str().unwrap()], vec![]),
    ] {
        let (code, out, err) = relay_command(&args, &env).await;
        assert_eq!(code, Some(2), "{out}{err}");
        leaks(&format!("{args:?} {env:?}"), &format!("{out}{err}"));
    }

    // A running relay with every secret set logs none of them.
    let running: Vec<(&str, &str)> = secrets
        .iter()
        .copied()
        .filter(|(key, _)| !matches!(*key, "AIRUDDER_ADMIN_URL" | "AIRUDDER_DATABASE_URL"))
        .collect();
    let mut relay = start(&data, &running).await;
    let status = client()
        .post(format!(
            "http://{}/airudder/task?token=SECRET-intake-token-0123",
            relay.addr
        ))
        .header("content-type", "application/json")
        .body(notification("with-secrets"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let received = service.wait_for(1, Duration::from_secs(10)).await;
    assert!(received[0].header("webhook-signature").starts_with("v1,"));
    relay.terminate().await;
    let logs = relay.logs().await;
    leaks("the relay's logs", &logs);
}

#[tokio::test]
async fn a_blank_or_short_token_is_refused_at_start() {
    for (key, value) in [
        ("AIRUDDER_ADMIN_TOKEN", ""),
        ("AIRUDDER_ADMIN_TOKEN", "   "),
        ("AIRUDDER_TOKEN", "a"),
        ("AIRUDDER_TOKEN", "padded-token-0123456789 "),
    ] {
        let (code, _, err) = relay_command(
            &[],
            &[
                (key, value),
                ("AIRUDDER_LISTEN", "127.0.0.1:0"),
                ("AIRUDDER_ADMIN_LISTEN", "127.0.0.1:0"),
            ],
        )
        .await;
        assert_eq!(code, Some(2), "{key}={value:?} starts: {err}");
        assert!(
            err.contains(key) && err.contains("openssl rand -hex 32"),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_token_a_browser_page_gets_nothing_from_the_admin_api() {
    let data = DataDir::new();
    let mut relay = start(&data, &[]).await;
    let admin = format!("http://{}", relay.admin);
    let port = relay.admin.rsplit(':').next().unwrap().to_owned();
    let get = |host: String| {
        let admin = admin.clone();
        async move {
            client()
                .get(format!("{admin}/admin/stats"))
                .header("host", host)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // DNS rebinding: a name the attacker controls, resolved to 127.0.0.1.
    assert_eq!(get("attacker.example".into()).await, 403);
    assert_eq!(get(format!("attacker.example:{port}")).await, 403);
    assert_eq!(get(format!("localhost:{port}")).await, 200);
    assert_eq!(get(format!("127.0.0.1:{port}")).await, 200);

    // A change from a page elsewhere, as a form or a fetch would send it.
    let post = |content_type: &'static str, origin: Option<String>| {
        let admin = admin.clone();
        async move {
            let mut request = client()
                .post(format!("{admin}/admin/dead-letters/1/replay"))
                .header("content-type", content_type)
                .body("{}");
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
            request.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(
        post("application/json", Some("http://attacker.example".into())).await,
        403
    );
    assert_eq!(post("text/plain", None).await, 415);
    assert_eq!(
        post("application/x-www-form-urlencoded", Some(admin.clone())).await,
        415
    );
    // The CLI's own request passes the guard (and finds no dead letter 1).
    assert_eq!(post("application/json", None).await, 404);
    assert_eq!(post("application/json", Some(admin.clone())).await, 404);
    relay.terminate().await;
}

/// The relay's resident memory, from /proc.
fn rss_bytes(relay: &Relay) -> u64 {
    let pid = relay.child.id().expect("running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_bodies_stay_within_their_cap_and_listing_them_reads_none() {
    use std::os::unix::fs::PermissionsExt;

    const MIB: u64 = 1024 * 1024;
    let data = DataDir::new();
    let mut relay = start(&data, &[("AIRUDDER_ADMIN_TOKEN", ADMIN_TOKEN)]).await;
    // Only the relay can read what it keeps: every body, phone numbers included.
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let file = data.0.join("airudder.redb");
    assert_eq!(mode(&data.0), 0o700, "the data folder");
    assert_eq!(mode(&file), 0o600, "the store's file");

    // 40 malformed bodies of 8 MiB, each answered 400 and kept for replay, at the default cap
    // of 64 MiB.
    let mut body = br#"{"task_id": ""#.to_vec();
    body.resize(8 * MIB as usize, b'x');
    // What the store's folder holds on disk: its database file and a file a kept body.
    let used = || -> u64 {
        let mut total = 0;
        let mut folders = vec![data.0.clone()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).unwrap().flatten() {
                let meta = entry.metadata().unwrap();
                if meta.is_dir() {
                    folders.push(entry.path());
                } else {
                    total += meta.len();
                }
            }
        }
        total
    };
    // The 400 goes out before the body is kept: wait until the store lists it, so that what
    // is measured is what the store keeps, not the bodies still being written (those are
    // bounded by the bytes in flight, not by the cap).
    let kept = |id: u64| {
        let relay = &relay;
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while admin_get(relay, "/admin/rejected?limit=1000").await["items"]
                .as_array()
                .and_then(|items| items.last())
                .is_none_or(|last| last["id"] != id)
            {
                assert!(Instant::now() < deadline, "body {id} kept within 20 s");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let mut sizes = Vec::new();
    for id in 1..=40 {
        let status = client()
            .post(format!("http://{}/airudder/task", relay.addr))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 400, "body {id}");
        kept(id).await;
        sizes.push(used());
    }
    eprintln!(
        "the store's folder after each body is kept, in MiB: {:?}",
        sizes.iter().map(|s| s / MIB).collect::<Vec<_>>()
    );
    // The cap and the database file, after every body (before, the folder grew by 8 MiB a
    // body: the issue saw 322 MB after 20).
    for (n, size) in sizes.iter().enumerate() {
        assert!(
            *size <= 64 * MIB + MIB,
            "after body {}: {size} bytes",
            n + 1
        );
    }
    assert!(
        std::fs::metadata(&file).unwrap().len() < MIB,
        "the database file"
    );

    let before = rss_bytes(&relay);
    let page = admin_get(&relay, "/admin/rejected?limit=1000").await;
    let grown = rss_bytes(&relay).saturating_sub(before);
    let items = page["items"].as_array().unwrap();
    let ids: Vec<u64> = items.iter().map(|i| i["id"].as_u64().unwrap()).collect();
    assert_eq!(
        ids,
        (34..=40).collect::<Vec<_>>(),
        "the newest seven: eight bodies and their records are over 64 MiB"
    );
    assert!(items.iter().all(|i| i["bytes"] == 8 * MIB));
    assert!(
        grown < 16 * MIB,
        "listing grew the relay by {} MiB",
        grown / MIB
    );
    let one = admin_get(&relay, "/admin/rejected/40").await;
    assert_eq!(one["body"].as_str().map(str::len), Some(8 * MIB as usize));
    relay.terminate().await;
    let logs = relay.logs().await;
    assert!(
        logs.contains("dropped the oldest refused bodies: over the refused bodies' cap"),
        "the drops are logged: {logs}"
    );
}
