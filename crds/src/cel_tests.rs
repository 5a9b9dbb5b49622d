//! The CRD's CEL rules, evaluated as the API server would (kube-cel), on what translate()
//! accepts and refuses. The kube tests' server (1.20) does not enforce CEL rules;
//! `tests/kube_operator.rs` applies a few refused specs with kubectl on a 1.25+ cluster
//! (`ROUTE_TEST_KUBECONFIG`); these tests go through every rule, without a server.

use serde_json::{Value, json};

use super::*;

fn schema() -> Value {
    let crd = serde_json::to_value(crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// The messages of the rules `spec` breaks.
fn broken(spec: Value) -> Vec<String> {
    let object =
        json!({"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "route"}, "spec": spec});
    match kube_cel::validate(&schema(), &object, None) {
        Ok(()) => Vec::new(),
        Err(errors) => {
            errors.into_vec().into_iter().map(|e| format!("{}: {}", e.field_path, e.message)).collect()
        }
    }
}

fn assert_refused(spec: Value, message: &str) {
    let errors = broken(spec.clone());
    assert!(errors.iter().any(|e| e.contains(message)), "{spec} should break {message:?}; broke {errors:?}");
}

#[test]
fn every_rule_compiles_and_the_documented_specs_pass() {
    assert_eq!(broken(json!({})), Vec::<String>::new());
    let spec = json!({
        "services": {"pyos": {"port": 8001}, "extra": {"host": "10.0.0.1"}},
        "routes": [
            {"name": "myapp", "paths": ["/myapp"], "desktopPort": 8080,
             "tokenSources": [{"header": "ABCAuthorization"}, {"query": "jwt_token"}, {"rawQuery": true}]},
            {"name": "static", "paths": ["/static"], "service": "extra"},
            {"name": "box", "paths": ["/box"], "container": true},
            {"name": "speedtest", "enabled": false},
            {"name": "filer", "maxBodyBytes": 1024},
            {"name": "pyos", "desktopPort": 9000, "tokenSources": [{"header": "X-Token"}]},
            {"name": "old", "enabled": false},
            {"name": "websockify", "paths": [], "enabled": false},
        ],
    });
    assert_eq!(broken(spec), Vec::<String>::new());
}

#[test]
fn a_route_gives_one_target() {
    assert_refused(
        json!({"routes": [{"name": "x", "paths": ["/x"], "desktopPort": 1, "service": "pyos"}]}),
        "not several",
    );
    assert_refused(
        json!({"routes": [{"name": "filer", "desktopPort": 1, "container": true}]}),
        "not several",
    );
    // container: false is no target.
    assert_eq!(
        broken(json!({"routes": [{"name": "x", "paths": ["/x"], "desktopPort": 1, "container": false}]})),
        Vec::<String>::new()
    );
}

#[test]
fn a_new_route_needs_a_target_and_paths() {
    assert_refused(
        json!({"routes": [{"name": "x", "paths": ["/x"]}]}),
        "a new route needs one of desktopPort",
    );
    assert_refused(
        json!({"routes": [{"name": "x", "desktopPort": 8080}]}),
        "a new route needs at least one path",
    );
    assert_refused(json!({"routes": [{"name": "x", "desktopPort": 8080, "paths": []}]}), "paths: empty");
    assert_refused(json!({"routes": [{"name": "filer", "paths": []}]}), "paths: empty");
}

#[test]
fn service_routes_take_no_token() {
    assert_refused(
        json!({"routes": [{"name": "console", "tokenSources": [{"header": "X"}]}]}),
        "a service route takes no token",
    );
    assert_refused(
        json!({"routes": [{"name": "x", "paths": ["/x"], "service": "pyos", "tokenSources": [{"header": "X"}]}]}),
        "a service route takes no token",
    );
}

#[test]
fn a_token_source_gives_exactly_one_place() {
    let route = |source: Value| json!({"routes": [{"name": "filer", "tokenSources": [source]}]});
    assert_refused(route(json!({})), "exactly one of header, query or rawQuery");
    assert_refused(route(json!({"header": "A", "query": "b"})), "exactly one of header, query or rawQuery");
    assert_refused(route(json!({"rawQuery": false})), "leave the source out instead");
}

#[test]
fn services_are_named_and_new_ones_have_a_host() {
    assert_refused(json!({"services": {"a b": {"host": "x"}}}), "a service name is letters");
    assert_refused(json!({"services": {"cache": {"port": 6379}}}), "a new service needs a host");
}

#[test]
fn builtin_names_in_the_rules_are_the_constants() {
    let quoted = |names: &[&str]| {
        let list: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
        format!("[{}]", list.join(", "))
    };
    assert!(rules::NEW_ROUTE_TARGET.contains(&quoted(&BUILTIN_ROUTES)));
    assert!(rules::NEW_ROUTE_PATHS.contains(&quoted(&BUILTIN_ROUTES)));
    assert!(rules::SERVICE_NO_TOKEN.contains(&quoted(&SERVICE_ROUTES)));
    assert!(rules::NEW_SERVICE_HOST.contains(&quoted(&BUILTIN_SERVICES)));
}
