//! Prometheus metrics of the proxy and of settings reloads, exposed on the admin listener's
//! `/metrics`.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route's own name, shared: labelling a request allocates nothing.
    pub route: Arc<str>,
    pub class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: Arc<str>,
}

/// Labels of `route_connections_accepted_total`: the worker runtime that accepted.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabel {
    pub worker: usize,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// Labels of `route_request_failures_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub route: Arc<str>,
    pub reason: &'static str,
    pub side: &'static str,
}

/// Labels of `route_watch_failures_total`: the watched object's kind, and what the watcher
/// does next (`retry`: resume the watch; `relist`: start over from a list).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabels {
    pub kind: &'static str,
    pub next: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

/// The status class labels: `2xx`, `4xx`, ...
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The status class of a response, as an index of [`CLASSES`].
fn class_index(status: http::StatusCode) -> usize {
    match status.as_u16() {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

/// One route's request counters (made on first use of each class) and duration histogram.
#[derive(Debug)]
struct RouteHandles {
    route: Arc<str>,
    requests: [OnceLock<Counter>; 5],
    duration: Histogram,
}

/// The handles of every route, found by the pointer of the route's name: counting a request
/// then hashes nothing, where the families' own lookups hashed the labels with SipHash under
/// a lock, twice a request (~1k instructions of a ~76k-instruction cache hit). A reload makes
/// new names: the first request under them finds the entry by its text and points it at the
/// new name, so the list holds one entry per route name ever served.
#[derive(Debug, Default)]
struct PerRoute(RwLock<Vec<Arc<RouteHandles>>>);

/// Bytes from clients to upstreams.
pub const UPSTREAM: &str = "upstream";
/// Bytes from upstreams to clients.
pub const DOWNSTREAM: &str = "downstream";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadResult {
    Success,
    Rejected,
}

impl ReloadResult {
    fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Rejected => "rejected",
        }
    }
}

/// Every metric the process exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<RouteLabel, Histogram>,
    pub cache_hits: Counter,
    pub cache_misses: Counter,
    pub cache_entries: Gauge,
    /// Requests that ended other than with an upstream's response, by route, reason and side.
    pub request_failures: Family<FailureLabels, Counter>,
    pub websockets_open: Gauge,
    pub bytes: Family<DirectionLabel, Counter>,
    pub settings_generation: Gauge,
    pub reloads: Family<ResultLabel, Counter>,
    /// 1 when the last reload attempt was published, 0 when it was rejected.
    pub last_reload_success: Gauge,
    pub last_reload_timestamp: Gauge<f64, AtomicU64>,
    pub connections_open: Gauge,
    /// Connections closed at accept, by reason (`total`, `per_ip`).
    pub connections_refused: Family<ReasonLabel, Counter>,
    /// Connections accepted, by the worker runtime that accepted them.
    pub connections_accepted: Family<WorkerLabel, Counter>,
    /// Log lines dropped because standard error did not keep up (the binary counts them).
    pub log_lines_dropped: Counter,
    /// Requests sent again on a fresh upstream connection after a reused one closed, by why.
    pub upstream_resent: Family<ReasonLabel, Counter>,
    /// Failures of the operator's watches (Kubernetes), by object kind and what follows.
    pub watch_failures: Family<WatchLabels, Counter>,
    per_route: PerRoute,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("route");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "Requests answered, by route and status class", requests.clone());
        let request_duration = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
        });
        registry.register(
            "request_duration_seconds",
            "Time from request head to response head, by route",
            request_duration.clone(),
        );
        let cache_hits = Counter::default();
        registry.register(
            "token_cache_hits",
            "Token resolutions answered from the cache",
            cache_hits.clone(),
        );
        let cache_misses = Counter::default();
        registry.register(
            "token_cache_misses",
            "Token resolutions that needed RSA work",
            cache_misses.clone(),
        );
        let cache_entries = Gauge::default();
        registry.register("token_cache_entries", "Resolved tokens held in the cache", cache_entries.clone());
        let request_failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "request_failures",
            "Requests answered with an error of the proxy's own (refused, token, upstream), by route, reason and side",
            request_failures.clone(),
        );
        let websockets_open = Gauge::default();
        registry.register("websockets_open", "WebSocket tunnels open now", websockets_open.clone());
        let bytes = Family::<DirectionLabel, Counter>::default();
        registry.register("bytes", "Body and tunnel bytes forwarded, by direction", bytes.clone());
        let settings_generation = Gauge::default();
        registry.register(
            "settings_generation",
            "Generation of the settings being served",
            settings_generation.clone(),
        );
        let reloads = Family::<ResultLabel, Counter>::default();
        registry.register("settings_reloads", "Settings reload attempts, by result", reloads.clone());
        let last_reload_success = Gauge::default();
        registry.register(
            "settings_last_reload_success",
            "1 if the last settings reload was published, 0 if it was rejected",
            last_reload_success.clone(),
        );
        let last_reload_timestamp = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "settings_last_reload_timestamp_seconds",
            "Unix time of the last settings reload attempt",
            last_reload_timestamp.clone(),
        );
        let connections_open = Gauge::default();
        registry.register("connections_open", "Client connections open now", connections_open.clone());
        let connections_refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "connections_refused",
            "Client connections refused at accept for a connection limit, by reason",
            connections_refused.clone(),
        );
        let connections_accepted = Family::<WorkerLabel, Counter>::default();
        registry.register(
            "connections_accepted",
            "Client connections accepted (limits not yet applied), by worker runtime",
            connections_accepted.clone(),
        );
        let log_lines_dropped = Counter::default();
        registry.register(
            "log_lines_dropped",
            "Log lines dropped because the log output did not keep up",
            log_lines_dropped.clone(),
        );
        let upstream_resent = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "upstream_requests_resent",
            "Requests sent again on a fresh upstream connection after a reused one closed: before they started (unsent) or losing them unanswered (lost; bodiless idempotent requests only)",
            upstream_resent.clone(),
        );
        let watch_failures = Family::<WatchLabels, Counter>::default();
        registry.register(
            "watch_failures",
            "Failed watches of the RouteConfig and its Secrets, by kind and what follows: retry (the watch resumes) or relist (it starts over from a list); the last good settings serve meanwhile",
            watch_failures.clone(),
        );
        Self {
            registry,
            requests,
            request_duration,
            cache_hits,
            cache_misses,
            cache_entries,
            request_failures,
            websockets_open,
            bytes,
            settings_generation,
            reloads,
            last_reload_success,
            last_reload_timestamp,
            connections_open,
            connections_refused,
            connections_accepted,
            log_lines_dropped,
            upstream_resent,
            watch_failures,
            per_route: PerRoute::default(),
        }
    }

    /// Counts an answered request of `route` and how long its head took.
    pub fn record_request(&self, route: &Arc<str>, status: http::StatusCode, seconds: f64) {
        let handles = self.route_handles(route);
        let class = class_index(status);
        handles.requests[class]
            .get_or_init(|| {
                let labels = RequestLabels { route: Arc::clone(&handles.route), class: CLASSES[class] };
                self.requests.get_or_create(&labels).clone()
            })
            .inc();
        handles.duration.observe(seconds);
    }

    /// Counts a request that ended with an error answer of the proxy's own.
    pub fn record_failure(&self, route: &Arc<str>, reason: &'static str, side: &'static str) {
        self.request_failures.get_or_create(&FailureLabels { route: Arc::clone(route), reason, side }).inc();
    }

    fn route_handles(&self, route: &Arc<str>) -> Arc<RouteHandles> {
        let read = self.per_route.0.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(found) = read.iter().find(|h| Arc::ptr_eq(&h.route, route)) {
            return Arc::clone(found);
        }
        drop(read);
        let mut list = self.per_route.0.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let fresh = |requests: [OnceLock<Counter>; 5], duration: Histogram| {
            Arc::new(RouteHandles { route: Arc::clone(route), requests, duration })
        };
        match list.iter().position(|h| *h.route == **route) {
            Some(i) => {
                let old = &list[i];
                let handles = fresh(old.requests.clone(), old.duration.clone());
                list[i] = Arc::clone(&handles);
                handles
            }
            None => {
                let duration =
                    self.request_duration.get_or_create(&RouteLabel { route: Arc::clone(route) }).clone();
                let handles = fresh(Default::default(), duration);
                list.push(Arc::clone(&handles));
                handles
            }
        }
    }

    /// Records a settings reload attempt; the control plane calls it for every source.
    pub fn record_reload(&self, result: ReloadResult, generation: Option<u64>) {
        self.reloads.get_or_create(&ResultLabel { result: result.label() }).inc();
        self.last_reload_success.set(i64::from(result == ReloadResult::Success));
        self.last_reload_timestamp.set(crate::clock::unix_now() as f64);
        if let Some(generation) = generation {
            self.settings_generation.set(i64::try_from(generation).unwrap_or(i64::MAX));
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_count_per_route_and_class_across_reloads() {
        let metrics = Metrics::new();
        let spawner: Arc<str> = Arc::from("spawner");
        metrics.record_request(&spawner, http::StatusCode::OK, 0.001);
        metrics.record_request(&spawner, http::StatusCode::NOT_FOUND, 0.002);
        // A reload: the same route under a new name allocation, and another route.
        let reloaded: Arc<str> = Arc::from("spawner");
        metrics.record_request(&reloaded, http::StatusCode::OK, 0.003);
        metrics.record_request(&Arc::from("filer"), http::StatusCode::BAD_GATEWAY, 0.004);
        // The old name still counts (a request in flight across the reload).
        metrics.record_request(&spawner, http::StatusCode::OK, 0.005);
        let text = metrics.encode();
        for line in [
            r#"route_requests_total{route="spawner",class="2xx"} 3"#,
            r#"route_requests_total{route="spawner",class="4xx"} 1"#,
            r#"route_requests_total{route="filer",class="5xx"} 1"#,
            r#"route_request_duration_seconds_count{route="spawner"} 4"#,
            r#"route_request_duration_seconds_count{route="filer"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(!text.contains(r#"class="1xx""#), "a class with no request has no series");
        let held = metrics.per_route.0.read().map(|list| list.len()).unwrap_or(0);
        assert_eq!(held, 2, "one entry per route name");
    }
}
