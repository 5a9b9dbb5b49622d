//! The route table: the built-ins of contract.md merged by name with `spec.routes`.
//!
//! An entry of `spec.routes` whose name is a built-in overrides the fields it gives (and
//! `enabled: false` removes the route); any other name adds a route. Routes are checked once
//! merged, so an error names the place the faulty value came from: `spec.ports.filer` for a
//! built-in's port, `spec.routes[3].desktopPort` for an override.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use route_crds::{RewriteSpec, RouteConfigSpec, RouteSpec};
use route_proxy::route_table::TokenSource;
use route_proxy::route_table::{Backend, Rewrite, Route, RouteTable};

use super::services::{Services, is_name};
use super::{Errors, auth, builtin, port, seconds_at_least_one};

/// A route being merged, before its values are checked.
#[derive(Debug)]
pub(super) struct Draft {
    name: String,
    paths: Vec<String>,
    /// The `spec.routes` index that set `paths`; `None` for a built-in's own paths.
    paths_from: Option<usize>,
    target: Target,
    rewrite: Rewrite,
    max_body: Option<u64>,
    read_timeout: Duration,
    websocket: bool,
    idle_timeout: Duration,
    compress: bool,
    enabled: bool,
}

/// Where a draft sends requests, with the place each value came from.
#[derive(Debug)]
pub(super) enum Target {
    Desktop { port: i32, place: String, sources: Vec<TokenSource> },
    Container { sources: Vec<TokenSource> },
    Service { name: String, place: Option<String> },
}

impl Target {
    fn sources(&self) -> Option<&[TokenSource]> {
        match self {
            Self::Desktop { sources, .. } | Self::Container { sources } => Some(sources),
            Self::Service { .. } => None,
        }
    }
}

impl Draft {
    #[cfg(test)]
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// The defaults of every route: path kept, no body limit, 60 s read timeout, no WebSocket
    /// (3600 s idle when one is enabled).
    pub(super) fn new(name: &str, paths: &[&str], target: Target) -> Self {
        Self {
            name: name.to_owned(),
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            paths_from: None,
            target,
            rewrite: Rewrite::Keep,
            max_body: None,
            read_timeout: Duration::from_secs(60),
            websocket: false,
            idle_timeout: Duration::from_secs(3600),
            compress: true,
            enabled: true,
        }
    }

    /// Never gzip this route's responses (speedtest measures raw throughput).
    pub(super) fn no_compression(mut self) -> Self {
        self.compress = false;
        self
    }

    pub(super) fn max_body(mut self, bytes: u64) -> Self {
        self.max_body = Some(bytes);
        self
    }

    pub(super) fn read_timeout(mut self, secs: u64) -> Self {
        self.read_timeout = Duration::from_secs(secs);
        self
    }

    pub(super) fn rewrite(mut self, rewrite: Rewrite) -> Self {
        self.rewrite = rewrite;
        self
    }

    /// Forwards WebSocket upgrades, closing tunnels idle for `idle_secs`.
    pub(super) fn websocket(mut self, idle_secs: u64) -> Self {
        self.websocket = true;
        self.idle_timeout = Duration::from_secs(idle_secs);
        self
    }
}

pub(super) fn table(spec: &RouteConfigSpec, services: &Services, errors: &mut Errors) -> RouteTable {
    let mut drafts = builtin::routes(&spec.ports);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, route) in spec.routes.iter().enumerate() {
        let place = format!("spec.routes[{i}]");
        if !is_name(&route.name) {
            errors.push(
                format!("{place}.name"),
                format!("{:?} is not a route name (letters, digits, '-', '_')", route.name),
            );
            continue;
        }
        if let Some(first) = seen.insert(&route.name, i) {
            errors.push(format!("{place}.name"), format!("{} repeats spec.routes[{first}]", route.name));
            continue;
        }
        match drafts.iter_mut().find(|d| d.name == route.name) {
            Some(draft) => {
                if let Ok(target) = target(route, &place, draft.target.sources(), errors) {
                    merge(draft, route, i, target, errors);
                }
            }
            // A disabled new route is left out unchecked, as if it were commented out.
            None if route.enabled == Some(false) => {}
            None => {
                let Ok(target) = target(route, &place, None, errors) else { continue };
                let Some(target) = target else {
                    errors.push(&place, "a new route needs one of desktopPort, service or container: true");
                    continue;
                };
                if route.paths.is_none() {
                    errors.push(format!("{place}.paths"), "missing: a new route needs at least one path");
                    continue;
                }
                let mut draft = Draft::new(&route.name, &[], target);
                merge(&mut draft, route, i, None, errors);
                drafts.push(draft);
            }
        }
    }
    compile(drafts, services, errors)
}

/// The upstream a route entry gives, if it gives one; `Err` when it gives several.
/// `sources` are the token sources of the route it overrides, kept when it names none.
fn target(
    route: &RouteSpec,
    place: &str,
    sources: Option<&[TokenSource]>,
    errors: &mut Errors,
) -> Result<Option<Target>, ()> {
    let container = route.container == Some(true);
    let given = [route.desktop_port.is_some(), route.service.is_some(), container];
    if given.iter().filter(|g| **g).count() > 1 {
        errors.push(place, "give one of desktopPort, service or container: true, not several");
        return Err(());
    }
    let sources = || sources.map_or_else(|| vec![builtin::abc_authorization()], <[_]>::to_vec);
    Ok(if let Some(port) = route.desktop_port {
        Some(Target::Desktop { port, place: format!("{place}.desktopPort"), sources: sources() })
    } else if let Some(name) = &route.service {
        Some(Target::Service { name: name.clone(), place: Some(format!("{place}.service")) })
    } else if container {
        Some(Target::Container { sources: sources() })
    } else {
        None
    })
}

/// Applies the fields an entry of `spec.routes` gives over a draft.
fn merge(draft: &mut Draft, route: &RouteSpec, i: usize, target: Option<Target>, errors: &mut Errors) {
    let place = format!("spec.routes[{i}]");
    if let Some(target) = target {
        draft.target = target;
    }
    if let Some(paths) = &route.paths {
        draft.paths.clone_from(paths);
        draft.paths_from = Some(i);
    }
    if let Some(specs) = &route.token_sources {
        let place = format!("{place}.tokenSources");
        let parsed = auth::token_sources(specs, &place, errors);
        match &mut draft.target {
            Target::Desktop { sources, .. } | Target::Container { sources } => *sources = parsed,
            Target::Service { .. } => errors.push(place, "a service route takes no token"),
        }
    }
    if let Some(rewrite) = route.rewrite {
        draft.rewrite = match rewrite {
            RewriteSpec::Keep => Rewrite::Keep,
            RewriteSpec::Root => Rewrite::Root,
            RewriteSpec::StripPrefix => Rewrite::StripPrefix,
        };
    }
    if let Some(bytes) = route.max_body_bytes {
        draft.max_body = Some(bytes);
    }
    if let Some(secs) = route.read_timeout_seconds {
        draft.read_timeout = seconds_at_least_one(secs, &format!("{place}.readTimeoutSeconds"), errors);
    }
    if let Some(websocket) = route.websocket {
        draft.websocket = websocket;
    }
    if let Some(secs) = route.idle_timeout_seconds {
        draft.idle_timeout = seconds_at_least_one(secs, &format!("{place}.idleTimeoutSeconds"), errors);
    }
    if let Some(enabled) = route.enabled {
        draft.enabled = enabled;
    }
}

/// Checks the enabled drafts and builds the table.
fn compile(drafts: Vec<Draft>, services: &Services, errors: &mut Errors) -> RouteTable {
    let mut entries: Vec<(String, Arc<Route>)> = Vec::new();
    // Normalised prefix -> (route name, place of its paths).
    let mut owners: HashMap<String, (String, Option<String>)> = HashMap::new();
    for draft in drafts.into_iter().filter(|d| d.enabled) {
        let paths_place = draft.paths_from.map(|i| format!("spec.routes[{i}].paths"));
        if draft.paths.is_empty() {
            let place = paths_place.clone().unwrap_or_else(|| format!("route {}", draft.name));
            errors.push(place, "empty: a route needs at least one path");
        }
        let mut prefixes = Vec::with_capacity(draft.paths.len());
        for (j, path) in draft.paths.iter().enumerate() {
            let place = match &paths_place {
                Some(place) => format!("{place}[{j}]"),
                None => format!("route {}", draft.name),
            };
            if !is_path(path) {
                errors.push(place, format!("{path:?} is not a path prefix (it starts with '/', no query)"));
                continue;
            }
            let prefix = normalize(path);
            match owners.get(&prefix) {
                Some((owner, _)) if *owner == draft.name => {}
                Some((owner, owner_place)) => {
                    let place =
                        if paths_place.is_some() { place } else { owner_place.clone().unwrap_or(place) };
                    errors.push(place, format!("{path} is already routed by {owner}"));
                }
                None => {
                    owners.insert(
                        prefix,
                        (draft.name.clone(), paths_place.as_ref().map(|p| format!("{p}[{j}]"))),
                    );
                    prefixes.push(path.clone());
                }
            }
        }
        let Some(upstream) = upstream(draft.target, &draft.name, services, errors) else { continue };
        let route = Arc::new(Route {
            name: Arc::from(draft.name.as_str()),
            backend: upstream,
            rewrite: draft.rewrite,
            max_body: draft.max_body,
            read_timeout: draft.read_timeout,
            websocket: draft.websocket,
            idle_timeout: draft.idle_timeout,
            compress: draft.compress,
        });
        entries.extend(prefixes.into_iter().map(|p| (p, Arc::clone(&route))));
    }
    RouteTable::new(entries)
}

fn upstream(target: Target, name: &str, services: &Services, errors: &mut Errors) -> Option<Backend> {
    match target {
        Target::Desktop { port: value, place, sources } => {
            port(value, &place, errors).map(|port| Backend::Desktop { port, sources })
        }
        Target::Container { sources } => Some(Backend::Container { sources }),
        Target::Service { name: service, place } => match services.get(&service) {
            Some(Some((host, port))) => Some(Backend::Service { host: Arc::clone(host), port: *port }),
            // The service's own errors are already reported.
            Some(None) => None,
            None => {
                let known: Vec<&str> = services.keys().map(String::as_str).collect();
                errors.push(
                    place.unwrap_or_else(|| format!("route {name}")),
                    format!("unknown service {service} (known: {})", known.join(", ")),
                );
                None
            }
        },
    }
}

fn is_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.contains(|c: char| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
}

/// As the route table normalises prefixes: without trailing slashes, `/` for the root.
fn normalize(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() { "/".to_owned() } else { trimmed.to_owned() }
}
