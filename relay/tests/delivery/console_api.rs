//! What the operator's console asks of the admin API, as real processes: its page and files
//! without the token and with strict headers, the overview, a count before a bulk action, a
//! notification's `webhook-id`, and the purge of refused bodies.

use crate::common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{DataDir, Service, client, free_port, notification, start};
use serde_json::Value;

const ADMIN_TOKEN: &str = "console-api-admin-token-0123";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_loads_without_the_token_and_every_answer_keeps_the_browser_to_itself() {
    let data = DataDir::new();
    let port = free_port();
    let _service = Service::start(port).await;
    let url = format!("http://127.0.0.1:{port}/hooks");
    let relay = start(
        &data,
        &[
            ("AIRUDDER_FORWARD_URL", url.as_str()),
            ("AIRUDDER_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    )
    .await;
    let base = format!("http://{}", relay.admin);
    let get = |path: &str| client().get(format!("{base}{path}")).send();

    let page = get("/admin/").await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    let header = |name: &str| headers[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    let policy = header("content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "no-referrer");
    let html = page.text().await.unwrap();
    assert!(html.contains("/admin/console/app.js"), "{html}");

    for (file, media) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("views.js", "text/javascript; charset=utf-8"),
        ("mask.js", "text/javascript; charset=utf-8"),
        ("chart.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
    ] {
        let answer = get(&format!("/admin/console/{file}")).await.unwrap();
        assert_eq!(answer.status(), 200, "{file}");
        assert_eq!(answer.headers()["content-type"], media, "{file}");
        assert!(!answer.text().await.unwrap().is_empty(), "{file}");
    }
    let absent = get("/admin/console/secrets.js").await.unwrap();
    assert_eq!(absent.status(), 404);
    let redirect = client().get(format!("{base}/admin")).send().await.unwrap();
    assert_eq!(redirect.url().path(), "/admin/", "followed to the page");

    // The data is still behind the token, and its answers carry the same headers.
    let data_without = get("/admin/overview").await.unwrap();
    assert_eq!(data_without.status(), 401);
    assert_eq!(data_without.headers()["x-content-type-options"], "nosniff");
    assert!(
        data_without
            .headers()
            .contains_key("content-security-policy")
    );
    let (status, _) = relay
        .admin_api(Some(ADMIN_TOKEN))
        .get("/admin/overview")
        .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_counts_and_the_one_notification_view_answer_what_the_store_holds() {
    let data = DataDir::new();
    let port = free_port();
    let service = Service::start(port).await;
    service.status.store(500, Ordering::SeqCst);
    let url = format!("http://127.0.0.1:{port}/hooks");
    let relay = start(
        &data,
        &[
            ("AIRUDDER_FORWARD_URL", url.as_str()),
            ("AIRUDDER_ADMIN_TOKEN", ADMIN_TOKEN),
            ("AIRUDDER_RETRY_FOR", "1s"),
        ],
    )
    .await;
    let admin = relay.admin_api(Some(ADMIN_TOKEN));
    for task in ["dead-1", "dead-2", "dead-3"] {
        assert_eq!(relay.post(notification(task)).await, 200);
    }
    admin
        .until(
            "/admin/notifications/count?state=dead",
            Duration::from_secs(20),
            |count| count["count"] == 3,
        )
        .await;

    // A count takes the lists' filters, and refuses what they refuse.
    let count = admin
        .ok("/admin/notifications/count?state=dead&task_id=dead-2")
        .await;
    assert_eq!(count["count"], 1, "{count}");
    let count = admin
        .ok("/admin/notifications/count?kind=task_notification")
        .await;
    assert_eq!(count["count"], 3, "{count}");
    let (status, refused) = admin.get("/admin/notifications/count?limit=5").await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("unknown parameter"),
        "{refused}"
    );

    // One notification names the webhook-id the service was sent.
    let found = admin.ok("/admin/notifications?task_id=dead-2").await;
    let id = found["items"][0]["id"].as_u64().unwrap();
    let shown = admin.ok(&format!("/admin/notifications/{id}")).await;
    let sent: Vec<String> = service
        .received()
        .iter()
        .filter(|r| common::task_id(&r.body) == "dead-2")
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert!(!sent.is_empty());
    assert!(sent.iter().all(|id| *id == shown["webhook_id"]), "{shown}");
    assert!(
        shown["webhook_id"].as_str().unwrap().starts_with("msg_"),
        "{shown}"
    );

    // The overview: the store's numbers, each kind's row, and the last hour's counters.
    let overview = admin.ok("/admin/overview").await;
    assert_eq!(overview["ready"], true, "{overview}");
    let store = &overview["store"];
    assert_eq!(
        (&store["backend"], &store["answers"], &store["dead_letters"]),
        (&Value::from("redb"), &Value::from(true), &Value::from(3)),
        "{overview}"
    );
    let kinds = admin.ok("/admin/kinds").await;
    assert_eq!(overview["kinds"], kinds["items"], "{overview}");
    let task = overview["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "task_notification")
        .unwrap();
    assert_eq!(
        (&task["dead"], &task["pending"]),
        (&Value::from(3), &Value::from(0))
    );
    let activity = &overview["activity"];
    let minutes = activity["minutes"].as_array().unwrap();
    assert!((1..=60).contains(&minutes.len()), "{activity}");
    let sum = |field: &str| -> u64 {
        activity["kinds"]["task_notification"][field]
            .as_array()
            .unwrap_or_else(|| panic!("{field} in {activity}"))
            .iter()
            .map(|n| n.as_u64().unwrap())
            .sum()
    };
    assert_eq!(sum("received"), 3, "{activity}");
    assert_eq!(sum("forwarded"), 0, "{activity}");
    let tries = service.received().len() as u64;
    assert_eq!(sum("failed"), tries, "each refused try counted: {activity}");
    // A duplicate is answered 200 but was received before: not counted again.
    assert_eq!(relay.post(notification("dead-1")).await, 200);
    let again = admin.ok("/admin/overview").await;
    let received: u64 = again["activity"]["kinds"]["task_notification"]["received"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(received, 3, "{again}");

    // Paused: the overview says so; pending ones have the oldest's time.
    let (status, _) = admin.post("/admin/kinds/task_notification/pause").await;
    assert_eq!(status, 200);
    assert_eq!(relay.post(notification("waiting")).await, 200);
    // The store's own numbers are at most half a second old.
    let overview = admin
        .until("/admin/overview", Duration::from_secs(5), |overview| {
            overview["store"]["pending"] == 1
        })
        .await;
    let task = &overview["kinds"][0];
    assert_eq!(
        (&task["paused"], &task["pending"]),
        (&Value::from(true), &Value::from(1)),
        "{overview}"
    );
    assert!(
        task["oldest_pending_at"].as_str().unwrap().ends_with('Z'),
        "{overview}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_bodies_are_listed_with_their_time_and_purged_by_age() {
    let data = DataDir::new();
    let port = free_port();
    let _service = Service::start(port).await;
    let url = format!("http://127.0.0.1:{port}/hooks");
    let relay = start(
        &data,
        &[
            ("AIRUDDER_FORWARD_URL", url.as_str()),
            ("AIRUDDER_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    )
    .await;
    let admin = relay.admin_api(Some(ADMIN_TOKEN));
    assert_eq!(relay.post(br#"{"task_id": 5}"#.to_vec()).await, 422);
    let listed = admin.ok("/admin/rejected").await;
    let item = &listed["items"][0];
    assert_eq!(item["status"], 422, "{listed}");
    assert!(
        item["received_at"].as_str().unwrap().ends_with('Z'),
        "{listed}"
    );

    let (status, refused) = admin.post("/admin/rejected/purge").await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("before= is required"),
        "{refused}"
    );
    let (status, kept) = admin
        .post("/admin/rejected/purge?before=2020-01-01T00:00:00Z")
        .await;
    assert_eq!((status, &kept["purged"]), (200, &Value::from(0)), "{kept}");
    let (status, purged) = admin
        .post("/admin/rejected/purge?before=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(
        (status, &purged["purged"]),
        (200, &Value::from(1)),
        "{purged}"
    );
    let listed = admin.ok("/admin/rejected").await;
    assert_eq!(listed["items"], Value::Array(Vec::new()), "{listed}");
}
