//! What the upstream sees of the request, and the client of the response (contract.md, 4).

use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Hop-by-hop headers of RFC 9110, 7.6.1: they describe one connection and are never
/// forwarded. `Upgrade` is re-added for a WebSocket tunnel. `Connection` first: see
/// [`strip_hop_by_hop`].
const HOP_BY_HOP: [&HeaderName; 7] = [
    &header::CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &header::TE,
    &header::TRAILER,
    &header::TRANSFER_ENCODING,
    &header::UPGRADE,
];

/// Removes the hop-by-hop headers and every header the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names, comparing without hashing: most messages carry no hop-by-hop
    // header but `Connection: keep-alive`, and each removal is a hash lookup.
    let mut present = [false; HOP_BY_HOP.len()];
    for name in headers.keys() {
        // The names' lengths rule out most headers before any comparison.
        if matches!(name.as_str().len(), 2 | 7 | 10 | 16 | 17)
            && let Some(i) = HOP_BY_HOP.iter().position(|hop| *hop == name)
        {
            present[i] = true;
        }
    }
    if present[0] {
        // Names the `Connection` header lists, other than the hop-by-hop ones removed below
        // (`keep-alive`, `upgrade`): usually none, and then nothing is allocated. The two
        // usual values are let through before any parsing.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter(|v| {
                let v = v.as_bytes();
                !v.eq_ignore_ascii_case(b"keep-alive") && !v.eq_ignore_ascii_case(b"close")
            })
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|name| !HOP_BY_HOP.iter().any(|hop| hop.as_str().eq_ignore_ascii_case(name)))
            .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (name, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, present)| *present) {
        headers.remove(*name);
    }
}

/// A client address as a header value, made once per connection and shared by its requests.
pub fn client_ip_value(peer: SocketAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.ip().to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Prepares a client request's headers for the upstream: hop-by-hop removed, `Host` kept (set
/// from the authority for HTTP/2 clients), `X-Real-IP`, `X-Forwarded-For` (appended),
/// `X-Forwarded-Proto` and `X-Forwarded-Host` set. `upgrade` keeps a WebSocket handshake.
/// `client_ip` is [`client_ip_value`] of the peer. Returns whether the request has a `Host`.
pub fn to_upstream(
    headers: &mut HeaderMap,
    client_ip: &HeaderValue,
    scheme: &'static str,
    authority: Option<&str>,
    upgrade: Option<HeaderValue>,
) -> bool {
    strip_hop_by_hop(headers);
    // Every earlier hop, from every `X-Forwarded-For` line in order, then the client.
    let mut forwarded_for = String::new();
    for previous in headers.get_all(&X_FORWARDED_FOR).iter().filter_map(|v| v.to_str().ok()) {
        let previous = previous.trim();
        if !previous.is_empty() {
            forwarded_for.push_str(previous);
            forwarded_for.push_str(", ");
        }
    }
    let forwarded_for = if forwarded_for.is_empty() {
        Some(client_ip.clone())
    } else {
        forwarded_for.push_str(client_ip.to_str().unwrap_or_default());
        HeaderValue::from_str(&forwarded_for).ok()
    };
    // Room for the four headers added below at once, rather than a growth on one of them.
    headers.reserve(4);
    let mut host = headers.get(header::HOST).cloned();
    if host.is_none()
        && let Some(authority) = authority.and_then(|a| HeaderValue::from_str(a).ok())
    {
        headers.insert(header::HOST, authority.clone());
        host = Some(authority);
    }
    headers.insert(X_REAL_IP.clone(), client_ip.clone());
    if let Some(value) = forwarded_for {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(scheme));
    let has_host = host.is_some();
    match host {
        Some(host) => headers.insert(X_FORWARDED_HOST.clone(), host),
        None => headers.remove(&X_FORWARDED_HOST),
    };
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
    has_host
}

/// Prepares an upstream response's headers for the client: hop-by-hop and `Server` removed,
/// `X-Frame-Options: SAMEORIGIN` unless the upstream set its own.
pub fn to_client(headers: &mut HeaderMap, upgrade: Option<HeaderValue>) {
    strip_hop_by_hop(headers);
    headers.remove(header::SERVER);
    headers.entry(header::X_FRAME_OPTIONS).or_insert(HeaderValue::from_static("SAMEORIGIN"));
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
}

/// The `Upgrade` value of a WebSocket handshake (`Connection: upgrade` + `Upgrade: websocket`).
pub fn websocket_upgrade(headers: &HeaderMap) -> Option<HeaderValue> {
    // Most requests carry no `Upgrade`: one lookup settles them.
    let upgrade = headers.get(header::UPGRADE)?;
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    let is_websocket = upgrade.to_str().is_ok_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    (connection_upgrade && is_websocket).then(|| upgrade.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn request_headers() {
        let mut h = map(&[
            ("host", "desk.example"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "5.6.7.8"),
            ("x-real-ip", "6.6.6.6"),
            ("cookie", "a=b"),
            ("abcauthorization", "Bearer t"),
        ]);
        to_upstream(&mut h, &client_ip_value("10.0.0.9:5555".parse().unwrap()), "https", None, None);
        assert_eq!(h["host"], "desk.example");
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 5.6.7.8, 10.0.0.9");
        assert_eq!(h["x-real-ip"], "10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "desk.example");
        assert_eq!(h["cookie"], "a=b");
        assert_eq!(h["abcauthorization"], "Bearer t");
        for gone in ["connection", "x-private", "keep-alive", "te"] {
            assert!(!h.contains_key(gone), "{gone}");
        }
    }

    #[test]
    fn websocket_handshake_survives() {
        let mut h = map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
        ]);
        let upgrade = websocket_upgrade(&h);
        assert!(upgrade.is_some());
        to_upstream(&mut h, &client_ip_value("127.0.0.1:1".parse().unwrap()), "http", Some("a:1"), upgrade);
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["sec-websocket-key"], "k");
        assert_eq!(h["host"], "a:1");
        assert!(websocket_upgrade(&map(&[("upgrade", "websocket")])).is_none());
        assert!(websocket_upgrade(&map(&[("connection", "upgrade"), ("upgrade", "h2c")])).is_none());
    }

    #[test]
    fn every_hop_by_hop_name_is_found() {
        for hop in HOP_BY_HOP {
            let mut h = map(&[(hop.as_str(), "x"), ("x-kept", "1")]);
            strip_hop_by_hop(&mut h);
            assert!(!h.contains_key(hop), "{hop}");
            assert!(h.contains_key("x-kept"));
        }
    }

    #[test]
    fn response_headers() {
        let mut h =
            map(&[("server", "nginx"), ("transfer-encoding", "chunked"), ("content-type", "text/html")]);
        to_client(&mut h, None);
        assert!(!h.contains_key("server"));
        assert!(!h.contains_key("transfer-encoding"));
        assert_eq!(h["x-frame-options"], "SAMEORIGIN");
        let mut h = map(&[("x-frame-options", "DENY")]);
        to_client(&mut h, None);
        assert_eq!(h["x-frame-options"], "DENY");
    }
}
