//! The data plane of `route`: resolves desktop tokens to pods and forwards HTTP and WebSocket
//! traffic to them.
//!
//! It never talks to Kubernetes: settings arrive as immutable [`Settings`] snapshots on a
//! `tokio::sync::watch` channel, built by the control plane (`route-operator`).

pub mod access;
pub mod auth;
mod builtins;
mod error;
pub mod forward;
pub mod guard;
pub mod metrics;
pub mod routes;
pub mod server;
mod service;
pub mod settings;

pub use error::{Error, Result};
pub use service::{Connection, Proxy};
pub use settings::Settings;
