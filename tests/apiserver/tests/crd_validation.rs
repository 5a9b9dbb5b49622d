//! CRD registration refuses what kube-apiserver refuses: non-structural schemas and printer
//! columns it would not serve; the project's own CRD goes through.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use http::Method;
use route_test_apiserver::TestApiServer;
use serde_json::{Value, json};

use common::*;

fn gadget_crd(versions: Value) -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.route.io"},
        "spec": {"group": "example.route.io", "scope": "Namespaced",
            "names": {"kind": "Gadget", "plural": "gadgets"}, "versions": versions}})
}

fn one_version(schema: Value) -> Value {
    gadget_crd(
        json!([{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": schema}}]),
    )
}

#[tokio::test]
async fn non_structural_crds_are_refused() {
    let server = TestApiServer::start().await.unwrap();
    let crd = one_version(
        json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}}),
    );
    let (code, _, body) =
        raw(&server, &format!("POST {CRDS} HTTP/1.1\r\nContent-Type: application/json"), &crd.to_string())
            .await;
    assert_eq!(code, 422, "{body}");
    let status: Value = serde_json::from_str(&body).unwrap();
    let field = "spec.validation.openAPIV3Schema.properties[spec].type";
    let detail = "Required value: must not be empty for specified object fields";
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        format!(
            r#"CustomResourceDefinition.apiextensions.k8s.io "gadgets.example.route.io" is invalid: {field}: {detail}"#
        )
    );
    assert_eq!(
        status["details"]["causes"],
        json!([{"reason": "FieldValueRequired", "message": detail, "field": field}])
    );
    assert!(server.get_json(&format!("{CRDS}/gadgets.example.route.io")).is_none());
    assert!(server.get_json("/apis/example.route.io/v1").is_none(), "nothing served");

    let refused = |schema: Value| {
        let e = api_error(server.request(Method::POST, CRDS, Some(&one_version(schema))));
        assert_eq!((e.code, e.reason), (422, "Invalid"), "{e:?}");
        let causes = e.details.unwrap()["causes"].as_array().unwrap().clone();
        causes
            .iter()
            .map(|c| format!("{}: {}", c["field"].as_str().unwrap(), c["message"].as_str().unwrap()))
            .collect::<Vec<_>>()
    };
    let at = "spec.validation.openAPIV3Schema";
    assert_eq!(
        refused(json!({"type": "object", "properties": {"m": {"type": "object",
            "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}}}})),
        [format!(
            "{at}.properties[m].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
        )]
    );
    assert_eq!(
        refused(json!({"type": "object", "properties": {"m": {"type": "object",
            "properties": {"a": {"type": "string"}}, "additionalProperties": false}}})),
        [format!(
            "{at}.properties[m].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
        )]
    );
    assert_eq!(
        refused(json!({"type": "object", "additionalProperties": {"type": "string"}})),
        [format!("{at}.additionalProperties: Forbidden: must not be used at the root")]
    );
    assert_eq!(
        refused(json!({"type": "object", "properties": {"metadata": {"type": "object",
            "properties": {"labels": {"type": "object"}}}}})),
        [format!(
            "{at}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
        )]
    );
    assert_eq!(
        refused(json!({"type": "object", "properties": {"l": {"type": "array"}, "s": {"type": "string",
            "anyOf": [{"type": "string", "description": "x"}]}}})),
        [
            format!("{at}.properties[l].items: Required value: must be specified"),
            format!("{at}.properties[s].anyOf[0].description: Forbidden: must be empty to be structural"),
            format!("{at}.properties[s].anyOf[0].type: Forbidden: must be empty to be structural"),
        ],
        "sorted as the server sorts them"
    );
    assert_eq!(
        refused(json!({"type": "object", "properties": {"l": {"type": "array", "items": {}}},
            "anyOf": [{"properties": {"x": {"minLength": 1}}}]})),
        [
            format!(
                "{at}.properties[l].items.type: Required value: must not be empty for specified array items"
            ),
            format!(
                "{at}.properties[x]: Required value: because it is defined in {at}.anyOf[0].properties[x]"
            ),
        ]
    );
    assert_eq!(
        refused(json!({"type": "string"})),
        [format!("{at}.type: Invalid value: \"string\": must be object at the root")]
    );
    assert_eq!(
        refused(json!({"type": "object", "properties": {"t": {"type": "text"}}})),
        [format!(
            r#"{at}.properties[t].type: Unsupported value: "text": supported values: "array", "boolean", "integer", "number", "object", "string""#
        )]
    );

    // Versions with different schemas are checked where they are.
    let versions = json!([
        {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}},
        {"name": "v2", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {}}}}},
    ]);
    let e = api_error(server.request(Method::POST, CRDS, Some(&gadget_crd(versions))));
    assert!(
        e.message.ends_with("spec.versions[1].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"),
        "{}",
        e.message
    );

    // What a structural schema may leave untyped, and the names metadata may restrict.
    let fine = json!({"type": "object", "properties": {
        "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}}},
        "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        "raw": {"x-kubernetes-preserve-unknown-fields": true},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        "open": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": true},
        "size": {"type": "integer", "anyOf": [{"minimum": 1}, {"maximum": -1}]}}});
    server.request(Method::POST, CRDS, Some(&one_version(fine))).unwrap();
}

#[tokio::test]
async fn printer_columns_are_checked_where_the_server_checks_them() {
    let server = TestApiServer::start().await.unwrap();
    let version = |name: &str, storage: bool, columns: Value| {
        json!({"name": name, "served": true, "storage": storage, "additionalPrinterColumns": columns,
            "schema": {"openAPIV3Schema": {"type": "object"}}})
    };
    let bad = json!([{"name": "Size", "type": "text", "jsonPath": "spec.size"}]);
    let e = api_error(server.request(
        Method::POST,
        CRDS,
        Some(&gadget_crd(json!([version("v1", true, bad.clone())]))),
    ));
    assert!(
        e.message.ends_with(
            r#"[spec.additionalPrinterColumns[0].type: Invalid value: "text": must be one of boolean,date,integer,number,string, spec.additionalPrinterColumns[0].JSONPath: Invalid value: "spec.size": must be a simple json path starting with .]"#
        ),
        "{}",
        e.message
    );
    let versions = json!([version("v1", true, bad), version("v2", false, json!([]))]);
    let e = api_error(server.request(Method::POST, CRDS, Some(&gadget_crd(versions))));
    assert!(
        e.message.contains("spec.versions[0].additionalPrinterColumns[0].type: Invalid value"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn the_project_crd_is_accepted() {
    let server = TestApiServer::start().await.unwrap();
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../charts/route/crds/routeconfig.yaml"
    ))
    .unwrap();
    let crd: Value = serde_yaml::from_str(&yaml).unwrap();
    let created = server.request(Method::POST, CRDS, Some(&crd)).unwrap();
    assert_eq!(created["status"]["conditions"][1]["type"], "Established");
    assert!(server.get_json("/apis/route.abcdesktop.io/v1alpha1/namespaces/default/routeconfigs").is_some());
}
