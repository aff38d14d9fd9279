//! Reading logs back for `docker logs`: rotated files oldest first, `--tail` from the end
//! without reading the history, `--since`/`--until`, and `--follow` across rotations.
//!
//! Files are told apart by inode while plain and by first record and length once
//! compressed, so a rotation that happens while the files are opened (or while following)
//! neither loses nor repeats a file. Renames never disturb an open file, so each file is read through the
//! descriptor it was opened with.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use flate2::read::MultiGzDecoder;

use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::files::{self, Format};
use crate::watch::Watcher;
use crate::{json, local, timefmt, Entry};

/// What to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Only messages at or after this time.
    pub since: Option<SystemTime>,
    /// Only messages at or before this time; reading ends at the first later one.
    pub until: Option<SystemTime>,
    /// Only the last N messages (a split line counts once per piece, as in docker).
    pub tail: Option<usize>,
    /// After the end, wait for more until `stop` says the writer is done.
    pub follow: bool,
}

const BLOCK: usize = 64 * 1024;
/// Longest first record looked at to tell files apart.
const MAX_IDENTITY: usize = 1 << 20;

/// Opens the logs of container `id` for reading. `stop` is asked, when following and
/// nothing is left to read, whether the writer has finished (the container exited and
/// the shim flushed its output); everything written before `stop` first returns true is
/// still read. The `none` driver gives [`Error::ReadNotSupported`].
pub fn read<'a>(
    dir: &Path,
    id: &str,
    config: &LogConfig,
    opts: &ReadOptions,
    stop: &'a dyn Fn() -> bool,
) -> Result<Reader<'a>> {
    let (Some(base), Some(format)) = (
        files::base_path(dir, id, config)?,
        Format::of(config.driver),
    ) else {
        return Err(Error::ReadNotSupported);
    };
    let mut reader = Reader {
        base,
        format,
        max_file: config.max_file.max(1),
        opts: opts.clone(),
        stop,
        queue: VecDeque::new(),
        newest: None,
        watcher: None,
        finished: false,
        done: false,
    };
    let mut set = open_set(&reader.base, format, reader.max_file)?;
    reader.newest = set.first_mut().map(Known::of).transpose()?;
    let mut selected = Vec::with_capacity(set.len());
    match opts.tail {
        None => selected = set,
        Some(n) => {
            let mut need = n as u64;
            for mut cursor in set {
                // The current file is kept even for --tail 0: following starts at its end.
                if need == 0 && !cursor.is_current {
                    break;
                }
                need -= cursor.keep_last(need)?;
                selected.push(cursor);
            }
        }
    }
    for mut cursor in selected.into_iter().rev() {
        // A compressed file whose last message is older than --since is skipped unread.
        if let (Some(since), Some(last)) = (opts.since, cursor.gz_last_time) {
            if last < since {
                continue;
            }
        }
        cursor.live = opts.follow && cursor.is_current;
        reader.queue.push_back(cursor);
    }
    Ok(reader)
}

/// The messages of a container's logs, oldest first. After an error it ends.
pub struct Reader<'a> {
    base: PathBuf,
    format: Format,
    max_file: u32,
    opts: ReadOptions,
    stop: &'a dyn Fn() -> bool,
    /// Files still to read, oldest first; with `follow` the last is the live current file.
    queue: VecDeque<Cursor>,
    /// The newest file queued so far; files newer than it are found after a rotation.
    newest: Option<Known>,
    watcher: Option<Watcher>,
    /// The current file disappeared after the writer finished: nothing more will come.
    finished: bool,
    done: bool,
}

impl Iterator for Reader<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        if self.done {
            return None;
        }
        let next = self.next_entry();
        if !matches!(next, Ok(Some(_))) {
            self.done = true;
        }
        next.transpose()
    }
}

/// What following does next at the end of the live file.
enum Follow {
    Continue,
    Stop,
}

impl Reader<'_> {
    fn next_entry(&mut self) -> Result<Option<Entry>> {
        loop {
            let Some(cursor) = self.queue.front_mut() else {
                if !self.opts.follow || self.finished {
                    return Ok(None);
                }
                // Nothing to read yet (no current file, or between rotations).
                let stopping = (self.stop)();
                self.enqueue_newer()?;
                if !self.queue.is_empty() {
                    continue;
                }
                if stopping || self.until_passed() {
                    return Ok(None);
                }
                self.wait();
                continue;
            };
            match cursor.next_record()? {
                Some(entry) => {
                    if self.opts.since.is_some_and(|since| entry.time < since) {
                        continue;
                    }
                    if self.opts.until.is_some_and(|until| entry.time > until) {
                        return Ok(None);
                    }
                    return Ok(Some(entry));
                }
                None if cursor.live => match self.at_live_end()? {
                    Follow::Continue => continue,
                    Follow::Stop => return Ok(None),
                },
                // End of a finished file; an unterminated last record there is torn.
                None => {
                    self.queue.pop_front();
                }
            }
        }
    }

    /// The live file is read to its end: more data, a rotation, or the end of following.
    fn at_live_end(&mut self) -> Result<Follow> {
        // Asked before looking for data, so that nothing written before the answer is lost.
        let stopping = (self.stop)();
        let Some(cursor) = self.queue.front_mut() else {
            return Ok(Follow::Continue);
        };
        let size = cursor
            .file
            .metadata()
            .map_err(Error::io("stat log file", &cursor.path))?
            .len();
        if size < cursor.read_pos {
            // The writer restarted and cut off a torn record.
            cursor.reposition(size)?;
            return Ok(Follow::Continue);
        }
        if size > cursor.read_pos {
            return Ok(Follow::Continue);
        }
        match std::fs::metadata(&self.base) {
            Ok(meta) if Some((meta.dev(), meta.ino())) == cursor.dev_ino => {
                if stopping || self.until_passed() {
                    return Ok(Follow::Stop);
                }
                self.wait();
            }
            Ok(_) => {
                // Rotated: this file is complete; read its rest, then the newer files.
                cursor.live = false;
                self.enqueue_newer()?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if stopping {
                    cursor.live = false;
                    self.finished = true;
                } else {
                    // Between the rename and the new file of a rotation.
                    self.wait();
                }
            }
            Err(e) => return Err(Error::io("stat log file", &self.base)(e)),
        }
        Ok(Follow::Continue)
    }

    /// Queues the files newer than the newest one queued so far.
    fn enqueue_newer(&mut self) -> Result<()> {
        let mut set = open_set(&self.base, self.format, self.max_file)?;
        if let Some(known) = &mut self.newest {
            let key = known.refresh(self.format)?;
            let mut position = None;
            for (i, cursor) in set.iter_mut().enumerate() {
                if cursor.matches(key)? {
                    position = Some(i);
                    break;
                }
            }
            // Not found: it was rotated away entirely, so every file is newer.
            if let Some(p) = position {
                set.truncate(p);
            }
        }
        if let Some(newest) = set.first_mut() {
            self.newest = Some(Known::of(newest)?);
        }
        for mut cursor in set.into_iter().rev() {
            cursor.live = self.opts.follow && cursor.is_current;
            self.queue.push_back(cursor);
        }
        Ok(())
    }

    fn until_passed(&self) -> bool {
        self.opts
            .until
            .is_some_and(|until| SystemTime::now() > until)
    }

    fn wait(&mut self) {
        let dir = self.base.parent().unwrap_or(Path::new("."));
        self.watcher.get_or_insert_with(|| Watcher::new(dir)).wait();
    }
}

/// How often [`open_set`] starts over because a rotation happened while it ran.
const OPEN_ATTEMPTS: u32 = 100;

/// Opens the current file and the rotated ones, newest first, each file once.
///
/// Rotated names are tried from `.1` upwards, through gaps, and a file met twice (renamed,
/// or compressed) is kept once. A rotation while this runs can put a file newer than the
/// current one opened at `.1`, so the scan starts over until the current file is the same
/// before and after it.
fn open_set(base: &Path, format: Format, max_file: u32) -> Result<Vec<Cursor>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut set: Vec<Cursor> = Vec::new();
        let current = Cursor::open(base, false, format)?;
        let current_id = current.as_ref().and_then(|c| c.dev_ino);
        if let Some(mut cursor) = current {
            cursor.is_current = true;
            set.push(cursor);
        }
        let top = max_file.saturating_sub(1);
        let mut index = 1;
        loop {
            let cursor = match Cursor::open(&files::rotated(base, index, false), false, format)? {
                Some(cursor) => Some(cursor),
                None => Cursor::open(&files::rotated(base, index, true), true, format)?,
            };
            match cursor {
                Some(cursor) => push_unique(&mut set, cursor)?,
                None if index >= top => break,
                None => {}
            }
            index += 1;
        }
        let current_now = match std::fs::metadata(base) {
            Ok(meta) => Some((meta.dev(), meta.ino())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("stat log file", base)(e)),
        };
        if current_now == current_id || attempt >= OPEN_ATTEMPTS {
            return Ok(set);
        }
    }
}

fn push_unique(set: &mut Vec<Cursor>, mut cursor: Cursor) -> Result<()> {
    let key = cursor.key()?;
    for kept in set.iter_mut() {
        if kept.matches(&key)? {
            return Ok(());
        }
    }
    set.push(cursor);
    Ok(())
}

/// What tells two open log files apart.
///
/// Two plain files are the same file when they are the same inode. A compressed file is a
/// new inode, so it matches by content: its first record and its (uncompressed) length.
/// Only a file made of nothing but pieces of one line that repeat a single character could
/// look like another.
struct FileKey {
    dev_ino: Option<(u64, u64)>,
    first: Option<Vec<u8>>,
    /// Uncompressed length modulo 2^32, as gzip records it.
    length: u32,
}

/// The file queued last, to find the files newer than it after a rotation.
struct Known {
    /// A descriptor of the file if it is plain: keeps its inode number from being reused.
    file: Option<File>,
    key: FileKey,
    path: PathBuf,
}

impl Known {
    fn of(cursor: &mut Cursor) -> Result<Known> {
        let file = match cursor.dev_ino {
            Some(_) => Some(
                cursor
                    .file
                    .try_clone()
                    .map_err(Error::io("open log file", &cursor.path))?,
            ),
            None => None,
        };
        Ok(Known {
            file,
            key: cursor.key()?,
            path: cursor.path.clone(),
        })
    }

    /// The key as of now: a plain file may have grown since it was queued.
    fn refresh(&mut self, format: Format) -> Result<&FileKey> {
        if let Some(file) = &self.file {
            let io = || Error::io("read log file", &self.path);
            if self.key.first.is_none() {
                self.key.first = plain_first_record(file, format).map_err(io())?;
            }
            self.key.length = file.metadata().map_err(io())?.len() as u32;
        }
        Ok(&self.key)
    }
}

/// The first complete record of a plain file, read without moving its offset.
fn plain_first_record(file: &File, format: Format) -> std::io::Result<Option<Vec<u8>>> {
    let mut start = 0u64;
    if format == Format::Local {
        let mut fixed = [0u8; local::HEADER_FIXED];
        if read_full_at(file, &mut fixed, 0)? < fixed.len() {
            return Ok(None);
        }
        match local::header_len(&fixed) {
            Ok(len) => start = len as u64,
            Err(_) => return Ok(None),
        }
        let mut len_bytes = [0u8; 4];
        if read_full_at(file, &mut len_bytes, start)? < 4 {
            return Ok(None);
        }
        let Ok(len) = local::read_len(&len_bytes) else {
            return Ok(None);
        };
        let mut record = vec![0u8; len + 8];
        let n = read_full_at(file, &mut record, start)?;
        return Ok((n == record.len()).then_some(record));
    }
    let mut line = Vec::new();
    let mut block = vec![0u8; 4096];
    while line.len() < MAX_IDENTITY {
        let n = file.read_at(&mut block, start)?;
        if n == 0 {
            return Ok(None);
        }
        if let Some(i) = memchr::memchr(b'\n', &block[..n]) {
            line.extend_from_slice(&block[..=i]);
            return Ok(Some(line));
        }
        line.extend_from_slice(&block[..n]);
        start += n as u64;
    }
    Ok(Some(line))
}

/// Reads until `buf` is full or the end of the file; returns how much was read.
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64)? {
            0 => break,
            n => done += n,
        }
    }
    Ok(done)
}

enum Source {
    Plain,
    /// Inflating; `None` until reading starts (an idle cursor keeps no inflate state).
    Gz(Option<Box<MultiGzDecoder<File>>>),
}

/// A position in one log file.
struct Cursor {
    /// The name the file was opened under, for errors.
    path: PathBuf,
    format: Format,
    file: File,
    src: Source,
    /// Plain files only (a compressed copy is a different inode).
    dev_ino: Option<(u64, u64)>,
    /// The first record, once known: the file's identity across renames and compression.
    first: Option<Vec<u8>>,
    is_current: bool,
    /// Followed: its end is not the end of the logs.
    live: bool,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    start: usize,
    /// Bytes read from the source: the file offset for a plain file.
    read_pos: u64,
    /// `local`: the header's attributes once read.
    header: Option<Vec<(String, String)>>,
    /// Records consumed since `base_offset`.
    records: u64,
    /// Where reading started, for line numbers in errors.
    base_offset: u64,
    /// `lastTime` from a compressed file's gzip header.
    gz_last_time: Option<SystemTime>,
    /// The uncompressed length a gzip file records (modulo 2^32).
    gz_length: u32,
}

impl Cursor {
    /// `None` when the file does not exist.
    fn open(path: &Path, gz: bool, format: Format) -> Result<Option<Cursor>> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open log file", path)(e)),
        };
        let (src, dev_ino) = if gz {
            (Source::Gz(None), None)
        } else {
            let meta = file.metadata().map_err(Error::io("stat log file", path))?;
            (Source::Plain, Some((meta.dev(), meta.ino())))
        };
        let mut cursor = Cursor {
            path: path.to_path_buf(),
            format,
            file,
            src,
            dev_ino,
            first: None,
            is_current: false,
            live: false,
            buf: Vec::new(),
            start: 0,
            read_pos: 0,
            header: None,
            records: 0,
            base_offset: 0,
            gz_last_time: None,
            gz_length: 0,
        };
        if gz {
            let size = cursor
                .file
                .metadata()
                .map_err(Error::io("stat log file", path))?
                .len();
            let mut trailer = [0u8; 4];
            if size >= 4 && read_full_at(&cursor.file, &mut trailer, size - 4).is_ok() {
                cursor.gz_length = u32::from_le_bytes(trailer);
            }
            // Inflating the first record gives the identity and the gzip header.
            cursor.identity()?;
            if let Source::Gz(Some(decoder)) = &cursor.src {
                cursor.gz_last_time = decoder
                    .header()
                    .and_then(|h| h.extra())
                    .and_then(parse_last_time);
            }
            // Inflated again from the start when (if) it is read.
            cursor.rewind_gz();
        }
        Ok(Some(cursor))
    }

    /// The file's first record (see [`Cursor::first`]).
    fn identity(&mut self) -> Result<Option<&[u8]>> {
        if self.first.is_none() {
            self.first = match self.src {
                Source::Plain => plain_first_record(&self.file, self.format)
                    .map_err(Error::io("read log file", &self.path))?,
                // Nothing consumed yet: peek at the first record in the buffer.
                Source::Gz(_) if self.records == 0 && self.base_offset == 0 => {
                    self.peek_first_record()?
                }
                Source::Gz(_) => None,
            };
        }
        Ok(self.first.as_deref())
    }

    fn key(&mut self) -> Result<FileKey> {
        Ok(FileKey {
            dev_ino: self.dev_ino,
            first: self.identity()?.map(<[u8]>::to_vec),
            length: self.length()?,
        })
    }

    /// Whether this is the file `key` describes (see [`FileKey`]).
    fn matches(&mut self, key: &FileKey) -> Result<bool> {
        if let (Some(mine), Some(theirs)) = (self.dev_ino, key.dev_ino) {
            return Ok(mine == theirs);
        }
        let Some(first) = &key.first else {
            return Ok(false);
        };
        if self.identity()? != Some(first.as_slice()) {
            return Ok(false);
        }
        Ok(self.length()? == key.length)
    }

    /// The uncompressed length modulo 2^32.
    fn length(&self) -> Result<u32> {
        Ok(match self.src {
            Source::Plain => self
                .file
                .metadata()
                .map_err(Error::io("stat log file", &self.path))?
                .len() as u32,
            Source::Gz(_) => self.gz_length,
        })
    }

    fn peek_first_record(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            let mut at = self.start;
            if self.format == Format::Local && self.header.is_none() {
                match self.header_len_in_buf()? {
                    Some(len) => at += len,
                    None => {
                        if !self.fill()? {
                            return Ok(None);
                        }
                        continue;
                    }
                }
            }
            if let Some(len) = self.complete_len(at)? {
                return Ok(Some(self.buf[at..at + len].to_vec()));
            }
            if !self.fill()? || self.buf.len() - self.start > MAX_IDENTITY {
                return Ok(None);
            }
        }
    }

    /// Reads more of the source into the buffer; false at the end.
    fn fill(&mut self) -> Result<bool> {
        if self.start > 0 && (self.start == self.buf.len() || self.start >= BLOCK) {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if let Source::Gz(slot @ None) = &mut self.src {
            (&self.file)
                .seek(SeekFrom::Start(0))
                .map_err(Error::io("seek log file", &self.path))?;
            let dup = self
                .file
                .try_clone()
                .map_err(Error::io("open log file", &self.path))?;
            *slot = Some(Box::new(MultiGzDecoder::new(dup)));
        }
        let old = self.buf.len();
        self.buf.resize(old + BLOCK, 0);
        let read = match &mut self.src {
            Source::Plain => (&self.file).read(&mut self.buf[old..]),
            // Created just above.
            Source::Gz(None) => Ok(0),
            Source::Gz(Some(decoder)) => decoder.read(&mut self.buf[old..]),
        };
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                self.buf.truncate(old);
                let op = if matches!(self.src, Source::Gz(_)) {
                    "decompress log file"
                } else {
                    "read log file"
                };
                return Err(Error::io(op, &self.path)(e));
            }
        };
        self.buf.truncate(old + n);
        self.read_pos += n as u64;
        Ok(n > 0)
    }

    /// The length of the `local` header at the start of the buffer, once all of it is there.
    fn header_len_in_buf(&self) -> Result<Option<usize>> {
        let avail = &self.buf[self.start..];
        if avail.len() < local::HEADER_FIXED {
            return Ok(None);
        }
        let len = local::header_len(avail).map_err(|reason| self.corrupt_at(0, reason))?;
        Ok((avail.len() >= len).then_some(len))
    }

    /// The length of the complete record at `at` in the buffer, if it is all there.
    fn complete_len(&self, at: usize) -> Result<Option<usize>> {
        let avail = &self.buf[at..];
        match self.format {
            Format::Json => Ok(memchr::memchr(b'\n', avail).map(|i| i + 1)),
            Format::Local => {
                if avail.len() < 4 {
                    return Ok(None);
                }
                let len = local::read_len(avail).map_err(|reason| self.corrupt(reason))?;
                Ok((avail.len() >= len + 8).then_some(len + 8))
            }
        }
    }

    /// The next complete record; `None` at the end of what is there (an unterminated last
    /// record is left alone: torn, or still being written).
    fn next_record(&mut self) -> Result<Option<Entry>> {
        loop {
            if self.format == Format::Local && self.header.is_none() {
                match self.header_len_in_buf()? {
                    Some(len) => {
                        let header = &self.buf[self.start..self.start + len];
                        let attrs = local::decode_header(header)
                            .map_err(|reason| self.corrupt_at(0, reason))?;
                        self.header = Some(attrs);
                        self.start += len;
                        continue;
                    }
                    None => {
                        if !self.fill()? {
                            return Ok(None);
                        }
                        continue;
                    }
                }
            }
            if let Some(len) = self.complete_len(self.start)? {
                let record = &self.buf[self.start..self.start + len];
                let decoded = match self.format {
                    Format::Json => json::decode(&record[..len - 1]),
                    Format::Local => {
                        local::decode_record(record, self.header.as_deref().unwrap_or_default())
                    }
                };
                let entry = decoded.map_err(|reason| self.corrupt(reason))?;
                self.start += len;
                self.records += 1;
                return Ok(Some(entry));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Consumes one record without decoding it; false at the end.
    fn skip_record(&mut self) -> Result<bool> {
        loop {
            if self.format == Format::Local && self.header.is_none() {
                // Decoding the header is cheap; next_record handles it.
                match self.header_len_in_buf()? {
                    Some(len) => {
                        let attrs = local::decode_header(&self.buf[self.start..self.start + len])
                            .map_err(|reason| self.corrupt_at(0, reason))?;
                        self.header = Some(attrs);
                        self.start += len;
                    }
                    None if self.fill()? => {}
                    None => return Ok(false),
                }
                continue;
            }
            if let Some(len) = self.complete_len(self.start)? {
                self.start += len;
                self.records += 1;
                return Ok(true);
            }
            if !self.fill()? {
                return Ok(false);
            }
        }
    }

    /// Keeps only the last `need` records for reading; returns how many that is.
    fn keep_last(&mut self, need: u64) -> Result<u64> {
        match self.src {
            Source::Plain => {
                let size = self
                    .file
                    .metadata()
                    .map_err(Error::io("stat log file", &self.path))?
                    .len();
                let (offset, count) = self.tail_start(size, need)?;
                self.seek_plain(offset)?;
                Ok(count)
            }
            Source::Gz(_) => {
                // No seeking back in a gzip stream: count, then inflate again and skip.
                let mut total = 0u64;
                while self.skip_record()? {
                    total += 1;
                }
                self.rewind_gz();
                let skip = total.saturating_sub(need);
                for _ in 0..skip {
                    self.skip_record()?;
                }
                Ok(total.min(need))
            }
        }
    }

    /// Where the last `need` complete records of a plain file start, and how many there are.
    fn tail_start(&self, size: u64, need: u64) -> Result<(u64, u64)> {
        let io = Error::io("read log file", &self.path);
        match self.format {
            Format::Json => {
                // The record ends: the newline after each line. The first one found is the
                // end of the last complete line; each further one starts a line.
                let mut seen_end = false;
                let mut count = 0u64;
                let mut start = None;
                files::scan_back(&self.file, size, b'\n', |p| {
                    if !seen_end {
                        seen_end = true;
                        if need == 0 {
                            start = Some(p + 1);
                            return false;
                        }
                        return true;
                    }
                    count += 1;
                    if count == need {
                        start = Some(p + 1);
                        return false;
                    }
                    true
                })
                .map_err(io)?;
                Ok(match start {
                    Some(offset) => (offset, need),
                    None if seen_end => (0, count + 1),
                    None => (0, 0),
                })
            }
            Format::Local => {
                let Some(header_len) = files::local_header_len(&self.file, size, &self.path)?
                else {
                    return Ok((0, 0));
                };
                let valid = files::local_valid_end(&self.file, header_len, size)
                    .map_err(Error::io("read log file", &self.path))?;
                let mut end = valid.end;
                let mut count = 0;
                while count < need && end > header_len {
                    match self.record_before(end, header_len) {
                        Ok(Some(start)) => end = start,
                        // Damage on the way back: read from the start and report it there.
                        Ok(None) => return Ok((0, need)),
                        Err(e) => return Err(Error::io("read log file", &self.path)(e)),
                    }
                    count += 1;
                }
                Ok((if end == header_len { 0 } else { end }, count))
            }
        }
    }

    /// The start of the `local` record that ends at `end`, if its lengths agree.
    fn record_before(&self, end: u64, header_len: u64) -> std::io::Result<Option<u64>> {
        if end < header_len + local::RECORD_OVERHEAD as u64 {
            return Ok(None);
        }
        let mut trailer = [0u8; 4];
        self.file.read_exact_at(&mut trailer, end - 4)?;
        let Ok(len) = local::read_len(&trailer) else {
            return Ok(None);
        };
        let Some(start) = end.checked_sub(len as u64 + 8).filter(|s| *s >= header_len) else {
            return Ok(None);
        };
        let mut lead = [0u8; 4];
        self.file.read_exact_at(&mut lead, start)?;
        Ok((local::read_len(&lead) == Ok(len)).then_some(start))
    }

    /// Starts reading a plain file at `offset` (a record boundary).
    fn seek_plain(&mut self, offset: u64) -> Result<()> {
        if self.format == Format::Local && offset > 0 && self.header.is_none() {
            let size = self
                .file
                .metadata()
                .map_err(Error::io("stat log file", &self.path))?
                .len();
            if let Some(len) = files::local_header_len(&self.file, size, &self.path)? {
                let mut header = vec![0u8; len as usize];
                self.file
                    .read_exact_at(&mut header, 0)
                    .map_err(Error::io("read log file", &self.path))?;
                self.header = Some(
                    local::decode_header(&header).map_err(|reason| self.corrupt_at(0, reason))?,
                );
            }
        }
        self.seek(offset)?;
        self.base_offset = offset;
        self.records = 0;
        Ok(())
    }

    /// After the file shrank to `size`: reads on from the last consumed record, or from
    /// `size` if that was cut off too.
    fn reposition(&mut self, size: u64) -> Result<()> {
        let consumed = self.read_pos - (self.buf.len() - self.start) as u64;
        self.seek(consumed.min(size))
    }

    /// Moves the read position of a plain file, dropping what was buffered.
    fn seek(&mut self, offset: u64) -> Result<()> {
        if offset == 0 {
            // A `local` header is read again (the file may have been cut back to nothing).
            self.header = None;
        }
        (&self.file)
            .seek(SeekFrom::Start(offset))
            .map_err(Error::io("seek log file", &self.path))?;
        self.buf.clear();
        self.start = 0;
        self.read_pos = offset;
        Ok(())
    }

    /// Back to the start of a compressed file, dropping the inflate state and buffer.
    fn rewind_gz(&mut self) {
        self.src = Source::Gz(None);
        self.buf = Vec::new();
        self.start = 0;
        self.read_pos = 0;
        self.records = 0;
        self.header = None;
    }

    /// A corrupt-record error for the record being read now.
    fn corrupt(&self, reason: String) -> Error {
        let line = self.records_before_base().unwrap_or(0) + self.records + 1;
        self.corrupt_at(line, reason)
    }

    fn corrupt_at(&self, line: u64, reason: String) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            line,
            reason,
        }
    }

    /// Records before the point reading started at (only counted when an error needs it).
    fn records_before_base(&self) -> std::io::Result<u64> {
        if self.base_offset == 0 {
            return Ok(0);
        }
        match self.format {
            Format::Json => {
                let mut count = 0;
                files::scan_back(&self.file, self.base_offset, b'\n', |_| {
                    count += 1;
                    true
                })?;
                Ok(count)
            }
            Format::Local => {
                let size = self.file.metadata()?.len();
                let header_len = files::local_header_len(&self.file, size, &self.path)
                    .ok()
                    .flatten()
                    .unwrap_or(0);
                let scan = files::local_scan(&self.file, header_len, self.base_offset)?;
                Ok(scan.records.unwrap_or(0))
            }
        }
    }
}

/// `lastTime` from docker's gzip extra field `{"lastTime":"..."}`.
fn parse_last_time(extra: &[u8]) -> Option<SystemTime> {
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(rename = "lastTime")]
        last_time: String,
    }
    let meta: Meta = serde_json::from_slice(extra).ok()?;
    timefmt::parse_rfc3339(&meta.last_time)
}
