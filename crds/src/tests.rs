use kube::CustomResourceExt;

use super::*;

/// The example of the documentation, as users and the end-to-end tests write it.
const EXAMPLE: &str = r#"
apiVersion: route.abcdesktop.io/v1alpha1
kind: RouteConfig
metadata: {name: route, namespace: abcdesktop}
spec:
  keys:
    signing: {secretName: abcdesktopjwtdesktopsigning, key: abcdesktop_jwt_desktop_signing_public_key.pem}
    payload: {secretName: abcdesktopjwtdesktoppayload, key: abcdesktop_jwt_desktop_payload_private_key.pem}
    graceSeconds: 600
  jwt:
    algorithms: [RS256]
    decryption: pkcs1v15
    fallbackHeaders: [Authorization]
  cache: {ttlCapSeconds: 600, maxEntries: 100000}
  targets:
    allowedCidrs: [10.244.0.0/16]
    allowedDnsSuffixes: [.desktop.abcdesktop.svc.cluster.local]
    containerPorts: [8080]
  services:
    pyos: {host: pyos, port: 8000}
    website: {host: website, port: 80}
  ports:
    spawner: 29786
    websockify: 6081
  routes:
    - name: myapp
      paths: [/myapp]
      desktopPort: 8080
      tokenSources: [{header: ABCAuthorization}, {query: jwt_token}, {rawQuery: true}]
      rewrite: stripPrefix
      maxBodyBytes: 8388608
      readTimeoutSeconds: 60
      websocket: true
      idleTimeoutSeconds: 3600
      enabled: true
    - name: speedtest
      enabled: false
  limits: {connectTimeoutSeconds: 5, drainSeconds: 30, headerReadTimeoutSeconds: 30}
  nodeName: ""
  acmeChallengeDir: ""
  tls: {secretName: route-tls}
"#;

#[test]
fn empty_spec_is_the_abcdesktop_defaults() {
    let spec: RouteConfigSpec = serde_json::from_str("{}").unwrap();
    assert_eq!(spec, RouteConfigSpec::default());
    assert_eq!(spec.keys.signing.secret_name, SIGNING_SECRET);
    assert_eq!(spec.keys.signing.key, SIGNING_KEY);
    assert_eq!(spec.keys.payload.secret_name, PAYLOAD_SECRET);
    assert_eq!(spec.keys.payload.key, PAYLOAD_KEY);
    assert_eq!(spec.keys.grace_seconds, 600);
    assert_eq!(spec.jwt.algorithms, ["RS256"]);
    assert_eq!(spec.jwt.decryption, DecryptionSpec::Pkcs1v15);
    assert_eq!(spec.jwt.fallback_headers, ["Authorization"]);
    assert_eq!((spec.cache.ttl_cap_seconds, spec.cache.max_entries), (600, 100_000));
    assert_eq!(spec.ports.spawner, 29786);
    assert_eq!(spec.ports.by_route("websockify"), Some(6081));
    assert_eq!(spec.ports.by_route("gamepad"), Some(29790));
    assert_eq!(spec.ports.by_route("pyos"), None);
    assert_eq!(
        spec.limits,
        LimitsSpec { connect_timeout_seconds: 5, drain_seconds: 30, header_read_timeout_seconds: 30 }
    );
    assert!(spec.routes.is_empty() && spec.services.is_empty() && spec.tls.is_none());
}

#[test]
fn partial_objects_keep_the_other_defaults() {
    let spec: RouteConfigSpec =
        serde_json::from_str(r#"{"keys": {"payload": {"secretName": "other"}}, "ports": {"filer": 1}}"#)
            .unwrap();
    assert_eq!(spec.keys.payload.secret_name, "other");
    assert_eq!(spec.keys.payload.key, PAYLOAD_KEY);
    assert_eq!(spec.keys.signing, SigningKeyRef::default());
    assert_eq!(spec.ports.filer, 1);
    assert_eq!(spec.ports.spawner, 29786);
}

#[test]
fn the_documented_example_parses() {
    let rc: RouteConfig =
        serde_json::from_value(serde_json::to_value(serde_yaml_like(EXAMPLE)).unwrap()).unwrap();
    assert_eq!(rc.metadata.name.as_deref(), Some("route"));
    let spec = rc.spec;
    assert_eq!(spec.targets.container_ports, [8080]);
    assert_eq!(spec.services["pyos"], ServiceSpec { host: Some("pyos".into()), port: Some(8000) });
    let myapp = &spec.routes[0];
    assert_eq!(myapp.desktop_port, Some(8080));
    assert_eq!(myapp.rewrite, Some(RewriteSpec::StripPrefix));
    assert_eq!(
        myapp.token_sources.as_deref(),
        Some(
            &[
                TokenSourceSpec { header: Some("ABCAuthorization".into()), ..Default::default() },
                TokenSourceSpec { query: Some("jwt_token".into()), ..Default::default() },
                TokenSourceSpec { raw_query: Some(true), ..Default::default() },
            ][..]
        )
    );
    assert_eq!(spec.routes[1].enabled, Some(false));
    assert_eq!(spec.routes[1].paths, None);
    assert_eq!(spec.tls, Some(TlsSpec { secret_name: "route-tls".into() }));
}

/// YAML to JSON, as kubectl sends it to the API server.
fn serde_yaml_like(yaml: &str) -> serde_json::Value {
    serde_yaml::from_str(yaml).unwrap()
}

#[test]
fn crd_names_and_status_subresource() {
    let crd = RouteConfig::crd();
    assert_eq!(crd.metadata.name.as_deref(), Some("routeconfigs.route.abcdesktop.io"));
    assert_eq!(crd.spec.group, GROUP);
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, KIND);
    assert_eq!(crd.spec.names.short_names.as_deref(), Some(&["rtc".to_owned()][..]));
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, VERSION);
    assert!(version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some());
    assert_eq!(API_VERSION, format!("{GROUP}/{VERSION}"));
}

#[test]
#[ignore = "prints the CRD: cargo test -p route-crds -- --ignored --nocapture print_crd"]
fn print_crd() {
    println!("{}", serde_yaml::to_string(&RouteConfig::crd()).unwrap());
}

#[test]
fn schema_carries_ranges_enums_and_defaults() {
    let crd = serde_json::to_value(RouteConfig::crd()).unwrap();
    let num = |v: &serde_json::Value| v.as_f64();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    assert_eq!(num(&spec["ports"]["properties"]["filer"]["minimum"]), Some(1.0));
    assert_eq!(num(&spec["ports"]["properties"]["filer"]["maximum"]), Some(65535.0));
    assert_eq!(num(&spec["ports"]["properties"]["filer"]["default"]), Some(29783.0));
    assert_eq!(num(&spec["targets"]["properties"]["containerPorts"]["items"]["maximum"]), Some(65535.0));
    let route = &spec["routes"]["items"]["properties"];
    assert_eq!(num(&route["desktopPort"]["minimum"]), Some(1.0));
    let sorted = |v: &serde_json::Value| {
        let mut names: Vec<String> =
            v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect();
        names.sort();
        names
    };
    assert_eq!(sorted(&route["rewrite"]["enum"]), ["keep", "root", "stripPrefix"]);
    assert_eq!(
        sorted(&spec["jwt"]["properties"]["decryption"]["enum"]),
        ["oaep-sha1", "oaep-sha256", "pkcs1v15"]
    );
    assert_eq!(num(&spec["keys"]["properties"]["graceSeconds"]["default"]), Some(600.0));
    assert_eq!(
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["required"],
        serde_json::json!(["spec"])
    );
}
