//! Crash-safe file operations: every write goes to a temporary file that is fsynced and
//! renamed into place, and the directory is fsynced after the rename.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Fsyncs a directory so a rename or create inside it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io("fsync directory", dir))
}

/// Creates `dir` and its missing parents, fsyncing each parent that gained an entry.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.is_dir() {
            break;
        }
        missing.push(d);
        cur = d.parent();
    }
    for d in missing.into_iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => {
                if let Some(parent) = d.parent() {
                    sync_dir(parent)?;
                }
            }
            // A concurrent request made it first.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("create directory", d)(e)),
        }
    }
    Ok(())
}

/// A temporary file name in `tmp_dir` that nothing else uses.
pub fn temp_path(tmp_dir: &Path) -> PathBuf {
    tmp_dir.join(format!("tmp-{:032x}", rand::random::<u128>()))
}

/// Writes `data` to `path` atomically: readers see the old content or the new, never a part.
pub fn write_atomic(tmp_dir: &Path, path: &Path, data: &[u8]) -> Result<()> {
    let tmp = temp_path(tmp_dir);
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(Error::io("create", &tmp))?;
        f.write_all(data).map_err(Error::io("write", &tmp))?;
        f.sync_all().map_err(Error::io("fsync", &tmp))?;
        drop(f);
        rename_durable(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Renames `from` to `to` (creating `to`'s directory) and fsyncs the target directory.
pub fn rename_durable(from: &Path, to: &Path) -> Result<()> {
    let dir = to.parent().ok_or_else(|| Error::Internal(format!("{} has no parent", to.display())))?;
    ensure_dir(dir)?;
    fs::rename(from, to).map_err(Error::io("rename", to))?;
    sync_dir(dir)
}

/// Removes a file and fsyncs its directory; true if it existed.
pub fn remove_durable(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                sync_dir(dir)?;
            }
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("remove", path)(e)),
    }
}

/// Removes empty directories from `dir` up to (not including) `stop`.
pub fn prune_empty_dirs(dir: &Path, stop: &Path) {
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d == stop || !d.starts_with(stop) || fs::remove_dir(d).is_err() {
            break;
        }
        cur = d.parent();
    }
}

/// Whether `path` exists; errors other than "not found" count as present so callers never
/// treat an unreadable entry as free to overwrite.
pub fn exists(path: &Path) -> bool {
    match fs::symlink_metadata(path) {
        Ok(_) => true,
        Err(e) => e.kind() != ErrorKind::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        let target = dir.path().join("a/b/c");
        write_atomic(&tmp, &target, b"one").unwrap();
        write_atomic(&tmp, &target, b"two").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
        assert!(remove_durable(&target).unwrap());
        assert!(!remove_durable(&target).unwrap());
        prune_empty_dirs(&dir.path().join("a/b"), dir.path());
        assert!(!dir.path().join("a").exists());
    }
}
