//! Content codings: what we ask the upstream for, how we read a compressed body to find its
//! envelope, and whether the client can take the upstream's bytes as they are.

use std::io::Read;

use http::HeaderValue;

/// The codings the proxy can decode to inspect the envelope.
const DECODABLE: &[&str] = &["gzip", "x-gzip", "deflate", "br"];

/// The client's `Accept-Encoding` reduced to codings the proxy can decode, so the envelope
/// can always be read. `None` when nothing is left (the upstream then sends identity).
pub fn upstream_accept_encoding(client: Option<&HeaderValue>) -> Option<HeaderValue> {
    let client = client?.to_str().ok()?;
    let kept: Vec<&str> = client
        .split(',')
        .map(str::trim)
        .filter(|item| {
            let coding = item.split(';').next().unwrap_or("").trim();
            DECODABLE.iter().any(|d| coding.eq_ignore_ascii_case(d))
                || coding.eq_ignore_ascii_case("identity")
        })
        .collect();
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_str(&kept.join(", ")).ok()
}

/// True when the client's `Accept-Encoding` allows `coding` (q > 0, by name or `*`). No header
/// means identity only: we never hand a client a coding it did not ask for.
pub fn client_accepts(accept: Option<&HeaderValue>, coding: &str) -> bool {
    let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let coding = if coding.eq_ignore_ascii_case("x-gzip") {
        "gzip"
    } else {
        coding
    };
    let mut wildcard = false;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .filter_map(|q| q.trim().parse::<f32>().ok())
            .next()
            .unwrap_or(1.0);
        let names_it = name.eq_ignore_ascii_case(coding)
            || (coding == "gzip" && name.eq_ignore_ascii_case("x-gzip"));
        if names_it {
            return q > 0.0;
        }
        if name == "*" {
            wildcard = q > 0.0;
        }
    }
    wildcard
}

/// The response's `Content-Encoding` when it is a real coding (not absent, empty or identity).
pub fn content_coding(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"))
}

/// Decodes a body in one content coding, refusing to produce more than `limit` bytes (a small
/// compressed body can expand enormously). `None` for unknown codings, stacked codings, corrupt
/// data or a result over the limit.
pub fn decode(coding: &str, body: &[u8], limit: u64) -> Option<Vec<u8>> {
    let coding = coding.trim().to_ascii_lowercase();
    let reader: Box<dyn Read + '_> = match coding.as_str() {
        "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(body)),
        // "deflate" is zlib-wrapped by the RFC; some servers send raw deflate.
        "deflate" if looks_like_zlib(body) => Box::new(flate2::read::ZlibDecoder::new(body)),
        "deflate" => Box::new(flate2::read::DeflateDecoder::new(body)),
        "br" => Box::new(brotli::Decompressor::new(body, 8192)),
        _ => return None,
    };
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(1 << 20));
    let read = reader.take(limit + 1).read_to_end(&mut out).ok()?;
    (read as u64 <= limit).then_some(out)
}

fn looks_like_zlib(body: &[u8]) -> bool {
    matches!(body, [cmf, flg, ..] if cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn accept_encoding_is_filtered_to_decodable_codings() {
        assert_eq!(
            upstream_accept_encoding(Some(&hv("gzip, deflate, br, zstd"))).unwrap(),
            "gzip, deflate, br"
        );
        assert_eq!(
            upstream_accept_encoding(Some(&hv("zstd;q=1.0, gzip;q=0.5"))).unwrap(),
            "gzip;q=0.5"
        );
        assert!(upstream_accept_encoding(Some(&hv("zstd"))).is_none());
        assert!(upstream_accept_encoding(None).is_none());
    }

    #[test]
    fn client_acceptance() {
        assert!(client_accepts(Some(&hv("gzip, br")), "br"));
        assert!(client_accepts(Some(&hv("x-gzip")), "gzip"));
        assert!(!client_accepts(Some(&hv("gzip;q=0, br")), "gzip"));
        assert!(client_accepts(Some(&hv("*")), "br"));
        assert!(!client_accepts(Some(&hv("*, br;q=0")), "br"));
        assert!(!client_accepts(Some(&hv("identity")), "gzip"));
        assert!(!client_accepts(None, "gzip"));
    }

    #[test]
    fn decodes_gzip_deflate_and_brotli_within_a_limit() {
        let plain = br#"{"status":"error","error_code":429}"#.repeat(10);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decode("gzip", &gz, 10_000).unwrap(), plain);
        assert!(decode("gzip", &gz, 10).is_none(), "over the limit");
        assert!(decode("gzip", b"not gzip", 10_000).is_none());

        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&plain).unwrap();
        assert_eq!(
            decode("deflate", &z.finish().unwrap(), 10_000).unwrap(),
            plain
        );
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(&plain).unwrap();
        assert_eq!(
            decode("deflate", &raw.finish().unwrap(), 10_000).unwrap(),
            plain
        );

        let mut br = Vec::new();
        brotli::CompressorWriter::new(&mut br, 4096, 5, 22)
            .write_all(&plain)
            .unwrap();
        assert_eq!(decode("br", &br, 10_000).unwrap(), plain);
        assert!(decode("zstd", &br, 10_000).is_none());
    }
}
