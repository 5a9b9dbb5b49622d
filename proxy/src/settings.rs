//! The immutable snapshot the data plane serves from.
//!
//! Everything a request needs is here, already parsed and compiled: a change of settings is a
//! new `Arc<Settings>` published on a `tokio::sync::watch` channel, never an update in place.
//! The control plane (crate `route-operator`) builds it with `translate()`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::watch;

use crate::keys::{DecryptKey, VerifyKey};
use crate::route_table::{RouteTable, TokenSource};

/// One published configuration of the proxy.
#[derive(Debug)]
pub struct Settings {
    /// Increases by one with every published snapshot; 0 means "nothing loaded yet".
    pub generation: u64,
    /// Where these settings came from, for logs and status (`manifests:/etc/route`, `env`, ...).
    pub source: String,
    pub routes: RouteTable,
    pub auth: AuthSettings,
    pub limits: Limits,
    /// The `NODE_NAME` value answered on `/node`.
    pub node_name: String,
    /// Folder served under `/.well-known/acme-challenge/`.
    pub acme_dir: Option<PathBuf>,
    /// Certificate and key for the HTTPS listener, when one is configured.
    pub tls: Option<Arc<rustls::sign::CertifiedKey>>,
}

impl Settings {
    /// The snapshot a proxy holds before any source has loaded: it serves builtins only and
    /// `/readyz` answers 503.
    pub fn empty() -> Self {
        Self {
            generation: 0,
            source: "none".into(),
            routes: RouteTable::default(),
            auth: AuthSettings::default(),
            limits: Limits::default(),
            node_name: String::new(),
            acme_dir: None,
            tls: None,
        }
    }

    /// A watch channel holding [`Settings::empty`], as the proxy starts.
    pub fn channel() -> (watch::Sender<Arc<Settings>>, watch::Receiver<Arc<Settings>>) {
        Self::channel_with(ClientLimits::default())
    }

    /// A watch channel holding [`Settings::empty`] with the process's client limits: they
    /// hold before any source has loaded (`--kube` binds first).
    pub fn channel_with(
        client: ClientLimits,
    ) -> (watch::Sender<Arc<Settings>>, watch::Receiver<Arc<Settings>>) {
        let mut empty = Self::empty();
        empty.limits.client = client;
        watch::channel(Arc::new(empty))
    }

    pub fn is_loaded(&self) -> bool {
        self.generation > 0
    }
}

/// How tokens are verified and decrypted, and which targets they may name.
#[derive(Debug)]
pub struct AuthSettings {
    /// Asymmetric JWS algorithms accepted; RS256 only by default. HMAC and `none` can never be
    /// configured (translate() rejects them).
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    /// Padding used to decrypt the `hash` claim.
    pub decryption: Decryption,
    pub keys: KeyRing,
    pub targets: TargetPolicy,
    pub cache: CachePolicy,
    /// How long keys replaced by a rotation stay trusted.
    pub grace: Duration,
    /// Extra headers tried, in order, after each route's own token sources
    /// (`Authorization: Bearer` by default).
    pub fallback_sources: Vec<TokenSource>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            algorithms: vec![jsonwebtoken::Algorithm::RS256],
            decryption: Decryption::Pkcs1v15,
            keys: KeyRing::default(),
            targets: TargetPolicy::default(),
            cache: CachePolicy::default(),
            grace: Duration::from_secs(600),
            fallback_sources: vec![TokenSource::Header(http::header::AUTHORIZATION)],
        }
    }
}

/// Padding of the RSA encryption of the `hash` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decryption {
    /// RSAES-PKCS1-v1_5, what pyos uses by default.
    Pkcs1v15,
    OaepSha1,
    OaepSha256,
}

/// The keys trusted now: the current pair first, then keys kept for a grace period after a
/// rotation. Each key carries a fingerprint so cache entries can name the keys they came from.
#[derive(Debug, Default, Clone)]
pub struct KeyRing {
    pub signing: Vec<Trusted<VerifyKey>>,
    pub payload: Vec<Trusted<DecryptKey>>,
}

impl KeyRing {
    /// One current key pair, nothing in a grace period.
    pub fn current(signing: VerifyKey, payload: DecryptKey) -> Self {
        Self {
            signing: vec![Trusted::current(Arc::new(signing))],
            payload: vec![Trusted::current(Arc::new(payload))],
        }
    }
}

/// A key and until when it is trusted.
#[derive(Debug)]
pub struct Trusted<K> {
    pub key: Arc<K>,
    /// Unix seconds after which this key no longer verifies or decrypts; `None` for a current key.
    pub until: Option<u64>,
}

impl<K> Clone for Trusted<K> {
    fn clone(&self) -> Self {
        Self { key: Arc::clone(&self.key), until: self.until }
    }
}

impl<K> Trusted<K> {
    pub fn current(key: Arc<K>) -> Self {
        Self { key, until: None }
    }

    pub fn is_trusted_at(&self, now_unix: u64) -> bool {
        self.until.is_none_or(|until| now_unix < until)
    }
}

/// What a decrypted target may be.
#[derive(Debug, Clone, Default)]
pub struct TargetPolicy {
    /// When not empty, an IP target must be inside one of these networks.
    pub cidrs: Vec<IpNet>,
    /// When not empty, a DNS target must end with one of these suffixes (each starts with `.`).
    pub dns_suffixes: Vec<String>,
    /// When set, `/container/` may reach only these ports.
    pub container_ports: Option<Vec<u16>>,
}

impl TargetPolicy {
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.cidrs.is_empty() || self.cidrs.iter().any(|net| net.contains(&ip))
    }

    pub fn allows_name(&self, name: &str) -> bool {
        self.dns_suffixes.is_empty()
            || self
                .dns_suffixes
                .iter()
                .any(|suffix| name.len() > suffix.len() && name.ends_with(suffix.as_str()))
    }

    pub fn allows_container_port(&self, port: u16) -> bool {
        self.container_ports.as_ref().is_none_or(|ports| ports.contains(&port))
    }
}

/// Token cache bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// Longest time a resolved target stays cached, whatever the token's `exp`.
    pub ttl_cap: Duration,
    /// Most entries held at once.
    pub max_entries: u64,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self { ttl_cap: Duration::from_secs(600), max_entries: 100_000 }
    }
}

/// Timeouts and limits that are not per route. The listeners and the request path read them
/// from the snapshot of the moment: a reload applies to the next connection, request or body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connecting to an upstream; past it the client gets 502.
    pub connect_timeout: Duration,
    /// How long SIGTERM waits for in-flight requests before closing what is left.
    pub drain_timeout: Duration,
    /// Reading a client's request head (and its first bytes, before the protocol is known).
    pub header_read_timeout: Duration,
    pub client: ClientLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(30),
            client: ClientLimits::default(),
        }
    }
}

/// What a client may hold of the process and send it. `route serve` flags set them; the
/// publisher puts them into every snapshot, beside the spec's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientLimits {
    /// Client connections open at once, over every listener (WebSocket tunnels included).
    pub max_connections: usize,
    /// Client connections open at once from one IP address; 0 for no such limit (the default:
    /// behind an ingress or a NAT, every client shares an address).
    pub max_connections_per_ip: usize,
    /// Largest request head (request line and headers), in bytes: over it, 431. HTTP/2 header
    /// lists are bounded the same.
    pub max_header_bytes: usize,
    /// Most request header lines: over it, 431.
    pub max_headers: usize,
    /// Longest path and query, in bytes: over it, 414.
    pub max_uri_bytes: usize,
    /// Longest silence of a request body while the proxy waits for it: past it, 408.
    pub body_idle_timeout: Duration,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_connections_per_ip: 0,
            max_header_bytes: 32 * 1024,
            // nginx's default: a request line must fit in one 8 KiB buffer.
            max_uri_bytes: 8 * 1024,
            max_headers: 100,
            // nginx's `client_body_timeout`.
            body_idle_timeout: Duration::from_secs(60),
        }
    }
}
