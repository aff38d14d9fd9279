//! Overlay mounts. The new mount API takes one `lowerdir+` option per layer (Linux 6.8+), so the
//! number of layers is not bounded by the page-sized option string of mount(2); older kernels
//! get mount(2) with `/proc/self/fd/N` names when the plain paths do not fit.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, CWD};
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, FsMountFlags, FsOpenFlags, MountAttrFlags,
    MountFlags, MoveMountFlags, UnmountFlags,
};

use crate::error::{Error, Result};

/// Longest string fsconfig(2) takes (256 bytes with the NUL).
const FSCONFIG_MAX: usize = 255;
/// Longest option string mount(2) takes: one page with the NUL.
const MOUNT_DATA_MAX: usize = 4095;

/// Options that keep an upper directory a plain diff of its lowers (what [`crate::write_layer`]
/// reads): no renamed-directory redirects, no metadata-only copy-ups, no inode index. Set where
/// the kernel knows them.
const UPPER_OPTIONS: &[(&str, &str)] = &[("redirect_dir", "off"), ("metacopy", "off"), ("index", "off")];

/// Mounts overlayfs at `target` with the given lower directories (top-most first) and, for a
/// writable mount, an upper and a work directory; without them the mount is read-only.
/// Any number of lowers works (150-layer images included). A single lower without upper is
/// bind-mounted read-only where the kernel wants two layers for a read-only overlay.
pub fn mount_overlay(lowers: &[PathBuf], upper_work: Option<(&Path, &Path)>, target: &Path) -> Result<()> {
    if lowers.is_empty() {
        return Err(Error::InvalidMount { target: target.to_owned(), reason: "no lower directory".into() });
    }
    match mount_new_api(lowers, upper_work, target) {
        Err(Attempt::Unsupported) => mount_classic(lowers, upper_work, target),
        Err(Attempt::Failed(e)) => Err(e),
        Ok(()) => Ok(()),
    }
}

enum Attempt {
    /// The kernel lacks fsopen or `lowerdir+`: use mount(2).
    Unsupported,
    Failed(Error),
}

fn mount_new_api(lowers: &[PathBuf], upper_work: Option<(&Path, &Path)>, target: &Path) -> Result<(), Attempt> {
    let fs = match fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fd) => fd,
        Err(Errno::NOSYS) => return Err(Attempt::Unsupported),
        Err(e) => return Err(Attempt::Failed(mount_err(target, e, String::new()))),
    };
    let failed = |e: Errno| Attempt::Failed(mount_err(target, e, kernel_messages(&fs)));
    // Paths too long for fsconfig go through an fd, held until the mount exists.
    let mut held = Vec::new();
    for (i, lower) in lowers.iter().enumerate() {
        let value =
            short_path(lower, &mut held, FSCONFIG_MAX).map_err(|e| Attempt::Failed(open_err(target, lower, e)))?;
        if let Err(e) = fsconfig_set_string(&fs, "lowerdir+", value.as_os_str()) {
            let messages = kernel_messages(&fs);
            if i == 0 && e == Errno::INVAL && messages.contains("Unknown parameter") {
                return Err(Attempt::Unsupported);
            }
            return Err(Attempt::Failed(mount_err(target, e, messages)));
        }
    }
    let mut attrs = MountAttrFlags::empty();
    if let Some((upper, work)) = upper_work {
        for (key, dir) in [("upperdir", upper), ("workdir", work)] {
            let value =
                short_path(dir, &mut held, FSCONFIG_MAX).map_err(|e| Attempt::Failed(open_err(target, dir, e)))?;
            fsconfig_set_string(&fs, key, value.as_os_str()).map_err(failed)?;
        }
        for (key, value) in UPPER_OPTIONS {
            match fsconfig_set_string(&fs, *key, *value) {
                // Unknown to this kernel, or not settable with this configuration: keep its default.
                Err(Errno::INVAL) => drop(kernel_messages(&fs)),
                r => r.map_err(failed)?,
            }
        }
    } else {
        attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY;
    }
    if let Err(e) = fsconfig_create(&fs) {
        let messages = kernel_messages(&fs);
        if upper_work.is_none() && lowers.len() == 1 && e == Errno::INVAL {
            return bind_read_only(&lowers[0], target).map_err(Attempt::Failed);
        }
        return Err(Attempt::Failed(mount_err(target, e, messages)));
    }
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(failed)?;
    move_mount(&mnt, "", CWD, target, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH).map_err(failed)?;
    Ok(())
}

fn mount_classic(lowers: &[PathBuf], upper_work: Option<(&Path, &Path)>, target: &Path) -> Result<()> {
    // fds named by `/proc/self/fd/N` in the options: they must outlive the mount call.
    let mut held = Vec::new();
    let plain = |p: &Path, _: &mut Vec<OwnedFd>| Ok(escape(p.as_os_str().as_bytes()));
    let mut data = classic_options(lowers, upper_work, target, &mut held, plain)?;
    if data.len() > MOUNT_DATA_MAX {
        let by_fd = |p: &Path, held: &mut Vec<OwnedFd>| Ok(short_path(p, held, 0)?.into_os_string().into_vec());
        data = classic_options(lowers, upper_work, target, &mut held, by_fd)?;
    }
    if data.len() > MOUNT_DATA_MAX {
        return Err(Error::InvalidMount {
            target: target.to_owned(),
            reason: format!("{} layers do not fit the mount options of this kernel", lowers.len()),
        });
    }
    let flags = if upper_work.is_some() { MountFlags::empty() } else { MountFlags::RDONLY };
    let data = CString::new(data).map_err(|_| Error::InvalidMount {
        target: target.to_owned(),
        reason: "a directory path contains a NUL byte".into(),
    })?;
    let result = match rustix::mount::mount("overlay", target, "overlay", flags, data.as_c_str()) {
        Err(Errno::INVAL) if upper_work.is_none() && lowers.len() == 1 => bind_read_only(&lowers[0], target),
        r => r.map_err(|e| mount_err(target, e, String::new())),
    };
    drop(held);
    result
}

/// Builds `lowerdir=a:b[,upperdir=u,workdir=w]`, naming each directory through `name`.
fn classic_options(
    lowers: &[PathBuf],
    upper_work: Option<(&Path, &Path)>,
    target: &Path,
    held: &mut Vec<OwnedFd>,
    mut name: impl FnMut(&Path, &mut Vec<OwnedFd>) -> io::Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let mut data = b"lowerdir=".to_vec();
    for (i, lower) in lowers.iter().enumerate() {
        if i > 0 {
            data.push(b':');
        }
        data.extend(name(lower, held).map_err(|e| open_err(target, lower, e))?);
    }
    if let Some((upper, work)) = upper_work {
        for (key, dir) in [(&b",upperdir="[..], upper), (b",workdir=", work)] {
            data.extend_from_slice(key);
            data.extend(name(dir, held).map_err(|e| open_err(target, dir, e))?);
        }
    }
    Ok(data)
}

/// Escapes the characters mount(2) option parsing and overlay's lowerdir list treat specially.
fn escape(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    for &b in path {
        if matches!(b, b':' | b',' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// `path` itself when it is at most `max` bytes, else `/proc/self/fd/N` of an O_PATH fd kept in `held`.
fn short_path(path: &Path, held: &mut Vec<OwnedFd>, max: usize) -> io::Result<PathBuf> {
    if path.as_os_str().len() <= max {
        return Ok(path.to_owned());
    }
    let fd = rustix::fs::open(path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let short = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    held.push(fd);
    Ok(short)
}

/// A read-only bind mount: the view of a single layer with nothing to stack.
fn bind_read_only(source: &Path, target: &Path) -> Result<()> {
    let err = |e: Errno| mount_err(target, e, String::new());
    rustix::mount::mount_bind(source, target).map_err(err)?;
    let flags = MountFlags::BIND | MountFlags::RDONLY;
    if let Err(e) = rustix::mount::mount_remount(target, flags, "") {
        let _ = rustix::mount::unmount(target, UnmountFlags::DETACH);
        return Err(err(e));
    }
    Ok(())
}

/// The messages the kernel queued on an fs context fd, as `: <message>; <message>`.
fn kernel_messages(fs: &OwnedFd) -> String {
    let mut out = String::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = rustix::io::read(fs, &mut buf) {
        if n == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&buf[..n]);
        // Each message starts with its level: "e ", "w " or "i ".
        let text = line.get(2..).unwrap_or(&line).trim_end();
        out.push_str(if out.is_empty() { " (" } else { "; " });
        out.push_str(text);
    }
    if !out.is_empty() {
        out.push(')');
    }
    out
}

fn mount_err(target: &Path, e: Errno, detail: String) -> Error {
    Error::Mount { target: target.to_owned(), detail, source: e.into() }
}

fn open_err(target: &Path, dir: &Path, e: io::Error) -> Error {
    Error::InvalidMount { target: target.to_owned(), reason: format!("open {}: {e}", dir.display()) }
}

/// Unmounts `target` (not following a symlink there). A busy mount is detached lazily, as docker
/// does, so a container process that still holds it cannot block removal; `NotMounted` when
/// nothing is mounted there.
pub fn unmount(target: &Path) -> Result<()> {
    let io_err = |e: Errno| Error::Io { op: "unmount", path: target.to_owned(), source: e.into() };
    match rustix::mount::unmount(target, UnmountFlags::NOFOLLOW) {
        Ok(()) => Ok(()),
        Err(Errno::INVAL) => Err(Error::NotMounted(target.to_owned())),
        Err(Errno::BUSY) => {
            rustix::mount::unmount(target, UnmountFlags::NOFOLLOW | UnmountFlags::DETACH).map_err(io_err)
        }
        Err(e) => Err(io_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_separators() {
        assert_eq!(escape(b"/a:b,c\\d"), b"/a\\:b\\,c\\\\d");
    }

    /// The mount(2) fallback, forced: 150 lowers whose plain paths overflow a page, so they are
    /// named through /proc/self/fd.
    #[test]
    fn classic_mount_names_many_long_lowers_by_fd() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("x".repeat(60));
        let lowers: Vec<PathBuf> = (0..150)
            .map(|i| {
                let dir = base.join(format!("layer{i}"));
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join(format!("f{i}")), b"").unwrap();
                dir
            })
            .collect();
        let plain: usize = lowers.iter().map(|l| l.as_os_str().len() + 1).sum();
        assert!(plain > MOUNT_DATA_MAX);
        let target = tmp.path().join("mnt");
        std::fs::create_dir(&target).unwrap();
        mount_classic(&lowers, None, &target).unwrap();
        let listed = std::fs::read_dir(&target).map(|d| d.count());
        unmount(&target).unwrap();
        assert_eq!(listed.unwrap(), 150);
    }
}
