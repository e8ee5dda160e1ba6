//! Requests the proxy answers itself: refused targets, inbound auth, oversized bodies, an
//! unreachable or slow upstream. Each uses the upstream-shaped error envelope.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test]
async fn oversized_bodies_get_413_and_are_not_forwarded() {
    let mut mock = MockUpstream::start().await;
    let mut s = settings(&mock.url);
    s.limits.max_request_body = bytesize::ByteSize::kib(1);
    let proxy = spawn_proxy(s).await;
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{}/api/marketer?do=campaigns", proxy.url))
        .body(vec![b'a'; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v = proxy_error(&resp.bytes().await.unwrap(), 413);
    assert!(v["message"].as_str().unwrap().contains("max_request_body"));

    // Chunked, so no Content-Length tells the size up front.
    let chunk = "a".repeat(600);
    let req = format!(
        "POST /api/marketer?do=campaigns HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let resp = raw_request(proxy.addr, req.as_bytes()).await;
    assert_eq!(resp.status, 413);
    proxy_error(&resp.body, 413);

    // At the limit is fine.
    let resp = client
        .post(format!("{}/api/marketer?do=campaigns", proxy.url))
        .body(vec![b'a'; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = mock.next_request().await;
    assert_eq!(got.body.len(), 1024);
    assert!(
        mock.drain().is_empty(),
        "the oversized requests were forwarded"
    );
}

#[tokio::test]
async fn refused_connection_is_502_saying_nothing_was_sent() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let proxy = spawn_proxy(settings_no_retry(&format!("http://{addr}"))).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/api/marketer?do=campaigns", proxy.url))
        .header("x-request-id", "rid-502")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["x-request-id"], "rid-502");
    let v = proxy_error(&resp.bytes().await.unwrap(), 502);
    assert_eq!(v["request_id"], "rid-502");
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("not sent"), "{msg}");
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let mut mock = MockUpstream::start().await;
    let mut s = settings_no_retry(&mock.url);
    s.timeouts.attempt = Duration::from_millis(200);
    let proxy = spawn_proxy(s).await;
    mock.push(MockReply::success().delay(Duration::from_secs(30)));
    let resp = reqwest::get(format!("{}/api/marketer/subscribers", proxy.url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 504);
    let v = proxy_error(&resp.bytes().await.unwrap(), 504);
    assert!(v["message"].as_str().unwrap().contains("timeouts.attempt"));
    mock.next_request().await;
}

#[tokio::test]
async fn total_deadline_is_504() {
    let mock = MockUpstream::start().await;
    let mut s = settings(&mock.url);
    s.timeouts.total = Duration::from_millis(200);
    let proxy = spawn_proxy(s).await;
    mock.push(MockReply::success().delay(Duration::from_secs(30)));
    let resp = reqwest::get(format!("{}/api/marketer/subscribers", proxy.url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 504);
    let v = proxy_error(&resp.bytes().await.unwrap(), 504);
    assert!(v["message"].as_str().unwrap().contains("timeouts.total"));
}

#[tokio::test]
async fn absolute_form_and_connect_are_refused_and_not_forwarded() {
    let (proxy, mut mock) = proxy_and_mock().await;
    let resp = raw_request(
        proxy.addr,
        b"GET http://other.example/api/marketer/subscribers HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    proxy_error(&resp.body, 400);

    let resp = raw_request(
        proxy.addr,
        b"CONNECT other.example:443 HTTP/1.1\r\nHost: other.example:443\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 405);
    proxy_error(&resp.body, 405);

    // A Host header never changes the destination.
    let resp = raw_request(
        proxy.addr,
        b"GET /api/marketer/subscribers HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 200);
    let got = mock.next_request().await;
    assert_eq!(got.header("host"), Some(mock.addr.to_string().as_str()));
    assert!(mock.drain().is_empty());
}

#[tokio::test]
async fn inbound_tokens_are_required_and_replaced_by_the_key() {
    let mut mock = MockUpstream::start().await;
    let dir = scratch("tokens");
    let file = dir.join("tokens");
    std::fs::write(&file, "# service tokens\ntok-alpha\n\n  tok-beta  \n").unwrap();
    let mut s = settings(&mock.url);
    s.inbound.tokens_file = Some(file);
    let proxy = spawn_proxy(s).await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/marketer/subscribers", proxy.url);

    for auth in [
        None,
        Some("Bearer wrong"),
        Some("tok-alpha"),
        Some("Basic tok-alpha"),
    ] {
        let mut req = client.get(&url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        proxy_error(&resp.bytes().await.unwrap(), 401);
    }
    assert!(
        mock.drain().is_empty(),
        "unauthorised requests were forwarded"
    );

    for token in ["tok-alpha", "tok-beta"] {
        let resp = client
            .get(&url)
            .header("authorization", format!("bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let got = mock.next_request().await;
        assert_eq!(got.header("authorization"), Some(FAKE_KEY));
    }
    // Health endpoints stay open for probes.
    let resp = client
        .get(format!("{}/healthz", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    std::fs::remove_dir_all(&dir).unwrap();
}
