//! Signature and claims of a desktop token.
//!
//! jsonwebtoken parses and validates; OpenSSL verifies, through a jsonwebtoken crypto provider
//! of our own. Its built-in backends are each worse for us: `aws_lc_rs` refuses the 1024-bit
//! keys abcdesktop installs up to 4.0 made, and `rust_crypto` verifies 3 to 5 times slower
//! (`shared/crypto.md`).

use std::sync::OnceLock;

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Public};
use openssl::rsa::{Padding, Rsa};
use serde::Deserialize;

use super::AuthError;
use crate::settings::{AuthSettings, Trusted};

/// The claims the router reads. pyos also sends `key` (always 0) and `nfb` (its misspelling of
/// `nbf`, which must not be read as `nbf`); both are ignored.
#[derive(Debug, Deserialize)]
pub(crate) struct Claims {
    pub hash: Option<String>,
    /// A JSON number; jsonwebtoken already refused a missing or non-numeric `exp`.
    pub exp: f64,
}

/// What a verified token says.
#[derive(Debug)]
pub(crate) struct VerifiedToken {
    pub claims: Claims,
    pub algorithm: Algorithm,
    /// The key that verified it.
    pub signing_id: u64,
}

/// Installs the OpenSSL provider into jsonwebtoken, once per process.
pub fn install_provider() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        // Fails only when a provider is already installed, which is then ours.
        let _ = PROVIDER.install_default();
    });
}

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: no_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

fn no_signer(_: &Algorithm, _: &EncodingKey) -> jsonwebtoken::errors::Result<Box<dyn JwtSigner>> {
    // The proxy only verifies; minting (tests, `route token`) signs with OpenSSL directly.
    Err(ErrorKind::InvalidAlgorithm.into())
}

fn new_verifier(
    algorithm: &Algorithm,
    key: &DecodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    let (digest, pss) = match algorithm {
        Algorithm::RS256 => (MessageDigest::sha256(), false),
        Algorithm::RS384 => (MessageDigest::sha384(), false),
        Algorithm::RS512 => (MessageDigest::sha512(), false),
        Algorithm::PS256 => (MessageDigest::sha256(), true),
        Algorithm::PS384 => (MessageDigest::sha384(), true),
        Algorithm::PS512 => (MessageDigest::sha512(), true),
        // HMAC, ECDSA and EdDSA never verify here: we hold RSA keys only.
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    let der = key.try_get_as_bytes()?;
    let pkey = Rsa::public_key_from_der_pkcs1(der)
        .and_then(PKey::from_rsa)
        .map_err(|_| jsonwebtoken::errors::Error::from(ErrorKind::InvalidRsaKey("bad DER".into())))?;
    Ok(Box::new(OpensslVerifier { algorithm: *algorithm, digest, pss, pkey }))
}

struct OpensslVerifier {
    algorithm: Algorithm,
    digest: MessageDigest,
    pss: bool,
    pkey: PKey<Public>,
}

impl signature::Verifier<Vec<u8>> for OpensslVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let verify = || -> Result<bool, openssl::error::ErrorStack> {
            let mut verifier = openssl::sign::Verifier::new(self.digest, &self.pkey)?;
            if self.pss {
                verifier.set_rsa_padding(Padding::PKCS1_PSS)?;
                verifier.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::DIGEST_LENGTH)?;
            }
            verifier.verify_oneshot(signature, msg)
        };
        match verify() {
            Ok(true) => Ok(()),
            _ => Err(signature::Error::new()),
        }
    }
}

impl JwtVerifier for OpensslVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// Longest token accepted; pyos' tokens are about 450 (1024-bit) to 1,500 (4096-bit) bytes.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Checks the token's form, header, signature (against every trusted signing key) and time
/// claims. `now` is Unix seconds.
pub(crate) fn verify(token: &str, auth: &AuthSettings, now: u64) -> Result<VerifiedToken, AuthError> {
    if token.len() > MAX_TOKEN_LEN
        || token.bytes().filter(|&b| b == b'.').count() != 2
        || !token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='))
    {
        return Err(AuthError::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
    // A JWE marker or critical extensions: the original's library skipped the signature check
    // for `enc`; we understand no extension, so any `crit` is refused (RFC 7515, 4.1.11).
    if header.enc.is_some() || header.crit.is_some() || header.zip.is_some() {
        return Err(AuthError::Header);
    }
    if !auth.algorithms.contains(&header.alg) {
        return Err(AuthError::Algorithm);
    }
    let mut validation = Validation::new(header.alg);
    validation.algorithms = vec![header.alg];
    validation.leeway = 0;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp"]);

    let mut last = AuthError::NoKeys;
    for Trusted { key, .. } in auth.keys.signing.iter().filter(|k| k.is_trusted_at(now)) {
        match jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation) {
            Ok(data) => {
                // jsonwebtoken accepts exp == now; the contract wants exp strictly in the future.
                if data.claims.exp <= now as f64 {
                    return Err(AuthError::Expired);
                }
                return Ok(VerifiedToken {
                    claims: data.claims,
                    algorithm: header.alg,
                    signing_id: key.id(),
                });
            }
            Err(err) => match err.kind() {
                ErrorKind::InvalidSignature => last = AuthError::Signature,
                ErrorKind::ExpiredSignature => return Err(AuthError::Expired),
                ErrorKind::ImmatureSignature => return Err(AuthError::NotYetValid),
                ErrorKind::InvalidAlgorithm => return Err(AuthError::Algorithm),
                ErrorKind::MissingRequiredClaim(_)
                | ErrorKind::InvalidClaimFormat(_)
                | ErrorKind::Json(_) => {
                    return Err(AuthError::Claims);
                }
                _ => return Err(AuthError::Malformed),
            },
        }
    }
    Err(last)
}
