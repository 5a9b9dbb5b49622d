//! What `route` asked the API server for, read from its audit log: run as the chart's
//! ServiceAccount, no request of route's may be denied, and every Secret and the RouteConfig
//! was listed by name, and watched by name (RBAC's `resourceNames` allows nothing else).
//!
//! A watch reaches the audit log (1.20, policy level Metadata) only once it has ended, so the
//! watches still open at the end of a test are not there: every watch logged must be by name.

use serde_json::Value;

use super::kube::{Cluster, RELEASE};

/// The audit events of `route`'s requests (its ServiceAccount's, not the tests' kubectl run
/// with its token), final stage only.
pub fn route_requests(cluster: &Cluster) -> Option<Vec<Value>> {
    let plane = cluster.plane()?;
    let user = format!("system:serviceaccount:{}:{RELEASE}", cluster.namespace);
    Some(
        plane
            .audit()
            .into_iter()
            .filter(|e| e["user"]["username"] == user.as_str())
            .filter(|e| !e["userAgent"].as_str().unwrap_or("").starts_with("kubectl"))
            .filter(|e| e["stage"] == "ResponseComplete" || e["stage"] == "ResponseStarted")
            .collect(),
    )
}

/// One line per audit event: `verb uri code decision`.
pub fn describe(event: &Value) -> String {
    format!(
        "{} {} {} {}",
        event["verb"].as_str().unwrap_or("?"),
        event["requestURI"].as_str().unwrap_or("?"),
        event["responseStatus"]["code"],
        event["annotations"]["authorization.k8s.io/decision"].as_str().unwrap_or("?"),
    )
}

/// Not on a real cluster (no audit log here): no request of route's was denied (the Role lacks
/// nothing route uses), each was about an object it names, and each of `secrets` and the
/// RouteConfig was listed by name.
pub fn assert_requests_name_their_objects(cluster: &Cluster, secrets: &[&str]) {
    let Some(requests) = route_requests(cluster) else { return };
    assert!(!requests.is_empty(), "no request of route's in the audit log");
    let denied: Vec<String> = requests
        .iter()
        .filter(|e| {
            e["annotations"]["authorization.k8s.io/decision"] == "forbid"
                || e["responseStatus"]["code"] == 403
        })
        .map(describe)
        .collect();
    assert!(
        denied.is_empty(),
        "requests of route's denied by RBAC (the chart's Role lacks them): {denied:#?}"
    );
    let mut seen = Vec::new();
    for e in &requests {
        let resource = e["objectRef"]["resource"].as_str().unwrap_or("");
        if resource != "secrets" && resource != "routeconfigs" {
            continue;
        }
        let name = e["objectRef"]["name"].as_str().unwrap_or("");
        let allowed: &[&str] = if resource == "secrets" { secrets } else { &["route"] };
        assert!(allowed.contains(&name), "a request not for one of {allowed:?}: {}", describe(e));
        assert_eq!(e["objectRef"]["namespace"], cluster.namespace.as_str(), "{}", describe(e));
        seen.push((name.to_owned(), e["verb"].as_str().unwrap_or("").to_owned()));
    }
    for name in secrets.iter().chain(&["route"]) {
        assert!(
            seen.iter().any(|(n, v)| n == name && v == "list"),
            "{name}: no list by name; route's requests: {:#?}",
            requests.iter().map(describe).collect::<Vec<_>>()
        );
    }
}
