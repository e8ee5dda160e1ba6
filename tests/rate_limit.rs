//! The proxy's own rate limiting: requests spaced to the configured rate at the upstream, local
//! 429s with Retry-After when the wait cannot fit, and the per-smartlink generate_link rule.

mod common;

use std::time::Duration;

use common::*;
use onlytraffic_proxy::config::Settings;

fn limited(upstream: &str, rate: u32, per: Duration, burst: u32) -> Settings {
    let mut s = settings(upstream);
    s.rate_limit.rate = rate.try_into().unwrap();
    s.rate_limit.per = per;
    s.rate_limit.burst = burst.try_into().unwrap();
    s
}

#[tokio::test]
async fn a_concurrent_burst_reaches_the_upstream_at_the_configured_rate() {
    let mut mock = MockUpstream::start().await;
    // 10 per second, burst 1: one request every 100ms.
    let proxy = spawn_proxy(limited(&mock.url, 10, Duration::from_secs(1), 1)).await;
    let client = reqwest::Client::new();
    let mut handles = Vec::new();
    for i in 0..6 {
        let url = format!("{}/api/marketer/subscribers?i={i}", proxy.url);
        let client = client.clone();
        handles.push(tokio::spawn(async move { client.get(url).send().await }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap().unwrap().status(), 200);
    }
    let mut arrivals: Vec<_> = mock.drain().into_iter().map(|c| c.at).collect();
    assert_eq!(arrivals.len(), 6);
    arrivals.sort();
    for pair in arrivals.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(90),
            "spaced by the rate: {gap:?}"
        );
    }
    let span = arrivals[5] - arrivals[0];
    assert!(
        span >= Duration::from_millis(490),
        "6 requests at 10/s take 500ms: {span:?}"
    );
}

#[tokio::test]
async fn rate_limit_headers_are_on_every_proxied_response() {
    let (proxy, _mock) = proxy_and_mock().await;
    let resp = reqwest::get(format!("{}/api/marketer/subscribers", proxy.url))
        .await
        .unwrap();
    assert_eq!(header(&resp, "x-ratelimit-limit"), Some("60"));
    assert_eq!(header(&resp, "x-ratelimit-remaining"), Some("9"));
    let resp = reqwest::get(format!("{}/api/marketer/subscribers", proxy.url))
        .await
        .unwrap();
    assert_eq!(header(&resp, "x-ratelimit-remaining"), Some("8"));
}

#[tokio::test]
async fn a_wait_longer_than_max_wait_is_refused_at_once() {
    let mut mock = MockUpstream::start().await;
    let mut s = limited(&mock.url, 1, Duration::from_secs(60), 1);
    s.rate_limit.max_wait = Duration::from_secs(1);
    let proxy = spawn_proxy(s).await;
    let url = format!("{}/api/marketer/subscribers", proxy.url);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    let started = std::time::Instant::now();
    let resp = reqwest::get(&url).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused without waiting"
    );
    assert_eq!(resp.status(), 429);
    let retry_after: u64 = header(&resp, "retry-after").unwrap().parse().unwrap();
    assert!((59..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(header(&resp, "x-ratelimit-remaining"), Some("0"));
    assert_eq!(header(&resp, "x-proxy-attempts"), Some("0"));
    let v = proxy_error(&resp.bytes().await.unwrap(), 429);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("nothing was sent upstream")
    );
    assert_eq!(
        mock.drain().len(),
        1,
        "the refused request never reached the upstream"
    );
}

#[tokio::test]
async fn a_full_queue_is_refused_at_once() {
    let mut mock = MockUpstream::start().await;
    let mut s = limited(&mock.url, 1, Duration::from_secs(60), 1);
    s.rate_limit.max_queue = 0;
    let proxy = spawn_proxy(s).await;
    let url = format!("{}/api/marketer/subscribers", proxy.url);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), 429);
    assert!(header(&resp, "retry-after").is_some());
    let v = proxy_error(&resp.bytes().await.unwrap(), 429);
    assert!(v["message"].as_str().unwrap().contains("max_queue"), "{v}");
    assert_eq!(mock.drain().len(), 1);
}

#[tokio::test]
async fn zero_max_wait_rejects_instead_of_waiting() {
    let mut mock = MockUpstream::start().await;
    let mut s = limited(&mock.url, 1, Duration::from_secs(2), 1);
    s.rate_limit.max_wait = Duration::ZERO;
    let proxy = spawn_proxy(s).await;
    let url = format!("{}/api/marketer/subscribers", proxy.url);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(header(&resp, "retry-after"), Some("2"));
    assert_eq!(mock.drain().len(), 1);
}

#[tokio::test]
async fn generate_link_is_limited_per_smartlink_locally() {
    let mut mock = MockUpstream::start().await;
    let proxy = spawn_proxy(settings(&mock.url)).await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/marketer?do=generate_link", proxy.url);

    let resp = client
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"smartlink_id":7}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-ratelimit-remaining"), Some("9"));
    mock.next_request().await;

    // The same smartlink, form-encoded this time: refused locally for 5 minutes.
    let resp = client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("smartlink_id=7&click_id=abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let retry_after: u64 = header(&resp, "retry-after").unwrap().parse().unwrap();
    assert!((299..=300).contains(&retry_after), "{retry_after}");
    let v = proxy_error(&resp.bytes().await.unwrap(), 429);
    assert!(
        v["message"].as_str().unwrap().contains("smartlink_id"),
        "{v}"
    );
    assert!(
        mock.drain().is_empty(),
        "spent none of the key's quota upstream"
    );

    // Another smartlink goes through, and the refusal spent no global token.
    let resp = client
        .post(&url)
        .body(r#"{"smartlink_id":8}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-ratelimit-remaining"), Some("8"));
    mock.next_request().await;
}

#[tokio::test]
async fn a_global_refusal_gives_the_route_token_back() {
    let mut mock = MockUpstream::start().await;
    let mut s = limited(&mock.url, 1, Duration::from_secs(60), 1);
    s.rate_limit.max_wait = Duration::ZERO;
    let proxy = spawn_proxy(s).await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/marketer?do=generate_link", proxy.url);
    // Spend the only global token on another route.
    let resp = client
        .get(format!("{}/api/marketer/subscribers", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    mock.next_request().await;
    // generate_link passes its route rule but the global limiter refuses it...
    let resp = client
        .post(&url)
        .body(r#"{"smartlink_id":3}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let v = proxy_error(&resp.bytes().await.unwrap(), 429);
    assert!(
        v["message"].as_str().unwrap().contains("rate_limit.rate"),
        "{v}"
    );
    // ...so smartlink 3 is not blocked for 5 minutes: the refusal now is the global one again.
    let resp = client
        .post(&url)
        .body(r#"{"smartlink_id":3}"#)
        .send()
        .await
        .unwrap();
    let v = proxy_error(&resp.bytes().await.unwrap(), 429);
    assert!(
        !v["message"].as_str().unwrap().contains("smartlink_id"),
        "{v}"
    );
}
