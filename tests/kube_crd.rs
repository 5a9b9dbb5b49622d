//! The CRD in `charts/route/crds/` is exactly what `route crd` prints; its CIDR pattern, on the
//! real kube-apiserver, refuses nothing translate() accepts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

const CHART_CRD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/route/crds/routeconfig.yaml");

#[tokio::test]
async fn the_chart_crd_is_what_route_crd_prints() {
    let out = support::proxy::run(&["crd"], &[]).await;
    assert!(out.status.success(), "route crd: {}", out.stderr);
    let committed = std::fs::read_to_string(CHART_CRD).unwrap_or_default();
    assert!(
        committed == out.stdout,
        "charts/route/crds/routeconfig.yaml differs from what `route crd` prints (the types in crds/src \
         changed?). Regenerate it with:\n    cargo run -q -- crd > charts/route/crds/routeconfig.yaml"
    );
    let crd: serde_json::Value = serde_yaml::from_str(&out.stdout).unwrap();
    assert_eq!(crd["metadata"]["name"], "routeconfigs.route.abcdesktop.io");
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "rtc");
    assert!(crd["spec"]["versions"][0]["subresources"]["status"].is_object());
}

#[tokio::test]
async fn the_cidr_pattern_refuses_no_cidr_translate_accepts() {
    use route_crds::RouteConfigSpec;
    use route_operator::{Context, Secrets, translate};
    use serde_json::json;

    let Some(cluster) =
        support::kube::Cluster::start("the_cidr_pattern_refuses_no_cidr_translate_accepts").await
    else {
        return;
    };

    // (CIDR, whether translate() accepts it)
    let cidrs = [
        ("10.244.0.0/16", true),
        ("10.0.0.1/32", true),
        ("0.0.0.0/0", true),
        ("10.0.0.0/08", true),
        (" 10.0.0.0/8 ", true),
        ("fd00::/8", true),
        ("::/0", true),
        ("2001:db8::1/128", true),
        ("2001:db8::/064", true),
        ("::ffff:10.0.0.1/120", true),
        // Refused by both (the pattern, now, for the prefixes):
        ("10.0.0.0/33", false),
        ("10.0.0.0/999", false),
        ("10.0.0.0/032", false),
        ("fd00::/129", false),
        ("fd00::/999", false),
        ("fd00::/0128", false),
        // Refused by translate() only: the pattern leaves the address to it.
        ("10.0.0/8", false),
        ("300.0.0.0/8", false),
        ("fd00:::/8", false),
    ];
    let mut refused_by_schema = Vec::new();
    for (i, (cidr, accepted)) in cidrs.into_iter().enumerate() {
        let spec = json!({"targets": {"allowedCidrs": [cidr]}});
        let object = json!({
            "apiVersion": "route.abcdesktop.io/v1alpha1",
            "kind": "RouteConfig",
            "metadata": {"name": format!("c{i}")},
            "spec": spec,
        });
        let out = cluster.try_apply(&object.to_string()).await;
        let schema = if out.ok { Ok(()) } else { Err(out.stderr) };
        let parsed: RouteConfigSpec = serde_json::from_value(spec).unwrap();
        let ctx = Context { node_name: "node".to_owned(), source: "test".to_owned() };
        let translated = match translate(&parsed, &Secrets::new(), &ctx) {
            Ok(_) => Vec::new(),
            Err(errors) => {
                errors.into_iter().filter(|e| e.place.starts_with("spec.targets.allowedCidrs")).collect()
            }
        };
        assert_eq!(translated.is_empty(), accepted, "{cidr:?}: translate(): {translated:?}");
        match &schema {
            Ok(_) => {}
            Err(err) => {
                assert!(
                    !translated.is_empty(),
                    "{cidr:?}: the schema refuses what translate() accepts: {err}"
                );
                // 1.20 names the list (`spec.targets.allowedCidrs`), later versions the item.
                assert!(err.contains("spec.targets.allowedCidrs"), "{cidr:?}: {err}");
                refused_by_schema.push(cidr);
            }
        }
    }
    assert_eq!(
        refused_by_schema,
        ["10.0.0.0/33", "10.0.0.0/999", "10.0.0.0/032", "fd00::/129", "fd00::/999", "fd00::/0128"],
    );
}
