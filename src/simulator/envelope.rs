//! The response envelope: every answer is HTTP 200 with a JSON body whose `status` carries the
//! real outcome, as the partner API documents. [`ApiError`] is the one place failures become bodies.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use super::limits::Wait;

/// A request the simulator refuses, rendered as `{"status":"error","error_code":N,"message":...}`.
///
/// The `error_code` values 422/429/404 are documented upstream; 401 and the `"error"` /
/// `message` wording are the simulator's assumptions (the docs do not show an error body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ApiError {
    /// Missing or wrong `Authorization` header.
    #[error("{0}")]
    Unauthorized(String),
    /// Over the per-key budget or inside the `generate_link` cooldown.
    #[error("{message}")]
    RateLimited {
        /// What limit was hit.
        message: String,
        /// When the same request would be admitted.
        wait: Wait,
    },
    /// Unknown path, wrong method, or unknown/missing `do` action.
    #[error("{0}")]
    NotFound(String),
    /// A parameter or the body is invalid.
    #[error("{0}")]
    Invalid(String),
}

impl ApiError {
    /// The documented `error_code` (401 is our assumption for bad keys).
    pub(crate) fn code(&self) -> u16 {
        match self {
            Self::Unauthorized(_) => 401,
            Self::RateLimited { .. } => 429,
            Self::NotFound(_) => 404,
            Self::Invalid(_) => 422,
        }
    }

    /// The error body. `retry_after` (whole seconds) is added on 429s; it is not documented
    /// upstream and is a simulator extension.
    pub(crate) fn body(&self) -> ErrorBody {
        ErrorBody {
            status: "error",
            error_code: self.code(),
            message: self.to_string(),
            retry_after: match self {
                Self::RateLimited { wait, .. } => Some(wait.retry_after_secs()),
                _ => None,
            },
        }
    }
}

/// The error envelope, fields in the order clients read them (a struct, not a map, so `status`
/// comes first).
#[derive(Debug, Serialize)]
pub(crate) struct ErrorBody {
    status: &'static str,
    error_code: u16,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
}

/// The success envelope, `status` first as in the documented examples.
#[derive(Debug, Serialize)]
struct SuccessBody {
    status: &'static str,
    data: Value,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        tracing::debug!(error_code = self.code(), message = %self, "simulator refused request");
        Json(self.body()).into_response()
    }
}

/// The success body `{"status":"success","data":...}`, served with HTTP 200.
pub(crate) fn success(data: Value) -> Response {
    Json(SuccessBody {
        status: "success",
        data,
    })
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn to_json(body: ErrorBody) -> String {
        serde_json::to_string(&body).unwrap_or_default()
    }

    #[test]
    fn error_body_has_numeric_code_and_message() {
        let body =
            ApiError::Invalid("limit must be an integer between 1 and 1000, got 0".into()).body();
        // Field order matters to human readers: status first, as in the documented examples.
        assert_eq!(
            to_json(body),
            r#"{"status":"error","error_code":422,"message":"limit must be an integer between 1 and 1000, got 0"}"#
        );
    }

    #[test]
    fn rate_limited_body_carries_retry_after() {
        let body = ApiError::RateLimited {
            message: "slow down".into(),
            wait: Wait(Duration::from_millis(2_500)),
        }
        .body();
        let body: Value = serde_json::from_str(&to_json(body)).unwrap_or_default();
        assert_eq!(
            body,
            json!({"status": "error", "error_code": 429, "message": "slow down", "retry_after": 3})
        );
    }
}
