//! HTTPS: a self-signed certificate made with OpenSSL, and a rustls client with ALPN.

use std::sync::Arc;

use super::{STEP, within};

/// A self-signed RSA certificate for `localhost` and 127.0.0.1: (cert PEM, key PEM, cert DER).
pub fn self_signed() -> (String, String, Vec<u8>) {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::extension::SubjectAlternativeName;
    use openssl::x509::{X509Builder, X509NameBuilder};

    let rsa = Rsa::generate(2048).expect("rsa");
    let key_pem = String::from_utf8(rsa.private_key_to_pem().expect("pem")).expect("utf8");
    let pkey = PKey::from_rsa(rsa).expect("pkey");
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", "localhost").expect("cn");
    let name = name.build();
    let mut b = X509Builder::new().expect("builder");
    b.set_version(2).expect("version");
    b.set_serial_number(&BigNum::from_u32(rand_serial()).expect("bn").to_asn1_integer().expect("serial"))
        .expect("serial");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(&pkey).expect("pubkey");
    b.set_not_before(&Asn1Time::days_from_now(0).expect("time")).expect("not before");
    b.set_not_after(&Asn1Time::days_from_now(30).expect("time")).expect("not after");
    let san = SubjectAlternativeName::new()
        .dns("localhost")
        .ip("127.0.0.1")
        .build(&b.x509v3_context(None, None))
        .expect("san");
    b.append_extension(san).expect("extension");
    b.sign(&pkey, MessageDigest::sha256()).expect("sign");
    let cert = b.build();
    (String::from_utf8(cert.to_pem().expect("pem")).expect("utf8"), key_pem, cert.to_der().expect("der"))
}

pub async fn connect(
    addr: std::net::SocketAddr,
    roots: &[&[u8]],
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut store = rustls::RootCertStore::empty();
    for der in roots {
        store.add(rustls::pki_types::CertificateDer::from(der.to_vec())).expect("root");
    }
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(store)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = within(STEP, "connect", tokio::net::TcpStream::connect(addr)).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    within(STEP, "TLS handshake", connector.connect(name, tcp)).await.expect("TLS handshake")
}

fn rand_serial() -> u32 {
    let mut bytes = [0_u8; 4];
    openssl::rand::rand_bytes(&mut bytes).expect("random");
    u32::from_le_bytes(bytes) >> 1
}
