//! The response envelope: every answer is HTTP 200 with a JSON body whose `status` carries the
//! real outcome, as the partner API documents. [`ApiError`] is the one place failures become bodies.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

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
    pub(crate) fn body(&self) -> Value {
        let mut body = json!({
            "status": "error",
            "error_code": self.code(),
            "message": self.to_string(),
        });
        if let (Self::RateLimited { wait, .. }, Some(map)) = (self, body.as_object_mut()) {
            map.insert("retry_after".into(), wait.retry_after_secs().into());
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        tracing::debug!(error_code = self.code(), message = %self, "simulator refused request");
        (Json(self.body())).into_response()
    }
}

/// The success body `{"status":"success","data":...}`, served with HTTP 200.
pub(crate) fn success(data: Value) -> Response {
    Json(json!({ "status": "success", "data": data })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn error_body_has_numeric_code_and_message() {
        let body =
            ApiError::Invalid("limit must be an integer between 1 and 1000, got 0".into()).body();
        assert_eq!(
            body,
            json!({
                "status": "error",
                "error_code": 422,
                "message": "limit must be an integer between 1 and 1000, got 0",
            })
        );
    }

    #[test]
    fn rate_limited_body_carries_retry_after() {
        let body = ApiError::RateLimited {
            message: "slow down".into(),
            wait: Wait(Duration::from_millis(2_500)),
        }
        .body();
        assert_eq!(body["error_code"], 429);
        assert_eq!(body["retry_after"], 3);
    }
}
