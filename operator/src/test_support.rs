//! Fixtures shared by the unit tests: the vectors' key sets, generated keys and certificates.

use std::collections::BTreeMap;
use std::path::PathBuf;

use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::{X509, X509NameBuilder};
use route_crds::{PAYLOAD_KEY, PAYLOAD_SECRET, SIGNING_KEY, SIGNING_SECRET};
use route_proxy::Settings;
use route_proxy::route_table::Route;

use crate::translate::{Context, Secrets};

/// `tests/vectors/keys/<set>` of the repository.
pub fn key_dir(set: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors/keys")).join(set)
}

pub const SETS: [&str; 3] = ["rsa1024-pkcs1", "rsa2048-pkcs8", "rsa4096-pkcs8"];

pub fn pem(set: &str, file: &str) -> Vec<u8> {
    let path = key_dir(set).join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The two abcdesktop Secrets, holding the four files of a vector key set.
pub fn key_secrets(set: &str) -> Secrets {
    let files = |kind: &str| -> BTreeMap<String, Vec<u8>> {
        ["private", "public"]
            .iter()
            .map(|half| {
                let name = format!("abcdesktop_jwt_desktop_{kind}_{half}_key.pem");
                let bytes = pem(set, &name);
                (name, bytes)
            })
            .collect()
    };
    let secrets = Secrets::from([
        (SIGNING_SECRET.to_owned(), files("signing")),
        (PAYLOAD_SECRET.to_owned(), files("payload")),
    ]);
    assert!(
        secrets[SIGNING_SECRET].contains_key(SIGNING_KEY)
            && secrets[PAYLOAD_SECRET].contains_key(PAYLOAD_KEY)
    );
    secrets
}

pub fn ctx() -> Context {
    Context { node_name: "node-1".into(), source: "test".into() }
}

/// A fresh RSA private key in PKCS#1 PEM, and its public half in SubjectPublicKeyInfo PEM.
pub fn rsa_pair(bits: u32) -> (Vec<u8>, Vec<u8>) {
    let rsa = Rsa::generate(bits).unwrap();
    (rsa.private_key_to_pem().unwrap(), rsa.public_key_to_pem().unwrap())
}

/// A self-signed certificate for `route.test` and its key, in PEM.
pub fn self_signed() -> (Vec<u8>, Vec<u8>) {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "route.test").unwrap();
    let name = name.build();
    let mut cert = X509::builder().unwrap();
    cert.set_version(2).unwrap();
    cert.set_subject_name(&name).unwrap();
    cert.set_issuer_name(&name).unwrap();
    cert.set_pubkey(&key).unwrap();
    cert.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    cert.set_not_after(&Asn1Time::days_from_now(30).unwrap()).unwrap();
    cert.sign(&key, MessageDigest::sha256()).unwrap();
    (cert.build().to_pem().unwrap(), key.private_key_to_pem_pkcs8().unwrap())
}

/// The route serving `path` and the prefix it matched.
pub fn lookup<'a>(settings: &'a Settings, path: &str) -> (&'a str, &'a Route) {
    let (prefix, route) = settings.routes.lookup(path).unwrap_or_else(|| panic!("no route for {path}"));
    (prefix, route)
}

/// The error lines of a failed translation.
pub fn messages(errors: &[crate::ConfigError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}
