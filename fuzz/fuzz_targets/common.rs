//! What every target shares: the settings of a default RouteConfig with the `rsa1024-pkcs1`
//! vector keys (read once from `tests/vectors`), and a token those keys accept.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use route_operator::{Context, Secrets};
use route_proxy::Settings;

/// The vector key set the targets load.
const SET: &str = "rsa1024-pkcs1";

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

/// The two abcdesktop Secrets with the vector key set's four PEM files.
pub fn secrets() -> &'static Secrets {
    static SECRETS: OnceLock<Secrets> = OnceLock::new();
    SECRETS.get_or_init(|| {
        let dir = vectors().join("keys").join(SET);
        let files = |kind: &str| -> BTreeMap<String, Vec<u8>> {
            ["private", "public"]
                .iter()
                .map(|half| {
                    let name = format!("abcdesktop_jwt_desktop_{kind}_{half}_key.pem");
                    let bytes = std::fs::read(dir.join(&name)).expect("vector key file");
                    (name, bytes)
                })
                .collect()
        };
        Secrets::from([
            ("abcdesktopjwtdesktopsigning".to_owned(), files("signing")),
            ("abcdesktopjwtdesktoppayload".to_owned(), files("payload")),
        ])
    })
}

pub fn ctx() -> Context {
    Context { node_name: "fuzz".into(), source: "fuzz".into() }
}

/// The settings of `spec: {}` with the vector keys.
pub fn settings() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        route_proxy::auth::jwt::install_provider();
        route_operator::translate(&route_crds::RouteConfigSpec::default(), secrets(), &ctx())
            .expect("default settings translate")
    })
}

/// A token of the vector set that the settings accept (target 127.0.0.1, exp in 2100).
pub fn token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let text = std::fs::read_to_string(vectors().join("tokens.json")).expect("tokens.json");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
        doc["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .find(|v| v["name"] == format!("{SET}/valid-ip").as_str())
            .and_then(|v| v["token"].as_str())
            .expect("the valid-ip vector")
            .to_owned()
    })
}
