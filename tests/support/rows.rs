//! The request of a contract row and its check, shared by the endpoint tests.

use http::{Method, StatusCode};

use super::{Desk, Proxy, Req, assert_forwarded, assert_response_headers};

/// The `Host` every row's request carries.
pub const HOST: &str = "desktop.example.com";

pub fn req(method: Method, path: &str) -> Req {
    Req::new(method, path).header("Host", HOST)
}

/// Sends `request`, expects the answer of upstream `name` for `path_upstream`, with the
/// forwarding headers and the response headers right, and nothing reaching another upstream.
pub async fn through(
    desk: &Desk,
    proxy: &Proxy,
    request: Req,
    name: &str,
    path_upstream: &str,
) -> super::Seen {
    let shown = format!("{} {}", request.method, request.path.split('?').next().unwrap_or(""));
    let others_before = desk.hits_except(&[name]);
    let resp = proxy.send(request).await;
    assert_eq!(resp.status, StatusCode::OK, "{shown}: {}", resp.text());
    assert_response_headers(&resp, &shown);
    let seen = resp.seen();
    assert_eq!(seen.upstream, name, "{shown} reached the wrong upstream");
    assert_eq!(seen.port, desk_port(desk, name), "{shown}: port");
    assert_eq!(seen.uri, path_upstream, "{shown}: path sent upstream");
    assert_forwarded(&seen, "http", HOST);
    assert_eq!(desk.hits_except(&[name]), others_before, "{shown}: another upstream was reached");
    seen
}

pub fn desk_port(desk: &Desk, name: &str) -> u16 {
    match name {
        "pod" => desk.pod.port(),
        "victim" => desk.victim.port(),
        other => desk.up(other).port(),
    }
}
