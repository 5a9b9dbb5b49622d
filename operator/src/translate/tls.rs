//! The HTTPS listener's certificate, from a `kubernetes.io/tls` Secret.

use std::sync::Arc;

use route_crds::TlsSpec;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::keys::secret_value;
use super::{Errors, Secrets};

const CERT: &str = "tls.crt";
const KEY: &str = "tls.key";

/// `Ok(None)` without `spec.tls`; `Err` when the Secret does not give a usable certificate and
/// key (the errors are pushed), so a broken Secret never silently turns HTTPS off.
pub(super) fn certified_key(
    spec: Option<&TlsSpec>,
    secrets: &Secrets,
    errors: &mut Errors,
) -> Result<Option<Arc<CertifiedKey>>, ()> {
    let Some(spec) = spec else { return Ok(None) };
    let name = &spec.secret_name;
    if !name.is_empty() && !secrets.contains_key(name) {
        errors.push(format!("Secret {name}"), "not found (named by spec.tls.secretName)");
        return Err(());
    }
    let cert = secret_value(secrets, name, CERT, "spec.tls", errors);
    let key = secret_value(secrets, name, KEY, "spec.tls", errors);
    let chain = cert.and_then(|(place, pem)| {
        let chain: Result<Vec<CertificateDer<'static>>, _> = CertificateDer::pem_slice_iter(pem).collect();
        match chain {
            Ok(chain) if !chain.is_empty() => Some(chain),
            Ok(_) => {
                errors.push(place, "no certificate (BEGIN CERTIFICATE) in PEM");
                None
            }
            Err(_) => {
                // Not quoting the parser's error: the file may hold a key by mistake.
                errors.push(place, "not a PEM certificate chain");
                None
            }
        }
    });
    let key = key.and_then(|(place, pem)| match PrivateKeyDer::from_pem_slice(pem) {
        Ok(key) => Some(key),
        Err(_) => {
            // The PEM error may quote the input; say only what was expected.
            errors.push(place, "no private key (PKCS#1, PKCS#8 or SEC1) in PEM");
            None
        }
    });
    let (Some(chain), Some(key)) = (chain, key) else { return Err(()) };
    let provider = rustls::crypto::ring::default_provider();
    match CertifiedKey::from_der(chain, key, &provider) {
        Ok(certified) => Ok(Some(Arc::new(certified))),
        Err(rustls::Error::InconsistentKeys(_)) => {
            errors.push(
                format!("Secret {name}"),
                format!("the private key in {KEY} does not match the certificate in {CERT}"),
            );
            Err(())
        }
        Err(err) => {
            errors.push(format!("Secret {name}: key {KEY}"), format!("unusable private key: {err}"));
            Err(())
        }
    }
}
