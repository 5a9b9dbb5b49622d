//! What the binary's logs must show of a test's requests: an access line for each (a token
//! may stand redacted in its path), and no token anywhere ([`needles`]).

use serde_json::Value;

/// A request the proxy answered, to find in its access log.
#[derive(Debug, Clone)]
pub struct Expected {
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// The strings whose presence in a log means a token leaked: the token itself, and for a
/// JWS its claims and signature (so a log of a token without its header is caught too).
pub fn needles(secret: &str) -> Vec<String> {
    let mut out = Vec::new();
    if secret.len() >= 8 {
        out.push(secret.to_owned());
    }
    let parts: Vec<&str> = secret.split('.').collect();
    if parts.len() >= 2 {
        for part in &parts[1..] {
            if part.len() >= 16 {
                out.push((*part).to_owned());
            }
        }
    }
    out
}

/// A redaction marker in a logged path.
fn is_marker(segment: &str) -> bool {
    let lower = segment.to_ascii_lowercase();
    lower.contains("redact") || lower.contains("***") || lower == "<token>"
}

/// An access line as logged: method, path, status, and maybe the route.
#[derive(Debug)]
pub struct Access {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub route: Option<String>,
}

impl Access {
    /// Reads an access line from a JSON log line. Fields are looked up at the top level, in
    /// `fields`, in `span` and in every entry of `spans` (tracing-subscriber's JSON layout).
    pub fn from_line(line: &Value) -> Option<Self> {
        let mut maps = vec![line];
        for key in ["fields", "span"] {
            if let Some(v) = line.get(key) {
                maps.push(v);
            }
        }
        if let Some(spans) = line.get("spans").and_then(Value::as_array) {
            maps.extend(spans.iter());
        }
        let find = |names: &[&str]| -> Option<&Value> {
            names.iter().find_map(|name| maps.iter().find_map(|m| m.get(*name)))
        };
        let as_text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let method = as_text(find(&["method", "http.method", "http.request.method"])?);
        let path = as_text(find(&["path", "uri", "url", "http.path", "url.path", "http.target"])?);
        let status = find(&["status", "http.status", "status_code", "http.response.status_code"])?;
        let status = match status {
            Value::Number(n) => u16::try_from(n.as_u64()?).ok()?,
            Value::String(s) => s.split_whitespace().next()?.parse().ok()?,
            _ => return None,
        };
        let route = find(&["route"]).map(as_text);
        Some(Self { method, path, status, route })
    }
}

/// The expected requests left without an access line of their own.
pub fn match_access(expected: &[Expected], access: &[Access], secrets: &[String]) -> Vec<Expected> {
    let mut used = vec![false; access.len()];
    let mut unmatched = Vec::new();
    for e in expected {
        let found = access.iter().enumerate().position(|(i, a)| {
            !used[i]
                && a.route.as_deref().is_some_and(|r| !r.is_empty())
                && a.status == e.status
                && a.method.eq_ignore_ascii_case(&e.method)
                && path_matches(&e.path, &a.path, secrets)
        });
        match found {
            Some(i) => used[i] = true,
            None => unmatched.push(e.clone()),
        }
    }
    unmatched
}

/// Whether a logged path stands for the requested one: same path (the query aside), where any
/// text (a redaction marker) may replace a token.
pub fn path_matches(requested: &str, logged: &str, secrets: &[String]) -> bool {
    let requested = requested.split_once('?').map_or(requested, |(p, _)| p);
    let logged = logged.split_once('?').map_or(logged, |(p, _)| p);
    // Segment by segment, a redaction marker stands for whatever was there (over-redacting a
    // harmless segment is allowed; the leak check is what guards the tokens).
    let (req_segments, log_segments): (Vec<&str>, Vec<&str>) =
        (requested.split('/').collect(), logged.split('/').collect());
    if req_segments.len() == log_segments.len()
        && req_segments.iter().zip(&log_segments).all(|(r, l)| {
            r == l || is_marker(l) || secrets.iter().any(|s| !s.is_empty() && r.contains(s.as_str()))
        })
    {
        return true;
    }
    let mut pattern = requested.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        pattern = pattern.replace(secret.as_str(), "\u{0}");
    }
    let pieces: Vec<&str> = pattern.split('\u{0}').collect();
    if pieces.len() == 1 {
        return requested == logged;
    }
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    let Some(mut rest) = logged.strip_prefix(first) else {
        return false;
    };
    let Some(stripped) = rest.strip_suffix(last) else {
        return false;
    };
    rest = stripped;
    for middle in &pieces[1..pieces.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}
