//! spec.routes and spec.services merged by name over the built-ins.

use std::time::Duration;

use route_proxy::route_table::TokenSource;
use route_proxy::route_table::{Backend, Rewrite};

use super::{header, ok, query, spec};
use crate::test_support::{key_secrets, lookup};

fn settings(yaml: &str) -> route_proxy::Settings {
    ok(&spec(yaml), &key_secrets("rsa1024-pkcs1"))
}

#[test]
fn override_a_built_in_port_by_ports_or_by_route() {
    let s = settings("ports: {filer: 1000, websockify: 5900}\nroutes: [{name: spawner, desktopPort: 2000}]");
    let port = |path| match &lookup(&s, path).1.backend {
        Backend::Desktop { port, .. } => *port,
        other => panic!("{other:?}"),
    };
    assert_eq!(port("/filer"), 1000);
    assert_eq!(port("/websockify"), 5900);
    assert_eq!(port("/spawner"), 2000);
    // The other fields of the built-in are kept.
    let (_, spawner) = lookup(&s, "/spawner");
    assert_eq!(spawner.max_body, Some(8 * 1024 * 1024));
    assert_eq!(spawner.backend, Backend::Desktop { port: 2000, sources: vec![header("abcauthorization")] });
}

#[test]
fn override_fields_of_a_built_in() {
    let s = settings(
        r#"
routes:
  - name: websockify
    paths: [/websockify, /vnc]
    tokenSources: [{query: token}]
    rewrite: keep
    idleTimeoutSeconds: 60
  - {name: filer, maxBodyBytes: 10, readTimeoutSeconds: 5, websocket: true}
  - {name: speedtest, service: website}
"#,
    );
    let (_, vnc) = lookup(&s, "/vnc/x");
    assert_eq!(&*vnc.name, "websockify");
    assert_eq!(vnc.backend, Backend::Desktop { port: 6081, sources: vec![query("token")] });
    assert_eq!(vnc.rewrite, Rewrite::Keep);
    assert_eq!(vnc.idle_timeout, Duration::from_secs(60));
    assert!(vnc.websocket);
    let (_, filer) = lookup(&s, "/filer");
    assert_eq!(
        (filer.max_body, filer.read_timeout, filer.websocket),
        (Some(10), Duration::from_secs(5), true)
    );
    let (_, speedtest) = lookup(&s, "/speedtest");
    assert_eq!(speedtest.backend, Backend::Service { host: "website".into(), port: 80 });
    assert_eq!(speedtest.rewrite, Rewrite::StripPrefix);
}

#[test]
fn add_routes() {
    let s = settings(
        r#"
services: {grafana: {host: grafana.monitoring.svc}}
routes:
  - name: myapp
    paths: [/myapp]
    desktopPort: 8080
    tokenSources: [{header: ABCAuthorization}, {query: jwt_token}, {rawQuery: true}]
    rewrite: stripPrefix
    maxBodyBytes: 8388608
    websocket: true
  - {name: grafana, paths: [/grafana/], service: grafana, rewrite: stripPrefix}
  - {name: plain, paths: [/plain], desktopPort: 9000}
  - {name: pods, paths: [/pods], container: true}
"#,
    );
    let (_, myapp) = lookup(&s, "/myapp/x");
    assert_eq!(
        myapp.backend,
        Backend::Desktop {
            port: 8080,
            sources: vec![header("abcauthorization"), query("jwt_token"), TokenSource::RawQuery]
        }
    );
    assert_eq!(myapp.rewrite, Rewrite::StripPrefix);
    assert_eq!(myapp.max_body, Some(8 * 1024 * 1024));
    assert_eq!(
        (myapp.read_timeout, myapp.idle_timeout),
        (Duration::from_secs(60), Duration::from_secs(3600))
    );
    assert!(myapp.websocket);
    let (prefix, grafana) = lookup(&s, "/grafana/d/1");
    assert_eq!(prefix, "/grafana");
    assert_eq!(grafana.backend, Backend::Service { host: "grafana.monitoring.svc".into(), port: 80 });
    // New routes default: the ABCAuthorization header, the path kept, no body limit.
    let (_, plain) = lookup(&s, "/plain");
    assert_eq!(plain.backend, Backend::Desktop { port: 9000, sources: vec![header("abcauthorization")] });
    assert_eq!((plain.rewrite, plain.max_body, plain.websocket), (Rewrite::Keep, None, false));
    assert_eq!(
        lookup(&s, "/pods/80").1.backend,
        Backend::Container { sources: vec![header("abcauthorization")] }
    );
}

#[test]
fn disable_routes() {
    let s = settings(
        "routes: [{name: speedtest, enabled: false}, {name: pyos-image, enabled: false}, {name: ghost, enabled: false}]",
    );
    assert_eq!(&*lookup(&s, "/speedtest").1.name, "website");
    assert_eq!(&*lookup(&s, "/API/manager/image").1.name, "pyos");
    // A disabled route gives up its paths: another route may take them.
    let s = settings(
        "routes: [{name: console, enabled: false}, {name: admin, paths: [/console], desktopPort: 7000}]",
    );
    assert_eq!(&*lookup(&s, "/console").1.name, "admin");
}

#[test]
fn services_merge_by_name() {
    let s = settings("services: {pyos: {port: 8001}, website: {host: www.example.org, port: 8080}}");
    assert_eq!(lookup(&s, "/API").1.backend, Backend::Service { host: "pyos".into(), port: 8001 });
    assert_eq!(lookup(&s, "/").1.backend, Backend::Service { host: "www.example.org".into(), port: 8080 });
    assert_eq!(lookup(&s, "/console").1.backend, Backend::Service { host: "console".into(), port: 80 });
    let s = settings(r#"services: {pyos: {host: "[fd00::1]"}}"#);
    assert_eq!(lookup(&s, "/API").1.backend, Backend::Service { host: "fd00::1".into(), port: 8000 });
}
