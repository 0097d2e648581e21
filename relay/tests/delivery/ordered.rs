//! `AIRUDDER_ORDERED`: a contact's predictive-dialer events reach a service that refuses now and
//! then in the order they were posted, each once it is accepted, none lost; a call the service
//! refuses holds back its later events, as the admin API's pending list and the held-back gauge
//! show, while another call goes on.

use crate::common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use common::DataDir;

use crate::metrics::{Scrape, scrape_until};

/// A contact's states, in the order the dialer sends them.
const STATES: [&str; 5] = ["CALLING", "RINGING", "ANSWERED", "HANGUP", "TALKRESULT"];

/// The calls, each with its own key (`call:<callid>`).
const CALLS: usize = 8;

/// A `ContactStatus` event of `callid` in `state`, at its own time: each body distinct.
fn contact_status(callid: &str, state: &str, at_ms: u64) -> Vec<u8> {
    let mut body = serde_json::json!({
        "taskId": "pds-ordered",
        "taskName": "Ordered 1",
        "callid": callid,
        "phoneNumber": "+620000000000",
        "state": state,
        "timestamp": at_ms.to_string(),
        "customerInfo": {"name": "Test"},
    });
    if matches!(state, "HANGUP" | "TALKRESULT") {
        body["hangupReason"] = 12.into();
    }
    serde_json::to_vec(&serde_json::json!({"type": "ContactStatus", "body": body})).unwrap()
}

/// The `ContactStatus` events of `callid` in `states`, a second apart.
fn contact_statuses(callid: &str, states: &[&str]) -> Vec<Vec<u8>> {
    states
        .iter()
        .enumerate()
        .map(|(i, state)| contact_status(callid, state, 1_764_576_000_000 + i as u64 * 1000))
        .collect()
}

/// A request the service received: the call, the state's place in [`STATES`], whether it was
/// accepted, and the body.
#[derive(Debug, Clone)]
struct Seen {
    callid: String,
    state: usize,
    accepted: bool,
    body: Bytes,
}

/// Whether the service refuses a request for the call given, decided for each request.
type Refuse = Box<dyn FnMut(&str) -> bool + Send>;

/// The service: refuses a request when its rule says so (503, `Retry-After: 1`, so that a
/// refused one is retried within the test's time), accepts the others; records each.
#[derive(Clone)]
struct PdsService {
    refuse: Arc<Mutex<Refuse>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl PdsService {
    /// Listens on 127.0.0.1 until the test ends; itself, and the URL to forward to.
    async fn start(refuse: impl FnMut(&str) -> bool + Send + 'static) -> (Self, String) {
        let service = Self {
            refuse: Arc::new(Mutex::new(Box::new(refuse))),
            seen: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/hooks", axum::routing::post(receive))
            .with_state(service.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (service, url)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn receive(
    State(service): State<PdsService>,
    body: Bytes,
) -> (StatusCode, HeaderMap, &'static str) {
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let callid = value["body"]["callid"].as_str().unwrap().to_owned();
    let state = value["body"]["state"].as_str().unwrap();
    let state = STATES.iter().position(|s| *s == state).unwrap();
    let accepted = !(service.refuse.lock().unwrap())(&callid);
    service.seen.lock().unwrap().push(Seen {
        callid,
        state,
        accepted,
        body,
    });
    let mut headers = HeaderMap::new();
    if accepted {
        (StatusCode::OK, headers, "{}")
    } else {
        headers.insert("retry-after", "1".parse().unwrap());
        (StatusCode::SERVICE_UNAVAILABLE, headers, "{}")
    }
}

/// Starts a relay forwarding to `url`, task notifications and PDS events ordered, with `env`
/// besides; returns once it has said so.
async fn start_ordered(data: &DataDir, url: &str, env: &[(&str, &str)]) -> common::Relay {
    let mut all = vec![
        ("RUST_LOG", "error"),
        ("AIRUDDER_FORWARD_URL", url),
        ("AIRUDDER_ORDERED", "task_notification,pds_event"),
    ];
    all.extend_from_slice(env);
    let mut relay = common::start(data, &all).await;
    // Said at start, after the listening lines.
    let mut said = relay.startup.clone();
    while !said.contains("in order per key") {
        let line = common::next_line(&mut relay.stderr).await;
        said.push_str(&line.unwrap_or_else(|| panic!("the relay exited: {said}")));
        said.push('\n');
    }
    assert!(
        said.contains("in order per key: task_notification, pds_event\n"),
        "{said}"
    );
    relay
}

/// Posts `bodies` to the PDS callback of the relay at `addr` one after the other, each
/// answered 200 before the next is sent.
async fn post_in_turn(addr: &str, bodies: Vec<Vec<u8>>) {
    let pds = format!("http://{addr}/airudder/pds");
    let http = common::client();
    for body in bodies {
        let answer = http
            .post(&pds)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("the relay answers");
        assert_eq!(answer.status(), 200, "stored");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contacts_pds_events_reach_a_service_refusing_at_random_in_the_order_posted() {
    let seed = fastrand::u64(..);
    // One request in four refused, at random.
    let mut rng = fastrand::Rng::with_seed(seed);
    let (service, url) = PdsService::start(move |_| rng.u8(..4) == 0).await;

    let data = DataDir::new();
    let mut relay = start_ordered(&data, &url, &[]).await;

    // Each call's events posted one after the other (each answered before the next is sent),
    // the calls at once: their events interleave.
    let started = Instant::now();
    let mut posted: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    let mut posting = Vec::new();
    for call in 0..CALLS {
        let callid = format!("c-ordered-{call}");
        let bodies = contact_statuses(&callid, &STATES);
        posted.insert(callid, bodies.clone());
        let addr = relay.addr.clone();
        posting.push(tokio::spawn(
            async move { post_in_turn(&addr, bodies).await },
        ));
    }
    for post in posting {
        post.await.unwrap();
    }

    // Every event accepted once at least, within the test's time.
    let every = CALLS * STATES.len();
    let deadline = started + Duration::from_secs(25);
    let accepted = || {
        let seen = service.seen.lock().unwrap();
        let mut events: Vec<(String, usize)> = seen
            .iter()
            .filter(|s| s.accepted)
            .map(|s| (s.callid.clone(), s.state))
            .collect();
        events.sort();
        events.dedup();
        events.len()
    };
    while accepted() < every {
        assert!(
            Instant::now() < deadline,
            "{} of {every} events accepted within 25 s (seed {seed})",
            accepted()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    // A copy that came after its acceptance, or an event beyond it, would show by now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let seen = service.seen();
    let status = relay.terminate().await;
    assert!(status.success(), "exit {status}");

    let refused = seen.iter().filter(|s| !s.accepted).count();
    assert!(refused > 0, "the service refused none (seed {seed})");
    for (callid, bodies) in &posted {
        let requests: Vec<&Seen> = seen.iter().filter(|s| s.callid == *callid).collect();
        let states: Vec<(&str, bool)> = requests
            .iter()
            .map(|s| (STATES[s.state], s.accepted))
            .collect();
        let shown = format!("{callid}, seed {seed}: {states:?}");
        // Each request is for the event after the last one accepted, or for that one again
        // (a retry; a repeat after its acceptance too): never an event ahead of it, never back.
        let mut done: Option<usize> = None;
        for request in &requests {
            let next = done.map_or(0, |d| d + 1);
            assert!(
                Some(request.state) == done || request.state == next,
                "{} sent after {:?} was accepted: {shown}",
                STATES[request.state],
                done.map(|d| STATES[d])
            );
            assert_eq!(
                &request.body[..],
                &bodies[request.state][..],
                "the body as posted: {shown}"
            );
            if request.accepted {
                done = Some(request.state);
            }
        }
        assert_eq!(
            done,
            Some(STATES.len() - 1),
            "every event accepted: {shown}"
        );
    }
    eprintln!(
        "{every} events of {CALLS} calls in order in {took:?}, {} requests, {refused} refused (seed {seed})",
        seen.len()
    );
}

/// The admin token of the relay whose held-back call is looked at.
const ADMIN_TOKEN: &str = "ordered-admin-token-0123";

/// Each request the service received for `callid`: its state and whether it was accepted.
fn requests_for(seen: &[Seen], callid: &str) -> Vec<(&'static str, bool)> {
    seen.iter()
        .filter(|s| s.callid == callid)
        .map(|s| (STATES[s.state], s.accepted))
        .collect()
}

/// Waits until `done` holds of the requests the service received (within 10 s); them.
async fn seen_until(service: &PdsService, what: &str, done: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = service.seen();
        if done(&seen) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within 10 s: {:?}",
            seen.iter()
                .map(|s| (&s.callid, STATES[s.state], s.accepted))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_call_holds_back_its_later_events_as_the_admin_api_and_the_gauge_show_while_another_call_goes_on()
 {
    const A: &str = "c-held-a";
    const B: &str = "c-held-b";
    let refusing_a = Arc::new(AtomicBool::new(true));
    let (service, url) = PdsService::start({
        let refusing_a = Arc::clone(&refusing_a);
        move |callid| callid == A && refusing_a.load(Ordering::SeqCst)
    })
    .await;
    let data = DataDir::new();
    let mut relay = start_ordered(
        &data,
        &url,
        &[
            ("AIRUDDER_ADMIN_TOKEN", ADMIN_TOKEN),
            ("AIRUDDER_METRICS_INTERVAL", "100ms"),
        ],
    )
    .await;
    let admin = relay.admin_api(Some(ADMIN_TOKEN));
    let held_back = |scrape: &Scrape| {
        scrape.get(
            "airudder_ordered_keys_held_back",
            &[r#"receiver="pds_event""#],
        )
    };

    let started = Instant::now();
    let a_posted = contact_statuses(A, &STATES[..3]);
    post_in_turn(&relay.addr, a_posted.clone()).await;
    post_in_turn(&relay.addr, contact_statuses(B, &STATES[..2])).await;

    // B's events both delivered, in order, while A's first is refused and the rest of A wait.
    let seen = seen_until(
        &service,
        "B's two events accepted, A's first refused",
        |seen| {
            requests_for(seen, B).iter().filter(|(_, ok)| *ok).count() == 2
                && requests_for(seen, A).iter().any(|(_, ok)| !ok)
        },
    )
    .await;
    assert_eq!(
        requests_for(&seen, B),
        [("CALLING", true), ("RINGING", true)],
        "B in order, each once"
    );
    let a = requests_for(&seen, A);
    assert!(
        a.iter().all(|request| *request == ("CALLING", false)),
        "only A's first sent, refused: {a:?}"
    );

    // The pending list shows A's three under their key, the later two held back by the first.
    let path = "/admin/notifications?state=pending";
    let page = admin
        .until(path, Duration::from_secs(10), |page| {
            let items = page["items"].as_array().unwrap();
            items.len() == 3 && items[0]["last_error"].is_string()
        })
        .await;
    let items = page["items"].as_array().unwrap();
    let mut states = Vec::new();
    for item in items {
        let shown = admin
            .ok(&format!("/admin/notifications/{}", item["id"]))
            .await;
        states.push(shown["body"]["body"]["state"].as_str().unwrap().to_owned());
    }
    assert_eq!(states, ["CALLING", "RINGING", "ANSWERED"], "{page}");
    for item in items {
        assert_eq!(item["order_key"], format!("call:{A}"), "{page}");
    }
    let first = &items[0];
    assert_eq!(
        first.get("held_back_by"),
        None,
        "the first holds back: {page}"
    );
    assert!(
        first["last_error"].as_str().unwrap().contains("503"),
        "{page}"
    );
    for later in &items[1..] {
        assert_eq!(later["held_back_by"], first["id"], "{page}");
        assert_eq!(later["attempts"], 0, "never sent: {page}");
    }
    // One key held back.
    scrape_until(&relay, Some(ADMIN_TOKEN), "one key held back", |scrape| {
        held_back(scrape) == Some(1.0)
    })
    .await;

    // The service takes A now: its three arrive in order, and nothing is held back any more.
    refusing_a.store(false, Ordering::SeqCst);
    let seen = seen_until(&service, "A's three events accepted", |seen| {
        requests_for(seen, A).iter().filter(|(_, ok)| *ok).count() == 3
    })
    .await;
    let a = requests_for(&seen, A);
    let refused = a.iter().take_while(|(_, ok)| !ok).count();
    assert_eq!(
        a[refused..],
        [("CALLING", true), ("RINGING", true), ("ANSWERED", true)],
        "A in order once accepted: {a:?}"
    );
    let a_bodies: Vec<&[u8]> = seen
        .iter()
        .filter(|s| s.callid == A && s.accepted)
        .map(|s| &s.body[..])
        .collect();
    assert_eq!(a_bodies, a_posted, "the bodies as posted");
    scrape_until(&relay, Some(ADMIN_TOKEN), "no key held back", |scrape| {
        held_back(scrape) == Some(0.0)
    })
    .await;
    admin
        .until(path, Duration::from_secs(10), |page| {
            page["items"] == serde_json::json!([])
        })
        .await;
    let took = started.elapsed();
    let status = relay.terminate().await;
    assert!(status.success(), "exit {status}");
    eprintln!("A held back behind {refused} refusals, then delivered in order, in {took:?}");
}
