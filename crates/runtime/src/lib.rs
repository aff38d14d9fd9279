//! berth-runtime: turns an OCI bundle into a running Linux container.
//!
//! Synchronous and single-threaded by design: it forks and clones, so it must never run
//! inside a multi-threaded async process. `berth-runc` and `berth-shim` link it.

pub mod container;
pub mod devices;
pub mod error;
mod foreground;
pub mod fsutil;
pub mod hooks;
mod init;
pub mod mounts;
pub mod namespaces;
pub mod process;
pub mod seccomp;
pub mod selfexe;
pub mod spec;
pub mod state;
mod sync;
pub mod terminal;

pub use error::{Error, ErrorKind, Result};
