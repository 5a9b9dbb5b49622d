//! The data plane of `route`: resolves desktop tokens to pods and forwards HTTP and WebSocket
//! traffic to them.
//!
//! It never talks to Kubernetes: settings arrive as immutable [`Settings`] snapshots on a
//! `tokio::sync::watch` channel, built by the control plane (`route-operator`).
//!
//! Modules depend one way: `settings`, `keys` and `route_table` hold data; `guard`, `builtins`,
//! `auth` and `forward` each do one phase of a request; `outcome` answers every request that
//! does not end with an upstream's response; `handler` runs the phases; `server` and `admin`
//! are the listeners.

pub mod access;
pub mod admin;
pub mod auth;
mod builtins;
pub mod clock;
mod error;
pub mod forward;
pub mod guard;
mod handler;
pub mod keys;
pub mod metrics;
pub mod outcome;
pub mod route_table;
pub mod server;
pub mod settings;

pub use error::{Error, Result};
pub use handler::{Connection, Handler};
pub use settings::Settings;
