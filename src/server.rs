//! The HTTP front: the axum [`app`], health endpoints, request ids and the access log line, and
//! [`run`], which serves until a shutdown future resolves and then drains within a bound.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use http::header::{self, HeaderName, HeaderValue};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tracing::Instrument;

use crate::config::Config;
use crate::error::error_envelope;
use crate::metrics::Metrics;
use crate::proxy::{AccessInfo, Proxy, X_UPSTREAM_STATUS};
use crate::reload;
use crate::secret::{KeySource, KeyStore};

/// `X-Request-Id`, kept from the client when sane, else generated.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Shared by every request.
pub struct AppState {
    proxy: Proxy,
    metrics: Arc<Metrics>,
    keys: Arc<KeyStore>,
    draining: AtomicBool,
}

impl AppState {
    pub fn new(config: Arc<Config>) -> Arc<Self> {
        let metrics = Arc::new(Metrics::new());
        let keys = Arc::new(KeyStore::new(config.key.clone()));
        Arc::new(Self {
            proxy: Proxy::new(config, metrics.clone(), keys.clone()),
            metrics,
            keys,
            draining: AtomicBool::new(false),
        })
    }
}

/// The request id of the request being handled, in its extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    /// Keeps a client id that is printable ASCII and at most 128 bytes; otherwise makes a UUID
    /// v4 from the thread-local RNG (no system call per request).
    fn from_headers(headers: &http::HeaderMap) -> Self {
        let sane = headers.get(&X_REQUEST_ID).filter(|v| {
            let b = v.as_bytes();
            !b.is_empty() && b.len() <= 128 && b.iter().all(|c| (0x21..=0x7e).contains(c))
        });
        match sane {
            Some(v) => Self(v.clone()),
            None => Self(
                HeaderValue::from_str(
                    &uuid::Builder::from_random_bytes(rand::random())
                        .into_uuid()
                        .to_string(),
                )
                .unwrap_or_else(|_| HeaderValue::from_static("invalid")),
            ),
        }
    }

    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or("")
    }
}

/// Builds the main router: health endpoints, `/metrics` unless `admin.listen` is set, and
/// everything else forwarded. Layers, outermost first:
/// 1. sensitive headers: `Authorization` is marked before anything could log it;
/// 2. request context: request id, the span every log line of the request carries, access log.
pub fn app(state: Arc<AppState>) -> Router {
    let mut router = health_routes();
    if state.proxy.config().admin_listen.is_none() {
        router = router.route("/metrics", get(metrics).fallback(health_method));
    }
    with_layers(router.fallback(forward), state)
}

/// The admin router (`admin.listen`): health and metrics only; nothing is forwarded.
pub fn admin_app(state: Arc<AppState>) -> Router {
    let router = health_routes()
        .route("/metrics", get(metrics).fallback(health_method))
        .fallback(admin_not_found);
    with_layers(router, state)
}

fn health_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(healthz).fallback(health_method))
        .route("/readyz", get(readyz).fallback(health_method))
}

fn with_layers(router: Router<Arc<AppState>>, state: Arc<AppState>) -> Router {
    router
        .with_state(state)
        .layer(middleware::from_fn(request_context))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::PROXY_AUTHORIZATION,
        ]))
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let limiter = state.proxy.limiter();
    let body = state.metrics.render(
        limiter.queue_depth(),
        limiter.cooldown_remaining().is_some(),
    );
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        )],
        body,
    )
        .into_response()
}

async fn admin_not_found(req: Request) -> Response {
    let id = request_id(&req);
    error_envelope(
        StatusCode::NOT_FOUND,
        "the admin listener serves /healthz, /readyz and /metrics only; send API requests to the main listener",
        &id,
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.draining.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else {
        "ready\n".into_response()
    }
}

async fn health_method(req: Request) -> Response {
    let id = request_id(&req);
    let mut resp = error_envelope(
        StatusCode::METHOD_NOT_ALLOWED,
        "health and metrics endpoints answer GET only; they are never forwarded",
        &id,
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    resp
}

async fn forward(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let id = request_id(&req);
    state.proxy.handle(req, &id).await
}

fn request_id(req: &Request) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|id| id.as_str().to_owned())
        .unwrap_or_default()
}

/// Gives the request its id (also sent upstream), runs it inside a span carrying that id,
/// returns the id on the response and writes the access log line (target `otproxy::access`):
/// never a query, a header value, a body or a key.
async fn request_context(mut req: Request, next: Next) -> Response {
    let id = RequestId::from_headers(req.headers());
    req.headers_mut().insert(X_REQUEST_ID.clone(), id.0.clone());
    req.extensions_mut().insert(id.clone());
    let span = tracing::info_span!("request", request_id = %id.as_str());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    resp.headers_mut()
        .insert(X_REQUEST_ID.clone(), id.0.clone());
    let info = resp
        .extensions()
        .get::<AccessInfo>()
        .cloned()
        .unwrap_or(AccessInfo {
            route: "local",
            ..AccessInfo::default()
        });
    let upstream_status = resp
        .headers()
        .get(&X_UPSTREAM_STATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u16>().ok());
    let bytes_out = http_body::Body::size_hint(resp.body()).exact().or_else(|| {
        resp.headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    });
    span.in_scope(|| {
        tracing::info!(
            target: "otproxy::access",
            request_id = %id.as_str(),
            method = %method,
            route = info.route,
            path = %path,
            status = resp.status().as_u16(),
            upstream_status,
            error_code = info.error_code,
            attempts = info.attempts,
            wait_ms = info.waited.as_secs_f64() * 1000.0,
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            bytes_in = info.bytes_in,
            bytes_out,
            "request"
        );
    });
    resp
}

/// Serves `config` on `listener` (and on `admin.listen` when set) until `shutdown` resolves,
/// then stops accepting and lets in-flight requests finish for up to `timeouts.shutdown_grace`.
pub async fn run(
    listener: TcpListener,
    config: Arc<Config>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let admin = match config.admin_listen {
        Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen on admin.listen {addr}: {e}"),
            )
        })?),
        None => None,
    };
    serve(listener, admin, config, shutdown).await
}

/// [`run`] with the admin listener already bound (tests bind it on port 0).
pub async fn serve(
    listener: TcpListener,
    admin: Option<TcpListener>,
    config: Arc<Config>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = config.timeouts.shutdown_grace;
    let state = AppState::new(config.clone());
    match config.key.source() {
        KeySource::File(path) => {
            reload::spawn(path.clone(), state.keys.clone(), state.metrics.clone());
        }
        KeySource::Env => reload::spawn_hangup_notice(),
        KeySource::Inline => {}
    }
    // Announced only now: every signal handler (SIGHUP included) is installed, so a signal
    // sent as soon as this line is read cannot hit the default action and kill the process.
    tracing::info!(
        listen = %listener.local_addr().map_or(config.listen, |a| a),
        upstream = %config.upstream,
        key = %config.key.fingerprint(),
        "onlytraffic-proxy serving"
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let draining = Arc::new(Notify::new());
    {
        let state = state.clone();
        let draining = draining.clone();
        tokio::spawn(async move {
            shutdown.await;
            state.draining.store(true, Ordering::Relaxed);
            tracing::info!(grace = ?grace, "shutting down: no new connections, draining in-flight requests");
            let _ = stop_tx.send(true);
            draining.notify_one();
        });
    }
    let stopped = move |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let main = axum::serve(listener, app(state.clone()).into_make_service())
        .with_graceful_shutdown(stopped(stop_rx.clone()))
        .into_future();
    let admin = async {
        match admin {
            Some(l) => {
                axum::serve(l, admin_app(state.clone()).into_make_service())
                    .with_graceful_shutdown(stopped(stop_rx.clone()))
                    .await
            }
            None => Ok(()),
        }
    };
    tokio::select! {
        (main, admin) = async { tokio::join!(main, admin) } => main.and(admin),
        () = async { draining.notified().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace = ?grace, "timeouts.shutdown_grace passed with requests still in flight; they were cut off");
            Ok(())
        }
    }
}
