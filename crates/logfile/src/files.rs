//! File names of a container's logs (current, rotated, compressed), opening, repairing a
//! torn tail, and the scans both writer and reader need.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::config::{Driver, LogConfig};
use crate::error::{Error, Result};
use crate::local;

/// The on-disk format of a driver that writes files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Local,
}

impl Format {
    pub(crate) fn of(driver: Driver) -> Option<Format> {
        match driver {
            Driver::JsonFile => Some(Format::Json),
            Driver::Local => Some(Format::Local),
            Driver::None => None,
        }
    }
}

/// The current log file of `id`; refuses ids that would leave `dir`.
pub(crate) fn base_path(dir: &Path, id: &str, config: &LogConfig) -> Result<Option<PathBuf>> {
    if id.is_empty() || id == "." || id == ".." || id.contains(['/', '\0']) {
        return Err(Error::InvalidId { id: id.to_string() });
    }
    Ok(config.log_path(dir, id))
}

/// `<base>.<index>` or `<base>.<index>.gz`.
pub(crate) fn rotated(base: &Path, index: u32, gz: bool) -> PathBuf {
    let mut name = base.as_os_str().to_os_string();
    name.push(format!(".{index}"));
    if gz {
        name.push(".gz");
    }
    PathBuf::from(name)
}

/// The temporary name a compressed file is written under before it is renamed into place.
pub(crate) fn compress_temp(base: &Path) -> PathBuf {
    let mut name = rotated(base, 1, true).into_os_string();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Opens the current file for appending, creating it (mode 0640, as docker).
pub(crate) fn open_append(path: &Path, truncate: bool) -> Result<File> {
    // Readable too: opening repairs a torn tail, which needs reading it.
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(Error::io("open log file", path))?;
    // O_APPEND and O_TRUNC do not go together in std's OpenOptions.
    if truncate {
        file.set_len(0)
            .map_err(Error::io("truncate log file", path))?;
    }
    Ok(file)
}

/// Removes a file; a missing one is fine.
pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io("remove log file", path)(e))
        }
        _ => Ok(()),
    }
}

/// Renames a file; a missing source is fine.
pub(crate) fn rename_if_exists(from: &Path, to: &Path) -> Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io("rename log file", from)(e))
        }
        _ => Ok(()),
    }
}

const BLOCK: usize = 64 * 1024;

/// Visits the positions of `byte` in `file[..end]` from the last to the first, reading
/// backwards in blocks; stops when `visit` returns false.
pub(crate) fn scan_back(
    file: &File,
    end: u64,
    byte: u8,
    mut visit: impl FnMut(u64) -> bool,
) -> std::io::Result<()> {
    let mut block = vec![0u8; BLOCK];
    let mut pos = end;
    while pos > 0 {
        let len = (pos.min(BLOCK as u64)) as usize;
        pos -= len as u64;
        file.read_exact_at(&mut block[..len], pos)?;
        for i in memchr::memrchr_iter(byte, &block[..len]) {
            if !visit(pos + i as u64) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Where the complete records of a `local` file end, and whether what follows is a torn
/// record (cut short by a crash) rather than damage.
pub(crate) struct ValidEnd {
    pub end: u64,
    pub torn: bool,
    /// Records before `end` when the file was scanned from the start.
    pub records: Option<u64>,
}

/// Finds the end of the last complete record of a `local` file: a check of the last record
/// through its trailing length, and a scan from the start only when that fails.
pub(crate) fn local_valid_end(
    file: &File,
    header_len: u64,
    size: u64,
) -> std::io::Result<ValidEnd> {
    if size == header_len {
        return Ok(ValidEnd {
            end: size,
            torn: false,
            records: None,
        });
    }
    if size >= header_len + local::RECORD_OVERHEAD as u64 {
        let mut trailer = [0u8; 4];
        file.read_exact_at(&mut trailer, size - 4)?;
        if let Ok(len) = local::read_len(&trailer) {
            if let Some(start) = size
                .checked_sub(len as u64 + 8)
                .filter(|s| *s >= header_len)
            {
                let mut lead = [0u8; 6];
                file.read_exact_at(&mut lead, start)?;
                if local::read_len(&lead) == Ok(len) && local::check_body_start(&lead[4..]).is_ok()
                {
                    return Ok(ValidEnd {
                        end: size,
                        torn: false,
                        records: None,
                    });
                }
            }
        }
    }
    local_scan(file, header_len, size)
}

/// Walks the records of a `local` file from the header up to `size`, stopping at the first
/// one that is incomplete or damaged.
pub(crate) fn local_scan(file: &File, header_len: u64, size: u64) -> std::io::Result<ValidEnd> {
    let mut reader = BufReader::with_capacity(BLOCK, file);
    reader.seek(SeekFrom::Start(header_len))?;
    let mut pos = header_len;
    let mut records = 0;
    let mut record = Vec::new();
    loop {
        if pos == size {
            return Ok(ValidEnd {
                end: pos,
                torn: false,
                records: Some(records),
            });
        }
        let mut len_bytes = [0u8; 4];
        if size - pos < 4 {
            return Ok(ValidEnd {
                end: pos,
                torn: true,
                records: Some(records),
            });
        }
        reader.read_exact(&mut len_bytes)?;
        let Ok(len) = local::read_len(&len_bytes) else {
            return Ok(ValidEnd {
                end: pos,
                torn: false,
                records: Some(records),
            });
        };
        if pos + len as u64 + 8 > size {
            return Ok(ValidEnd {
                end: pos,
                torn: true,
                records: Some(records),
            });
        }
        record.clear();
        record.extend_from_slice(&len_bytes);
        record.resize(len + 8, 0);
        reader.read_exact(&mut record[4..])?;
        if local::decode_record(&record, &[]).is_err() {
            return Ok(ValidEnd {
                end: pos,
                torn: false,
                records: Some(records),
            });
        }
        pos += len as u64 + 8;
        records += 1;
    }
}

/// Reads the header length of a `local` file, or `None` if the header is not all there yet.
pub(crate) fn local_header_len(file: &File, size: u64, path: &Path) -> Result<Option<u64>> {
    if size < local::HEADER_FIXED as u64 {
        return Ok(None);
    }
    let mut fixed = [0u8; local::HEADER_FIXED];
    file.read_exact_at(&mut fixed, 0)
        .map_err(Error::io("read log file", path))?;
    let len = local::header_len(&fixed).map_err(|reason| Error::Corrupt {
        path: path.to_path_buf(),
        line: 0,
        reason,
    })? as u64;
    Ok(if size < len { None } else { Some(len) })
}

/// Cuts off a record the writer did not finish (it was killed mid-write), so appends
/// continue on a record boundary. Returns the size afterwards. Damage other than a torn
/// tail is left for readers to report.
pub(crate) fn repair_tail(file: &File, path: &Path, format: Format) -> Result<u64> {
    let size = file
        .metadata()
        .map_err(Error::io("stat log file", path))?
        .len();
    let end = match format {
        Format::Json => {
            let mut end = 0;
            scan_back(file, size, b'\n', |p| {
                end = p + 1;
                false
            })
            .map_err(Error::io("read log file", path))?;
            end
        }
        Format::Local => match local_header_len(file, size, path)? {
            None => 0,
            Some(header_len) => {
                let valid = local_valid_end(file, header_len, size)
                    .map_err(Error::io("read log file", path))?;
                if valid.torn {
                    valid.end
                } else {
                    size
                }
            }
        },
    };
    if end < size {
        tracing::warn!(path = %path.display(), bytes = size - end, "cutting off a torn last log record");
        file.set_len(end)
            .map_err(Error::io("truncate log file", path))?;
    }
    Ok(end)
}

/// `<plain>.gz`.
pub(crate) fn rotated_gz_of(plain: &Path) -> PathBuf {
    let mut name = plain.as_os_str().to_os_string();
    name.push(".gz");
    PathBuf::from(name)
}
