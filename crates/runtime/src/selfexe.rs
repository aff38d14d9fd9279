//! Running from a sealed copy of our own binary, so that nothing inside a container can
//! overwrite the runtime on the host through /proc/<pid>/exe (CVE-2019-5736).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const MARKER: &str = "_BERTH_SEALED";

/// Is our executable a sealed memfd?
pub fn is_sealed() -> bool {
    let Ok(f) = std::fs::File::open("/proc/self/exe") else { return false };
    // SAFETY: F_GET_SEALS on an fd we own.
    let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & libc::F_SEAL_WRITE != 0
}

/// Re-executes the current program from a sealed memfd copy unless already running from
/// one. Returns an error only if that could not be done; on success it does not return.
pub fn ensure_sealed() -> std::io::Result<()> {
    if std::env::var_os(MARKER).is_some() && is_sealed() {
        std::env::remove_var(MARKER);
        return Ok(());
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
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(std::os::unix::ffi::OsStrExt::as_bytes(a.as_os_str())).unwrap_or_default())
        .collect();
    let mut env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut s = k.into_encoded_bytes();
            s.push(b'=');
            s.extend(v.into_encoded_bytes());
            CString::new(s).ok()
        })
        .collect();
    env.push(CString::new(format!("{MARKER}=1")).unwrap_or_default());
    let err = nix::unistd::fexecve(&memfd, &args, &env).unwrap_err();
    Err(std::io::Error::from_raw_os_error(err as i32))
}
