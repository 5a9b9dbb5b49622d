//! Every way a request ends other than with an upstream's response, and the one place that
//! turns it into the client's answer, a log line and a count
//! (`route_request_failures_total{route,reason,side}`).

use std::fmt::Write as _;

use http::{HeaderValue, Response, StatusCode, Version, header};

use crate::access::AccessRecord;
use crate::auth::AuthError;
use crate::forward::{ExchangeError, ResponseBody};
use crate::guard::Violation;
use crate::metrics::Metrics;

/// Whose doing a request's end is: the client's (its request, its token, its connection), the
/// upstream's (unreachable, silent, broken), or the route's (no route, a policy, the router
/// itself unable to verify).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Upstream,
    Route,
}

impl Side {
    /// The `side` label of logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Upstream => "upstream",
            Self::Route => "route",
        }
    }
}

/// An answer the proxy gives itself on the public listener.
#[derive(Debug)]
pub enum Builtin {
    Healthz,
    /// `/node`: the node name of the settings.
    Node(String),
    /// An ACME HTTP-01 challenge file.
    AcmeFile(bytes::Bytes),
    AcmeNotFound,
}

/// How a request ended, when not with an upstream's response. Sources stay typed up to
/// [`respond`].
#[derive(Debug)]
pub enum Outcome {
    Builtin(Builtin),
    /// Refused before routing ([`crate::guard`]).
    Guard(Violation),
    NoRoute,
    /// A `/container/` path that is neither `/<token>/<port>[/<rest>]` nor `/<port>`.
    ContainerPath,
    /// The token is missing or refused, or its target or port is outside the policy.
    Token(AuthError),
    /// The exchange with the upstream failed, or the request body did.
    Exchange(ExchangeError),
}

impl From<Violation> for Outcome {
    fn from(violation: Violation) -> Self {
        Self::Guard(violation)
    }
}

impl From<AuthError> for Outcome {
    fn from(err: AuthError) -> Self {
        Self::Token(err)
    }
}

impl From<ExchangeError> for Outcome {
    fn from(err: ExchangeError) -> Self {
        Self::Exchange(err)
    }
}

impl Outcome {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Builtin(Builtin::AcmeNotFound) | Self::NoRoute | Self::ContainerPath => {
                StatusCode::NOT_FOUND
            }
            Self::Builtin(_) => StatusCode::OK,
            Self::Guard(Violation::Method) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Guard(Violation::UriTooLong) => StatusCode::URI_TOO_LONG,
            Self::Guard(Violation::TransferEncoding) => StatusCode::NOT_IMPLEMENTED,
            Self::Guard(_) => StatusCode::BAD_REQUEST,
            // 503 when the router itself cannot verify (no keys, as the original does when a
            // key cannot be loaded), 403 for a policy refusal, 401 for every fault of the token.
            Self::Token(AuthError::NoKeys | AuthError::Busy | AuthError::Internal) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Token(AuthError::TargetPolicy | AuthError::PortPolicy) => StatusCode::FORBIDDEN,
            Self::Token(_) => StatusCode::UNAUTHORIZED,
            Self::Exchange(err) => match err {
                ExchangeError::Connect(_) | ExchangeError::Upstream(_) | ExchangeError::Path(_) => {
                    StatusCode::BAD_GATEWAY
                }
                ExchangeError::Timeout => StatusCode::GATEWAY_TIMEOUT,
                ExchangeError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                ExchangeError::ClientIdle(_) => StatusCode::REQUEST_TIMEOUT,
                ExchangeError::ClientGone(_) => StatusCode::BAD_REQUEST,
            },
        }
    }

    /// A short stable label for logs and metrics; never any part of a token.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Builtin(Builtin::Healthz) => "healthz",
            Self::Builtin(Builtin::Node(_)) => "node",
            Self::Builtin(Builtin::AcmeFile(_)) => "acme",
            Self::Builtin(Builtin::AcmeNotFound) => "acme_not_found",
            Self::Guard(violation) => violation.reason(),
            Self::NoRoute => "no_route",
            Self::ContainerPath => "container_path",
            Self::Token(err) => err.reason(),
            Self::Exchange(err) => match err {
                ExchangeError::Connect(_) => "connect",
                ExchangeError::Timeout => "upstream_timeout",
                ExchangeError::BodyTooLarge(_) => "body_too_large",
                ExchangeError::ClientIdle(_) => "client_body_idle",
                ExchangeError::ClientGone(_) => "client_gone",
                ExchangeError::Upstream(_) => "upstream",
                ExchangeError::Path(_) => "upstream_path",
            },
        }
    }

    pub fn side(&self) -> Side {
        match self {
            Self::Guard(_) | Self::ContainerPath => Side::Client,
            Self::Builtin(_) | Self::NoRoute => Side::Route,
            Self::Token(
                AuthError::NoKeys
                | AuthError::Busy
                | AuthError::Internal
                | AuthError::TargetPolicy
                | AuthError::PortPolicy,
            ) => Side::Route,
            Self::Token(_) => Side::Client,
            Self::Exchange(
                ExchangeError::BodyTooLarge(_) | ExchangeError::ClientIdle(_) | ExchangeError::ClientGone(_),
            ) => Side::Client,
            Self::Exchange(ExchangeError::Path(_)) => Side::Route,
            Self::Exchange(_) => Side::Upstream,
        }
    }

    /// The body of the answer: the builtin's, or one line saying the status and, when the
    /// client can act on it, why.
    fn body(self, status: StatusCode) -> bytes::Bytes {
        match self {
            Self::Builtin(Builtin::Healthz) => "OK\n".into(),
            Self::Builtin(Builtin::Node(name)) => name.into(),
            Self::Builtin(Builtin::AcmeFile(bytes)) => bytes,
            Self::Builtin(Builtin::AcmeNotFound) => "not found\n".into(),
            Self::Guard(violation) => format!("{status}: {violation}\n").into(),
            Self::NoRoute => format!("{status}: no route\n").into(),
            Self::ContainerPath => {
                format!("{status}: expected /container/<token>/<port>/<path> or /container/<port>\n").into()
            }
            Self::Token(err) => format!("{status}: {}\n", err.message()).into(),
            Self::Exchange(ExchangeError::BodyTooLarge(_)) => "413 request body too large\n".into(),
            Self::Exchange(_) => format!("{status}\n").into(),
        }
    }

    /// The error and its sources on one line, for the log.
    fn describe(&self) -> Option<String> {
        let err: &dyn std::error::Error = match self {
            Self::Builtin(_) | Self::NoRoute | Self::ContainerPath => return None,
            Self::Guard(violation) => violation,
            Self::Token(err) => err,
            Self::Exchange(err) => err,
        };
        let mut text = err.to_string();
        let mut source = err.source();
        while let Some(e) = source {
            let _ = write!(text, ": {e}");
            source = e.source();
        }
        Some(text)
    }
}

/// The one responder: `outcome` as the client's answer, logged and counted under the route,
/// path and peer of `record`. `version` is the request's.
pub(crate) fn respond(
    outcome: Outcome,
    version: Version,
    record: &AccessRecord,
    metrics: &Metrics,
) -> Response<ResponseBody> {
    let status = outcome.status();
    let (reason, side) = (outcome.reason(), outcome.side());
    if status.is_client_error() || status.is_server_error() {
        metrics.record_failure(&record.route, reason, side.label());
        let error = outcome.describe();
        // Requests refused before routing are what scanners send: not worth a warning each.
        if matches!(outcome, Outcome::Guard(_)) {
            tracing::debug!(
                reason, side = side.label(), status = status.as_u16(), route = %record.route,
                path = %record.path(), peer = %record.peer, error = error.as_deref(), "request failed"
            );
        } else {
            tracing::warn!(
                reason, side = side.label(), status = status.as_u16(), route = %record.route,
                path = %record.path(), peer = %record.peer, upstream = %record.upstream(), error = error.as_deref(),
                "request failed"
            );
        }
    }
    let guard = match &outcome {
        Outcome::Guard(violation) => Some(*violation),
        _ => None,
    };
    // RFC 9110, 11.6.1: a 401 names the scheme it wants; RFC 6750's bearer token, with
    // `invalid_token` when one came and was refused.
    let challenge = match &outcome {
        Outcome::Token(AuthError::Missing) => "Bearer realm=\"route\"",
        _ => "Bearer realm=\"route\", error=\"invalid_token\"",
    };
    let mut response = text(status, outcome.body(status));
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    }
    if let Some(violation) = guard {
        // What a client sent after a request refused here is not worth parsing.
        if version < Version::HTTP_2 {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if violation == Violation::Method {
            response.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
            );
        }
    }
    response
}

/// A plain-text response. `no-store`: each answer is the proxy's state now (health, readiness,
/// node, metrics, an error); a cache in front must not answer it later.
pub fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response.headers_mut().insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("SAMEORIGIN"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every outcome the request path can end with keeps the status the contract gives it.
    #[test]
    fn statuses_reasons_and_sides() {
        let cases: Vec<(Outcome, u16, &str, Side)> = vec![
            (Outcome::Builtin(Builtin::Healthz), 200, "healthz", Side::Route),
            (Outcome::Builtin(Builtin::AcmeNotFound), 404, "acme_not_found", Side::Route),
            (Violation::Method.into(), 405, "method", Side::Client),
            (Violation::UriTooLong.into(), 414, "uri_too_long", Side::Client),
            (Violation::TransferEncoding.into(), 501, "transfer_encoding", Side::Client),
            (Violation::DotSegment.into(), 400, "dot_segment", Side::Client),
            (Outcome::NoRoute, 404, "no_route", Side::Route),
            (Outcome::ContainerPath, 404, "container_path", Side::Client),
            (AuthError::Missing.into(), 401, "missing", Side::Client),
            (AuthError::Expired.into(), 401, "expired", Side::Client),
            (AuthError::TargetPolicy.into(), 403, "target_policy", Side::Route),
            (AuthError::PortPolicy.into(), 403, "port_policy", Side::Route),
            (AuthError::NoKeys.into(), 503, "no_keys", Side::Route),
            (AuthError::Busy.into(), 503, "busy", Side::Route),
            (ExchangeError::Timeout.into(), 504, "upstream_timeout", Side::Upstream),
            (ExchangeError::BodyTooLarge(1).into(), 413, "body_too_large", Side::Client),
            (
                ExchangeError::ClientIdle(std::time::Duration::from_secs(1)).into(),
                408,
                "client_body_idle",
                Side::Client,
            ),
            (
                ExchangeError::Connect(crate::forward::ConnectError::Io(
                    std::io::ErrorKind::ConnectionRefused.into(),
                ))
                .into(),
                502,
                "connect",
                Side::Upstream,
            ),
        ];
        for (outcome, status, reason, side) in cases {
            assert_eq!((outcome.status().as_u16(), outcome.reason(), outcome.side()), (status, reason, side));
        }
    }

    #[test]
    fn a_connect_failure_keeps_its_source_for_the_log() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let outcome = Outcome::from(ExchangeError::Connect(crate::forward::ConnectError::Io(refused)));
        let described = outcome.describe().unwrap_or_default();
        assert!(described.starts_with("upstream connect failed: "), "{described}");
        assert!(described.contains("refused"), "{described}");
    }
}
