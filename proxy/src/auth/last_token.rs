//! The token a client connection sent last, and its answer. A browser repeats its token on
//! every request of a keep-alive connection; comparing it with the last one costs a fraction of
//! the shared cache's SHA-256 key and lookup (docs/performance.md). The comparison is constant
//! time: behind a front proxy one connection carries many users' requests, and how long a
//! mismatch takes must not tell how much of another user's token was guessed.

use std::sync::{Arc, Mutex};

use super::Resolved;

/// The token's bytes and their answer.
type Remembered = (Box<[u8]>, Arc<Resolved>);

/// One per client connection. Holds a token only while its connection lives.
#[derive(Default)]
pub struct LastToken {
    slot: Mutex<Option<Remembered>>,
}

impl std::fmt::Debug for LastToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LastToken").finish_non_exhaustive()
    }
}

impl LastToken {
    /// The answer for `token` if it is the one last sent and its cache lifetime has not ended at
    /// `now` (Unix seconds). The caller still checks it against the settings of the moment.
    pub fn get(&self, token: &str, now: u64) -> Option<Arc<Resolved>> {
        let slot = self.slot.lock().ok()?;
        let (last, resolved) = slot.as_ref()?;
        let same = constant_time_eq::constant_time_eq(last, token.as_bytes());
        (same && now < resolved.cached_until).then(|| Arc::clone(resolved))
    }

    /// Remembers `resolved` as the answer for `token`, unless it may not be cached at all.
    pub fn set(&self, token: &str, resolved: &Arc<Resolved>) {
        if resolved.ttl.is_zero() {
            return;
        }
        // Replaced whole, not compared first: after a miss the slot may hold another user's token.
        if let Ok(mut slot) = self.slot.lock() {
            *slot = Some((token.as_bytes().into(), Arc::clone(resolved)));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::auth::DesktopHost;
    use crate::settings::Decryption;

    fn resolved(ttl: u64, cached_until: u64) -> Arc<Resolved> {
        Arc::new(Resolved {
            target: DesktopHost::parse(b"10.0.0.1").unwrap(),
            exp: u64::MAX,
            ttl: Duration::from_secs(ttl),
            cached_until,
            signing_id: 1,
            payload_id: 2,
            algorithm: jsonwebtoken::Algorithm::RS256,
            decryption: Decryption::Pkcs1v15,
        })
    }

    #[test]
    fn answers_only_the_same_token_within_its_cache_lifetime() {
        let last = LastToken::default();
        assert!(last.get("a.b.c", 0).is_none());
        last.set("a.b.c", &resolved(60, 1_060));
        assert!(last.get("a.b.c", 1_000).is_some());
        assert!(last.get("a.b.d", 1_000).is_none(), "another token of the same length");
        assert!(last.get("a.b.cc", 1_000).is_none(), "a longer token");
        assert!(last.get("a.b.", 1_000).is_none(), "a prefix");
        assert!(last.get("a.b.c", 1_060).is_none(), "past the entry's cache lifetime");
        last.set("x.y.z", &resolved(60, 2_000));
        assert!(last.get("a.b.c", 1_000).is_none(), "replaced by the newer token");
        assert!(last.get("x.y.z", 1_000).is_some());
    }

    #[test]
    fn answers_that_may_not_be_cached_are_not_remembered() {
        let last = LastToken::default();
        last.set("a.b.c", &resolved(0, 1_000));
        assert!(last.get("a.b.c", 0).is_none());
    }
}
