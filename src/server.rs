//! The HTTP front: the service behind each listener (health endpoints, request ids, the access
//! log line, then the proxy), and [`run`], which serves on worker threads until a shutdown
//! future resolves and then drains within a bound.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use http::header::{self, HeaderName, HeaderValue};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tower::{Service, ServiceExt as _};
use tower_http::sensitive_headers::SetSensitiveRequestHeaders;
use tracing::Instrument;

use crate::config::Config;
use crate::error::error_envelope;
use crate::metrics::Metrics;
use crate::proxy::{AccessInfo, Proxy, X_UPSTREAM_STATUS};
use crate::reload;
use crate::secret::{KeySource, KeyStore};

/// `X-Request-Id`, kept from the client when sane, else generated.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Shared by every request of one worker; everything but the upstream client is shared by all
/// workers (see [`Proxy::for_worker`]).
pub struct AppState {
    /// Also holds the metrics and the key store every worker shares.
    proxy: Proxy,
    draining: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(config: Arc<Config>) -> Arc<Self> {
        let metrics = Arc::new(Metrics::new());
        let keys = Arc::new(KeyStore::new(config.key.clone()));
        Arc::new(Self {
            proxy: Proxy::new(config, metrics, keys),
            draining: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The state for another worker thread: its own upstream client, all else shared. Call it
    /// on the worker's thread.
    fn for_worker(&self) -> Arc<Self> {
        Arc::new(Self {
            proxy: self.proxy.for_worker(),
            draining: self.draining.clone(),
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

/// The service behind a listener: every request gets its context (below), then goes to the
/// local routes (health, metrics) or to the proxy. A plain async function rather than axum
/// middleware and a router fallback, so the forwarded path allocates and moves no boxed
/// futures of its own.
#[derive(Clone)]
struct Front {
    state: Arc<AppState>,
    /// Health and metrics endpoints (and, on the admin listener, its 404).
    local: Router,
    /// Whether requests for other paths are forwarded (the main listener) or answered by
    /// `local` (the admin listener).
    forwards: bool,
}

impl Front {
    fn is_local(&self, path: &str) -> bool {
        !self.forwards
            || matches!(path, "/healthz" | "/readyz")
            || (path == "/metrics" && self.state.proxy.config().admin_listen.is_none())
    }

    /// Gives the request its id (also sent upstream), runs it inside a span carrying that id,
    /// returns the id on the response and writes the access log line (target
    /// `otproxy::access`): never a query, a header value, a body or a key.
    async fn call(self, mut req: Request) -> Response {
        let id = RequestId::from_headers(req.headers());
        req.headers_mut().insert(X_REQUEST_ID.clone(), id.0.clone());
        let span = tracing::info_span!("request", request_id = %id.as_str());
        let logged = tracing::enabled!(target: ACCESS_LOG, tracing::Level::INFO);
        let method = logged.then(|| req.method().clone());
        let path = logged.then(|| req.uri().path().to_owned());
        let started = Instant::now();
        let mut resp = if self.is_local(req.uri().path()) {
            req.extensions_mut().insert(id.clone());
            match self.local.oneshot(req).instrument(span.clone()).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            }
        } else {
            self.state
                .proxy
                .handle(req, id.as_str())
                .instrument(span.clone())
                .await
        };
        resp.headers_mut()
            .insert(X_REQUEST_ID.clone(), id.0.clone());
        if let (Some(method), Some(path)) = (method, path) {
            span.in_scope(|| access_log(&id, &method, &path, &resp, started));
        }
        resp
    }
}

/// The access log's target.
const ACCESS_LOG: &str = "otproxy::access";

/// Builds the main listener's service: health endpoints, `/metrics` unless `admin.listen` is
/// set, and everything else forwarded.
pub fn app(
    state: Arc<AppState>,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + 'static
{
    let mut local = health_routes();
    if state.proxy.config().admin_listen.is_none() {
        local = local.route("/metrics", get(metrics).fallback(health_method));
    }
    front(Front {
        local: local.with_state(state.clone()),
        state,
        forwards: true,
    })
}

/// The admin listener's service (`admin.listen`): health and metrics only; nothing is
/// forwarded.
pub fn admin_app(
    state: Arc<AppState>,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + 'static
{
    let local = health_routes()
        .route("/metrics", get(metrics).fallback(health_method))
        .fallback(admin_not_found);
    front(Front {
        local: local.with_state(state.clone()),
        state,
        forwards: false,
    })
}

/// `Authorization` and `Proxy-Authorization` are marked sensitive first, before anything
/// could log them; then [`Front::call`].
fn front(
    front: Front,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + 'static
{
    SetSensitiveRequestHeaders::new(
        tower::service_fn(move |req: Request| {
            let front = front.clone();
            async move { Ok::<_, Infallible>(front.call(req).await) }
        }),
        [header::AUTHORIZATION, header::PROXY_AUTHORIZATION],
    )
}

fn health_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(healthz).fallback(health_method))
        .route("/readyz", get(readyz).fallback(health_method))
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let limiter = state.proxy.limiter();
    let body = state.proxy.metrics().render(
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

fn request_id(req: &Request) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|id| id.as_str().to_owned())
        .unwrap_or_default()
}

/// The access log line of one request.
fn access_log(
    id: &RequestId,
    method: &http::Method,
    path: &str,
    resp: &Response,
    started: Instant,
) {
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
    tracing::info!(
        target: ACCESS_LOG,
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
///
/// The main listener is served by `workers` threads, each running its own single-threaded
/// event loop that accepts, serves its connections and drives its own upstream connections
/// (like nginx's worker processes: no work stealing and no cross-thread wake-ups on the hot
/// path). The limiter, retry budget, metrics and key are shared. The calling runtime keeps the
/// signals, the key watcher and the admin listener. Dropping the returned future stops the
/// workers as a shutdown would.
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
            reload::spawn(
                path.clone(),
                state.proxy.keys().clone(),
                state.proxy.metrics().clone(),
            );
        }
        KeySource::Env => reload::spawn_hangup_notice(),
        KeySource::Inline => {}
    }
    let addr = listener.local_addr().map_or(config.listen, |a| a);
    let listener = listener.into_std()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut workers = Vec::with_capacity(config.workers.get());
    for i in 0..config.workers.get() {
        let worker = Worker {
            index: i,
            listener: listener.try_clone()?,
            state: state.clone(),
            stop: stop_rx.clone(),
            grace,
        };
        workers.push(worker.spawn()?);
    }
    drop(listener);
    // Announced only now: every signal handler (SIGHUP included) is installed, so a signal
    // sent as soon as this line is read cannot hit the default action and kill the process.
    tracing::info!(
        listen = %addr,
        upstream = %config.upstream,
        workers = config.workers.get(),
        key = %config.key.fingerprint(),
        "onlytraffic-proxy serving"
    );
    let admin = async {
        let Some(listener) = admin else {
            return Ok(());
        };
        let serve = serve_http1(listener, admin_app(state.clone()), stop_rx.clone());
        within_grace(serve, stop_rx.clone(), grace).await
    };
    let workers = async {
        let mut result = Ok(());
        for (i, done) in workers.into_iter().enumerate() {
            let outcome = done.await.unwrap_or_else(|_| {
                Err(std::io::Error::other(format!(
                    "worker thread {i} stopped unexpectedly"
                )))
            });
            result = result.and(outcome);
        }
        result
    };
    let served = async { tokio::join!(workers, admin) };
    tokio::pin!(served, shutdown);
    let (workers, admin) = tokio::select! {
        results = &mut served => results,
        () = &mut shutdown => {
            state.draining.store(true, Ordering::Relaxed);
            tracing::info!(grace = ?grace, "shutting down: no new connections, draining in-flight requests");
            let _ = stop_tx.send(true);
            served.await
        }
    };
    workers.and(admin)
}

/// One thread serving the main listener on its own single-threaded runtime.
struct Worker {
    index: usize,
    listener: std::net::TcpListener,
    state: Arc<AppState>,
    stop: watch::Receiver<bool>,
    grace: Duration,
}

impl Worker {
    /// Starts the thread; the receiver gets its result once it has stopped.
    fn spawn(self) -> std::io::Result<oneshot::Receiver<std::io::Result<()>>> {
        let (done, result) = oneshot::channel();
        // The caller's log subscriber (the global one, or a test's scoped one) logs for the
        // worker too.
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        std::thread::Builder::new()
            .name(format!("otproxy-worker-{}", self.index))
            .spawn(move || {
                let _logs = tracing::dispatcher::set_default(&dispatch);
                let outcome = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .and_then(|runtime| runtime.block_on(self.run()));
                // Dropping the runtime here cuts off what the grace period left running.
                let _ = done.send(outcome);
            })?;
        Ok(result)
    }

    async fn run(self) -> std::io::Result<()> {
        let state = self.state.for_worker();
        let listener = TcpListener::from_std(self.listener)?;
        let serve = serve_http1(listener, app(state), self.stop.clone());
        within_grace(serve, self.stop, self.grace).await
    }
}

/// Accepts HTTP/1.1 connections on `listener` and serves each on its own task with `service`,
/// until `stop`; then stops accepting, lets idle keep-alive connections go and waits for the
/// requests in flight (bounded by the caller, [`within_grace`]).
///
/// hyper's HTTP/1 connection directly rather than axum::serve: that one sniffs every new
/// connection for an HTTP/2 preface first, and the 24 bytes it reads ahead cost each connection
/// a second 8 KiB read buffer (16 KiB instead of 8 for every client waiting in the queue).
async fn serve_http1<S>(
    listener: TcpListener,
    service: S,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let mut stopping = std::pin::pin!(stopped(stop));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut stopping => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(
            tower::ServiceBuilder::new()
                .map_request(|req: http::Request<hyper::body::Incoming>| req.map(Body::new))
                .service(service.clone()),
        );
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A failed accept: a connection that was reset before it was accepted is skipped; anything
/// else (out of file descriptors, most likely) is logged and retried after a pause, so the
/// loop neither spins nor stops serving.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept a connection; retrying in 1s (is the open-file limit too low?)");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Resolves when a shutdown is asked for, or when the sender is gone (the server's future was
/// dropped).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Runs a server with graceful shutdown, but gives up on its in-flight requests once
/// `timeouts.shutdown_grace` has passed since the shutdown began.
async fn within_grace(
    serve: impl Future<Output = std::io::Result<()>>,
    stop: watch::Receiver<bool>,
    grace: Duration,
) -> std::io::Result<()> {
    tokio::select! {
        result = serve => result,
        () = async { stopped(stop).await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace = ?grace, "timeouts.shutdown_grace passed with requests still in flight; they were cut off");
            Ok(())
        }
    }
}
