//! Operations: metrics that move with traffic, the admin listener, JSON access logs, and key
//! rotation without restart.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use onlytraffic_proxy::secret::ApiKey;

const BIN: &str = env!("CARGO_BIN_EXE_onlytraffic-proxy");

#[tokio::test]
async fn metrics_move_with_traffic() {
    let mock = MockUpstream::start().await;
    let proxy = spawn_proxy(settings_no_retry(&mock.url)).await;
    let base = proxy.url.clone();
    let ok = r#"otproxy_requests_total{route="campaigns",method="POST",status="200"}"#;
    let unprocessable =
        r#"otproxy_requests_total{route="/api/marketer/subscribers",method="GET",status="422"}"#;
    let envelope_422 = r#"otproxy_envelope_errors_total{error_code="422"}"#;
    let upstream_ok = r#"otproxy_upstream_requests_total{route="campaigns",outcome="success"}"#;
    let upstream_env = r#"otproxy_upstream_requests_total{route="/api/marketer/subscribers",outcome="envelope_error"}"#;
    let local_429 = r#"otproxy_rate_limited_total{scope="generate_link"}"#;
    let other = r#"otproxy_requests_total{route="other",method="GET",status="200"}"#;
    let waits = "otproxy_rate_limit_wait_seconds_count";
    let series = [
        ok,
        unprocessable,
        envelope_422,
        upstream_ok,
        upstream_env,
        local_429,
        other,
        waits,
    ];
    let mut before = Vec::new();
    for s in series {
        before.push(metric(&base, s).await);
    }

    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/api/marketer?do=campaigns"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    mock.push(MockReply::json(r#"{"status":"error","error_code":422}"#));
    let r = client
        .get(format!("{base}/api/marketer/subscribers?limit=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    for expected in [200, 429] {
        let r = client
            .post(format!("{base}/api/marketer?do=generate_link"))
            .body(r#"{"smartlink_id":1}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), expected);
    }
    let r = client
        .get(format!("{base}/not/a/known/path"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let mut after = Vec::new();
    for s in series {
        after.push(metric(&base, s).await);
    }
    let delta: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    // ok, 422, envelope 422, upstream ok, upstream envelope error, local 429, other, 4 waits
    assert_eq!(
        delta,
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 4.0],
        "{series:?}"
    );

    let text = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert!(
        text.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("openmetrics-text")
    );
    let text = text.text().await.unwrap();
    for name in [
        "otproxy_request_duration_seconds_bucket",
        "otproxy_upstream_duration_seconds_bucket",
        "otproxy_retries_total{reason=\"rate_limited\"} 0",
        "otproxy_retry_budget_exhausted_total 0",
        "otproxy_rate_limited_total{scope=\"global\"} 0",
        "otproxy_queue_depth 0",
        "otproxy_cooldown_active 0",
        "otproxy_key_reloads_total{result=\"success\"} 0",
        "otproxy_build_info",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
    assert!(!text.contains(FAKE_KEY));
}

#[tokio::test]
async fn metrics_move_to_the_admin_listener_when_it_is_set() {
    let mut mock = MockUpstream::start().await;
    let mut s = settings(&mock.url);
    s.admin.listen = Some("127.0.0.1:0".into());
    let proxy = spawn_proxy(s).await;
    let admin = format!("http://{}", proxy.admin_addr.unwrap());
    let r = reqwest::get(format!("{admin}/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("otproxy_build_info"));
    assert_eq!(
        reqwest::get(format!("{admin}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
    let r = reqwest::get(format!("{admin}/api/marketer/subscribers"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the admin listener forwards nothing");
    // On the main listener /metrics is now an ordinary path, forwarded upstream.
    reqwest::get(format!("{}/metrics", proxy.url))
        .await
        .unwrap();
    assert_eq!(mock.next_request().await.target, "/metrics");
    assert!(mock.drain().is_empty());
}

/// Replaces the key file atomically, as `mv` of a new file over the old one does.
fn swap_key(path: &Path, key: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, format!("{key}\n")).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Waits (bounded) until the upstream sees `key`. The backlog of received requests is taken
/// in bulk, so steady traffic cannot outrun the check.
async fn until_upstream_sees(mock: &mut MockUpstream, key: &str) {
    let started = Instant::now();
    loop {
        let mut batch = mock.drain();
        batch.push(mock.next_request().await);
        if batch.iter().any(|c| c.header("authorization") == Some(key)) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "key never rotated to {key}"
        );
    }
}

#[tokio::test]
async fn key_rotation_mid_traffic_loses_no_request() {
    let dir = scratch("rotate");
    let path = dir.join("key");
    std::fs::write(&path, "FAKE-OLD-KEY-1\n").unwrap();
    let mut mock = MockUpstream::start().await;
    let mut s = settings(&mock.url);
    s.rate_limit.rate = 100_000.try_into().unwrap();
    s.rate_limit.burst = 1000.try_into().unwrap();
    let key = ApiKey::from_file(path.clone()).unwrap();
    let proxy = spawn_proxy_with_key(s, key).await;

    // Steady traffic from two clients until told to stop.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut clients = Vec::new();
    for c in 0..2 {
        let url = format!("{}/api/marketer/subscribers?c={c}", proxy.url);
        let stop = stop_rx.clone();
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut statuses = Vec::new();
            while !*stop.borrow() {
                statuses.push(client.get(&url).send().await.map(|r| r.status().as_u16()));
            }
            statuses
        }));
    }
    let first = mock.next_request().await;
    assert_eq!(first.header("authorization"), Some("FAKE-OLD-KEY-1"));

    swap_key(&path, "FAKE-NEW-KEY-2");
    until_upstream_sees(&mut mock, "FAKE-NEW-KEY-2").await;

    // A Kubernetes-style swap: the file is a symlink through ..data, which is re-pointed.
    let v1 = dir.join("v1");
    let v2 = dir.join("v2");
    std::fs::create_dir_all(&v1).unwrap();
    std::fs::create_dir_all(&v2).unwrap();
    std::fs::write(v1.join("key"), "FAKE-NEW-KEY-2\n").unwrap();
    std::fs::write(v2.join("key"), "FAKE-K8S-KEY-3\n").unwrap();
    let data = dir.join("..data");
    std::os::unix::fs::symlink(&v1, &data).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(data.join("key"), &path).unwrap();
    let tmp_link = dir.join("..data_tmp");
    std::os::unix::fs::symlink(&v2, &tmp_link).unwrap();
    std::fs::rename(&tmp_link, &data).unwrap();
    until_upstream_sees(&mut mock, "FAKE-K8S-KEY-3").await;

    // An empty file keeps the current key and counts an error.
    let v3 = dir.join("v3");
    std::fs::create_dir_all(&v3).unwrap();
    std::fs::write(v3.join("key"), "\n").unwrap();
    std::os::unix::fs::symlink(&v3, &tmp_link).unwrap();
    std::fs::rename(&tmp_link, &data).unwrap();
    let started = Instant::now();
    while metric(&proxy.url, r#"otproxy_key_reloads_total{result="error"}"#).await < 1.0 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "empty key file not noticed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send(true).unwrap();
    for c in clients {
        let statuses = c.await.unwrap();
        assert!(!statuses.is_empty());
        for s in statuses {
            assert_eq!(s.unwrap(), 200, "a request was lost during rotation");
        }
    }
    let rest = mock.drain();
    let last = rest.last().unwrap();
    assert_eq!(
        last.header("authorization"),
        Some("FAKE-K8S-KEY-3"),
        "old key kept after the empty file"
    );
    assert!(metric(&proxy.url, r#"otproxy_key_reloads_total{result="success"}"#).await >= 2.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs the binary against `upstream` with extra env; returns the child and its stderr lines.
fn start_binary(
    upstream: &str,
    env: &[(&str, &str)],
) -> (
    std::process::Child,
    std::sync::mpsc::Receiver<String>,
    String,
) {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .args(["--listen", "127.0.0.1:0", "--upstream", upstream])
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("startup line");
        if let Some(rest) = line.split("\"listen\":\"").nth(1) {
            break rest.split('"').next().unwrap().to_owned();
        }
        if let Some(rest) = line.split("listen=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    (child, rx, addr)
}

fn stop(child: std::process::Child, signal: &str) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (tx, rx) = std::sync::mpsc::channel();
    let mut child = child;
    std::thread::spawn(move || tx.send(child.wait()));
    rx.recv_timeout(Duration::from_secs(20))
        .expect("exits")
        .unwrap()
}

#[tokio::test]
async fn json_logs_parse_and_carry_the_request_id() {
    let mock = MockUpstream::start().await;
    mock.push(MockReply::json(r#"{"status":"error","error_code":422}"#));
    let (child, lines, addr) = start_binary(
        &mock.url,
        &[
            ("ONLYTRAFFIC_API_KEY", FAKE_KEY),
            ("OTPROXY_LOG_FORMAT", "json"),
            ("OTPROXY_RETRY__MAX_ATTEMPTS", "1"),
        ],
    );
    let client = reqwest::Client::new();
    let resp = client
        .get(format!(
            "http://{addr}/api/marketer/subscribers?secret_query=hidden"
        ))
        .header("x-request-id", "rid-json-1")
        .header("authorization", "Bearer client-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let resp = client
        .post(format!("http://{addr}/api/marketer?do=campaigns"))
        .body(r#"{"limit":5}"#)
        .send()
        .await
        .unwrap();
    let second_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(stop(child, "-TERM").code(), Some(0));
    let lines: Vec<String> = lines.try_iter().collect();
    let mut access = Vec::new();
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            !line.contains(FAKE_KEY) && !line.contains("client-token") && !line.contains("hidden"),
            "{line}"
        );
        // Every line logged inside a request carries that request's id.
        if let Some(span) = v.get("span") {
            assert!(
                span["request_id"].as_str().is_some_and(|id| !id.is_empty()),
                "{line}"
            );
        }
        if v["target"] == "otproxy::access" {
            access.push(v);
        }
    }
    assert_eq!(access.len(), 2, "one access line per request: {lines:?}");
    let first = &access[0];
    assert_eq!(first["request_id"], "rid-json-1");
    assert_eq!(first["span"]["request_id"], "rid-json-1");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["route"], "/api/marketer/subscribers");
    assert_eq!(first["path"], "/api/marketer/subscribers");
    assert_eq!(first["status"], 422);
    assert_eq!(first["upstream_status"], 200);
    assert_eq!(first["error_code"], 422);
    assert_eq!(first["attempts"], 1);
    assert_eq!(first["bytes_in"], 0);
    assert!(first["bytes_out"].as_u64().unwrap() > 0);
    assert!(first["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(first["wait_ms"].is_number());
    let second = &access[1];
    assert_eq!(second["request_id"], second_id.as_str());
    assert_eq!(second["route"], "campaigns");
    assert_eq!(second["bytes_in"], 11);
}

#[tokio::test]
async fn sighup_reloads_the_key_file() {
    let dir = scratch("sighup");
    let path = dir.join("key");
    std::fs::write(&path, "FAKE-HUP-KEY-1\n").unwrap();
    let mut mock = MockUpstream::start().await;
    let (child, _lines, addr) = start_binary(
        &mock.url,
        &[("ONLYTRAFFIC_API_KEY_FILE", path.to_str().unwrap())],
    );
    let base = format!("http://{addr}");
    let reloads = r#"otproxy_key_reloads_total{result="success"}"#;
    assert_eq!(metric(&base, reloads).await, 0.0);
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    while metric(&base, reloads).await < 1.0 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "SIGHUP did not reload"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    reqwest::get(format!("{base}/api/marketer/subscribers"))
        .await
        .unwrap();
    assert_eq!(
        mock.next_request().await.header("authorization"),
        Some("FAKE-HUP-KEY-1")
    );
    assert_eq!(stop(child, "-TERM").code(), Some(0));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `healthcheck` with `args` and returns its exit code.
async fn healthcheck(args: Vec<String>) -> Option<i32> {
    healthcheck_env(args, None).await
}

async fn healthcheck_env(args: Vec<String>, listen: Option<String>) -> Option<i32> {
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(BIN);
        cmd.env_clear();
        if let Some(l) = listen {
            cmd.env("OTPROXY_LISTEN", l);
        }
        cmd.arg("healthcheck")
            .args(args)
            .output()
            .unwrap()
            .status
            .code()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn healthcheck_exit_codes() {
    let (proxy, mock) = proxy_and_mock().await;
    let healthy = format!("{}/healthz", proxy.url);
    assert_eq!(healthcheck(vec!["--url".into(), healthy]).await, Some(0));
    // Without --url it checks the port of OTPROXY_LISTEN on loopback (0.0.0.0 in Docker).
    let listen = format!("0.0.0.0:{}", proxy.addr.port());
    assert_eq!(healthcheck_env(vec![], Some(listen)).await, Some(0));
    // Any non-2xx answer is unhealthy (a mock answering 503 stands in for a draining proxy).
    mock.push(MockReply::json("draining").status(503));
    let unhealthy = format!("{}/healthz", mock.url);
    assert_eq!(healthcheck(vec!["--url".into(), unhealthy]).await, Some(1));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let down = format!("http://127.0.0.1:{port}/healthz");
    assert_eq!(healthcheck(vec!["--url".into(), down]).await, Some(1));
    assert_eq!(
        healthcheck(vec!["--url".into(), "not a url".into()]).await,
        Some(1)
    );
}

#[tokio::test]
async fn sighup_with_an_environment_key_does_not_stop_the_proxy() {
    let mock = MockUpstream::start().await;
    let (child, _lines, addr) = start_binary(&mock.url, &[("ONLYTRAFFIC_API_KEY", FAKE_KEY)]);
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Still serving afterwards (a request after the signal was delivered and handled).
    let resp = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(stop(child, "-TERM").code(), Some(0));
}

/// `workers` threads serve the listener, each with its own event loop, but the key's quota is
/// one: they share the limiter and the metrics. Fresh connections land on whichever worker
/// accepts first, so 24 of them spread over the 4 workers; with a limiter per worker more than
/// the burst would get through.
#[tokio::test]
async fn workers_share_one_limiter_and_one_set_of_metrics() {
    let mut mock = MockUpstream::start().await;
    let mut s = settings_no_retry(&mock.url);
    s.workers = 4;
    s.rate_limit.rate = 1.try_into().unwrap();
    s.rate_limit.per = Duration::from_secs(3600);
    s.rate_limit.burst = 5.try_into().unwrap();
    s.rate_limit.max_wait = Duration::ZERO;
    let proxy = spawn_proxy(s).await;
    let mut handles = Vec::new();
    for i in 0..24 {
        let url = format!("{}/api/marketer/subscribers?i={i}", proxy.url);
        handles.push(tokio::spawn(async move {
            // A client of its own: a new connection for every request.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            client.get(url).send().await.unwrap().status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for h in handles {
        statuses.push(h.await.unwrap());
    }
    statuses.sort_unstable();
    let passed = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((passed, refused), (5, 19), "{statuses:?}");
    assert_eq!(mock.drain().len(), 5);
    let series =
        r#"otproxy_requests_total{route="/api/marketer/subscribers",method="GET",status="429"}"#;
    assert_eq!(metric(&proxy.url, series).await, 19.0);
}
