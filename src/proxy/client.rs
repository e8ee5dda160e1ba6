//! The upstream HTTP client: hyper-util's pooled client over rustls with the web PKI roots,
//! HTTP/2 when the upstream offers it through ALPN.
//!
//! Why not reqwest: it routes every request through `url::Url`, which re-encodes some bytes of
//! paths and queries (`'`, `{`, `}`, ...) and resolves `..` segments. The proxy promises the
//! client's request target byte for byte, which `http::Uri` keeps.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The pooled client every upstream attempt goes through.
pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Builds the client; `connect` bounds TCP connection setup.
pub fn build(connect: Duration) -> UpstreamClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let https = HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        // The ring provider supports the safe default protocol versions, so this never fails;
        // fall back to the process default rather than panic.
        .unwrap_or_else(|_| HttpsConnectorBuilder::new().with_webpki_roots())
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .build(https)
}
