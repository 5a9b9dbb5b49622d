//! RSA keys as abcdesktop writes them, parsed once when settings are built.
//!
//! OpenSSL does the RSA work: it accepts the 1024-bit keys older abcdesktop installs made
//! (aws-lc-rs and jsonwebtoken's aws-lc backend refuse them) and its private operation is 3 to 6
//! times faster than the `rsa` crate's (`shared/crypto.md`, and `cargo bench -p route-proxy`).

use std::fmt;

use openssl::pkey::{PKey, Private, Public};
use openssl::rsa::{Padding, Rsa};

use crate::Error;

/// Smallest and largest modulus accepted, in bits.
pub const MIN_BITS: u32 = 1024;
pub const MAX_BITS: u32 = 4096;

/// The desktop signing public key, which verifies token signatures.
pub struct VerifyKey {
    /// PKCS#1 `RSAPublicKey` DER, the form jsonwebtoken hands our crypto provider.
    pub(crate) decoding: jsonwebtoken::DecodingKey,
    fingerprint: String,
    id: u64,
    bits: u32,
}

/// The desktop payload private key, which decrypts the `hash` claim.
pub struct DecryptKey {
    pub(crate) rsa: Rsa<Private>,
    /// The same key for the EVP API (OAEP with SHA-256 needs it).
    pub(crate) pkey: PKey<Private>,
    fingerprint: String,
    id: u64,
    bits: u32,
}

impl VerifyKey {
    /// Loads `BEGIN PUBLIC KEY` (SubjectPublicKeyInfo) or `BEGIN RSA PUBLIC KEY` (PKCS#1).
    /// A private key is accepted too; only its public half is kept.
    pub fn from_pem(pem: &[u8]) -> Result<Self, Error> {
        let rsa = parse_public(pem)?;
        let bits = check_bits(rsa.size() * 8)?;
        let pkcs1_der = rsa.public_key_to_der_pkcs1().map_err(Error::key)?;
        let pkey = PKey::from_rsa(rsa).map_err(Error::key)?;
        let (fingerprint, id) = fingerprint(&pkey)?;
        let decoding = jsonwebtoken::DecodingKey::from_rsa_der(&pkcs1_der);
        Ok(Self { decoding, fingerprint, id, bits })
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The fingerprint as a number, for cheap comparisons on the request path.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn bits(&self) -> u32 {
        self.bits
    }
}

impl DecryptKey {
    /// Loads `BEGIN RSA PRIVATE KEY` (PKCS#1, OpenSSL 1.1) or `BEGIN PRIVATE KEY` (PKCS#8,
    /// OpenSSL 3). Encrypted keys are refused.
    pub fn from_pem(pem: &[u8]) -> Result<Self, Error> {
        let pkey = PKey::private_key_from_pem_callback(pem, |_| Ok(0))
            .map_err(|_| Error::Key("not an unencrypted RSA private key in PEM (PKCS#1 or PKCS#8)".into()))?;
        let rsa = pkey.rsa().map_err(|_| Error::Key("the private key is not an RSA key".into()))?;
        round_trip(&rsa)?;
        let bits = check_bits(rsa.size() * 8)?;
        let (fingerprint, id) = fingerprint(&pkey)?;
        Ok(Self { rsa, pkey, fingerprint, id, bits })
    }

    /// The fingerprint of the public half, the same value the matching public key shows.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn bits(&self) -> u32 {
        self.bits
    }
}

fn parse_public(pem: &[u8]) -> Result<Rsa<Public>, Error> {
    if let Ok(rsa) = Rsa::public_key_from_pem(pem) {
        return Ok(rsa);
    }
    if let Ok(rsa) = Rsa::public_key_from_pem_pkcs1(pem) {
        return Ok(rsa);
    }
    if let Ok(pkey) = PKey::private_key_from_pem_callback(pem, |_| Ok(0))
        && let Ok(rsa) = pkey.rsa()
    {
        let der = rsa.public_key_to_der_pkcs1().map_err(Error::key)?;
        return Rsa::public_key_from_der_pkcs1(&der).map_err(Error::key);
    }
    Err(Error::Key("not an RSA public key in PEM (SubjectPublicKeyInfo or PKCS#1)".into()))
}

/// Encrypts with the public half and decrypts with the private half: a damaged key fails here,
/// at load time, rather than on every token. `RSA_check_key` would too, but it tests primality
/// and takes ~350 ms for a 4096-bit key.
fn round_trip(rsa: &Rsa<Private>) -> Result<(), Error> {
    let inconsistent = || Error::Key("the RSA private key is inconsistent".into());
    let probe = b"route key self-test";
    let size = rsa.size() as usize;
    let (mut sealed, mut opened) = (vec![0; size], vec![0; size]);
    let n = rsa.public_encrypt(probe, &mut sealed, Padding::PKCS1).map_err(|_| inconsistent())?;
    let m = rsa.private_decrypt(&sealed[..n], &mut opened, Padding::PKCS1).map_err(|_| inconsistent())?;
    if &opened[..m] == probe { Ok(()) } else { Err(inconsistent()) }
}

fn check_bits(bits: u32) -> Result<u32, Error> {
    if (MIN_BITS..=MAX_BITS).contains(&bits) {
        Ok(bits)
    } else {
        Err(Error::Key(format!("RSA key of {bits} bits; {MIN_BITS} to {MAX_BITS} are accepted")))
    }
}

/// `sha256:` and the first 16 hex digits of the SHA-256 of the SubjectPublicKeyInfo DER: the
/// same for a private key and its public half, so status can show that a pair matches.
fn fingerprint<T: openssl::pkey::HasPublic>(pkey: &PKey<T>) -> Result<(String, u64), Error> {
    let der = pkey.public_key_to_der().map_err(Error::key)?;
    let digest = openssl::sha::sha256(&der);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let hex: String = first.iter().map(|b| format!("{b:02x}")).collect();
    Ok((format!("sha256:{hex}"), u64::from_be_bytes(first)))
}

// Keys never print their material.
impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyKey").field("fingerprint", &self.fingerprint).field("bits", &self.bits).finish()
    }
}

impl fmt::Debug for DecryptKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptKey")
            .field("fingerprint", &self.fingerprint)
            .field("bits", &self.bits)
            .finish()
    }
}
