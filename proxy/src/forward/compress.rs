//! gzip of text responses, as the original router does (contract.md, 4): for clients that
//! accept it, on text types of 2 KiB or more (or of unknown length), never on routes that
//! opt out (speedtest), never on WebSocket traffic.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

/// Smallest response compressed, when its length is known.
pub const MIN_LENGTH: u64 = 2048;

const TEXT_TYPES: [&str; 11] = [
    "text/html",
    "text/plain",
    "text/css",
    "text/xml",
    "text/javascript",
    "application/javascript",
    "application/x-javascript",
    "application/json",
    "application/xml",
    "application/xhtml+xml",
    "image/svg+xml",
];

/// Whether the request's `Accept-Encoding` admits gzip (and does not refuse it with `q=0`).
pub fn accepts_gzip(request: &HeaderMap) -> bool {
    request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim().strip_prefix("q=").is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

/// Whether this response should be gzipped for a client that accepts gzip.
pub fn worth_compressing(method: &Method, status: StatusCode, response: &HeaderMap) -> bool {
    if method == Method::HEAD || status != StatusCode::OK || response.contains_key(header::CONTENT_ENCODING) {
        return false;
    }
    let no_transform = response
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("no-transform"));
    let length =
        response.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    let text = response
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .is_some_and(|mime| TEXT_TYPES.contains(&mime.as_str()));
    text && !no_transform && length.is_none_or(|len| len >= MIN_LENGTH)
}

/// Rewrites the headers of a response that will be gzipped.
pub fn mark_compressed(response: &mut HeaderMap) {
    response.remove(header::CONTENT_LENGTH);
    response.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    response.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    // The bytes change, so a strong validator no longer holds.
    if let Some(etag) = response.get(header::ETAG).and_then(|v| v.to_str().ok())
        && !etag.starts_with("W/")
        && let Ok(weak) = HeaderValue::from_str(&format!("W/{etag}"))
    {
        response.insert(header::ETAG, weak);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn negotiation() {
        assert!(accepts_gzip(&headers(&[("accept-encoding", "gzip, deflate, br")])));
        assert!(accepts_gzip(&headers(&[("accept-encoding", "br;q=1.0, gzip;q=0.5")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "gzip;q=0")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "br")])));
        assert!(!accepts_gzip(&headers(&[])));
    }

    #[test]
    fn what_is_worth_it() {
        let ok = StatusCode::OK;
        let json_big =
            headers(&[("content-type", "application/json; charset=utf-8"), ("content-length", "4096")]);
        assert!(worth_compressing(&Method::GET, ok, &json_big));
        assert!(!worth_compressing(&Method::HEAD, ok, &json_big));
        assert!(!worth_compressing(&Method::GET, StatusCode::PARTIAL_CONTENT, &json_big));
        let small = headers(&[("content-type", "text/plain"), ("content-length", "100")]);
        assert!(!worth_compressing(&Method::GET, ok, &small));
        let chunked = headers(&[("content-type", "text/css")]);
        assert!(worth_compressing(&Method::GET, ok, &chunked));
        let png = headers(&[("content-type", "image/png"), ("content-length", "40960")]);
        assert!(!worth_compressing(&Method::GET, ok, &png));
        let encoded = headers(&[("content-type", "text/html"), ("content-encoding", "br")]);
        assert!(!worth_compressing(&Method::GET, ok, &encoded));
        let no_transform =
            headers(&[("content-type", "text/html"), ("cache-control", "public, no-transform")]);
        assert!(!worth_compressing(&Method::GET, ok, &no_transform));
    }
}
