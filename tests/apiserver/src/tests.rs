//! Unit tests of the pure parts: JSONPath, ages, selectors, patches, content negotiation,
//! version ordering, protobuf decoding.

use serde_json::json;

use crate::media::{self, Output};
use crate::resources::{Registry, version_priority};
use crate::selector::Selector;
use crate::table::{Include, eval, human_duration};
use crate::watch::Format;
use crate::{patch, protobuf};

#[test]
fn jsonpath_subset() {
    let o = json!({"status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]},
        "metadata": {"labels": {"app.kubernetes.io/name": "route"}}, "spec": {"n": 3, "list": [1, 2]}});
    assert_eq!(eval(r#".status.conditions[?(@.type=="Ready")].status"#, &o), [&json!("True")]);
    assert_eq!(eval(".status.conditions[?(@.type!='Ready')].type", &o), [&json!("Synced")]);
    assert_eq!(eval("{.spec.n}", &o), [&json!(3)]);
    assert_eq!(eval(".spec.list[1]", &o), [&json!(2)]);
    assert_eq!(eval(".spec.list[*]", &o).len(), 2);
    assert_eq!(eval(r".metadata.labels.app\.kubernetes\.io/name", &o), [&json!("route")]);
    assert_eq!(eval(".metadata.labels['app.kubernetes.io/name']", &o), [&json!("route")]);
    assert!(eval(".spec.missing", &o).is_empty());
    assert!(eval("spec", &o).is_empty(), "not a path");
}

#[test]
fn ages_as_kubectl_prints_them() {
    let cases = [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (119, "119s"),
        (125, "2m5s"),
        (600, "10m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 60, "3h1m"),
        (30 * 3600, "30h"),
        (50 * 3600, "2d2h"),
        (10 * 86400, "10d"),
        (800 * 86400, "2y70d"),
    ];
    for (seconds, text) in cases {
        assert_eq!(human_duration(seconds), text, "{seconds}");
    }
}

#[test]
fn label_and_field_selectors() {
    let registry = Registry::with_builtins();
    let secrets = registry.get("", "secrets").unwrap();
    let o = json!({"metadata": {"name": "a", "namespace": "ns", "labels": {"app": "web", "tier": "1"}}, "type": "Opaque"});
    let matches = |l: Option<&str>, f: Option<&str>| Selector::parse(&secrets, l, f).unwrap().matches(&o);
    assert!(matches(Some("app=web,tier"), None));
    assert!(matches(Some("app==web"), Some("metadata.name=a,type=Opaque")));
    assert!(!matches(Some("app!=web"), None));
    assert!(matches(Some("app in (db, web)"), None));
    assert!(!matches(Some("app notin (web)"), None));
    assert!(matches(Some("!missing"), Some("metadata.namespace!=other")));
    assert!(!matches(None, Some("metadata.name=b")));
    assert_eq!(Selector::parse(&secrets, None, Some("data.x=1")).unwrap_err().code, 400);
    assert_eq!(Selector::parse(&secrets, Some("a in (x"), None).unwrap_err().code, 400);
}

#[test]
fn merge_json_and_strategic_patches() {
    let mut o = json!({"a": {"b": 1, "c": 2}, "l": [1, 2], "metadata": {"finalizers": ["x"]}});
    patch::merge(&mut o, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
    assert_eq!(o["a"], json!({"c": 2, "d": 3}));
    assert_eq!(o["l"], json!([3]));

    patch::json_patch(
        &mut o,
        &json!([{"op": "add", "path": "/l/-", "value": 4}, {"op": "move", "from": "/a/c", "path": "/e"},
        {"op": "test", "path": "/e", "value": 2}, {"op": "remove", "path": "/a"}]),
    )
    .unwrap();
    assert_eq!((o["l"].clone(), o["e"].clone(), o.get("a")), (json!([3, 4]), json!(2), None));
    assert_eq!(
        patch::json_patch(&mut o, &json!([{"op": "test", "path": "/e", "value": 9}])).unwrap_err().code,
        422
    );
    assert_eq!(patch::json_patch(&mut o, &json!({"op": "add"})).unwrap_err().code, 400);

    patch::strategic(
        &mut o,
        &json!({"metadata": {"finalizers": ["y"], "$setElementOrder/finalizers": ["x", "y"]},
        "data": {"k": "v", "$patch": "replace"}, "$retainKeys": ["metadata", "data", "l"]}),
    )
    .unwrap();
    assert_eq!(o["metadata"]["finalizers"], json!(["x", "y"]), "finalizers merge");
    assert_eq!(o["data"], json!({"k": "v"}));
    assert!(o.get("e").is_none(), "retainKeys");
    patch::strategic(&mut o, &json!({"$deleteFromPrimitiveList/l": [3]})).unwrap();
    assert_eq!(o["l"], json!([4]));
}

#[test]
fn content_negotiation() {
    let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    assert_eq!(
        media::output(Some(table), Include::Metadata),
        Some(Output { format: Format::Table(Include::Metadata), yaml: false })
    );
    assert_eq!(media::output(None, Include::None).map(|o| o.format), Some(Format::Object));
    assert_eq!(
        media::output(Some("application/vnd.kubernetes.protobuf, */*"), Include::None).map(|o| o.format),
        Some(Format::Object)
    );
    assert_eq!(media::output(Some("application/yaml"), Include::None).map(|o| o.yaml), Some(true));
    assert_eq!(media::output(Some("application/vnd.kubernetes.protobuf"), Include::None), None);
    let aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    assert_eq!(media::aggregated_discovery(Some(aggregated)), Some("v2"));
    assert_eq!(media::aggregated_discovery(Some("application/json")), None);
}

#[test]
fn kubernetes_version_order() {
    let mut versions = vec!["v1alpha1", "v2", "v1beta2", "v1", "v1beta1", "v10", "foo"];
    versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    assert_eq!(versions, ["v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]);
}

#[test]
fn protobuf_secret_body() {
    // k8s\0 + Unknown{typeMeta{apiVersion: v1, kind: Secret}, raw: Secret{metadata{name: s}, data{a: "b"}, type: Opaque}}
    fn field(n: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(n << 3) | 2, u8::try_from(bytes.len()).unwrap()];
        out.extend_from_slice(bytes);
        out
    }
    let type_meta = [field(1, b"v1"), field(2, b"Secret")].concat();
    let meta = field(1, b"s");
    let entry = [field(1, b"a"), field(2, b"b")].concat();
    let secret = [field(1, &meta), field(2, &entry), field(3, b"Opaque")].concat();
    let body = [b"k8s\x00".to_vec(), field(1, &type_meta), field(2, &secret)].concat();
    let decoded = protobuf::decode(&body).unwrap();
    assert_eq!(
        decoded,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "Yg=="}, "type": "Opaque"})
    );
    assert_eq!(protobuf::decode(b"nope").unwrap_err().code, 400);
}
