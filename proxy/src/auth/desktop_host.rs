//! The decrypted routing target: a bare IP address or DNS name, nothing else.

use std::net::IpAddr;
use std::sync::Arc;

use super::AuthError;
use crate::settings::TargetPolicy;

/// A validated desktop target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesktopHost {
    host: Arc<str>,
    ip: Option<IpAddr>,
}

impl DesktopHost {
    /// Validates the plaintext of the `hash` claim. pyos sends the pod IP or, with
    /// `desktop.useinternalfqdn`, the pod FQDN: no port, no scheme, no path, no whitespace.
    pub fn parse(plain: &[u8]) -> Result<Self, AuthError> {
        let text = std::str::from_utf8(plain).map_err(|_| AuthError::Target)?;
        if let Ok(ip) = text.parse::<IpAddr>() {
            if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::from([255, 255, 255, 255]) {
                return Err(AuthError::Target);
            }
            let host = match ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            };
            return Ok(Self { host: host.into(), ip: Some(ip) });
        }
        if is_dns_name(text) {
            return Ok(Self { host: text.to_ascii_lowercase().into(), ip: None });
        }
        Err(AuthError::Target)
    }

    /// The host as it goes into an authority: `10.0.0.1`, `[fd00::1]` or `pod.ns.svc`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The host, shared (no copy on the request path).
    pub fn shared_host(&self) -> &Arc<str> {
        &self.host
    }

    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    pub fn allowed_by(&self, policy: &TargetPolicy) -> bool {
        match self.ip {
            Some(ip) => policy.allows_ip(ip),
            None => policy.allows_name(&self.host),
        }
    }
}

/// RFC 1123 host name: labels of letters, digits and inner hyphens, 1 to 63 long, 253 in all.
/// Names made only of digits and dots are refused: they would be read as IP addresses.
fn is_dns_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    labels_ok && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ips_and_names() {
        assert_eq!(DesktopHost::parse(b"10.244.0.17").unwrap().host(), "10.244.0.17");
        assert_eq!(DesktopHost::parse(b"fd00::1").unwrap().host(), "[fd00::1]");
        let fqdn = b"anonymous-0a1b2c3d.desktop.abcdesktop.svc.cluster.local";
        assert_eq!(DesktopHost::parse(fqdn).unwrap().host().as_bytes(), fqdn);
        assert_eq!(DesktopHost::parse(b"Pod.NS").unwrap().host(), "pod.ns");
    }

    #[test]
    fn refuses_anything_but_a_bare_host() {
        for bad in [
            &b"127.0.0.1:22"[..],
            b"evil.example/x",
            b"http://x",
            b"x y",
            b"x\n",
            b"",
            b"-x.y",
            b"x..y",
            b"0.0.0.0",
            b"224.0.0.1",
            b"999.1.1.1",
            b"a@b",
            b"\xff\xfe",
            b"x.",
        ] {
            assert!(DesktopHost::parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn policy() {
        let policy = TargetPolicy {
            cidrs: vec!["10.244.0.0/16".parse().unwrap()],
            dns_suffixes: vec![".desktop.abcdesktop.svc.cluster.local".into()],
            container_ports: None,
        };
        assert!(DesktopHost::parse(b"10.244.1.2").unwrap().allowed_by(&policy));
        assert!(!DesktopHost::parse(b"10.245.1.2").unwrap().allowed_by(&policy));
        assert!(DesktopHost::parse(b"p.desktop.abcdesktop.svc.cluster.local").unwrap().allowed_by(&policy));
        assert!(!DesktopHost::parse(b"kube-apiserver.default.svc").unwrap().allowed_by(&policy));
        assert!(!DesktopHost::parse(b"desktop.abcdesktop.svc.cluster.local").unwrap().allowed_by(&policy));
    }
}
