//! berth-registry: an OCI distribution server (distribution-spec v1.1 plus what Docker
//! clients expect) over content-addressed, crash-safe filesystem storage.
//!
//! [`server::Server`] binds and serves a [`config::Config`]; [`http::router`] is the API
//! over a [`registry::Registry`], which holds the operations; [`storage`] and [`uploads`]
//! are the on-disk layout. [`hooks`] is where access control and events plug in.

pub mod config;
pub mod error;
mod fsutil;
pub mod hooks;
pub mod http;
pub mod manifest;
pub mod names;
pub mod registry;
pub mod server;
pub mod storage;
pub mod uploads;

pub use config::Config;
pub use error::{Error, ErrorKind, Result};
pub use registry::Registry;
pub use server::Server;
