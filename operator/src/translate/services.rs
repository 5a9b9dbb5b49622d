//! Fixed upstreams: the built-in services merged by name with `spec.services`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use route_crds::ServiceSpec;

use super::{Errors, port};

/// The abcdesktop services: name, host, port.
const BUILT_IN: [(&str, &str, u16); 4] = [
    ("pyos", "pyos", 8000),
    ("website", "website", 80),
    ("console", "console", 80),
    ("speedtest", "speedtest", 80),
];

/// Port of a new service that names none.
const DEFAULT_PORT: u16 = 80;

/// Service name -> `(host, port)`; `None` for a service with errors (already reported), so a
/// route naming it is not reported a second time.
pub(super) type Services = BTreeMap<String, Option<(Arc<str>, u16)>>;

pub(super) fn resolve(spec: &BTreeMap<String, ServiceSpec>, errors: &mut Errors) -> Services {
    let mut services: Services = BUILT_IN
        .iter()
        .map(|(name, host, port)| ((*name).to_owned(), Some((Arc::from(*host), *port))))
        .collect();
    for (name, service) in spec {
        let place = format!("spec.services.{name}");
        if !is_name(name) {
            errors.push(&place, format!("{name:?} is not a service name (letters, digits, '-', '_')"));
            continue;
        }
        let built_in = services.get(name).cloned().flatten();
        let host = match (&service.host, &built_in) {
            (Some(host), _) => match normalize_host(host) {
                Some(host) => Some(Arc::from(host)),
                None => {
                    errors
                        .push(format!("{place}.host"), format!("{host:?} is not a host name or IP address"));
                    None
                }
            },
            (None, Some((host, _))) => Some(Arc::clone(host)),
            (None, None) => {
                errors.push(format!("{place}.host"), "missing: a new service needs a host");
                None
            }
        };
        let port = match service.port {
            Some(value) => port(value, &format!("{place}.port"), errors),
            None => Some(built_in.map_or(DEFAULT_PORT, |(_, port)| port)),
        };
        services.insert(name.clone(), host.zip(port));
    }
    services
}

pub(super) fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A DNS name or an IP address (IPv6 with or without brackets, kept without them); no port,
/// scheme or path.
pub(crate) fn normalize_host(host: &str) -> Option<&str> {
    let unbracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if unbracketed.parse::<IpAddr>().is_ok() {
        return Some(unbracketed);
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    valid.then_some(host)
}
