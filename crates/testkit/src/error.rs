//! Errors of the harness; each names the operation and what it acted on.

use std::path::PathBuf;

/// A harness failure (setup, a command that could not run, unparsable output).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("spawn {cmd}: {source}")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{cmd} timed out after {secs}s")]
    Timeout { cmd: String, secs: u64 },
    #[error("{cmd} failed with {status}\nstdout: {stdout}\nstderr: {stderr}")]
    Failed {
        cmd: String,
        status: String,
        stdout: String,
        stderr: String,
    },
    #[error("{what}: invalid json: {source}\ntext: {text}")]
    Json {
        what: String,
        text: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("config patch at {pointer}: {reason}")]
    Patch { pointer: String, reason: String },
    #[error("setup: {0}")]
    Setup(String),
}

/// Result of harness operations.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
