//! Prometheus metrics (through the official `prometheus-client` crate), one registry per proxy
//! instance so that tests, and several proxies in one process, never share counters. Label
//! values are bounded: routes from the known list or `other`, methods from the standard set.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `Content-Type` of the scrape response.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    route: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    error_code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabel {
    scope: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

/// How one upstream attempt ended, for `otproxy_upstream_requests_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamOutcome {
    Success,
    EnvelopeError,
    HttpError,
    ConnectError,
    Timeout,
}

impl UpstreamOutcome {
    fn as_str(self) -> &'static str {
        match self {
            UpstreamOutcome::Success => "success",
            UpstreamOutcome::EnvelopeError => "envelope_error",
            UpstreamOutcome::HttpError => "http_error",
            UpstreamOutcome::ConnectError => "connect_error",
            UpstreamOutcome::Timeout => "timeout",
        }
    }
}

fn seconds_histogram() -> Histogram {
    // 1ms .. ~65s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Every metric the proxy exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<RouteLabel, Histogram, fn() -> Histogram>,
    upstream_requests: Family<UpstreamLabels, Counter>,
    upstream_duration: Family<RouteLabel, Histogram, fn() -> Histogram>,
    envelope_errors: Family<CodeLabel, Counter>,
    retries: Family<ReasonLabel, Counter>,
    retry_budget_exhausted: Counter,
    rate_limit_wait: Histogram,
    rate_limited: Family<ScopeLabel, Counter>,
    queue_depth: Gauge,
    cooldown_active: Gauge,
    key_reloads: Family<ResultLabel, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "otproxy_requests",
            "Requests answered, by route, method and status",
            requests.clone(),
        );
        let request_duration =
            Family::<RouteLabel, Histogram, fn() -> Histogram>::new_with_constructor(
                seconds_histogram as fn() -> Histogram,
            );
        registry.register(
            "otproxy_request_duration_seconds",
            "Time from request to response head, waits and retries included",
            request_duration.clone(),
        );
        let upstream_requests = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "otproxy_upstream_requests",
            "Upstream attempts by route and outcome",
            upstream_requests.clone(),
        );
        let upstream_duration =
            Family::<RouteLabel, Histogram, fn() -> Histogram>::new_with_constructor(
                seconds_histogram as fn() -> Histogram,
            );
        registry.register(
            "otproxy_upstream_duration_seconds",
            "Duration of one upstream attempt",
            upstream_duration.clone(),
        );
        let envelope_errors = Family::<CodeLabel, Counter>::default();
        registry.register(
            "otproxy_envelope_errors",
            "Upstream answers whose envelope reported an error, by error_code",
            envelope_errors.clone(),
        );
        let retries = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "otproxy_retries",
            "Upstream retries by reason",
            retries.clone(),
        );
        let retry_budget_exhausted = Counter::default();
        registry.register(
            "otproxy_retry_budget_exhausted",
            "Retries refused by the retry budget",
            retry_budget_exhausted.clone(),
        );
        let rate_limit_wait = seconds_histogram();
        registry.register(
            "otproxy_rate_limit_wait_seconds",
            "Time requests waited for a global rate-limit token",
            rate_limit_wait.clone(),
        );
        let rate_limited = Family::<ScopeLabel, Counter>::default();
        registry.register(
            "otproxy_rate_limited",
            "Requests answered 429 by the proxy's own limiter, by scope (global or the route)",
            rate_limited.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "otproxy_queue_depth",
            "Requests waiting for a rate-limit token",
            queue_depth.clone(),
        );
        let cooldown_active = Gauge::default();
        registry.register(
            "otproxy_cooldown_active",
            "1 while an upstream 429 has paused the limiter",
            cooldown_active.clone(),
        );
        let key_reloads = Family::<ResultLabel, Counter>::default();
        registry.register(
            "otproxy_key_reloads",
            "API key reloads by result",
            key_reloads.clone(),
        );
        let build_info = Family::<VersionLabel, Gauge>::default();
        build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("otproxy_build_info", "Build information", build_info);
        // Known label values start at 0, so dashboards and alerts see them before the first event.
        for reason in ["rate_limited", "connect_error", "server_error", "timeout"] {
            retries.get_or_create_owned(&ReasonLabel { reason });
        }
        for result in ["success", "error"] {
            key_reloads.get_or_create_owned(&ResultLabel { result });
        }
        rate_limited.get_or_create_owned(&ScopeLabel {
            scope: "global".into(),
        });
        Self {
            registry,
            requests,
            request_duration,
            upstream_requests,
            upstream_duration,
            envelope_errors,
            retries,
            retry_budget_exhausted,
            rate_limit_wait,
            rate_limited,
            queue_depth,
            cooldown_active,
            key_reloads,
        }
    }

    pub fn request(&self, route: &'static str, method: &http::Method, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method: method_label(method),
                status,
            })
            .inc();
        self.request_duration
            .get_or_create(&RouteLabel { route })
            .observe(took.as_secs_f64());
    }

    pub fn upstream(&self, route: &'static str, outcome: UpstreamOutcome, took: Duration) {
        self.upstream_requests
            .get_or_create(&UpstreamLabels {
                route,
                outcome: outcome.as_str(),
            })
            .inc();
        self.upstream_duration
            .get_or_create(&RouteLabel { route })
            .observe(took.as_secs_f64());
    }

    pub fn envelope_error(&self, code: Option<i64>) {
        let error_code = match code {
            Some(c) if (100..=999).contains(&c) => c.to_string(),
            Some(_) => "other".into(),
            None => "none".into(),
        };
        self.envelope_errors
            .get_or_create(&CodeLabel { error_code })
            .inc();
    }

    pub fn retry(&self, reason: &'static str) {
        self.retries.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn retry_budget_exhausted(&self) {
        self.retry_budget_exhausted.inc();
    }

    pub fn rate_limit_wait(&self, waited: Duration) {
        self.rate_limit_wait.observe(waited.as_secs_f64());
    }

    /// `scope` is `global` or a route rule's `route` (bounded by the configuration).
    pub fn rate_limited(&self, scope: &str) {
        self.rate_limited
            .get_or_create(&ScopeLabel {
                scope: scope.to_owned(),
            })
            .inc();
    }

    pub fn key_reload(&self, ok: bool) {
        let result = if ok { "success" } else { "error" };
        self.key_reloads
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// The text exposition, with the gauges read at scrape time.
    pub fn render(&self, queue_depth: usize, cooldown_active: bool) -> String {
        self.queue_depth
            .set(i64::try_from(queue_depth).unwrap_or(i64::MAX));
        self.cooldown_active.set(i64::from(cooldown_active));
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
    ]
    .iter()
    .find(|m| *m == method)
    .map_or("other", |m| match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        _ => "OPTIONS",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_bounded_labels() {
        let m = Metrics::new();
        m.request(
            "campaigns",
            &http::Method::POST,
            429,
            Duration::from_millis(3),
        );
        m.request(
            "other",
            &http::Method::from_bytes(b"BREW").unwrap(),
            200,
            Duration::ZERO,
        );
        m.upstream(
            "campaigns",
            UpstreamOutcome::EnvelopeError,
            Duration::from_millis(2),
        );
        m.envelope_error(Some(429));
        m.envelope_error(Some(123_456));
        m.retry("rate_limited");
        m.rate_limited("generate_link");
        m.key_reload(false);
        let text = m.render(7, true);
        for line in [
            r#"otproxy_requests_total{route="campaigns",method="POST",status="429"} 1"#,
            r#"otproxy_requests_total{route="other",method="other",status="200"} 1"#,
            r#"otproxy_upstream_requests_total{route="campaigns",outcome="envelope_error"} 1"#,
            r#"otproxy_envelope_errors_total{error_code="429"} 1"#,
            r#"otproxy_envelope_errors_total{error_code="other"} 1"#,
            r#"otproxy_retries_total{reason="rate_limited"} 1"#,
            r#"otproxy_rate_limited_total{scope="generate_link"} 1"#,
            r#"otproxy_key_reloads_total{result="error"} 1"#,
            "otproxy_queue_depth 7",
            "otproxy_cooldown_active 1",
            "otproxy_retry_budget_exhausted_total 0",
            r#"otproxy_request_duration_seconds_count{route="campaigns"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(text.contains(&format!(
            "otproxy_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
    }
}
