//! A rate cap per destination (`AIRUDDER_FORWARD_RATE`), as real processes: over 30 s of a
//! backlog larger than the rate allows, the service sees the rate, within 10%.

use crate::common;

use std::time::Duration;

use common::{DataDir, Service, free_port, notification, start_quiet};

const RATE: usize = 20;
const WINDOW: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_keep_to_the_rate_over_thirty_seconds() {
    let _alone = crate::ALONE.lock().await;
    let data = DataDir::new();
    let port = free_port();
    let service = Service::start(port).await;
    let url = format!("http://127.0.0.1:{port}/hooks");
    let relay = start_quiet(
        &data,
        &[
            ("AIRUDDER_FORWARD_URL", url.as_str()),
            ("AIRUDDER_FORWARD_RATE", "20/s"),
        ],
    )
    .await;
    // More than the window takes, posted faster than the rate.
    let count = RATE * WINDOW.as_secs() as usize * 5 / 4;
    let bodies = (0..count)
        .map(|i| notification(&format!("rated-{i:04}")))
        .collect();
    relay.post_all(bodies, 16).await;
    let received = service.wait_for(1, Duration::from_secs(10)).await;
    let start = received[0].at;
    tokio::time::sleep_until((start + WINDOW + Duration::from_millis(500)).into()).await;
    let within = service
        .received()
        .iter()
        .filter(|r| r.at.duration_since(start) < WINDOW)
        .count();
    let expected = RATE * WINDOW.as_secs() as usize;
    assert!(
        within.abs_diff(expected) <= expected / 10,
        "{within} forwards in {WINDOW:?} at {RATE}/s: {expected} within 10%"
    );
    // And no burst within it: never more than the rate and two in any second (arrival jitter).
    let times: Vec<_> = service.received().iter().map(|r| r.at).collect();
    for (i, at) in times.iter().enumerate() {
        let in_second = times[i..]
            .iter()
            .take_while(|later| later.duration_since(*at) < Duration::from_secs(1))
            .count();
        assert!(in_second <= RATE + 2, "{in_second} forwards in one second");
    }
}
