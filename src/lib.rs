//! onlytraffic-proxy: a local authenticating reverse proxy for the OnlyTraffic Partners API.
//!
//! Module map:
//! - [`config`]: file + environment + flags -> validated, typed [`config::Config`].
//! - [`secret`]: the upstream API key, loaded from the environment or a file, never printed.
//! - [`demo`]: the simulator and the proxy in one process, for `onlytraffic-proxy demo`.
//! - [`error`]: [`error::ProxyError`] and the one place that turns failures into HTTP responses.
//! - [`proxy`]: forwarding: upstream client, header hygiene, envelope -> status, the attempt loop.
//! - [`layers`]: the rate limiter (global + per-route, cooldown) and the retry policy.
//! - [`metrics`]: the Prometheus registry behind `/metrics`.
//! - [`reload`]: key rotation from `ONLYTRAFFIC_API_KEY_FILE` (file watch + SIGHUP).
//! - [`route`]: which partner-API operation a request is (v1 `do` value or v2 path).
//! - [`server`]: the worker threads serving HTTP/1.1, health and metrics endpoints, request
//!   ids, the access log, `run(listener, config, shutdown)`.
//! - [`simulator`]: the embedded OnlyTraffic partner API simulator.
//! - [`telemetry`]: log setup.

pub mod config;
pub mod demo;
pub mod error;
pub mod layers;
pub mod metrics;
pub mod proxy;
pub mod reload;
pub mod route;
pub mod secret;
pub mod server;
pub mod simulator;
pub mod telemetry;

pub use config::Config;
pub use server::{app, run, serve};
