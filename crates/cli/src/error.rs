//! The CLI's error type. Errors the user sees keep docker's wording (for example
//! "Error response from daemon: ...") because scripts match on it; each error has a kind
//! and an exit status.

use std::io;
use std::path::PathBuf;

use crate::format::template::TemplateError;
use crate::reference::ReferenceError;

/// Broad class of a failure.
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

/// Everything that can fail in the CLI.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag could not be parsed; docker exits 125 for these.
    #[error("{0}")]
    Flags(String),
    /// Wrong arguments or an unknown command.
    #[error("{0}")]
    Usage(String),
    /// An argument was not acceptable, with docker's message.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("Cannot connect to the berth daemon at {host}. Is the berth daemon running?")]
    Connect { host: String, source: io::Error },
    #[error(
        "permission denied while trying to connect to the berth daemon socket at {host}: {source}"
    )]
    ConnectPermission { host: String, source: io::Error },
    #[error("unable to parse berth host `{0}`")]
    BadHost(String),
    #[error("error during connect: {operation}: {source}")]
    Transport {
        operation: &'static str,
        source: hyper::Error,
    },
    /// The daemon answered with an error status.
    #[error("Error response from daemon: {message}")]
    Daemon { status: u16, message: String },
    #[error("error reading response of {operation}: {source}")]
    Decode {
        operation: &'static str,
        source: serde_json::Error,
    },
    /// A progress stream reported a failure; the message is the daemon's.
    #[error("{0}")]
    Stream(String),
    #[error("{0}")]
    Template(#[from] TemplateError),
    /// A `--format` template did not parse; docker exits 64 for these.
    #[error("{0}")]
    TemplateStatus(String),
    #[error("{0}")]
    Reference(#[from] ReferenceError),
    #[error("{operation} {}: {}", path.display(), go_io_error(source))]
    File {
        operation: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{operation}: {}", go_io_error(source))]
    Io {
        operation: &'static str,
        source: io::Error,
    },
    #[error("loading config file {}: {source}", path.display())]
    Config {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("credential helper docker-credential-{helper}: {message}")]
    CredentialHelper { helper: String, message: String },
    /// The user declined a confirmation prompt; nothing is printed and the exit status is 0.
    #[error("")]
    Cancelled,
    /// A failure with its own exit status (docker's `StatusError`): a container's exit
    /// code, or 125/126/127 for `run`; the message may be empty.
    #[error("{message}")]
    Status { code: i32, message: String },
    /// Several independent failures (one per argument), printed one per line.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Multiple(Vec<Error>),
}

impl Error {
    /// The broad class of the failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Flags(_) | Error::Usage(_) | Error::InvalidArgument(_) => {
                ErrorKind::InvalidArgument
            }
            Error::Template(_) | Error::TemplateStatus(_) | Error::Reference(_) => {
                ErrorKind::InvalidArgument
            }
            Error::BadHost(_) => ErrorKind::InvalidArgument,
            Error::Connect { .. } | Error::Transport { .. } => ErrorKind::Unavailable,
            Error::ConnectPermission { .. } => ErrorKind::Unauthorized,
            Error::Daemon { status, .. } => match status {
                400 => ErrorKind::InvalidArgument,
                401 | 403 => ErrorKind::Unauthorized,
                404 => ErrorKind::NotFound,
                409 => ErrorKind::Conflict,
                503 => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            },
            Error::File { source, .. } | Error::Io { source, .. } => match source.kind() {
                io::ErrorKind::NotFound => ErrorKind::NotFound,
                io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
                io::ErrorKind::PermissionDenied => ErrorKind::Unauthorized,
                _ => ErrorKind::Internal,
            },
            Error::Config { .. } => ErrorKind::InvalidArgument,
            Error::Decode { .. } | Error::Stream(_) | Error::CredentialHelper { .. } => {
                ErrorKind::Internal
            }
            Error::Cancelled => ErrorKind::Conflict,
            Error::Status { .. } => ErrorKind::Internal,
            Error::Multiple(errors) => errors.first().map_or(ErrorKind::Internal, Error::kind),
        }
    }

    /// The process exit status docker uses for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Flags(_) => 125,
            Error::TemplateStatus(_) => 64,
            Error::Cancelled => 0,
            Error::Status { code, .. } => *code,
            _ => 1,
        }
    }

    /// Whether the reader of our output went away (`berth images | head -1`).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    }

    /// Whether the daemon reported that the object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }
}

/// An I/O error worded as Go words it ("no such file or directory"), since docker's
/// messages are what scripts expect.
pub fn go_io_error(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match (e.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(i)) => text[..i].to_string(),
        _ => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// The CLI's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_exit_codes() {
        let e = Error::Daemon {
            status: 404,
            message: "No such image: x:latest".into(),
        };
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(
            e.to_string(),
            "Error response from daemon: No such image: x:latest"
        );
        assert_eq!(e.exit_code(), 1);
        assert_eq!(Error::Flags("unknown flag: --x".into()).exit_code(), 125);
        assert_eq!(Error::TemplateStatus("bad".into()).exit_code(), 64);
        assert_eq!(Error::Cancelled.exit_code(), 0);
        let missing = Error::File {
            operation: "open",
            path: "/x".into(),
            source: io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert_eq!(missing.to_string(), "open /x: no such file or directory");
        let both = Error::Multiple(vec![Error::Usage("a".into()), Error::Usage("b".into())]);
        assert_eq!(both.to_string(), "a\nb");
    }
}
