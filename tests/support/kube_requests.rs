//! What `route` asked the test API server for: RBAC by `resourceNames` works only if every
//! request for a Secret or the RouteConfig names its object.

use super::kube::Cluster;

/// Test API server only: every request `route` made (kubectl's, `User-Agent: kubectl/...`, are
/// left out) for Secrets and RouteConfigs names its object, so that RBAC with `resourceNames`
/// suffices: a GET of the object, a list or watch of the collection with
/// `fieldSelector=metadata.name=<name>`, or (the RouteConfig) a PATCH of its status. Each object
/// was listed and watched that way.
pub fn assert_requests_name_their_objects(cluster: &Cluster, secrets: &[&str]) {
    let Some(server) = cluster.test_server() else { return };
    let ns = &cluster.namespace;
    let kinds = [
        (format!("/api/v1/namespaces/{ns}/secrets"), secrets),
        (format!("/apis/route.abcdesktop.io/v1alpha1/namespaces/{ns}/routeconfigs"), &["route"][..]),
    ];
    let requests = server.requests();
    let route: Vec<_> = requests.iter().filter(|r| !r.user_agent.starts_with("kubectl/")).collect();
    let mut seen = Vec::new();
    for r in &route {
        let segments: Vec<&str> = r.path.split('/').collect();
        if !segments.iter().any(|s| *s == "secrets" || *s == "routeconfigs") {
            continue;
        }
        let line = format!("{} {}?{}", r.method, r.path, r.query);
        let params: Vec<(String, String)> = form_urlencoded::parse(r.query.as_bytes()).into_owned().collect();
        let param = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let Some((collection, names)) = kinds.iter().find(|(c, _)| r.path.starts_with(c.as_str())) else {
            panic!("route asked for objects outside its namespace: {line}");
        };
        let rest = &r.path[collection.len()..];
        match (r.method.as_str(), rest) {
            ("GET", "") => {
                let field =
                    param("fieldSelector").unwrap_or_else(|| panic!("an unfiltered list or watch: {line}"));
                let name = field.strip_prefix("metadata.name=").unwrap_or("");
                assert!(names.contains(&name), "a list or watch not by one of {names:?}: {line}");
                assert!(param("labelSelector").is_none(), "{line}");
                let watch = matches!(param("watch"), Some("true" | "1"));
                seen.push((name.to_owned(), watch));
            }
            ("GET", name) if names.contains(&name.trim_start_matches('/')) => {}
            ("PATCH", "/route/status") if collection.ends_with("/routeconfigs") => {}
            _ => panic!("a request that does not name one of {names:?}: {line}"),
        }
    }
    for name in secrets.iter().chain(&["route"]) {
        for watch in [false, true] {
            let what = if watch { "watched" } else { "listed" };
            assert!(
                seen.iter().any(|(n, w)| n == name && *w == watch),
                "{name} was not {what} by name; route's requests: {route:#?}"
            );
        }
    }
}
