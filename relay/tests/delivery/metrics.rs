//! `GET /metrics` on the relay's admin listener, scraped for real after real requests.

use crate::common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{DataDir, Relay, Service, client, free_port, notification, start};

/// One scrape: every sample line, as (name with labels, value).
pub(crate) struct Scrape(Vec<(String, f64)>);

impl Scrape {
    /// The value of the series whose name is `name` and whose labels include `labels`
    /// (`key="value"` each), summed over the rest; `None` if there is none.
    pub(crate) fn get(&self, name: &str, labels: &[&str]) -> Option<f64> {
        let matching: Vec<f64> = self
            .0
            .iter()
            .filter(|(series, _)| {
                let (series_name, rest) = series.split_once('{').unwrap_or((series, ""));
                series_name == name && labels.iter().all(|label| rest.contains(label))
            })
            .map(|(_, value)| *value)
            .collect();
        (!matching.is_empty()).then(|| matching.iter().sum())
    }

    fn value(&self, name: &str, labels: &[&str]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in the scrape:\n{}", self.text()))
    }

    /// Every metric name in the scrape.
    fn names(&self) -> BTreeSet<String> {
        self.0
            .iter()
            .map(|(series, _)| series.split('{').next().unwrap_or_default().to_owned())
            .collect()
    }

    fn text(&self) -> String {
        self.0
            .iter()
            .map(|(series, value)| format!("{series} {value}\n"))
            .collect()
    }
}

async fn scrape(relay: &Relay, token: Option<&str>) -> Scrape {
    let mut request = client().get(format!("http://{}/metrics", relay.admin));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    Scrape(
        text.lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("a sample line");
                (series.to_owned(), value.parse().expect("a number"))
            })
            .collect(),
    )
}

/// Scrapes until `check` holds (within 10 s).
pub(crate) async fn scrape_until(
    relay: &Relay,
    token: Option<&str>,
    what: &str,
    check: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = scrape(relay, token).await;
        if check(&seen) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never held:\n{}",
            seen.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The task notification receiver's label.
const TASK: &str = r#"receiver="task_notification""#;

async fn post_to(relay: &Relay, query: &str, content_type: &str, body: Vec<u8>) -> u16 {
    client()
        .post(format!("http://{}/airudder/task{query}", relay.addr))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_scrape_counts_each_answer_once_under_its_status_and_the_gauges_follow_the_queue() {
    let data = DataDir::new();
    let token = "scrape-t0ken-long-enough";
    let relay = start(
        &data,
        &[
            ("AIRUDDER_TOKEN", "s3cret-long-enough"),
            ("AIRUDDER_ADMIN_TOKEN", token),
            ("AIRUDDER_BODY_LIMIT", "65536"),
            ("AIRUDDER_WORKERS", "1"),
            ("AIRUDDER_QUEUE_CAPACITY", "1"),
            ("AIRUDDER_HANDLER_DELAY_MS", "1500"),
            ("AIRUDDER_METRICS_INTERVAL", "50ms"),
        ],
    )
    .await;
    // Without the admin token, no metrics.
    let refused = client()
        .get(format!("http://{}/metrics", relay.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let ok = "?token=s3cret-long-enough";
    let json = "application/json";
    // One printing, two waiting in the store: the store is the queue, so the third is
    // answered 200 as well, however far the handler is behind.
    assert_eq!(post_to(&relay, ok, json, notification("first")).await, 200);
    assert_eq!(post_to(&relay, ok, json, notification("first")).await, 200);
    assert_eq!(post_to(&relay, ok, json, notification("second")).await, 200);
    assert_eq!(post_to(&relay, ok, json, notification("third")).await, 200);
    let busy = scrape_until(&relay, Some(token), "a backlog", |s| {
        s.get("airudder_handlers_running", &[]) == Some(1.0)
            // The store's counts are shared by the relay's receivers, at most 0.5 s old.
            && s.get("airudder_store_pending", &[TASK]) == Some(3.0)
    })
    .await;
    assert!(busy.value("airudder_bytes_in_flight", &[]) > 0.0);
    assert_eq!(
        busy.value(
            "airudder_store_pending",
            &[r#"receiver="task_notification""#]
        ),
        3.0
    );

    assert_eq!(post_to(&relay, ok, json, b"{not json".to_vec()).await, 400);
    assert_eq!(
        post_to(&relay, "?token=wrong", json, notification("x")).await,
        401
    );
    assert_eq!(post_to(&relay, ok, json, vec![b' '; 70_000]).await, 413);
    assert_eq!(
        post_to(&relay, ok, "text/plain", notification("x")).await,
        415
    );
    assert_eq!(
        post_to(&relay, ok, json, br#"{"task_id": 7}"#.to_vec()).await,
        422
    );

    let seen = scrape_until(&relay, Some(token), "a drained queue", |s| {
        s.get("airudder_queue_depth", &[]) == Some(0.0)
            && s.get("airudder_handlers_running", &[]) == Some(0.0)
            && s.get("airudder_store_pending", &[]) == Some(0.0)
    })
    .await;
    for (status, outcome, count) in [
        ("200", "accepted", 3.0),
        ("200", "duplicate", 1.0),
        ("400", "malformed_json", 1.0),
        ("401", "unauthorized", 1.0),
        ("413", "payload_too_large", 1.0),
        ("415", "unsupported_media_type", 1.0),
        ("422", "invalid_notification", 1.0),
    ] {
        let labels = [
            r#"receiver="task_notification""#,
            &format!(r#"status="{status}""#),
            &format!(r#"outcome="{outcome}""#),
        ];
        assert_eq!(
            seen.value("airudder_requests_total", &labels),
            count,
            "{labels:?}"
        );
    }
    assert_eq!(seen.value("airudder_requests_total", &[]), 9.0);
    assert_eq!(seen.value("airudder_answer_seconds_count", &[]), 9.0);
    assert_eq!(
        seen.value("airudder_answer_seconds_count", &[r#"status="200""#]),
        4.0
    );
    let answered_within_a_second = seen.value(
        "airudder_answer_seconds_bucket",
        &[r#"status="200""#, r#"le="1""#],
    );
    assert_eq!(
        answered_within_a_second, 4.0,
        "the 200s never wait for the handler"
    );
    assert_eq!(
        seen.value("airudder_handler_attempts_total", &[r#"result="ok""#]),
        3.0
    );
    assert_eq!(seen.value("airudder_handler_seconds_count", &[]), 3.0);
    assert!(seen.value("airudder_handler_seconds_sum", &[]) >= 4.5);
    assert_eq!(seen.value("airudder_ready", &[TASK]), 1.0);
    assert_eq!(seen.value("airudder_store_recovering", &[TASK]), 0.0);
    assert_eq!(seen.value("airudder_store_dead_letters", &[TASK]), 0.0);

    // Every metric the dashboard and the alert rules name is one the relay exports.
    let exported = seen.names();
    for file in ["airudder-dashboard.json", "airudder-alerts.yml"] {
        let path = format!("{}/../deploy/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        for name in metric_names(&text) {
            if name.starts_with("airudder_forward_") {
                continue; // forwarding only: see the forwarding test
            }
            if name == "airudder_dead_letters_total" {
                continue; // from the first dead letter on: see the dead-letter test
            }
            assert!(
                exported.contains(&name)
                    || ["_bucket", "_count", "_sum"]
                        .iter()
                        .any(|suffix| exported.contains(&format!("{name}{suffix}"))),
                "{file} names {name}, which the relay does not export"
            );
        }
    }
}

#[tokio::test]
async fn an_idle_relay_shows_few_series_and_an_answer_adds_its_own() {
    let data = DataDir::new();
    let relay = start(
        &data,
        &[
            ("AIRUDDER_TOKEN", "s3cret-long-enough"),
            ("AIRUDDER_METRICS_INTERVAL", "50ms"),
        ],
    )
    .await;
    // Once sampled, the gauges are there; no answer's series is.
    let idle = scrape_until(&relay, None, "the gauges sampled", |s| {
        s.get("airudder_ready", &[TASK]) == Some(1.0)
            && s.get("airudder_store_pending", &[TASK]).is_some()
    })
    .await;
    eprintln!("{} series in an idle relay's scrape", idle.0.len());
    assert!(
        idle.0.len() < 100,
        "{} series:\n{}",
        idle.0.len(),
        idle.text()
    );
    for name in ["airudder_requests_total", "airudder_answer_seconds_count"] {
        assert_eq!(idle.get(name, &[]), None, "{name} before any answer");
    }

    let json = "application/json";
    assert_eq!(
        post_to(
            &relay,
            "?token=s3cret-long-enough",
            json,
            notification("one")
        )
        .await,
        200
    );
    assert_eq!(
        post_to(&relay, "?token=wrong", json, notification("two")).await,
        401
    );
    let seen = scrape(&relay, None).await;
    eprintln!("{} series after two answers", seen.0.len());
    let series = |name: &str| -> Vec<&str> {
        let mut found: Vec<&str> = seen
            .0
            .iter()
            .map(|(series, _)| series.as_str())
            .filter(|series| series.split('{').next() == Some(name))
            .collect();
        found.sort_unstable();
        found
    };
    assert_eq!(
        series("airudder_requests_total"),
        [
            r#"airudder_requests_total{receiver="task_notification",status="200",outcome="accepted"}"#,
            r#"airudder_requests_total{receiver="task_notification",status="401",outcome="unauthorized"}"#,
        ]
    );
    assert_eq!(
        series("airudder_answer_seconds_count"),
        [
            r#"airudder_answer_seconds_count{receiver="task_notification",status="200"}"#,
            r#"airudder_answer_seconds_count{receiver="task_notification",status="401"}"#,
        ]
    );
    assert_eq!(seen.value("airudder_requests_total", &[]), 2.0);
    for status in ["200", "401"] {
        let labels = [TASK, &format!(r#"status="{status}""#)];
        assert_eq!(seen.value("airudder_answer_seconds_count", &labels), 1.0);
        assert_eq!(
            seen.value(
                "airudder_answer_seconds_bucket",
                &[&labels[..], &[r#"le="+Inf""#]].concat()
            ),
            1.0
        );
    }
}

#[tokio::test]
async fn a_dead_letter_is_counted_from_the_first() {
    let port = free_port();
    let service = Service::start(port).await;
    service
        .status
        .store(500, std::sync::atomic::Ordering::SeqCst);
    let data = DataDir::new();
    let url = format!("http://127.0.0.1:{port}/hooks/airudder");
    let relay = start(
        &data,
        &[
            ("AIRUDDER_FORWARD_URL", &url),
            ("AIRUDDER_RETRY_FOR", "1s"),
            ("AIRUDDER_METRICS_INTERVAL", "50ms"),
        ],
    )
    .await;
    assert_eq!(
        scrape(&relay, None)
            .await
            .get("airudder_dead_letters_total", &[]),
        None
    );
    assert_eq!(relay.post(notification("given up")).await, 200);
    // Named by the dashboard and the alert rules.
    let seen = scrape_until(&relay, None, "a dead letter counted", |s| {
        s.get("airudder_dead_letters_total", &[TASK]) == Some(1.0)
    })
    .await;
    assert_eq!(seen.value("airudder_dead_letters_total", &[]), 1.0);
}

#[tokio::test]
async fn forwards_are_counted_by_result_and_status_with_their_latency_and_waiting_retries() {
    let port = free_port();
    let service = Service::start(port).await;
    service
        .status
        .store(500, std::sync::atomic::Ordering::SeqCst);
    let data = DataDir::new();
    let url = format!("http://127.0.0.1:{port}/hooks/airudder");
    let relay = start(
        &data,
        &[
            ("AIRUDDER_FORWARD_URL", &url),
            ("AIRUDDER_METRICS_INTERVAL", "50ms"),
        ],
    )
    .await;
    assert_eq!(relay.post(notification("forwarded")).await, 200);
    // After the first 500, the notification waits for its retry.
    scrape_until(&relay, None, "a retry waiting", |s| {
        s.get("airudder_forward_retries_waiting", &[]) == Some(1.0)
    })
    .await;
    service.wait_for(2, Duration::from_secs(10)).await;
    service
        .status
        .store(200, std::sync::atomic::Ordering::SeqCst);
    service.wait_for(3, Duration::from_secs(10)).await;
    let seen = scrape_until(&relay, None, "the forward counted", |s| {
        s.get("airudder_forward_attempts_total", &[r#"result="ok""#]) == Some(1.0)
            // Sampled from the store every 50 ms.
            && s.get("airudder_forward_retries_waiting", &[]) == Some(0.0)
    })
    .await;
    assert_eq!(
        seen.value(
            "airudder_forward_attempts_total",
            &[r#"result="rejected""#, r#"status="500""#]
        ),
        2.0
    );
    assert_eq!(
        seen.value(
            "airudder_forward_attempts_total",
            &[r#"result="ok""#, r#"status="200""#]
        ),
        1.0
    );
    assert_eq!(seen.value("airudder_forward_seconds_count", &[]), 3.0);
    assert_eq!(seen.value("airudder_forward_retries_waiting", &[]), 0.0);
    assert_eq!(
        seen.value("airudder_handler_attempts_total", &[r#"result="ok""#]),
        1.0
    );

    let exported = seen.names();
    let dashboard = std::fs::read_to_string(format!(
        "{}/../deploy/airudder-dashboard.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    for name in metric_names(&dashboard).filter(|n| n.starts_with("airudder_forward_")) {
        assert!(
            exported.contains(&name)
                || ["_bucket", "_count", "_sum"]
                    .iter()
                    .any(|suffix| exported.contains(&format!("{name}{suffix}"))),
            "the dashboard names {name}, which the relay does not export"
        );
    }
}

#[tokio::test]
async fn the_json_log_format_writes_one_object_a_line_without_personal_data() {
    let data = DataDir::new();
    let mut relay = start(&data, &[("AIRUDDER_LOG_FORMAT", "json")]).await;
    assert_eq!(relay.post(notification("logged")).await, 200);
    assert_eq!(
        post_to(&relay, "", "text/plain", notification("refused")).await,
        415
    );
    relay.terminate().await;
    let logs = relay.logs().await;
    let objects: Vec<serde_json::Value> = logs
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(
        objects
            .iter()
            .any(|o| o["level"] == "WARN" && o["outcome"] == "unsupported_media_type"),
        "{logs}"
    );
    assert!(objects.iter().any(|o| o["message"] == "answered"), "{logs}");
    // Every line is one object, the start-up and stop lines too.
    for line in relay.startup.lines().chain(logs.lines()) {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok_and(|o| o.is_object()),
            "not a JSON object: {line}"
        );
    }
    assert!(
        relay.startup.contains(r#""message":"listening on http://"#),
        "{}",
        relay.startup
    );
    assert!(logs.contains(r#""message":"stopped: 1 handled"#), "{logs}");
    // The example's callee, and its customer variables' values.
    assert!(!logs.contains("12345678"), "{logs}");
}

/// Every `airudder_…` name in a text.
fn metric_names(text: &str) -> impl Iterator<Item = String> + '_ {
    text.match_indices("airudder_").map(move |(at, _)| {
        text[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    })
}

#[tokio::test]
async fn a_path_nothing_is_served_at_is_a_404_that_says_why_counted_and_logged() {
    let data = DataDir::new();
    let mut relay = start(&data, &[("AIRUDDER_RAW_NAMES", "crm")]).await;
    let post = |path: &str| {
        client()
            .post(format!("http://{}{path}", relay.addr))
            .header("content-type", "application/json")
            .body("{}")
            .send()
    };
    // A raw callback Airudder was given but the relay was not told about.
    let answer = post("/airudder/raw/billing").await.unwrap();
    assert_eq!(answer.status(), 404);
    let body: serde_json::Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    assert_eq!(body["code"], "not_found");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("\"billing\"") && error.contains("AIRUDDER_RAW_NAMES"),
        "{error}"
    );
    let answer = post("/somewhere/else").await.unwrap();
    assert_eq!(answer.status(), 404);
    let body: serde_json::Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    assert!(body["error"].as_str().unwrap().contains("relay/README.md"));
    // The configured one is served.
    assert_eq!(post("/airudder/raw/crm").await.unwrap().status(), 200);

    let seen = scrape(&relay, None).await;
    assert_eq!(
        seen.value("airudder_unrouted_requests_total", &[r#"path="raw""#]),
        1.0
    );
    assert_eq!(
        seen.value("airudder_unrouted_requests_total", &[r#"path="other""#]),
        1.0
    );
    relay.terminate().await;
    let logs = relay.logs().await;
    assert!(
        logs.lines()
            .any(|line| line.contains("WARN") && line.contains("AIRUDDER_RAW_NAMES")),
        "{logs}"
    );
}
