//! Small file helpers for cgroupfs: one open, one write, errors that name file and value.

use std::fs::File;
use std::io::{self, Read, Write as _};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A planned write of `value` into the cgroup file `file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Write {
    pub file: String,
    pub value: String,
    /// A missing file is not an error (optional kernel features).
    pub optional: bool,
    /// EINVAL is retried once after all other writes (inter-dependent knobs).
    pub defer_einval: bool,
}

impl Write {
    pub fn new(file: impl Into<String>, value: impl ToString) -> Self {
        Write {
            file: file.into(),
            value: value.to_string(),
            optional: false,
            defer_einval: false,
        }
    }

    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    pub fn defer_einval(mut self, yes: bool) -> Self {
        self.defer_einval = yes;
        self
    }
}

/// Performs planned writes in order, honouring `optional` and `defer_einval`.
pub(crate) fn apply_writes(dir: &Path, writes: &[Write]) -> Result<()> {
    let mut deferred: Vec<&Write> = Vec::new();
    for w in writes {
        match write(dir, &w.file, &w.value) {
            Ok(()) => {}
            Err(e) if w.optional && e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) if w.defer_einval && e.raw_os_error() == Some(libc::EINVAL) => deferred.push(w),
            Err(e) => return Err(e),
        }
    }
    for w in deferred {
        write(dir, &w.file, &w.value)?;
    }
    Ok(())
}

/// Writes `value` to `dir/file` with a single write(2).
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    write_path(&dir.join(file), value)
}

pub(crate) fn write_path(path: &Path, value: &str) -> Result<()> {
    let err = |err: io::Error| Error::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        err,
    };
    // No O_CREAT/O_TRUNC: cgroup files exist or the controller is missing.
    let mut f = File::options().write(true).open(path).map_err(err)?;
    f.write_all(value.as_bytes()).map_err(err)
}

/// Reads `dir/file` to a string.
pub(crate) fn read(dir: &Path, file: &str) -> Result<String> {
    read_path(&dir.join(file))
}

pub(crate) fn read_path(path: &Path) -> Result<String> {
    let err = |err: io::Error| Error::Read {
        path: path.to_path_buf(),
        err,
    };
    let mut f = File::open(path).map_err(err)?;
    // Skip the size probe std's read_to_string does: cgroupfs reports 4096 anyway.
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        match f.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(err(e)),
        }
    }
    String::from_utf8(buf).map_err(|_| Error::Parse {
        path: path.to_path_buf(),
        reason: "not utf-8".into(),
    })
}

/// Reads a file; a missing file gives `None`.
pub(crate) fn read_opt(dir: &Path, file: &str) -> Result<Option<String>> {
    match read(dir, file) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Parses a single unsigned number; "max" maps to `u64::MAX`.
pub(crate) fn parse_u64(path: &Path, s: &str) -> Result<u64> {
    let t = s.trim();
    if t == "max" {
        return Ok(u64::MAX);
    }
    t.parse::<u64>().map_err(|_| Error::Parse {
        path: path.to_path_buf(),
        reason: format!("expected a number, got {t:?}"),
    })
}

/// Reads a single-number file; missing gives `None`.
pub(crate) fn read_u64_opt(dir: &Path, file: &str) -> Result<Option<u64>> {
    match read_opt(dir, file)? {
        Some(s) => parse_u64(&dir.join(file), &s).map(Some),
        None => Ok(None),
    }
}

/// Creates `path` and any missing parents; returns the directories it created, top first.
pub(crate) fn mkdir_p(path: &Path) -> Result<Vec<PathBuf>> {
    let mut created = Vec::new();
    mkdir_p_into(path, &mut created)?;
    Ok(created)
}

fn mkdir_p_into(path: &Path, created: &mut Vec<PathBuf>) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.mode(0o755);
    // Try the leaf first: in the common case the parent exists and this is one syscall.
    match builder.create(path) {
        Ok(()) => {
            created.push(path.to_path_buf());
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = path.parent().ok_or_else(|| Error::Create {
                path: path.to_path_buf(),
                err: io::Error::from_raw_os_error(libc::ENOENT),
            })?;
            mkdir_p_into(parent, created)?;
            match builder.create(path) {
                Ok(()) => {
                    created.push(path.to_path_buf());
                    Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                Err(err) => Err(Error::Create {
                    path: path.to_path_buf(),
                    err,
                }),
            }
        }
        Err(err) => Err(Error::Create {
            path: path.to_path_buf(),
            err,
        }),
    }
}

/// Removes a cgroup directory: retries briefly while it is busy, removes child cgroups
/// left behind by the container, and treats a missing directory as done.
pub(crate) fn remove_cgroup_dir(path: &Path) -> Result<()> {
    let mut delay = std::time::Duration::from_millis(2);
    let mut children_removed = false;
    for attempt in 0.. {
        match std::fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 8 => {
                // Sub-cgroups also make rmdir fail with EBUSY; walk only on this slow path.
                if !children_removed {
                    children_removed = true;
                    if remove_children(path)? {
                        continue;
                    }
                }
                std::thread::sleep(delay);
                delay = (delay * 2).min(std::time::Duration::from_millis(100));
            }
            Err(err) => {
                return Err(Error::Remove {
                    path: path.to_path_buf(),
                    err,
                })
            }
        }
    }
    Ok(())
}

/// Removes every sub-cgroup of `path`; returns whether there were any.
fn remove_children(path: &Path) -> Result<bool> {
    let entries = match std::fs::read_dir(path) {
        Ok(it) => it,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(err) => {
            return Err(Error::Open {
                path: path.to_path_buf(),
                err,
            })
        }
    };
    let mut any = false;
    for entry in entries {
        let entry = entry.map_err(|err| Error::Read {
            path: path.to_path_buf(),
            err,
        })?;
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir {
            any = true;
            remove_cgroup_dir(&entry.path())?;
        }
    }
    Ok(any)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mkdir_p_reports_created_levels_top_first() {
        let tmp = tempfile::tempdir().unwrap();
        let leaf = tmp.path().join("a/b/c");
        let created = mkdir_p(&leaf).unwrap();
        assert_eq!(
            created,
            vec![
                tmp.path().join("a"),
                tmp.path().join("a/b"),
                tmp.path().join("a/b/c")
            ]
        );
        assert!(mkdir_p(&leaf).unwrap().is_empty());
    }

    #[test]
    fn apply_writes_skips_missing_optional_files() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("present"), "").unwrap();
        apply_writes(
            tmp.path(),
            &[
                Write::new("missing", 1).optional(),
                Write::new("present", 7),
            ],
        )
        .unwrap();
        assert_eq!(read(tmp.path(), "present").unwrap(), "7");
        let err = apply_writes(tmp.path(), &[Write::new("missing", 1)]).unwrap_err();
        assert!(err.to_string().starts_with("write 1 to "), "{err}");
        assert!(
            err.to_string()
                .ends_with("missing: no such file or directory"),
            "{err}"
        );
    }
}
