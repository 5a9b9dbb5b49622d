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
    check(cluster, secrets, None);
}

/// As [`assert_requests_name_their_objects`], except for the requests received between the two
/// audit timestamps `warm_up` (`requestReceivedTimestamp`s: RFC 3339, microseconds, so they
/// compare as strings), which may have been denied: a restarted kube-apiserver 1.20 answers
/// `/readyz` before its RBAC authorizer has read the Roles back, and refuses everyone 403 until
/// then. See [`authorized_since`].
pub fn assert_requests_name_their_objects_but_during(
    cluster: &Cluster,
    secrets: &[&str],
    warm_up: (&str, &str),
) {
    check(cluster, secrets, Some(warm_up));
}

/// Waits until the server authorizes route's ServiceAccount to watch `secret` again, and
/// returns the audit timestamp of the check that said yes.
pub async fn authorized_since(cluster: &Cluster, secret: &str) -> String {
    let what = format!("secrets/{secret}");
    super::eventually(std::time::Duration::from_secs(30), "route authorized again", || async {
        let out = cluster.kubectl_as_route(&["auth", "can-i", "watch", &what]).await;
        (out.stdout.trim() == "yes").then_some(())
    })
    .await;
    let user = format!("system:serviceaccount:{}:{RELEASE}", cluster.namespace);
    let plane = cluster.plane().expect("a control plane of the tests");
    plane
        .audit()
        .iter()
        .rev()
        .find(|e| {
            e["user"]["username"] == user.as_str() && e["objectRef"]["resource"] == "selfsubjectaccessreviews"
        })
        .and_then(|e| e["requestReceivedTimestamp"].as_str().map(str::to_owned))
        .expect("the access review in the audit log")
}

fn check(cluster: &Cluster, secrets: &[&str], warm_up: Option<(&str, &str)>) {
    let Some(requests) = route_requests(cluster) else { return };
    assert!(!requests.is_empty(), "no request of route's in the audit log");
    let in_warm_up = |e: &Value| {
        let at = e["requestReceivedTimestamp"].as_str().unwrap_or("");
        warm_up.is_some_and(|(from, to)| from <= at && at <= to)
    };
    let forbidden = |e: &&Value| {
        e["annotations"]["authorization.k8s.io/decision"] == "forbid" || e["responseStatus"]["code"] == 403
    };
    let warming = requests.iter().filter(forbidden).filter(|e| in_warm_up(e)).count();
    if warming > 0 {
        eprintln!("{warming} requests of route's refused while the restarted server's RBAC warmed up");
    }
    let denied: Vec<String> = requests
        .iter()
        .filter(|e| {
            e["annotations"]["authorization.k8s.io/decision"] == "forbid"
                || e["responseStatus"]["code"] == 403
        })
        .filter(|e| !in_warm_up(e))
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
