//! Resolved targets, cached per token.
//!
//! Keyed by the SHA-256 of the token, never the token itself. An entry lives until
//! min(exp - now, cap); concurrent misses for one token share one resolution; a hit does no
//! crypto. Entries name the keys that produced them, so a rotation past its grace period
//! invalidates them without a sweep.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use moka::Expiry;
use moka::future::Cache;

use super::desktop_host::DesktopHost;
use crate::settings::{Decryption, Settings};

/// A token's verified answer.
#[derive(Debug)]
pub struct Resolved {
    pub target: DesktopHost,
    /// The token's `exp`, Unix seconds.
    pub exp: u64,
    /// How long the entry may live in the cache (zero: not cached).
    pub ttl: Duration,
    /// When that lifetime ends, Unix seconds.
    pub cached_until: u64,
    pub(crate) signing_id: u64,
    pub(crate) payload_id: u64,
    pub(crate) algorithm: Algorithm,
    pub(crate) decryption: Decryption,
}

impl Resolved {
    /// Whether this answer still holds under `settings` at `now`: its keys are still trusted,
    /// its algorithm and padding still allowed, its target still inside the policy.
    pub fn still_valid(&self, settings: &Settings, now: u64) -> bool {
        let auth = &settings.auth;
        now < self.exp
            && auth.algorithms.contains(&self.algorithm)
            && auth.decryption == self.decryption
            && auth.keys.signing.iter().any(|k| k.key.id() == self.signing_id && k.is_trusted_at(now))
            && auth.keys.payload.iter().any(|k| k.key.id() == self.payload_id && k.is_trusted_at(now))
            && self.target.allowed_by(&auth.targets)
    }
}

/// The TTL of a token resolved at `now`: min(exp - now, cap), and nothing at 1 s or less.
pub fn ttl_for(exp: u64, now: u64, cap: Duration) -> Duration {
    let left = Duration::from_secs(exp.saturating_sub(now));
    let ttl = left.min(cap);
    if ttl <= Duration::from_secs(1) { Duration::ZERO } else { ttl }
}

pub(crate) type Key = [u8; 32];

struct PerEntry;

impl Expiry<Key, Arc<Resolved>> for PerEntry {
    fn expire_after_create(&self, _: &Key, value: &Arc<Resolved>, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Keys are SHA-256 digests: a seeded foldhash of their 32 bytes is as good a table hash as
/// SipHash, at a tenth of its cost (callgrind: SipHash was ~270 instructions a lookup).
type KeyHasher = foldhash::quality::RandomState;

/// The bounded token cache.
#[derive(Clone)]
pub struct TokenCache {
    inner: Cache<Key, Arc<Resolved>, KeyHasher>,
    capacity: u64,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").field("capacity", &self.capacity).finish_non_exhaustive()
    }
}

impl TokenCache {
    pub fn new(capacity: u64) -> Self {
        let inner = Cache::builder()
            .max_capacity(capacity)
            .expire_after(PerEntry)
            .build_with_hasher(KeyHasher::default());
        Self { inner, capacity }
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    pub(crate) fn key(token: &str) -> Key {
        // ring rather than OpenSSL: no allocation or provider lookup per call (OpenSSL 3's
        // digest set-up cost more than hashing a 700-byte token; see bench/results).
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut key = [0; 32];
        key.copy_from_slice(digest.as_ref());
        key
    }

    pub(crate) async fn get(&self, key: &Key) -> Option<Arc<Resolved>> {
        self.inner.get(key).await
    }

    pub(crate) async fn invalidate(&self, key: &Key) {
        self.inner.invalidate(key).await;
    }

    /// Resolves through the cache: one `init` runs for concurrent misses of the same key.
    pub(crate) async fn get_or_resolve<F, E>(&self, key: Key, init: F) -> Result<Arc<Resolved>, Arc<E>>
    where
        F: Future<Output = Result<Arc<Resolved>, E>>,
        E: Send + Sync + 'static,
    {
        self.inner.try_get_with(key, init).await
    }

    /// Entries held now. moka counts lazily: pending inserts and evictions are applied first,
    /// so a scrape of `/metrics` sees the bound hold.
    pub async fn entry_count(&self) -> u64 {
        self.inner.run_pending_tasks().await;
        self.inner.entry_count()
    }

    /// Drops every entry (a key was revoked).
    pub fn clear(&self) {
        self.inner.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_capped_and_short_lives_are_not_cached() {
        let cap = Duration::from_secs(600);
        assert_eq!(ttl_for(1_000 + 420, 1_000, cap), Duration::from_secs(420));
        assert_eq!(ttl_for(1_000 + 4_200, 1_000, cap), cap);
        assert_eq!(ttl_for(1_001, 1_000, cap), Duration::ZERO);
        assert_eq!(ttl_for(1_002, 1_000, cap), Duration::from_secs(2));
        assert_eq!(ttl_for(900, 1_000, cap), Duration::ZERO);
    }

    fn resolved(ttl: u64) -> Arc<Resolved> {
        Arc::new(Resolved {
            target: DesktopHost::parse(b"10.0.0.1").unwrap(),
            exp: u64::MAX,
            ttl: Duration::from_secs(ttl),
            cached_until: u64::MAX,
            signing_id: 1,
            payload_id: 2,
            algorithm: Algorithm::RS256,
            decryption: Decryption::Pkcs1v15,
        })
    }

    #[tokio::test]
    async fn entries_stay_within_the_bound_and_zero_ttl_ones_never_answer() {
        let cache = TokenCache::new(100);
        for i in 0..1_000u32 {
            let key = TokenCache::key(&i.to_string());
            cache.get_or_resolve(key, async { Ok::<_, ()>(resolved(600)) }).await.unwrap();
        }
        let held = cache.entry_count().await;
        assert!((1..=100).contains(&held), "{held} entries held with a bound of 100");
        let cache = TokenCache::new(100);
        let key = TokenCache::key("short");
        cache.get_or_resolve(key, async { Ok::<_, ()>(resolved(0)) }).await.unwrap();
        assert!(cache.get(&key).await.is_none(), "a zero TTL entry answered");
    }
}
