//! From a request to a target: token extraction, verification, decryption, target policy and
//! the cache in front of them.

pub mod cache;
pub mod decrypt;
pub mod desktop_host;
pub mod extract;
pub mod jwt;
pub mod lane;
pub mod last_token;
pub mod workers;

use std::sync::{Arc, RwLock};

pub use cache::{Resolved, TokenCache};
pub use desktop_host::DesktopHost;
pub use last_token::LastToken;

use crate::clock::unix_now;
use crate::metrics::Metrics;
use crate::settings::{AuthSettings, Settings};

/// Why a token was refused. The variant names double as the `reason` metric label and never
/// carry any part of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    Malformed,
    Header,
    Algorithm,
    Signature,
    Expired,
    NotYetValid,
    Claims,
    Hash,
    Decrypt,
    Target,
    TargetPolicy,
    PortPolicy,
    NoKeys,
    /// Too many new tokens at once: the RSA queue is full.
    Busy,
    Internal,
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for AuthError {}

impl AuthError {
    /// The `reason` label of `route_request_failures_total` for a refused token.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Header => "header",
            Self::Algorithm => "algorithm",
            Self::Signature => "signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Claims => "claims",
            Self::Hash => "hash",
            Self::Decrypt => "decrypt",
            Self::Target => "target",
            Self::TargetPolicy => "target_policy",
            Self::PortPolicy => "port_policy",
            Self::NoKeys => "no_keys",
            Self::Busy => "busy",
            Self::Internal => "internal",
        }
    }

    /// One line for the client; the same as `Display`, as a static string.
    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => "no token",
            Self::Malformed => "token is not a compact JWS",
            Self::Header => "token header carries enc, zip or crit",
            Self::Algorithm => "algorithm not allowed",
            Self::Signature => "signature does not verify with a trusted key",
            Self::Expired => "token expired",
            Self::NotYetValid => "token not yet valid",
            Self::Claims => "claims are missing or malformed",
            Self::Hash => "hash claim is missing or not base64",
            Self::Decrypt => "hash does not decrypt with a trusted key",
            Self::Target => "decrypted target is not a bare IP address or DNS name",
            Self::TargetPolicy => "target is outside the allowed networks or domains",
            Self::PortPolicy => "port is not allowed",
            Self::NoKeys => "no keys loaded",
            Self::Busy => "too many new tokens at once, retry",
            Self::Internal => "internal error",
        }
    }
}

/// Resolves a token without the cache: verify, then decrypt, then check the target policy.
/// Verifying first means an unsigned ciphertext never reaches the private key (no padding
/// oracle). `now` is Unix seconds.
pub fn resolve_uncached(token: &str, auth: &AuthSettings, now: u64) -> Result<Resolved, AuthError> {
    let verified = jwt::verify(token, auth, now)?;
    let hash = verified.claims.hash.as_deref().ok_or(AuthError::Hash)?;
    let (target, payload_id) = decrypt::decrypt_target(hash, auth, now)?;
    if !target.allowed_by(&auth.targets) {
        return Err(AuthError::TargetPolicy);
    }
    // exp is > now here, and a float exp is truncated down: the entry never outlives the token.
    let exp = verified.claims.exp as u64;
    let ttl = cache::ttl_for(exp, now, auth.cache.ttl_cap);
    Ok(Resolved {
        target,
        exp,
        ttl,
        cached_until: now.saturating_add(ttl.as_secs()),
        signing_id: verified.signing_id,
        payload_id,
        algorithm: verified.algorithm,
        decryption: auth.decryption,
    })
}

/// Tokens to targets, through the cache, with the RSA work off the async workers.
#[derive(Debug)]
pub struct Resolver {
    cache: RwLock<TokenCache>,
    /// One RSA thread per core the process may run on.
    workers: workers::Workers,
    metrics: Arc<Metrics>,
}

impl Resolver {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        jwt::install_provider();
        let capacity = crate::settings::CachePolicy::default().max_entries;
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Self {
            cache: RwLock::new(TokenCache::new(capacity)),
            workers: workers::Workers::start(threads),
            metrics,
        }
    }

    fn cache(&self, settings: &Settings) -> TokenCache {
        let wanted = settings.auth.cache.max_entries;
        if let Ok(cache) = self.cache.read()
            && cache.capacity() == wanted
        {
            return cache.clone();
        }
        // A new bound: start a new cache (rare; entries are re-resolved on demand).
        let mut guard = self.cache.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.capacity() != wanted {
            *guard = TokenCache::new(wanted);
        }
        guard.clone()
    }

    pub async fn cached_entries(&self) -> u64 {
        let cache = self.cache.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        cache.entry_count().await
    }

    /// The target of `token` under `settings`, for a client connection that may have sent it
    /// before (`last`).
    pub async fn resolve_for(
        &self,
        token: &str,
        settings: &Arc<Settings>,
        last: &LastToken,
    ) -> Result<Arc<Resolved>, AuthError> {
        let now = unix_now();
        if let Some(hit) = last.get(token, now)
            && hit.still_valid(settings, now)
        {
            self.metrics.cache_hits.inc();
            return Ok(hit);
        }
        let resolved = self.resolve(token, settings).await?;
        last.set(token, &resolved);
        Ok(resolved)
    }

    /// The target of `token` under `settings`.
    pub async fn resolve(&self, token: &str, settings: &Arc<Settings>) -> Result<Arc<Resolved>, AuthError> {
        let now = unix_now();
        let cache = self.cache(settings);
        let key = TokenCache::key(token);
        if let Some(hit) = cache.get(&key).await {
            if hit.still_valid(settings, now) {
                self.metrics.cache_hits.inc();
                return Ok(hit);
            }
            cache.invalidate(&key).await;
        }
        // Only the caller whose future runs does RSA work: a miss. Callers that waited for it
        // (concurrent first uses of one token) count as hits.
        let did_work = std::sync::atomic::AtomicBool::new(false);
        let resolved = cache
            .get_or_resolve(key, async {
                did_work.store(true, std::sync::atomic::Ordering::Relaxed);
                self.resolve_on_workers(token, settings).await
            })
            .await
            .map_err(|err| *err);
        if did_work.load(std::sync::atomic::Ordering::Relaxed) {
            self.metrics.cache_misses.inc();
        } else {
            self.metrics.cache_hits.inc();
        }
        let resolved = resolved?;
        // A coalesced answer may have been computed under the previous snapshot.
        if resolved.still_valid(settings, now) {
            Ok(resolved)
        } else {
            cache.invalidate(&key).await;
            self.resolve_on_workers(token, settings).await
        }
    }
}

/// The largest payload key whose private operation runs on the serving thread's lane: about
/// 0.3 ms at 2048 bits on these machines, a wait other clients of the core hardly see. A
/// 4096-bit one takes 2 ms and more: on worker threads, which the event loop preempts.
const LANE_MAX_BITS: u32 = 2048;

fn runs_on_the_serving_thread(auth: &AuthSettings) -> bool {
    auth.keys.payload.iter().all(|trusted| trusted.key.bits() <= LANE_MAX_BITS)
}

impl Resolver {
    /// One RSA private operation costs 0.1 to 7 ms: on the serving thread's lane between
    /// polls of the network for keys up to 2048 bits, else on the bounded worker threads, so
    /// that other clients' cache hits keep flowing.
    async fn resolve_on_workers(
        &self,
        token: &str,
        settings: &Arc<Settings>,
    ) -> Result<Arc<Resolved>, AuthError> {
        let token = token.to_owned();
        let here = runs_on_the_serving_thread(&settings.auth);
        let settings = Arc::clone(settings);
        let job = move || resolve_uncached(&token, &settings.auth, unix_now()).map(Arc::new);
        let answer = if here { self.workers.run(job).await } else { self.workers.run_on_threads(job).await };
        answer.unwrap_or_else(|err| match err {
            workers::WorkerError::Busy => Err(AuthError::Busy),
            workers::WorkerError::Lost => Err(AuthError::Internal),
        })
    }
}

#[cfg(test)]
mod tests {
    use openssl::rsa::Rsa;

    use super::{AuthSettings, runs_on_the_serving_thread};
    use crate::keys::{DecryptKey, VerifyKey};
    use crate::settings::KeyRing;

    fn auth_with_payload_bits(bits: u32) -> AuthSettings {
        let pem =
            |bits| Rsa::generate(bits).and_then(|k| k.private_key_to_pem()).unwrap_or_else(|e| panic!("{e}"));
        let signing = VerifyKey::from_pem(&pem(1024)).unwrap_or_else(|e| panic!("{e}"));
        let payload = DecryptKey::from_pem(&pem(bits)).unwrap_or_else(|e| panic!("{e}"));
        AuthSettings { keys: KeyRing::current(signing, payload), ..AuthSettings::default() }
    }

    #[test]
    fn keys_up_to_2048_bits_decrypt_on_the_serving_thread_larger_ones_on_workers() {
        assert!(runs_on_the_serving_thread(&auth_with_payload_bits(1024)));
        assert!(runs_on_the_serving_thread(&auth_with_payload_bits(2048)));
        assert!(!runs_on_the_serving_thread(&auth_with_payload_bits(3072)));
    }
}
