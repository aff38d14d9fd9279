//! The crate's error type: what failed, on what, and the kind the API maps to a status.

use std::path::PathBuf;

/// What kind of failure an error is; the API maps kinds to HTTP status in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    Conflict,
    InvalidArgument,
    Unauthorized,
    Unavailable,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is invalid; the message is Docker's where Docker has one.
    #[error("{0}")]
    InvalidArgument(String),
    /// A file inside the container's rootfs could not be read.
    #[error("read {path} in the container's rootfs: {source}")]
    ReadRootfs {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A host device named by the request could not be inspected.
    #[error("error gathering device information while adding custom device {path:?}: {source}")]
    Device {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The host's /dev could not be listed for a privileged container.
    #[error("list host devices in {path}: {source}")]
    HostDevices {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A bug: the spec we assembled does not parse as an OCI spec.
    #[error("assemble the OCI spec: {0}")]
    Internal(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument(_) | Error::Device { .. } => ErrorKind::InvalidArgument,
            Error::ReadRootfs { .. } | Error::HostDevices { .. } | Error::Internal(_) => {
                ErrorKind::Internal
            }
        }
    }
}

/// Shorthand for an invalid-argument error.
pub(crate) fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
