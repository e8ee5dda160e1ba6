//! The embedded OnlyTraffic Partners API simulator: a local stand-in for
//! `partner.onlytraffic.com` that serves the documented v1 and v2 endpoints over a fixed,
//! deterministic data set, with the documented envelope, error codes and `generate_link` limit,
//! plus a configurable per-key rate so clients (and the proxy) can be exercised against 429s.
//!
//! Files: `clock` (time sources), `rate` (`N/PERIOD` budgets), `limits` (the windows),
//! `envelope` (response bodies), `params` (query/body decoding), `data` (the records),
//! `time` (dates), `v1` and `v2` (the endpoints).
//!
//! Every response is HTTP 200 with `Content-Type: application/json`. Checks run in this order,
//! and the first failure answers:
//! 1. auth: `Authorization` must equal the key exactly (401);
//! 2. rate: every authenticated request spends one unit of the per-key budget (429);
//! 3. route: path and method, then for v1 the `do` value (404);
//! 4. parameters and body (422);
//! 5. `generate_link` only: the per-smartlink 5-minute cooldown (429).

mod clock;
mod data;
mod envelope;
mod limits;
mod params;
mod rate;
mod time;
mod v1;
mod v2;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use subtle::ConstantTimeEq;

pub use clock::{Clock, ManualClock, SystemClock};
pub use rate::{ParseSimRateError, SimRate};

use envelope::ApiError;
use limits::{FixedWindow, LinkCooldown};
use params::{MAX_BODY_BYTES, Params};

/// The API key the simulator accepts unless told otherwise; it is not a secret.
pub const DEFAULT_KEY: &str = "demo-key";
/// Where `simulate` listens by default (loopback only: the simulator is a local test double).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9090";
/// The default per-key budget, in [`SimRate`]'s `N/PERIOD` form.
pub const DEFAULT_RATE: &str = "60/1m";

/// What the simulator needs to run: the key it accepts, the per-key budget, and the clock every
/// time window reads (swap in a [`ManualClock`] to test windows without sleeping).
#[derive(Clone)]
pub struct SimulatorConfig {
    /// The only API key accepted in the `Authorization` header (bare, no scheme word).
    pub key: String,
    /// Requests per window allowed for the key before `error_code: 429`.
    pub rate: SimRate,
    /// Time source for the rate window and the `generate_link` cooldown.
    pub clock: Arc<dyn Clock>,
}

impl SimulatorConfig {
    /// A config with the real monotonic clock.
    pub fn new(key: impl Into<String>, rate: SimRate) -> Self {
        Self {
            key: key.into(),
            rate,
            clock: Arc::new(SystemClock),
        }
    }

    /// The same config reading time from `clock` (tests pass an `Arc<ManualClock>`).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self { clock, ..self }
    }
}

impl Default for SimulatorConfig {
    /// [`DEFAULT_KEY`], [`DEFAULT_RATE`] and the system clock.
    fn default() -> Self {
        Self::new(DEFAULT_KEY, SimRate::default())
    }
}

impl fmt::Debug for SimulatorConfig {
    /// The key is redacted: even a simulator key should not habituate anyone to logging keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulatorConfig")
            .field("key", &"<redacted>")
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

/// Shared state behind the router.
pub(crate) struct SimState {
    key: String,
    pub(crate) clock: Arc<dyn Clock>,
    limiter: FixedWindow,
    pub(crate) cooldown: LinkCooldown,
    /// Unix time at the clock's origin, so `generate_link` expiry moves with the clock.
    pub(crate) wall_origin: Duration,
}

/// The simulator as an axum router, for `serve` or for in-process tests with `oneshot`.
///
/// All paths go to one handler so the documented order of checks (auth, rate, route, params)
/// holds for every request, including unknown paths.
pub fn router(config: SimulatorConfig) -> Router {
    let wall_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let state = Arc::new(SimState {
        wall_origin: wall_now.saturating_sub(config.clock.now()),
        key: config.key,
        clock: config.clock,
        limiter: FixedWindow::new(config.rate),
        cooldown: LinkCooldown::default(),
    });
    Router::new().fallback(handle).with_state(state)
}

/// Serves the simulator on `listener` until `shutdown` completes, then drains open requests.
///
/// The caller binds (so tests can use port 0 and the binary can report bind errors itself).
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: SimulatorConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, rate = %config.rate, "onlytraffic simulator listening");
    }
    axum::serve(listener, router(config))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn handle(State(state): State<Arc<SimState>>, request: Request) -> Response {
    match dispatch(&state, request).await {
        Ok(data) => envelope::success(data),
        Err(err) => err.into_response(),
    }
}

/// Where a request goes once its path and method are known.
enum Route {
    V1,
    V2(v2::List),
}

async fn dispatch(state: &SimState, request: Request) -> Result<Value, ApiError> {
    authorize(&state.key, request.headers())?;
    state
        .limiter
        .check(state.clock.now())
        .map_err(|wait| ApiError::RateLimited {
            message: format!(
                "rate limit exceeded: this key may make {} requests per {}; retry in {} s",
                state.limiter.rate().requests,
                humantime::format_duration(state.limiter.rate().per),
                wait.retry_after_secs()
            ),
            wait,
        })?;
    let route = resolve(request.method(), request.uri().path())?;
    let (parts, body) = request.into_parts();
    let query = Params::from_query(parts.uri.query())?;
    match route {
        Route::V1 => {
            let action = v1::Action::from_query(&query)?;
            let body = read_body(&parts.headers, body).await?;
            v1::handle(state, action, &body)
        }
        Route::V2(list) => {
            let body = read_body(&parts.headers, body).await?;
            v2::list(list, query, &body)
        }
    }
}

/// 401 unless `Authorization` carries exactly the key (compared in constant time).
fn authorize(key: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(given) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::Unauthorized(
            "missing Authorization header: send the API key as its value".into(),
        ));
    };
    let given = given.as_bytes();
    if bool::from(given.ct_eq(key.as_bytes())) {
        return Ok(());
    }
    let bearer = given
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"bearer "));
    Err(ApiError::Unauthorized(if bearer {
        "invalid API key: send the bare key in the Authorization header, without \"Bearer\"".into()
    } else {
        "invalid API key".into()
    }))
}

/// 404 for anything but the six served paths with their one method each.
fn resolve(method: &Method, path: &str) -> Result<Route, ApiError> {
    let (route, allowed) = if path == "/api/marketer" {
        (Route::V1, Method::POST)
    } else if let Some(list) = v2::List::from_path(path) {
        (Route::V2(list), Method::GET)
    } else {
        let shown: String = path.chars().take(200).collect();
        return Err(ApiError::NotFound(format!("no route for {method} {shown}")));
    };
    if *method == allowed {
        Ok(route)
    } else {
        Err(ApiError::NotFound(format!(
            "no route for {method} {path}: this path only accepts {allowed}"
        )))
    }
}

async fn read_body(headers: &HeaderMap, body: Body) -> Result<Params, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::Invalid(format!(
                "malformed body: unreadable or larger than {} KiB",
                MAX_BODY_BYTES / 1024
            ))
        })?;
    Params::from_body(headers, &bytes)
}
