//! Errors of the engine's services, each with a kind the API maps to an HTTP status.

/// What kind of failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    Conflict,
    InvalidArgument,
    /// Nothing to do (HTTP 304): starting a running container, stopping a stopped one.
    NotModified,
    Unauthorized,
    Unavailable,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotModified(String),
    /// The container's program could not be started; `code` is the exit code docker
    /// reports for it (127 not found, 126 not executable, 128 other).
    #[error("{message}")]
    StartFailed { message: String, code: i32 },
    #[error(transparent)]
    Store(#[from] berth_store::Error),
    #[error(transparent)]
    Snapshot(#[from] berth_snapshot::Error),
    #[error(transparent)]
    Distribution(#[from] berth_distribution::Error),
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: std::path::PathBuf, source: std::io::Error },
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NoSuchImage(_) | Error::NotFound(_) => ErrorKind::NotFound,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::NotModified(_) => ErrorKind::NotModified,
            Error::StartFailed { code, .. } if *code != 128 => ErrorKind::InvalidArgument,
            Error::StartFailed { .. } => ErrorKind::Internal,
            Error::Store(e) => match e.kind() {
                berth_store::ErrorKind::NotFound => ErrorKind::NotFound,
                berth_store::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
                berth_store::ErrorKind::Conflict => ErrorKind::Conflict,
                berth_store::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
                berth_store::ErrorKind::Internal => ErrorKind::Internal,
            },
            Error::Snapshot(e) => match e.kind() {
                berth_snapshot::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
                _ => ErrorKind::Internal,
            },
            Error::Distribution(e) => match e.kind() {
                berth_distribution::ErrorKind::NotFound => ErrorKind::NotFound,
                berth_distribution::ErrorKind::Unauthorized => ErrorKind::Unauthorized,
                berth_distribution::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
                berth_distribution::ErrorKind::Unavailable => ErrorKind::Unavailable,
                berth_distribution::ErrorKind::Conflict => ErrorKind::Conflict,
                _ => ErrorKind::Internal,
            },
            Error::Io { .. } | Error::Internal(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<std::path::PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}
