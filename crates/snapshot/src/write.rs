//! Writing directory trees as layer tars: overlay upper directories (whiteouts converted back to
//! AUFS form) or plain trees. Output is deterministic: same tree, same bytes.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;
use tar::{EntryType, Header};

use crate::apply::OVERLAY_OPAQUE_XATTR;
use crate::error::{Error, Result};
use crate::fsutil::{fd_path, open_child_dir, open_dir, XattrTarget};

/// Which tree is being written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// An overlay upper directory: whiteouts and opaque directories become `.wh.` entries.
    Layer,
    /// A plain tree, written as it is.
    Tree,
}

/// Writes an overlay upper directory as a layer tar, the inverse of [`crate::apply_layer`].
///
/// Overlay whiteouts (char devices 0:0) become `.wh.<name>` entries, opaque directories get a
/// `.wh..wh..opq` entry right after their own; hardlinks inside the tree are written as tar
/// hardlinks to the first path (in walk order); xattrs as PAX `SCHILY.xattr.*` (not
/// `trusted.overlay.*` nor `security.selinux`). Names are walked in byte order, owner names and
/// atimes are left out and mtimes are whole seconds (as docker and containerd write them), so
/// the same tree always gives the same bytes. Sockets are skipped; the root directory itself has
/// no entry; mount points inside the tree are written as empty directories. Returns the number
/// of bytes written.
pub fn write_layer(dir: &Path, out: impl Write) -> Result<u64> {
    write(dir, out, Form::Layer)
}

/// Writes a plain directory tree as a tar (the `export` of a merged root filesystem): like
/// [`write_layer`] without any whiteout conversion.
pub fn write_tree(dir: &Path, out: impl Write) -> Result<u64> {
    write(dir, out, Form::Tree)
}

fn write(dir: &Path, out: impl Write, form: Form) -> Result<u64> {
    let root = open_dir(dir).map_err(Error::io("open directory to archive", dir))?;
    let mut writer =
        Writer { dir, form, builder: tar::Builder::new(Counter { inner: out, written: 0 }), links: HashMap::new() };
    writer.walk(root)?;
    let mut counter = writer.builder.into_inner().map_err(Error::io("write layer tar of", dir))?;
    counter.inner.flush().map_err(Error::io("write layer tar of", dir))?;
    Ok(counter.written)
}

/// A directory being walked: its fd and the names left, sorted so that `pop` gives byte order.
struct Level {
    dir: Dir,
    prefix: Vec<u8>,
    names: Vec<CString>,
}

impl Level {
    fn read(fd: OwnedFd, prefix: Vec<u8>) -> io::Result<Level> {
        let mut dir = Dir::new(fd)?;
        let mut names = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry?;
            let name = entry.file_name();
            if name != c"." && name != c".." {
                names.push(name.to_owned());
            }
        }
        names.sort_unstable_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
        Ok(Level { dir, prefix, names })
    }
}

struct Writer<'a, W: Write> {
    dir: &'a Path,
    form: Form,
    builder: tar::Builder<Counter<W>>,
    /// First path seen of each inode with more than one link.
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl<W: Write> Writer<'_, W> {
    fn walk(&mut self, root: OwnedFd) -> Result<()> {
        if self.form == Form::Layer {
            let xattrs = XattrTarget::Fd(root.as_fd()).list().map_err(|e| self.err(b".", e))?;
            if self.is_opaque(root.as_fd(), &xattrs).map_err(|e| self.err(b".", e))? {
                let st = rfs::fstat(&root).map_err(|e| self.err(b".", e.into()))?;
                self.opaque_marker(b"", &st).map_err(|e| self.err(b".", e))?;
            }
        }
        let mut stack = vec![Level::read(root, Vec::new()).map_err(|e| self.err(b".", e))?];
        while let Some(level) = stack.last_mut() {
            let Some(name) = level.names.pop() else {
                stack.pop();
                continue;
            };
            let mut path = level.prefix.clone();
            path.extend_from_slice(name.as_bytes());
            let fd = level.dir.fd().map_err(|e| self.err(&path, e.into()))?;
            let st = match rfs::statat(fd, &name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // Removed while we walk: it is simply not in the layer.
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(self.err(&path, e.into())),
            };
            let child = self.entry(fd, &name, &path, &st).map_err(|e| self.err(&path, e))?;
            if let Some(child) = child {
                path.push(b'/');
                stack.push(Level::read(child, path.clone()).map_err(|e| self.err(&path, e))?);
            }
        }
        Ok(())
    }

    /// Writes one entry; returns the fd of a directory to descend into.
    fn entry(&mut self, dir: BorrowedFd<'_>, name: &CStr, path: &[u8], st: &rfs::Stat) -> io::Result<Option<OwnedFd>> {
        let file_type = FileType::from_raw_mode(st.st_mode);
        match file_type {
            FileType::Directory => return self.directory(dir, name, path, st),
            FileType::CharacterDevice if self.form == Form::Layer && st.st_rdev == 0 => {
                let parent = &path[..path.len() - name.to_bytes().len()];
                let whiteout = [parent, b".wh.", name.to_bytes()].concat();
                let mut header = header(st, EntryType::Regular);
                header.set_mode(st.st_mode & 0o777);
                self.builder.append_data(&mut header, as_path(&whiteout), io::empty())?;
                return Ok(None);
            }
            FileType::Socket | FileType::Unknown => {
                tracing::debug!(path = %String::from_utf8_lossy(path), "not archived: no tar form");
                return Ok(None);
            }
            _ => {}
        }
        if st.st_nlink > 1 {
            if let Some(first) = self.links.get(&(st.st_dev, st.st_ino)) {
                let first = first.clone();
                let mut header = header(st, EntryType::Link);
                self.builder.append_link(&mut header, as_path(path), as_path(&first))?;
                return Ok(None);
            }
            self.links.insert((st.st_dev, st.st_ino), path.to_vec());
        }
        match file_type {
            FileType::RegularFile => {
                let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let file = File::from(rfs::openat(dir, name, flags, Mode::empty())?);
                let xattrs = self.xattrs(XattrTarget::Fd(file.as_fd()))?;
                let size = u64::try_from(st.st_size).unwrap_or(0);
                let mut header = header(st, EntryType::Regular);
                header.set_size(size);
                self.pax(&xattrs)?;
                self.builder.append_data(&mut header, as_path(path), Exact { inner: file, left: size })?;
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(dir, name, Vec::new())?;
                let xattrs = self.xattrs(XattrTarget::Path(&fd_path(dir, name.to_bytes())))?;
                let mut header = header(st, EntryType::Symlink);
                self.pax(&xattrs)?;
                self.builder.append_link(&mut header, as_path(path), as_path(target.as_bytes()))?;
            }
            _ => {
                let kind = match file_type {
                    FileType::CharacterDevice => EntryType::Char,
                    FileType::BlockDevice => EntryType::Block,
                    _ => EntryType::Fifo,
                };
                let xattrs = self.xattrs(XattrTarget::Path(&fd_path(dir, name.to_bytes())))?;
                let mut header = header(st, kind);
                let rdev = if kind == EntryType::Fifo { 0 } else { st.st_rdev };
                header.set_device_major(rfs::major(rdev))?;
                header.set_device_minor(rfs::minor(rdev))?;
                self.pax(&xattrs)?;
                self.builder.append_data(&mut header, as_path(path), io::empty())?;
            }
        }
        Ok(None)
    }

    fn directory(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        path: &[u8],
        st: &rfs::Stat,
    ) -> io::Result<Option<OwnedFd>> {
        let mut dir_path = path.to_vec();
        dir_path.push(b'/');
        let child = match open_child_dir(dir, name) {
            Ok(fd) => fd,
            // A mount point: its own content is not part of this tree.
            Err(Errno::XDEV) => {
                self.builder.append_data(&mut header(st, EntryType::Directory), as_path(&dir_path), io::empty())?;
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let names = XattrTarget::Fd(child.as_fd()).list()?;
        let opaque = self.form == Form::Layer && self.is_opaque(child.as_fd(), &names)?;
        let xattrs = self.xattrs_named(XattrTarget::Fd(child.as_fd()), names)?;
        self.pax(&xattrs)?;
        self.builder.append_data(&mut header(st, EntryType::Directory), as_path(&dir_path), io::empty())?;
        if opaque {
            self.opaque_marker(path, st)?;
        }
        Ok(Some(child))
    }

    fn is_opaque(&self, fd: BorrowedFd<'_>, names: &[Vec<u8>]) -> io::Result<bool> {
        if !names.iter().any(|n| n == OVERLAY_OPAQUE_XATTR) {
            return Ok(false);
        }
        Ok(XattrTarget::Fd(fd).get(OVERLAY_OPAQUE_XATTR)? == b"y")
    }

    /// The `.wh..wh..opq` entry of an opaque directory at `path` (empty for the root).
    fn opaque_marker(&mut self, path: &[u8], st: &rfs::Stat) -> io::Result<()> {
        let marker = if path.is_empty() { b".wh..wh..opq".to_vec() } else { [path, b"/.wh..wh..opq"].concat() };
        let mut header = header(st, EntryType::Regular);
        header.set_mode(st.st_mode & 0o777);
        self.builder.append_data(&mut header, as_path(&marker), io::empty())
    }

    fn xattrs(&self, target: XattrTarget<'_>) -> io::Result<Vec<(String, Vec<u8>)>> {
        let names = target.list()?;
        self.xattrs_named(target, names)
    }

    /// The PAX records of the xattrs worth keeping, sorted by name.
    fn xattrs_named(&self, target: XattrTarget<'_>, names: Vec<Vec<u8>>) -> io::Result<Vec<(String, Vec<u8>)>> {
        let mut records = Vec::new();
        for name in names {
            if name.starts_with(b"trusted.overlay.")
                || name.starts_with(b"user.overlay.")
                || name == b"security.selinux"
            {
                continue;
            }
            let Ok(text) = std::str::from_utf8(&name) else {
                tracing::debug!(xattr = %String::from_utf8_lossy(&name), "xattr name is not UTF-8, not archived");
                continue;
            };
            let value = match target.get(&name) {
                Ok(value) => value,
                // Removed since it was listed.
                Err(e) if e.raw_os_error() == Some(libc::ENODATA) => continue,
                Err(e) => return Err(e),
            };
            records.push((format!("SCHILY.xattr.{text}"), value));
        }
        records.sort();
        Ok(records)
    }

    fn pax(&mut self, records: &[(String, Vec<u8>)]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.builder.append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
    }

    fn err(&self, path: &[u8], source: io::Error) -> Error {
        Error::WriteLayer { dir: self.dir.to_owned(), entry: String::from_utf8_lossy(path).into_owned(), source }
    }
}

/// A header with type, mode, owner and whole-second mtime from `st`; no names, no atime.
fn header(st: &rfs::Stat, kind: EntryType) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(st.st_mode & 0o7777);
    header.set_uid(u64::from(st.st_uid));
    header.set_gid(u64::from(st.st_gid));
    header.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
    header.set_size(0);
    header
}

fn as_path(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

/// Reads exactly `left` bytes: a file that shrinks while being archived is an error rather than
/// a corrupt tar; growth past the size in the header is left out.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = usize::try_from(self.left).unwrap_or(usize::MAX).min(buf.len());
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being archived"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Counts the bytes written through it.
struct Counter<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
