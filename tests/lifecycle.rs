//! Graceful shutdown and log hygiene.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish() {
    let mut mock = MockUpstream::start().await;
    let mut proxy = spawn_proxy(settings(&mock.url)).await;
    mock.push(
        MockReply::json(r#"{"status":"success","data":"late"}"#).delay(Duration::from_millis(500)),
    );
    let url = format!("{}/api/marketer/subscribers", proxy.url);
    let in_flight = tokio::spawn(async move { reqwest::get(url).await });
    // The upstream has the request: it is in flight now.
    mock.next_request().await;
    proxy.shutdown();
    let resp = in_flight.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"status":"success","data":"late"}"#
    );
    let result = tokio::time::timeout(Duration::from_secs(10), &mut proxy.task)
        .await
        .expect("server stops after draining")
        .unwrap();
    assert!(result.is_ok());
    // And it no longer accepts connections.
    assert!(tokio::net::TcpStream::connect(proxy.addr).await.is_err());
}

#[tokio::test]
async fn shutdown_grace_bounds_the_drain() {
    let mut mock = MockUpstream::start().await;
    let mut s = settings(&mock.url);
    s.timeouts.shutdown_grace = Duration::from_millis(100);
    let mut proxy = spawn_proxy(s).await;
    mock.push(MockReply::success().delay(Duration::from_secs(60)));
    let url = format!("{}/api/marketer/subscribers", proxy.url);
    let in_flight = tokio::spawn(async move { reqwest::get(url).await });
    mock.next_request().await;
    proxy.shutdown();
    let result = tokio::time::timeout(Duration::from_secs(10), &mut proxy.task)
        .await
        .expect("the grace period ends the drain")
        .unwrap();
    assert!(result.is_ok());
    // serve() returned while the slow request was still waiting on its upstream (60s): the
    // drain did not wait for it, and the request was cut off rather than left hanging.
    let cut = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("the client sees its connection closed")
        .unwrap();
    assert!(cut.is_err(), "the slow request was not answered: {cut:?}");
}

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// The scoped subscriber is handed to the worker threads too (server::Worker::spawn).
#[tokio::test(flavor = "current_thread")]
async fn the_key_appears_nowhere_in_debug_logs() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut mock = MockUpstream::start().await;
    let mut s = settings_no_retry(&mock.url);
    s.timeouts.attempt = Duration::from_millis(300);
    let proxy = spawn_proxy(s).await;
    let client = reqwest::Client::new();
    mock.push(MockReply::json(r#"{"status":"error","error_code":422}"#));
    mock.push(MockReply::success().delay(Duration::from_secs(5)));
    for _ in 0..3 {
        let _ = client
            .post(format!("{}/api/marketer?do=campaigns", proxy.url))
            .header("authorization", "Bearer client-secret-token")
            .body(r#"{"limit":1}"#)
            .send()
            .await
            .unwrap();
    }
    mock.next_request().await;
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("request"), "logging was captured: {logs}");
    assert!(
        logs.contains("timeouts.attempt"),
        "the timeout was logged: {logs}"
    );
    assert!(!logs.contains(FAKE_KEY), "the key leaked into the logs");
    assert!(
        !logs.contains("client-secret-token"),
        "a client credential leaked"
    );
}
