//! Running from a binary that cannot be written, so that nothing inside a container can
//! overwrite the runtime on the host through /proc/<pid>/exe (CVE-2019-5736).
//!
//! The cheap way: re-exec through a detached, read-only clone of the mount our binary is
//! on (open_tree + mount_setattr): no copy, and the clone is attached nowhere, so no
//! namespace sees it and nothing needs cleaning up. Reopening /proc/<pid>/exe for writing
//! then fails with EROFS. Where that is unavailable, a sealed memfd copy is used instead.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const MARKER: &str = "_BERTH_SEALED";
// Syscall numbers are shared by all architectures since 5.1; libc lacks these names.
const SYS_OPEN_TREE: libc::c_long = 428;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: u64 = 1;

/// Is our executable unwritable: on a read-only mount, or a write-sealed memfd?
pub fn is_sealed() -> bool {
    let Ok(f) = std::fs::File::open("/proc/self/exe") else { return false };
    if nix::sys::statvfs::fstatvfs(&f).is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY)) {
        return true;
    }
    // SAFETY: F_GET_SEALS on an fd we own.
    let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & libc::F_SEAL_WRITE != 0
}

/// Opens our binary through a detached read-only clone of its mount.
fn readonly_clone() -> std::io::Result<OwnedFd> {
    // SAFETY: open_tree with a valid path; returns a new fd we own.
    let fd = unsafe {
        libc::syscall(SYS_OPEN_TREE, libc::AT_FDCWD, c"/proc/self/exe".as_ptr(), OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint)
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    crate::mounts::mount_setattr(&tree, MOUNT_ATTR_RDONLY, 0, 0)?;
    Ok(tree)
}

/// Re-executes the current program from a sealed memfd copy unless already running from
/// one. Returns an error only if that could not be done; on success it does not return.
pub fn ensure_sealed() -> std::io::Result<()> {
    if is_sealed() {
        std::env::remove_var(MARKER);
        return Ok(());
    }
    if std::env::var_os(MARKER).is_some() {
        // We did re-execute, yet the binary is writable: never loop.
        return Err(std::io::Error::other("re-executed, but the running binary is still writable"));
    }
    let env = exec_env();
    let args = exec_args();
    if let Ok(tree) = readonly_clone() {
        if nix::unistd::fexecve(&tree, &args, &env).is_err() {
            // fall through to the memfd copy
        }
    }
    let exe = std::fs::File::open("/proc/self/exe")?;
    let len = exe.metadata()?.len();
    // SAFETY: memfd_create with a static NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"berth-runc".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: memfd_create just returned this fd.
    let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut copied = 0u64;
    while copied < len {
        // SAFETY: both fds are open; sendfile copies within the kernel.
        let n = unsafe { libc::sendfile(memfd.as_raw_fd(), exe.as_raw_fd(), std::ptr::null_mut(), (len - copied) as usize) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if n == 0 {
            break;
        }
        copied += n as u64;
    }
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: F_ADD_SEALS on the memfd we own.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let err = nix::unistd::fexecve(&memfd, &args, &env).unwrap_err();
    Err(std::io::Error::from_raw_os_error(err as i32))
}

fn exec_args() -> Vec<CString> {
    std::env::args_os()
        .map(|a| CString::new(std::os::unix::ffi::OsStrExt::as_bytes(a.as_os_str())).unwrap_or_default())
        .collect()
}

fn exec_env() -> Vec<CString> {
    let mut env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut s = k.into_encoded_bytes();
            s.push(b'=');
            s.extend(v.into_encoded_bytes());
            CString::new(s).ok()
        })
        .collect();
    env.push(CString::new(format!("{MARKER}=1")).unwrap_or_default());
    env
}
