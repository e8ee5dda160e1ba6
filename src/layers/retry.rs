//! Retry policy: which upstream outcomes are retried, how long to wait before the next attempt
//! (the upstream's `Retry-After` or jittered exponential backoff, whichever is longer), and the
//! retry budget that stops retry storms. It only decides; the proxy does the waiting.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method, StatusCode, header};
use tower::retry::budget::{Budget, TpsBudget};

use crate::config::{RetryConfig, ServerErrorRetry};
use crate::route::Route;

/// The longest `Retry-After` the proxy believes; anything longer is treated as this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Why an attempt is worth repeating (the `reason` of logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// An HTTP 429, or a 200 whose envelope says `error_code` 429.
    RateLimited,
    /// No connection: the request never left the proxy.
    Connect,
    /// 502/503/504 (HTTP or envelope) from the upstream.
    ServerError,
    /// No answer within `timeouts.attempt`, or the connection broke after sending.
    Timeout,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::RateLimited => "rate_limited",
            Reason::Connect => "connect_error",
            Reason::ServerError => "server_error",
            Reason::Timeout => "timeout",
        }
    }
}

/// The retry policy and its budget.
pub struct RetryPolicy {
    max_attempts: u32,
    base_delay: Duration,
    max_delay: Duration,
    server_errors: ServerErrorRetry,
    budget: TpsBudget,
}

impl std::fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("base_delay", &self.base_delay)
            .field("max_delay", &self.max_delay)
            .finish_non_exhaustive()
    }
}

impl RetryPolicy {
    pub fn new(cfg: &RetryConfig) -> Self {
        Self {
            max_attempts: cfg.max_attempts,
            base_delay: cfg.base_delay,
            max_delay: cfg.max_delay,
            server_errors: cfg.retry_server_errors,
            // Deposits count requests over a rolling 10s; the floor lets a quiet proxy retry.
            budget: TpsBudget::new(
                Duration::from_secs(10),
                cfg.budget_min_per_sec,
                cfg.budget_percent / 100.0,
            ),
        }
    }

    /// Records one client request, which earns the budget its share of retries.
    pub fn deposit(&self) {
        self.budget.deposit();
    }

    /// Takes one retry from the budget; false when the budget is spent.
    pub fn withdraw(&self) -> bool {
        self.budget.withdraw()
    }

    /// Whether `attempt` (1-based) may be followed by another one.
    pub fn attempts_left(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// Whether a failure of this kind may be retried for this request.
    pub fn allows(&self, reason: Reason, method: &Method, route: &Route) -> bool {
        match reason {
            Reason::RateLimited | Reason::Connect => true,
            Reason::ServerError | Reason::Timeout => match self.server_errors {
                ServerErrorRetry::None => false,
                ServerErrorRetry::Reads => route.is_read(method),
                ServerErrorRetry::All => true,
            },
        }
    }

    /// The wait before retry number `retry` (1 for the first retry): the longer of the
    /// upstream's hint and exponential backoff with full jitter.
    pub fn delay(&self, retry: u32, upstream_hint: Option<Duration>) -> Duration {
        let backoff = backoff(
            self.base_delay,
            self.max_delay,
            retry,
            rand::random::<f64>(),
        );
        upstream_hint.map_or(backoff, |hint| hint.max(backoff))
    }
}

/// Exponential backoff with full jitter: uniform in `[base, min(max, base * 2^retry)]`, with
/// `unit` in `[0, 1)` supplying the randomness (so tests can pin it).
pub fn backoff(base: Duration, max: Duration, retry: u32, unit: f64) -> Duration {
    let ceiling = base
        .checked_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(max)
        .min(max);
    let span = ceiling.saturating_sub(base);
    (base + span.mul_f64(unit.clamp(0.0, 1.0))).min(max)
}

/// `Retry-After` as seconds or an HTTP-date (in the past: zero); `None` for anything else.
/// Capped at [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or_default()
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// A `retry_after` body field in seconds, capped like the header.
pub fn body_retry_after(seconds: Option<f64>) -> Option<Duration> {
    seconds
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(MAX_RETRY_AFTER.as_secs_f64())))
}

/// The retry reason an upstream status implies, if any.
pub fn reason_for_status(status: StatusCode) -> Option<Reason> {
    match status.as_u16() {
        429 => Some(Reason::RateLimited),
        502..=504 => Some(Reason::ServerError),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(budget_percent: f32, floor: u32) -> RetryPolicy {
        RetryPolicy::new(&RetryConfig {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            retry_server_errors: ServerErrorRetry::Reads,
            budget_percent,
            budget_min_per_sec: floor,
        })
    }

    #[test]
    fn backoff_stays_within_its_bounds() {
        let base = Duration::from_millis(500);
        let max = Duration::from_secs(30);
        assert_eq!(backoff(base, max, 1, 0.0), base);
        assert_eq!(backoff(base, max, 1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(base, max, 3, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(base, max, 3, 0.5), Duration::from_millis(2250));
        assert_eq!(backoff(base, max, 10, 1.0), max);
        assert_eq!(
            backoff(base, max, 40, 0.99).min(max),
            backoff(base, max, 40, 0.99)
        );
        for retry in 1..50 {
            for unit in [0.0, 0.3, 0.999] {
                let d = backoff(base, max, retry, unit);
                assert!(d >= base && d <= max, "{retry} {unit} {d:?}");
            }
        }
        // The policy's random draw obeys the same bounds, and the upstream hint wins if longer.
        let p = policy(20.0, 3);
        for _ in 0..100 {
            let d = p.delay(2, None);
            assert!(d >= base && d <= Duration::from_secs(2), "{d:?}");
        }
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }

    #[test]
    fn retry_after_header_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let parse = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::RETRY_AFTER, v.parse().unwrap());
            parse_retry_after(&h, now)
        };
        assert_eq!(parse("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse(" 0 "), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(parse(&later), Some(Duration::from_secs(90)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse(&earlier), Some(Duration::ZERO));
        assert_eq!(parse("99999999999"), Some(MAX_RETRY_AFTER));
        for garbage in ["soon", "-5", "1.5", "", "Mon, 99 Foo 2024"] {
            assert_eq!(parse(garbage), None, "{garbage:?}");
        }
        assert_eq!(parse_retry_after(&HeaderMap::new(), now), None);
        assert_eq!(
            body_retry_after(Some(2.5)),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(body_retry_after(Some(-1.0)), None);
        assert_eq!(body_retry_after(Some(f64::INFINITY)), None);
    }

    #[test]
    fn budget_limits_retries_to_a_share_of_requests() {
        // No floor: only deposits earn retries, 20% of them.
        let p = policy(20.0, 0);
        assert!(!p.withdraw(), "no requests yet, no retries");
        for _ in 0..10 {
            p.deposit();
        }
        assert!(p.withdraw());
        assert!(p.withdraw());
        assert!(!p.withdraw(), "20% of 10 requests is 2 retries");
        // With a floor, a quiet proxy still gets a few retries.
        let p = policy(20.0, 3);
        assert!(p.withdraw());
    }

    #[test]
    fn which_failures_are_retried() {
        let p = policy(20.0, 3);
        let link = Route::V1(Some("generate_link".into()));
        let read = Route::V1(Some("campaigns".into()));
        assert!(p.allows(Reason::RateLimited, &Method::POST, &link));
        assert!(p.allows(Reason::Connect, &Method::POST, &link));
        assert!(!p.allows(Reason::ServerError, &Method::POST, &link));
        assert!(!p.allows(Reason::Timeout, &Method::POST, &link));
        assert!(p.allows(Reason::ServerError, &Method::POST, &read));
        assert!(p.allows(Reason::Timeout, &Method::GET, &Route::Path("/x".into())));
        assert!(p.attempts_left(3));
        assert!(!p.attempts_left(4));
        assert_eq!(
            reason_for_status(StatusCode::TOO_MANY_REQUESTS),
            Some(Reason::RateLimited)
        );
        assert_eq!(
            reason_for_status(StatusCode::SERVICE_UNAVAILABLE),
            Some(Reason::ServerError)
        );
        assert_eq!(reason_for_status(StatusCode::INTERNAL_SERVER_ERROR), None);
    }
}
