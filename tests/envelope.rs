//! Envelope to status: the upstream's always-200 answers become real HTTP statuses while the
//! body reaches the client byte for byte.

mod common;

use common::*;

/// Sends one request through a fresh proxy whose upstream answers `reply`.
async fn through(reply: MockReply) -> reqwest::Response {
    let mock = MockUpstream::start().await;
    let proxy = spawn_proxy(settings_no_retry(&mock.url)).await;
    mock.push(reply);
    let resp = reqwest::Client::new()
        .post(format!("{}/api/marketer?do=campaigns", proxy.url))
        .body(r#"{"limit":1}"#)
        .send()
        .await
        .unwrap();
    drop(proxy);
    resp
}

async fn check(upstream_body: &str, status: u16, error_code: Option<&str>) {
    let resp = through(MockReply::json(upstream_body)).await;
    assert_eq!(resp.status(), status, "{upstream_body}");
    assert_eq!(resp.headers()["x-upstream-status"], "200");
    assert_eq!(
        resp.headers()
            .get("x-onlytraffic-error-code")
            .map(|v| v.to_str().unwrap()),
        error_code,
        "{upstream_body}"
    );
    assert_eq!(resp.bytes().await.unwrap(), upstream_body.as_bytes());
}

#[tokio::test]
async fn success_is_200() {
    check(r#"{"status":"success","data":[{"id":1}]}"#, 200, None).await;
    check(r#"{"status":"OK","data":{}}"#, 200, None).await;
}

#[tokio::test]
async fn errors_take_their_error_code() {
    check(
        r#"{"status":"error","error_code":422,"message":"bad limit"}"#,
        422,
        Some("422"),
    )
    .await;
    check(r#"{"status":"error","error_code":404}"#, 404, Some("404")).await;
    check(
        r#"{"status":"Error","error_code":"429","message":"slow down"}"#,
        429,
        Some("429"),
    )
    .await;
    check(r#"{"error_code":500,"status":"failed"}"#, 500, Some("500")).await;
}

#[tokio::test]
async fn errors_without_a_usable_code_are_502() {
    check(r#"{"status":"error","message":"no code"}"#, 502, None).await;
    check(r#"{"status":"error","error_code":"nope"}"#, 502, None).await;
    check(r#"{"status":"error","error_code":200}"#, 502, Some("200")).await;
    check(r#"{"status":"error","error_code":700}"#, 502, Some("700")).await;
}

#[tokio::test]
async fn bodies_that_are_not_envelopes_pass_untouched() {
    check(r#"[{"status":"error","error_code":422}]"#, 200, None).await;
    check(r#"{"data":[],"error_code":422}"#, 200, None).await;
    check("plain text, not json", 200, None).await;
    check(r#"{"status":"error","error_code":422"#, 200, None).await;
}

#[tokio::test]
async fn real_non_2xx_statuses_pass_through() {
    let body = r#"{"status":"success"}"#;
    let resp = through(MockReply::json(body).status(503)).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["x-upstream-status"], "503");
    assert_eq!(resp.bytes().await.unwrap(), body.as_bytes());
    let resp = through(MockReply::json("<html>bad gateway</html>").status(500)).await;
    assert_eq!(resp.status(), 500);
    assert_eq!(resp.text().await.unwrap(), "<html>bad gateway</html>");
}

#[tokio::test]
async fn status_map_overrides_a_code() {
    let mock = MockUpstream::start().await;
    let mut s = settings_no_retry(&mock.url);
    s.status_map.insert("401".into(), 502);
    s.status_map.insert("422".into(), 400);
    let proxy = spawn_proxy(s).await;
    let client = reqwest::Client::new();
    for (body, want) in [
        (r#"{"status":"error","error_code":401}"#, 502),
        (r#"{"status":"error","error_code":"422"}"#, 400),
        (r#"{"status":"error","error_code":429}"#, 429),
    ] {
        mock.push(MockReply::json(body));
        let resp = client
            .get(format!("{}/api/marketer/subscribers", proxy.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), want, "{body}");
        assert_eq!(resp.text().await.unwrap(), body);
    }
}

#[tokio::test]
async fn gzip_bodies_are_inspected_and_passed_compressed_to_clients_that_accept_gzip() {
    let body = r#"{"status":"error","error_code":429,"message":"rate limited"}"#;
    let upstream = MockReply::gzip_json(body);
    let compressed = upstream.body.clone();
    let (proxy, mut mock) = proxy_and_mock().await;
    mock.push(upstream);
    // A raw request so nothing on the client side decompresses.
    let req = "POST /api/marketer?do=generate_link HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, zstd\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    let resp = raw_request(proxy.addr, req.as_bytes()).await;
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("content-encoding"), Some("gzip"));
    assert_eq!(resp.header("x-onlytraffic-error-code"), Some("429"));
    assert_eq!(
        resp.body, compressed,
        "compressed bytes passed through unchanged"
    );
    // The upstream was asked only for codings the proxy can read.
    assert_eq!(
        mock.next_request().await.header("accept-encoding"),
        Some("gzip")
    );
}

#[tokio::test]
async fn gzip_bodies_are_decoded_for_clients_that_do_not_accept_gzip() {
    let body = r#"{"status":"error","error_code":422,"message":"limit"}"#;
    let (proxy, mut mock) = proxy_and_mock().await;
    // The upstream compresses although the client did not ask for it.
    mock.push(MockReply::gzip_json(body));
    let req = "GET /api/marketer/subscribers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let resp = raw_request(proxy.addr, req.as_bytes()).await;
    assert_eq!(resp.status, 422);
    assert_eq!(resp.header("content-encoding"), None);
    assert_eq!(resp.body, body.as_bytes());
    assert_eq!(mock.next_request().await.header("accept-encoding"), None);
}

#[tokio::test]
async fn oversized_responses_stream_through_without_the_rewrite() {
    let mock = MockUpstream::start().await;
    let mut s = settings(&mock.url);
    s.limits.max_response_body = bytesize::ByteSize::kib(1);
    let proxy = spawn_proxy(s).await;
    let padding = "x".repeat(4096);
    let body = format!(r#"{{"status":"error","error_code":422,"pad":"{padding}"}}"#);
    mock.push(MockReply::json(&body));
    let resp = reqwest::get(format!("{}/api/marketer/subscribers", proxy.url))
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "too large to inspect: the upstream status stands"
    );
    assert_eq!(resp.text().await.unwrap(), body);
}
