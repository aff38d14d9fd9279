//! Errors of the log files.

use std::path::PathBuf;

/// What kind of failure an error is; the API maps this to an HTTP status.
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
    #[error("unknown logging driver {driver:?} (supported: json-file, local, none)")]
    UnknownDriver { driver: String },
    #[error("unknown log opt {option:?} for log driver {driver}")]
    UnknownOption {
        driver: &'static str,
        option: String,
    },
    #[error("invalid value {value:?} for log opt {option}: {reason}")]
    InvalidOption {
        option: String,
        value: String,
        reason: String,
    },
    #[error("invalid container id {id:?} for a log file name")]
    InvalidId { id: String },
    /// Docker's message, word for word: clients match on it.
    #[error("configured logging driver does not support reading")]
    ReadNotSupported,
    #[error("log time {time:?} is out of range for the log format")]
    TimeOutOfRange { time: std::time::SystemTime },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt log file {path} at line {line}: {reason}")]
    Corrupt {
        path: PathBuf,
        line: u64,
        reason: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::UnknownDriver { .. }
            | Error::UnknownOption { .. }
            | Error::InvalidOption { .. }
            | Error::InvalidId { .. }
            | Error::ReadNotSupported
            | Error::TimeOutOfRange { .. } => ErrorKind::InvalidArgument,
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            Error::Io { .. } | Error::Corrupt { .. } => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    pub(crate) fn invalid(option: &str, value: &str, reason: impl Into<String>) -> Error {
        Error::InvalidOption {
            option: option.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}
