//! Tokens out of logged paths: every part of a path or query that may be a token is replaced
//! before a line is written.

const REDACTED: &str = "<redacted>";

/// The shortest text taken for a token.
const MIN_TOKEN_LEN: usize = 16;

/// The path and query with every token-like part replaced: any `jwt_token` value, any path
/// segment or query part that looks like a compact JWS, and any query part of 16 bytes or more
/// without `=` (the raw query a `/terminals/<id>?<JWT>` carries, whatever its shape).
pub fn redact(path: &str, query: Option<&str>) -> String {
    let mut out = String::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1));
    redact_into(&mut out, path, query);
    out
}

/// [`redact`], appended to `out`.
pub fn redact_into(out: &mut String, path: &str, query: Option<&str>) {
    if has_long_segment(path) {
        for (i, segment) in path.split('/').enumerate() {
            if i > 0 {
                out.push('/');
            }
            out.push_str(if looks_like_token(segment) { REDACTED } else { segment });
        }
    } else {
        out.push_str(path);
    }
    if let Some(query) = query {
        out.push('?');
        for (i, part) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match part.split_once('=') {
                Some((key, value)) if key.eq_ignore_ascii_case("jwt_token") || looks_like_token(value) => {
                    // The key may hold a token too (`?<JWT>=a.b.c`, found by fuzzing).
                    out.push_str(if looks_like_token(key) { REDACTED } else { key });
                    out.push('=');
                    out.push_str(REDACTED);
                }
                // A bare part is how a raw-query source (`/terminals/<id>?<JWT>`) carries its
                // token: a long one is redacted whatever it looks like.
                None if part.len() >= MIN_TOKEN_LEN => out.push_str(REDACTED),
                _ if looks_like_token(part) => out.push_str(REDACTED),
                _ => out.push_str(part),
            }
        }
    }
}

/// Whether a `/`-separated segment of `path` is long enough for [`looks_like_token`]: most
/// paths have none, and are then logged without splitting.
fn has_long_segment(path: &str) -> bool {
    let mut run = 0;
    for &b in path.as_bytes() {
        run = if b == b'/' { 0 } else { run + 1 };
        if run >= MIN_TOKEN_LEN {
            return true;
        }
    }
    false
}

/// A compact JWS has two dots; JWT headers are JSON objects, so base64url starts `eyJ`. Either
/// sign is enough: redacting a harmless value costs nothing, logging a token leaks a credential.
fn looks_like_token(s: &str) -> bool {
    s.len() >= MIN_TOKEN_LEN && (s.starts_with("eyJ") || s.bytes().filter(|&b| b == b'.').count() >= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_survive() {
        let jwt = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJrZXkiOjB9.c2ln";
        let cases = [
            (format!("/container/{jwt}/8080/x"), None),
            ("/websockify".into(), Some(format!("jwt_token={jwt}"))),
            ("/terminals/1".into(), Some(jwt.to_owned())),
            ("/x".into(), Some(format!("a=1&other={jwt}"))),
            ("/x".into(), Some("jwt_token=short".to_owned())),
            ("/terminals/1".into(), Some("EYJ0EXAIOIJKV1QI.EYJ".to_owned())),
            // fuzz/artifacts/router/crash-d3bbe043: a token in a key whose value looks like one.
            (
                "/prin".into(),
                Some(format!("6/\u{af}e*t\u{80}/prin?6/\u{af}e{jwt}*tzj-a0>/ben=b.zj-a0>/ben=b.n")),
            ),
            ("/x".into(), Some(format!("{jwt}=a.b.c"))),
        ];
        for (path, query) in cases {
            let logged = redact(&path, query.as_deref());
            assert!(
                !logged.contains("eyJ0eXAi") && !logged.contains("short") && !logged.contains("EYJ"),
                "{logged}"
            );
            assert!(logged.contains(REDACTED), "{logged}");
        }
        assert_eq!(redact("/spawner/a.b", Some("x=1")), "/spawner/a.b?x=1");
        // Segments just under and at the token length, around the fast path.
        assert_eq!(redact("/a/0123456789abcde/", None), "/a/0123456789abcde/");
        assert_eq!(redact("/a/eyJ0123456789abc", None), "/a/<redacted>");
        assert_eq!(redact("eyJ0123456789abc", None), "<redacted>");
        assert_eq!(redact("/terminals", Some("cols=80&rows=24&short")), "/terminals?cols=80&rows=24&short");
    }
}
