//! Mounts inside the rootfs: option parsing, the spec's mounts (bind, proc, sysfs, tmpfs,
//! devpts, mqueue, cgroup, ...), masked and read-only paths. Targets are always resolved
//! inside the rootfs and mounted through their fd.

use crate::error::{Error, Result};
use crate::fsutil::{self, ensure_in_root, fd_path, open_in_root, open_no_symlinks, Leaf};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::SFlag;
use oci_spec::runtime::Mount;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

const MS_NOSYMFOLLOW: u64 = 256;

/// A mount's options split by how the kernel takes them.
#[derive(Debug, PartialEq)]
pub struct Options {
    pub flags: MsFlags,
    pub propagation: Vec<MsFlags>,
    /// mount_setattr(AT_RECURSIVE) attributes to set and to clear.
    pub rec_set: u64,
    pub rec_clear: u64,
    pub data: Vec<String>,
    pub tmpcopyup: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { flags: MsFlags::empty(), propagation: vec![], rec_set: 0, rec_clear: 0, data: vec![], tmpcopyup: false }
    }
}

impl Options {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

/// Rejects options that can never be valid (empty, or idmapped which we do not support).
pub fn check_option(opt: &str) -> std::result::Result<(), String> {
    match opt {
        "" => Err("empty option".into()),
        "idmap" | "ridmap" => Err(format!("{opt}: idmapped mounts are not supported")),
        _ => Ok(()),
    }
}

/// Parses mount options the way runc does; unknown ones are passed as filesystem data.
pub fn parse_options(opts: &[String]) -> Options {
    let mut o = Options::default();
    for opt in opts {
        let (clear, flag) = match opt.as_str() {
            "async" => (true, MsFlags::MS_SYNCHRONOUS),
            "atime" => (true, MsFlags::MS_NOATIME),
            "bind" => (false, MsFlags::MS_BIND),
            "defaults" => (false, MsFlags::empty()),
            "dev" => (true, MsFlags::MS_NODEV),
            "diratime" => (true, MsFlags::MS_NODIRATIME),
            "dirsync" => (false, MsFlags::MS_DIRSYNC),
            "exec" => (true, MsFlags::MS_NOEXEC),
            "iversion" => (false, MsFlags::MS_I_VERSION),
            "lazytime" => (false, MsFlags::MS_LAZYTIME),
            "loud" => (true, MsFlags::MS_SILENT),
            "mand" => (false, MsFlags::MS_MANDLOCK),
            "noatime" => (false, MsFlags::MS_NOATIME),
            "nodev" => (false, MsFlags::MS_NODEV),
            "nodiratime" => (false, MsFlags::MS_NODIRATIME),
            "noexec" => (false, MsFlags::MS_NOEXEC),
            "noiversion" => (true, MsFlags::MS_I_VERSION),
            "nolazytime" => (true, MsFlags::MS_LAZYTIME),
            "nomand" => (true, MsFlags::MS_MANDLOCK),
            "norelatime" => (true, MsFlags::MS_RELATIME),
            "nostrictatime" => (true, MsFlags::MS_STRICTATIME),
            "nosuid" => (false, MsFlags::MS_NOSUID),
            "nosymfollow" => (false, MsFlags::from_bits_retain(MS_NOSYMFOLLOW)),
            "symfollow" => (true, MsFlags::from_bits_retain(MS_NOSYMFOLLOW)),
            "rbind" => (false, MsFlags::MS_BIND | MsFlags::MS_REC),
            "relatime" => (false, MsFlags::MS_RELATIME),
            "remount" => (false, MsFlags::MS_REMOUNT),
            "ro" => (false, MsFlags::MS_RDONLY),
            "rw" => (true, MsFlags::MS_RDONLY),
            "silent" => (false, MsFlags::MS_SILENT),
            "strictatime" => (false, MsFlags::MS_STRICTATIME),
            "suid" => (true, MsFlags::MS_NOSUID),
            "sync" => (false, MsFlags::MS_SYNCHRONOUS),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                o.propagation.push(propagation(opt).unwrap_or(MsFlags::MS_PRIVATE));
                continue;
            }
            "tmpcopyup" => {
                o.tmpcopyup = true;
                continue;
            }
            other => {
                if let Some((clear, attr)) = recursive_attr(other) {
                    if clear {
                        o.rec_clear |= attr;
                        o.rec_set &= !attr;
                    } else {
                        o.rec_set |= attr;
                        o.rec_clear &= !attr;
                    }
                } else {
                    o.data.push(other.to_string());
                }
                continue;
            }
        };
        if clear {
            o.flags.remove(flag);
        } else {
            o.flags.insert(flag);
        }
    }
    o
}

/// Maps a propagation name (as used by mounts and rootfsPropagation) to its flags.
pub fn propagation(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

fn recursive_attr(name: &str) -> Option<(bool, u64)> {
    const RDONLY: u64 = 0x1;
    const NOSUID: u64 = 0x2;
    const NODEV: u64 = 0x4;
    const NOEXEC: u64 = 0x8;
    const NOATIME: u64 = 0x10;
    const STRICTATIME: u64 = 0x20;
    const NODIRATIME: u64 = 0x80;
    const NOSYMFOLLOW: u64 = 0x200000;
    Some(match name {
        "rro" => (false, RDONLY),
        "rrw" => (true, RDONLY),
        "rnosuid" => (false, NOSUID),
        "rsuid" => (true, NOSUID),
        "rnodev" => (false, NODEV),
        "rdev" => (true, NODEV),
        "rnoexec" => (false, NOEXEC),
        "rexec" => (true, NOEXEC),
        "rnodiratime" => (false, NODIRATIME),
        "rdiratime" => (true, NODIRATIME),
        "rrelatime" => (true, NOATIME | STRICTATIME),
        "rnorelatime" => (false, STRICTATIME),
        "rnoatime" => (false, NOATIME),
        "ratime" => (true, NOATIME),
        "rstrictatime" => (false, STRICTATIME),
        "rnostrictatime" => (true, STRICTATIME),
        "rnosymfollow" => (false, NOSYMFOLLOW),
        "rsymfollow" => (true, NOSYMFOLLOW),
        _ => return None,
    })
}

fn sys_mount(
    src: Option<&Path>,
    dst: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
    what: &Path,
) -> Result<()> {
    mount(src, dst, fstype, flags, data).map_err(|e| Error::path("mount", what, e))
}

/// Mounts every entry of the spec's `mounts` inside the rootfs open as `root`.
pub fn mount_all(root: &OwnedFd, mounts: &[Mount], cgroupns: bool) -> Result<()> {
    for (i, m) in mounts.iter().enumerate() {
        mount_one(root, m, cgroupns).map_err(|e| match e {
            Error::InvalidSpec(msg) => Error::InvalidSpec(format!("mounts[{i}]: {msg}")),
            other => other,
        })?;
    }
    Ok(())
}

fn mount_one(root: &OwnedFd, m: &Mount, cgroupns: bool) -> Result<()> {
    let opts = parse_options(m.options().as_deref().unwrap_or_default());
    let dest = m.destination();
    let typ = m.typ().as_deref().unwrap_or(if opts.is_bind() { "bind" } else { "" });
    let data = opts.data.join(",");
    let data = (!data.is_empty()).then_some(data.as_str());
    let source = m.source().as_deref();

    if opts.is_bind() || typ == "bind" {
        let src = source.ok_or_else(|| Error::InvalidSpec(format!("{}: bind mount without source", dest.display())))?;
        let src_fd = nix::fcntl::open(src, OFlag::O_PATH | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
            .map_err(|e| Error::path("open bind source", src, e))?;
        let leaf = if fsutil::file_type(&src_fd).map_err(|e| Error::path("stat", src, e))? == SFlag::S_IFDIR {
            Leaf::Dir
        } else {
            Leaf::File
        };
        let dst_fd = ensure_in_root(root, dest, leaf)?;
        let base = MsFlags::MS_BIND | (opts.flags & MsFlags::MS_REC);
        sys_mount(Some(&fd_path(&src_fd)), &fd_path(&dst_fd), None, base, None, dest)?;
        let extra = opts.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !extra.is_empty() {
            remount_bind(root, dest, extra)?;
        }
    } else if typ == "cgroup" {
        mount_cgroup(root, dest, &opts, cgroupns)?;
    } else {
        let dst_fd = if typ == "proc" || typ == "sysfs" {
            // A proc or sysfs mount on a symlink or a file is an escape attempt.
            match open_no_symlinks(root, dest, OFlag::O_PATH | OFlag::O_NOFOLLOW) {
                Ok(fd) => {
                    if fsutil::file_type(&fd).map_err(|e| Error::path("stat", dest, e))? != SFlag::S_IFDIR {
                        return Err(Error::InvalidSpec(format!(
                            "{typ} must be mounted on an ordinary directory, {} is not one",
                            dest.display()
                        )));
                    }
                    fd
                }
                Err(Errno::ELOOP) => {
                    return Err(Error::InvalidSpec(format!(
                        "{typ} must not be mounted through a symlink: {}",
                        dest.display()
                    )))
                }
                Err(Errno::ENOENT) => ensure_in_root(root, dest, Leaf::Dir)?,
                Err(e) => return Err(Error::path("open", dest, e)),
            }
        } else {
            ensure_in_root(root, dest, Leaf::Dir)?
        };
        let src = source.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(typ));
        let flags = opts.flags - MsFlags::MS_REMOUNT;
        let copy_from = opts.tmpcopyup.then(|| {
            open_in_root(root, dest, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
        });
        let res = sys_mount(Some(&src), &fd_path(&dst_fd), Some(typ), flags, data, dest);
        if let (Err(Error::Path { source: e, .. }), "mqueue" | "sysfs") = (&res, typ) {
            // Without a private ipc or net namespace these cannot be mounted fresh: bind the host's.
            if e.raw_os_error() == Some(libc::EPERM) || e.raw_os_error() == Some(libc::EBUSY) {
                let host = if typ == "sysfs" { "/sys" } else { "/dev/mqueue" };
                sys_mount(Some(Path::new(host)), &fd_path(&dst_fd), None, MsFlags::MS_BIND | MsFlags::MS_REC, None, dest)?;
                if flags.contains(MsFlags::MS_RDONLY) {
                    remount_bind(root, dest, flags)?;
                }
            } else {
                res?;
            }
        } else {
            res?;
        }
        if let Some(from) = copy_from {
            let from = from.map_err(|e| Error::path("open for tmpcopyup", dest, e))?;
            let to = open_in_root(root, dest, OFlag::O_PATH).map_err(|e| Error::path("open", dest, e))?;
            copy_tree(&fd_path(&from), &fd_path(&to))?;
        }
    }
    if !opts.propagation.is_empty() || opts.rec_set | opts.rec_clear != 0 {
        let fd = open_in_root(root, dest, OFlag::O_PATH).map_err(|e| Error::path("open", dest, e))?;
        for p in &opts.propagation {
            sys_mount(None, &fd_path(&fd), None, *p, None, dest)?;
        }
        if opts.rec_set | opts.rec_clear != 0 {
            mount_setattr_recursive(&fd, opts.rec_set, opts.rec_clear).map_err(|e| Error::path("mount_setattr", dest, e))?;
        }
    }
    Ok(())
}

fn mount_setattr_recursive(fd: &OwnedFd, set: u64, clear: u64) -> nix::Result<()> {
    mount_setattr(fd, set, clear, libc::AT_RECURSIVE)
}

/// mount_setattr(2) on the mount `fd` refers to (libc has no wrapper).
pub fn mount_setattr(fd: &impl AsRawFd, set: u64, clear: u64, flags: libc::c_int) -> nix::Result<()> {
    #[repr(C)]
    struct MountAttr {
        set: u64,
        clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr { set, clr: clear, propagation: 0, userns_fd: 0 };
    // SAFETY: the path is a valid NUL-terminated string, attr lives across the call and
    // its size is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(r).map(drop)
}

/// Remounts the bind mount at `dest` with `flags`, keeping the flags the kernel locks
/// (nosuid, nodev, noexec, atime) so the remount works inside a user namespace too.
pub fn remount_bind(root: &OwnedFd, dest: &Path, flags: MsFlags) -> Result<()> {
    let fd = open_in_root(root, dest, OFlag::O_PATH).map_err(|e| Error::path("open", dest, e))?;
    let st = nix::sys::statvfs::fstatvfs(&fd).map_err(|e| Error::path("statvfs", dest, e))?;
    use nix::sys::statvfs::FsFlags as F;
    let mut locked = MsFlags::empty();
    for (f, m) in [
        (F::ST_NOSUID, MsFlags::MS_NOSUID),
        (F::ST_NODEV, MsFlags::MS_NODEV),
        (F::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (F::ST_NOATIME, MsFlags::MS_NOATIME),
        (F::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (F::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if st.flags().contains(f) {
            locked |= m;
        }
    }
    let all = flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    let first = sys_mount(None, &fd_path(&fd), None, all | locked, None, dest);
    if first.is_err() {
        // Some filesystems refuse the extra atime flags; retry with only what was asked.
        sys_mount(None, &fd_path(&fd), None, all, None, dest)?;
    }
    Ok(())
}

/// Mounts cgroupfs at `dest`: the unified hierarchy as cgroup2, v1 and hybrid as a tmpfs
/// holding one mount per hierarchy. Without a cgroup namespace each hierarchy is a bind of
/// the container's own cgroup directory, so the host's tree stays hidden.
fn mount_cgroup(root: &OwnedFd, dest: &Path, opts: &Options, cgroupns: bool) -> Result<()> {
    let flags = opts.flags - (MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_REC);
    let own = own_cgroups();
    let hierarchies = berth_cgroups::hierarchies()?;
    let dst_fd = ensure_in_root(root, dest, Leaf::Dir)?;
    if berth_cgroups::layout()? == berth_cgroups::Layout::V2 {
        if cgroupns {
            return sys_mount(Some(Path::new("cgroup2")), &fd_path(&dst_fd), Some("cgroup2"), flags, None, dest);
        }
        let h = hierarchies.iter().find(|h| h.version == 2).ok_or_else(|| Error::Other("no cgroup2 mount found".into()))?;
        let src = host_cgroup_dir(h, &own);
        sys_mount(Some(&src), &fd_path(&dst_fd), None, MsFlags::MS_BIND | MsFlags::MS_REC, None, dest)?;
        return if flags.contains(MsFlags::MS_RDONLY) { remount_bind(root, dest, flags) } else { Ok(()) };
    }
    sys_mount(Some(Path::new("tmpfs")), &fd_path(&dst_fd), Some("tmpfs"), flags - MsFlags::MS_RDONLY, Some("mode=755"), dest)?;
    for h in &hierarchies {
        let Some(name) = h.mount_point.file_name() else { continue };
        let sub = dest.join(name);
        let sub_fd = ensure_in_root(root, &sub, Leaf::Dir)?;
        if cgroupns {
            let (fstype, data) = if h.version == 2 {
                ("cgroup2", String::new())
            } else {
                ("cgroup", h.controllers.join(","))
            };
            let data = (!data.is_empty()).then_some(data.as_str());
            sys_mount(Some(Path::new("cgroup")), &fd_path(&sub_fd), Some(fstype), flags, data, &sub)?;
        } else {
            let src = host_cgroup_dir(h, &own);
            sys_mount(Some(&src), &fd_path(&sub_fd), None, MsFlags::MS_BIND | MsFlags::MS_REC, None, &sub)?;
            remount_bind(root, &sub, flags)?;
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        let fd = open_in_root(root, dest, OFlag::O_PATH).map_err(|e| Error::path("open", dest, e))?;
        sys_mount(None, &fd_path(&fd), None, flags | MsFlags::MS_REMOUNT, Some("mode=755"), dest)?;
    }
    Ok(())
}

/// This process's cgroup per hierarchy, from /proc/self/cgroup: (controllers, path).
fn own_cgroups() -> Vec<(String, String)> {
    std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _id = parts.next()?;
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect()
}

fn host_cgroup_dir(h: &berth_cgroups::Hierarchy, own: &[(String, String)]) -> PathBuf {
    let key = h.controllers.join(",");
    let path = own
        .iter()
        .find(|(c, _)| if h.version == 2 { c.is_empty() } else { c.split(',').any(|x| h.controllers.iter().any(|y| y == x)) || *c == key })
        .map(|(_, p)| p.as_str())
        .unwrap_or("/");
    let rel = Path::new(path).strip_prefix(&h.root).unwrap_or(Path::new(path));
    h.mount_point.join(rel.strip_prefix("/").unwrap_or(rel))
}

/// Copies a directory tree (tmpcopyup): contents, modes and ownership.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::{lchown, MetadataExt, PermissionsExt};
    let entries = std::fs::read_dir(from).map_err(|e| Error::io("read dir", from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read dir", from, e))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&src).map_err(|e| Error::io("stat", &src, e))?;
        if meta.is_dir() {
            std::fs::create_dir(&dst).map_err(|e| Error::io("mkdir", &dst, e))?;
            copy_tree(&src, &dst)?;
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&src).map_err(|e| Error::io("readlink", &src, e))?;
            std::os::unix::fs::symlink(target, &dst).map_err(|e| Error::io("symlink", &dst, e))?;
        } else if meta.is_file() {
            std::fs::copy(&src, &dst).map_err(|e| Error::io("copy", &dst, e))?;
        } else {
            continue;
        }
        lchown(&dst, Some(meta.uid()), Some(meta.gid())).map_err(|e| Error::io("chown", &dst, e))?;
        if !meta.file_type().is_symlink() {
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(meta.mode()))
                .map_err(|e| Error::io("chmod", &dst, e))?;
        }
    }
    Ok(())
}

/// Hides each path: files get the null device bound over them, directories an empty
/// read-only tmpfs. The null device used is checked to really be 1:3, so an image that
/// replaced /dev/null cannot turn masking into exposure.
pub fn mask_paths(root: &OwnedFd, paths: &[String]) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let null = open_no_symlinks(root, Path::new("/dev/null"), OFlag::O_PATH | OFlag::O_NOFOLLOW)
        .map_err(|e| Error::path("open", "/dev/null", e))?;
    let st = nix::sys::stat::fstat(&null).map_err(|e| Error::path("stat", "/dev/null", e))?;
    let is_char = st.st_mode & libc::S_IFMT == libc::S_IFCHR;
    if !is_char || st.st_rdev != nix::sys::stat::makedev(1, 3) {
        return Err(Error::Other("masked paths: /dev/null in the container is not the null device".into()));
    }
    for p in paths {
        let path = Path::new(p);
        let fd = match open_in_root(root, path, OFlag::O_PATH | OFlag::O_NOFOLLOW) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) | Err(Errno::ELOOP) => continue,
            Err(e) => return Err(Error::path("open masked path", path, e)),
        };
        let ft = fsutil::file_type(&fd).map_err(|e| Error::path("stat", path, e))?;
        if ft == SFlag::S_IFLNK {
            continue;
        }
        if ft == SFlag::S_IFDIR {
            sys_mount(Some(Path::new("tmpfs")), &fd_path(&fd), Some("tmpfs"), MsFlags::MS_RDONLY, Some("size=0,mode=755"), path)?;
        } else {
            sys_mount(Some(&fd_path(&null)), &fd_path(&fd), None, MsFlags::MS_BIND, None, path)?;
        }
    }
    Ok(())
}

/// Makes each existing path a read-only bind of itself.
pub fn readonly_paths(root: &OwnedFd, paths: &[String]) -> Result<()> {
    for p in paths {
        let path = Path::new(p);
        let fd = match open_in_root(root, path, OFlag::O_PATH) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(Error::path("open read-only path", path, e)),
        };
        sys_mount(Some(&fd_path(&fd)), &fd_path(&fd), None, MsFlags::MS_BIND | MsFlags::MS_REC, None, path)?;
        remount_bind(root, path, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(o: &[&str]) -> Options {
        parse_options(&o.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_and_data() {
        let o = p(&["nosuid", "noexec", "nodev", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV);
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
    }

    #[test]
    fn later_option_wins() {
        assert_eq!(p(&["ro", "rw"]).flags, MsFlags::empty());
        assert_eq!(p(&["rw", "ro"]).flags, MsFlags::MS_RDONLY);
    }

    #[test]
    fn rbind_and_propagation() {
        let o = p(&["rbind", "rprivate", "ro"]);
        assert!(o.is_bind());
        assert!(o.flags.contains(MsFlags::MS_REC | MsFlags::MS_RDONLY));
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
    }

    #[test]
    fn recursive_attrs() {
        let o = p(&["rro", "rnosuid"]);
        assert_eq!(o.rec_set, 0x1 | 0x2);
        assert!(o.data.is_empty());
        assert!(p(&["tmpcopyup"]).tmpcopyup);
    }
}
