//! A fault-injecting HTTPS proxy between `route` and the real kube-apiserver, for the faults
//! the server cannot be made to produce: a burst of 500s, requests that hang, writes refused. It terminates TLS
//! (a certificate of its own, which its kubeconfig trusts), forwards each request on a new TLS
//! connection to the server, streams the answer back (watches included), and records what it
//! did. It knows nothing of Kubernetes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::control_plane::{ControlPlane, write_kubeconfig_for};

/// What the proxy does with each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward to the server.
    Pass,
    /// Answer this status (a JSON `Status` body) without asking the server.
    Fail(u16),
    /// Answer nothing until the mode changes, then 503.
    Hang,
    /// Answer this status to every request but a GET: reads, lists and watches pass, writes fail.
    FailWrites(u16),
}

/// A request the proxy saw and what it did: (method, path and query, status; 0 for a hang).
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub status: u16,
}

type Body = BoxBody<Bytes, hyper::Error>;

struct Shared {
    mode: watch::Sender<Mode>,
    seen: Mutex<Vec<Seen>>,
    /// Bumped to drop every open connection.
    cut: watch::Sender<u64>,
}

/// The running proxy; stopped when dropped.
pub struct FaultProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _tasks: JoinSet<()>,
    ca_pem: String,
}

impl FaultProxy {
    /// A proxy to `plane`'s kube-apiserver.
    pub async fn start(plane: &ControlPlane) -> Self {
        let (cert, key, _) = super::tls::self_signed();
        let server_config = {
            use rustls::pki_types::pem::PemObject as _;
            use rustls::pki_types::{CertificateDer, PrivateKeyDer};
            let certs = vec![CertificateDer::from_pem_slice(cert.as_bytes()).expect("cert")];
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key");
            let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config");
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        };
        let upstream = {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject as _;
            let mut roots = rustls::RootCertStore::empty();
            roots.add(CertificateDer::from_pem_slice(plane.ca_pem.as_bytes()).expect("ca")).expect("root");
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared {
            mode: watch::channel(Mode::Pass).0,
            seen: Mutex::new(Vec::new()),
            cut: watch::channel(0).0,
        });
        let mut tasks = JoinSet::new();
        let target = SocketAddr::from(([127, 0, 0, 1], plane.port));
        let accept_shared = Arc::clone(&shared);
        tasks.spawn(async move {
            let acceptor = tokio_rustls::TlsAcceptor::from(server_config);
            let connector = tokio_rustls::TlsConnector::from(upstream);
            let mut connections = JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, connector, shared) =
                    (acceptor.clone(), connector.clone(), Arc::clone(&accept_shared));
                let mut cut = shared.cut.subscribe();
                connections.spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(move |req| {
                        handle(req, Arc::clone(&shared), connector.clone(), target)
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service);
                    tokio::select! {
                        _ = conn => {}
                        _ = cut.changed() => {}
                    }
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Self { addr, shared, _tasks: tasks, ca_pem: cert }
    }

    /// A kubeconfig through this proxy with `token`, in `namespace`.
    pub fn write_kubeconfig(&self, path: &Path, token: &str, namespace: &str) {
        write_kubeconfig_for(path, &format!("https://{}", self.addr), &self.ca_pem, token, namespace);
    }

    pub fn set(&self, mode: Mode) {
        self.shared.mode.send_replace(mode);
    }

    /// Drops every open connection (watches included): the clients must connect again.
    pub fn cut(&self) {
        self.shared.cut.send_modify(|n| *n += 1);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    pub fn clear_seen(&self) {
        self.shared.seen.lock().unwrap().clear();
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    connector: tokio_rustls::TlsConnector,
    target: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().to_string();
    let uri = req.uri().path_and_query().map(ToString::to_string).unwrap_or_default();
    let record = |status: u16| {
        shared.seen.lock().unwrap().push(Seen { method: method.clone(), uri: uri.clone(), status })
    };
    let mut mode = shared.mode.subscribe();
    let current = *mode.borrow_and_update();
    match current {
        Mode::Fail(code) => {
            record(code);
            return Ok(status(code));
        }
        Mode::Hang => {
            record(0);
            let _ = mode.changed().await;
            return Ok(status(503));
        }
        Mode::FailWrites(code) if method != "GET" => {
            record(code);
            return Ok(status(code));
        }
        Mode::FailWrites(_) | Mode::Pass => {}
    }
    let response = async {
        let tcp = TcpStream::connect(target).await.map_err(|e| e.to_string())?;
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
        let tls = connector.connect(name.to_owned(), tcp).await.map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        sender.send_request(req).await.map_err(|e| e.to_string())
    }
    .await;
    match response {
        Ok(resp) => {
            record(resp.status().as_u16());
            Ok(resp.map(|b| b.boxed()))
        }
        Err(err) => {
            record(502);
            let mut resp = status(502);
            *resp.body_mut() = Full::new(Bytes::from(err)).map_err(|never| match never {}).boxed();
            Ok(resp)
        }
    }
}

/// A Kubernetes-shaped `Status` answer with `code`.
fn status(code: u16) -> Response<Body> {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": "injected by the test fault proxy", "code": code,
    });
    let mut resp =
        Response::new(Full::new(Bytes::from(body.to_string())).map_err(|never| match never {}).boxed());
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    resp
}
