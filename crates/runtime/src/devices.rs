//! Device nodes in the container's /dev: the defaults every container gets, the spec's
//! `linux.devices`, the standard /dev symlinks and /dev/ptmx.

use crate::error::{Error, Result};
use crate::fsutil::{ensure_in_root, fd_path, open_in_root, Leaf};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use nix::unistd::{fchownat, Gid, Uid};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// A device node to create.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The devices every container has (as in runc and Docker).
pub fn defaults() -> Vec<Node> {
    [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)]
        .into_iter()
        .map(|(name, major, minor)| Node {
            path: PathBuf::from("/dev").join(name),
            kind: SFlag::S_IFCHR,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        })
        .collect()
}

/// Converts a spec device entry.
pub fn from_spec(d: &LinuxDevice) -> Result<Node> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::InvalidSpec(format!("linux.devices: {}: type \"a\" is not a device", d.path().display())))
        }
    };
    Ok(Node {
        path: d.path().clone(),
        kind,
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// Creates `nodes` in the rootfs. In a user namespace mknod is refused, so the host's
/// node is bind-mounted instead (as runc does).
pub fn create(root: &OwnedFd, nodes: &[Node], in_userns: bool) -> Result<()> {
    let old = nix::sys::stat::umask(Mode::empty());
    let res = nodes.iter().try_for_each(|n| create_one(root, n, in_userns));
    nix::sys::stat::umask(old);
    res
}

fn create_one(root: &OwnedFd, n: &Node, in_userns: bool) -> Result<()> {
    let parent = n.path.parent().unwrap_or(Path::new("/"));
    let name = n.path.file_name().ok_or_else(|| Error::InvalidSpec(format!("linux.devices: bad path {}", n.path.display())))?;
    if in_userns {
        let dst = ensure_in_root(root, &n.path, Leaf::File)?;
        return mount(Some(&n.path), &fd_path(&dst), None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| Error::path("bind device", &n.path, e));
    }
    let dir = ensure_in_root(root, parent, Leaf::Dir)?;
    // Replace whatever the image had there: a stale node or a planted symlink.
    match nix::unistd::unlinkat(&dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(Error::path("remove", &n.path, e)),
    }
    mknodat(&dir, name, n.kind, Mode::from_bits_truncate(n.mode), makedev(n.major, n.minor))
        .map_err(|e| Error::path("mknod", &n.path, e))?;
    fchownat(&dir, name, Some(Uid::from_raw(n.uid)), Some(Gid::from_raw(n.gid)), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(|e| Error::path("chown", &n.path, e))
}

/// /dev/fd, /dev/std{in,out,err}, /dev/core and /dev/ptmx → pts/ptmx.
pub fn symlinks(root: &OwnedFd) -> Result<()> {
    let dev = open_in_root(root, Path::new("/dev"), OFlag::O_PATH | OFlag::O_DIRECTORY)
        .map_err(|e| Error::path("open", "/dev", e))?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        if name == "ptmx" {
            match nix::unistd::unlinkat(&dev, name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(Error::path("remove", "/dev/ptmx", e)),
            }
        }
        match nix::unistd::symlinkat(target, &dev, name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(Error::path("symlink", Path::new("/dev").join(name), e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_devices() {
        let d = defaults();
        assert_eq!(d.len(), 6);
        assert!(d.iter().any(|n| n.path == Path::new("/dev/null") && n.major == 1 && n.minor == 3));
    }

    #[test]
    fn spec_device() {
        let d: LinuxDevice = serde_json::from_value(serde_json::json!({
            "path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0
        }))
        .unwrap();
        let n = from_spec(&d).unwrap();
        assert_eq!((n.kind, n.major, n.minor, n.mode), (SFlag::S_IFCHR, 10, 229, 0o666));
    }
}
