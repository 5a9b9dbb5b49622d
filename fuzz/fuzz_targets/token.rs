//! Token extraction, then JWS parsing, verification, decryption and target checks
//! (`resolve_uncached` with the vector keys): never a panic, and whatever is accepted decrypts
//! to a target the policy allows. The input is the token, or a header value or query holding it.

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use route_proxy::auth::{extract, resolve_uncached};
use route_proxy::route_table::TokenSource;

fuzz_target!(|data: &[u8]| {
    let settings = common::settings();
    let now = 1_800_000_000;
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(resolved) = resolve_uncached(text, &settings.auth, now) {
            assert!(resolved.target.allowed_by(&settings.auth.targets));
            assert!(resolved.exp > now);
        }
        let _ = extract::strip_bearer(text);
        let _ = extract::query_param(text, "jwt_token");
    }
    // The same bytes as a header value and as a query, through every source kind.
    let mut request = http::Request::builder();
    if let Ok(value) = http::HeaderValue::from_bytes(data) {
        request = request.header("abcauthorization", value.clone()).header("authorization", value);
    }
    let query: String =
        String::from_utf8_lossy(data).chars().filter(|c| c.is_ascii_graphic() && *c != '#').collect();
    let uri = format!("/terminals/1?{query}");
    let Ok(request) = request.uri(uri.as_str()).body(()) else { return };
    let (parts, ()) = request.into_parts();
    let sources = [
        TokenSource::Header(http::HeaderName::from_static("abcauthorization")),
        TokenSource::Query("jwt_token".into()),
        TokenSource::RawQuery,
    ];
    for i in 0..sources.len() {
        if let Some(token) = extract::extract(&parts, &sources[i..=i], &settings.auth.fallback_sources) {
            assert!(!token.is_empty() && token.trim() == token);
            let _ = resolve_uncached(token, &settings.auth, now);
        }
    }
});
