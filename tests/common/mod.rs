//! Test helpers: a scripted mock upstream that records exactly what it received, an in-process
//! proxy on 127.0.0.1:0, and a raw HTTP/1.1 client for requests reqwest would normalise.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Version};
use http_body_util::BodyExt;
use onlytraffic_proxy::config::{Config, Settings};
use onlytraffic_proxy::secret::{ApiKey, KeySource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// A fake key: never a real one in tests.
pub const FAKE_KEY: &str = "FAKE0-TEST1-KEY22-NOTREAL";

/// What the mock upstream received, exactly.
#[derive(Debug, Clone)]
pub struct Captured {
    pub method: Method,
    /// The request target as it arrived (path and query, byte for byte).
    pub target: String,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the upstream received it.
    pub at: std::time::Instant,
}

impl Captured {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct MockReply {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Simulated upstream slowness before the answer.
    pub delay: Option<Duration>,
}

impl MockReply {
    pub fn json(body: &str) -> Self {
        Self {
            status: StatusCode::OK,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::copy_from_slice(body.as_bytes()),
            delay: None,
        }
    }

    pub fn success() -> Self {
        Self::json(r#"{"status":"success","data":[]}"#)
    }

    /// The same JSON, gzip-compressed with `Content-Encoding: gzip`.
    pub fn gzip_json(body: &str) -> Self {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(body.as_bytes()).expect("gzip into memory");
        let mut reply = Self::json(body);
        reply.body = enc.finish().expect("gzip into memory").into();
        reply
            .headers
            .push(("content-encoding".into(), "gzip".into()));
        reply
    }

    pub fn status(mut self, status: u16) -> Self {
        self.status = StatusCode::from_u16(status).expect("valid status");
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = Some(d);
        self
    }
}

/// A scripted upstream on 127.0.0.1:0. Answers from the script in order, then
/// [`MockReply::success`]; every request it receives is sent on `received`.
pub struct MockUpstream {
    pub addr: SocketAddr,
    pub url: String,
    script: Arc<Mutex<VecDeque<MockReply>>>,
    received: mpsc::UnboundedReceiver<Captured>,
    _task: JoinHandle<()>,
}

impl MockUpstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        let addr = listener.local_addr().expect("mock addr");
        let script: Arc<Mutex<VecDeque<MockReply>>> = Arc::default();
        let (tx, received) = mpsc::unbounded_channel();
        let app = {
            let script = script.clone();
            axum::Router::new().fallback(move |req: Request| {
                let script = script.clone();
                let tx = tx.clone();
                async move {
                    let at = std::time::Instant::now();
                    let (parts, body) = req.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let _ = tx.send(Captured {
                        method: parts.method,
                        target: parts
                            .uri
                            .path_and_query()
                            .map(|pq| pq.as_str().to_owned())
                            .unwrap_or_default(),
                        version: parts.version,
                        headers: parts.headers,
                        body,
                        at,
                    });
                    let reply = script
                        .lock()
                        .expect("script lock")
                        .pop_front()
                        .unwrap_or_else(MockReply::success);
                    if let Some(d) = reply.delay {
                        tokio::time::sleep(d).await;
                    }
                    let mut resp = http::Response::new(Body::from(reply.body));
                    *resp.status_mut() = reply.status;
                    for (k, v) in reply.headers {
                        resp.headers_mut().append(
                            http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                            v.parse().expect("header value"),
                        );
                    }
                    resp
                }
            })
        };
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            url: format!("http://{addr}"),
            script,
            received,
            _task: task,
        }
    }

    pub fn push(&self, reply: MockReply) {
        self.script.lock().expect("script lock").push_back(reply);
    }

    /// The next request the upstream received (waits for it, bounded).
    pub async fn next_request(&mut self) -> Captured {
        tokio::time::timeout(Duration::from_secs(10), self.received.recv())
            .await
            .expect("upstream received nothing within 10s")
            .expect("mock upstream stopped")
    }

    /// Every request received so far, without waiting.
    pub fn drain(&mut self) -> Vec<Captured> {
        let mut out = Vec::new();
        while let Ok(c) = self.received.try_recv() {
            out.push(c);
        }
        out
    }
}

/// Settings for a proxy in front of `upstream`, listening on an ephemeral loopback port.
pub fn settings(upstream: &str) -> Settings {
    Settings {
        listen: "127.0.0.1:0".into(),
        upstream: upstream.into(),
        ..Settings::default()
    }
}

/// [`settings`] with retries off, for tests of single-attempt behaviour.
pub fn settings_no_retry(upstream: &str) -> Settings {
    let mut s = settings(upstream);
    s.retry.max_attempts = 1;
    s
}

/// A proxy running in-process; dropping it stops it.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub url: String,
    /// The admin listener, when the settings asked for one.
    pub admin_addr: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<std::io::Result<()>>,
}

impl TestProxy {
    /// Signals shutdown (as SIGTERM would) and returns the server task to await.
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub async fn spawn_proxy(settings: Settings) -> TestProxy {
    let key = ApiKey::new(FAKE_KEY, KeySource::Inline).expect("fake key");
    spawn_proxy_with_key(settings, key).await
}

/// A proxy with a given key (e.g. one read from a file, for rotation tests). When
/// `settings.admin.listen` is set, the admin listener is bound on an ephemeral port instead.
pub async fn spawn_proxy_with_key(mut settings: Settings, key: ApiKey) -> TestProxy {
    let admin = match settings.admin.listen.take() {
        Some(_) => {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
            settings.admin.listen = Some(l.local_addr().expect("admin addr").to_string());
            Some(l)
        }
        None => None,
    };
    let admin_addr = admin.as_ref().map(|l| l.local_addr().expect("admin addr"));
    let config = Config::validate(settings, key).expect("valid test config");
    let listener = TcpListener::bind(config.listen).await.expect("bind proxy");
    let addr = listener.local_addr().expect("proxy addr");
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(onlytraffic_proxy::serve(
        listener,
        admin,
        Arc::new(config),
        async move {
            let _ = rx.await;
        },
    ));
    TestProxy {
        addr,
        url: format!("http://{addr}"),
        admin_addr,
        shutdown: Some(tx),
        task,
    }
}

/// A proxy in front of a fresh mock upstream.
pub async fn proxy_and_mock() -> (TestProxy, MockUpstream) {
    let mock = MockUpstream::start().await;
    let proxy = spawn_proxy(settings(&mock.url)).await;
    (proxy, mock)
}

/// A raw HTTP/1.1 response.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` bytes as they are (the caller writes `Connection: close`) and reads the
/// whole answer; for targets and headers an HTTP client library would rewrite.
pub async fn raw_request(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect proxy");
    stream.write_all(request).await.expect("write request");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf))
        .await
        .expect("response within 10s")
        .expect("read response");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response has a header block");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: buf[split + 4..].to_vec(),
    }
}

/// Scrapes `/metrics` at `base` and returns the value of the series written exactly as
/// `series` (name and labels), 0 when absent.
pub async fn metric(base: &str, series: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().expect("metric value"))
}

/// A response header as text.
pub fn header<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A fresh scratch directory unique to this test process and `name`.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("otproxy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The proxy's own error envelope, parsed and checked for its fixed fields.
pub fn proxy_error(body: &[u8], status: u16) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(body).expect("proxy error is JSON");
    assert_eq!(v["status"], "error", "{v}");
    assert_eq!(v["error_code"], status, "{v}");
    assert_eq!(v["source"], "proxy", "{v}");
    assert!(v["message"].as_str().is_some_and(|m| m.len() > 20), "{v}");
    assert!(
        v["request_id"].as_str().is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    v
}
