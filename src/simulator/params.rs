//! Request parameters: decoding the query string and JSON or form bodies into one map, and the
//! typed getters that turn bad values into 422 messages saying what was wrong.

use std::collections::HashMap;

use axum::http::{HeaderMap, header};
use serde_json::Value;

use super::envelope::ApiError;

/// Largest body the simulator reads; anything bigger is answered 422.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// Default and bounds of `limit` (documented for v2, applied to v1 as well).
const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: i64 = 1000;

/// Decoded parameters by name. Query and form values are strings; JSON values keep their type.
///
/// An empty string or JSON `null` counts as "not given", because form clients commonly send
/// every field with empty values for the ones they do not use.
#[derive(Debug, Default, Clone)]
pub(crate) struct Params(HashMap<String, Value>);

/// An `offset`/`limit` window, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Page {
    pub offset: u64,
    pub limit: u64,
}

impl Page {
    /// `offset` as a `usize` for `Iterator::skip` (saturating: a huge offset is just an empty page).
    pub(crate) fn skip(self) -> usize {
        usize::try_from(self.offset).unwrap_or(usize::MAX)
    }

    /// `limit` as a `usize` for `Iterator::take` (at most 1000, so this never saturates).
    pub(crate) fn take(self) -> usize {
        usize::try_from(self.limit).unwrap_or(usize::MAX)
    }
}

impl Params {
    /// Parses a URL query string (`a=1&b=x`); later duplicates win.
    pub(crate) fn from_query(query: Option<&str>) -> Result<Self, ApiError> {
        match query {
            None => Ok(Self::default()),
            Some(q) => parse_urlencoded(q.as_bytes())
                .map_err(|why| ApiError::Invalid(format!("malformed query string: {why}"))),
        }
    }

    /// Parses a request body as its `Content-Type` declares: JSON (an object) or
    /// `application/x-www-form-urlencoded`. An empty body means no parameters, whatever the type.
    pub(crate) fn from_body(headers: &HeaderMap, body: &[u8]) -> Result<Self, ApiError> {
        if body.trim_ascii().is_empty() {
            return Ok(Self::default());
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let mime = content_type
            .as_deref()
            .and_then(|ct| ct.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase());
        match mime.as_deref() {
            Some("application/json") => match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(map)) => Ok(Self(map.into_iter().collect())),
                Ok(other) => Err(malformed(format!(
                    "expected a JSON object, got {}",
                    json_kind(&other)
                ))),
                Err(e) => Err(malformed(format!("invalid JSON ({e})"))),
            },
            Some("application/x-www-form-urlencoded") => {
                parse_urlencoded(body).map_err(|why| malformed(why.to_owned()))
            }
            _ => Err(malformed(format!(
                "Content-Type {} is not supported; send application/json or \
                 application/x-www-form-urlencoded",
                content_type.map_or_else(|| "(none)".to_owned(), |ct| format!("{ct:?}"))
            ))),
        }
    }

    /// The value of `name`, treating `null` and `""` as absent.
    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        match self.0.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(v) => Some(v),
        }
    }

    /// Whether `name` is given (see [`Params::get`]).
    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Copies `names` from `other` where this map does not already have them (query wins).
    pub(crate) fn fill_from(&mut self, other: &Params, names: &[&str]) {
        for name in names {
            if !self.has(name) {
                if let Some(v) = other.get(name) {
                    self.0.insert((*name).to_owned(), v.clone());
                }
            }
        }
    }

    /// An optional integer: a JSON integer or a string of decimal digits.
    pub(crate) fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => as_int(v).map(Some).ok_or_else(|| {
                ApiError::Invalid(format!("{name} must be an integer, got {}", show(v)))
            }),
        }
    }

    /// An optional string. JSON numbers or other types are refused rather than guessed at.
    pub(crate) fn string(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(ApiError::Invalid(format!(
                "{name} must be a string, got {}",
                show(v)
            ))),
        }
    }

    /// An optional string that must be one of `allowed`.
    pub(crate) fn choice<'a>(
        &self,
        name: &str,
        allowed: &[&'a str],
    ) -> Result<Option<&'a str>, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let found = v
            .as_str()
            .and_then(|s| allowed.iter().copied().find(|a| *a == s));
        found.map(Some).ok_or_else(|| {
            ApiError::Invalid(format!(
                "{name} must be one of {}, got {}",
                allowed.join(", "),
                show(v)
            ))
        })
    }

    /// `offset` (>= 0, default 0) and `limit` (1..=1000, default 50).
    pub(crate) fn page(&self) -> Result<Page, ApiError> {
        let limit = match self.get("limit") {
            None => DEFAULT_LIMIT,
            Some(v) => as_int(v)
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| {
                    ApiError::Invalid(format!(
                        "limit must be an integer between 1 and {MAX_LIMIT}, got {}",
                        show(v)
                    ))
                })?,
        };
        let offset = match self.get("offset") {
            None => 0,
            Some(v) => as_int(v)
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| {
                    ApiError::Invalid(format!(
                        "offset must be a non-negative integer, got {}",
                        show(v)
                    ))
                })?,
        };
        Ok(Page { offset, limit })
    }
}

fn malformed(why: String) -> ApiError {
    ApiError::Invalid(format!("malformed body: {why}"))
}

/// An integer from a JSON integer or a decimal string (optional sign, no spaces, no fraction).
fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A short rendering of a client value for an error message: numbers (and numeric strings)
/// bare, other strings quoted, everything cut to a readable length.
fn show(v: &Value) -> String {
    const MAX_CHARS: usize = 40;
    let text = match v {
        Value::String(s) if s.parse::<f64>().is_ok() => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > MAX_CHARS {
        let cut: String = text.chars().take(MAX_CHARS).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// Strict `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` must be two hex
/// digits, and the decoded text must be UTF-8. Pairs without `=` get an empty value.
fn parse_urlencoded(input: &[u8]) -> Result<Params, &'static str> {
    let mut map = HashMap::new();
    for pair in input.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (key, value) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        map.insert(percent_decode(key)?, Value::String(percent_decode(value)?));
    }
    Ok(Params(map))
}

fn percent_decode(input: &[u8]) -> Result<String, &'static str> {
    let mut out = Vec::with_capacity(input.len());
    let mut bytes = input.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.next().and_then(|c| hex_value(*c));
                let lo = bytes.next().and_then(|c| hex_value(*c));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err("bad percent-escape (expected %XX)"),
                }
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).map_err(|_| "not valid UTF-8 after decoding")
}

fn hex_value(c: u8) -> Option<u8> {
    char::from(c)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    fn headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(ct) {
            h.insert(header::CONTENT_TYPE, v);
        }
        h
    }

    fn invalid_message(r: Result<impl std::fmt::Debug, ApiError>) -> String {
        match r {
            Err(ApiError::Invalid(m)) => m,
            other => format!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn form_decoding_handles_plus_percent_and_missing_values() {
        let p = parse_urlencoded(b"a=1&b=hello+w%C3%B6rld&c&&d=%2B").map_err(str::to_owned);
        let p = p.unwrap_or_default();
        assert_eq!(p.get("a"), Some(&json!("1")));
        assert_eq!(p.get("b"), Some(&json!("hello wörld")));
        assert_eq!(p.get("c"), None);
        assert_eq!(p.get("d"), Some(&json!("+")));
    }

    #[test]
    fn form_decoding_rejects_bad_escapes_and_bad_utf8() {
        assert!(parse_urlencoded(b"a=%zz").is_err());
        assert!(parse_urlencoded(b"a=%4").is_err());
        assert!(parse_urlencoded(b"a=%ff").is_err());
    }

    #[test]
    fn body_parsing_follows_content_type() {
        let json_body = Params::from_body(
            &headers("application/json; charset=utf-8"),
            br#"{"limit": 5}"#,
        );
        assert_eq!(
            json_body.ok().and_then(|p| p.get("limit").cloned()),
            Some(json!(5))
        );

        let form = Params::from_body(&headers("application/x-www-form-urlencoded"), b"limit=5");
        assert_eq!(
            form.ok().and_then(|p| p.get("limit").cloned()),
            Some(json!("5"))
        );

        let empty = Params::from_body(&HeaderMap::new(), b"");
        assert!(empty.is_ok());

        assert!(
            invalid_message(Params::from_body(&headers("application/json"), b"limit=5"))
                .starts_with("malformed body: invalid JSON")
        );
        assert!(
            invalid_message(Params::from_body(&headers("application/json"), b"[1]"))
                .starts_with("malformed body: expected a JSON object")
        );
        assert!(
            invalid_message(Params::from_body(&headers("text/plain"), b"limit=5"))
                .contains("Content-Type \"text/plain\" is not supported")
        );
        assert!(
            invalid_message(Params::from_body(&HeaderMap::new(), b"{}"))
                .contains("Content-Type (none) is not supported")
        );
    }

    #[test]
    fn page_defaults_and_bounds() {
        let page = |body: Value| -> Result<Page, ApiError> {
            Params::from_body(&headers("application/json"), body.to_string().as_bytes())?.page()
        };
        assert_eq!(
            page(json!({})),
            Ok(Page {
                offset: 0,
                limit: 50
            })
        );
        assert_eq!(
            page(json!({"limit": 1000, "offset": 7})),
            Ok(Page {
                offset: 7,
                limit: 1000
            })
        );
        assert_eq!(
            page(json!({"limit": "3", "offset": "0"})),
            Ok(Page {
                offset: 0,
                limit: 3
            })
        );
        assert_eq!(
            page(json!({"limit": "", "offset": null})),
            Ok(Page {
                offset: 0,
                limit: 50
            })
        );
        assert_eq!(
            invalid_message(page(json!({"limit": 5000}))),
            "limit must be an integer between 1 and 1000, got 5000"
        );
        assert_eq!(
            invalid_message(page(json!({"limit": 0}))),
            "limit must be an integer between 1 and 1000, got 0"
        );
        assert_eq!(
            invalid_message(page(json!({"limit": 2.5}))),
            "limit must be an integer between 1 and 1000, got 2.5"
        );
        assert_eq!(
            invalid_message(page(json!({"limit": "ten"}))),
            "limit must be an integer between 1 and 1000, got \"ten\""
        );
        assert_eq!(
            invalid_message(page(json!({"offset": -1}))),
            "offset must be a non-negative integer, got -1"
        );
    }

    #[test]
    fn typed_getters_explain_bad_values() {
        let p = Params::from_query(Some("id=12x&status=done&name=abc")).unwrap_or_default();
        assert_eq!(
            invalid_message(p.int("id")),
            "id must be an integer, got \"12x\""
        );
        assert_eq!(
            invalid_message(p.choice("status", &["active", "completed"])),
            "status must be one of active, completed, got \"done\""
        );
        assert_eq!(p.string("name").ok().flatten(), Some("abc"));
        assert_eq!(p.int("missing"), Ok(None));
    }

    #[test]
    fn fill_from_lets_the_query_win() {
        let mut query = Params::from_query(Some("limit=5")).unwrap_or_default();
        let body = Params::from_body(
            &headers("application/json"),
            br#"{"limit": 9, "offset": 3, "status": "x"}"#,
        )
        .unwrap_or_default();
        query.fill_from(&body, &["offset", "limit"]);
        assert_eq!(
            query.page(),
            Ok(Page {
                offset: 3,
                limit: 5
            })
        );
        assert!(!query.has("status"));
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "x".repeat(100);
        let shown = show(&Value::String(long));
        assert!(shown.len() < 50 && shown.ends_with("..."));
    }
}
