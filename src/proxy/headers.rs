//! Header hygiene: hop-by-hop headers never cross the proxy, client credentials and internal
//! addresses never reach the third-party upstream.

use http::header::{self, HeaderMap, HeaderName};

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus the legacy ones proxies traditionally drop.
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

/// Headers a client may send that must not reach the upstream: its own credentials (the proxy
/// sets the key), and anything revealing internal addresses.
const CLIENT_ONLY: &[&str] = &[
    "authorization",
    "api_auth_key",
    "api-auth-key",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-server",
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "via",
];

/// Removes hop-by-hop headers: the fixed list, `Keep-Alive`, any `Proxy-*`, and every header
/// named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(named.iter()) {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    let proxy_named: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy_named {
        headers.remove(name);
    }
}

/// Prepares the client's headers for the upstream: hop-by-hop and client-only headers go, as do
/// `Host` (the upstream's is used) and `Content-Length` (recomputed from the buffered body).
pub fn sanitize_request(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
    headers.remove(header::HOST);
    headers.remove(header::CONTENT_LENGTH);
    for name in CLIENT_ONLY {
        headers.remove(*name);
    }
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
}
