//! Unpacking layer tars into directories, as overlay layers or onto merged trees, never writing
//! outside the target directory.
//!
//! Every parent directory is resolved with `openat2(RESOLVE_IN_ROOT)` from the target directory,
//! so `..` and symlinks (absolute or relative) are confined to it; the final component is created
//! with *at calls that never follow a symlink there. See docs/layers.md.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use rustix::fs::{self as rfs, AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};
use tar::EntryType;

use crate::error::{Error, Result};
use crate::fsutil::{fd_path, open_child_dir, open_dir, remove_at, XattrTarget};

/// Buffer between the (decompressed) stream and the tar parser: headers are read 512 bytes at a time.
const READ_BUFFER: usize = 256 * 1024;
/// Reused buffer for file contents.
const COPY_BUFFER: usize = 1024 * 1024;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
pub(crate) const OVERLAY_OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";

/// What applying a layer produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Bytes of regular file content written (what the layer occupies unpacked, before blocks).
    pub size: u64,
    /// Tar entries applied, whiteouts and skipped bookkeeping entries included.
    pub entries: u64,
}

/// The form of the target directory.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// An overlayfs layer: whiteouts are recorded as overlay whiteouts.
    Overlay,
    /// A tree holding the merged content of the lower layers: whiteouts delete.
    Merged,
}

/// Unpacks a plain (uncompressed) layer tar into `dir`, an existing empty directory that will be
/// used as an overlayfs lower (or upper) directory.
///
/// AUFS-style whiteouts `.wh.<name>` become overlay whiteouts (a char device 0:0 named `<name>`),
/// `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory, other `.wh..wh.*` entries
/// (AUFS bookkeeping) are skipped with everything below them.
///
/// Preserves regular files, directories, symlinks, hardlinks (the target must already exist in
/// `dir`), char/block devices and fifos, uid/gid, mode including setuid/setgid/sticky, mtime and
/// atime (nanoseconds from PAX records when present) and xattrs from PAX `SCHILY.xattr.*`
/// (`trusted.overlay.*` excepted: only whiteout entries may make a directory opaque). Directory
/// times are set once everything below them is written. The entry naming the root itself is
/// skipped: the root's metadata belongs to the snapshot.
///
/// Never writes outside `dir`: names are cleaned (a leading `/` or `./` is dropped) and a name or
/// hardlink target whose `..` would leave the root is rejected; parents are resolved inside
/// `dir` (symlinks included); nothing follows a symlink in the last component. An existing entry
/// of another type is replaced; a directory over a directory is merged. Nothing is fsynced: call
/// [`crate::sync_filesystem`] once when all layers are in.
///
/// The stream is read to its end, padding after the end-of-archive blocks included, so a digest
/// computed over it covers the whole layer.
///
/// On error `dir` holds part of the layer: apply into a fresh directory and commit it (rename,
/// metadata record) only on success, [`crate::remove_tree`] it otherwise.
pub fn apply_layer(dir: &Path, tar: impl Read) -> Result<ApplyStats> {
    apply(dir, tar, Form::Overlay)
}

/// Like [`apply_layer`], into a directory that already holds the merged content of the lower
/// layers (no overlay): a whiteout deletes the named path, an opaque marker empties its directory
/// of everything this layer did not itself put there.
pub fn apply_layer_merged(dir: &Path, tar: impl Read) -> Result<ApplyStats> {
    apply(dir, tar, Form::Merged)
}

fn apply(dir: &Path, tar: impl Read, form: Form) -> Result<ApplyStats> {
    let root = open_dir(dir).map_err(Error::io("open layer directory", dir))?;
    let mut applier = Applier::new(root, form).map_err(Error::io("open layer directory", dir))?;
    let mut archive = tar::Archive::new(BufReader::with_capacity(READ_BUFFER, tar));
    for entry in archive.entries().map_err(Error::ReadLayer)? {
        let mut entry = entry.map_err(Error::ReadLayer)?;
        applier.entry(&mut entry)?;
    }
    // Read to the end: the padding after the end-of-archive blocks belongs to the layer's digest,
    // and a compressed stream checks its trailer only there.
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(Error::ReadLayer)?;
    applier.finish()
}

/// Metadata of one entry, from its header and PAX records.
struct Meta {
    /// Permission bits with setuid/setgid/sticky.
    mode: u32,
    uid: u32,
    gid: u32,
    times: Timestamps,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The names of one entry: as written in the tar (for messages), cleaned, split.
struct Names<'a> {
    raw: &'a [u8],
    path: &'a [u8],
    parent: &'a [u8],
    name: &'a [u8],
}

/// A directory fd with what new entries inside it inherit.
#[derive(Clone)]
struct DirRef {
    fd: Rc<OwnedFd>,
    /// The group new entries get when the directory is setgid.
    inherit_gid: Option<u32>,
}

impl DirRef {
    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Parent directories resolved inside the root, with the last one kept open: tar entries come
/// grouped by directory, so most entries reuse it.
struct DirCache {
    root: DirRef,
    cached: Option<(Vec<u8>, DirRef)>,
}

impl DirCache {
    /// The directory at `path` (relative to the root), creating missing ones (mode 0755) as tar does.
    fn get(&mut self, path: &[u8]) -> io::Result<DirRef> {
        if path.is_empty() {
            return Ok(self.root.clone());
        }
        if let Some((cached, dir)) = &self.cached {
            if cached == path {
                return Ok(dir.clone());
            }
        }
        let dir = dir_ref(self.open_or_create(path)?)?;
        self.cached = Some((path.to_vec(), dir.clone()));
        Ok(dir)
    }

    /// The existing directory at `path`, without creating anything.
    fn existing(&self, path: &[u8]) -> io::Result<DirRef> {
        if path.is_empty() {
            return Ok(self.root.clone());
        }
        if let Some((cached, dir)) = &self.cached {
            if cached == path {
                return Ok(dir.clone());
            }
        }
        dir_ref(self.resolve(path, dir_flags())?)
    }

    fn remember(&mut self, path: Vec<u8>, dir: DirRef) {
        self.cached = Some((path, dir));
    }

    /// Drops the cached directory after a removal: it may have been below what was removed, or
    /// reached through it (a symlink in its path). Removals are rare, so no finer check.
    fn forget(&mut self) {
        self.cached = None;
    }

    /// Opens `path` with every component, symlinks and `..` included, resolved inside the root.
    fn resolve(&self, path: &[u8], flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        rfs::openat2(self.root.fd(), path, flags, Mode::empty(), resolve)
    }

    fn open_or_create(&self, path: &[u8]) -> io::Result<OwnedFd> {
        match self.resolve(path, dir_flags()) {
            Err(Errno::NOENT) => {}
            r => return Ok(r?),
        }
        // Walk down, creating what is missing; each step is resolved inside the root again.
        let mut current: Option<OwnedFd> = None;
        let mut end = 0;
        while end < path.len() {
            let start = if end == 0 { 0 } else { end + 1 };
            end = path[start..].iter().position(|b| *b == b'/').map_or(path.len(), |i| start + i);
            let prefix = &path[..end];
            let fd = match self.resolve(prefix, dir_flags()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    let parent = current.as_ref().map_or(self.root.fd(), |fd| fd.as_fd());
                    let created = match rfs::mkdirat(parent, &path[start..end], Mode::from_raw_mode(0o755)) {
                        Ok(()) => true,
                        // A dangling symlink: resolving it below fails with a clear error.
                        Err(Errno::EXIST) => false,
                        Err(e) => return Err(e.into()),
                    };
                    let fd = self.resolve(prefix, dir_flags())?;
                    if created {
                        // Exactly 0755 whatever the umask or a setgid parent.
                        rfs::fchmod(&fd, Mode::from_raw_mode(0o755))?;
                    }
                    fd
                }
                Err(e) => return Err(e.into()),
            };
            current = Some(fd);
        }
        current.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty directory path"))
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
}

fn dir_ref(fd: OwnedFd) -> io::Result<DirRef> {
    let st = rfs::fstat(&fd)?;
    let inherit_gid = (st.st_mode & libc::S_ISGID != 0).then_some(st.st_gid);
    Ok(DirRef { fd: Rc::new(fd), inherit_gid })
}

/// Who we are, to skip chown/chmod calls that would change nothing.
struct Ids {
    euid: u32,
    egid: u32,
    /// The process umask, read once from /proc (reading it with umask(2) would change it).
    umask: Option<u32>,
}

impl Ids {
    fn current() -> Ids {
        let umask = std::fs::read_to_string("/proc/self/status").ok().and_then(|status| {
            let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
            u32::from_str_radix(line.trim(), 8).ok()
        });
        Ids { euid: rustix::process::geteuid().as_raw(), egid: rustix::process::getegid().as_raw(), umask }
    }

    /// The owner a new entry in `dir` gets differs from the wanted one.
    fn owner_differs(&self, meta: &Meta, dir: &DirRef) -> bool {
        meta.uid != self.euid || meta.gid != dir.inherit_gid.unwrap_or(self.egid)
    }

    /// The mode a new entry got from its create call may differ from the wanted one.
    fn mode_differs(&self, meta: &Meta, dir: &DirRef, is_dir: bool) -> bool {
        let special = meta.mode & 0o7000 != 0;
        // A new directory inherits the setgid bit of its parent.
        let inherited = is_dir && dir.inherit_gid.is_some();
        let masked = self.umask.is_none_or(|umask| meta.mode & 0o777 & umask != 0);
        special || inherited || masked
    }
}

struct Applier {
    form: Form,
    dirs: DirCache,
    ids: Ids,
    buf: Vec<u8>,
    /// Directory times to set at the end, once nothing below them changes any more.
    dir_times: Vec<(Vec<u8>, Timestamps)>,
    /// Paths this layer created (merged form only): an opaque marker keeps them.
    unpacked: HashSet<Vec<u8>>,
    stats: ApplyStats,
}

impl Applier {
    fn new(root: OwnedFd, form: Form) -> io::Result<Applier> {
        Ok(Applier {
            form,
            dirs: DirCache { root: dir_ref(root)?, cached: None },
            ids: Ids::current(),
            buf: vec![0; COPY_BUFFER],
            dir_times: Vec::new(),
            unpacked: HashSet::new(),
            stats: ApplyStats::default(),
        })
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        self.stats.entries += 1;
        let raw = entry.path_bytes().into_owned();
        let path = clean_path(&raw).ok_or_else(|| Error::EntryEscapes { entry: lossy(&raw) })?;
        let Some((parent, name)) = split_last(&path) else {
            if kind.is_dir() {
                return Ok(());
            }
            return Err(invalid(&raw, "names the layer root but is not a directory"));
        };
        if name == WHITEOUT_OPAQUE {
            return self.opaque(&raw, parent);
        }
        if name.starts_with(WHITEOUT_META_PREFIX)
            || parent.split(|b| *b == b'/').any(|c| c.starts_with(WHITEOUT_META_PREFIX))
        {
            return Ok(());
        }
        let meta = read_meta(entry, &raw)?;
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            return self.whiteout(&raw, parent, hidden, &meta);
        }
        let names = Names { raw: &raw, path: &path, parent, name };
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.file(entry, &names, &meta, kind == EntryType::GNUSparse)?
            }
            EntryType::Directory => self.directory(&names, &meta)?,
            EntryType::Symlink => self.symlink(entry, &names, &meta)?,
            EntryType::Link => self.hardlink(entry, &names)?,
            EntryType::Char | EntryType::Block | EntryType::Fifo => self.special(entry, &names, &meta, kind)?,
            other => return Err(invalid(&raw, &format!("unsupported entry type {:?}", other.as_byte() as char))),
        }
        if self.form == Form::Merged {
            self.unpacked.insert(path);
        }
        Ok(())
    }

    /// Runs `create`; when something is already there, removes it (a whole tree if need be) and
    /// runs `create` again.
    fn create_or_replace<T>(
        &mut self,
        dir: &DirRef,
        name: &[u8],
        mut create: impl FnMut() -> rustix::io::Result<T>,
    ) -> io::Result<T> {
        match create() {
            Err(Errno::EXIST) => {
                self.replace(dir, name)?;
                Ok(create()?)
            }
            r => Ok(r?),
        }
    }

    fn replace(&mut self, dir: &DirRef, name: &[u8]) -> io::Result<()> {
        remove_at(dir.fd(), &c_name(name)?)?;
        self.dirs.forget();
        Ok(())
    }

    fn parent(&mut self, raw: &[u8], parent: &[u8]) -> Result<DirRef> {
        self.dirs.get(parent).map_err(entry_err(raw, "open parent directory"))
    }

    fn file<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, n: &Names<'_>, meta: &Meta, sparse: bool) -> Result<()> {
        let dir = self.parent(n.raw, n.parent)?;
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mode = Mode::from_raw_mode(meta.mode & 0o777);
        let fd = self
            .create_or_replace(&dir, n.name, || rfs::openat(dir.fd(), n.name, flags, mode))
            .map_err(entry_err(n.raw, "create file"))?;
        let mut file = File::from(fd);
        let mut written = 0u64;
        loop {
            let len = entry.read(&mut self.buf).map_err(Error::ReadLayer)?;
            if len == 0 {
                break;
            }
            file.write_all(&self.buf[..len]).map_err(entry_err(n.raw, "write file"))?;
            written += len as u64;
        }
        // A stream cut short ends an entry early without an error from the parser.
        if !sparse && written != entry.size() {
            return Err(Error::ReadLayer(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("layer ends inside entry {:?}", lossy(n.raw)),
            )));
        }
        self.stats.size += written;
        if written >= WRITEBACK_MIN {
            start_writeback(&file);
        }
        self.set_fd_meta(file.as_fd(), n.raw, meta, &dir, false, true)?;
        rfs::futimens(&file, &meta.times).map_err(entry_err(n.raw, "set times"))
    }

    fn directory(&mut self, n: &Names<'_>, meta: &Meta) -> Result<()> {
        let dir = self.parent(n.raw, n.parent)?;
        let mode = Mode::from_raw_mode(meta.mode & 0o777);
        let fresh = match rfs::mkdirat(dir.fd(), n.name, mode) {
            Ok(()) => true,
            Err(Errno::EXIST) => {
                let st = rfs::statat(dir.fd(), n.name, AtFlags::SYMLINK_NOFOLLOW).map_err(entry_err(n.raw, "stat"))?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    false
                } else {
                    self.replace(&dir, n.name).map_err(entry_err(n.raw, "replace with directory"))?;
                    rfs::mkdirat(dir.fd(), n.name, mode).map_err(entry_err(n.raw, "create directory"))?;
                    true
                }
            }
            Err(e) => return Err(entry_err(n.raw, "create directory")(e)),
        };
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rfs::openat(dir.fd(), n.name, flags, Mode::empty()).map_err(entry_err(n.raw, "open directory"))?;
        self.set_fd_meta(fd.as_fd(), n.raw, meta, &dir, true, fresh)?;
        self.dir_times.push((n.path.to_vec(), meta.times.clone()));
        // Entries below this directory usually follow it.
        let inherit_gid = (meta.mode & libc::S_ISGID != 0).then_some(meta.gid);
        self.dirs.remember(n.path.to_vec(), DirRef { fd: Rc::new(fd), inherit_gid });
        Ok(())
    }

    fn symlink<R: Read>(&mut self, entry: &tar::Entry<'_, R>, n: &Names<'_>, meta: &Meta) -> Result<()> {
        let target = entry.link_name_bytes().ok_or_else(|| invalid(n.raw, "symlink without a target"))?;
        let dir = self.parent(n.raw, n.parent)?;
        self.create_or_replace(&dir, n.name, || rfs::symlinkat(target.as_ref(), dir.fd(), n.name))
            .map_err(entry_err(n.raw, "create symlink"))?;
        self.set_path_meta(n.raw, meta, &dir, n.name, None)
    }

    fn hardlink<R: Read>(&mut self, entry: &tar::Entry<'_, R>, n: &Names<'_>) -> Result<()> {
        let target_raw = entry.link_name_bytes().ok_or_else(|| invalid(n.raw, "hardlink without a target"))?;
        let target = clean_path(&target_raw)
            .ok_or_else(|| Error::LinkEscapes { entry: lossy(n.raw), target: lossy(&target_raw) })?;
        let Some((target_parent, target_name)) = split_last(&target) else {
            return Err(invalid(n.raw, "hardlink to the layer root"));
        };
        if target == n.path {
            return Ok(());
        }
        let target_dir = self.dirs.existing(target_parent).map_err(|e| Error::Entry {
            entry: lossy(n.raw),
            op: "open directory of hardlink target",
            source: e,
        })?;
        let dir = self.parent(n.raw, n.parent)?;
        // No AT_SYMLINK_FOLLOW: a symlink target is linked itself, never what it points to.
        self.create_or_replace(&dir, n.name, || {
            rfs::linkat(target_dir.fd(), target_name, dir.fd(), n.name, AtFlags::empty())
        })
        .map_err(entry_err(n.raw, "create hardlink"))
    }

    fn special<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        n: &Names<'_>,
        meta: &Meta,
        kind: EntryType,
    ) -> Result<()> {
        let device = || -> Result<u64> {
            let header = entry.header();
            let major = header.device_major().map_err(|_| invalid(n.raw, "bad device major field"))?.unwrap_or(0);
            let minor = header.device_minor().map_err(|_| invalid(n.raw, "bad device minor field"))?.unwrap_or(0);
            Ok(rfs::makedev(major, minor))
        };
        // Fifos have no device numbers; some writers leave the fields empty.
        let (file_type, dev) = match kind {
            EntryType::Char => (FileType::CharacterDevice, device()?),
            EntryType::Block => (FileType::BlockDevice, device()?),
            _ => (FileType::Fifo, 0),
        };
        let dir = self.parent(n.raw, n.parent)?;
        let mode = Mode::from_raw_mode(meta.mode & 0o777);
        self.create_or_replace(&dir, n.name, || rfs::mknodat(dir.fd(), n.name, file_type, mode, dev))
            .map_err(entry_err(n.raw, "create device node"))?;
        self.set_path_meta(n.raw, meta, &dir, n.name, Some(meta.mode))
    }

    fn whiteout(&mut self, raw: &[u8], parent: &[u8], hidden: &[u8], meta: &Meta) -> Result<()> {
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(invalid(raw, "whiteout names no file"));
        }
        if self.form == Form::Merged {
            // Nothing to delete below a directory that does not exist.
            let dir = match self.dirs.existing(parent) {
                Ok(dir) => dir,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => return Ok(()),
                Err(e) => return Err(entry_err(raw, "open parent directory")(e)),
            };
            return self.replace(&dir, hidden).map_err(entry_err(raw, "remove whited-out path"));
        }
        let dir = self.parent(raw, parent)?;
        self.create_or_replace(&dir, hidden, || {
            rfs::mknodat(dir.fd(), hidden, FileType::CharacterDevice, Mode::empty(), 0)
        })
        .map_err(entry_err(raw, "create whiteout"))?;
        if self.ids.owner_differs(meta, &dir) {
            rfs::chownat(dir.fd(), hidden, uid(meta), gid(meta), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(entry_err(raw, "chown whiteout"))?;
        }
        Ok(())
    }

    fn opaque(&mut self, raw: &[u8], parent: &[u8]) -> Result<()> {
        let dir = self.parent(raw, parent)?;
        match self.form {
            Form::Overlay => XattrTarget::Fd(dir.fd())
                .set(OVERLAY_OPAQUE_XATTR, b"y")
                .map_err(entry_err(raw, "mark directory opaque")),
            Form::Merged => {
                self.clear_lower_content(&dir, parent).map_err(entry_err(raw, "empty opaque directory"))?;
                self.dirs.forget();
                Ok(())
            }
        }
    }

    /// Removes everything below `dir` that this layer did not create itself.
    fn clear_lower_content(&self, dir: &DirRef, path: &[u8]) -> io::Result<()> {
        let mut stack = vec![(Dir::read_from(dir.fd())?, path.to_vec())];
        while let Some((listing, prefix)) = stack.last_mut() {
            let Some(child) = listing.read() else {
                stack.pop();
                continue;
            };
            let child = child?;
            let name = child.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let child_path = join(prefix, name.to_bytes());
            let fd = listing.fd()?;
            if !self.unpacked.contains(&child_path) {
                remove_at(fd, name)?;
            } else if child.file_type() == FileType::Directory {
                let child_dir = Dir::new(open_child_dir(fd, name)?)?;
                stack.push((child_dir, child_path));
            }
        }
        Ok(())
    }

    /// Owner, mode and xattrs through an open fd. `fresh`: created just now by us, so the owner
    /// and mode calls can be skipped when creation already gave the right ones.
    fn set_fd_meta(
        &self,
        fd: BorrowedFd<'_>,
        raw: &[u8],
        meta: &Meta,
        dir: &DirRef,
        is_dir: bool,
        fresh: bool,
    ) -> Result<()> {
        // Order matters: chown clears setuid/setgid and file capabilities, so mode and xattrs follow it.
        if !fresh || self.ids.owner_differs(meta, dir) {
            rfs::fchown(fd, uid(meta), gid(meta)).map_err(entry_err(raw, "chown"))?;
        }
        if !fresh || self.ids.mode_differs(meta, dir, is_dir) {
            rfs::fchmod(fd, Mode::from_raw_mode(meta.mode)).map_err(entry_err(raw, "chmod"))?;
        }
        set_xattrs(XattrTarget::Fd(fd), raw, &meta.xattrs)
    }

    /// Owner, mode (`None` for symlinks), xattrs and times of a just created non-file, by name
    /// in `dir` without following a symlink there.
    fn set_path_meta(&self, raw: &[u8], meta: &Meta, dir: &DirRef, name: &[u8], mode: Option<u32>) -> Result<()> {
        if self.ids.owner_differs(meta, dir) {
            rfs::chownat(dir.fd(), name, uid(meta), gid(meta), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(entry_err(raw, "chown"))?;
        }
        if let Some(mode) = mode.filter(|_| self.ids.mode_differs(meta, dir, false)) {
            // Not a symlink (we just made a device node or fifo here), so following is moot.
            rfs::chmodat(dir.fd(), name, Mode::from_raw_mode(mode), AtFlags::empty())
                .map_err(entry_err(raw, "chmod"))?;
        }
        if !meta.xattrs.is_empty() {
            let proc_path = fd_path(dir.fd(), name);
            set_xattrs(XattrTarget::Path(&proc_path), raw, &meta.xattrs)?;
        }
        rfs::utimensat(dir.fd(), name, &meta.times, AtFlags::SYMLINK_NOFOLLOW).map_err(entry_err(raw, "set times"))
    }

    fn finish(self) -> Result<ApplyStats> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        for (path, times) in self.dir_times.iter().rev() {
            let fd = match self.dirs.resolve(path, flags) {
                Ok(fd) => fd,
                // Replaced or removed by a later entry of the same layer.
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                Err(e) => return Err(entry_err(path, "open directory")(e)),
            };
            rfs::futimens(&fd, times).map_err(entry_err(path, "set times"))?;
        }
        Ok(self.stats)
    }
}

fn set_xattrs(target: XattrTarget<'_>, raw: &[u8], xattrs: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
    for (name, value) in xattrs {
        match target.set(name, value) {
            Ok(()) => {}
            // As docker does: a filesystem without xattrs, or user.* on a symlink, loses them.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EPERM)) => {
                tracing::debug!(entry = %lossy(raw), xattr = %lossy(name), error = %e, "xattr not applied");
            }
            Err(e) => return Err(Error::Entry { entry: lossy(raw), op: "set xattr", source: e }),
        }
    }
    Ok(())
}

/// Reads mode, owner, times and xattrs; PAX records override the header.
fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, raw: &[u8]) -> Result<Meta> {
    let header = entry.header();
    let mode = header.mode().map_err(|_| invalid(raw, "bad mode field"))? & 0o7777;
    let uid = header.uid().ok().and_then(|v| u32::try_from(v).ok()).ok_or_else(|| invalid(raw, "bad uid"))?;
    let gid = header.gid().ok().and_then(|v| u32::try_from(v).ok()).ok_or_else(|| invalid(raw, "bad gid"))?;
    let secs = header.mtime().map_err(|_| invalid(raw, "bad mtime field"))?;
    let mut mtime = Timespec { tv_sec: i64::try_from(secs).unwrap_or(i64::MAX), tv_nsec: 0 };
    let mut atime = None;
    let mut xattrs = Vec::new();
    if let Some(records) = entry.pax_extensions().map_err(Error::ReadLayer)? {
        for record in records {
            let record = record.map_err(Error::ReadLayer)?;
            let key = record.key_bytes();
            if key == b"mtime" {
                mtime = parse_pax_time(record.value_bytes()).ok_or_else(|| invalid(raw, "bad PAX mtime"))?;
            } else if key == b"atime" {
                atime = Some(parse_pax_time(record.value_bytes()).ok_or_else(|| invalid(raw, "bad PAX atime"))?);
            } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                // Overlay's own attributes (opaque, redirect, metacopy, origin) would let a layer
                // steer the overlay: only whiteout entries may set them.
                if !name.starts_with(b"trusted.overlay.") && !name.starts_with(b"user.overlay.") {
                    xattrs.push((name.to_vec(), record.value_bytes().to_vec()));
                }
            }
        }
    }
    let times = Timestamps { last_access: atime.unwrap_or(mtime), last_modification: mtime };
    Ok(Meta { mode, uid, gid, times, xattrs })
}

/// Parses a PAX time, `<seconds>[.<fraction>]`, possibly negative.
fn parse_pax_time(value: &[u8]) -> Option<Timespec> {
    let text = std::str::from_utf8(value).ok()?;
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (secs, fraction) = text.split_once('.').unwrap_or((text, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let mut nanos = 0i64;
    for i in 0..9 {
        nanos = nanos * 10 + fraction.as_bytes().get(i).map_or(0, |d| i64::from(d - b'0'));
    }
    Some(match (negative, nanos) {
        (false, _) => Timespec { tv_sec: secs, tv_nsec: nanos },
        (true, 0) => Timespec { tv_sec: -secs, tv_nsec: 0 },
        (true, _) => Timespec { tv_sec: -secs - 1, tv_nsec: 1_000_000_000 - nanos },
    })
}

/// Cleans an entry name: drops a leading `/`, `.` and empty components, applies `..`.
/// `None` when a `..` would leave the root.
fn clean_path(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    for component in raw.split(|b| *b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                if out.is_empty() {
                    return None;
                }
                let cut = out.iter().rposition(|b| *b == b'/').unwrap_or(0);
                out.truncate(cut);
            }
            name => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(name);
            }
        }
    }
    Some(out)
}

/// Splits a cleaned path into parent and final name; `None` for the root.
fn split_last(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if path.is_empty() {
        return None;
    }
    Some(match path.iter().rposition(|b| *b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    })
}

fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = Vec::with_capacity(parent.len() + 1 + name.len());
    path.extend_from_slice(parent);
    if !parent.is_empty() {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

fn c_name(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

fn uid(meta: &Meta) -> Option<Uid> {
    Some(Uid::from_raw(meta.uid))
}

fn gid(meta: &Meta) -> Option<Gid> {
    Some(Gid::from_raw(meta.gid))
}

fn lossy(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

fn invalid(raw: &[u8], reason: &str) -> Error {
    Error::InvalidEntry { entry: lossy(raw), reason: reason.to_owned() }
}

fn entry_err<'a, E: Into<io::Error>>(raw: &'a [u8], op: &'static str) -> impl FnOnce(E) -> Error + 'a {
    move |e| Error::Entry { entry: lossy(raw), op, source: e.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_path_strips_and_rejects() {
        assert_eq!(clean_path(b"./a/b/").as_deref(), Some(&b"a/b"[..]));
        assert_eq!(clean_path(b"/a//./b").as_deref(), Some(&b"a/b"[..]));
        assert_eq!(clean_path(b"a/../b").as_deref(), Some(&b"b"[..]));
        assert_eq!(clean_path(b"./").as_deref(), Some(&b""[..]));
        assert_eq!(clean_path(b".wh.../../x").as_deref(), Some(&b"x"[..]));
        assert_eq!(clean_path(b"../../escape"), None);
        assert_eq!(clean_path(b"/abs/../../escape"), None);
        assert_eq!(clean_path(b"a/../../escape"), None);
        assert_eq!(clean_path(b"dir/../../.wh.x"), None);
    }

    #[test]
    fn pax_times() {
        let t = parse_pax_time(b"1700000000.123456789").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 123_456_789));
        let t = parse_pax_time(b"5.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (5, 500_000_000));
        let t = parse_pax_time(b"-1.25").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 750_000_000));
        let t = parse_pax_time(b"42").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (42, 0));
        assert!(parse_pax_time(b"").is_none());
        assert!(parse_pax_time(b"1.x").is_none());
        assert!(parse_pax_time(b"+1").is_none());
    }
}

/// Files at least this big get their writeback started as soon as they are written, so the
/// caller's final `syncfs` overlaps with unpacking instead of following it.
const WRITEBACK_MIN: u64 = 64 << 10;

fn start_writeback(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range only reads the fd and integer arguments; a failure is harmless
    // (the caller's syncfs still makes the data durable).
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}
