//! What berthd and `berth-shim` say to each other.
//!
//! berthd starts a shim with a [`ShimConfig`] as JSON on its stdin and reads one
//! [`Ready`] line from its stdout: the container is created (not started) and the shim
//! listens on `config.socket`. Every connection to that socket opens with one [`Request`]
//! as a JSON line; the shim answers with one [`Reply`] line. `Attach` and `Exec` then turn
//! the connection into the container's stream, in Docker's attach format: raw bytes with
//! a terminal, else frames of an 8-byte header (stream, 0, 0, 0, big-endian length) and
//! the payload; bytes the client sends go to the process's stdin.
//!
//! When the container's init exits the shim writes an [`ExitRecord`] to
//! `config.exit_file` (temp, fsync, rename) before it answers `Wait` and leaves, so an
//! exit that happens while berthd is down is never lost.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How the shim runs one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimConfig {
    pub id: String,
    /// The OCI bundle (holds config.json).
    pub bundle: PathBuf,
    /// berth-runtime's state root.
    pub runtime_root: PathBuf,
    /// The unix socket the shim serves.
    pub socket: PathBuf,
    pub exit_file: PathBuf,
    /// Keep stdin open for attach (`-i`).
    pub stdin: bool,
    /// Close the container's stdin when the first attached client ends its input.
    pub stdin_once: bool,
    /// The process has a terminal (`-t`).
    pub tty: bool,
    pub log: LogSettings,
}

/// The container's log: driver, options and where its files go.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LogSettings {
    pub driver: String,
    pub options: BTreeMap<String, String>,
    pub dir: PathBuf,
    /// Extra attributes per entry (from the `labels`/`env` log options).
    pub attrs: BTreeMap<String, String>,
}

/// The shim's first line on stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ready {
    /// The container exists; `pid` is its init, `shim_pid` the shim.
    Created { pid: i32, shim_pid: i32 },
    /// Creation failed; nothing is left behind.
    Failed { message: String, kind: FailureKind },
}

/// Why a create or exec failed, as far as the caller must tell users apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The program does not exist (docker exits 127).
    NotFound,
    /// The program exists but cannot be run (docker exits 126).
    NotExecutable,
    Other,
}

/// Which streams an attached client wants.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Streams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Bytes that, typed on stdin, detach the client (e.g. ctrl-p ctrl-q).
    #[serde(default)]
    pub detach_keys: Vec<u8>,
}

/// The first line of every connection to the shim.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Run the created container's program.
    Start,
    /// Answered with `Reply::Exited` when init has exited.
    Wait,
    Kill { signal: i32, all: bool },
    /// The connection becomes the container's stream.
    Attach(Streams),
    /// Resize the container's terminal, or an exec's.
    Resize { exec: Option<String>, height: u16, width: u16 },
    CloseStdin,
    Pause,
    Resume,
    /// New cgroup limits, an OCI `LinuxResources` object.
    Update { resources: serde_json::Value },
    /// Start a process in the container (an OCI `Process` object); the connection becomes
    /// its stream after `Reply::Started`.
    Exec { id: String, process: serde_json::Value, tty: bool, streams: Streams },
    /// Answered with `Reply::Exited` when the exec `id` has exited.
    ExecWait { id: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Ok,
    Started { pid: i32 },
    Exited(ExitRecord),
    Error { message: String, kind: FailureKind },
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The exit status, or 128 + the signal that killed it (as docker reports).
    pub code: i32,
    /// Nanoseconds since the epoch.
    pub finished_at: i128,
    pub oom_killed: bool,
}

/// Encodes a message as one JSON line.
pub fn to_line<T: Serialize>(message: &T) -> Vec<u8> {
    let mut line = serde_json::to_vec(message).unwrap_or_else(|_| b"{}".to_vec());
    line.push(b'\n');
    line
}

/// Decodes one JSON line.
pub fn from_line<'a, T: Deserialize<'a>>(line: &'a [u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(line.strip_suffix(b"\n").unwrap_or(line))
}

/// The 8-byte header of a frame in Docker's multiplexed stream format.
pub fn frame_header(stream: u8, len: usize) -> [u8; 8] {
    let n = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    [stream, 0, 0, 0, n[0], n[1], n[2], n[3]]
}

pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let line = to_line(&Request::Kill { signal: 15, all: false });
        assert_eq!(line, b"{\"op\":\"kill\",\"signal\":15,\"all\":false}\n");
        match from_line::<Request>(&line).unwrap() {
            Request::Kill { signal, all } => assert_eq!((signal, all), (15, false)),
            other => panic!("{other:?}"),
        }
        let r: Reply = from_line(&to_line(&Reply::Exited(ExitRecord { code: 137, finished_at: 5, oom_killed: true }))).unwrap();
        assert!(matches!(r, Reply::Exited(ExitRecord { code: 137, .. })));
        assert!(from_line::<Request>(b"{\"op\":\"nope\"}").is_err());
    }

    #[test]
    fn frame_header_is_big_endian() {
        assert_eq!(frame_header(STDERR, 0x0102), [2, 0, 0, 0, 0, 0, 1, 2]);
    }
}
