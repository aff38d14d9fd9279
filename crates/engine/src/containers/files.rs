//! A container's files: stat, archive and extract of a path (`docker cp`), export of the
//! whole filesystem, and the changes of its writable layer (`docker diff`).
//!
//! Paths come from clients and name things in a filesystem the container controls. Each
//! one is resolved with openat2(RESOLVE_IN_ROOT) from the container's root, or from the
//! source of the volume or bind mount it falls under, and all I/O goes through the
//! resulting descriptors with *at calls that never follow a symlink: a symlink the
//! container planted, absolute or full of `..`, cannot lead outside its filesystem, and
//! nothing from the container ever runs. Names follow docker: the last component of a path
//! is not followed for stat and archive, it is for extract; `..` is cleaned lexically
//! first. A stopped container is mounted for the operation and unmounted after; the
//! container's lifecycle lock is held throughout, so a start cannot race that mount.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bollard_stubs::models::MountPointTypeEnum;
use bytes::{Bytes, BytesMut};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat, Timespec, Timestamps};
use rustix::io::Errno;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::record::{format_time, Status};
use super::{Container, Containers};
use crate::error::{Error, Result};

/// A tar stream for an HTTP body: chunks, and an error item if writing fails midway.
pub type TarStream = mpsc::Receiver<io::Result<Bytes>>;

/// Symlinks followed in one path before giving up (the kernel's limit).
const MAX_LINKS: usize = 40;
/// Size of the chunks a tar stream is sent in.
const CHUNK: usize = 64 * 1024;
const OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";

/// A path's stat, as docker's `X-Docker-Container-Path-Stat` header carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go's `os.FileMode`: permission bits plus Go's type bits.
    pub mode: u32,
    /// RFC 3339 with nanoseconds.
    pub mtime: String,
    /// For a symlink: its target fully resolved inside the container, as an absolute path.
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// How an archive is extracted into a container.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractOptions {
    /// Refuse to replace a directory by a non-directory or the reverse.
    pub no_overwrite_dir_non_dir: bool,
    /// Give everything the container user's uid and gid instead of the archive's.
    pub copy_uid_gid: bool,
}

/// What happened to a path, with docker's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Modified = 0,
    Added = 1,
    Deleted = 2,
}

impl Serialize for ChangeKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_u8(*self as u8)
    }
}

/// One line of `docker diff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    #[serde(rename = "Path")]
    pub path: String,
    #[serde(rename = "Kind")]
    pub kind: ChangeKind,
}

impl Containers {
    /// Stats `path` in the container (the last component is not followed).
    pub async fn stat_path(&self, name_or_id: &str, path: &str) -> Result<PathStat> {
        let c = self.get(name_or_id)?;
        let (path, name) = (path.to_string(), name_or_id.to_string());
        in_view(c, move |view| view.stat(&path).map_err(|e| path_error(e, &path, &name))).await
    }

    /// A tar of the file or directory at `path`, named as docker names it, with its stat.
    /// The container stays locked (and mounted, when stopped) until the stream ends.
    pub async fn archive_path(&self, name_or_id: &str, path: &str) -> Result<(PathStat, TarStream)> {
        let c = self.get(name_or_id)?;
        let (owned, name) = (path.to_string(), name_or_id.to_string());
        let streamed = stream(c.clone(), move |view, ready, out| {
            let path = owned;
            let resource = view.resource(&path).map_err(|e| path_error(e, &path, &name))?;
            let stat = view.path_stat(&path, &resource).map_err(|e| path_error(e, &path, &name))?;
            let base = stat.name.clone();
            if let Some(ready) = ready.take() {
                let _ = ready.send(Ok(stat));
            }
            view.archive(&resource, &base, out).map_err(|e| Error::io("archive", &path)(e))
        })
        .await?;
        self.publish(&c, "archive-path", &[]);
        Ok(streamed)
    }

    /// Extracts the tar `archive` into the directory `path` of the container (symlinks
    /// followed, the last one too), as `docker cp` does. Entries that would leave that
    /// directory are refused; every file is written under a temporary name and renamed
    /// into place, so a broken stream leaves no half-written file behind.
    pub async fn extract_archive(&self, name_or_id: &str, path: &str, options: ExtractOptions, archive: impl Read + Send + 'static) -> Result<()> {
        let c = self.get(name_or_id)?;
        let (owned, name) = (path.to_string(), name_or_id.to_string());
        let record = c.record();
        in_view(c.clone(), move |view| {
            let path = owned;
            let dest = view.extraction_dir(&path).map_err(|e| match e {
                Found::Missing(e) => path_error(e, &path, &name),
                Found::Refused(e) => e,
            })?;
            let owner = match record.config.user.as_deref().filter(|u| options.copy_uid_gid && !u.is_empty()) {
                Some(user) => {
                    let root = PathBuf::from(format!("/proc/self/fd/{}", view.root.as_raw_fd()));
                    let user = berth_spec::resolve_user(&root, user, &[]).map_err(|e| Error::InvalidArgument(e.to_string()))?;
                    Some((user.uid, user.gid))
                }
                None => None,
            };
            let mut extractor = Extractor::new(dest, &path, options, owner);
            extractor.run(archive)
        })
        .await?;
        self.publish(&c, "extract-to-dir", &[]);
        Ok(())
    }

    /// The container's whole filesystem (its image layers and writable layer, without
    /// volumes) as a tar, streamed.
    pub async fn export(&self, name_or_id: &str) -> Result<TarStream> {
        let c = self.get(name_or_id)?;
        let ((), stream) = stream(c.clone(), |view, ready, out| {
            if let Some(ready) = ready.take() {
                let _ = ready.send(Ok(()));
            }
            let root = PathBuf::from(format!("/proc/self/fd/{}", view.root.as_raw_fd()));
            berth_snapshot::write_tree(&root, out)?;
            Ok(())
        })
        .await?;
        self.publish(&c, "export", &[]);
        Ok(stream)
    }

    /// What the container changed, from its writable layer: whiteouts are deletions, a
    /// path the image has is a modification, anything else an addition; a directory that
    /// holds a change is modified too. Sorted by path.
    pub async fn changes(&self, name_or_id: &str) -> Result<Vec<FileChange>> {
        let c = self.get(name_or_id)?;
        let record = c.record();
        let upper = c.dir.join("rw/upper");
        tokio::task::spawn_blocking(move || changes(&upper, &record.layers))
            .await
            .map_err(|e| Error::Internal(format!("changes task: {e}")))?
    }
}

/// Runs `f` on a blocking thread with the container's filesystem at hand, holding its
/// lifecycle lock.
async fn in_view<T: Send + 'static>(c: Arc<Container>, f: impl FnOnce(&View) -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(move || {
        let _guard = c.lifecycle.blocking_lock();
        let view = View::open(&c)?;
        f(&view)
    })
    .await
    .map_err(|e| Error::Internal(format!("file task: {e}")))?
}

/// Like [`in_view`] for a streamed answer: `f` sends its head (the stat) through `ready`
/// and then writes the body. An error before the head is the call's error; one after it
/// ends the stream with an error item.
async fn stream<H, F>(c: Arc<Container>, f: F) -> Result<(H, TarStream)>
where
    H: Send + 'static,
    F: FnOnce(&View, &mut Option<oneshot::Sender<Result<H>>>, &mut ChunkWriter) -> Result<()> + Send + 'static,
{
    let (ready_tx, ready_rx) = oneshot::channel();
    let (tx, rx) = mpsc::channel(16);
    tokio::task::spawn_blocking(move || {
        let mut ready = Some(ready_tx);
        let mut out = ChunkWriter { tx: tx.clone(), buf: BytesMut::with_capacity(CHUNK) };
        let result = (|| {
            let _guard = c.lifecycle.blocking_lock();
            let view = View::open(&c)?;
            f(&view, &mut ready, &mut out)?;
            out.flush().map_err(Error::io("send", "archive"))
        })();
        if let Err(e) = result {
            match ready.take() {
                Some(ready) => {
                    let _ = ready.send(Err(e));
                }
                None => {
                    tracing::debug!(container = %c.id, error = %e, "archive stream ended early");
                    let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
                }
            }
        }
    });
    let head = ready_rx.await.map_err(|_| Error::Internal("file task ended without an answer".into()))??;
    Ok((head, rx))
}

/// Writes into a channel of chunks, from a blocking thread.
struct ChunkWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: BytesMut,
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.tx.blocking_send(Ok(chunk)).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

/// docker's answers for a path that cannot be used.
fn path_error(e: io::Error, path: &str, container: &str) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOENT) => Error::NotFound(format!("Could not find the file {path} in container {container}")),
        Some(libc::ENOTDIR) => Error::InvalidArgument(format!("lstat {path}: not a directory")),
        Some(libc::ELOOP) => Error::InvalidArgument(format!("lstat {path}: too many levels of symbolic links")),
        _ => Error::Io { op: "access", path: PathBuf::from(path), source: e },
    }
}

/// Why an extraction directory could not be had: the path does not lead to one, or the
/// copy is not allowed there.
enum Found {
    Missing(io::Error),
    Refused(Error),
}

/// A path as components without `.`, `..` or empty names: docker cleans `..` lexically,
/// before anything is resolved, and never above the root.
fn components(path: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for part in path.as_bytes().split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            name => out.push(name.to_vec()),
        }
    }
    out
}

/// docker's absolute form of a user path: cleaned, keeping a trailing `/` or `/.`.
fn absolute(path: &str) -> String {
    let comps = components(path);
    let mut abs = String::from("/");
    abs.push_str(&comps.iter().map(|c| String::from_utf8_lossy(c)).collect::<Vec<_>>().join("/"));
    let last = path.rsplit('/').next().unwrap_or("");
    if last == "." && !abs.ends_with("/.") {
        if !abs.ends_with('/') {
            abs.push('/');
        }
        abs.push('.');
    } else if path.ends_with('/') && !abs.ends_with('/') {
        abs.push('/');
    }
    abs
}

/// Go's `filepath.Base`: the last element, `/` for the root.
fn go_base(abs: &str) -> String {
    let trimmed = abs.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".into();
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}

fn show_path(comps: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for c in comps {
        out.push('/');
        out.push_str(&String::from_utf8_lossy(c));
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn c_name(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    comps.join(&b'/')
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
}

fn in_root() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Go's `os.FileMode` of a stat.
fn go_mode(st: &Stat) -> u32 {
    let mut mode = st.st_mode & 0o777;
    mode |= match file_type(st) {
        FileType::Directory => 1 << 31,
        FileType::Symlink => 1 << 27,
        FileType::BlockDevice => 1 << 26,
        FileType::CharacterDevice => (1 << 26) | (1 << 21),
        FileType::Fifo => 1 << 25,
        FileType::Socket => 1 << 24,
        _ => 0,
    };
    if st.st_mode & libc::S_ISUID != 0 {
        mode |= 1 << 23;
    }
    if st.st_mode & libc::S_ISGID != 0 {
        mode |= 1 << 22;
    }
    if st.st_mode & libc::S_ISVTX != 0 {
        mode |= 1 << 20;
    }
    mode
}

/// A volume or bind mount of the container, by where it shows inside.
struct Mounted {
    dest: Vec<Vec<u8>>,
    source: PathBuf,
    rw: bool,
}

/// The thing a path names: `name` in `dir`, or `dir` itself.
struct Resource {
    dir: OwnedFd,
    name: Option<CString>,
    stat: Stat,
    /// Its container path, components resolved.
    path: Vec<Vec<u8>>,
}

/// The container's filesystem for one operation: its root, and its volumes and binds.
struct View {
    root: OwnedFd,
    mounts: Vec<Mounted>,
    readonly_rootfs: bool,
    /// Declared last: dropped after `root` is closed.
    _mounted: TemporaryMount,
}

/// The root this operation mounted (the container was stopped); unmounted on drop.
struct TemporaryMount(Option<PathBuf>);

impl Drop for TemporaryMount {
    fn drop(&mut self) {
        if let Some(rootfs) = &self.0 {
            if let Err(e) = berth_snapshot::unmount(rootfs) {
                tracing::warn!("unmounting {}: {e}", rootfs.display());
            }
        }
    }
}

impl View {
    /// Opens the root of a container whose lifecycle lock the caller holds: the mounted
    /// root of a running one, else a mount made now.
    fn open(c: &Container) -> Result<View> {
        let record = c.record();
        if matches!(record.state.status, Status::Removing | Status::Dead) {
            return Err(Error::Conflict(format!("container {} is {}", c.id, record.state.status.as_str())));
        }
        let rootfs = c.rootfs();
        let mut mounted = TemporaryMount(None);
        if !(c.status().is_live() && is_mount_point(&rootfs, &c.dir)) {
            // Exiting right now: wait until the exit is recorded (it unmounts first).
            for _ in 0..100 {
                if !c.status().is_live() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            if c.status().is_live() {
                return Err(Error::Conflict(format!("container {} is running but its root filesystem is not mounted", c.id)));
            }
            let _ = berth_snapshot::unmount(&rootfs);
            let (upper, work) = (c.dir.join("rw/upper"), c.dir.join("rw/work"));
            berth_snapshot::mount_overlay(&record.layers, Some((&upper, &work)), &rootfs)?;
            mounted.0 = Some(rootfs.clone());
        }
        let root = rfs::open(&rootfs, dir_flags(), Mode::empty()).map_err(|e| Error::io("open", &rootfs)(e.into()))?;
        let mut mounts = Vec::new();
        for m in &record.mounts {
            if !matches!(m.typ, Some(MountPointTypeEnum::VOLUME | MountPointTypeEnum::BIND)) {
                continue;
            }
            let (Some(source), Some(dest)) = (m.source.as_deref().filter(|s| !s.is_empty()), m.destination.as_deref()) else { continue };
            mounts.push(Mounted { dest: components(dest), source: PathBuf::from(source), rw: m.rw.unwrap_or(true) });
        }
        // The innermost mount first.
        mounts.sort_by_key(|m| std::cmp::Reverse(m.dest.len()));
        Ok(View { root, mounts, readonly_rootfs: record.host_config.readonly_rootfs.unwrap_or(false), _mounted: mounted })
    }

    /// The mount whose destination holds `comps`, and what is left of `comps` inside it.
    fn mount_of<'a>(&self, comps: &'a [Vec<u8>]) -> Option<(&Mounted, &'a [Vec<u8>])> {
        self.mounts.iter().find(|m| comps.starts_with(&m.dest)).map(|m| (m, &comps[m.dest.len()..]))
    }

    /// Opens the directory at `comps` (a container path), resolved inside the container's
    /// root or inside the source of the mount it falls under.
    fn open_dir(&self, comps: &[Vec<u8>]) -> io::Result<OwnedFd> {
        let (base, rest) = match self.mount_of(comps) {
            Some((m, rest)) => (rfs::open(&m.source, dir_flags(), Mode::empty())?, rest),
            None => (self.root.try_clone()?, comps),
        };
        if rest.is_empty() {
            return Ok(base);
        }
        Ok(rfs::openat2(&base, join(rest), dir_flags(), Mode::empty(), in_root())?)
    }

    /// The container path `path` leads to with every symlink (the last one too when
    /// `follow_last`) followed inside the container, as docker's FollowSymlinkInScope.
    /// Only names come out of this; the I/O that follows resolves them in the root again.
    fn canonical(&self, path: &[Vec<u8>], follow_last: bool) -> io::Result<Vec<Vec<u8>>> {
        let mut done: Vec<Vec<u8>> = Vec::new();
        let mut todo: VecDeque<Vec<u8>> = path.iter().cloned().collect();
        let mut links = 0;
        while let Some(name) = todo.pop_front() {
            if name == b".." {
                done.pop();
                continue;
            }
            if name == b"." || name.is_empty() {
                continue;
            }
            let mut full = done.clone();
            full.push(name.clone());
            let is_mount = self.mounts.iter().any(|m| m.dest == full);
            if !is_mount && (follow_last || !todo.is_empty()) {
                if let Ok(dir) = self.open_dir(&done) {
                    if let Ok(st) = rfs::statat(&dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                        if file_type(&st) == FileType::Symlink {
                            links += 1;
                            if links > MAX_LINKS {
                                return Err(Errno::LOOP.into());
                            }
                            let target = rfs::readlinkat(&dir, name.as_slice(), Vec::new())?;
                            let target = target.as_bytes();
                            if target.starts_with(b"/") {
                                done.clear();
                            }
                            for part in target.split(|b| *b == b'/').rev() {
                                todo.push_front(part.to_vec());
                            }
                            continue;
                        }
                    }
                }
            }
            done.push(name);
        }
        Ok(done)
    }

    /// The file, directory or link `path` names, as docker's stat and archive see it: the
    /// directory part resolved, the last component not followed.
    fn resource(&self, path: &str) -> io::Result<Resource> {
        let abs = absolute(path);
        let (dir_part, base) = abs.rsplit_once('/').unwrap_or(("", &abs));
        let dir = self.canonical(&components(dir_part), true)?;
        if base.is_empty() || base == "." {
            let fd = self.open_dir(&dir)?;
            let stat = rfs::fstat(&fd)?;
            return Ok(Resource { dir: fd, name: None, stat, path: dir });
        }
        let mut full = dir.clone();
        full.push(base.as_bytes().to_vec());
        if let Some(m) = self.mounts.iter().find(|m| m.dest == full) {
            // A mount point shows its source: a directory, or a file bound over a file.
            return match rfs::open(&m.source, dir_flags(), Mode::empty()) {
                Ok(fd) => {
                    let stat = rfs::fstat(&fd)?;
                    Ok(Resource { dir: fd, name: None, stat, path: full })
                }
                Err(Errno::NOTDIR) => {
                    let parent = m.source.parent().unwrap_or(Path::new("/"));
                    let name = c_name(m.source.file_name().map(|n| n.as_bytes()).unwrap_or_default())?;
                    let fd = rfs::open(parent, dir_flags(), Mode::empty())?;
                    let stat = rfs::statat(&fd, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)?;
                    Ok(Resource { dir: fd, name: Some(name), stat, path: full })
                }
                Err(e) => Err(e.into()),
            };
        }
        let fd = self.open_dir(&dir)?;
        let name = c_name(base.as_bytes())?;
        let stat = rfs::statat(&fd, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(Resource { dir: fd, name: Some(name), stat, path: full })
    }

    fn stat(&self, path: &str) -> io::Result<PathStat> {
        let resource = self.resource(path)?;
        self.path_stat(path, &resource)
    }

    fn path_stat(&self, path: &str, resource: &Resource) -> io::Result<PathStat> {
        let st = &resource.stat;
        let link_target = if file_type(st) == FileType::Symlink { show_path(&self.canonical(&resource.path, true)?) } else { String::new() };
        let nanos = i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec);
        Ok(PathStat { name: go_base(&absolute(path)), size: st.st_size, mode: go_mode(st), mtime: format_time(nanos), link_target })
    }

    /// Writes `resource` as a tar whose entries start with `base`: a directory's entries
    /// are `base/` and everything below it, anything else is the one entry `base`.
    fn archive(&self, resource: &Resource, base: &str, out: &mut ChunkWriter) -> io::Result<()> {
        let mut tar = TarWriter { out, links: HashMap::new() };
        let name: &CStr = resource.name.as_deref().unwrap_or(c".");
        if file_type(&resource.stat) != FileType::Directory {
            tar.entry(resource.dir.as_fd(), name, &resource.stat, base.as_bytes())?;
            return tar.finish();
        }
        let prefix = if base == "/" { b"/".to_vec() } else { format!("{base}/").into_bytes() };
        let top = match &resource.name {
            Some(name) => rfs::openat(&resource.dir, name.as_c_str(), dir_flags() | OFlags::NOFOLLOW, Mode::empty())?,
            None => resource.dir.try_clone()?,
        };
        tar.dir_header(&resource.stat, &prefix)?;
        // Depth first, names in byte order; a mount point below shows its source.
        let mut stack = vec![Level::read(top, prefix, resource.path.clone())?];
        while let Some(level) = stack.last_mut() {
            let Some(name) = level.names.pop() else {
                stack.pop();
                continue;
            };
            let mut path = level.path.clone();
            path.push(name.to_bytes().to_vec());
            let mut archive_name = level.prefix.clone();
            archive_name.extend_from_slice(name.to_bytes());
            let (dir, name) = match self.mounts.iter().find(|m| m.dest == path) {
                Some(m) => match rfs::open(&m.source, dir_flags(), Mode::empty()) {
                    Ok(fd) => (fd, CString::from(c".")),
                    Err(_) => {
                        let parent = m.source.parent().unwrap_or(Path::new("/"));
                        (rfs::open(parent, dir_flags(), Mode::empty())?, c_name(m.source.file_name().map(|n| n.as_bytes()).unwrap_or_default())?)
                    }
                },
                None => (level.dir.try_clone()?, name),
            };
            let st = match rfs::statat(&dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // Removed while we walk: not in the archive.
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            };
            if file_type(&st) == FileType::Directory {
                archive_name.push(b'/');
                tar.dir_header(&st, &archive_name)?;
                let child = if name.as_c_str() == c"." { dir } else { rfs::openat(&dir, name.as_c_str(), dir_flags() | OFlags::NOFOLLOW, Mode::empty())? };
                stack.push(Level::read(child, archive_name, path)?);
            } else {
                tar.entry(dir.as_fd(), name.as_c_str(), &st, &archive_name)?;
            }
        }
        tar.finish()
    }

    /// The directory `path` leads to (every symlink followed), checked as a place to
    /// extract into.
    fn extraction_dir(&self, path: &str) -> std::result::Result<OwnedFd, Found> {
        let comps = self.canonical(&components(&absolute(path)), true).map_err(Found::Missing)?;
        let fd = match self.open_dir(&comps) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                // docker's answer when the path itself is a file.
                let is_file = comps.split_last().is_some_and(|(name, parent)| {
                    self.open_dir(parent).is_ok_and(|dir| rfs::statat(&dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW).is_ok())
                });
                if is_file {
                    return Err(Found::Refused(Error::InvalidArgument("extraction point is not a directory".into())));
                }
                return Err(Found::Missing(e));
            }
            Err(e) => return Err(Found::Missing(e)),
        };
        match self.mount_of(&comps) {
            Some((m, _)) if !m.rw => Err(Found::Refused(Error::InvalidArgument("mounted volume is marked read-only".into()))),
            None if self.readonly_rootfs => Err(Found::Refused(Error::InvalidArgument("container rootfs is marked read-only".into()))),
            _ => Ok(fd),
        }
    }
}

/// Whether `path` is a mount point: another device than its parent directory.
fn is_mount_point(path: &Path, parent: &Path) -> bool {
    match (rfs::stat(path), rfs::stat(parent)) {
        (Ok(a), Ok(b)) => a.st_dev != b.st_dev,
        _ => false,
    }
}

/// A directory being archived: its names left, sorted so that `pop` gives byte order.
struct Level {
    dir: OwnedFd,
    prefix: Vec<u8>,
    path: Vec<Vec<u8>>,
    names: Vec<CString>,
}

impl Level {
    fn read(dir: OwnedFd, prefix: Vec<u8>, path: Vec<Vec<u8>>) -> io::Result<Level> {
        let mut names = Vec::new();
        let mut entries = rfs::Dir::read_from(&dir)?;
        while let Some(entry) = entries.read() {
            let entry = entry?;
            let name = entry.file_name();
            if name != c"." && name != c".." {
                names.push(name.to_owned());
            }
        }
        names.sort_unstable_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
        Ok(Level { dir, prefix, path, names })
    }
}

/// A tar writer that takes names as bytes as they are (docker writes `/`-rooted names for
/// the root directory), with GNU long-name entries where they do not fit.
struct TarWriter<'a> {
    out: &'a mut ChunkWriter,
    /// First name of each file with more than one link.
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl TarWriter<'_> {
    fn entry(&mut self, dir: BorrowedFd<'_>, name: &CStr, st: &Stat, archive_name: &[u8]) -> io::Result<()> {
        let kind = file_type(st);
        if matches!(kind, FileType::Socket | FileType::Unknown) {
            return Ok(());
        }
        if kind != FileType::Directory && st.st_nlink > 1 {
            if let Some(first) = self.links.get(&(st.st_dev, st.st_ino)).cloned() {
                let mut header = self.base_header(st, tar::EntryType::Link);
                self.long(&first, tar::EntryType::GNULongLink)?;
                set_name(&mut header, &first, true);
                return self.write(header, archive_name, io::empty());
            }
            self.links.insert((st.st_dev, st.st_ino), archive_name.to_vec());
        }
        match kind {
            FileType::RegularFile => {
                // Non-blocking, then checked: a fifo swapped in meanwhile must not hang the read.
                let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
                let file = File::from(rfs::openat(dir, name, flags, Mode::empty())?);
                let opened = rfs::fstat(&file)?;
                if file_type(&opened) != FileType::RegularFile || opened.st_ino != st.st_ino || opened.st_dev != st.st_dev {
                    return Err(io::Error::other(format!("{} changed while being archived", String::from_utf8_lossy(archive_name))));
                }
                let size = u64::try_from(st.st_size).unwrap_or(0);
                let mut header = self.base_header(st, tar::EntryType::Regular);
                header.set_size(size);
                self.write(header, archive_name, Exact { inner: file, left: size })
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(dir, name, Vec::new())?;
                let mut header = self.base_header(st, tar::EntryType::Symlink);
                self.long(target.as_bytes(), tar::EntryType::GNULongLink)?;
                set_name(&mut header, target.as_bytes(), true);
                self.write(header, archive_name, io::empty())
            }
            FileType::Directory => self.dir_header(st, archive_name),
            _ => {
                let (entry_type, rdev) = match kind {
                    FileType::CharacterDevice => (tar::EntryType::Char, st.st_rdev),
                    FileType::BlockDevice => (tar::EntryType::Block, st.st_rdev),
                    _ => (tar::EntryType::Fifo, 0),
                };
                let mut header = self.base_header(st, entry_type);
                header.set_device_major(rfs::major(rdev))?;
                header.set_device_minor(rfs::minor(rdev))?;
                self.write(header, archive_name, io::empty())
            }
        }
    }

    fn dir_header(&mut self, st: &Stat, archive_name: &[u8]) -> io::Result<()> {
        let header = self.base_header(st, tar::EntryType::Directory);
        self.write(header, archive_name, io::empty())
    }

    fn base_header(&self, st: &Stat, kind: tar::EntryType) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(st.st_mode & 0o7777);
        header.set_uid(u64::from(st.st_uid));
        header.set_gid(u64::from(st.st_gid));
        header.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
        header.set_size(0);
        header
    }

    /// A GNU long-name (or long-link) entry when `name` does not fit the header.
    fn long(&mut self, name: &[u8], kind: tar::EntryType) -> io::Result<()> {
        if name.len() <= 100 {
            return Ok(());
        }
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        set_name(&mut header, b"././@LongLink", false);
        header.set_size(name.len() as u64 + 1);
        header.set_mode(0o644);
        header.set_cksum();
        let mut data = name.to_vec();
        data.push(0);
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(&data)?;
        pad(self.out, data.len() as u64)
    }

    fn write(&mut self, mut header: tar::Header, name: &[u8], mut data: impl Read) -> io::Result<()> {
        self.long(name, tar::EntryType::GNULongName)?;
        set_name(&mut header, name, false);
        header.set_cksum();
        self.out.write_all(header.as_bytes())?;
        let size = header.size()?;
        let copied = io::copy(&mut data, self.out)?;
        if copied != size {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being archived"));
        }
        pad(self.out, size)
    }

    fn finish(self) -> io::Result<()> {
        self.out.write_all(&[0; 1024])
    }
}

/// Puts `name` (cut to what fits; a long-name entry carries the rest) in the header's name
/// or link name field.
fn set_name(header: &mut tar::Header, name: &[u8], link: bool) {
    let old = header.as_old_mut();
    let field: &mut [u8; 100] = if link { &mut old.linkname } else { &mut old.name };
    field.fill(0);
    let n = name.len().min(100);
    field[..n].copy_from_slice(&name[..n]);
}

fn pad(out: &mut impl Write, size: u64) -> io::Result<()> {
    let rest = (512 - size % 512) % 512;
    out.write_all(&[0; 512][..rest as usize])
}

/// Reads exactly `left` bytes, stopping there if the file grew.
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
        self.left -= n as u64;
        Ok(n)
    }
}

/// Unpacks a `docker cp` tar into one directory, never outside it: names are cleaned and
/// refused when their `..` would leave it, parents are resolved with RESOLVE_IN_ROOT from
/// it (a symlink in the archive or the container cannot lead out), and the last component
/// is created with *at calls that do not follow symlinks.
struct Extractor<'a> {
    dest: OwnedFd,
    dest_name: &'a str,
    options: ExtractOptions,
    owner: Option<(u32, u32)>,
    /// The last parent directory used: entries come grouped by directory.
    cached: Option<(Vec<Vec<u8>>, Arc<OwnedFd>)>,
    /// Directory times, set once nothing below them changes any more.
    dir_times: Vec<(Vec<Vec<u8>>, u64)>,
}

fn bad_archive(e: io::Error) -> Error {
    Error::InvalidArgument(format!("invalid tar archive: {e}"))
}

impl<'a> Extractor<'a> {
    fn new(dest: OwnedFd, dest_name: &'a str, options: ExtractOptions, owner: Option<(u32, u32)>) -> Extractor<'a> {
        Extractor { dest, dest_name, options, owner, cached: None, dir_times: Vec::new() }
    }

    fn run(&mut self, archive: impl Read) -> Result<()> {
        let mut archive = tar::Archive::new(io::BufReader::with_capacity(256 * 1024, archive));
        for entry in archive.entries().map_err(bad_archive)? {
            let mut entry = entry.map_err(bad_archive)?;
            self.entry(&mut entry)?;
        }
        for (path, mtime) in self.dir_times.iter().rev() {
            let times = timestamps(*mtime);
            let dir = match path.split_last() {
                Some((name, parent)) => self.open_in_dest(parent).and_then(|d| Ok(rfs::utimensat(&d, name.as_slice(), &times, AtFlags::SYMLINK_NOFOLLOW)?)),
                None => Ok(()),
            };
            if let Err(e) = dir {
                tracing::debug!("setting times of {}: {e}", show_path(path));
            }
        }
        Ok(())
    }

    fn err(&self, entry: &[u8], op: &'static str) -> impl FnOnce(io::Error) -> Error + '_ {
        let path = format!("{}/{}", self.dest_name.trim_end_matches('/'), String::from_utf8_lossy(entry));
        move |source| Error::Io { op, path: PathBuf::from(path), source }
    }

    /// An archive name as components inside the destination; `None` when it leaves it.
    fn clean(raw: &[u8]) -> Option<Vec<Vec<u8>>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        for part in raw.split(|b| *b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    out.pop()?;
                }
                name => out.push(name.to_vec()),
            }
        }
        Some(out)
    }

    fn outside(&self, raw: &[u8]) -> Error {
        Error::InvalidArgument(format!("{:?} is outside of {:?}", String::from_utf8_lossy(raw), self.dest_name))
    }

    fn open_in_dest(&self, comps: &[Vec<u8>]) -> io::Result<OwnedFd> {
        if comps.is_empty() {
            return self.dest.try_clone();
        }
        Ok(rfs::openat2(&self.dest, join(comps), dir_flags(), Mode::empty(), in_root())?)
    }

    /// The directory `comps` inside the destination, creating missing ones (0755) as docker does.
    fn parent(&mut self, comps: &[Vec<u8>]) -> io::Result<Arc<OwnedFd>> {
        if let Some((path, fd)) = &self.cached {
            if path == comps {
                return Ok(fd.clone());
            }
        }
        let fd = match self.open_in_dest(comps) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let mut current = self.dest.try_clone()?;
                for i in 0..comps.len() {
                    current = match self.open_in_dest(&comps[..=i]) {
                        Ok(fd) => fd,
                        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                            match rfs::mkdirat(&current, comps[i].as_slice(), Mode::from_raw_mode(0o755)) {
                                Ok(()) | Err(Errno::EXIST) => {}
                                Err(e) => return Err(e.into()),
                            }
                            self.open_in_dest(&comps[..=i])?
                        }
                        Err(e) => return Err(e),
                    };
                }
                current
            }
            Err(e) => return Err(e),
        };
        let fd = Arc::new(fd);
        self.cached = Some((comps.to_vec(), fd.clone()));
        Ok(fd)
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        let comps = Self::clean(&raw).ok_or_else(|| self.outside(&raw))?;
        let is_dir = kind == tar::EntryType::Directory;
        let Some((name, parent_comps)) = comps.split_last() else {
            // The destination itself: docker leaves it as it is.
            if is_dir {
                return Ok(());
            }
            return Err(Error::InvalidArgument(format!("cannot overwrite directory {:?} with non-directory {:?}", self.dest_name, String::from_utf8_lossy(&raw))));
        };
        let header = entry.header();
        let mode = header.mode().map_err(bad_archive)? & 0o7777;
        let mtime = header.mtime().map_err(bad_archive)?;
        let owner = match self.owner {
            Some(owner) => owner,
            None => (header.uid().map_err(bad_archive)? as u32, header.gid().map_err(bad_archive)? as u32),
        };
        let xattrs = xattrs(entry);
        let parent = self.parent(parent_comps).map_err(self.err(&raw, "open parent directory of"))?;
        let shown = || format!("{}/{}", self.dest_name.trim_end_matches('/'), String::from_utf8_lossy(&join(&comps)));
        let existing = match rfs::statat(&*parent, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Some(file_type(&st)),
            Err(Errno::NOENT) => None,
            Err(e) => return Err(self.err(&raw, "stat")(e.into())),
        };
        if let Some(existing) = existing {
            let existing_dir = existing == FileType::Directory;
            if self.options.no_overwrite_dir_non_dir && existing_dir && !is_dir {
                return Err(Error::InvalidArgument(format!("cannot overwrite directory {:?} with non-directory {:?}", shown(), String::from_utf8_lossy(&raw))));
            }
            if self.options.no_overwrite_dir_non_dir && !existing_dir && is_dir {
                return Err(Error::InvalidArgument(format!("cannot overwrite non-directory {:?} with directory {:?}", shown(), String::from_utf8_lossy(&raw))));
            }
            // A regular file replaces by rename; anything else goes first.
            let keep = (existing_dir && is_dir) || (!existing_dir && kind.is_file());
            if !keep {
                let target = PathBuf::from(format!("/proc/self/fd/{}/{}", parent.as_raw_fd(), String::from_utf8_lossy(name)));
                if existing_dir {
                    berth_snapshot::remove_tree(&target)?;
                } else {
                    rfs::unlinkat(&*parent, name.as_slice(), AtFlags::empty()).map_err(|e| self.err(&raw, "remove")(e.into()))?;
                }
                self.cached = None;
            }
        }
        let parent = self.parent(parent_comps).map_err(self.err(&raw, "open parent directory of"))?;
        let meta = Meta { mode, owner, mtime, xattrs };
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => self.file(entry, &parent, name, &meta).map_err(self.err(&raw, "write")),
            tar::EntryType::Directory => {
                match rfs::mkdirat(&*parent, name.as_slice(), Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(self.err(&raw, "create directory")(e.into())),
                }
                let fd = rfs::openat(&*parent, name.as_slice(), dir_flags() | OFlags::NOFOLLOW, Mode::empty()).map_err(|e| self.err(&raw, "open directory")(e.into()))?;
                set_meta(fd.as_fd(), &meta).map_err(self.err(&raw, "set owner and mode of"))?;
                self.dir_times.push((comps.clone(), mtime));
                self.cached = Some((comps.clone(), Arc::new(fd)));
                Ok(())
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| Error::InvalidArgument(format!("symlink {:?} has no target", String::from_utf8_lossy(&raw))))?;
                rfs::symlinkat(target.as_ref(), &*parent, name.as_slice()).map_err(|e| self.err(&raw, "create symlink")(e.into()))?;
                let (uid, gid) = meta.owner;
                rfs::chownat(&*parent, name.as_slice(), Some(rfs::Uid::from_raw(uid)), Some(rfs::Gid::from_raw(gid)), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| self.err(&raw, "chown")(e.into()))?;
                let _ = rfs::utimensat(&*parent, name.as_slice(), &timestamps(mtime), AtFlags::SYMLINK_NOFOLLOW);
                Ok(())
            }
            tar::EntryType::Link => {
                let target_raw = entry.link_name_bytes().ok_or_else(|| Error::InvalidArgument(format!("hardlink {:?} has no target", String::from_utf8_lossy(&raw))))?;
                let target = Self::clean(&target_raw).ok_or_else(|| self.outside(&target_raw))?;
                let Some((target_name, target_parent)) = target.split_last() else {
                    return Err(Error::InvalidArgument(format!("hardlink {:?} points at the destination itself", String::from_utf8_lossy(&raw))));
                };
                let target_dir = self.open_in_dest(target_parent).map_err(self.err(&target_raw, "open directory of hardlink target"))?;
                // No AT_SYMLINK_FOLLOW: a symlink is linked itself, never what it points to.
                rfs::linkat(&target_dir, target_name.as_slice(), &*parent, name.as_slice(), AtFlags::empty()).map_err(|e| self.err(&raw, "create hardlink")(e.into()))
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let header = entry.header();
                let (file_type, dev) = match kind {
                    tar::EntryType::Fifo => (FileType::Fifo, 0),
                    _ => {
                        let major = header.device_major().map_err(bad_archive)?.unwrap_or(0);
                        let minor = header.device_minor().map_err(bad_archive)?.unwrap_or(0);
                        let file_type = if kind == tar::EntryType::Char { FileType::CharacterDevice } else { FileType::BlockDevice };
                        (file_type, rfs::makedev(major, minor))
                    }
                };
                rfs::mknodat(&*parent, name.as_slice(), file_type, Mode::from_raw_mode(0o600), dev).map_err(|e| self.err(&raw, "create device node")(e.into()))?;
                let fd = rfs::openat(&*parent, name.as_slice(), OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()).map_err(|e| self.err(&raw, "open")(e.into()))?;
                let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
                let (uid, gid) = meta.owner;
                rfs::chownat(rfs::CWD, path.as_str(), Some(rfs::Uid::from_raw(uid)), Some(rfs::Gid::from_raw(gid)), AtFlags::empty())
                    .and_then(|()| rfs::chmodat(rfs::CWD, path.as_str(), Mode::from_raw_mode(mode), AtFlags::empty()))
                    .map_err(|e| self.err(&raw, "set owner and mode of")(e.into()))
            }
            other => Err(Error::InvalidArgument(format!("{:?}: unsupported entry type {:?}", String::from_utf8_lossy(&raw), other.as_byte() as char))),
        }
    }

    /// A regular file: written under a temporary name, then renamed over the old one.
    fn file<R: Read>(&self, entry: &mut tar::Entry<'_, R>, parent: &OwnedFd, name: &[u8], meta: &Meta) -> io::Result<()> {
        let temp = format!(".berth-cp-{:016x}", rand::random::<u64>());
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rfs::openat(parent, temp.as_str(), flags, Mode::from_raw_mode(0o600))?;
        let written = (|| -> io::Result<()> {
            let mut file = File::from(fd);
            let size = entry.size();
            let copied = io::copy(entry, &mut file)?;
            if copied != size && entry.header().entry_type() != tar::EntryType::GNUSparse {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "archive ends inside the file"));
            }
            set_meta(file.as_fd(), meta)?;
            rfs::futimens(&file, &timestamps(meta.mtime))?;
            rfs::renameat(parent, temp.as_str(), parent, name)?;
            Ok(())
        })();
        if written.is_err() {
            let _ = rfs::unlinkat(parent, temp.as_str(), AtFlags::empty());
        }
        written
    }
}

/// Owner, mode and xattrs of one extracted entry.
struct Meta {
    mode: u32,
    owner: (u32, u32),
    mtime: u64,
    xattrs: Vec<(CString, Vec<u8>)>,
}

/// Sets owner, then mode (a chown clears setuid bits), then xattrs, through the fd.
fn set_meta(fd: BorrowedFd<'_>, meta: &Meta) -> io::Result<()> {
    let (uid, gid) = meta.owner;
    rfs::fchown(fd, Some(rfs::Uid::from_raw(uid)), Some(rfs::Gid::from_raw(gid)))?;
    rfs::fchmod(fd, Mode::from_raw_mode(meta.mode))?;
    for (name, value) in &meta.xattrs {
        if let Err(e) = rfs::fsetxattr(fd, name.as_c_str(), value, rfs::XattrFlags::empty()) {
            tracing::debug!("xattr {name:?} not set: {e}");
        }
    }
    Ok(())
}

/// The PAX `SCHILY.xattr.*` records of an entry, overlay's own excepted.
fn xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Vec<(CString, Vec<u8>)> {
    let Ok(Some(extensions)) = entry.pax_extensions() else { return vec![] };
    extensions
        .flatten()
        .filter_map(|ext| {
            let name = ext.key_bytes().strip_prefix(b"SCHILY.xattr.")?;
            if name.starts_with(b"trusted.overlay.") {
                return None;
            }
            Some((CString::new(name).ok()?, ext.value_bytes().to_vec()))
        })
        .collect()
}

fn timestamps(mtime: u64) -> Timestamps {
    let time = Timespec { tv_sec: i64::try_from(mtime).unwrap_or(0), tv_nsec: 0 };
    Timestamps { last_access: time, last_modification: time }
}

/// The changes of an overlay upper directory against its lower layers (top first).
fn changes(upper: &Path, layers: &[PathBuf]) -> Result<Vec<FileChange>> {
    let open = |p: &Path| rfs::open(p, dir_flags(), Mode::empty()).map_err(|e| Error::io("open", p)(e.into()));
    let lowers = layers.iter().map(|l| open(l)).collect::<Result<Vec<_>>>()?;
    let root = open(upper)?;
    let mut found: BTreeMap<Vec<Vec<u8>>, ChangeKind> = BTreeMap::new();
    let mut stack = vec![(root, Vec::<Vec<u8>>::new())];
    let err = |path: &[Vec<u8>]| {
        let path = upper.join(String::from_utf8_lossy(&join(path)).as_ref());
        move |e: io::Error| Error::io("compare", path)(e)
    };
    while let Some((dir, path)) = stack.pop() {
        let mut names = Vec::new();
        let mut entries = rfs::Dir::read_from(&dir).map_err(|e| err(&path)(e.into()))?;
        while let Some(entry) = entries.read() {
            let entry = entry.map_err(|e| err(&path)(e.into()))?;
            let name = entry.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(name);
            }
        }
        for name in names {
            let mut child = path.clone();
            child.push(name.clone());
            let st = match rfs::statat(&dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(err(&child)(e.into())),
            };
            if is_whiteout(&st) {
                record(&mut found, &child, ChangeKind::Deleted);
                continue;
            }
            let lower = lookup_lower(&lowers, &child).map_err(err(&child))?;
            let is_dir = file_type(&st) == FileType::Directory;
            match &lower {
                None => record(&mut found, &child, ChangeKind::Added),
                Some(l) if is_dir && file_type(l) == FileType::Directory => {
                    if st.st_mode != l.st_mode || st.st_uid != l.st_uid || st.st_gid != l.st_gid || st.st_mtime != l.st_mtime || st.st_mtime_nsec != l.st_mtime_nsec {
                        record(&mut found, &child, ChangeKind::Modified);
                    }
                }
                Some(_) => record(&mut found, &child, ChangeKind::Modified),
            }
            if !is_dir {
                continue;
            }
            let fd = rfs::openat(&dir, name.as_slice(), dir_flags() | OFlags::NOFOLLOW, Mode::empty()).map_err(|e| err(&child)(e.into()))?;
            if lower.as_ref().is_some_and(|l| file_type(l) == FileType::Directory) && is_opaque(fd.as_fd()) {
                // What the image had in here is gone, but for what the container put back.
                for hidden in lower_names(&lowers, &child).map_err(err(&child))? {
                    if rfs::statat(&fd, hidden.as_slice(), AtFlags::SYMLINK_NOFOLLOW).is_err() {
                        let mut gone = child.clone();
                        gone.push(hidden);
                        record(&mut found, &gone, ChangeKind::Deleted);
                    }
                }
            }
            stack.push((fd, child));
        }
    }
    Ok(found.into_iter().map(|(path, kind)| FileChange { path: show_path(&path), kind }).collect())
}

/// Notes a change and marks every directory above it modified (unless it was added).
fn record(found: &mut BTreeMap<Vec<Vec<u8>>, ChangeKind>, path: &[Vec<u8>], kind: ChangeKind) {
    for i in 1..path.len() {
        found.entry(path[..i].to_vec()).or_insert(ChangeKind::Modified);
    }
    found.insert(path.to_vec(), kind);
}

/// An overlay whiteout: a character device 0:0.
fn is_whiteout(st: &Stat) -> bool {
    file_type(st) == FileType::CharacterDevice && st.st_rdev == 0
}

fn is_opaque(fd: BorrowedFd<'_>) -> bool {
    let mut value = [0u8; 2];
    matches!(rfs::fgetxattr(fd, OPAQUE_XATTR, &mut value), Ok(1) if value[0] == b'y')
}

/// The directories at `path` in the lower layers that show through the layers above
/// them, top first: a whiteout, a non-directory or an opaque directory on the way hides
/// everything below it. Symlinks are never followed: overlay does not either.
fn lower_dirs(layers: &[OwnedFd], path: &[Vec<u8>]) -> io::Result<Vec<OwnedFd>> {
    let mut out = Vec::new();
    'layers: for layer in layers {
        let mut dir = layer.try_clone()?;
        let mut opaque = false;
        for name in path {
            let st = match rfs::statat(&dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) if !opaque => continue 'layers,
                Err(Errno::NOENT) => return Ok(out),
                Err(e) => return Err(e.into()),
            };
            if file_type(&st) != FileType::Directory {
                return Ok(out);
            }
            dir = rfs::openat(&dir, name.as_slice(), dir_flags() | OFlags::NOFOLLOW, Mode::empty())?;
            opaque |= is_opaque(dir.as_fd());
        }
        out.push(dir);
        if opaque {
            break;
        }
    }
    Ok(out)
}

/// What the lower layers show at `path`.
fn lookup_lower(layers: &[OwnedFd], path: &[Vec<u8>]) -> io::Result<Option<Stat>> {
    let Some((name, parent)) = path.split_last() else { return Ok(None) };
    for dir in lower_dirs(layers, parent)? {
        match rfs::statat(&dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if is_whiteout(&st) => return Ok(None),
            Ok(st) => return Ok(Some(st)),
            Err(Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// The names the lower layers show in the directory `path`.
fn lower_names(layers: &[OwnedFd], path: &[Vec<u8>]) -> io::Result<Vec<Vec<u8>>> {
    let mut shown = BTreeMap::new();
    for dir in lower_dirs(layers, path)? {
        let mut entries = rfs::Dir::read_from(&dir)?;
        while let Some(entry) = entries.read() {
            let entry = entry?;
            let name = entry.file_name().to_bytes().to_vec();
            if name == b"." || name == b".." || shown.contains_key(&name) {
                continue;
            }
            let st = rfs::statat(&dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW)?;
            shown.insert(name, !is_whiteout(&st));
        }
    }
    Ok(shown.into_iter().filter(|(_, visible)| *visible).map(|(name, _)| name).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_path_forms() {
        assert_eq!(absolute("/d/"), "/d/");
        assert_eq!(absolute("d/."), "/d/.");
        assert_eq!(absolute("/a/../../b"), "/b");
        assert_eq!(absolute("/"), "/");
        assert_eq!(absolute("."), "/.");
        assert_eq!(go_base("/d/"), "d");
        assert_eq!(go_base("/d/."), ".");
        assert_eq!(go_base("/"), "/");
        assert_eq!(go_base("/tmp/link"), "link");
    }

    #[test]
    fn archive_names_may_not_leave_the_destination() {
        assert_eq!(Extractor::clean(b"./a/b/../c"), Some(vec![b"a".to_vec(), b"c".to_vec()]));
        assert_eq!(Extractor::clean(b"/abs"), Some(vec![b"abs".to_vec()]));
        assert_eq!(Extractor::clean(b"a/../../x"), None);
        assert_eq!(Extractor::clean(b"../x"), None);
        assert_eq!(Extractor::clean(b"./"), Some(vec![]));
    }

    #[test]
    fn go_file_modes() {
        let mut st: Stat = some_stat();
        st.st_mode = libc::S_IFDIR | 0o755;
        assert_eq!(go_mode(&st), 2147484141);
        st.st_mode = libc::S_IFLNK | 0o777;
        assert_eq!(go_mode(&st), 134218239);
        st.st_mode = libc::S_IFREG | 0o4755;
        assert_eq!(go_mode(&st), 0o755 | 1 << 23);
    }

    fn some_stat() -> Stat {
        rfs::fstat(rfs::open("/", dir_flags(), Mode::empty()).unwrap()).unwrap()
    }

    /// A layer stack by hand: a whiteout, an opaque directory, a modified and an added
    /// file, and a directory whose only change is below it.
    #[test]
    fn changes_of_an_upper_directory() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let (lower, upper) = (tmp.path().join("lower"), tmp.path().join("upper"));
        for d in ["etc", "home/test", "var/log"] {
            std::fs::create_dir_all(lower.join(d)).unwrap();
        }
        std::fs::write(lower.join("etc/passwd"), "root").unwrap();
        std::fs::write(lower.join("etc/group"), "root").unwrap();
        std::fs::write(lower.join("var/log/old"), "x").unwrap();
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(upper.join("etc/passwd"), "root\nme").unwrap();
        rfs::mknodat(rfs::CWD, upper.join("etc/group"), FileType::CharacterDevice, Mode::empty(), 0).unwrap();
        std::fs::create_dir_all(upper.join("home")).unwrap();
        rfs::setxattr(upper.join("home"), OPAQUE_XATTR, b"y", rfs::XattrFlags::empty()).unwrap();
        std::fs::write(upper.join("home/new"), "").unwrap();
        std::fs::create_dir_all(upper.join("new/dir")).unwrap();
        let got = changes(&upper, &[lower]).unwrap();
        let lines: Vec<String> = got.iter().map(|c| format!("{} {}", c.kind as u8, c.path)).collect();
        assert_eq!(lines, ["0 /etc", "2 /etc/group", "0 /etc/passwd", "0 /home", "1 /home/new", "2 /home/test", "1 /new", "1 /new/dir"]);
    }
}
