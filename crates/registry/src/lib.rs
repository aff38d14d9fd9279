//! berth-registry: an OCI distribution server (distribution-spec v1.1 plus what Docker
//! clients expect) over content-addressed, crash-safe filesystem storage.
//!
//! [`server::Server`] binds and serves a [`config::Config`]; [`http::router`] is the API
//! over a [`registry::Registry`], which holds the operations; [`storage`] and [`uploads`]
//! are the on-disk layout; blob bodies are sent from memory maps of their files. [`hooks`] is where access control and events plug in;
//! [`auth`] (htpasswd users, per-repository rules, tokens) and [`webhook`] plug into it.
//! [`mirror`] serves namespaces from upstream registries, [`gc`] counts references and
//! sweeps what nothing references ([`admin`] lets `berth-registry gc` reach a running
//! registry), and [`metrics`] exposes counters at `/metrics`.

pub mod admin;
pub mod auth;
mod blobmap;
pub mod config;
pub mod error;
mod fsutil;
pub mod gc;
pub mod hooks;
pub mod http;
pub mod manifest;
pub mod metrics;
pub mod mirror;
pub mod names;
pub mod registry;
pub mod server;
pub mod storage;
pub mod uploads;
pub mod webhook;
pub mod search; pub mod ui;

pub use config::Config;
pub use error::{Error, ErrorKind, Result};
pub use registry::Registry;
pub use server::Server;
