//! The compiled route table: which path goes where, with what token and limits.
//!
//! Paths match anchored at the start and on a segment boundary: `/filer` matches `/filer` and
//! `/filer/x`, never `/filerx` nor `/x/filer` (the original's unanchored regexes let
//! `/filer/container/<JWT>/22/x` reach any pod port).

use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;

/// One route, shared by every path prefix that leads to it.
#[derive(Debug)]
pub struct Route {
    /// Stable name, used as a metric label and in logs.
    pub name: Arc<str>,
    pub backend: Backend,
    pub rewrite: Rewrite,
    /// Largest request body accepted; `None` is unlimited.
    pub max_body: Option<u64>,
    /// Longest wait for the upstream's response head, and between two reads of its body.
    pub read_timeout: Duration,
    /// Whether a WebSocket upgrade is forwarded on this route.
    pub websocket: bool,
    /// A tunnel with no byte in either direction for this long is closed.
    pub idle_timeout: Duration,
    /// Whether text responses are gzipped for clients that accept it.
    pub compress: bool,
}

/// Where a route sends its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The desktop pod named by the token, on a fixed port.
    Desktop { port: u16, sources: Vec<TokenSource> },
    /// `/container/<JWT>/<port>/<rest>` (token and port in the path) or `/container/<port>`
    /// (port in the path, token from `sources`).
    Container { sources: Vec<TokenSource> },
    /// A fixed service (pyos, website, console, speedtest, or one a user adds); no token.
    Service { host: Arc<str>, port: u16 },
}

/// Where a route finds the desktop token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A request header; a leading `Bearer ` (any case) is stripped.
    Header(HeaderName),
    /// A query parameter, e.g. `jwt_token`.
    Query(String),
    /// The whole raw query string is the token (`/terminals/<id>?<JWT>`).
    RawQuery,
}

/// What path the upstream sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    /// Path and query as the client sent them.
    Keep,
    /// `/`, without the query (which carries the token on these routes).
    Root,
    /// The matched prefix replaced by `/`; the query is kept.
    StripPrefix,
}

/// Routes by path prefix, longest prefix first.
#[derive(Debug, Default)]
pub struct RouteTable {
    entries: Vec<(Box<str>, Arc<Route>)>,
}

impl RouteTable {
    /// Builds the table; when two entries have the same prefix the first one wins.
    pub fn new(entries: impl IntoIterator<Item = (String, Arc<Route>)>) -> Self {
        let mut entries: Vec<(Box<str>, Arc<Route>)> =
            entries.into_iter().map(|(p, r)| (normalize_prefix(&p).into(), r)).collect();
        // A stable sort keeps declaration order among equal lengths.
        entries.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        let mut seen = std::collections::HashSet::new();
        entries.retain(|(prefix, _)| seen.insert(prefix.clone()));
        Self { entries }
    }

    /// The route for a request path, and the prefix it matched.
    pub fn lookup(&self, path: &str) -> Option<(&str, &Arc<Route>)> {
        self.entries
            .iter()
            .find(|(prefix, _)| prefix_matches(prefix, path))
            .map(|(prefix, route)| (&**prefix, route))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<Route>)> {
        self.entries.iter().map(|(p, r)| (&**p, r))
    }
}

fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() { "/".to_owned() } else { trimmed.to_owned() }
}

/// `prefix` matches `path` anchored at the start and on a segment boundary. `/` matches all.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return path.starts_with('/');
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The path and query the upstream sees.
pub fn rewrite_path(rewrite: Rewrite, prefix: &str, path: &str, query: Option<&str>) -> String {
    let with_query = |p: &str| match query {
        Some(q) => format!("{p}?{q}"),
        None => p.to_owned(),
    };
    match rewrite {
        Rewrite::Keep => with_query(path),
        Rewrite::Root => "/".to_owned(),
        Rewrite::StripPrefix => {
            let rest = if prefix == "/" { path } else { &path[prefix.len()..] };
            if rest.is_empty() { with_query("/") } else { with_query(rest) }
        }
    }
}

/// A `/container/...` path, split.
#[derive(Debug, PartialEq, Eq)]
pub struct ContainerPath<'a> {
    /// The token from the path, when the path carries one.
    pub token: Option<&'a str>,
    pub port: u16,
    /// Path sent upstream (starts with `/`), without the query; `None` for `/container/<port>`,
    /// whose path goes upstream unchanged.
    pub rest: Option<&'a str>,
}

/// Parses the part of a container path after the matched prefix: `/<JWT>/<port>[/<rest>]`
/// or `/<port>[/<rest>]`.
pub fn parse_container(after_prefix: &str) -> Option<ContainerPath<'_>> {
    let s = after_prefix.strip_prefix('/')?;
    let (first, tail) = split_segment(s);
    if let Ok(port) = parse_port(first) {
        // `/container/<port>`: the path upstream is the client's path, unchanged.
        return Some(ContainerPath { token: None, port, rest: None });
    }
    let token = first;
    let tail = tail.strip_prefix('/')?;
    let (port, rest) = split_segment(tail);
    let port = parse_port(port).ok()?;
    let rest = if rest.is_empty() { "/" } else { rest };
    (!token.is_empty()).then_some(ContainerPath { token: Some(token), port, rest: Some(rest) })
}

fn split_segment(s: &str) -> (&str, &str) {
    match s.find('/') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

fn parse_port(s: &str) -> Result<u16, ()> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(()),
        Ok(port) => Ok(port),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A plain service route named `name`, for tables built in tests.
    pub(crate) fn route(name: &str) -> Arc<Route> {
        Arc::new(Route {
            name: name.into(),
            backend: Backend::Service { host: "x".into(), port: 1 },
            rewrite: Rewrite::Keep,
            max_body: None,
            read_timeout: Duration::from_secs(1),
            websocket: false,
            idle_timeout: Duration::from_secs(1),
            compress: true,
        })
    }

    #[test]
    fn matches_anchored_on_segment_boundary() {
        let table = RouteTable::new([
            ("/filer".to_owned(), route("filer")),
            ("/API/".to_owned(), route("pyos")),
            ("/API/composer/launchdesktop".to_owned(), route("launch")),
            ("/".to_owned(), route("website")),
        ]);
        let name = |p: &str| table.lookup(p).map(|(_, r)| r.name.to_string());
        assert_eq!(name("/filer").as_deref(), Some("filer"));
        assert_eq!(name("/filer/x").as_deref(), Some("filer"));
        assert_eq!(name("/filerx").as_deref(), Some("website"));
        assert_eq!(name("/x/filer").as_deref(), Some("website"));
        assert_eq!(name("/API/composer/launchdesktop").as_deref(), Some("launch"));
        assert_eq!(name("/API/composer").as_deref(), Some("pyos"));
        assert_eq!(name("/API").as_deref(), Some("pyos"));
        assert_eq!(name("relative"), None);
    }

    #[test]
    fn rewrites() {
        assert_eq!(rewrite_path(Rewrite::Keep, "/a", "/a/b", Some("x=1")), "/a/b?x=1");
        assert_eq!(rewrite_path(Rewrite::Root, "/a", "/a/b", Some("jwt_token=t")), "/");
        assert_eq!(rewrite_path(Rewrite::StripPrefix, "/console", "/console/x", Some("q")), "/x?q");
        assert_eq!(rewrite_path(Rewrite::StripPrefix, "/console", "/console", None), "/");
    }

    #[test]
    fn container_paths() {
        assert_eq!(
            parse_container("/tok.en.x/8080/a/b"),
            Some(ContainerPath { token: Some("tok.en.x"), port: 8080, rest: Some("/a/b") })
        );
        assert_eq!(
            parse_container("/tok/8080"),
            Some(ContainerPath { token: Some("tok"), port: 8080, rest: Some("/") })
        );
        assert_eq!(parse_container("/8080"), Some(ContainerPath { token: None, port: 8080, rest: None }));
        assert_eq!(parse_container("/tok/99999/x"), None);
        assert_eq!(parse_container("/tok/0"), None);
        assert_eq!(parse_container("/tok"), None);
        assert_eq!(parse_container("/tok/+80"), None);
        assert_eq!(parse_container(""), None);
    }
}
