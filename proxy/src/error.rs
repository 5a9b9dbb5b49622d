//! The one error type of the data plane.

use std::io;

/// Errors of the data plane that are not per-request outcomes (those are
/// [`crate::outcome::Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key could not be loaded; the message never holds key material.
    #[error("key: {0}")]
    Key(String),
    #[error("TLS material: {0}")]
    Tls(String),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl Error {
    pub(crate) fn key(err: openssl::error::ErrorStack) -> Self {
        // OpenSSL's error stack names functions and reasons, never key bytes.
        Self::Key(err.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
