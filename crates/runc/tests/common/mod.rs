//! Helpers shared by the berth-runc integration tests (security.rs, conformance.rs).
#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::{require_root, CmdOutput, Runtime};
use serde_json::Value;

pub const EPERM: i64 = libc::EPERM as i64;
pub const ENOENT: i64 = libc::ENOENT as i64;
pub const EACCES: i64 = libc::EACCES as i64;
pub const ETXTBSY: i64 = libc::ETXTBSY as i64;
pub const EROFS: i64 = libc::EROFS as i64;
pub const EINVAL: i64 = libc::EINVAL as i64;

/// The runtime under test with a private `--root`, or `None` (test skipped) without root.
pub fn runtime() -> Option<Runtime> {
    if !require_root() {
        return None;
    }
    Some(Runtime::from_env_or(env!("CARGO_BIN_EXE_berth-runc")).expect("runtime binary"))
}

/// Parses the last non-empty line of `text` as JSON (the probe prints one object per line).
pub fn last_json(text: &str) -> Value {
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("no output to parse as JSON: {text:?}"));
    serde_json::from_str(line.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\nfull output: {text}"))
}

/// Polls `f` every 5 ms until it is true or `timeout` passes; returns the last answer.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Our own mount table.
pub fn mountinfo() -> String {
    fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo")
}

/// Mount points at or below `dir` in our mount namespace.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    berth_testkit::bundle::mounts_under(&mountinfo(), dir)
}

/// The cgroup directories named `id` directly under each hierarchy (and the v2 root).
pub fn cgroup_dirs_named(id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let root = Path::new("/sys/fs/cgroup");
    if root.join(id).exists() {
        found.push(root.join(id));
    }
    for e in fs::read_dir(root).into_iter().flatten().flatten() {
        let p = e.path().join(id);
        if p.exists() {
            found.push(p);
        }
    }
    found
}

/// Processes (other than us) with `id` as one of their command-line arguments, or whose
/// root directory is `rootfs`.
pub fn processes_of(id: &str, rootfs: Option<&Path>) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let by_id = args.iter().any(|a| a == id);
        let by_root =
            rootfs.is_some_and(|r| fs::read_link(e.path().join("root")).is_ok_and(|l| l == r));
        if by_id || by_root {
            out.push((pid, args.join(" ")));
        }
    }
    out
}

/// Asserts that a failed or deleted container left nothing: no state dir under the
/// runtime's root, no cgroup directory named after it, no process.
pub fn assert_nothing_left(rt: &Runtime, id: &str, rootfs: Option<&Path>) {
    let state = rt.root().join(id);
    assert!(!state.exists(), "state dir {} left behind", state.display());
    let cgroups = cgroup_dirs_named(id);
    assert!(cgroups.is_empty(), "cgroup dirs left behind: {cgroups:?}");
    // A killed process may take a moment to be reaped by its parent.
    let mut procs = Vec::new();
    let gone = wait_until(Duration::from_secs(5), || {
        procs = processes_of(id, rootfs);
        procs.is_empty()
    });
    assert!(gone, "processes left behind: {procs:?}");
}

/// Asserts the command failed and printed exactly one line of error, which it returns.
pub fn one_line_error(out: &CmdOutput) -> String {
    assert!(
        !out.success(),
        "{} succeeded unexpectedly\nstdout: {}\nstderr: {}",
        out.cmd,
        out.stdout,
        out.stderr
    );
    let text = out.stderr.trim();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{}: expected a one-line error, got:\n{text}",
        out.cmd
    );
    lines[0].to_string()
}

/// sha256 of a file, through sha256sum(1).
pub fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(
        out.status.success(),
        "sha256sum {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Adds `offset` to the owner and group of every directory and regular file under `path`.
/// Symlinks are left alone: in testkit bundles they are hard links shared with the
/// template, and their ownership does not matter for access.
pub fn chown_tree(path: &Path, offset: u32) {
    let meta = fs::symlink_metadata(path).expect("stat");
    if meta.file_type().is_symlink() {
        return;
    }
    if meta.is_dir() {
        for e in fs::read_dir(path).expect("read dir").flatten() {
            chown_tree(&e.path(), offset);
        }
    }
    std::os::unix::fs::lchown(path, Some(meta.uid() + offset), Some(meta.gid() + offset))
        .expect("chown");
    // chown clears set-id bits; put the mode back.
    fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777)).expect("chmod");
}

/// A temporary directory on the host, mode 0755.
pub fn host_dir(prefix: &str) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir");
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}

/// The names in a directory, sorted.
pub fn dir_names(path: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(path)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The inode of a namespace file (/proc/PID/ns/X or a bind mount of one).
pub fn ns_inode(path: &Path) -> u64 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .ino()
}

/// The pid `state` reports for a container.
pub fn state_pid(rt: &Runtime, id: &str) -> i32 {
    let st = rt.state_json(id).expect("state");
    st["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("no pid in state: {st}")) as i32
}

/// Reads a file and trims it.
pub fn read_trim(path: impl AsRef<Path>) -> String {
    let p = path.as_ref();
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// Names in a probe capability set.
pub fn cap_names(report: &Value, set: &str) -> Vec<String> {
    let mut v: Vec<String> = report["capabilities"][set]["names"]
        .as_array()
        .unwrap_or_else(|| panic!("no {set} in report: {}", report["capabilities"]))
        .iter()
        .filter_map(|x| x.as_str().map(String::from))
        .collect();
    v.sort();
    v
}

/// The last mount at `mount_point` in a probe report (the one visible there).
pub fn report_mount(report: &Value, mount_point: &str) -> Option<Value> {
    report["mounts"]
        .as_array()?
        .iter()
        .rev()
        .find(|m| m["mount_point"] == mount_point)
        .cloned()
}

/// A runtime command run outside the testkit wrapper: for what it cannot do (stdin kept
/// open, extra inherited descriptors).
pub struct Raw {
    cmd: Command,
    shown: String,
}

impl Raw {
    /// `<bin> --root <root> ARGS...` with stdin, stdout and stderr as given.
    pub fn new(rt: &Runtime, args: &[&str]) -> Raw {
        let mut cmd = Command::new(rt.bin());
        cmd.arg("--root").arg(rt.root()).args(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Raw {
            cmd,
            shown: format!("{} {}", rt.bin().display(), args.join(" ")),
        }
    }

    pub fn stdin(mut self, s: Stdio) -> Raw {
        self.cmd.stdin(s);
        self
    }

    /// Makes `fd` the child's descriptor 3 (inheritable).
    pub fn fd3(mut self, fd: RawFd) -> Raw {
        // SAFETY: only async-signal-safe calls (dup2, fcntl) run between fork and exec.
        unsafe {
            self.cmd.pre_exec(move || {
                if fd == 3 {
                    if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self
    }

    pub fn spawn(mut self) -> (Child, String) {
        let child = self
            .cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.shown));
        (child, self.shown)
    }

    /// Runs to completion (60 s at most).
    pub fn output(self) -> Output {
        let (child, shown) = self.spawn();
        wait_output(child, &shown, Duration::from_secs(60))
    }
}

/// Waits for a child with piped stdout/stderr, killing it after `timeout`.
pub fn wait_output(mut child: Child, shown: &str, timeout: Duration) -> Output {
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut v);
        }
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut v);
        }
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{shown} timed out after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A `--console-socket` listener: accepts one connection and receives the pty master
/// sent with SCM_RIGHTS, in a background thread.
pub struct ConsoleSocket {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
    thread: Option<std::thread::JoinHandle<std::result::Result<OwnedFd, String>>>,
}

impl ConsoleSocket {
    pub fn new() -> ConsoleSocket {
        let dir = tempfile::Builder::new()
            .prefix("berth-console-")
            .tempdir()
            .expect("temp dir");
        let path = dir.path().join("console.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind console socket");
        listener.set_nonblocking(true).expect("nonblocking");
        let thread = std::thread::spawn(move || -> std::result::Result<OwnedFd, String> {
            let deadline = Instant::now() + Duration::from_secs(30);
            let stream = loop {
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if Instant::now() > deadline {
                            return Err("no connection on the console socket".into());
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => return Err(format!("accept: {e}")),
                }
            };
            stream.set_nonblocking(false).map_err(|e| e.to_string())?;
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .map_err(|e| e.to_string())?;
            recv_fd(stream.as_raw_fd())
        });
        ConsoleSocket {
            path,
            _dir: dir,
            thread: Some(thread),
        }
    }

    /// The received master, or why there is none (connection closed without one, ...).
    pub fn master(mut self) -> std::result::Result<OwnedFd, String> {
        self.thread
            .take()
            .expect("thread")
            .join()
            .map_err(|_| "console thread panicked".to_string())?
    }
}

fn recv_fd(sock: RawFd) -> std::result::Result<OwnedFd, String> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(|e| format!("recvmsg: {e}"))?;
    for c in msg.cmsgs().map_err(|e| format!("cmsgs: {e}"))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just installed this descriptor for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(format!(
        "no descriptor received ({} bytes of data)",
        msg.bytes
    ))
}

/// Reads from a pty master until the other side is gone (EIO) or `timeout` passes.
pub fn read_pty(master: &OwnedFd, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut pfd = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: pfd is a valid pollfd for the call.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
        if n <= 0 {
            continue;
        }
        // SAFETY: buf is writable for its length.
        let r = unsafe { libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if r <= 0 {
            break;
        }
        out.extend_from_slice(&buf[..r as usize]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A mount made by a test on the host, lazily unmounted on drop.
pub struct HostMount(pub PathBuf);

impl HostMount {
    pub fn tmpfs(target: &Path) -> HostMount {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(target)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount tmpfs on {}: {}",
            target.display(),
            text(&out.stderr)
        );
        HostMount(target.to_path_buf())
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}
