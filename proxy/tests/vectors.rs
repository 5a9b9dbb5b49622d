//! Every token of `tests/vectors/tokens.json` (minted with pyos' own libraries) gets the
//! verdict it states, with every key set, through the real verifier.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use route_mint::{PAYLOAD_PRIVATE, SIGNING_PUBLIC, unix_now};
use route_proxy::auth::{AuthError, resolve_uncached};
use route_proxy::keys::{DecryptKey, VerifyKey};
use route_proxy::settings::{AuthSettings, Decryption, KeyRing};
use serde_json::Value;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

fn auth_for(set: &str) -> AuthSettings {
    let dir = vectors_dir().join("keys").join(set);
    let signing = VerifyKey::from_pem(&std::fs::read(dir.join(SIGNING_PUBLIC)).unwrap()).unwrap();
    let payload = DecryptKey::from_pem(&std::fs::read(dir.join(PAYLOAD_PRIVATE)).unwrap()).unwrap();
    AuthSettings { keys: KeyRing::current(signing, payload), ..AuthSettings::default() }
}

fn vectors() -> Vec<Value> {
    let text = std::fs::read_to_string(vectors_dir().join("tokens.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["tokens"].as_array().unwrap().clone()
}

#[test]
fn every_vector_gets_its_verdict_with_default_settings() {
    route_proxy::auth::jwt::install_provider();
    let now = unix_now();
    let vectors = vectors();
    assert_eq!(vectors.len(), 66, "the vector file changed: review this test");
    for v in &vectors {
        let name = v["name"].as_str().unwrap();
        let auth = auth_for(v["keys"].as_str().unwrap());
        let result = resolve_uncached(v["token"].as_str().unwrap(), &auth, now);
        if v["valid"].as_bool().unwrap() {
            let resolved = result.unwrap_or_else(|e| panic!("{name}: refused ({e})"));
            assert_eq!(resolved.target.host(), v["target"].as_str().unwrap(), "{name}");
        } else {
            assert!(result.is_err(), "{name}: accepted, must be refused ({})", v["why"]);
        }
    }
}

#[test]
fn oaep_and_other_algorithms_verify_when_configured() {
    route_proxy::auth::jwt::install_provider();
    let now = unix_now();
    let mut seen = 0;
    for v in vectors() {
        let name = v["name"].as_str().unwrap();
        let token = v["token"].as_str().unwrap();
        let mut auth = auth_for(v["keys"].as_str().unwrap());
        if v.get("valid_if_oaep").is_some() {
            assert_eq!(v["oaep"], "sha1");
            auth.decryption = Decryption::OaepSha1;
        } else if let Some(algs) = v.get("valid_if_algorithms") {
            auth.algorithms =
                algs.as_array().unwrap().iter().map(|a| a.as_str().unwrap().parse().unwrap()).collect();
        } else {
            continue;
        }
        seen += 1;
        let resolved = resolve_uncached(token, &auth, now).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(resolved.target.host(), "127.0.0.1", "{name}");
    }
    assert_eq!(seen, 6);
}

#[test]
fn refusals_name_the_right_reason() {
    route_proxy::auth::jwt::install_provider();
    let now = unix_now();
    let by_name: std::collections::HashMap<String, Value> =
        vectors().into_iter().map(|v| (v["name"].as_str().unwrap().to_owned(), v)).collect();
    let auth = auth_for("rsa2048-pkcs8");
    let reason = |case: &str| {
        let v = &by_name[&format!("rsa2048-pkcs8/{case}")];
        resolve_uncached(v["token"].as_str().unwrap(), &auth, now).unwrap_err()
    };
    assert_eq!(reason("expired"), AuthError::Expired);
    assert_eq!(reason("missing-exp"), AuthError::Claims);
    assert_eq!(reason("string-exp"), AuthError::Claims);
    assert_eq!(reason("nbf-future"), AuthError::NotYetValid);
    // jsonwebtoken knows no `none` algorithm: such a header does not even parse.
    assert_eq!(reason("alg-none"), AuthError::Malformed);
    assert_eq!(reason("alg-hs256-public-key"), AuthError::Algorithm);
    assert_eq!(reason("enc-header-bypass"), AuthError::Header);
    assert_eq!(reason("alg-rs512"), AuthError::Algorithm);
    assert_eq!(reason("wrong-signing-key"), AuthError::Signature);
    assert_eq!(reason("tampered-claims"), AuthError::Signature);
    assert_eq!(reason("missing-hash"), AuthError::Hash);
    assert_eq!(reason("hash-not-base64"), AuthError::Hash);
    assert_eq!(reason("hash-other-payload-key"), AuthError::Decrypt);
    assert_eq!(reason("target-with-port"), AuthError::Target);
    assert_eq!(reason("target-with-path"), AuthError::Target);
    assert_eq!(reason("not-a-jwt"), AuthError::Malformed);
    assert_eq!(reason("two-segments"), AuthError::Malformed);
    assert_eq!(reason("oaep-sha1-hash"), AuthError::Decrypt);
}
