//! Forwarding fidelity: the key goes in, client credentials and internal addresses stay out,
//! and method, target, body and end-to-end headers arrive exactly as sent.

mod common;

use common::*;

#[tokio::test]
async fn injects_the_key_and_strips_client_credentials() {
    let (proxy, mut mock) = proxy_and_mock().await;
    let resp = reqwest::Client::new()
        .post(format!("{}/api/marketer?do=campaigns", proxy.url))
        .header("authorization", "Bearer client-token")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("api_auth_key", "client-supplied-key")
        .header("x-forwarded-for", "10.1.2.3")
        .header("forwarded", "for=10.1.2.3")
        .header("x-real-ip", "10.1.2.3")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = mock.next_request().await;
    assert_eq!(got.header("authorization"), Some(FAKE_KEY));
    assert_eq!(got.headers.get_all("authorization").iter().count(), 1);
    for gone in [
        "proxy-authorization",
        "api_auth_key",
        "x-forwarded-for",
        "forwarded",
        "x-real-ip",
        "via",
    ] {
        assert!(got.header(gone).is_none(), "{gone} reached the upstream");
    }
    assert_eq!(got.header("host"), Some(mock.addr.to_string().as_str()));
}

#[tokio::test]
async fn json_post_arrives_byte_for_byte() {
    let (proxy, mut mock) = proxy_and_mock().await;
    let body = r#"{"limit": 10, "offset":0,"name":"Zoë \u00e9"}"#;
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/api/marketer?do=campaigns&x=%2F%20a+b",
            proxy.url
        ))
        .header("content-type", "application/json")
        .header("x-custom", "kept")
        .header("user-agent", "tests/1.0")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = mock.next_request().await;
    assert_eq!(got.method, "POST");
    assert_eq!(got.target, "/api/marketer?do=campaigns&x=%2F%20a+b");
    assert_eq!(got.body, body.as_bytes());
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(
        got.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(got.header("x-custom"), Some("kept"));
    assert_eq!(got.header("user-agent"), Some("tests/1.0"));
}

#[tokio::test]
async fn form_post_arrives_byte_for_byte() {
    let (proxy, mut mock) = proxy_and_mock().await;
    let body = "limit=10&offset=5&onlyfans_id=&offer_id=&name=a%26b+c";
    let resp = reqwest::Client::new()
        .post(format!("{}/api/marketer?do=transactions", proxy.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = mock.next_request().await;
    assert_eq!(got.target, "/api/marketer?do=transactions");
    assert_eq!(got.body, body.as_bytes());
    assert_eq!(
        got.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
}

#[tokio::test]
async fn get_query_is_kept_exactly_even_where_url_libraries_would_rewrite_it() {
    let (proxy, mut mock) = proxy_and_mock().await;
    // `'`, `{`, `}` and a `..` segment are all things url::Url would re-encode or resolve.
    let target =
        "/api/marketer/cpc/../subscribers?limit=5&offset=0&from=2024-01-01&q='x'&j={1}&e=%7e%41";
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: whatever.example\r\nX-Trace: t1\r\nConnection: close\r\n\r\n"
    );
    let resp = raw_request(proxy.addr, req.as_bytes()).await;
    assert_eq!(resp.status, 200);
    let got = mock.next_request().await;
    assert_eq!(got.method, "GET");
    assert_eq!(got.target, target);
    assert!(got.body.is_empty());
    assert_eq!(got.header("x-trace"), Some("t1"));
    assert_eq!(got.header("host"), Some(mock.addr.to_string().as_str()));
}

#[tokio::test]
async fn hop_by_hop_headers_are_dropped() {
    let (proxy, mut mock) = proxy_and_mock().await;
    let req = "GET /api/marketer/subscribers HTTP/1.1\r\nHost: x\r\nConnection: close, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: websocket\r\nProxy-Connection: keep-alive\r\nX-End: yes\r\n\r\n";
    let resp = raw_request(proxy.addr, req.as_bytes()).await;
    assert_eq!(resp.status, 200);
    let got = mock.next_request().await;
    for gone in ["x-hop", "keep-alive", "te", "upgrade", "proxy-connection"] {
        assert!(got.header(gone).is_none(), "{gone} reached the upstream");
    }
    assert_eq!(got.header("x-end"), Some("yes"));
}

#[tokio::test]
async fn every_method_is_forwarded() {
    let (proxy, mut mock) = proxy_and_mock().await;
    let client = reqwest::Client::new();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = client
            .request(m, format!("{}/api/marketer/x", proxy.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{method}");
        assert_eq!(mock.next_request().await.method, method);
    }
}

#[tokio::test]
async fn request_ids_are_kept_when_sane_and_generated_otherwise() {
    let (proxy, mut mock) = proxy_and_mock().await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/marketer/subscribers", proxy.url);

    let resp = client
        .get(&url)
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
    assert_eq!(
        mock.next_request().await.header("x-request-id"),
        Some("abc-123")
    );

    let long = "a".repeat(129);
    let resp = client
        .get(&url)
        .header("x-request-id", &long)
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(id, long);
    assert_eq!(id.len(), 36, "a generated uuid: {id}");
    assert_eq!(
        mock.next_request().await.header("x-request-id"),
        Some(id.as_str())
    );

    let resp = client.get(&url).send().await.unwrap();
    let first = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let resp = client.get(&url).send().await.unwrap();
    assert_ne!(resp.headers()["x-request-id"].to_str().unwrap(), first);
}

#[tokio::test]
async fn health_endpoints_are_answered_locally() {
    let (proxy, mut mock) = proxy_and_mock().await;
    let client = reqwest::Client::new();
    let resp = client
        .get(format!("{}/healthz", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = client
        .get(format!("{}/readyz", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-request-id"));
    let resp = client
        .post(format!("{}/healthz", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert!(
        mock.drain().is_empty(),
        "health checks must never be forwarded"
    );
}
