//! The request router: a path and query (with a real token spliced in at a chosen place) to a
//! route decision: the guard, the route table, `/container/` parsing, the path sent upstream,
//! token extraction, and the logged (redacted) path. Never a panic; the access log never holds
//! the token; an accepted path never holds a dot-segment.

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use route_proxy::access::redact;
use route_proxy::auth::extract;
use route_proxy::guard;
use route_proxy::route_table::{Rewrite, Backend, parse_container, rewrite_path};

fuzz_target!(|data: &[u8]| {
    let Some((&at, rest)) = data.split_first() else { return };
    let settings = common::settings();
    let token = common::token();
    let text = String::from_utf8_lossy(rest);
    // Splice the token in at a char boundary chosen by the first byte.
    let mut at = usize::from(at) * text.len() / 255;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let target = format!("{}{token}{}", &text[..at], &text[at..]);
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target.as_str(), None),
    };

    let logged = redact(path, query);
    assert!(!logged.contains(token), "the access log would hold the token: {logged}");
    let logged_plain = redact(&text, None);
    let _ = logged_plain;

    let refusal = guard::check_path(path, &settings.routes);
    if refusal.is_none() {
        assert!(path.starts_with('/'));
        assert!(!path.split('/').any(|s| s == "." || s == ".."), "a dot-segment passed: {path}");
    }
    let Some((prefix, route)) = settings.routes.lookup(path) else { return };
    assert!(path.starts_with(prefix) || prefix == "/");
    let upstream_path = rewrite_path(route.rewrite, prefix, path, query);
    assert!(upstream_path.starts_with('/'), "upstream path {upstream_path}");
    if let Backend::Container { .. } = &route.backend
        && let Some(container) = parse_container(&path[prefix.len()..])
    {
        assert!(container.port > 0);
        if let Some(rest) = container.rest {
            let sent = rewrite_path(Rewrite::Keep, "", rest, query);
            assert!(sent.starts_with('/'));
            if let Some(t) = container.token {
                assert!(!t.is_empty() && !t.contains('/'));
            }
        }
    }
    let Ok(uri) = http::Uri::try_from(target.as_str()) else { return };
    let bearer = format!("Bearer {token}");
    let request = http::Request::builder()
        .uri(uri)
        .header("abcauthorization", token)
        .header("authorization", bearer.as_str())
        .body(());
    let Ok(request) = request else { return };
    let (parts, ()) = request.into_parts();
    if let Backend::Desktop { sources, .. } | Backend::Container { sources } = &route.backend {
        let found = extract::extract(&parts, sources, &settings.auth.fallback_sources);
        // `Authorization: Bearer` is every route's fallback.
        assert!(found.is_some(), "a token in the headers was not found");
    }
    let request = http::Request::from_parts(parts, ());
    let _ = guard::check(&request, &settings.routes, settings.limits.client.max_uri_bytes);
});
