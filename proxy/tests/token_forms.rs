//! Token forms the pyos vectors do not carry: the optional algorithms and OAEP-SHA256 work only
//! when configured, and a correctly signed token with `crit`, `zip` or `enc` is still refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use jsonwebtoken::Algorithm;
use route_mint::{KeySet, Minter, PrivateFormat, unix_now};
use route_proxy::auth::{AuthError, resolve_uncached};
use route_proxy::keys::{DecryptKey, VerifyKey};
use route_proxy::settings::{AuthSettings, Decryption, KeyRing};

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| KeySet::generate(2048, PrivateFormat::Pkcs8).unwrap())
}

fn auth(algorithms: &[Algorithm], decryption: Decryption) -> AuthSettings {
    let keys = keys();
    AuthSettings {
        keys: KeyRing::current(
            VerifyKey::from_pem(keys.signing_public.as_bytes()).unwrap(),
            DecryptKey::from_pem(keys.payload_private.as_bytes()).unwrap(),
        ),
        algorithms: algorithms.to_vec(),
        decryption,
        ..AuthSettings::default()
    }
}

fn resolve(token: &str, auth: &AuthSettings) -> Result<String, AuthError> {
    resolve_uncached(token, auth, unix_now()).map(|r| r.target.host().to_owned())
}

#[test]
fn optional_algorithms_verify_only_when_configured() {
    route_proxy::auth::jwt::install_provider();
    let now = unix_now();
    for alg in [Algorithm::RS384, Algorithm::RS512, Algorithm::PS256, Algorithm::PS384, Algorithm::PS512] {
        let token = Minter::from_key_set(keys())
            .unwrap()
            .with_algorithm(alg)
            .mint("10.0.0.7", now, now + 60)
            .unwrap();
        assert_eq!(
            resolve(&token, &auth(&[Algorithm::RS256], Decryption::Pkcs1v15)),
            Err(AuthError::Algorithm),
            "{alg:?}"
        );
        let allowed = auth(&[Algorithm::RS256, alg], Decryption::Pkcs1v15);
        assert_eq!(resolve(&token, &allowed).as_deref(), Ok("10.0.0.7"), "{alg:?}");
    }
}

#[test]
fn oaep_sha256_decrypts_only_when_configured() {
    route_proxy::auth::jwt::install_provider();
    let now = unix_now();
    let minter = Minter::from_key_set(keys()).unwrap().with_padding(route_mint::Padding::OaepSha256);
    let token = minter.mint("10.0.0.8", now, now + 60).unwrap();
    assert_eq!(
        resolve(&token, &auth(&[Algorithm::RS256], Decryption::OaepSha256)).as_deref(),
        Ok("10.0.0.8")
    );
    for other in [Decryption::Pkcs1v15, Decryption::OaepSha1] {
        assert_eq!(resolve(&token, &auth(&[Algorithm::RS256], other)), Err(AuthError::Decrypt), "{other:?}");
    }
}

#[test]
fn signed_tokens_with_crit_zip_or_enc_are_refused() {
    route_proxy::auth::jwt::install_provider();
    let now = unix_now();
    let minter = Minter::from_key_set(keys()).unwrap();
    let hash = minter.encrypt_target("10.0.0.9").unwrap();
    let claims = format!(r#"{{"key":0,"nfb":{now},"hash":"{hash}","exp":{}}}"#, now + 60);
    let settings = auth(&[Algorithm::RS256], Decryption::Pkcs1v15);
    // The control: the same signer and claims with a plain header pass.
    let plain = minter.sign_parts(r#"{"typ":"JWT","alg":"RS256"}"#, &claims).unwrap();
    assert_eq!(resolve(&plain, &settings).as_deref(), Ok("10.0.0.9"));
    for header in [
        r#"{"typ":"JWT","alg":"RS256","crit":["exp"]}"#,
        r#"{"typ":"JWT","alg":"RS256","crit":["x-route"],"x-route":1}"#,
        r#"{"typ":"JWT","alg":"RS256","zip":"DEF"}"#,
        r#"{"typ":"JWT","alg":"RS256","enc":"A256GCM"}"#,
    ] {
        let token = minter.sign_parts(header, &claims).unwrap();
        assert_eq!(resolve(&token, &settings), Err(AuthError::Header), "{header}");
    }
}

#[test]
fn signatures_must_match_algorithm_length_and_digest() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    route_proxy::auth::jwt::install_provider();
    let now = unix_now();
    let settings = auth(&[Algorithm::RS256, Algorithm::RS384], Decryption::Pkcs1v15);
    let minter = Minter::from_key_set(keys()).unwrap();
    let hash = minter.encrypt_target("10.0.0.9").unwrap();
    let claims = format!(r#"{{"key":0,"nfb":{now},"hash":"{hash}","exp":{}}}"#, now + 60);
    // Signed with SHA-384 under a header that says RS256 (and the reverse): the DigestInfo
    // inside the signature names another digest.
    let rs384 = Minter::from_key_set(keys()).unwrap().with_algorithm(Algorithm::RS384);
    let lying = rs384.sign_parts(r#"{"typ":"JWT","alg":"RS256"}"#, &claims).unwrap();
    assert_eq!(resolve(&lying, &settings), Err(AuthError::Signature));
    let lying = minter.sign_parts(r#"{"typ":"JWT","alg":"RS384"}"#, &claims).unwrap();
    assert_eq!(resolve(&lying, &settings), Err(AuthError::Signature));

    let good = minter.sign_parts(r#"{"typ":"JWT","alg":"RS256"}"#, &claims).unwrap();
    assert_eq!(resolve(&good, &settings).as_deref(), Ok("10.0.0.9"));
    let (message, signature) = good.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let with = |sig: &[u8]| format!("{message}.{}", URL_SAFE_NO_PAD.encode(sig));
    // One byte short, one byte long, one bit flipped, all zero.
    for (what, sig) in [
        ("short", signature[1..].to_vec()),
        ("long", [&[0u8][..], &signature].concat()),
        ("flipped", {
            let mut s = signature.clone();
            *s.last_mut().unwrap() ^= 1;
            s
        }),
        ("zero", vec![0; signature.len()]),
    ] {
        assert_eq!(resolve(&with(&sig), &settings), Err(AuthError::Signature), "{what}");
    }
    // The claims changed under a valid signature.
    let (_, rest) = good.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let other = format!(r#"{{"key":0,"nfb":{now},"hash":"{hash}","exp":{}}}"#, now + 61);
    let forged = format!("{}.{}.{sig}", good.split('.').next().unwrap(), URL_SAFE_NO_PAD.encode(other));
    assert_eq!(resolve(&forged, &settings), Err(AuthError::Signature));
}
