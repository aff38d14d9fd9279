//! The cached busybox + probe rootfs that bundles copy from, built on first use by the
//! repository's `tests/build-probe.sh` and `tests/make-rootfs.sh` under a file lock so
//! parallel test processes build it once.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::error::{Error, Result};

/// The workspace root, found from this crate's location at build time.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.to_path_buf())
}

/// The cargo target directory (CARGO_TARGET_DIR or `<workspace>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn cache_dir() -> PathBuf {
    target_dir().join("test-rootfs")
}

/// An flock held until dropped (closing the file releases it).
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    pub(crate) fn acquire(path: &Path, exclusive: bool) -> Result<FileLock> {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| Error::io("open lock", path, e))?;
        let op = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        loop {
            // SAFETY: the descriptor is owned by `file`, which outlives the call.
            if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
                return Ok(FileLock { _file: file });
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::io("flock", path, e));
            }
        }
    }
}

fn mtime(p: &Path) -> Option<SystemTime> {
    fs::symlink_metadata(p).and_then(|m| m.modified()).ok()
}

/// Newest modification time of the files under `p` (or of `p` itself).
fn newest(p: &Path) -> Option<SystemTime> {
    let meta = fs::symlink_metadata(p).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    let mut best = meta.modified().ok();
    for entry in fs::read_dir(p).ok()?.flatten() {
        if let Some(t) = newest(&entry.path()) {
            best = best.max(Some(t));
        }
    }
    best
}

/// Inputs whose change means the template must be rebuilt.
fn inputs(root: &Path, prebuilt_probe: Option<&Path>) -> Vec<PathBuf> {
    let mut v = vec![
        root.join("tests/make-rootfs.sh"),
        root.join("tests/build-probe.sh"),
    ];
    match prebuilt_probe {
        Some(p) => v.push(p.to_path_buf()),
        None => {
            v.push(root.join("crates/probe/src"));
            v.push(root.join("crates/probe/Cargo.toml"));
        }
    }
    v
}

fn run_script(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().map_err(|e| Error::Spawn {
        cmd: what.to_string(),
        source: e,
    })?;
    if !out.status.success() {
        return Err(Error::Failed {
            cmd: what.to_string(),
            status: out.status.to_string(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Path of the template rootfs (busybox, test users, /bin/probe), building it when absent
/// or older than the probe's sources. `BERTH_TEST_PROBE=path` uses a prebuilt probe.
pub fn template() -> Result<PathBuf> {
    let root = workspace_root();
    let cache = cache_dir();
    fs::create_dir_all(&cache).map_err(|e| Error::io("create", &cache, e))?;
    let template = cache.join("probe-rootfs");
    let stamp = cache.join("probe-rootfs.stamp");
    let prebuilt = std::env::var_os("BERTH_TEST_PROBE").map(PathBuf::from);

    let _lock = FileLock::acquire(&cache.join("probe-rootfs.lock"), true)?;
    let newest_input = inputs(&root, prebuilt.as_deref())
        .iter()
        .filter_map(|p| newest(p))
        .max();
    let fresh = template.join("bin/probe").exists()
        && match (mtime(&stamp), newest_input) {
            (Some(s), Some(i)) => s >= i,
            (Some(_), None) => true,
            (None, _) => false,
        };
    if fresh {
        return Ok(template);
    }

    let probe = match prebuilt {
        Some(p) => p,
        None => PathBuf::from(run_script(
            Command::new(root.join("tests/build-probe.sh")).current_dir(&root),
            "tests/build-probe.sh",
        )?),
    };
    let tmp = cache.join(format!("probe-rootfs.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let built = run_script(
        Command::new(root.join("tests/make-rootfs.sh"))
            .arg(&tmp)
            .env("PROBE", &probe)
            .current_dir(&root),
        "tests/make-rootfs.sh",
    );
    if let Err(e) = built {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if template.exists() {
        fs::remove_dir_all(&template).map_err(|e| Error::io("remove", &template, e))?;
    }
    fs::rename(&tmp, &template).map_err(|e| Error::io("rename", &tmp, e))?;
    fs::write(&stamp, probe.to_string_lossy().as_bytes())
        .map_err(|e| Error::io("write", &stamp, e))?;
    Ok(template)
}

/// How a bundle gets its rootfs from the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMode {
    /// Regular files are copied (copy_file_range, so reflinked where the filesystem can);
    /// symlinks are hard-linked, which is safe because their content cannot be written
    /// through and is several times faster than recreating a few hundred of them.
    Copy,
    /// Regular files are hard-linked too: fastest, but a write through a link changes the
    /// template for every later test, so use only with a read-only root.
    Hardlink,
}

/// Copies the template into `dest` (which must not exist yet).
pub fn copy_template(dest: &Path, mode: CopyMode) -> Result<()> {
    let template = template()?;
    // Shared lock: a rebuild (exclusive) cannot swap the tree out under a copy.
    let _lock = FileLock::acquire(&cache_dir().join("probe-rootfs.lock"), false)?;
    copy_tree(&template, dest, mode)
}

/// Recursively copies `src` to `dst` keeping modes and ownership.
pub fn copy_tree(src: &Path, dst: &Path, mode: CopyMode) -> Result<()> {
    use std::os::unix::fs::{lchown, MetadataExt, PermissionsExt};

    let meta = fs::symlink_metadata(src).map_err(|e| Error::io("stat", src, e))?;
    let ft = meta.file_type();
    if ft.is_dir() {
        fs::create_dir(dst).map_err(|e| Error::io("create", dst, e))?;
        for entry in fs::read_dir(src).map_err(|e| Error::io("read dir", src, e))? {
            let entry = entry.map_err(|e| Error::io("read dir", src, e))?;
            copy_tree(&entry.path(), &dst.join(entry.file_name()), mode)?;
        }
        fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| Error::io("chmod", dst, e))?;
    } else if ft.is_symlink() {
        if fs::hard_link(src, dst).is_err() {
            // Across filesystems: recreate the link instead.
            let target = fs::read_link(src).map_err(|e| Error::io("readlink", src, e))?;
            std::os::unix::fs::symlink(&target, dst).map_err(|e| Error::io("symlink", dst, e))?;
        }
        return Ok(());
    } else if ft.is_file() {
        let linked = mode == CopyMode::Hardlink && fs::hard_link(src, dst).is_ok();
        if !linked {
            // fs::copy also copies the permission bits.
            fs::copy(src, dst).map_err(|e| Error::io("copy", src, e))?;
        }
    } else {
        // Devices, fifos and sockets are not part of the template.
        return Ok(());
    }
    lchown(dst, Some(meta.uid()), Some(meta.gid())).map_err(|e| Error::io("chown", dst, e))?;
    if ft.is_file() {
        // chown clears set-id bits; put the mode back.
        fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| Error::io("chmod", dst, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn copy_tree_keeps_modes_links_and_separates_files() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::create_dir(src.join("tmp")).unwrap();
        fs::set_permissions(src.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
        fs::write(src.join("bin/tool"), b"elf").unwrap();
        fs::set_permissions(src.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("tool", src.join("bin/alias")).unwrap();

        let copy = tmp.path().join("copy");
        copy_tree(&src, &copy, CopyMode::Copy).unwrap();
        assert_eq!(
            fs::read_link(copy.join("bin/alias")).unwrap(),
            Path::new("tool")
        );
        assert_eq!(
            fs::metadata(copy.join("tmp")).unwrap().mode() & 0o7777,
            0o1777
        );
        assert_eq!(
            fs::metadata(copy.join("bin/tool")).unwrap().mode() & 0o7777,
            0o755
        );
        fs::write(copy.join("bin/tool"), b"changed").unwrap();
        assert_eq!(
            fs::read(src.join("bin/tool")).unwrap(),
            b"elf",
            "copy wrote through"
        );

        let linked = tmp.path().join("linked");
        copy_tree(&src, &linked, CopyMode::Hardlink).unwrap();
        let ino = |p: &Path| fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&linked.join("bin/tool")), ino(&src.join("bin/tool")));
    }
}
