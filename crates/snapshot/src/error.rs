//! Errors of the snapshot crate: each variant names the failed operation and the path or layer entry.

use std::io;
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
    /// A layer entry whose name leaves the layer root.
    #[error("layer entry {entry:?} escapes the layer root")]
    EntryEscapes { entry: String },
    /// A hardlink entry whose target leaves the layer root.
    #[error("layer entry {entry:?}: link target {target:?} escapes the layer root")]
    LinkEscapes { entry: String, target: String },
    /// A layer entry that cannot be applied as it is (bad type, bad whiteout, bad header field).
    #[error("layer entry {entry:?}: {reason}")]
    InvalidEntry { entry: String, reason: String },
    /// A filesystem operation on behalf of a layer entry failed.
    #[error("layer entry {entry:?}: {op}: {source}")]
    Entry {
        entry: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// The layer stream itself could not be read or parsed (truncated, corrupt, bad compression).
    #[error("read layer tar: {0}")]
    ReadLayer(#[source] io::Error),
    /// Writing a layer tar failed at an entry (reading the file or writing the output).
    #[error("write layer entry {entry:?} of {dir}: {source}")]
    WriteLayer {
        dir: PathBuf,
        entry: String,
        #[source]
        source: io::Error,
    },
    /// A filesystem operation on a path failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Mounting failed; `detail` carries the kernel's own message when it gave one.
    #[error("mount overlay at {target}: {source}{detail}")]
    Mount {
        target: PathBuf,
        detail: String,
        #[source]
        source: io::Error,
    },
    /// A mount request that is wrong before any syscall (no lower directory, bad path).
    #[error("mount overlay at {target}: {reason}")]
    InvalidMount { target: PathBuf, reason: String },
    #[error("{0} is not a mount point")]
    NotMounted(PathBuf),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::EntryEscapes { .. } | Error::LinkEscapes { .. } | Error::InvalidEntry { .. } => {
                ErrorKind::InvalidArgument
            }
            // Missing link targets, files used as parents, names too long: the layer is wrong.
            Error::Entry { source, .. } => match source.raw_os_error() {
                Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::EXDEV | libc::ENAMETOOLONG | libc::EINVAL) => {
                    ErrorKind::InvalidArgument
                }
                _ => io_kind(source),
            },
            Error::ReadLayer(source) => match source.kind() {
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::TimedOut
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::Interrupted => ErrorKind::Unavailable,
                _ => ErrorKind::InvalidArgument,
            },
            Error::WriteLayer { source, .. } | Error::Io { source, .. } => io_kind(source),
            Error::Mount { source, .. } => match source.raw_os_error() {
                Some(libc::EBUSY) => ErrorKind::Conflict,
                Some(libc::EINVAL) => ErrorKind::InvalidArgument,
                _ => io_kind(source),
            },
            Error::InvalidMount { .. } => ErrorKind::InvalidArgument,
            Error::NotMounted(_) => ErrorKind::NotFound,
        }
    }

    /// A mapper for `map_err` that names the operation and the path.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

fn io_kind(e: &io::Error) -> ErrorKind {
    match e.kind() {
        io::ErrorKind::NotFound => ErrorKind::NotFound,
        io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
            ErrorKind::InvalidArgument
        }
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::ResourceBusy => {
            ErrorKind::Unavailable
        }
        _ => ErrorKind::Internal,
    }
}
