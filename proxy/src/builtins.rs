//! Answers the proxy gives itself on the public listener: `/healthz`, `/node` and ACME
//! HTTP-01 challenge files. What only operators call is on the admin listener
//! ([`crate::admin`]).

use crate::outcome::Builtin;
use crate::settings::Settings;

const ACME_PREFIX: &str = "/.well-known/acme-challenge/";

/// The builtin answer for `path`, if it is one of ours.
pub async fn answer(settings: &Settings, path: &str) -> Option<Builtin> {
    Some(match path {
        "/healthz" => Builtin::Healthz,
        "/node" => Builtin::Node(settings.node_name.clone()),
        _ => {
            let name = path.strip_prefix(ACME_PREFIX)?;
            return Some(acme(settings, name).await);
        }
    })
}

/// A challenge file. Token names are base64url (RFC 8555, 8.3): nothing else is looked up, so
/// no path can leave the folder.
async fn acme(settings: &Settings, name: &str) -> Builtin {
    let Some(dir) = settings.acme_dir.as_ref() else {
        return Builtin::AcmeNotFound;
    };
    let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Builtin::AcmeNotFound;
    }
    match tokio::fs::read(dir.join(name)).await {
        Ok(bytes) => Builtin::AcmeFile(bytes.into()),
        Err(_) => Builtin::AcmeNotFound,
    }
}
