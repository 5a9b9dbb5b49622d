//! The CRD in `charts/route/crds/` is exactly what `route crd` prints.

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
