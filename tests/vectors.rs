//! Every vector of tests/vectors/tokens.json (minted with pyos' own libraries) through the real
//! binary, with its key set loaded from the abcdesktop Secrets: a valid token is not refused
//! (200 from the upstream for 127.0.0.1, 502 for the pod FQDN that does not resolve), an
//! invalid one is 401. Each token goes in three ways: in `ABCAuthorization` on `/spawner`, in
//! the path of `/container/<JWT>/<port>/x`, and as `?jwt_token=` of a `/websockify` WebSocket.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;

use http::StatusCode;
use route_mint::KeySet;
use serde_json::{Value, json};
use support::ws::Handshake;
use support::{Manifest, Proxy, Req, Upstream};

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors");

struct Vector {
    name: String,
    token: String,
    valid: bool,
    target: Option<String>,
    valid_if_oaep: bool,
    valid_if_algorithms: Vec<String>,
}

fn vectors(set: &str) -> Vec<Vector> {
    let path = PathBuf::from(VECTORS).join("tokens.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).expect("tokens.json");
    let all: Vec<Vector> = doc["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|v| Vector {
            name: v["name"].as_str().expect("name").to_owned(),
            token: v["token"].as_str().expect("token").to_owned(),
            valid: v["valid"].as_bool().expect("valid"),
            target: v["target"].as_str().map(str::to_owned),
            valid_if_oaep: v["valid_if_oaep"].as_bool().unwrap_or(false),
            valid_if_algorithms: v["valid_if_algorithms"]
                .as_array()
                .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
        })
        .filter(|v| v.name.starts_with(&format!("{set}/")))
        .collect();
    assert!(all.len() >= 20, "only {} vectors for {set}", all.len());
    all
}

fn key_set(set: &str) -> KeySet {
    KeySet::read_dir(&PathBuf::from(VECTORS).join("keys").join(set)).expect("vector keys")
}

/// What a verdict must look like on the wire.
enum Expect {
    Valid,
    Invalid,
    /// Valid, target unknown to the vector file: anything but 401.
    NotRefused,
}

async fn check(proxy: &Proxy, up: &Upstream, v: &Vector, expect: &Expect) {
    let token = proxy.secret(&v.token);
    let port = up.port();
    for (how, req) in [
        ("ABCAuthorization", Req::get("/spawner/vector").abc(&token)),
        ("container path", Req::get(&format!("/container/{token}/{port}/vector"))),
    ] {
        let resp = proxy.send(req).await;
        let shown = format!("{} via {how}: {} {}", v.name, resp.status, resp.text().trim());
        match expect {
            Expect::Invalid => assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{shown}"),
            Expect::NotRefused => assert_ne!(resp.status, StatusCode::UNAUTHORIZED, "{shown}"),
            Expect::Valid => match v.target.as_deref() {
                Some("127.0.0.1") => {
                    assert_eq!(resp.status, StatusCode::OK, "{shown}");
                    assert_eq!(resp.seen().upstream, "spawner", "{shown}");
                }
                Some(_) => assert_eq!(resp.status, StatusCode::BAD_GATEWAY, "{shown}"),
                None => panic!("{}: a valid vector without a target", v.name),
            },
        }
    }

    let handshake = proxy.ws(&format!("/websockify?jwt_token={token}"), &[]).await;
    let outcome = match &handshake {
        Handshake::Open(..) => StatusCode::SWITCHING_PROTOCOLS,
        Handshake::Refused(status) => *status,
    };
    let shown = format!("{} via ?jwt_token= on a WebSocket: {outcome}", v.name);
    match expect {
        Expect::Invalid => assert_eq!(outcome, StatusCode::UNAUTHORIZED, "{shown}"),
        Expect::NotRefused => assert_ne!(outcome, StatusCode::UNAUTHORIZED, "{shown}"),
        Expect::Valid => match v.target.as_deref() {
            Some("127.0.0.1") => assert_eq!(outcome, StatusCode::SWITCHING_PROTOCOLS, "{shown}"),
            Some(_) => assert_eq!(outcome, StatusCode::BAD_GATEWAY, "{shown}"),
            None => panic!("{}: a valid vector without a target", v.name),
        },
    }
}

async fn run(set: &str, jwt: Value, verdict: impl Fn(&Vector) -> Option<Expect>) {
    let up = Upstream::start("spawner").await;
    let m =
        Manifest::new(&key_set(set)).port("spawner", up.port()).port("websockify", up.port()).set("jwt", jwt);
    let proxy = Proxy::start(&m).await;
    let mut checked = 0;
    for v in vectors(set) {
        if let Some(expect) = verdict(&v) {
            check(&proxy, &up, &v, &expect).await;
            checked += 1;
        }
    }
    assert!(checked > 0);
    proxy.finish();
}

/// Default settings: RS256 only, PKCS#1 v1.5: the verdict of the file.
fn default_verdict(v: &Vector) -> Option<Expect> {
    Some(if v.valid { Expect::Valid } else { Expect::Invalid })
}

/// RS512 allowed too: the same verdicts, except that RS512 tokens are accepted.
fn rs512_verdict(v: &Vector) -> Option<Expect> {
    if v.valid_if_algorithms.iter().any(|a| a == "RS512") {
        return Some(if v.target.is_some() { Expect::Valid } else { Expect::NotRefused });
    }
    default_verdict(v)
}

/// OAEP-SHA1 decryption: the OAEP vectors are accepted; every invalid vector that is invalid
/// for a reason other than padding stays invalid.
fn oaep_verdict(v: &Vector) -> Option<Expect> {
    if v.valid_if_oaep {
        return Some(if v.target.is_some() { Expect::Valid } else { Expect::NotRefused });
    }
    (!v.valid && v.valid_if_algorithms.is_empty()).then_some(Expect::Invalid)
}

fn jwt(algorithms: &[&str], decryption: &str) -> Value {
    json!({"algorithms": algorithms, "decryption": decryption})
}

#[tokio::test]
async fn rsa1024_pkcs1_default_settings() {
    run("rsa1024-pkcs1", jwt(&["RS256"], "pkcs1v15"), default_verdict).await;
}

#[tokio::test]
async fn rsa2048_pkcs8_default_settings() {
    run("rsa2048-pkcs8", jwt(&["RS256"], "pkcs1v15"), default_verdict).await;
}

#[tokio::test]
async fn rsa4096_pkcs8_default_settings() {
    run("rsa4096-pkcs8", jwt(&["RS256"], "pkcs1v15"), default_verdict).await;
}

#[tokio::test]
async fn rs512_allowed_when_configured() {
    for set in ["rsa1024-pkcs1", "rsa2048-pkcs8", "rsa4096-pkcs8"] {
        run(set, jwt(&["RS256", "RS512"], "pkcs1v15"), rs512_verdict).await;
    }
}

#[tokio::test]
async fn oaep_sha1_accepted_when_configured() {
    for set in ["rsa1024-pkcs1", "rsa2048-pkcs8", "rsa4096-pkcs8"] {
        run(set, jwt(&["RS256"], "oaep-sha1"), oaep_verdict).await;
    }
}

#[test]
fn the_vector_file_is_complete() {
    let total: usize =
        ["rsa1024-pkcs1", "rsa2048-pkcs8", "rsa4096-pkcs8"].iter().map(|s| vectors(s).len()).sum();
    assert_eq!(total, 66, "tokens.json should hold 66 vectors");
}
