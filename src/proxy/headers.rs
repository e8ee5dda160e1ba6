//! Header hygiene: hop-by-hop headers never cross the proxy, client credentials and internal
//! addresses never reach the third-party upstream.

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

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

/// Moves every header value into one buffer of the request's own, in one allocation.
///
/// hyper hands out header values as slices of the connection's 8 KiB read buffer; a request
/// that holds them while it waits for a rate-limit token keeps that buffer alive, and hyper,
/// which keeps reading the connection to notice a client that gives up, allocates a second one
/// meanwhile. Detached, the waiting request holds a few hundred bytes instead.
pub fn detach(headers: &mut HeaderMap) {
    let mut buf = BytesMut::with_capacity(headers.values().map(HeaderValue::len).sum());
    for value in headers.values() {
        buf.extend_from_slice(value.as_bytes());
    }
    let mut buf = buf.freeze();
    for value in headers.values_mut() {
        let own = buf.split_to(value.len());
        // The bytes were a valid header value a moment ago; keep the old one should that fail.
        if let Ok(mut own) = HeaderValue::from_maybe_shared(own) {
            own.set_sensitive(value.is_sensitive());
            *value = own;
        }
    }
}

/// `body` as bytes of the request's own, for the same reason as [`detach`]: a small body that
/// arrived with the head is a slice of hyper's read buffer. Larger bodies, or ones already
/// assembled from several reads, are left as they are (not copied again).
pub fn detach_body(body: Bytes) -> Bytes {
    if body.is_empty() || body.is_unique() {
        body
    } else {
        Bytes::copy_from_slice(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detached_values_are_equal_and_keep_their_sensitivity() {
        let read_buffer = Bytes::from_static(b"application/json secret 1.0");
        let mut h = HeaderMap::new();
        h.append(
            header::CONTENT_TYPE,
            HeaderValue::from_maybe_shared(read_buffer.slice(0..16)).unwrap(),
        );
        let mut secret = HeaderValue::from_maybe_shared(read_buffer.slice(17..23)).unwrap();
        secret.set_sensitive(true);
        h.append(header::COOKIE, secret);
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        h.append(
            "x-version",
            HeaderValue::from_maybe_shared(read_buffer.slice(24..)).unwrap(),
        );
        let before = h.clone();
        detach(&mut h);
        assert_eq!(h, before);
        let cookies: Vec<_> = h.get_all(header::COOKIE).iter().collect();
        assert_eq!(cookies, ["secret", "b=2"]);
        assert!(cookies[0].is_sensitive() && !cookies[1].is_sensitive());
    }

    #[test]
    fn a_body_shared_with_the_read_buffer_is_copied_once() {
        let read_buffer = Bytes::from(b"GET / HTTP/1.1\r\n\r\n{}".to_vec());
        let shared = read_buffer.slice(18..);
        assert!(!shared.is_unique());
        let own = detach_body(shared.clone());
        assert_eq!(own, shared);
        assert!(own.is_unique());
        let assembled = Bytes::from(b"{\"a\":1}".to_vec());
        let ptr = assembled.as_ptr();
        assert_eq!(detach_body(assembled).as_ptr(), ptr, "not copied again");
    }

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
