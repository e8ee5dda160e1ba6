//! Header hygiene: hop-by-hop headers never cross the proxy, client credentials and internal
//! addresses never reach the third-party upstream.

use http::header::{self, HeaderMap, HeaderName};

/// Hop-by-hop headers (RFC 9110 §7.6.1), the legacy `Keep-Alive`, and every `Proxy-*` header.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "te" | "trailer" | "transfer-encoding" | "upgrade"
    ) || name.as_str().starts_with("proxy-")
}

/// Headers a client may send that must not reach the upstream: its own credentials (the proxy
/// sets the key), anything revealing internal addresses, `Host` (the upstream's is used) and
/// `Content-Length` (recomputed from the buffered body).
fn is_client_only(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host"
            | "content-length"
            | "authorization"
            | "api_auth_key"
            | "api-auth-key"
            | "x-forwarded-for"
            | "x-forwarded-host"
            | "x-forwarded-proto"
            | "x-forwarded-port"
            | "x-forwarded-server"
            | "forwarded"
            | "x-real-ip"
            | "x-client-ip"
            | "true-client-ip"
            | "via"
    )
}

/// Removes every header for which `drop` says so, plus the headers named in `Connection`, in
/// one pass over the names present (usually a handful, most of them kept).
fn retain(headers: &mut HeaderMap, drop: impl Fn(&HeaderName) -> bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| drop(k) || named.contains(k))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// Removes hop-by-hop headers: the fixed list, `Keep-Alive`, any `Proxy-*`, and every header
/// named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    retain(headers, is_hop_by_hop);
}

/// Prepares the client's headers for the upstream: hop-by-hop and client-only headers go.
pub fn sanitize_request(headers: &mut HeaderMap) {
    retain(headers, |name| is_hop_by_hop(name) || is_client_only(name));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_hop_by_hop_and_client_only_headers() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-custom-hop"),
            ("keep-alive", "timeout=5"),
            ("x-custom-hop", "1"),
            ("te", "trailers"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authorization", "Basic x"),
            ("authorization", "Bearer t"),
            ("api_auth_key", "k"),
            ("x-forwarded-for", "10.0.0.1"),
            ("forwarded", "for=10.0.0.1"),
            ("host", "proxy.local"),
            ("content-length", "3"),
            ("content-type", "application/json"),
            ("x-keep-me", "yes"),
            ("accept", "*/*"),
        ] {
            h.append(k, v.parse().unwrap());
        }
        sanitize_request(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["accept", "content-type", "x-keep-me"]);
    }

    #[test]
    fn responses_keep_end_to_end_headers() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "close, x-hop"),
            ("x-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("proxy-authenticate", "Basic"),
            ("content-length", "12"),
            ("content-encoding", "gzip"),
            ("retry-after", "5"),
        ] {
            h.append(k, v.parse().unwrap());
        }
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["content-encoding", "content-length", "retry-after"]);
    }
}
