//! `probe try-*`: attempt one operation and report the outcome as JSON instead of failing,
//! so a test can assert that the runtime allowed or denied it.

use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::{json, Value};

/// Turns an outcome into `{"ok": bool, "errno": N, "error": "..."}`.
pub fn outcome(r: io::Result<()>) -> Value {
    match r {
        Ok(()) => json!({ "ok": true, "errno": 0, "error": "" }),
        Err(e) => json!({
            "ok": false,
            "errno": e.raw_os_error().unwrap_or(0),
            "error": e.to_string(),
        }),
    }
}

fn cstr(p: impl AsRef<Path>) -> io::Result<CString> {
    CString::new(p.as_ref().as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(rc: libc::c_long) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Creates or truncates PATH and writes DATA; what it wrote is left in place.
pub fn try_write(path: &str, data: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.write_all(data.as_bytes())
}

/// Opens PATH for reading (`r`) or writing without creating or truncating (`w`).
pub fn try_open(path: &str, mode: &str) -> io::Result<()> {
    let mut o = fs::OpenOptions::new();
    match mode {
        "r" => o.read(true),
        "w" => o.write(true),
        _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
    };
    o.open(path).map(drop)
}

/// Creates PATH as a directory and leaves it.
pub fn try_mkdir(path: &str) -> io::Result<()> {
    fs::create_dir(path)
}

/// Creates PATH as a character device 1:3 (/dev/null's numbers) and leaves it.
pub fn try_mknod(path: &str) -> io::Result<()> {
    let p = cstr(path)?;
    let dev = libc::makedev(1, 3);
    // SAFETY: p is a valid NUL-terminated path for the duration of the call.
    check(unsafe { libc::mknod(p.as_ptr(), libc::S_IFCHR | 0o666, dev) }.into())
}

/// Mounts SRC on DST, then detaches it again so nothing lingers.
pub fn try_mount(src: &str, dst: &str, fstype: &str) -> io::Result<()> {
    let (s, d, t) = (cstr(src)?, cstr(dst)?, cstr(fstype)?);
    // SAFETY: all strings are valid and NUL-terminated; data is null.
    check(unsafe { libc::mount(s.as_ptr(), d.as_ptr(), t.as_ptr(), 0, std::ptr::null()) }.into())?;
    // SAFETY: d is a valid path; MNT_DETACH never blocks.
    unsafe { libc::umount2(d.as_ptr(), libc::MNT_DETACH) };
    Ok(())
}

/// Runs `f` in a forked child and reports the errno it returned (0 for success), so
/// calls that change process state (unshare, ptrace, mount) leave the probe untouched.
fn in_child(f: impl FnOnce() -> i32) -> io::Result<()> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe writes.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }.into())?;
    // SAFETY: the probe is single-threaded, so the child may run arbitrary code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let e = f().to_ne_bytes();
        // SAFETY: e is a 4-byte buffer; _exit skips atexit handlers owned by the parent.
        unsafe {
            libc::write(fds[1], e.as_ptr().cast(), e.len());
            libc::_exit(0);
        }
    }
    // SAFETY: closing our copy of the write end so the read sees EOF if the child dies.
    unsafe { libc::close(fds[1]) };
    let mut buf = [0u8; 4];
    // SAFETY: buf is a writable 4-byte buffer.
    let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
    let mut status = 0;
    // SAFETY: pid is our child; status is a valid out pointer.
    unsafe {
        libc::close(fds[0]);
        libc::waitpid(pid, &mut status, 0);
    }
    if n != 4 {
        return Err(io::Error::other("child died before reporting"));
    }
    match i32::from_ne_bytes(buf) {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

fn last_errno_or_zero(rc: libc::c_long) -> i32 {
    if rc < 0 {
        io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    } else {
        0
    }
}

/// A scratch directory for calls that need a target, in the first writable place.
fn scratch_dir() -> Option<std::path::PathBuf> {
    let pid = std::process::id();
    ["/tmp", "/dev/shm", "/dev", "/run"]
        .iter()
        .find_map(|base| {
            let p = Path::new(base).join(format!(".probe-{pid}"));
            fs::create_dir(&p).ok().map(|()| p)
        })
}

/// Names accepted by `try-syscall`.
pub const SYSCALLS: [&str; 8] = [
    "mkdir",
    "chmod",
    "unshare",
    "mount",
    "ptrace",
    "keyctl",
    "reboot",
    "sethostname",
];

/// Tries one syscall by name, picking arguments that are harmless when it succeeds.
/// `reboot` uses bad magic numbers, so success shows as EINVAL and denial as EPERM.
pub fn try_syscall(name: &str) -> Option<io::Result<()>> {
    let r = match name {
        "mkdir" => {
            let base = ["/tmp", "/"]
                .iter()
                .find(|b| Path::new(b).is_dir())
                .copied()
                .unwrap_or("/");
            let p = Path::new(base).join(format!(".probe-mkdir-{}", std::process::id()));
            let r = fs::create_dir(&p);
            if r.is_ok() {
                let _ = fs::remove_dir(&p);
            }
            r
        }
        "chmod" => (|| {
            let mode = fs::metadata("/")?.mode() & 0o7777;
            let p = cstr("/")?;
            // SAFETY: p is a valid path; the mode is the one it already has.
            check(unsafe { libc::chmod(p.as_ptr(), mode) }.into())
        })(),
        "unshare" => in_child(|| {
            // SAFETY: affects only the short-lived child.
            last_errno_or_zero(unsafe { libc::unshare(libc::CLONE_NEWUTS) }.into())
        }),
        "mount" => {
            let dir = scratch_dir();
            let target = dir.clone().unwrap_or_else(|| "/".into());
            let r = cstr(&target).and_then(|t| {
                let (src, ty) = (cstr("tmpfs")?, cstr("tmpfs")?);
                in_child(|| {
                    // SAFETY: valid NUL-terminated strings; the mount dies with the child's
                    // view only if detached, so detach it right away.
                    let rc = unsafe {
                        libc::mount(src.as_ptr(), t.as_ptr(), ty.as_ptr(), 0, std::ptr::null())
                    };
                    let e = last_errno_or_zero(rc.into());
                    if e == 0 {
                        // SAFETY: t is a valid path.
                        unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) };
                    }
                    e
                })
            });
            if let Some(d) = dir {
                let _ = fs::remove_dir(d);
            }
            r
        }
        "ptrace" => in_child(|| {
            // SAFETY: the child asks to be traced by the probe and exits at once.
            let rc = unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) };
            last_errno_or_zero(rc)
        }),
        "keyctl" => {
            const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
            const KEY_SPEC_USER_KEYRING: libc::c_long = -4;
            // SAFETY: keyctl with integer arguments only.
            check(unsafe {
                libc::syscall(
                    libc::SYS_keyctl,
                    KEYCTL_GET_KEYRING_ID,
                    KEY_SPEC_USER_KEYRING,
                    0,
                )
            })
        }
        "reboot" => {
            // SAFETY: bad magic makes the kernel refuse after its permission check.
            check(unsafe { libc::syscall(libc::SYS_reboot, 0, 0, 0, 0) })
        }
        "sethostname" => in_child(|| {
            let mut buf = [0u8; 65];
            // SAFETY: buf is writable for its length; the child sets its own name again.
            unsafe {
                if libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) != 0 {
                    return last_errno_or_zero(-1);
                }
                let len = buf.iter().position(|&b| b == 0).unwrap_or(0);
                last_errno_or_zero(libc::sethostname(buf.as_ptr().cast(), len).into())
            }
        }),
        _ => return None,
    };
    Some(r)
}
