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
    let (hash, pss) = match algorithm {
        Algorithm::RS256 => (&SHA256, false),
        Algorithm::RS384 => (&SHA384, false),
        Algorithm::RS512 => (&SHA512, false),
        Algorithm::PS256 => (&SHA256, true),
        Algorithm::PS384 => (&SHA384, true),
        Algorithm::PS512 => (&SHA512, true),
        // HMAC, ECDSA and EdDSA never verify here: we hold RSA keys only.
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    let rsa = parsed_key(key.try_get_as_bytes()?)
        .ok_or_else(|| jsonwebtoken::errors::Error::from(ErrorKind::InvalidRsaKey("bad DER".into())))?;
    Ok(Box::new(OpensslVerifier { algorithm: *algorithm, hash, pss, rsa }))
}

/// Keys parsed from their PKCS#1 DER, per thread: jsonwebtoken's provider API hands a verifier
/// factory the DER alone, once per token, and parsing it each time cost microseconds a new
/// token. Entries are found by comparing the DER bytes themselves, so a rotated key can never
/// be mistaken for the one it replaced. A few entries: the current signing key and those still
/// in their grace period.
fn parsed_key(der: &[u8]) -> Option<Rsa<Public>> {
    const KEPT: usize = 4;
    type Parsed = Vec<(Box<[u8]>, Rsa<Public>)>;
    thread_local! {
        static PARSED: std::cell::RefCell<Parsed> = const { std::cell::RefCell::new(Vec::new()) };
    }
    PARSED.with_borrow_mut(|parsed| {
        if let Some(i) = parsed.iter().position(|(known, _)| **known == *der) {
            let entry = parsed.remove(i);
            let rsa = entry.1.clone();
            parsed.insert(0, entry);
            return Some(rsa);
        }
        let rsa = Rsa::public_key_from_der_pkcs1(der).ok()?;
        parsed.insert(0, (der.into(), rsa.clone()));
        parsed.truncate(KEPT);
        Some(rsa)
    })
}

/// A signature's digest, as each library names it.
struct Hash {
    ring: &'static ring::digest::Algorithm,
    openssl: fn() -> MessageDigest,
    /// The DER prefix of a PKCS#1 v1.5 `DigestInfo` (RFC 8017, 9.2, note 1).
    digest_info: &'static [u8],
}

const SHA256: Hash = Hash {
    ring: &ring::digest::SHA256,
    openssl: MessageDigest::sha256,
    digest_info: &[
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
        0x04, 0x20,
    ],
};
const SHA384: Hash = Hash {
    ring: &ring::digest::SHA384,
    openssl: MessageDigest::sha384,
    digest_info: &[
        0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00,
        0x04, 0x30,
    ],
};
const SHA512: Hash = Hash {
    ring: &ring::digest::SHA512,
    openssl: MessageDigest::sha512,
    digest_info: &[
        0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00,
        0x04, 0x40,
    ],
};

struct OpensslVerifier {
    algorithm: Algorithm,
    hash: &'static Hash,
    pss: bool,
    rsa: Rsa<Public>,
}

impl OpensslVerifier {
    /// RSASSA-PKCS1-v1_5 (RFC 8017, 8.2.2) on the legacy RSA API: the public operation, then
    /// the padding check (OpenSSL's type-1 check) and an exact comparison with the expected
    /// `DigestInfo`. OpenSSL 3's EVP verify fetched the algorithms from its provider and
    /// exported the key to it on every call, which cost more than the RSA operation at 1024 bits.
    fn verify_pkcs1(&self, msg: &[u8], signature: &[u8]) -> Result<bool, openssl::error::ErrorStack> {
        let size = self.rsa.size() as usize;
        if signature.len() != size {
            return Ok(false);
        }
        let mut recovered = vec![0; size];
        let len = self.rsa.public_decrypt(signature, &mut recovered, Padding::PKCS1)?;
        let digest = ring::digest::digest(self.hash.ring, msg);
        Ok(recovered[..len].strip_prefix(self.hash.digest_info) == Some(digest.as_ref()))
    }

    fn verify_pss(&self, msg: &[u8], signature: &[u8]) -> Result<bool, openssl::error::ErrorStack> {
        let pkey = PKey::from_rsa(self.rsa.clone())?;
        let mut verifier = openssl::sign::Verifier::new((self.hash.openssl)(), &pkey)?;
        verifier.set_rsa_padding(Padding::PKCS1_PSS)?;
        verifier.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::DIGEST_LENGTH)?;
        verifier.verify_oneshot(signature, msg)
    }
}

impl signature::Verifier<Vec<u8>> for OpensslVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let verified =
            if self.pss { self.verify_pss(msg, signature) } else { self.verify_pkcs1(msg, signature) };
        match verified {
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
