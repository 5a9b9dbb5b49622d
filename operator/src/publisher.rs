//! Publishing settings snapshots to the proxy, with key rotation grace.

use std::sync::Arc;
use std::time::Duration;

use route_proxy::Settings;
use route_proxy::keys::{DecryptKey, VerifyKey};
use route_proxy::metrics::{Metrics, ReloadResult};
use route_proxy::settings::{ClientLimits, KeyRing, Trusted};
use tokio::sync::watch;

use crate::translate::ConfigError;

/// Puts settings on the proxy's watch channel, numbering them, and reports rejected ones.
/// Every source of one process shares one publisher (it is cheap to clone).
#[derive(Clone, Debug)]
pub struct Publisher {
    tx: watch::Sender<Arc<Settings>>,
    metrics: Arc<Metrics>,
    /// The process's client limits (`route serve` flags), put into every snapshot.
    client_limits: ClientLimits,
}

impl Publisher {
    pub fn new(tx: watch::Sender<Arc<Settings>>, metrics: Arc<Metrics>) -> Self {
        Self { tx, metrics, client_limits: ClientLimits::default() }
    }

    /// Where reloads are counted, and the sources' own troubles.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Publishes every snapshot with `limits` as its client limits.
    pub fn with_client_limits(mut self, limits: ClientLimits) -> Self {
        self.client_limits = limits;
        self
    }

    /// Publishes `next` as generation `previous + 1` and returns that generation.
    ///
    /// When the current keys changed, the keys they replace stay trusted for `next.auth.grace`
    /// (see [`merge_key_ring`]), so tokens pyos signed a moment before a rotation still work.
    /// Settings equal to the current ones are not published again (a source may reload
    /// unchanged content: a watch starting after `load`, a resync); the current generation is
    /// returned.
    pub fn publish(&self, next: Settings) -> u64 {
        self.publish_at(next, route_proxy::clock::unix_now())
    }

    fn publish_at(&self, mut next: Settings, now_unix: u64) -> u64 {
        next.limits.client = self.client_limits.clone();
        let mut published: Option<Arc<Settings>> = None;
        let mut unchanged = 0;
        // The channel's lock is held from reading the previous snapshot to storing the next,
        // so two sources publishing at once cannot both take one generation.
        self.tx.send_if_modified(|current| {
            let keys = std::mem::take(&mut next.auth.keys);
            next.auth.keys = merge_key_ring(&current.auth.keys, keys, next.auth.grace, now_unix);
            next.generation = current.generation;
            if current.is_loaded() && same(current, &next) {
                unchanged = current.generation;
                return false;
            }
            next.generation = current.generation + 1;
            let next = Arc::new(std::mem::replace(&mut next, Settings::empty()));
            *current = Arc::clone(&next);
            published = Some(next);
            true
        });
        let Some(settings) = published else {
            tracing::debug!(generation = unchanged, source = %next.source, "settings unchanged");
            self.metrics.record_reload(ReloadResult::Success, Some(unchanged));
            return unchanged;
        };
        self.metrics.record_reload(ReloadResult::Success, Some(settings.generation));
        let keys = &settings.auth.keys;
        tracing::info!(
            generation = settings.generation,
            source = %settings.source,
            signing_keys = %fingerprints(&keys.signing),
            payload_keys = %fingerprints(&keys.payload),
            routes = settings.routes.len(),
            "settings published"
        );
        settings.generation
    }

    /// Reports a configuration that failed to load; the last good settings stay published.
    pub fn reject(&self, source: &str, errors: &[ConfigError]) {
        for error in errors {
            tracing::warn!(source, place = %error.place, error = %error.message, "configuration rejected");
        }
        self.metrics.record_reload(ReloadResult::Rejected, None);
    }

    /// The settings being served.
    pub fn current(&self) -> Arc<Settings> {
        Arc::clone(&self.tx.borrow())
    }
}

/// The keys of a new snapshot: the current keys of `next`, then the keys still in grace.
///
/// - A previous current key that `next` no longer has as current is kept until
///   `now_unix + grace`.
/// - A key already in grace is kept until its own end, or `now_unix + grace` if that is
///   sooner, and dropped once expired.
/// - A key that is current again is current, not graced; fingerprints appear once.
/// - `grace` of zero revokes every previous key at once.
pub fn merge_key_ring(previous: &KeyRing, next: KeyRing, grace: Duration, now_unix: u64) -> KeyRing {
    KeyRing {
        signing: merge(&previous.signing, next.signing, grace, now_unix),
        payload: merge(&previous.payload, next.payload, grace, now_unix),
    }
}

fn merge<K: Fingerprint>(
    previous: &[Trusted<K>],
    mut next: Vec<Trusted<K>>,
    grace: Duration,
    now_unix: u64,
) -> Vec<Trusted<K>> {
    if grace.is_zero() {
        return next;
    }
    let grace_end = now_unix.saturating_add(grace.as_secs());
    for old in previous {
        let until = old.until.map_or(grace_end, |until| until.min(grace_end));
        let known = next.iter().any(|k| k.key.fingerprint() == old.key.fingerprint());
        if until > now_unix && !known {
            next.push(Trusted { key: Arc::clone(&old.key), until: Some(until) });
        }
    }
    next
}

/// Whether two snapshots serve alike. `Settings` has no `PartialEq` (keys and TLS material do
/// not compare); its `Debug` form names every value, keys by fingerprint, bits and trust end.
/// Never logged: it is only compared.
fn same(a: &Settings, b: &Settings) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// Keys that can be told apart by fingerprint.
trait Fingerprint {
    fn fingerprint(&self) -> &str;
}

impl Fingerprint for VerifyKey {
    fn fingerprint(&self) -> &str {
        VerifyKey::fingerprint(self)
    }
}

impl Fingerprint for DecryptKey {
    fn fingerprint(&self) -> &str {
        DecryptKey::fingerprint(self)
    }
}

/// `sha256:aa,sha256:bb(until 1700000000)`, current keys first.
fn fingerprints<K: Fingerprint>(keys: &[Trusted<K>]) -> String {
    let mut out = String::new();
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(key.key.fingerprint());
        if let Some(until) = key.until {
            out.push_str(&format!("(until {until})"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
