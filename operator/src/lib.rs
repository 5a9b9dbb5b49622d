//! The control plane of `route`: turns a configuration source into published
//! [`route_proxy::Settings`] snapshots.
//!
//! Every source ends in the same pure [`translate()`]: a `RouteConfig` spec plus the key
//! material it names, into settings or a list of precise errors. A [`Publisher`] puts good
//! settings on the proxy's watch channel (carrying replaced keys through their grace period)
//! and reports rejected ones, so the proxy always serves the last good snapshot.
//!
//! Sources:
//! - [`manifests`]: YAML files as one would `kubectl apply` them (a RouteConfig and Secrets);
//! - [`legacy_env`]: the original OpenResty router's environment variables, as a drop-in;
//! - [`kube`]: a RouteConfig and its Secrets in the cluster, watched.

mod error;
pub mod kube;
pub mod legacy_env;
pub mod manifests;
mod poll;
pub mod publisher;
mod summary;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod test_support;
pub mod translate;

pub use error::{Error, Result};
pub use publisher::{Publisher, merge_key_ring};
pub use summary::summary;
pub use translate::{ConfigError, Context, Secrets, translate};
