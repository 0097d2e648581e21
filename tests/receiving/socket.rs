//! The receiver mounted in axum, over a real socket on 127.0.0.1 port 0.

use crate::support;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use airudder_webhook::auth::QueryToken;
use airudder_webhook::model::TaskNotification;
use airudder_webhook::{Delivery, Receiver};
use axum::Router;
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_body_posted_over_a_socket_is_answered_and_handled() {
    let (tx, mut handled) = mpsc::unbounded_channel();
    let receiver = Receiver::builder(move |delivery: Delivery<TaskNotification>| {
        let tx = tx.clone();
        async move {
            // Slow on purpose: the answer must not wait for it.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = tx.send((Instant::now(), delivery));
            Ok::<_, Infallible>(())
        }
    })
    .authorize(QueryToken::new(["s3cret-token"]).unwrap())
    .build()
    .unwrap();
    let shutdown = receiver.shutdown_handle();
    let app = Router::new().route_service("/airudder/task", receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let url = format!("http://{addr}/airudder/task?token=s3cret-token");
    let sent = Instant::now();
    let (status, headers, body) =
        support::send("POST", &url, "application/json", support::EXAMPLE).await;
    let answered = Instant::now();
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body, "{}");

    let (handled_at, delivery) = tokio::time::timeout(Duration::from_secs(5), handled.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::to_value(delivery.event()).unwrap(),
        support::example_value()
    );
    assert!(
        answered < handled_at,
        "the 200 came before the handler finished"
    );
    assert!(
        answered - sent < Duration::from_millis(900),
        "answered in {:?}",
        answered - sent
    );

    let (status, _, body) =
        support::send("POST", &url, "application/json", &b"{not json"[..]).await;
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["error"],
        "malformed_json"
    );

    let stranger = format!("http://{addr}/airudder/task?token=guess");
    let (status, _, _) =
        support::send("POST", &stranger, "application/json", support::EXAMPLE).await;
    assert_eq!(status, 401);

    server.abort();
    let report = shutdown.shutdown(Duration::from_secs(5)).await;
    assert_eq!((report.handled, report.left), (1, 0));
}
