//! Where a request carries its desktop token.

use http::request::Parts;

use crate::route_table::TokenSource;

/// The first token found in `sources`, then in `fallback`. Empty values count as absent.
pub fn extract<'a>(parts: &'a Parts, sources: &[TokenSource], fallback: &[TokenSource]) -> Option<&'a str> {
    sources.iter().chain(fallback).find_map(|source| from_source(parts, source))
}

fn from_source<'a>(parts: &'a Parts, source: &TokenSource) -> Option<&'a str> {
    let value = match source {
        TokenSource::Header(name) => strip_bearer(parts.headers.get(name)?.to_str().ok()?),
        TokenSource::Query(name) => query_param(parts.uri.query()?, name)?,
        // Only a token-shaped query: `/terminals?cols=80&rows=24` or `/websockify?x=1` must fall
        // through to the next source (the `Authorization` fallback), not fail as a bad token.
        TokenSource::RawQuery => parts.uri.query().filter(|q| !q.contains(['=', '&']))?,
    };
    let value = value.trim();
    (!value.is_empty()).then_some(value)
}

/// Strips a leading `Bearer ` (any case; the original wants it exact, browsers send it so).
pub fn strip_bearer(value: &str) -> &str {
    let value = value.trim_start();
    match value.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => &value[7..],
        _ => value,
    }
}

/// The raw value of the first `name=` parameter. Tokens are base64url and dots: they need no
/// percent-decoding, and one that carries `%` fails verification as it should.
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::builder().uri(uri);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn sources_in_order_then_fallback() {
        let abc = TokenSource::Header(http::HeaderName::from_static("abcauthorization"));
        let query = TokenSource::Query("jwt_token".into());
        let fallback = [TokenSource::Header(http::header::AUTHORIZATION)];
        let p = parts(
            "/x?jwt_token=q.q.q",
            &[("ABCAuthorization", "Bearer h.h.h"), ("Authorization", "Bearer a.a.a")],
        );
        assert_eq!(extract(&p, &[abc.clone(), query.clone()], &fallback), Some("h.h.h"));
        assert_eq!(extract(&p, &[query.clone(), abc.clone()], &fallback), Some("q.q.q"));
        let p = parts("/x", &[("Authorization", "bearer a.a.a")]);
        assert_eq!(extract(&p, &[abc.clone(), query.clone()], &fallback), Some("a.a.a"));
        let p = parts("/x", &[("ABCAuthorization", "   ")]);
        assert_eq!(extract(&p, &[abc], &fallback), None);
    }

    #[test]
    fn raw_query_and_params() {
        let p = parts("/terminals/3?e.y.j", &[]);
        assert_eq!(extract(&p, &[TokenSource::RawQuery], &[]), Some("e.y.j"));
        // A query of parameters is not a token: the fallback answers.
        let fallback = [TokenSource::Header(http::header::AUTHORIZATION)];
        let p = parts("/terminals?cols=80&rows=24", &[("Authorization", "Bearer a.a.a")]);
        assert_eq!(extract(&p, &[TokenSource::RawQuery], &fallback), Some("a.a.a"));
        let p = parts("/websockify?x=1", &[]);
        assert_eq!(extract(&p, &[TokenSource::RawQuery], &[]), None);
        assert_eq!(query_param("a=1&jwt_token=t.o.k&b", "jwt_token"), Some("t.o.k"));
        assert_eq!(query_param("xjwt_token=1", "jwt_token"), None);
        assert_eq!(strip_bearer("BEARER x"), "x");
        assert_eq!(strip_bearer("x"), "x");
    }
}
