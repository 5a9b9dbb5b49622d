//! Decryption of the `hash` claim with the desktop payload private key.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use openssl::rsa::Padding;

use super::AuthError;
use super::desktop_host::DesktopHost;
use crate::keys::DecryptKey;
use crate::settings::{AuthSettings, Decryption};

/// Standard base64 (`+/`), padded or not: pyos pads, some clients strip it.
const HASH_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decrypts `hash` with each trusted payload key until one yields a valid target. Returns the
/// target and the id of the key that decrypted it.
pub(crate) fn decrypt_target(
    hash: &str,
    auth: &AuthSettings,
    now: u64,
) -> Result<(DesktopHost, u64), AuthError> {
    let ciphertext = HASH_B64.decode(hash).map_err(|_| AuthError::Hash)?;
    let mut outcome = Err(AuthError::NoKeys);
    for trusted in auth.keys.payload.iter().filter(|k| k.is_trusted_at(now)) {
        let key = &trusted.key;
        if ciphertext.len() != key.rsa.size() as usize {
            outcome = Err(AuthError::Decrypt);
            continue;
        }
        // With OpenSSL 3.2+ implicit rejection, a wrong key yields random bytes instead of an
        // error; target validation rejects those, so the loop still moves to the next key.
        match decrypt(key, &ciphertext, auth.decryption) {
            Some(plain) => match DesktopHost::parse(&plain) {
                Ok(target) => return Ok((target, key.id())),
                Err(err) => outcome = Err(err),
            },
            None => outcome = Err(AuthError::Decrypt),
        }
    }
    outcome
}

fn decrypt(key: &DecryptKey, ciphertext: &[u8], mode: Decryption) -> Option<Vec<u8>> {
    let mut out = vec![0; key.rsa.size() as usize];
    let len = match mode {
        Decryption::Pkcs1v15 => key.rsa.private_decrypt(ciphertext, &mut out, Padding::PKCS1).ok()?,
        Decryption::OaepSha1 => key.rsa.private_decrypt(ciphertext, &mut out, Padding::PKCS1_OAEP).ok()?,
        Decryption::OaepSha256 => {
            let mut ctx = openssl::pkey_ctx::PkeyCtx::new(&key.pkey).ok()?;
            ctx.decrypt_init().ok()?;
            ctx.set_rsa_padding(Padding::PKCS1_OAEP).ok()?;
            ctx.set_rsa_oaep_md(openssl::md::Md::sha256()).ok()?;
            ctx.set_rsa_mgf1_md(openssl::md::Md::sha256()).ok()?;
            ctx.decrypt(ciphertext, Some(&mut out)).ok()?
        }
    };
    out.truncate(len);
    Some(out)
}
