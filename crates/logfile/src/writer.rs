//! The writer `berth-shim` feeds container output into: splits it into messages as
//! docker does, appends each with one `write`, and rotates files by size.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use flate2::{Compression, GzBuilder};

use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::files::{self, Format};
use crate::{json, local, timefmt, Stream, MAX_MESSAGE};

/// The encode buffer is given back above this size, so one huge line does not pin memory.
const ENCODED_KEEP: usize = 64 * 1024;

/// The incomplete last line of one stream.
struct Pending {
    buf: Vec<u8>,
    /// Time of the first 16 KiB piece of a split line; every piece of the line carries it.
    partial_time: Option<SystemTime>,
    /// Time of the last `write` to this stream, for what `flush_partial` emits.
    last_time: SystemTime,
}

impl Pending {
    fn new() -> Self {
        Pending {
            buf: Vec::new(),
            partial_time: None,
            last_time: SystemTime::UNIX_EPOCH,
        }
    }
}

/// The open file and what it takes to append to and rotate it.
struct Output {
    format: Format,
    base: PathBuf,
    file: File,
    size: u64,
    /// Whether the current file holds a record (a file is rotated only then).
    has_records: bool,
    /// `local`: the header every new file starts with.
    header: Vec<u8>,
    /// `json-file`: the `attrs` object of every line.
    attrs_json: Vec<u8>,
    max_size: Option<u64>,
    max_file: u32,
    compress: bool,
    encoded: Vec<u8>,
    /// Time of the last record in the current file, kept in the gzip header.
    last_time: Option<SystemTime>,
    /// The child process gzipping `.1`, until it is reaped.
    compressing: Option<rustix::process::Pid>,
}

/// Appends a container's output to its log files.
///
/// Output arrives in chunks of any size; a message is a line (the newline stays in it), a
/// line longer than [`MAX_MESSAGE`] bytes becomes several partial messages, and an
/// incomplete last line waits for its newline, for [`Writer::flush_partial`], or for the
/// 16 KiB limit. Nothing is fsynced per message; call [`Writer::sync`] at exit.
///
/// With `compress`, a rotated file is gzipped by a child process the writer forks and
/// reaps (before the next rotation and on drop); a caller that reaps any child must ignore
/// that pid.
pub struct Writer {
    out: Option<Output>,
    pending: [Pending; 2],
}

impl Writer {
    /// Opens (or creates) the current log file of container `id` in `dir`. A record left
    /// half-written by a killed writer is cut off first. `attrs` are stored with every
    /// message (see [`LogConfig::attributes`]). With the `none` driver nothing is written.
    pub fn open(
        dir: &Path,
        id: &str,
        config: &LogConfig,
        attrs: BTreeMap<String, String>,
    ) -> Result<Writer> {
        let pending = [Pending::new(), Pending::new()];
        let (Some(base), Some(format)) = (
            files::base_path(dir, id, config)?,
            Format::of(config.driver),
        ) else {
            return Ok(Writer { out: None, pending });
        };
        let file = files::open_append(&base, false)?;
        let size = files::repair_tail(&file, &base, format)?;
        let (header, attrs_json) = match format {
            Format::Json => (Vec::new(), json::encode_attrs(&attrs)),
            Format::Local => (local::encode_header(&attrs), Vec::new()),
        };
        let data_start = match format {
            Format::Json => 0,
            Format::Local => files::local_header_len(&file, size, &base)?.unwrap_or(0),
        };
        // A compressed copy a crash interrupted; the plain file it came from is still there.
        let _ = files::remove_if_exists(&files::compress_temp(&base));
        Ok(Writer {
            out: Some(Output {
                format,
                base,
                file,
                size,
                has_records: size > data_start,
                header,
                attrs_json,
                max_size: config.max_size,
                max_file: config.max_file.max(1),
                compress: config.compress,
                encoded: Vec::with_capacity(1024),
                last_time: None,
                compressing: None,
            }),
            pending,
        })
    }

    /// The current log file (`None` for the `none` driver).
    pub fn path(&self) -> Option<&Path> {
        self.out.as_ref().map(|o| o.base.as_path())
    }

    /// Adds a chunk of a stream's output, read at `time`.
    pub fn write(&mut self, stream: Stream, bytes: &[u8], time: SystemTime) -> Result<()> {
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        let p = &mut self.pending[stream.index()];
        p.last_time = time;
        let mut rest = bytes;
        while !rest.is_empty() {
            // Content bytes the current line may still take before it is split.
            let room = MAX_MESSAGE - p.buf.len();
            let (message, after, partial) =
                match memchr::memchr(b'\n', &rest[..rest.len().min(room)]) {
                    Some(i) => (&rest[..=i], &rest[i + 1..], false),
                    None if rest.len() >= room => (&rest[..room], &rest[room..], true),
                    None => {
                        if p.buf.capacity() == 0 {
                            p.buf.reserve_exact(MAX_MESSAGE + 1);
                        }
                        p.buf.extend_from_slice(rest);
                        return Ok(());
                    }
                };
            // As docker: pieces of a split line share the first piece's time.
            let time = if partial {
                *p.partial_time.get_or_insert(time)
            } else {
                p.partial_time.take().unwrap_or(time)
            };
            let result = if p.buf.is_empty() {
                out.emit(stream, message, time)
            } else {
                p.buf.extend_from_slice(message);
                let result = out.emit(stream, &p.buf, time);
                p.buf.clear();
                result
            };
            result?;
            rest = after;
        }
        Ok(())
    }

    /// Writes the incomplete last lines as partial messages (no newline), e.g. when the
    /// container exits.
    pub fn flush_partial(&mut self) -> Result<()> {
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        for stream in [Stream::Stdout, Stream::Stderr] {
            let p = &mut self.pending[stream.index()];
            if p.buf.is_empty() {
                continue;
            }
            let time = *p.partial_time.get_or_insert(p.last_time);
            let result = out.emit(stream, &p.buf, time);
            p.buf.clear();
            result?;
        }
        Ok(())
    }

    /// Flushes the current file to disk.
    pub fn sync(&mut self) -> Result<()> {
        match &self.out {
            Some(out) => out
                .file
                .sync_data()
                .map_err(Error::io("sync log file", &out.base)),
            None => Ok(()),
        }
    }
}

impl Drop for Writer {
    /// Incomplete lines are written rather than lost.
    fn drop(&mut self) {
        if let Err(e) = self.flush_partial() {
            tracing::warn!(error = %e, "writing the last partial log lines");
        }
    }
}

impl Output {
    /// Encodes one message and appends it with a single write, rotating first if the file
    /// would grow past `max_size`.
    fn emit(&mut self, stream: Stream, line: &[u8], time: SystemTime) -> Result<()> {
        self.encoded.clear();
        match self.format {
            Format::Json => json::encode(&mut self.encoded, stream, line, time, &self.attrs_json)
                .ok_or(Error::TimeOutOfRange { time })?,
            Format::Local => {
                let nanos = timefmt::to_unix_nanos(time).ok_or(Error::TimeOutOfRange { time })?;
                local::encode_record(
                    &mut self.encoded,
                    stream,
                    !line.ends_with(b"\n"),
                    nanos,
                    line,
                );
            }
        }
        let len = self.encoded.len() as u64;
        if self.compressing.is_some() {
            self.reap_compressor(false);
        }
        if let Some(max) = self.max_size {
            if self.has_records && self.size + len > max {
                // A failed rotation must not lose output: keep appending to the current file.
                if let Err(e) = self.rotate() {
                    tracing::warn!(path = %self.base.display(), error = %e, "log rotation failed");
                }
            }
        }
        if self.size == 0 && !self.header.is_empty() {
            self.append_encoded_or_undo(true)?;
        }
        self.append_encoded_or_undo(false)?;
        self.has_records = true;
        self.last_time = Some(time);
        if self.encoded.capacity() > ENCODED_KEEP {
            self.encoded.clear();
            self.encoded.shrink_to(1024);
        }
        Ok(())
    }

    /// Appends the header or the encoded record; a failed write is cut off again so the
    /// file never keeps half a record.
    fn append_encoded_or_undo(&mut self, header: bool) -> Result<()> {
        let bytes = if header { &self.header } else { &self.encoded };
        if let Err(e) = self.file.write_all(bytes) {
            let _ = self.file.set_len(self.size);
            return Err(Error::io("write log file", &self.base)(e));
        }
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// `.N-1` → `.N` (the oldest dropped), current → `.1`, a new current file, then `.1`
    /// compressed if asked.
    fn rotate(&mut self) -> Result<()> {
        // The previous `.1` must be compressed before it moves to `.2`.
        self.reap_compressor(true);
        let base = self.base.clone();
        let first = files::rotated(&base, 1, false);
        if self.max_file > 1 {
            let top = self.max_file - 1;
            for gz in [false, true] {
                files::remove_if_exists(&files::rotated(&base, top, gz))?;
            }
            for i in (1..top).rev() {
                for gz in [false, true] {
                    files::rename_if_exists(
                        &files::rotated(&base, i, gz),
                        &files::rotated(&base, i + 1, gz),
                    )?;
                }
            }
        }
        // A current file someone removed is simply started anew.
        let renamed = match std::fs::rename(&base, &first) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(Error::io("rename log file", &base)(e)),
        };
        let file = match files::open_append(&base, true) {
            Ok(file) => file,
            Err(e) => {
                if renamed {
                    // Put the old file back so writing goes on where readers look.
                    let _ = std::fs::rename(&first, &base);
                }
                return Err(e);
            }
        };
        self.file = file;
        self.size = 0;
        self.has_records = false;
        if self.max_file <= 1 {
            // One file kept: the old one goes once the new one is there (as docker).
            self.last_time = None;
            return files::remove_if_exists(&first);
        }
        let last_time = self.last_time.take();
        if self.compress && renamed {
            match spawn_compressor(&first, &files::compress_temp(&base), last_time) {
                Ok(pid) => self.compressing = Some(pid),
                // The uncompressed file stays; readers take either.
                Err(e) => {
                    tracing::warn!(path = %base.display(), error = %e, "compressing rotated log file failed")
                }
            }
        }
        Ok(())
    }

    /// Reaps the compressing child; with `block`, waits for it.
    fn reap_compressor(&mut self, block: bool) {
        use rustix::process::{waitpid, WaitOptions};
        let Some(pid) = self.compressing else {
            return;
        };
        let options = if block {
            WaitOptions::empty()
        } else {
            WaitOptions::NOHANG
        };
        let status = loop {
            match waitpid(Some(pid), options) {
                Err(rustix::io::Errno::INTR) => continue,
                other => break other,
            }
        };
        match status {
            // Still running.
            Ok(None) => return,
            Ok(Some((_, status))) if status.exit_status() != Some(0) => {
                tracing::warn!(path = %self.base.display(), ?status, "compressing rotated log file failed")
            }
            // Reaped (or already reaped by a process that waits for any child): done.
            _ => {}
        }
        self.compressing = None;
    }
}

impl Drop for Output {
    /// The compressed file is complete before the writer is gone.
    fn drop(&mut self) {
        self.reap_compressor(true);
    }
}

/// Gzips `plain` in a child process, so the writer neither stalls nor grows by the
/// compressor's memory (the shim must stay small). The files are opened here, so errors
/// opening them are reported; the child closes every other descriptor it inherited, so it
/// keeps no pipe or socket of the parent open.
fn spawn_compressor(
    plain: &Path,
    temp: &Path,
    last_time: Option<SystemTime>,
) -> Result<rustix::process::Pid> {
    use std::os::fd::AsRawFd;
    let source = File::open(plain).map_err(Error::io("open log file", plain))?;
    let target = files::open_append(temp, true)?;
    let gz = files::rotated_gz_of(plain);
    // SAFETY: the child only runs `compress` (file I/O and allocation; glibc's malloc is
    // safe after fork) and then `_exit`s without running destructors or atexit handlers.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => {
            let _ = files::remove_if_exists(temp);
            Err(Error::io("fork log compressor", plain)(
                std::io::Error::last_os_error(),
            ))
        }
        0 => {
            let (x, y) = (source.as_raw_fd() as u32, target.as_raw_fd() as u32);
            let (low, high) = (x.min(y), x.max(y));
            let close = |first: u32, last: u32| {
                if first <= last {
                    // SAFETY: closes descriptors this child inherited and does not use;
                    // `source` and `target` are outside the range.
                    unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
                }
            };
            if low > 0 {
                close(0, low - 1);
            }
            close(low + 1, high - 1);
            close(high + 1, u32::MAX);
            // A panic must not unwind into the parent's code running in this child.
            let compressed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                compress(source, target, plain, temp, &gz, last_time)
            }));
            let code = match compressed {
                Ok(Ok(())) => 0,
                _ => 1,
            };
            // SAFETY: ends the child without unwinding into the parent's state.
            unsafe { libc::_exit(code) }
        }
        pid => {
            drop((source, target));
            rustix::process::Pid::from_raw(pid).ok_or_else(|| {
                Error::io("fork log compressor", plain)(std::io::Error::other(
                    "fork returned an invalid id",
                ))
            })
        }
    }
}

/// Gzips `source` (the file `plain`) into `target` (the file `temp`), renames that to
/// `gz` and removes `plain`. The gzip header's extra field holds `{"lastTime":"..."}` as
/// docker's does, so readers can skip the file for `--since` without inflating it.
fn compress(
    mut source: File,
    target: File,
    plain: &Path,
    temp: &Path,
    gz: &Path,
    last_time: Option<SystemTime>,
) -> Result<()> {
    let result = (|| -> Result<()> {
        let mut builder = GzBuilder::new();
        if let Some(time) = last_time {
            let mut extra = b"{\"lastTime\":\"".to_vec();
            if timefmt::push_rfc3339(&mut extra, time).is_some() {
                extra.extend_from_slice(b"\"}");
                builder = builder.extra(extra);
            }
        }
        let mut encoder = builder.write(target, Compression::default());
        std::io::copy(&mut source, &mut encoder).map_err(Error::io("compress log file", plain))?;
        let target = encoder
            .finish()
            .map_err(Error::io("compress log file", plain))?;
        // The plain file is removed next, so the copy must be on disk first.
        target
            .sync_all()
            .map_err(Error::io("sync log file", temp))?;
        std::fs::rename(temp, gz).map_err(Error::io("rename log file", temp))?;
        files::remove_if_exists(plain)
    })();
    if result.is_err() {
        let _ = files::remove_if_exists(temp);
    }
    result
}
