//! Manifests: files and folders, Secrets' data and stringData, and every refusal.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use route_crds::{PAYLOAD_KEY, SIGNING_KEY};
use route_proxy::Settings;
use route_proxy::metrics::Metrics;

use super::{check, load, watch};
use crate::Publisher;
use crate::test_support::{ctx, messages, pem};

const SET: &str = "rsa2048-pkcs8";
const ROUTE_CONFIG: &str = "apiVersion: route.abcdesktop.io/v1alpha1\nkind: RouteConfig\nmetadata: {name: route, namespace: abcdesktop}\nspec: {}\n";

fn signing_pem() -> Vec<u8> {
    pem(SET, "abcdesktop_jwt_desktop_signing_public_key.pem")
}

fn payload_pem() -> Vec<u8> {
    pem(SET, "abcdesktop_jwt_desktop_payload_private_key.pem")
}

/// The signing Secret with `data` (base64), as `kubectl create secret` writes it.
fn signing_secret() -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: abcdesktopjwtdesktopsigning}}\ndata:\n  {SIGNING_KEY}: {}\n",
        STANDARD.encode(signing_pem())
    )
}

/// The payload Secret with `stringData` (a literal block), as a person writes it.
fn payload_secret() -> String {
    let text = String::from_utf8(payload_pem()).unwrap();
    let block: String = text.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: abcdesktopjwtdesktoppayload}}\nstringData:\n  {PAYLOAD_KEY}: |\n{block}"
    )
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn load_errors(path: &Path) -> Vec<String> {
    match load(path, &ctx()) {
        Ok(_) => panic!("loaded"),
        Err(errors) => messages(&errors),
    }
}

fn fingerprints(settings: &Settings) -> (String, String) {
    let keys = &settings.auth.keys;
    (keys.signing[0].key.fingerprint().to_owned(), keys.payload[0].key.fingerprint().to_owned())
}

fn expected_fingerprints() -> (String, String) {
    let signing = route_proxy::keys::VerifyKey::from_pem(&signing_pem()).unwrap();
    let payload = route_proxy::keys::DecryptKey::from_pem(&payload_pem()).unwrap();
    (signing.fingerprint().to_owned(), payload.fingerprint().to_owned())
}

#[test]
fn one_multi_document_file_with_data_and_string_data() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("---\n{ROUTE_CONFIG}---\n{}---\n{}---\n", signing_secret(), payload_secret());
    let file = write(dir.path(), "route.yaml", &text);
    let settings = load(&file, &ctx()).unwrap();
    assert_eq!(fingerprints(&settings), expected_fingerprints());
    assert_eq!(settings.routes.len(), 24);
    let summary = check(&file, &ctx()).unwrap();
    assert!(summary.contains("/websockify -> websockify (desktop:6081)"), "{summary}");
    assert!(summary.contains(&expected_fingerprints().0), "{summary}");
}

#[test]
fn string_data_wins_over_data() {
    let dir = tempfile::tempdir().unwrap();
    let payload = payload_secret().replace(
        "stringData:",
        &format!("data:\n  {PAYLOAD_KEY}: {}\n  other: b3RoZXI=\nstringData:", STANDARD.encode("not a key")),
    );
    let text = [ROUTE_CONFIG, &signing_secret(), &payload].join("---\n");
    let settings = load(&write(dir.path(), "all.yaml", &text), &ctx()).unwrap();
    assert_eq!(fingerprints(&settings), expected_fingerprints());
}

#[test]
fn a_folder_reads_its_yaml_files_in_order_and_skips_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "10-route.yaml", ROUTE_CONFIG);
    write(dir.path(), "20-signing.yml", &signing_secret());
    write(dir.path(), "30-payload.yaml", &payload_secret());
    // Not read: hidden (a ConfigMap's `..data` swaps), other extensions, sub-folders.
    write(dir.path(), ".hidden.yaml", ROUTE_CONFIG);
    write(dir.path(), "notes.txt", "not: [yaml");
    std::fs::create_dir(dir.path().join("sub.yaml")).unwrap();
    write(&dir.path().join("sub.yaml"), "x.yaml", ROUTE_CONFIG);
    // Other kinds are ignored, empty documents too.
    write(
        dir.path(),
        "40-other.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n---\n---\n",
    );
    let settings = load(dir.path(), &ctx()).unwrap();
    assert_eq!(fingerprints(&settings), expected_fingerprints());
}

#[test]
fn exactly_one_route_config() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", &signing_secret());
    assert_eq!(
        load_errors(dir.path()),
        [format!("{}: no RouteConfig (route.abcdesktop.io/v1alpha1) found", dir.path().display())]
    );
    write(
        dir.path(),
        "b.yaml",
        &format!("{ROUTE_CONFIG}---\n{}", ROUTE_CONFIG.replace("name: route", "name: two")),
    );
    let b = dir.path().join("b.yaml").display().to_string();
    assert_eq!(
        load_errors(dir.path()),
        [
            format!(
                "{b} (document 2): a second RouteConfig: one is expected, the first is in {b} (document 1)"
            ),
            // The first RouteConfig is still translated, over the Secrets there are.
            "Secret abcdesktopjwtdesktoppayload: not found (named by spec.keys.payload.secretName)"
                .to_owned(),
        ]
    );
}

#[test]
fn a_missing_secret_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "route.yaml", &[ROUTE_CONFIG, &signing_secret()].join("---\n"));
    assert_eq!(
        load_errors(&file),
        ["Secret abcdesktopjwtdesktoppayload: not found (named by spec.keys.payload.secretName)"]
    );
}

#[test]
fn refusals_name_the_file_and_document() {
    let dir = tempfile::tempdir().unwrap();
    let typo = ROUTE_CONFIG
        .replace("spec: {}", "spec:\n  routes: [{name: a, paths: [/a], desktopport: 1}]\n  nodename: x");
    let bad_type = ROUTE_CONFIG.replace("spec: {}", "spec:\n  ports:\n    filer: many");
    let text = [
        typo.as_str(),
        "just: a map\n",
        &ROUTE_CONFIG.replace("v1alpha1", "v1"),
        &bad_type,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: abcdesktopjwtdesktopsigning}\nstringData: {a: b}\n",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: abcdesktopjwtdesktopsigning}\nstringData: {a: b}\n",
        "apiVersion: v1\nkind: Secret\nmetadata: {}\n",
    ]
    .join("---\n");
    let file = write(dir.path(), "bad.yaml", &text);
    let at = |n: usize| format!("{} (document {n})", file.display());
    let errors = load_errors(&file);
    assert_eq!(errors[0], format!("{}: spec.routes[0].desktopport: unknown field", at(1)));
    assert_eq!(errors[1], format!("{}: spec.nodename: unknown field", at(1)));
    assert_eq!(errors[2], format!("{}: not a Kubernetes object: apiVersion and kind are needed", at(2)));
    assert_eq!(
        errors[3],
        format!(
            "{}: apiVersion route.abcdesktop.io/v1 of RouteConfig is not supported: use route.abcdesktop.io/v1alpha1",
            at(3)
        )
    );
    assert!(
        errors[4].starts_with(&format!(
            "{}: spec.ports.filer: invalid type: string \"many\", expected i32",
            at(4)
        )),
        "{}",
        errors[4]
    );
    assert!(errors[4].contains("line "), "{}", errors[4]);
    assert_eq!(errors[5], format!("{}: Secret abcdesktopjwtdesktopsigning is also in {}", at(6), at(5)));
    assert_eq!(errors[6], format!("{}: Secret without metadata.name", at(7)));
    // Then the first RouteConfig's translation, over the Secrets that were read.
    assert_eq!(
        errors[7..],
        [
            "Secret abcdesktopjwtdesktopsigning: key abcdesktop_jwt_desktop_signing_public_key.pem missing",
            "Secret abcdesktopjwtdesktoppayload: not found (named by spec.keys.payload.secretName)",
            // Its typo'd `desktopport` was not read.
            "spec.routes[0]: a new route needs one of desktopPort, service or container: true",
        ],
        "{errors:#?}"
    );
}

#[test]
fn unknown_fields_and_bad_values_are_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    let text = ROUTE_CONFIG
        .replace("spec: {}", "spec:\n  routes: [{name: a, paths: [/a], desktopPort: 0, rewrit: x}]");
    let file =
        write(dir.path(), "route.yaml", &[text.as_str(), &signing_secret(), &payload_secret()].join("---\n"));
    assert_eq!(
        load_errors(&file),
        [
            format!("{} (document 1): spec.routes[0].rewrit: unknown field", file.display()),
            "spec.routes[0].desktopPort: 0 is not a port (1 to 65535)".to_owned(),
        ]
    );
}

#[test]
fn secret_errors_never_quote_values() {
    let dir = tempfile::tempdir().unwrap();
    let pem = String::from_utf8(payload_pem()).unwrap();
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: abcdesktopjwtdesktoppayload}}\ndata: {:?}\n",
        pem
    );
    let file = write(dir.path(), "route.yaml", &[ROUTE_CONFIG, &signing_secret(), &secret].join("---\n"));
    let errors = load_errors(&file);
    assert!(
        errors[0].starts_with(&format!(
            "{} (document 3): data: invalid type: string \"<redacted>\", expected a map",
            file.display()
        )),
        "{errors:#?}"
    );
    assert!(errors.iter().all(|e| !e.contains("PRIVATE") && !e.contains("MII")), "{errors:#?}");
    assert_eq!(super::redact_quoted(r#"a "b\"c" d "e""#), r#"a "<redacted>" d "<redacted>""#);
}

#[test]
fn yaml_syntax_and_unreadable_paths() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "broken.yaml", "a: [b\n");
    let errors = load_errors(&file);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with(&format!("{} (document 1): not YAML: ", file.display())), "{}", errors[0]);
    let missing = dir.path().join("missing");
    assert_eq!(
        load_errors(&missing),
        [format!("{}: cannot read: No such file or directory", missing.display())]
    );
}

/// Polls until `f` holds, for at most 5 s.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}

#[tokio::test]
async fn watch_publishes_changes_and_keeps_the_last_good() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "route.yaml", &[ROUTE_CONFIG, &signing_secret(), &payload_secret()].join("---\n"));
    let (tx, rx) = Settings::channel();
    let metrics = Arc::new(Metrics::new());
    let publisher = Publisher::new(tx, Arc::clone(&metrics));
    let task =
        tokio::spawn(watch(dir.path().to_owned(), ctx(), publisher.clone(), Duration::from_millis(20)));
    // Nothing was published: the watch publishes the files at once.
    eventually("first publish", || rx.borrow().generation == 1).await;

    // A bad edit is rejected; the last good settings keep serving.
    write(
        dir.path(),
        "route.yaml",
        &[
            ROUTE_CONFIG.replace("{}", "{nodeName: 1, cache: {maxEntries: 0}}"),
            signing_secret(),
            payload_secret(),
        ]
        .join("---\n"),
    );
    eventually("rejection", || metrics.encode().contains("route_settings_last_reload_success 0")).await;
    assert_eq!(rx.borrow().generation, 1);

    // A good edit is published.
    write(
        dir.path(),
        "route.yaml",
        &[ROUTE_CONFIG.replace("{}", "{nodeName: edited}"), signing_secret(), payload_secret()].join("---\n"),
    );
    eventually("second publish", || rx.borrow().generation == 2).await;
    assert_eq!(rx.borrow().node_name, "edited");
    // Unchanged bytes publish nothing more.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rx.borrow().generation, 2);
    task.abort();
}

#[tokio::test]
async fn watch_after_load_does_not_publish_the_same_files_again() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "route.yaml", &[ROUTE_CONFIG, &signing_secret(), &payload_secret()].join("---\n"));
    let (tx, rx) = Settings::channel();
    let publisher = Publisher::new(tx, Arc::new(Metrics::new()));
    publisher.publish(load(dir.path(), &ctx()).unwrap());
    let task =
        tokio::spawn(watch(dir.path().to_owned(), ctx(), publisher.clone(), Duration::from_millis(20)));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(rx.borrow().generation, 1);
    write(
        dir.path(),
        "route.yaml",
        &[ROUTE_CONFIG.replace("{}", "{nodeName: edited}"), signing_secret(), payload_secret()].join("---\n"),
    );
    eventually("publish of the edit", || rx.borrow().generation == 2).await;
    task.abort();
}
