//! The upstream's always-HTTP-200 envelope: find the top-level `status` / `error_code` without
//! building a JSON tree, and decide the HTTP status the client should see.

use std::collections::BTreeMap;

use http::StatusCode;
use serde::Deserialize;
use serde::de::IgnoredAny;

/// What the body says about the outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Not a JSON object, or no usable top-level `status`: the upstream status stands.
    NotEnvelope,
    /// `status` is `success` / `ok` (any letter case) or `true`.
    Success,
    /// Any other `status`. `code` is a usable integer `error_code`; `retry_after` a
    /// non-negative `retry_after` body field in seconds, when present.
    Error {
        code: Option<i64>,
        retry_after: Option<f64>,
    },
}

/// A scalar JSON value; anything else is skipped without being built.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Other(IgnoredAny),
}

impl Scalar {
    /// A number, or a string holding one (the docs do not say which the upstream sends).
    fn as_number(&self) -> Option<f64> {
        match self {
            Scalar::Int(i) => Some(*i as f64),
            Scalar::Float(f) => Some(*f),
            Scalar::Str(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
        .filter(|n| n.is_finite())
    }

    fn as_integer(&self) -> Option<i64> {
        self.as_number()
            .filter(|n| n.fract() == 0.0 && n.abs() < 1e15)
            .map(|n| n as i64)
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    status: Option<Scalar>,
    #[serde(default)]
    error_code: Option<Scalar>,
    #[serde(default)]
    retry_after: Option<Scalar>,
}

/// Reads the outcome from a (decoded) body. Cheap to call on anything: a body that does not
/// start with `{` is rejected before any parsing.
pub fn parse(body: &[u8]) -> Outcome {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Outcome::NotEnvelope;
    }
    let Ok(env) = serde_json::from_slice::<Envelope>(body) else {
        return Outcome::NotEnvelope;
    };
    let success = match env.status {
        None | Some(Scalar::Other(_)) => return Outcome::NotEnvelope,
        Some(Scalar::Str(s)) => {
            let s = s.trim();
            s.eq_ignore_ascii_case("success") || s.eq_ignore_ascii_case("ok")
        }
        Some(Scalar::Bool(b)) => b,
        Some(Scalar::Int(_) | Scalar::Float(_)) => false,
    };
    if success {
        return Outcome::Success;
    }
    Outcome::Error {
        code: env.error_code.as_ref().and_then(Scalar::as_integer),
        retry_after: env
            .retry_after
            .as_ref()
            .and_then(Scalar::as_number)
            .filter(|n| *n >= 0.0),
    }
}

/// The HTTP status for an envelope error: the `[status_map]` override, else the `error_code`
/// when it is in 400..=599, else 502 (an error we cannot classify is the upstream's failure).
pub fn error_status(code: Option<i64>, status_map: &BTreeMap<u16, StatusCode>) -> StatusCode {
    let Some(code) = code else {
        return StatusCode::BAD_GATEWAY;
    };
    if let Some(mapped) = u16::try_from(code).ok().and_then(|c| status_map.get(&c)) {
        return *mapped;
    }
    u16::try_from(code)
        .ok()
        .filter(|c| (400..=599).contains(c))
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: Option<i64>) -> Outcome {
        Outcome::Error {
            code,
            retry_after: None,
        }
    }

    #[test]
    fn statuses_in_any_case_and_codes_as_numbers_or_strings() {
        assert_eq!(
            parse(br#"{"status":"success","data":[]}"#),
            Outcome::Success
        );
        assert_eq!(parse(br#" {"data":1,"status":"OK"}"#), Outcome::Success);
        assert_eq!(parse(br#"{"status":"Success"}"#), Outcome::Success);
        assert_eq!(parse(br#"{"status":true}"#), Outcome::Success);
        assert_eq!(
            parse(br#"{"status":"error","error_code":422}"#),
            err(Some(422))
        );
        assert_eq!(
            parse(br#"{"status":"ERROR","error_code":"429"}"#),
            err(Some(429))
        );
        assert_eq!(
            parse(br#"{"status":"fail","error_code":" 404 "}"#),
            err(Some(404))
        );
        assert_eq!(
            parse(br#"{"status":"error","error_code":422.0}"#),
            err(Some(422))
        );
        assert_eq!(
            parse(br#"{"status":"error","error_code":"abc"}"#),
            err(None)
        );
        assert_eq!(parse(br#"{"status":"error"}"#), err(None));
        assert_eq!(
            parse(br#"{"status":false,"error_code":{"x":1}}"#),
            err(None)
        );
        assert_eq!(
            parse(br#"{"status":"error","error_code":429,"retry_after":"7"}"#),
            Outcome::Error {
                code: Some(429),
                retry_after: Some(7.0)
            }
        );
    }

    #[test]
    fn non_envelopes_are_left_alone() {
        for body in [
            &b""[..],
            b"[1,2]",
            b"not json",
            b"{\"data\":1}",
            b"{\"status\":null}",
            b"{\"status\":{\"nested\":1}}",
            b"{\"status\":\"error\"",
            b"{\"status\":\"ok\"} trailing",
            b"{\"status\":\"ok\",\"status\":\"error\"}",
        ] {
            assert_eq!(
                parse(body),
                Outcome::NotEnvelope,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn nested_status_fields_do_not_count() {
        let body = br#"{"data":[{"status":"active","error_code":1}],"status":"success"}"#;
        assert_eq!(parse(body), Outcome::Success);
        let body = br#"{"data":{"status":"success"},"status":"error","error_code":404}"#;
        assert_eq!(parse(body), err(Some(404)));
    }

    #[test]
    fn mapping() {
        let mut map = BTreeMap::new();
        map.insert(401, StatusCode::BAD_GATEWAY);
        assert_eq!(
            error_status(Some(422), &map),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(error_status(Some(401), &map), StatusCode::BAD_GATEWAY);
        assert_eq!(
            error_status(Some(401), &BTreeMap::new()),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(error_status(Some(200), &map), StatusCode::BAD_GATEWAY);
        assert_eq!(error_status(Some(600), &map), StatusCode::BAD_GATEWAY);
        assert_eq!(error_status(Some(-1), &map), StatusCode::BAD_GATEWAY);
        assert_eq!(error_status(None, &map), StatusCode::BAD_GATEWAY);
    }
}
