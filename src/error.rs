//! [`ProxyError`]: every failure the proxy answers itself, and the one place that maps it to an
//! HTTP status and the upstream-shaped JSON error envelope.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// A request the proxy answers itself. Messages say what happened, whether the upstream saw the
/// request, and what to do; they never contain the key or a token.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(
        "absolute-form request targets are refused: this proxy forwards only to its configured upstream; send the path alone (GET /api/... HTTP/1.1); nothing was forwarded"
    )]
    AbsoluteForm,
    #[error(
        "CONNECT is not supported: this proxy forwards only to its configured upstream; nothing was forwarded"
    )]
    Connect,
    #[error(
        "missing or wrong inbound token: send Authorization: Bearer <token> with a token listed in inbound.tokens_file; nothing was forwarded"
    )]
    Unauthorized,
    #[error(
        "request body is larger than limits.max_request_body ({limit} bytes); send a smaller body or raise the limit; nothing was forwarded"
    )]
    BodyTooLarge { limit: u64 },
    #[error("could not read the request body: {0}; nothing was forwarded")]
    RequestBody(String),
    #[error("request target {0:?} cannot be forwarded: {1}; nothing was forwarded")]
    BadTarget(String, String),
    #[error("upstream {upstream} is unreachable ({cause}); the request was not sent, retry later")]
    Unreachable { upstream: String, cause: String },
    #[error(
        "upstream {upstream} did not accept a connection within timeouts.connect ({timeout:?}); the request was not sent, retry later"
    )]
    ConnectTimeout { upstream: String, timeout: Duration },
    #[error(
        "the upstream connection failed after the request was sent ({cause}); the upstream may have processed it"
    )]
    UpstreamBroken { cause: String },
    #[error(
        "the upstream did not answer within timeouts.attempt ({timeout:?}); the upstream may have processed the request"
    )]
    AttemptTimeout { timeout: Duration },
    #[error(
        "rate limited by the proxy: {}; nothing was sent upstream, retry after {}s",
        .0.reason,
        crate::layers::rate_limit::retry_after_secs(.0.retry_after)
    )]
    RateLimited(crate::layers::rate_limit::Rejection),
    #[error(
        "the request did not complete within timeouts.total ({timeout:?}); the upstream may have processed it"
    )]
    TotalTimeout { timeout: Duration },
}

impl ProxyError {
    /// Client mistakes are 4xx, upstream failures 5xx: decided here and nowhere else.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::AbsoluteForm | ProxyError::RequestBody(_) | ProxyError::BadTarget(..) => {
                StatusCode::BAD_REQUEST
            }
            ProxyError::Connect => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::Unauthorized => StatusCode::UNAUTHORIZED,
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::Unreachable { .. } | ProxyError::UpstreamBroken { .. } => {
                StatusCode::BAD_GATEWAY
            }
            ProxyError::ConnectTimeout { .. }
            | ProxyError::AttemptTimeout { .. }
            | ProxyError::TotalTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The response: the upstream's own envelope shape, marked `"source":"proxy"`.
    pub fn to_response(&self, request_id: &str) -> Response {
        let mut resp = error_envelope(self.status(), &self.to_string(), request_id);
        match self {
            ProxyError::Unauthorized => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ProxyError::RateLimited(r) => {
                let secs = crate::layers::rate_limit::retry_after_secs(r.retry_after);
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            _ => {}
        }
        resp
    }
}

/// `{"status":"error","error_code":N,"message":..,"source":"proxy","request_id":..}` with
/// `Content-Type: application/json`, so clients parse one format for both sources of errors.
pub fn error_envelope(status: StatusCode, message: &str, request_id: &str) -> Response {
    let body = serde_json::json!({
        "status": "error",
        "error_code": status.as_u16(),
        "message": message,
        "source": "proxy",
        "request_id": request_id,
    });
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}
