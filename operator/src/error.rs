//! The one error type of the control plane.

use std::fmt;

use crate::translate::ConfigError;

/// Errors of the control plane. A configuration that does not translate is a list of
/// [`ConfigError`]s; [`Error::Invalid`] carries them where one error value is wanted
/// (`main` maps it to exit code 64).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {}", Listed(.0))]
    Invalid(Vec<ConfigError>),
    /// No usable Kubernetes client configuration (in-cluster or KUBECONFIG).
    #[error("Kubernetes client configuration: {0}")]
    KubeConfig(#[source] kube::Error),
}

impl From<Vec<ConfigError>> for Error {
    fn from(errors: Vec<ConfigError>) -> Self {
        Self::Invalid(errors)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `a; b; c`.
struct Listed<'a>(&'a [ConfigError]);

impl fmt::Display for Listed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// An I/O error's reason without the `(os error N)` suffix, as people read it:
/// `No such file or directory`.
pub(crate) fn io_reason(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_owned(),
        _ => text,
    }
}
