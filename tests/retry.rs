//! Retries against a scripted upstream: 429s (HTTP or envelope) retried with backoff or the
//! upstream's Retry-After, bodies replayed byte for byte, the budget, the shared cooldown.

mod common;

use std::time::Duration;

use common::*;

const RATE_LIMITED: &str = r#"{"status":"error","error_code":429,"message":"rate limit"}"#;

/// Fast backoff so tests stay short; the waits are still real.
fn fast(upstream: &str) -> onlytraffic_proxy::config::Settings {
    let mut s = settings(upstream);
    s.retry.base_delay = Duration::from_millis(20);
    s.retry.max_delay = Duration::from_millis(40);
    s
}

#[tokio::test]
async fn a_429_then_success_is_retried_with_the_body_replayed() {
    let mut mock = MockUpstream::start().await;
    let proxy = spawn_proxy(fast(&mock.url)).await;
    mock.push(MockReply::json(RATE_LIMITED));
    let body = "limit=10&offset=20&name=%C3%A9+x";
    let resp = reqwest::Client::new()
        .post(format!("{}/api/marketer?do=transactions&z=%41", proxy.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-custom", "one")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-proxy-attempts"), Some("2"));
    let first = mock.next_request().await;
    let second = mock.next_request().await;
    for got in [&first, &second] {
        assert_eq!(got.body, body.as_bytes());
        assert_eq!(got.target, "/api/marketer?do=transactions&z=%41");
        assert_eq!(got.header("x-custom"), Some("one"));
        assert_eq!(got.header("authorization"), Some(FAKE_KEY));
    }
    let gap = second.at - first.at;
    assert!(
        gap >= Duration::from_millis(20),
        "backoff respected: {gap:?}"
    );
}

#[tokio::test]
async fn an_http_429_retry_after_is_honoured() {
    let mut mock = MockUpstream::start().await;
    let proxy = spawn_proxy(fast(&mock.url)).await;
    mock.push(
        MockReply::json("too many")
            .status(429)
            .header("retry-after", "1"),
    );
    let resp = reqwest::get(format!("{}/api/marketer/cpc/orders", proxy.url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-proxy-attempts"), Some("2"));
    let first = mock.next_request().await;
    let second = mock.next_request().await;
    let gap = second.at - first.at;
    assert!(
        gap >= Duration::from_millis(990),
        "Retry-After: 1 honoured: {gap:?}"
    );
}

#[tokio::test]
async fn a_retry_after_in_the_body_is_honoured() {
    let mut mock = MockUpstream::start().await;
    let proxy = spawn_proxy(fast(&mock.url)).await;
    mock.push(MockReply::json(
        r#"{"status":"error","error_code":"429","retry_after":1}"#,
    ));
    let resp = reqwest::get(format!("{}/api/marketer/subscribers", proxy.url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let gap = mock.next_request().await.at;
    let gap = mock.next_request().await.at - gap;
    assert!(gap >= Duration::from_millis(990), "{gap:?}");
}

#[tokio::test]
async fn exhausted_retries_return_the_429_with_retry_after() {
    let mut mock = MockUpstream::start().await;
    let mut s = fast(&mock.url);
    s.retry.max_attempts = 3;
    let proxy = spawn_proxy(s).await;
    for _ in 0..3 {
        mock.push(MockReply::json(RATE_LIMITED));
    }
    let resp = reqwest::get(format!("{}/api/marketer/subscribers", proxy.url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(header(&resp, "x-proxy-attempts"), Some("3"));
    assert_eq!(header(&resp, "x-onlytraffic-error-code"), Some("429"));
    let retry_after: u64 = header(&resp, "retry-after").unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    assert_eq!(
        resp.text().await.unwrap(),
        RATE_LIMITED,
        "the upstream's body"
    );
    assert_eq!(mock.drain().len(), 3);
}

#[tokio::test]
async fn a_wait_past_the_deadline_is_not_started() {
    let mut mock = MockUpstream::start().await;
    let proxy = spawn_proxy(fast(&mock.url)).await;
    mock.push(MockReply::json(RATE_LIMITED).header("retry-after", "120"));
    let started = std::time::Instant::now();
    let resp = reqwest::get(format!("{}/api/marketer/subscribers", proxy.url))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered at once"
    );
    assert_eq!(resp.status(), 429);
    assert_eq!(header(&resp, "x-proxy-attempts"), Some("1"));
    assert_eq!(header(&resp, "retry-after"), Some("120"));
    assert_eq!(mock.drain().len(), 1);
}

#[tokio::test]
async fn connection_failures_are_retried_for_every_method() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let mut s = fast(&format!("http://{addr}"));
    s.retry.max_attempts = 3;
    let proxy = spawn_proxy(s).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/api/marketer?do=generate_link", proxy.url))
        .body(r#"{"smartlink_id":5}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(header(&resp, "x-proxy-attempts"), Some("3"));
    proxy_error(&resp.bytes().await.unwrap(), 502);
}

#[tokio::test]
async fn server_errors_are_retried_only_for_reads() {
    let mut mock = MockUpstream::start().await;
    let proxy = spawn_proxy(fast(&mock.url)).await;
    let client = reqwest::Client::new();

    // generate_link is a write: its 503 goes back as is.
    mock.push(MockReply::json("unavailable").status(503));
    let resp = client
        .post(format!("{}/api/marketer?do=generate_link", proxy.url))
        .body(r#"{"smartlink_id":9}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(header(&resp, "x-proxy-attempts"), Some("1"));
    mock.next_request().await;

    // A v1 read and a GET are retried (HTTP 502, then an envelope 504).
    mock.push(MockReply::json("bad gateway").status(502));
    let resp = client
        .post(format!("{}/api/marketer?do=campaigns", proxy.url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-proxy-attempts"), Some("2"));
    mock.push(MockReply::json(r#"{"status":"error","error_code":504}"#));
    let resp = client
        .get(format!("{}/api/marketer/subscribers", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-proxy-attempts"), Some("2"));
}

#[tokio::test]
async fn a_spent_budget_returns_the_upstream_answer() {
    let mut mock = MockUpstream::start().await;
    let mut s = fast(&mock.url);
    s.retry.budget_percent = 0.0;
    s.retry.budget_min_per_sec = 0;
    let proxy = spawn_proxy(s).await;
    mock.push(MockReply::json(RATE_LIMITED));
    let resp = reqwest::get(format!("{}/api/marketer/subscribers", proxy.url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(header(&resp, "x-proxy-attempts"), Some("1"));
    assert!(header(&resp, "retry-after").is_some());
    assert_eq!(resp.text().await.unwrap(), RATE_LIMITED);
    assert_eq!(mock.drain().len(), 1);
}

#[tokio::test]
async fn an_upstream_429_pauses_every_request() {
    let mut mock = MockUpstream::start().await;
    let mut s = fast(&mock.url);
    s.retry.max_attempts = 1;
    let proxy = spawn_proxy(s).await;
    let client = reqwest::Client::new();
    mock.push(MockReply::json(RATE_LIMITED).header("retry-after", "1"));
    let resp = client
        .get(format!("{}/api/marketer/subscribers", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let first = mock.next_request().await;
    // Another request right after waits for the cooldown before it reaches the upstream.
    let resp = client
        .get(format!("{}/api/marketer/cpc/orders", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let second = mock.next_request().await;
    let gap = second.at - first.at;
    assert!(gap >= Duration::from_millis(990), "cooldown held: {gap:?}");
}

#[tokio::test]
async fn a_retry_without_a_token_returns_the_last_upstream_answer() {
    let mut mock = MockUpstream::start().await;
    let mut s = fast(&mock.url);
    // One token a minute: the retry cannot get one within max_wait.
    s.rate_limit.rate = 1.try_into().unwrap();
    s.rate_limit.per = Duration::from_secs(60);
    s.rate_limit.burst = 1.try_into().unwrap();
    s.rate_limit.max_wait = Duration::from_secs(1);
    let proxy = spawn_proxy(s).await;
    mock.push(MockReply::json("unavailable").status(503));
    let resp = reqwest::get(format!("{}/api/marketer/subscribers", proxy.url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 503, "the upstream's answer, not a local 429");
    assert_eq!(header(&resp, "x-proxy-attempts"), Some("1"));
    assert_eq!(resp.text().await.unwrap(), "unavailable");
    assert_eq!(mock.drain().len(), 1);
}
