//! Answers the proxy gives itself: `/healthz`, `/readyz`, `/node`, `/metrics` and ACME
//! HTTP-01 challenge files.

use http::{Response, StatusCode, header};

use crate::forward::ResponseBody;
use crate::service::Proxy;
use crate::settings::Settings;

const ACME_PREFIX: &str = "/.well-known/acme-challenge/";

/// The builtin answer for `path`, if it is one of ours.
pub async fn answer(proxy: &Proxy, settings: &Settings, path: &str) -> Option<Response<ResponseBody>> {
    Some(match path {
        "/healthz" => text(StatusCode::OK, "OK\n"),
        "/readyz" if settings.is_loaded() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "settings not loaded\n"),
        "/node" => text(StatusCode::OK, settings.node_name.clone()),
        "/metrics" => {
            let metrics = proxy.metrics();
            metrics
                .cache_entries
                .set(i64::try_from(proxy.resolver().cached_entries().await).unwrap_or(i64::MAX));
            let mut response = text(StatusCode::OK, metrics.encode());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        _ => {
            let name = path.strip_prefix(ACME_PREFIX)?;
            return Some(acme(settings, name).await);
        }
    })
}

/// A challenge file. Token names are base64url (RFC 8555, 8.3): nothing else is looked up, so
/// no path can leave the folder.
async fn acme(settings: &Settings, name: &str) -> Response<ResponseBody> {
    let Some(dir) = settings.acme_dir.as_ref() else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    match tokio::fs::read(dir.join(name)).await {
        Ok(bytes) => text(StatusCode::OK, bytes),
        Err(_) => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// A plain-text response. `no-store`: each answer is the proxy's state now (health, readiness,
/// node, metrics, an error); a cache in front must not answer it later.
pub fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    response.headers_mut().insert(header::X_FRAME_OPTIONS, header::HeaderValue::from_static("SAMEORIGIN"));
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    response
}
