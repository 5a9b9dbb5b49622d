//! Token verification settings: algorithms, token sources, target policy, cache.

use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use jsonwebtoken::Algorithm;
use route_crds::{CacheSpec, DecryptionSpec, TargetsSpec, TokenSourceSpec};
use route_proxy::route_table::TokenSource;
use route_proxy::settings::{CachePolicy, Decryption, TargetPolicy};

use super::{Errors, port};

/// The only algorithms the desktop keys (RSA) can verify. HMAC would be keyed with the public
/// key's text (the original router's algorithm confusion), `none` verifies nothing, and EC or
/// EdDSA algorithms cannot use an RSA key.
const RSA_ALGORITHMS: [(&str, Algorithm); 6] = [
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("PS256", Algorithm::PS256),
    ("PS384", Algorithm::PS384),
    ("PS512", Algorithm::PS512),
];

pub(super) fn algorithms(names: &[String], errors: &mut Errors) -> Vec<Algorithm> {
    if names.is_empty() {
        errors.push("spec.jwt.algorithms", "empty: name at least one (RS256 is the default)");
    }
    let mut algorithms = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        match RSA_ALGORITHMS.iter().find(|(n, _)| n == name) {
            Some((_, alg)) if !algorithms.contains(alg) => algorithms.push(*alg),
            Some(_) => {}
            None => errors.push(
                format!("spec.jwt.algorithms[{i}]"),
                format!("{name} is not allowed: only RSA algorithms (RS256.. PS512)"),
            ),
        }
    }
    algorithms
}

pub(super) fn decryption(spec: DecryptionSpec) -> Decryption {
    match spec {
        DecryptionSpec::Pkcs1v15 => Decryption::Pkcs1v15,
        DecryptionSpec::OaepSha1 => Decryption::OaepSha1,
        DecryptionSpec::OaepSha256 => Decryption::OaepSha256,
    }
}

pub(super) fn fallback_sources(headers: &[String], errors: &mut Errors) -> Vec<TokenSource> {
    headers
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            header_name(name, &format!("spec.jwt.fallbackHeaders[{i}]"), errors).map(TokenSource::Header)
        })
        .collect()
}

fn header_name(name: &str, place: &str, errors: &mut Errors) -> Option<HeaderName> {
    match HeaderName::from_bytes(name.as_bytes()) {
        Ok(header) => Some(header),
        Err(_) => {
            errors.push(place, format!("{name:?} is not a header name"));
            None
        }
    }
}

/// A route's token sources; `place` is `spec.routes[i].tokenSources`.
pub(super) fn token_sources(specs: &[TokenSourceSpec], place: &str, errors: &mut Errors) -> Vec<TokenSource> {
    let mut sources = Vec::with_capacity(specs.len());
    for (j, spec) in specs.iter().enumerate() {
        let place = format!("{place}[{j}]");
        let given = [spec.header.is_some(), spec.query.is_some(), spec.raw_query.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            errors.push(&place, "give exactly one of header, query or rawQuery: true");
            continue;
        }
        if let Some(name) = &spec.header {
            sources.extend(header_name(name, &format!("{place}.header"), errors).map(TokenSource::Header));
        } else if let Some(name) = &spec.query {
            if name.is_empty() || name.contains(['&', '=', '#', '?', ' ']) {
                errors.push(format!("{place}.query"), format!("{name:?} is not a query parameter name"));
            } else {
                sources.push(TokenSource::Query(name.clone()));
            }
        } else if spec.raw_query == Some(true) {
            sources.push(TokenSource::RawQuery);
        } else {
            errors.push(format!("{place}.rawQuery"), "false: leave the source out instead");
        }
    }
    sources
}

pub(super) fn targets(spec: &TargetsSpec, errors: &mut Errors) -> TargetPolicy {
    let mut cidrs = Vec::with_capacity(spec.allowed_cidrs.len());
    for (i, cidr) in spec.allowed_cidrs.iter().enumerate() {
        match cidr.trim().parse::<IpNet>() {
            Ok(net) => cidrs.push(net.trunc()),
            Err(_) => errors.push(
                format!("spec.targets.allowedCidrs[{i}]"),
                format!("{cidr:?} is not a CIDR (e.g. 10.244.0.0/16)"),
            ),
        }
    }
    let mut dns_suffixes = Vec::with_capacity(spec.allowed_dns_suffixes.len());
    for (i, suffix) in spec.allowed_dns_suffixes.iter().enumerate() {
        let bare = suffix.trim().trim_start_matches('.').trim_end_matches('.').to_ascii_lowercase();
        let valid = !bare.is_empty()
            && bare.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if valid {
            dns_suffixes.push(format!(".{bare}"));
        } else {
            errors.push(
                format!("spec.targets.allowedDnsSuffixes[{i}]"),
                format!("{suffix:?} is not a DNS suffix (e.g. .desktop.abcdesktop.svc.cluster.local)"),
            );
        }
    }
    let mut ports = Vec::with_capacity(spec.container_ports.len());
    for (i, value) in spec.container_ports.iter().enumerate() {
        if let Some(p) = port(*value, &format!("spec.targets.containerPorts[{i}]"), errors)
            && !ports.contains(&p)
        {
            ports.push(p);
        }
    }
    TargetPolicy { cidrs, dns_suffixes, container_ports: if ports.is_empty() { None } else { Some(ports) } }
}

/// `ttlCapSeconds: 0` is allowed and turns the cache off: the proxy caches nothing whose TTL is
/// 1 s or less, and the cap bounds every TTL.
pub(super) fn cache(spec: &CacheSpec, errors: &mut Errors) -> CachePolicy {
    if spec.max_entries == 0 {
        errors.push("spec.cache.maxEntries", "0: at least 1 (use ttlCapSeconds: 0 to turn the cache off)");
    }
    CachePolicy { ttl_cap: Duration::from_secs(spec.ttl_cap_seconds), max_entries: spec.max_entries }
}
