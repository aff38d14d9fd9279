//! The runtime's error type: each variant names the failed operation and what it acted on.

use std::path::PathBuf;

/// What kind of failure an error is; callers map kinds to exit codes or HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    Conflict,
    InvalidArgument,
    Unavailable,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidSpec(String),
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("container {0:?} already exists")]
    AlreadyExists(String),
    #[error("container {id:?} is {status}: {action} needs it {wanted}")]
    WrongState { id: String, status: String, action: &'static str, wanted: &'static str },
    #[error("{0}")]
    Unsupported(String),
    #[error("{op} {path}: {source}")]
    Path { op: &'static str, path: PathBuf, #[source] source: std::io::Error },
    #[error("{op}: {source}")]
    Sys { op: String, #[source] source: std::io::Error },
    #[error("cgroups: {0}")]
    Cgroup(#[from] berth_cgroups::Error),
    #[error("seccomp: {0}")]
    Seccomp(String),
    #[error("hook {path}: {reason}")]
    Hook { path: String, reason: String },
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidSpec(_) | Error::Unsupported(_) => ErrorKind::InvalidArgument,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Error::WrongState { .. } => ErrorKind::Conflict,
            Error::Path { source, .. } | Error::Sys { source, .. }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                ErrorKind::NotFound
            }
            _ => ErrorKind::Internal,
        }
    }

    /// An error for a syscall that failed with `errno`.
    pub fn sys(op: impl Into<String>, errno: nix::errno::Errno) -> Self {
        Error::Sys { op: op.into(), source: std::io::Error::from_raw_os_error(errno as i32) }
    }

    /// An error for an operation on `path` that failed with `errno`.
    pub fn path(op: &'static str, path: impl Into<PathBuf>, errno: nix::errno::Errno) -> Self {
        Error::Path { op, path: path.into(), source: std::io::Error::from_raw_os_error(errno as i32) }
    }

    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Path { op, path: path.into(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
