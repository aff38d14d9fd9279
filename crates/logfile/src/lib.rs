//! berth-logfile: the container log files `berth-shim` writes and `berthd` reads.
//!
//! Drivers as docker's `--log-driver`: `json-file` (docker's format byte for byte),
//! `local` (a compact binary format) and `none`. Rotation by size is on by default.
//! Everything here is synchronous and small: the shim writes without threads or an async
//! runtime, the daemon reads from blocking threads. See docs/logs.md.
//!
//! ```no_run
//! use std::collections::{BTreeMap, HashMap};
//! use std::time::SystemTime;
//! use berth_logfile::{read, LogConfig, ReadOptions, Stream, Writer};
//!
//! let dir = std::path::Path::new("/var/lib/berth/containers/abc");
//! let config = LogConfig::parse("json-file", &HashMap::new())?;
//! let mut writer = Writer::open(dir, "abc", &config, BTreeMap::new())?;
//! writer.write(Stream::Stdout, b"hello\n", SystemTime::now())?;
//!
//! let opts = ReadOptions { tail: Some(10), ..ReadOptions::default() };
//! for entry in read(dir, "abc", &config, &opts, &|| true)? {
//!     print!("{}", String::from_utf8_lossy(&entry?.line));
//! }
//! # Ok::<(), berth_logfile::Error>(())
//! ```

mod config;
mod error;
mod files;
mod json;
mod local;
mod reader;
mod timefmt;
mod watch;
mod writer;

use std::path::Path;
use std::time::SystemTime;

pub use config::{
    parse_max_size, ContainerInfo, Driver, LogConfig, DEFAULT_MAX_FILE, DEFAULT_MAX_SIZE,
};
pub use error::{Error, ErrorKind, Result};
pub use reader::{read, ReadOptions, Reader};
pub use writer::Writer;

/// Longest message: longer lines are split into partial messages of this size (docker's
/// 16 KiB).
pub const MAX_MESSAGE: usize = 16 * 1024;

/// Which output of the container a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// `stdout` or `stderr`, as json-file writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    pub fn from_name(name: &str) -> Option<Stream> {
        match name {
            "stdout" => Some(Stream::Stdout),
            "stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// One message read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub stream: Stream,
    pub time: SystemTime,
    /// The bytes, with the newline when the message ends a line.
    pub line: Vec<u8>,
    /// The message is a piece of a longer line (or the last, unterminated output).
    pub partial: bool,
    /// Attributes (`labels`, `env`, `tag` options), sorted by key.
    pub attrs: Vec<(String, String)>,
}

/// Removes every log file of container `id` (current, rotated, compressed); a container
/// without logs is fine.
pub fn remove(dir: &Path, id: &str, config: &LogConfig) -> Result<()> {
    let Some(base) = files::base_path(dir, id, config)? else {
        return Ok(());
    };
    files::remove_if_exists(&files::compress_temp(&base))?;
    files::remove_if_exists(&base)?;
    // Rotated files: up to max-file, and beyond while they exist (max-file may have shrunk).
    let mut index = 1;
    loop {
        let mut found = false;
        for gz in [false, true] {
            let path = files::rotated(&base, index, gz);
            if path.exists() {
                found = true;
                files::remove_if_exists(&path)?;
            }
        }
        if !found && index >= config.max_file {
            return Ok(());
        }
        index += 1;
    }
}
