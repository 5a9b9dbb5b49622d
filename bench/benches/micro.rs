//! Criterion microbenchmarks of the request path's hot pieces, so that a regression shows up
//! without a load run: route matching, token extraction, a token-cache hit, and the cold path
//! (verify + decrypt) per key size.
//!
//! `cargo bench -p route-bench --bench micro` (README, "Benchmarks"). Settings come from
//! route-operator's `translate()` on the default RouteConfig, as `route serve` builds them, so
//! the route table measured is the real built-in one.
// Set-up failures should stop the run loudly, as in tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::request::Parts;
use openssl::rsa::Padding;
use route_mint::{self as mint, KeySet, Minter, PrivateFormat, unix_now};
use route_proxy::Settings;
use route_proxy::auth::{Resolver, extract, resolve_uncached};
use route_proxy::keys::{DecryptKey, VerifyKey};
use route_proxy::metrics::Metrics;
use route_proxy::route_table::Backend;
use route_proxy::route_table::TokenSource;
use route_proxy::settings::{AuthSettings, KeyRing};

/// A pod address as abcdesktop's tokens carry it.
const TARGET: &str = "10.244.0.17";

/// A token valid for an hour, well past any run, so that no case measures an expiry.
fn token(keys: &KeySet) -> String {
    let now = unix_now();
    Minter::from_key_set(keys).unwrap().mint(TARGET, now, now + 3600).unwrap()
}

/// The default RouteConfig (`spec: {}`) translated with `keys`, as `route serve` would load it.
fn settings(keys: &KeySet) -> Settings {
    let secret = |name: &str, file: &str, pem: &str| {
        (name.to_owned(), BTreeMap::from([(file.to_owned(), pem.as_bytes().to_vec())]))
    };
    let secrets = BTreeMap::from([
        secret(route_crds::SIGNING_SECRET, mint::SIGNING_PUBLIC, &keys.signing_public),
        secret(route_crds::PAYLOAD_SECRET, mint::PAYLOAD_PRIVATE, &keys.payload_private),
    ]);
    let ctx = route_operator::Context { node_name: "bench".into(), source: "bench".into() };
    route_operator::translate(&route_crds::RouteConfigSpec::default(), &secrets, &ctx)
        .unwrap_or_else(|errors| panic!("default spec: {errors:?}"))
}

/// The token sources of the route serving `path`, from the real table.
fn sources<'a>(settings: &'a Settings, path: &str) -> &'a [TokenSource] {
    match &settings.routes.lookup(path).expect("a route").1.backend {
        Backend::Desktop { sources, .. } | Backend::Container { sources } => sources,
        Backend::Service { .. } => panic!("{path} takes no token"),
    }
}

fn parts(uri: &str, header: Option<(&str, String)>) -> Parts {
    let mut request = http::Request::builder().uri(uri);
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    request.body(()).unwrap().into_parts().0
}

fn route_lookup(c: &mut Criterion, settings: &Settings, token: &str) {
    let container = format!("/container/{token}/6081/index.html");
    // The built-in table ends with the website's `/`, so no path misses: the "miss" is a path no
    // other prefix matches, which scans the whole table before falling through to `/`.
    let cases = [
        ("spawner_deep", "/spawner/API/desktop/launch/1234", "spawner"),
        ("websockify", "/websockify", "websockify"),
        ("container_token_port", container.as_str(), "container"),
        ("miss_to_website", "/no/such/route/here", "website"),
    ];
    let mut group = c.benchmark_group("route_lookup");
    for (name, path, route) in cases {
        let found = settings.routes.lookup(path).expect("a route");
        assert_eq!(&*found.1.name, route, "{path}");
        group.bench_function(name, |b| b.iter(|| settings.routes.lookup(black_box(path))));
    }
    group.finish();
}

fn token_extract(c: &mut Criterion, settings: &Settings, token: &str) {
    let bearer = format!("Bearer {token}");
    let fallback = &settings.auth.fallback_sources;
    let cases = [
        ("abcauthorization", parts("/spawner/x", Some(("ABCAuthorization", bearer.clone()))), "/spawner"),
        ("jwt_token_query", parts(&format!("/websockify?jwt_token={token}"), None), "/websockify"),
        // The route's own source (ABCAuthorization) is absent: found by the fallback.
        ("authorization_bearer", parts("/spawner/x", Some(("Authorization", bearer))), "/spawner"),
    ];
    let mut group = c.benchmark_group("token_extract");
    for (name, parts, path) in &cases {
        let sources = sources(settings, path);
        assert_eq!(extract::extract(parts, sources, fallback), Some(token), "{name}");
        group.bench_function(*name, |b| b.iter(|| extract::extract(black_box(parts), sources, fallback)));
    }
    group.finish();
}

fn cache_hit(c: &mut Criterion, settings: Settings, token: &str) {
    // One current-thread runtime: a hit never leaves the calling task, so this is the cost a
    // worker pays per request (SHA-256 of the token, the cache lookup, the validity check).
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let settings = Arc::new(settings);
    let resolver = Resolver::new(Arc::new(Metrics::new()));
    let first = runtime.block_on(resolver.resolve(token, &settings)).expect("the token resolves");
    assert_eq!(first.target.host(), TARGET);
    c.bench_function("resolver/cache_hit", |b| {
        b.to_async(&runtime).iter(|| resolver.resolve(black_box(token), &settings))
    });
}

/// Current keys only, as `vectors.rs` builds them: the cold path without any grace-period key.
fn auth_for(keys: &KeySet) -> AuthSettings {
    let signing = VerifyKey::from_pem(keys.signing_public.as_bytes()).unwrap();
    let payload = DecryptKey::from_pem(keys.payload_private.as_bytes()).unwrap();
    AuthSettings { keys: KeyRing::current(signing, payload), ..AuthSettings::default() }
}

fn verify_decrypt(c: &mut Criterion, key_sets: &[(u32, KeySet)]) {
    let mut group = c.benchmark_group("verify_decrypt");
    // 4096-bit decrypts take ~7 ms: fewer samples keep the group within a few seconds.
    group.sample_size(30);
    for (bits, keys) in key_sets {
        let auth = auth_for(keys);
        let token = token(keys);
        let now = unix_now();
        assert_eq!(resolve_uncached(&token, &auth, now).expect("resolves").target.host(), TARGET);
        group.bench_with_input(BenchmarkId::new("resolve_uncached", bits), &token, |b, token| {
            b.iter(|| resolve_uncached(black_box(token), &auth, now))
        });

        // The private operation alone, for reference: what resolve_uncached spends beyond it
        // is the RS256 verify, base64 and JSON.
        let private = openssl::pkey::PKey::private_key_from_pem(keys.payload_private.as_bytes())
            .and_then(|k| k.rsa())
            .unwrap();
        let size = private.size() as usize;
        let mut sealed = vec![0; size];
        let n = private.public_encrypt(TARGET.as_bytes(), &mut sealed, Padding::PKCS1).unwrap();
        sealed.truncate(n);
        let mut out = vec![0; size];
        group.bench_with_input(BenchmarkId::new("openssl_pkcs1_decrypt", bits), &sealed, |b, sealed| {
            b.iter(|| private.private_decrypt(black_box(sealed), &mut out, Padding::PKCS1).unwrap())
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    // 2048 bits: abcdesktop's current default, and what bench/run's cache-hit row uses.
    let keys = KeySet::generate(2048, PrivateFormat::Pkcs8).unwrap();
    let token = token(&keys);
    let settings = settings(&keys);
    route_lookup(c, &settings, &token);
    token_extract(c, &settings, &token);
    cache_hit(c, settings, &token);

    // 1024 bits in PKCS#1, as abcdesktop installs up to 4.0 wrote them.
    let key_sets = [(1024, PrivateFormat::Pkcs1), (2048, PrivateFormat::Pkcs8), (4096, PrivateFormat::Pkcs8)]
        .map(|(bits, format)| (bits, KeySet::generate(bits, format).unwrap()));
    verify_decrypt(c, &key_sets);
}

criterion_group!(micro, benches);
criterion_main!(micro);
