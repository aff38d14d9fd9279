//! Path handling that cannot be tricked by symlinks: everything inside a rootfs is opened
//! relative to a root fd with openat2(RESOLVE_IN_ROOT), then used through its fd.

use crate::error::{Error, Result};
use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, mkdirat, Mode, SFlag};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// The path through which the kernel reaches the object behind `fd`.
pub fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Opens `path` inside `root` (symlinks resolve as if `root` were `/`, magic links refused).
pub fn open_in_root(root: &impl AsFd, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    retry_eagain(|| openat2(root.as_fd(), rel, how))
}

/// Opens `path` inside `root` refusing any symlink on the way (for proc, sysfs, /dev/console).
pub fn open_no_symlinks(root: &impl AsFd, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_SYMLINKS);
    retry_eagain(|| openat2(root.as_fd(), rel, how))
}

// openat2 with RESOLVE_IN_ROOT answers EAGAIN when a rename raced the lookup.
fn retry_eagain(mut f: impl FnMut() -> nix::Result<OwnedFd>) -> nix::Result<OwnedFd> {
    for _ in 0..32 {
        match f() {
            Err(Errno::EAGAIN) => continue,
            r => return r,
        }
    }
    f()
}

/// What to create at the end of a path that does not exist yet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Leaf {
    Dir,
    File,
}

/// Opens `path` inside `root` as O_PATH, creating missing directories (and the leaf as
/// `leaf`) on the way. Every step is resolved inside `root`, so no symlink can lead out.
pub fn ensure_in_root(root: &impl AsFd, path: &Path, leaf: Leaf) -> Result<OwnedFd> {
    let flags = OFlag::O_PATH;
    match open_in_root(root, path, flags) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(Error::path("open", path, e)),
    }
    let mut parent = open_in_root(root, Path::new("/"), OFlag::O_PATH | OFlag::O_DIRECTORY)
        .map_err(|e| Error::path("open", "/", e))?;
    let mut done = PathBuf::from("/");
    let parts: Vec<_> = path.components().filter(|c| matches!(c, Component::Normal(_))).collect();
    for (i, part) in parts.iter().enumerate() {
        let name = part.as_os_str();
        done.push(name);
        let last = i + 1 == parts.len();
        match open_in_root(root, &done, OFlag::O_PATH) {
            Ok(fd) => {
                parent = fd;
                continue;
            }
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(Error::path("open", &done, e)),
        }
        if last && leaf == Leaf::File {
            let how = OpenHow::new()
                .flags(OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
                .mode(Mode::from_bits_truncate(0o644))
                .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
            match openat2(parent.as_fd(), name, how) {
                Ok(_) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(Error::path("create", &done, e)),
            }
        } else {
            match mkdirat(parent.as_fd(), name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(Error::path("mkdir", &done, e)),
            }
        }
        parent = open_in_root(root, &done, OFlag::O_PATH).map_err(|e| Error::path("open", &done, e))?;
    }
    Ok(parent)
}

/// The file type of an open fd.
pub fn file_type(fd: &impl AsFd) -> nix::Result<SFlag> {
    let st = fstat(fd.as_fd())?;
    Ok(SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()))
}

/// Writes `data` to `path` via a temp file and rename, so readers never see half a file.
/// No fsync: this is run-time state under /run, which does not outlive a reboot anyway.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    f.write_all(data).map_err(|e| Error::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("rename", path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::open;

    #[test]
    fn symlinks_stay_inside_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("up")).unwrap();
        let rootfd = open(&root, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();

        // The absolute symlink resolves inside root, where its target does not exist.
        assert!(ensure_in_root(&rootfd, Path::new("/escape/made"), Leaf::Dir).is_err());
        assert!(!outside.join("made").exists(), "created through an absolute symlink");
        let inside = root.join(outside.strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside).unwrap();
        ensure_in_root(&rootfd, Path::new("/escape/made"), Leaf::Dir).unwrap();
        assert!(inside.join("made").is_dir());
        assert!(!outside.join("made").exists());

        ensure_in_root(&rootfd, Path::new("/up/file"), Leaf::File).unwrap();
        assert!(root.join("file").is_file());
        assert!(!dir.path().join("file").exists());
    }

    #[test]
    fn no_symlinks_refuses_symlink() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::os::unix::fs::symlink("real", dir.path().join("link")).unwrap();
        let rootfd = open(dir.path(), OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        assert_eq!(open_no_symlinks(&rootfd, Path::new("/link"), OFlag::O_PATH).unwrap_err(), Errno::ELOOP);
        open_no_symlinks(&rootfd, Path::new("/real"), OFlag::O_PATH).unwrap();
    }
}
