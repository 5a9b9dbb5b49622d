//! Request hygiene: what a hardened proxy refuses before routing.
//!
//! hyper already refuses what cannot be parsed safely (two different `Content-Length`s, a
//! `Transfer-Encoding` whose last coding is not `chunked`, obsolete line folding, control
//! characters, heads over the size and count limits of [`crate::settings::ClientLimits`]). What
//! parses but must not be routed is refused here, before a route, a token or an upstream is
//! looked at:
//!
//! | request | answer |
//! |---|---|
//! | `CONNECT`, `TRACE` | 405: this is no forward proxy, and TRACE echoes credentials |
//! | path and query over the URI limit | 414 |
//! | a path that is not origin-form (`*`, empty) | 400 |
//! | a dot-segment (`.`, `..`, `%2e%2e`, ...) | 400: an upstream that normalises would see another path |
//! | an encoded `/`, `\` or control character (`%2f`, `%5c`, `%00`) in the path | 400 |
//! | a raw `\` in the path | 400 |
//! | a path whose decoded, slash-merged form picks another route (`//API/x`, `/%41PI/x`) | 400 |
//! | `Transfer-Encoding` other than one `chunked` | 501 |
//! | no `Host` on HTTP/1.1, or two `Host` lines | 400 (RFC 9112, 3.2) |
//!
//! Everything else is routed by its raw path, which is what the upstream receives: routing and
//! the upstream agree on which path was asked for. `Host` plays no part in routing, and the
//! authority of an absolute-form request is never connected to.

use std::sync::Arc;

use http::{HeaderMap, Method, Request, Version, header};

use crate::route_table::RouteTable;

/// Why a request is refused before routing. [`crate::outcome::Outcome`] knows each one's
/// status, label and client line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("method not allowed")]
    Method,
    #[error("URI too long")]
    UriTooLong,
    #[error("the path must start with /")]
    PathForm,
    #[error("dot-segments are not allowed in the path")]
    DotSegment,
    #[error("encoded slash, backslash or control character in the path")]
    EncodedSeparator,
    #[error("backslash in the path")]
    Backslash,
    #[error("the path routes differently once decoded and its slashes merged")]
    AmbiguousPath,
    #[error("only one Transfer-Encoding: chunked is supported")]
    TransferEncoding,
    #[error("HTTP/1.1 needs exactly one Host header")]
    Host,
}

impl Violation {
    /// The `reason` label of logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Method => "method",
            Self::UriTooLong => "uri_too_long",
            Self::PathForm => "path_form",
            Self::DotSegment => "dot_segment",
            Self::EncodedSeparator => "encoded_separator",
            Self::Backslash => "backslash",
            Self::AmbiguousPath => "ambiguous_path",
            Self::TransferEncoding => "transfer_encoding",
            Self::Host => "host",
        }
    }
}

/// The refusal for `request`, if it must not be routed.
/// `max_uri_bytes` bounds the path and query.
pub fn check<B>(request: &Request<B>, routes: &RouteTable, max_uri_bytes: usize) -> Option<Violation> {
    if request.method() == Method::CONNECT || request.method() == Method::TRACE {
        return Some(Violation::Method);
    }
    let uri = request.uri();
    let uri_len = uri.path().len() + uri.query().map_or(0, |q| q.len() + 1);
    if uri_len > max_uri_bytes {
        return Some(Violation::UriTooLong);
    }
    if let Some(refusal) = check_headers(request.version(), request.headers()) {
        return Some(refusal);
    }
    check_path(uri.path(), routes)
}

fn check_headers(version: Version, headers: &HeaderMap) -> Option<Violation> {
    let mut codings = headers.get_all(header::TRANSFER_ENCODING).iter();
    if let Some(first) = codings.next()
        && (codings.next().is_some() || !first.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked"))
    {
        return Some(Violation::TransferEncoding);
    }
    if version == Version::HTTP_11 {
        let mut hosts = headers.get_all(header::HOST).iter();
        if hosts.next().is_none() || hosts.next().is_some() {
            return Some(Violation::Host);
        }
    }
    None
}

/// The refusal for a raw request path, if any.
pub fn check_path(path: &str, routes: &RouteTable) -> Option<Violation> {
    if !path.starts_with('/') {
        return Some(Violation::PathForm);
    }
    if plainly_clean(path.as_bytes()) {
        return None;
    }
    check_path_fully(path, routes)
}

/// [`check_path`] for a path that starts with `/`, without the one-pass shortcut.
fn check_path_fully(path: &str, routes: &RouteTable) -> Option<Violation> {
    if path.contains('\\') {
        return Some(Violation::Backslash);
    }
    let escaped = path.contains('%');
    if escaped && has_encoded_separator(path) {
        return Some(Violation::EncodedSeparator);
    }
    if path.split('/').any(|segment| is_dot_segment(segment, escaped)) {
        return Some(Violation::DotSegment);
    }
    if (escaped || path.contains("//")) && !same_route(path, &normalise(path), routes) {
        return Some(Violation::AmbiguousPath);
    }
    None
}

/// Nothing below can refuse a path without a backslash, a `%` escape, an empty segment or a
/// segment starting with a dot: one pass finds that out for most paths, where the checks
/// below would walk it four times.
fn plainly_clean(path: &[u8]) -> bool {
    let mut previous = 0;
    for &byte in path {
        if byte == b'\\' || byte == b'%' || (previous == b'/' && (byte == b'/' || byte == b'.')) {
            return false;
        }
        previous = byte;
    }
    true
}

/// `%2f`, `%5c`, or an encoded control character (`%00`-`%1f`, `%7f`), any case.
fn has_encoded_separator(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.windows(3).any(|w| {
        w[0] == b'%'
            && match (hex(w[1]), hex(w[2])) {
                (Some(hi), Some(lo)) => {
                    let byte = hi << 4 | lo;
                    byte == b'/' || byte == b'\\' || byte < 0x20 || byte == 0x7f
                }
                _ => false,
            }
    })
}

/// `.` or `..`, written plainly or with `%2e`.
fn is_dot_segment(segment: &str, escaped: bool) -> bool {
    if segment == "." || segment == ".." {
        return true;
    }
    if !escaped || segment.len() > 6 {
        return false;
    }
    let decoded = percent_decode(segment);
    decoded == b"." || decoded == b".."
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Every valid `%XX` decoded; an invalid one is kept as it is (as nginx does not decode it).
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) =
                (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex))
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The path as an upstream that normalises (nginx: decode, then merge slashes) would match it.
fn normalise(path: &str) -> String {
    let decoded = String::from_utf8_lossy(&percent_decode(path)).into_owned();
    let mut out = String::with_capacity(decoded.len());
    for c in decoded.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    out
}

fn same_route(raw: &str, normalised: &str, routes: &RouteTable) -> bool {
    match (routes.lookup(raw), routes.lookup(normalised)) {
        (Some((_, a)), Some((_, b))) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route_table::tests::route;

    fn table() -> RouteTable {
        let pyos = route("pyos");
        RouteTable::new([
            ("/spawner".to_owned(), route("spawner")),
            ("/filer".to_owned(), route("filer")),
            ("/API".to_owned(), Arc::clone(&pyos)),
            ("/status".to_owned(), pyos),
            ("/".to_owned(), route("website")),
        ])
    }

    const MAX_URI: usize = 8 * 1024;

    fn reason(path: &str) -> Option<&'static str> {
        check_path(path, &table()).map(Violation::reason)
    }

    #[test]
    fn plain_paths_pass() {
        for path in [
            "/",
            "/spawner",
            "/spawner/x/y",
            "/filer/container/eyJ.a.b/22/x",
            "/spawner//x",
            "/a%20b",
            "/API/x%41",
            "/...",
            "/.well-known/acme-challenge/abc",
            "/x/.hidden",
            "/100%",
            "/%zz",
        ] {
            assert_eq!(reason(path), None, "{path}");
        }
    }

    #[test]
    fn tricks_are_refused() {
        for (path, why) in [
            ("/spawner/../API/x", "dot_segment"),
            ("/spawner/./x", "dot_segment"),
            ("/spawner/..", "dot_segment"),
            ("/spawner/%2e%2e/API", "dot_segment"),
            ("/spawner/.%2E/API", "dot_segment"),
            ("/spawner/%2e/x", "dot_segment"),
            ("/spawner%2f..%2fAPI", "encoded_separator"),
            ("/spawner%2F", "encoded_separator"),
            ("/x%5c..%5cAPI", "encoded_separator"),
            ("/x%00", "encoded_separator"),
            ("/x%0a", "encoded_separator"),
            ("/x\\..\\API", "backslash"),
            ("//API/x", "ambiguous_path"),
            ("/%41PI/x", "ambiguous_path"),
            ("/%73pawner", "ambiguous_path"),
            ("*", "path_form"),
            ("", "path_form"),
        ] {
            assert_eq!(reason(path), Some(why), "{path}");
        }
    }

    #[test]
    fn the_one_pass_never_clears_what_the_checks_refuse() {
        let parts =
            ["", ".", "..", "%2e", "%2E", "a", "%2f", "\\", "x.y", ".h", "%41", "API", "spawner", "%"];
        let routes = table();
        let mut cleared = 0;
        for a in parts {
            for b in parts {
                for c in parts {
                    let path = format!("/{a}/{b}{c}");
                    if plainly_clean(path.as_bytes()) {
                        cleared += 1;
                        assert_eq!(check_path_fully(&path, &routes), None, "{path}");
                    }
                }
            }
        }
        assert!(cleared > 100, "{cleared}");
    }

    #[test]
    fn same_route_either_way_passes() {
        // Both forms pick pyos; the raw path goes upstream.
        assert_eq!(reason("/API//x"), None);
        assert_eq!(reason("/API/%78"), None);
    }

    #[test]
    fn methods_lengths_and_headers() {
        let routes = table();
        let req = |method: &str, uri: &str, headers: &[(&str, &str)]| {
            let mut builder = Request::builder().method(method).uri(uri);
            for (k, v) in headers {
                builder = builder.header(*k, *v);
            }
            builder.body(()).unwrap()
        };
        let host = [("host", "d")];
        assert_eq!(check(&req("CONNECT", "d:22", &host), &routes, MAX_URI), Some(Violation::Method));
        assert_eq!(check(&req("TRACE", "/", &host), &routes, MAX_URI), Some(Violation::Method));
        assert_eq!(check(&req("GET", "/spawner", &host), &routes, MAX_URI), None);
        assert_eq!(check(&req("GET", "/spawner", &[]), &routes, MAX_URI), Some(Violation::Host));
        assert_eq!(
            check(&req("GET", "/spawner", &[("host", "a"), ("host", "b")]), &routes, MAX_URI),
            Some(Violation::Host)
        );
        let long = format!("/spawner?{}", "a".repeat(MAX_URI));
        assert_eq!(check(&req("GET", &long, &host), &routes, MAX_URI), Some(Violation::UriTooLong));
        let limited = req("GET", "/spawner?abc", &host);
        assert_eq!(check(&limited, &routes, 8), Some(Violation::UriTooLong));
        for te in ["gzip, chunked", "chunked, chunked", "identity"] {
            let r = req("POST", "/spawner", &[("host", "d"), ("transfer-encoding", te)]);
            assert_eq!(check(&r, &routes, MAX_URI), Some(Violation::TransferEncoding), "{te}");
        }
        let r = req("POST", "/spawner", &[("host", "d"), ("transfer-encoding", "Chunked")]);
        assert_eq!(check(&r, &routes, MAX_URI), None);
        let r = req(
            "POST",
            "/spawner",
            &[("host", "d"), ("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")],
        );
        assert_eq!(check(&r, &routes, MAX_URI), Some(Violation::TransferEncoding));
        let mut h2 = req("GET", "https://d/spawner", &[]);
        *h2.version_mut() = Version::HTTP_2;
        assert_eq!(check(&h2, &routes, MAX_URI), None, "HTTP/2 carries :authority, not Host");
    }
}
