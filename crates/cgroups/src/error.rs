//! The crate's error type: each variant names the failed operation and the path or value.

use std::io;
use std::path::PathBuf;

/// An error from a cgroup operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a cgroup or proc file failed.
    #[error("read {}: {}", .path.display(), os_msg(.err))]
    Read { path: PathBuf, err: io::Error },

    /// Writing a value to a cgroup file failed (opening it included).
    #[error("write {value} to {}: {}", .path.display(), os_msg(.err))]
    Write {
        path: PathBuf,
        value: String,
        err: io::Error,
    },

    /// Creating a cgroup directory failed.
    #[error("create {}: {}", .path.display(), os_msg(.err))]
    Create { path: PathBuf, err: io::Error },

    /// Removing a cgroup directory failed.
    #[error("remove {}: {}", .path.display(), os_msg(.err))]
    Remove { path: PathBuf, err: io::Error },

    /// Opening a file or directory (not for a write) failed.
    #[error("open {}: {}", .path.display(), os_msg(.err))]
    Open { path: PathBuf, err: io::Error },

    /// statfs(2) on a path failed.
    #[error("statfs {}: {}", .path.display(), os_msg(.err))]
    Statfs { path: PathBuf, err: io::Error },

    /// A kernel file had content we could not parse.
    #[error("parse {}: {reason}", .path.display())]
    Parse { path: PathBuf, reason: String },

    /// The OCI `linux.cgroupsPath` is not acceptable.
    #[error("invalid cgroups path {}: {reason}", .path.display())]
    InvalidPath { path: PathBuf, reason: &'static str },

    /// The container id cannot name a cgroup.
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },

    /// No cgroup file system is mounted where one is needed.
    #[error("no cgroup hierarchy mounted at {}", .path.display())]
    NotMounted { path: PathBuf },

    /// A resource was requested whose controller is not mounted.
    #[error("{what}: the {controller} controller is not mounted")]
    ControllerMissing { controller: String, what: String },

    /// A resource value is out of range or malformed.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidValue {
        what: &'static str,
        value: String,
        reason: String,
    },

    /// The host cannot do what was asked (a missing kernel file, a v2-only knob on v1, ...).
    #[error("{what} is not supported in {}: {reason}", .path.display())]
    Unsupported {
        what: String,
        path: PathBuf,
        reason: String,
    },

    /// A device rule list cannot be expressed by the devices controller.
    #[error("device rule {rule}: {reason}")]
    DeviceRule { rule: String, reason: String },

    /// A bpf(2) operation for the v2 device filter failed.
    #[error("bpf {op} for {}: {}{}", .path.display(), os_msg(.err), verifier_log(.log))]
    Bpf {
        op: &'static str,
        path: PathBuf,
        err: io::Error,
        log: String,
    },

    /// The cgroup did not reach the requested freezer state in time.
    #[error("{op} {}: state is still {state}", .path.display())]
    Freeze {
        op: &'static str,
        path: PathBuf,
        state: String,
    },
}

/// Coarse classification of an [`Error`], for mapping to exit codes or API statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A file or directory does not exist.
    NotFound,
    /// Something already exists.
    AlreadyExists,
    /// The object is busy or in the wrong state.
    Conflict,
    /// The request itself is wrong.
    InvalidArgument,
    /// The host lacks a needed feature or permission.
    Unavailable,
    /// Anything else.
    Internal,
}

impl Error {
    /// The errno behind this error, when a system call failed.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Read { err, .. }
            | Error::Write { err, .. }
            | Error::Create { err, .. }
            | Error::Remove { err, .. }
            | Error::Open { err, .. }
            | Error::Statfs { err, .. }
            | Error::Bpf { err, .. } => err.raw_os_error(),
            _ => None,
        }
    }

    /// The coarse kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidPath { .. }
            | Error::InvalidId { .. }
            | Error::InvalidValue { .. }
            | Error::DeviceRule { .. } => ErrorKind::InvalidArgument,
            Error::NotMounted { .. }
            | Error::ControllerMissing { .. }
            | Error::Unsupported { .. } => ErrorKind::Unavailable,
            Error::Freeze { .. } => ErrorKind::Conflict,
            Error::Parse { .. } => ErrorKind::Internal,
            _ => match self.raw_os_error() {
                Some(libc::ENOENT) => ErrorKind::NotFound,
                Some(libc::EEXIST) => ErrorKind::AlreadyExists,
                Some(libc::EBUSY) => ErrorKind::Conflict,
                Some(libc::EINVAL) | Some(libc::ERANGE) => ErrorKind::InvalidArgument,
                Some(libc::EPERM) | Some(libc::EACCES) | Some(libc::EROFS) | Some(libc::ENOSPC) => {
                    ErrorKind::Unavailable
                }
                _ => ErrorKind::Internal,
            },
        }
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Lowercase strerror text without the "(os error N)" suffix std adds.
pub(crate) fn os_msg(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(n) => {
            let desc = nix::errno::Errno::from_raw(n).desc();
            let mut chars = desc.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => format!("errno {n}"),
            }
        }
        None => err.to_string(),
    }
}

fn verifier_log(log: &str) -> String {
    let log = log.trim();
    if log.is_empty() {
        String::new()
    } else {
        format!(" (verifier log: {log})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_error_message_names_value_file_and_errno() {
        let e = Error::Write {
            path: PathBuf::from("/sys/fs/cgroup/pids/x/pids.max"),
            value: "1000".into(),
            err: io::Error::from_raw_os_error(libc::EINVAL),
        };
        assert_eq!(
            e.to_string(),
            "write 1000 to /sys/fs/cgroup/pids/x/pids.max: invalid argument"
        );
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    }
}
