//! Which partner-API operation a request is: the v1 `do` value or the v2 path. Rate-limit rules,
//! the retry policy and (later) metric labels all key on it.

use http::Method;

/// The v1 RPC endpoint; the action is its `do` query parameter.
pub const V1_PATH: &str = "/api/marketer";

/// v1 actions that only read, and so may be retried after a server error.
pub const V1_READ_ACTIONS: &[&str] = &["campaigns", "transactions", "subscribers", "ppc_orders"];

/// Every v1 action the docs describe (two of the names are our guesses, see the README).
pub const V1_ACTIONS: &[&str] = &[
    "campaigns",
    "transactions",
    "subscribers",
    "ppc_orders",
    "generate_link",
];

/// The documented v2 paths.
pub const V2_PATHS: &[&str] = &[
    "/api/marketer/revshare/campaigns",
    "/api/marketer/revshare/transactions",
    "/api/marketer/cpl/orders",
    "/api/marketer/cpc/orders",
    "/api/marketer/subscribers",
];

/// The operation a request targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `POST /api/marketer?do=<action>`; `None` when `do` is missing.
    V1(Option<String>),
    /// Any other path, e.g. `/api/marketer/cpc/orders`.
    Path(String),
}

impl Route {
    /// Classifies a request from the path and raw query it will be forwarded with.
    pub fn of(path: &str, query: Option<&str>) -> Self {
        let path = path.trim_end_matches('/');
        if path == V1_PATH {
            let action = query.and_then(|q| query_value(q, "do"));
            Route::V1(action)
        } else {
            Route::Path(path.to_owned())
        }
    }

    /// True when a `[[rate_limit.routes]]` `route` value names this operation: a v1 `do` value
    /// (`generate_link`) or a path (`/api/marketer/cpc/orders`).
    pub fn matches(&self, rule_route: &str) -> bool {
        match self {
            Route::V1(Some(action)) => action == rule_route,
            Route::V1(None) => false,
            Route::Path(p) => p == rule_route.trim_end_matches('/'),
        }
    }

    /// A metric label of bounded cardinality: the known `do` value or v2 path, else `other`.
    pub fn label(&self) -> &'static str {
        let known = match self {
            Route::V1(Some(action)) => V1_ACTIONS.iter().find(|a| **a == action.as_str()),
            Route::V1(None) => None,
            Route::Path(p) => V2_PATHS.iter().find(|k| **k == p.as_str()),
        };
        known.copied().unwrap_or("other")
    }

    /// Whether repeating the request after a server error is safe: GET and HEAD, and the v1
    /// actions that only read (everything but `generate_link`).
    pub fn is_read(&self, method: &Method) -> bool {
        if method == Method::GET || method == Method::HEAD {
            return true;
        }
        matches!(self, Route::V1(Some(a)) if V1_READ_ACTIONS.contains(&a.as_str()))
    }
}

/// The first value of `name` in a form-encoded string (a query or a form body).
pub fn query_value(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The value of a top-level field in a request body (JSON object or form-urlencoded) or in the
/// query, as text: `42` and `"42"` give the same key. Query first, then body.
pub fn field_value(query: Option<&str>, body: &[u8], field: &str) -> Option<String> {
    if let Some(v) = query.and_then(|q| query_value(q, field)) {
        return Some(v);
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).ok()?;
        return match map.get(field)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
    }
    std::str::from_utf8(body)
        .ok()
        .and_then(|b| query_value(b, field))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_v1_and_v2() {
        assert_eq!(
            Route::of("/api/marketer", Some("do=generate_link&x=1")),
            Route::V1(Some("generate_link".into()))
        );
        assert_eq!(Route::of("/api/marketer/", None), Route::V1(None));
        let cpc = Route::of("/api/marketer/cpc/orders", Some("limit=5"));
        assert_eq!(cpc, Route::Path("/api/marketer/cpc/orders".into()));
        assert!(cpc.matches("/api/marketer/cpc/orders/"));
        assert!(Route::V1(Some("generate_link".into())).matches("generate_link"));
        assert!(!Route::V1(None).matches("generate_link"));
        assert_eq!(Route::V1(Some("campaigns".into())).label(), "campaigns");
        assert_eq!(Route::V1(Some("drop table".into())).label(), "other");
        assert_eq!(cpc.label(), "/api/marketer/cpc/orders");
        assert_eq!(Route::Path("/x".into()).label(), "other");
    }

    #[test]
    fn reads_are_get_head_and_v1_read_actions() {
        let post = Method::POST;
        assert!(Route::V1(Some("campaigns".into())).is_read(&post));
        assert!(!Route::V1(Some("generate_link".into())).is_read(&post));
        assert!(!Route::V1(None).is_read(&post));
        assert!(Route::Path("/x".into()).is_read(&Method::GET));
        assert!(!Route::Path("/x".into()).is_read(&Method::DELETE));
    }

    #[test]
    fn field_values_from_json_form_and_query() {
        assert_eq!(
            field_value(None, br#"{"smartlink_id": 42}"#, "smartlink_id").unwrap(),
            "42"
        );
        assert_eq!(
            field_value(None, br#"{"smartlink_id":"42"}"#, "smartlink_id").unwrap(),
            "42"
        );
        assert_eq!(
            field_value(None, b"smartlink_id=42&click_id=a", "smartlink_id").unwrap(),
            "42"
        );
        assert_eq!(
            field_value(Some("smartlink_id=7"), b"{}", "smartlink_id").unwrap(),
            "7"
        );
        assert!(field_value(None, br#"{"other":1}"#, "smartlink_id").is_none());
        assert!(field_value(None, br#"{"smartlink_id":[1]}"#, "smartlink_id").is_none());
        assert!(field_value(None, b"{broken", "smartlink_id").is_none());
    }
}
