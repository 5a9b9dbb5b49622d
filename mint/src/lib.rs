//! Minting desktop tokens and key sets the way pyos and abcdesktop's install scripts do, for
//! `route token`, `route keys`, `route demo`, the tests and the benchmarks. Not part of the
//! data plane: the proxy only verifies and decrypts.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private, Public};
use openssl::rsa::{Padding as RsaPadding, Rsa};
use openssl::sign::Signer;

/// Why a key set or a token could not be made. Messages never hold key material.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// OpenSSL refused a key or an operation (its error stack names functions, never bytes).
    #[error("key: {0}")]
    Key(#[from] openssl::error::ErrorStack),
    #[error("cannot mint a token: {0}")]
    Mint(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// How the target is encrypted into the `hash` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// RSAES-PKCS1-v1_5, what pyos uses by default.
    Pkcs1v15,
    OaepSha1,
    OaepSha256,
}

/// The file names abcdesktop gives the four PEM files (and the keys of its two Secrets).
pub const SIGNING_PRIVATE: &str = "abcdesktop_jwt_desktop_signing_private_key.pem";
pub const SIGNING_PUBLIC: &str = "abcdesktop_jwt_desktop_signing_public_key.pem";
pub const PAYLOAD_PRIVATE: &str = "abcdesktop_jwt_desktop_payload_private_key.pem";
pub const PAYLOAD_PUBLIC: &str = "abcdesktop_jwt_desktop_payload_public_key.pem";

/// The four PEM texts of an abcdesktop key set.
#[derive(Clone)]
pub struct KeySet {
    pub signing_private: String,
    pub signing_public: String,
    pub payload_private: String,
    pub payload_public: String,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySet([redacted])")
    }
}

/// Private key encoding of a generated key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivateFormat {
    /// `BEGIN RSA PRIVATE KEY`, as OpenSSL 1.1 wrote it.
    Pkcs1,
    /// `BEGIN PRIVATE KEY`, as OpenSSL 3 writes it.
    Pkcs8,
}

impl KeySet {
    /// A fresh key set, as abcdesktop's install scripts make it with `openssl genrsa`.
    pub fn generate(bits: u32, format: PrivateFormat) -> Result<Self, Error> {
        let pair = |_: ()| -> Result<(String, Rsa<Private>), Error> {
            let rsa = Rsa::generate(bits).map_err(Error::Key)?;
            let pem = match format {
                PrivateFormat::Pkcs1 => rsa.private_key_to_pem().map_err(Error::Key)?,
                PrivateFormat::Pkcs8 => PKey::from_rsa(rsa.clone())
                    .and_then(|k| k.private_key_to_pem_pkcs8())
                    .map_err(Error::Key)?,
            };
            Ok((utf8(pem)?, rsa))
        };
        let (signing_private, signing) = pair(())?;
        let (payload_private, payload) = pair(())?;
        Ok(Self {
            signing_private,
            signing_public: utf8(signing.public_key_to_pem().map_err(Error::Key)?)?,
            payload_private,
            // abcdesktop writes the payload public key with `-RSAPublicKey_out` (PKCS#1).
            payload_public: utf8(payload.public_key_to_pem_pkcs1().map_err(Error::Key)?)?,
        })
    }

    /// Reads the four files from a folder laid out as abcdesktop lays it.
    pub fn read_dir(dir: &std::path::Path) -> Result<Self, Error> {
        let read = |name: &str| std::fs::read_to_string(dir.join(name));
        Ok(Self {
            signing_private: read(SIGNING_PRIVATE)?,
            signing_public: read(SIGNING_PUBLIC)?,
            payload_private: read(PAYLOAD_PRIVATE)?,
            payload_public: read(PAYLOAD_PUBLIC)?,
        })
    }

    /// Writes the four files into a folder (created if needed); private keys are mode 0600.
    pub fn write_dir(&self, dir: &std::path::Path) -> Result<(), Error> {
        std::fs::create_dir_all(dir)?;
        for (name, pem, private) in [
            (SIGNING_PRIVATE, &self.signing_private, true),
            (SIGNING_PUBLIC, &self.signing_public, false),
            (PAYLOAD_PRIVATE, &self.payload_private, true),
            (PAYLOAD_PUBLIC, &self.payload_public, false),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, pem)?;
            #[cfg(unix)]
            if private {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            }
            #[cfg(not(unix))]
            let _ = private;
        }
        Ok(())
    }
}

fn utf8(bytes: Vec<u8>) -> Result<String, Error> {
    String::from_utf8(bytes).map_err(|_| Error::Mint("PEM is not UTF-8".into()))
}

/// Mints desktop tokens: signs with the signing private key, encrypts the target with the
/// payload public key. Parse once, mint many (the benchmarks mint tens of thousands).
pub struct Minter {
    signing: PKey<Private>,
    payload: Rsa<Public>,
    padding: Padding,
    algorithm: jsonwebtoken::Algorithm,
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minter").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

impl Minter {
    pub fn new(signing_private_pem: &[u8], payload_public_pem: &[u8]) -> Result<Self, Error> {
        let signing = PKey::private_key_from_pem(signing_private_pem).map_err(Error::Key)?;
        let payload = Rsa::public_key_from_pem_pkcs1(payload_public_pem)
            .or_else(|_| Rsa::public_key_from_pem(payload_public_pem))
            .map_err(Error::Key)?;
        Ok(Self { signing, payload, padding: Padding::Pkcs1v15, algorithm: jsonwebtoken::Algorithm::RS256 })
    }

    pub fn from_key_set(keys: &KeySet) -> Result<Self, Error> {
        Self::new(keys.signing_private.as_bytes(), keys.payload_public.as_bytes())
    }

    /// Encrypt the target with OAEP instead of PKCS#1 v1.5.
    pub fn with_padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }

    /// Sign with another RSA algorithm (RS256, RS384, RS512, PS256, PS384, PS512).
    pub fn with_algorithm(mut self, algorithm: jsonwebtoken::Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// The `hash` claim for a target: standard base64 of the RSA encryption of its ASCII bytes.
    pub fn encrypt_target(&self, target: &str) -> Result<String, Error> {
        let mut out = vec![0; self.payload.size() as usize];
        let len = match self.padding {
            Padding::Pkcs1v15 => self.payload.public_encrypt(target.as_bytes(), &mut out, RsaPadding::PKCS1),
            Padding::OaepSha1 => {
                self.payload.public_encrypt(target.as_bytes(), &mut out, RsaPadding::PKCS1_OAEP)
            }
            Padding::OaepSha256 => return self.encrypt_oaep_sha256(target),
        }
        .map_err(Error::Key)?;
        out.truncate(len);
        Ok(STANDARD.encode(out))
    }

    fn encrypt_oaep_sha256(&self, target: &str) -> Result<String, Error> {
        let pkey = PKey::from_rsa(self.payload.clone()).map_err(Error::Key)?;
        let mut ctx = openssl::pkey_ctx::PkeyCtx::new(&pkey).map_err(Error::Key)?;
        ctx.encrypt_init().map_err(Error::Key)?;
        ctx.set_rsa_padding(RsaPadding::PKCS1_OAEP).map_err(Error::Key)?;
        ctx.set_rsa_oaep_md(openssl::md::Md::sha256()).map_err(Error::Key)?;
        ctx.set_rsa_mgf1_md(openssl::md::Md::sha256()).map_err(Error::Key)?;
        let mut out = Vec::new();
        ctx.encrypt_to_vec(target.as_bytes(), &mut out).map_err(Error::Key)?;
        Ok(STANDARD.encode(out))
    }

    /// A token as pyos mints it: claims `key`, `nfb`, `hash`, `exp` in that order.
    pub fn mint(&self, target: &str, now: u64, exp: u64) -> Result<String, Error> {
        let hash = self.encrypt_target(target)?;
        let claims = format!(r#"{{"key":0,"nfb":{now},"hash":"{hash}","exp":{exp}}}"#);
        self.sign_claims(&claims)
    }

    /// Signs arbitrary claims JSON (tests use it for malformed claims).
    pub fn sign_claims(&self, claims_json: &str) -> Result<String, Error> {
        self.sign_parts(&format!(r#"{{"typ":"JWT","alg":"{:?}"}}"#, self.algorithm), claims_json)
    }

    /// Signs arbitrary header and claims JSON (tests use it for `crit`, `zip` and `enc`).
    pub fn sign_parts(&self, header: &str, claims_json: &str) -> Result<String, Error> {
        let message = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims_json));
        let signature = self.sign(message.as_bytes())?;
        Ok(format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        use jsonwebtoken::Algorithm as A;
        let (digest, pss) = match self.algorithm {
            A::RS256 => (MessageDigest::sha256(), false),
            A::RS384 => (MessageDigest::sha384(), false),
            A::RS512 => (MessageDigest::sha512(), false),
            A::PS256 => (MessageDigest::sha256(), true),
            A::PS384 => (MessageDigest::sha384(), true),
            A::PS512 => (MessageDigest::sha512(), true),
            other => return Err(Error::Mint(format!("{other:?} is not an RSA algorithm"))),
        };
        let mut signer = Signer::new(digest, &self.signing).map_err(Error::Key)?;
        if pss {
            signer.set_rsa_padding(RsaPadding::PKCS1_PSS).map_err(Error::Key)?;
            signer.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::DIGEST_LENGTH).map_err(Error::Key)?;
        }
        signer.update(message).map_err(Error::Key)?;
        signer.sign_to_vec().map_err(Error::Key)
    }
}

/// Seconds since the Unix epoch, for `nfb` and `exp`.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
