//! The desktop keys, from the Secrets the spec names.

use route_crds::KeysSpec;
use route_proxy::keys::{DecryptKey, VerifyKey};
use route_proxy::settings::KeyRing;

use super::{Errors, Secrets};

/// The current key pair. The publisher adds the keys a rotation replaced.
pub(super) fn key_ring(spec: &KeysSpec, secrets: &Secrets, errors: &mut Errors) -> Option<KeyRing> {
    let signing =
        secret_value(secrets, &spec.signing.secret_name, &spec.signing.key, "spec.keys.signing", errors)
            .and_then(|(place, pem)| parse(VerifyKey::from_pem(pem), &place, errors));
    let payload =
        secret_value(secrets, &spec.payload.secret_name, &spec.payload.key, "spec.keys.payload", errors)
            .and_then(|(place, pem)| parse(DecryptKey::from_pem(pem), &place, errors));
    Some(KeyRing::current(signing?, payload?))
}

/// The bytes of `key` in Secret `name`, with the place naming them (`Secret s: key k`).
/// `named_by` is the spec field holding the reference, e.g. `spec.keys.signing`.
pub(super) fn secret_value<'s>(
    secrets: &'s Secrets,
    name: &str,
    key: &str,
    named_by: &str,
    errors: &mut Errors,
) -> Option<(String, &'s [u8])> {
    if name.is_empty() {
        errors.push(format!("{named_by}.secretName"), "empty: name the Secret");
        return None;
    }
    if key.is_empty() {
        errors.push(format!("{named_by}.key"), "empty: name the key of the Secret");
        return None;
    }
    let Some(data) = secrets.get(name) else {
        errors.push(format!("Secret {name}"), format!("not found (named by {named_by}.secretName)"));
        return None;
    };
    match data.get(key) {
        Some(bytes) => Some((format!("Secret {name}: key {key}"), bytes.as_slice())),
        None => {
            errors.push(format!("Secret {name}"), format!("key {key} missing"));
            None
        }
    }
}

fn parse<K>(result: Result<K, route_proxy::Error>, place: &str, errors: &mut Errors) -> Option<K> {
    match result {
        Ok(key) => Some(key),
        Err(err) => {
            errors.push(place, key_reason(err));
            None
        }
    }
}

/// The proxy's key errors name OpenSSL reasons or sizes, never key bytes.
fn key_reason(err: route_proxy::Error) -> String {
    match err {
        route_proxy::Error::Key(reason) => reason,
        other => other.to_string(),
    }
}
