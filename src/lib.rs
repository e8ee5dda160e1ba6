//! onlytraffic-proxy: a local authenticating reverse proxy for the OnlyTraffic Partners API.
//!
//! Module map:
//! - [`config`]: file + environment + flags -> validated, typed [`config::Config`].
//! - [`secret`]: the upstream API key, loaded from the environment or a file, never printed.
//! - [`error`]: [`error::ProxyError`] and the one place that turns failures into HTTP responses.
//! - [`proxy`]: forwarding: upstream client, header hygiene, envelope -> status.
//! - [`server`]: the axum app, health endpoints, request ids, `run(listener, config, shutdown)`.
//! - [`simulator`]: the embedded OnlyTraffic partner API simulator.
//! - [`telemetry`]: log setup.

pub mod config;
pub mod demo;
pub mod error;
pub mod proxy;
pub mod secret;
pub mod server;
pub mod simulator;
pub mod telemetry;

pub use config::Config;
pub use server::{app, run};
