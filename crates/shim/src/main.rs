//! berth-shim: one per container. berthd starts it with a `ShimConfig` on stdin; it
//! creates the container in-process through berth-runtime, answers one `Ready` line on
//! stdout, then serves the container's socket until the container has exited: start,
//! kill, attach, exec, resize, pause, update, wait. It writes the container's logs, reaps
//! its processes and records the exit in a file, so berthd may stop or die at any time.
//!
//! Single-threaded and event-driven (poll), so it costs little memory per container and
//! may fork (the runtime clones the container's processes from here).

mod io;
mod logs;
mod serve;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use berth_shim_protocol::{to_line, FailureKind, Ready, ShimConfig};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [command, root, id] = args.as_slice() {
        if command == "cleanup" {
            cleanup(std::path::Path::new(root), id);
        }
    }
    // Not berthd's: signals sent to its process group or session must not reach us.
    let _ = nix::unistd::setsid();
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        fail(&format!("reading the shim configuration: {e}"), FailureKind::Other);
    }
    let config: ShimConfig = match serde_json::from_slice(&input) {
        Ok(c) => c,
        Err(e) => fail(&format!("invalid shim configuration: {e}"), FailureKind::Other),
    };
    // stdout is berthd's pipe for the Ready line; keep it aside, since the container's
    // init inherits fds 0-2.
    let ready = dup_high(1);
    match serve::Shim::create(config) {
        Ok(mut shim) => {
            let line = to_line(&Ready::Created { pid: shim.init_pid(), shim_pid: std::process::id() as i32 });
            send_ready(ready, &line);
            shed_memory();
            shim.run();
        }
        Err(e) => {
            let kind = failure_kind(&e);
            send_ready(ready, &to_line(&Ready::Failed { message: e, kind }));
            std::process::exit(1);
        }
    }
}

/// `berth-shim cleanup <runtime-root> <id>`: ends what a shim that died (killed by
/// someone else) left behind: every process of its container, the runtime state and the
/// cgroup. berthd runs it when a shim went away without recording an exit.
fn cleanup(root: &std::path::Path, id: &str) -> ! {
    match berth_runtime::container::delete(root, id, true) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("berth-shim cleanup {id}: {e}");
            std::process::exit(1);
        }
    }
}

/// Gives back memory that one-off work used (creating the container, an exec): freed
/// heap, and the pages of file mappings that ran or were read once (the runtime, serde,
/// libseccomp, their data). Only mappings that are not writable and hold no page of
/// their own (`Anonymous: 0 kB`, so no relocated or written page) are dropped: every page
/// of them is an exact copy of the file and is faulted back in if ever needed. An idle
/// shim then holds little more than its event loop.
pub(crate) fn shed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's free lists.
    unsafe {
        libc::malloc_trim(0);
    }
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return };
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-').filter(|(a, b)| !a.is_empty() && !b.ends_with(':')) {
            current = None;
            let perms = fields.next().unwrap_or("");
            let path = fields.nth(3).unwrap_or("");
            if !perms.contains('w') && path.starts_with('/') {
                if let (Ok(start), Ok(end)) = (usize::from_str_radix(start, 16), usize::from_str_radix(end, 16)) {
                    current = Some((start, end));
                }
            }
        } else if first == "Anonymous:" {
            if let (Some((start, end)), Some("0")) = (current.take(), fields.next()) {
                // SAFETY: a private, read-only file mapping of this process with no page of
                // its own; MADV_DONTNEED only drops pages the file backs unchanged.
                unsafe {
                    libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
                }
            }
        }
    }
}

/// Tells a program-not-found (127) and not-executable (126) apart from other failures.
pub(crate) fn failure_kind(message: &str) -> FailureKind {
    if message.contains("executable file not found") || message.contains("no such file or directory") {
        FailureKind::NotFound
    } else if message.contains("permission denied") {
        FailureKind::NotExecutable
    } else {
        FailureKind::Other
    }
}

fn send_ready(fd: OwnedFd, line: &[u8]) {
    let mut out = std::fs::File::from(fd);
    let _ = out.write_all(line);
}

fn fail(message: &str, kind: FailureKind) -> ! {
    let _ = std::io::stdout().write_all(&to_line(&Ready::Failed { message: message.to_string(), kind }));
    std::process::exit(1)
}

/// A close-on-exec copy of `fd` above the standard descriptors.
fn dup_high(fd: RawFd) -> OwnedFd {
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor that we then own.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        fail(&format!("dup fd {fd}: {}", std::io::Error::last_os_error()), FailureKind::Other);
    }
    // SAFETY: `new` is a fresh descriptor nobody else owns.
    unsafe { OwnedFd::from_raw_fd(new) }
}

/// Points fd `target` at `fd` (dup2, which clears close-on-exec on the copy).
pub(crate) fn redirect(fd: &impl AsRawFd, target: RawFd) -> std::io::Result<()> {
    // SAFETY: dup2 on valid descriptors; `target` is one of 0-2, which we own.
    if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
