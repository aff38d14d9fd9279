//! Filesystem helpers: safe tree removal, disk usage, syncfs, xattr listing through fds.

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use rustix::fs::{self as rfs, AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, CWD};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// How often a directory is re-read when entries keep appearing while it is being removed.
const REMOVE_PASSES: u8 = 3;

/// Opens a directory by path for use as the base of *at calls.
pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rfs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?)
}

/// Opens the directory `name` inside `dir` without following symlinks or crossing mount points.
/// Fails with EXDEV on a mount point.
pub(crate) fn open_child_dir(dir: BorrowedFd<'_>, name: &CStr) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV | ResolveFlags::NO_MAGICLINKS;
    rfs::openat2(dir, name, flags, Mode::empty(), resolve)
}

/// The `/proc/self/fd/<dir>/<name>` path naming `name` inside the open directory `dir`, for the
/// calls that have no *at form (l*xattr). Only the final component is looked up by name.
pub(crate) fn fd_path(dir: BorrowedFd<'_>, name: &[u8]) -> Vec<u8> {
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name);
    path
}

/// Removes the entry `name` of `dir`, a whole tree when it is a directory.
/// A missing entry is not an error; symlinks are removed, never followed.
pub(crate) fn remove_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    match rfs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        // EISDIR on Linux; POSIX allows EPERM for unlinking a directory.
        Err(Errno::ISDIR | Errno::PERM) => {}
        Err(e) => return Err(e.into()),
    }
    remove_dir_tree(dir, name)
}

struct Level {
    dir: Dir,
    name: CString,
    passes: u8,
}

/// Removes the directory `name` of `parent` and everything below it, without recursion (depth is
/// bounded by open fds, not by the stack).
fn remove_dir_tree(parent: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let first = Level { dir: Dir::new(open_for_removal(parent, name)?)?, name: name.to_owned(), passes: 0 };
    let mut stack = vec![first];
    while let Some(top) = stack.last_mut() {
        match top.dir.read() {
            Some(entry) => {
                let entry = entry?;
                let child = entry.file_name();
                if child == c"." || child == c".." {
                    continue;
                }
                let fd = top.dir.fd()?;
                if entry.file_type() != FileType::Directory && unlink_file(fd, child)? {
                    continue;
                }
                let child_dir = Dir::new(open_for_removal(fd, child)?)?;
                stack.push(Level { dir: child_dir, name: child.to_owned(), passes: 0 });
            }
            None => {
                let Some(mut done) = stack.pop() else { break };
                let parent_fd = match stack.last() {
                    Some(level) => level.dir.fd()?,
                    None => parent,
                };
                match rfs::unlinkat(parent_fd, &done.name, AtFlags::REMOVEDIR) {
                    Ok(()) | Err(Errno::NOENT) => {}
                    // Entries appeared while we were reading: read the directory again.
                    Err(Errno::NOTEMPTY) if done.passes < REMOVE_PASSES => {
                        done.passes += 1;
                        done.dir.rewind();
                        stack.push(done);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(())
}

/// Unlinks a non-directory; returns false when it turned out to be a directory after all.
fn unlink_file(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<bool> {
    match rfs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(true),
        Err(Errno::ISDIR | Errno::PERM) => Ok(false),
        // A read-only directory (only without CAP_DAC_OVERRIDE): make it writable and retry.
        Err(Errno::ACCESS) => {
            rfs::fchmod(dir, Mode::from_raw_mode(0o700))?;
            rfs::unlinkat(dir, name, AtFlags::empty())?;
            Ok(true)
        }
        Err(e) => Err(e.into()),
    }
}

fn open_for_removal(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    let fd = match open_child_dir(dir, name) {
        Err(Errno::ACCESS) => {
            // Unreadable directory (only without CAP_DAC_READ_SEARCH); it is a directory, the
            // open above refused symlinks, so chmod cannot follow one.
            rfs::chmodat(dir, name, Mode::from_raw_mode(0o700), AtFlags::empty())?;
            open_child_dir(dir, name)
        }
        r => r,
    };
    match fd {
        Err(Errno::XDEV) => Err(io::Error::other(format!("{name:?} is a mount point, not removing below it"))),
        r => Ok(r?),
    }
}

/// Splits a path into its parent directory and final name; `None` for `/`, `..` or `.` endings.
fn split_path(path: &Path) -> Option<(&Path, CString)> {
    match path.components().next_back() {
        Some(Component::Normal(name)) => {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            Some((parent, CString::new(name.as_bytes()).ok()?))
        }
        _ => None,
    }
}

/// Removes `path` and everything below it. Symlinks are removed, never followed; read-only
/// directories are handled; the removal never crosses into another mount (it fails instead, so a
/// leftover bind mount cannot lose its content). A missing path is not an error.
pub fn remove_tree(path: &Path) -> Result<()> {
    let Some((parent, name)) = split_path(path) else {
        return Err(Error::Io {
            op: "remove",
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "path has no final name"),
        });
    };
    let parent_fd = match open_dir(parent) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("remove", path)(e)),
    };
    remove_at(parent_fd.as_fd(), &name).map_err(Error::io("remove", path))
}

/// Flushes the whole filesystem holding `path` to disk (`syncfs`): one call after unpacking
/// replaces an fsync per file.
pub fn sync_filesystem(path: &Path) -> Result<()> {
    let fd = rfs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::io("open for sync", path)(e.into()))?;
    rfs::syncfs(&fd).map_err(|e| Error::io("sync filesystem of", path)(e.into()))
}

/// Disk usage of a tree in bytes: allocated blocks (`st_blocks`), each inode counted once however
/// many hardlinks it has, not crossing into other mounts, symlinks not followed.
pub fn disk_usage(path: &Path) -> Result<u64> {
    let err = |e: io::Error| Error::io("disk usage of", path)(e);
    let st = rfs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| err(e.into()))?;
    let mut total = allocated(&st);
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Ok(total);
    }
    let mut seen = HashSet::new();
    let mut stack = vec![Dir::new(open_dir(path).map_err(err)?).map_err(|e| err(e.into()))?];
    while let Some(dir) = stack.last_mut() {
        let Some(entry) = dir.read() else {
            stack.pop();
            continue;
        };
        let entry = entry.map_err(|e| err(e.into()))?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let fd = dir.fd().map_err(|e| err(e.into()))?;
        let st = match rfs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(err(e.into())),
        };
        let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        if !is_dir && st.st_nlink > 1 && !seen.insert((st.st_dev, st.st_ino)) {
            continue;
        }
        total += allocated(&st);
        if is_dir {
            match open_child_dir(fd, name) {
                Ok(child) => stack.push(Dir::new(child).map_err(|e| err(e.into()))?),
                // Another mount, or a directory that vanished meanwhile.
                Err(Errno::XDEV | Errno::NOENT) => {}
                Err(e) => return Err(err(e.into())),
            }
        }
    }
    Ok(total)
}

fn allocated(st: &rfs::Stat) -> u64 {
    u64::try_from(st.st_blocks).unwrap_or(0) * 512
}

/// Where to read or write extended attributes: an open fd (files, directories) or a
/// `/proc/self/fd/<dir>/<name>` path used with the l* calls (symlinks, devices, fifos).
#[derive(Clone, Copy)]
pub(crate) enum XattrTarget<'a> {
    Fd(BorrowedFd<'a>),
    Path(&'a [u8]),
}

impl XattrTarget<'_> {
    /// Names of all extended attributes; empty where the filesystem has none.
    pub(crate) fn list(self) -> io::Result<Vec<Vec<u8>>> {
        let raw = read_sized(|buf| match self {
            XattrTarget::Fd(fd) => rfs::flistxattr(fd, buf),
            XattrTarget::Path(p) => rfs::llistxattr(p, buf),
        });
        let raw = match raw {
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(Vec::new()),
            r => r?,
        };
        Ok(raw.split(|b| *b == 0).filter(|n| !n.is_empty()).map(<[u8]>::to_vec).collect())
    }

    pub(crate) fn get(self, name: &[u8]) -> io::Result<Vec<u8>> {
        read_sized(|buf| match self {
            XattrTarget::Fd(fd) => rfs::fgetxattr(fd, name, buf),
            XattrTarget::Path(p) => rfs::lgetxattr(p, name, buf),
        })
    }

    pub(crate) fn set(self, name: &[u8], value: &[u8]) -> io::Result<()> {
        let flags = rfs::XattrFlags::empty();
        Ok(match self {
            XattrTarget::Fd(fd) => rfs::fsetxattr(fd, name, value, flags),
            XattrTarget::Path(p) => rfs::lsetxattr(p, name, value, flags),
        }?)
    }
}

/// Calls a size-returning syscall with a small stack buffer first, then with an exact-size heap
/// buffer when the value is larger (ERANGE), as the value may grow between the calls.
fn read_sized(mut call: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>) -> io::Result<Vec<u8>> {
    let mut small = [0u8; 1024];
    match call(&mut small) {
        Ok(n) => return Ok(small[..n].to_vec()),
        Err(Errno::RANGE) => {}
        Err(e) => return Err(e.into()),
    }
    loop {
        let size = call(&mut [])?;
        let mut buf = vec![0u8; size];
        match call(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
