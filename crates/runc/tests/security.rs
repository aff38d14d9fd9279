//! Container escape classes: each test mounts the attack against berth-runc and asserts
//! that it fails and that the host is unchanged. Needs root; skipped otherwise.

mod common;

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use berth_testkit::{host_ns_inode, Bundle};
use common::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// 1. /proc/self/exe overwrite of the runtime binary (CVE-2019-5736)
// ---------------------------------------------------------------------------------------

/// Copies the shared libraries `bin` needs into the rootfs, so the runtime binary can run
/// inside the container (an attacker's image would simply ship a libc).
fn install_libs_for(bundle: &Bundle, bin: &Path) {
    let Ok(out) = std::process::Command::new("ldd").arg(bin).output() else {
        return;
    };
    if !out.status.success() {
        return; // statically linked
    }
    for tok in text(&out.stdout)
        .split_whitespace()
        .filter(|t| t.starts_with('/'))
    {
        let dst = bundle.rootfs().join(tok.trim_start_matches('/'));
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::copy(tok, &dst).unwrap_or_else(|e| panic!("copy {tok}: {e}"));
    }
}

/// Whether the executable of `pid` cannot be written: on a read-only mount, or a
/// write-sealed memfd. Returns a description of what it found.
fn exe_is_sealed(pid: i32) -> Result<String, String> {
    let f = fs::File::open(format!("/proc/{pid}/exe"))
        .map_err(|e| format!("open /proc/{pid}/exe: {e}"))?;
    let vfs = nix::sys::statvfs::fstatvfs(&f).map_err(|e| format!("fstatvfs: {e}"))?;
    if vfs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
        return Ok("read-only mount".into());
    }
    // SAFETY: F_GET_SEALS on a descriptor we own.
    let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
    if seals >= 0 && seals & libc::F_SEAL_WRITE != 0 {
        return Ok("sealed memfd".into());
    }
    Err(format!(
        "/proc/{pid}/exe is on a writable mount and not sealed (flags {:?}, seals {seals})",
        vfs.flags()
    ))
}

fn open_for_write(path: &str) -> Result<(), i32> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map(drop)
        .map_err(|e| e.raw_os_error().unwrap_or(0))
}

#[test]
fn proc_self_exe_of_runtime_cannot_be_overwritten_from_container() {
    let Some(rt) = runtime() else { return };
    let bin = rt.bin().to_path_buf();
    let before = sha256(&bin);

    let mut bundle = Bundle::new().unwrap();
    bundle.set_probe_args(&["sleep", "120"]);
    install_libs_for(&bundle, &bin);
    // When the runtime execs this script, the kernel runs /proc/self/exe — the runtime's
    // own binary — as its interpreter, inside the container. "--root" swallows the script
    // path, so it becomes `berth-runc --root /evil update -r - x`: it blocks reading stdin.
    let evil = bundle
        .write_rootfs_file("evil", b"#!/proc/self/exe --root\n")
        .unwrap();
    fs::set_permissions(&evil, fs::Permissions::from_mode(0o755)).unwrap();
    let id = rt.unique_id("cve-2019-5736");
    rt.run_with(&bundle, &id, &["--detach"])
        .unwrap()
        .ok()
        .unwrap();

    let pid_file = bundle.path().join("evil.pid");
    let pf = pid_file.to_str().unwrap();
    let (mut child, shown) = Raw::new(
        &rt,
        &[
            "exec",
            "--pid-file",
            pf,
            &id,
            "/evil",
            "update",
            "-r",
            "-",
            "x",
        ],
    )
    .stdin(Stdio::piped())
    .spawn();
    let stdin = child.stdin.take();
    assert!(
        wait_until(Duration::from_secs(20), || pid_file.exists()),
        "exec never started the evil process"
    );
    let pid: i32 = read_trim(&pid_file).parse().unwrap();
    let running_runtime = wait_until(Duration::from_secs(10), || {
        fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("update"))
    });
    assert!(
        running_runtime,
        "the evil process never turned into the runtime binary"
    );
    // The process inside the container really runs our binary's code.
    assert_eq!(
        sha256(Path::new(&format!("/proc/{pid}/exe"))),
        before,
        "evil process runs something else"
    );
    exe_is_sealed(pid).unwrap();
    let status = read_trim(format!("/proc/{pid}/status"));
    let nspid: i32 = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no NSpid in {status}"));

    // Attack 1: open it for writing while it runs.
    let exe = format!("/proc/{nspid}/exe");
    let direct = rt
        .exec(&id, &["/bin/probe", "try-open", &exe, "w"])
        .unwrap()
        .ok()
        .unwrap();
    let direct = last_json(&direct.stdout);
    assert_eq!(
        direct["ok"], false,
        "opened the runtime binary for writing from the container: {direct}"
    );
    assert!(
        [ETXTBSY, EROFS, EACCES, EPERM].contains(&direct["errno"].as_i64().unwrap()),
        "{direct}"
    );

    // Attack 2 (the real exploit): hold a reference, wait for the runtime to exit, then
    // reopen it for writing through /proc/self/fd.
    let script = format!(
        "exec 3<{exe} || exit 1; echo held; while [ -d /proc/{nspid} ]; do sleep 0.05; done; exec /bin/probe try-open /proc/self/fd/3 w"
    );
    let holder = rt
        .exec_with(&id, &["--detach"], &["/bin/sh", "-c", &script])
        .unwrap()
        .ok()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || holder
            .reread()
            .unwrap()
            .stdout
            .contains("held")),
        "holder never got a reference: {:?}",
        holder.reread().unwrap()
    );
    drop(stdin); // EOF: the runtime binary in the container gives up and exits
    let out = wait_output(child, &shown, Duration::from_secs(30));
    assert!(
        !out.status.success(),
        "evil runtime process should have failed on empty input"
    );
    let done = wait_until(Duration::from_secs(20), || {
        holder.reread().unwrap().stdout.contains("errno")
    });
    let held = holder.reread().unwrap();
    assert!(done, "holder never reported: {held:?}");
    let reopened = last_json(&held.stdout);
    assert_eq!(
        reopened["ok"], false,
        "reopened the runtime binary for writing after it exited: {reopened}"
    );
    assert!(
        [EROFS, EPERM, EACCES, ETXTBSY].contains(&reopened["errno"].as_i64().unwrap()),
        "{reopened}"
    );

    rt.delete_force(&id).unwrap().ok().unwrap();
    assert_eq!(sha256(&bin), before, "the runtime binary changed");
}

#[test]
fn runtime_exe_is_read_only_while_it_works_in_a_container() {
    let Some(rt) = runtime() else { return };
    let bin = rt.bin().to_path_buf();
    let before = sha256(&bin);
    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle.set_probe_args(&["sleep", "120"]);
    let id = rt.unique_id("sealed-exe");

    // The container's init runs runtime code until `start`.
    rt.create(&bundle, &id).unwrap().ok().unwrap();
    let init = state_pid(&rt, &id);
    let how = exe_is_sealed(init).unwrap();
    let e = open_for_write(&format!("/proc/{init}/exe")).unwrap_err();
    assert!(
        [EROFS, ETXTBSY, EPERM].contains(&(e as i64)),
        "init exe: errno {e} ({how})"
    );
    rt.start(&id).unwrap().ok().unwrap();

    // `exec` stays in the foreground while the process runs.
    let pid_file = bundle.path().join("exec.pid");
    let (child, shown) = Raw::new(
        &rt,
        &[
            "exec",
            "--pid-file",
            pid_file.to_str().unwrap(),
            &id,
            "/bin/probe",
            "sleep",
            "30",
        ],
    )
    .spawn();
    let runtime_pid = child.id() as i32;
    assert!(
        wait_until(Duration::from_secs(20), || pid_file.exists()),
        "exec never started"
    );
    let how = exe_is_sealed(runtime_pid).unwrap();
    let exe = format!("/proc/{runtime_pid}/exe");
    let e = open_for_write(&exe).unwrap_err();
    assert!(
        [EROFS, ETXTBSY, EPERM].contains(&(e as i64)),
        "exec runtime exe: errno {e} ({how})"
    );
    // Hold it across the runtime's exit, then try again through the held descriptor.
    let held = fs::File::open(&exe).unwrap();
    let exec_pid: i32 = read_trim(&pid_file).parse().unwrap();
    // SAFETY: kill with integer arguments.
    unsafe { libc::kill(exec_pid, libc::SIGKILL) };
    let out = wait_output(child, &shown, Duration::from_secs(30));
    assert_eq!(
        out.status.code(),
        Some(137),
        "exec exit: {}",
        text(&out.stderr)
    );
    let e = open_for_write(&format!("/proc/self/fd/{}", held.as_raw_fd())).unwrap_err();
    assert!(
        [EROFS, EPERM, ETXTBSY].contains(&(e as i64)),
        "reopen after exit: errno {e} ({how})"
    );

    rt.delete_force(&id).unwrap().ok().unwrap();
    assert_eq!(sha256(&bin), before, "the runtime binary changed");
}

// ---------------------------------------------------------------------------------------
// 2. Leaked descriptors (CVE-2024-21626)
// ---------------------------------------------------------------------------------------

fn fd_keys(report: &Value) -> Vec<u32> {
    let mut v: Vec<u32> = report["fds"]
        .as_object()
        .unwrap_or_else(|| panic!("no fds: {report}"))
        .keys()
        .map(|k| k.parse().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn only_stdio_and_preserved_fds_reach_the_container() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new_hardlinked().unwrap();
    let r = rt.run_probe_args(&mut bundle, &["fds"]).unwrap();
    assert_eq!(fd_keys(&r), [0, 1, 2], "run leaked descriptors: {r}");

    bundle.set_probe_args(&["sleep", "120"]);
    let id = rt.unique_id("fds");
    rt.run_with(&bundle, &id, &["--detach"])
        .unwrap()
        .ok()
        .unwrap();
    let out = rt.exec(&id, &["/bin/probe", "fds"]).unwrap().ok().unwrap();
    let r = last_json(&out.stdout);
    assert_eq!(fd_keys(&r), [0, 1, 2], "exec leaked descriptors: {r}");

    // --preserve-fds 1 passes fd 3, and nothing above it.
    let host = host_dir("berth-fd3-");
    let file = fs::File::create(host.path().join("passed")).unwrap();
    let out = Raw::new(
        &rt,
        &["exec", "--preserve-fds", "1", &id, "/bin/probe", "fds"],
    )
    .fd3(file.as_raw_fd())
    .output();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r = last_json(&text(&out.stdout));
    assert_eq!(fd_keys(&r), [0, 1, 2, 3], "exec --preserve-fds 1: {r}");
    assert!(r["fds"]["3"].as_str().unwrap().ends_with("/passed"), "{r}");
    rt.delete_force(&id).unwrap().ok().unwrap();

    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle.set_probe_args(&["fds"]);
    bundle.save().unwrap();
    let id = rt.unique_id("fds-run");
    let (b, f) = (
        bundle.path().to_str().unwrap().to_string(),
        file.as_raw_fd(),
    );
    let out = Raw::new(&rt, &["run", "--preserve-fds", "1", "--bundle", &b, &id])
        .fd3(f)
        .output();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r = last_json(&text(&out.stdout));
    assert_eq!(fd_keys(&r), [0, 1, 2, 3], "run --preserve-fds 1: {r}");
    assert_nothing_left(&rt, &id, None);
}

/// A cwd reported by the probe must be a path inside the container, never "(unreachable)".
fn assert_cwd_inside(r: &Value, what: &str) {
    let cwd = r["cwd"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: probe has no usable cwd: {r}"));
    assert!(
        cwd.starts_with('/'),
        "{what}: cwd {cwd:?} is outside the container"
    );
}

#[test]
fn cwd_through_leaked_fd_never_reaches_host() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle.set_probe_args(&["report"]);
    let cwds: Vec<String> = (3..=12)
        .flat_map(|n| {
            [
                format!("/proc/self/fd/{n}"),
                format!("/proc/self/fd/{n}/../../.."),
            ]
        })
        .collect();
    for cwd in &cwds {
        bundle.set("/process/cwd", json!(cwd)).unwrap();
        let id = rt.unique_id("cwd-run");
        let out = rt.run(&bundle, &id).unwrap();
        if out.success() {
            assert_cwd_inside(&last_json(&out.stdout), &format!("run cwd {cwd}"));
        } else {
            assert!(
                out.stderr.contains("cwd"),
                "run cwd {cwd}: error does not name the cwd: {}",
                out.stderr
            );
        }
        assert_nothing_left(&rt, &id, None);
    }

    bundle.set("/process/cwd", json!("/")).unwrap();
    bundle.set_probe_args(&["sleep", "120"]);
    let id = rt.unique_id("cwd-exec");
    rt.run_with(&bundle, &id, &["--detach"])
        .unwrap()
        .ok()
        .unwrap();
    for cwd in &cwds {
        let out = rt
            .exec_with(&id, &["--cwd", cwd], &["/bin/probe", "report"])
            .unwrap();
        if out.success() {
            assert_cwd_inside(&last_json(&out.stdout), &format!("exec --cwd {cwd}"));
        } else {
            assert!(
                out.stderr.contains("cwd"),
                "exec --cwd {cwd}: error does not name the cwd: {}",
                out.stderr
            );
        }
    }
    // The container itself is unharmed.
    assert_eq!(rt.state_json(&id).unwrap()["status"], "running");
    rt.delete_force(&id).unwrap().ok().unwrap();
}

// ---------------------------------------------------------------------------------------
// 3. proc or sysfs mounted onto a symlink or a file (CVE-2019-19921, CVE-2019-16884)
// ---------------------------------------------------------------------------------------

enum Plant {
    /// A symlink with this target.
    Symlink(String),
    /// A regular file.
    File,
}

fn plant(bundle: &Bundle, rel: &str, what: &Plant) {
    let p = bundle.rootfs().join(rel);
    if p.is_dir() && !p.is_symlink() {
        fs::remove_dir_all(&p).unwrap();
    } else {
        let _ = fs::remove_file(&p);
    }
    match what {
        Plant::Symlink(target) => std::os::unix::fs::symlink(target, &p).unwrap(),
        Plant::File => fs::write(&p, b"not a directory\n").unwrap(),
    }
}

#[test]
fn proc_and_sysfs_are_never_mounted_through_symlinks_or_on_files() {
    let Some(rt) = runtime() else { return };
    let host = host_dir("berth-host-proc-");
    fs::write(host.path().join("marker"), b"host\n").unwrap();
    let host_target = host.path().to_str().unwrap().to_string();
    let cases = [
        ("proc", "proc", Plant::Symlink("/tmp".into())),
        ("proc", "proc", Plant::Symlink(host_target.clone())),
        (
            "proc",
            "proc",
            Plant::Symlink("../../../../../../..".to_string() + &host_target),
        ),
        ("proc", "proc", Plant::File),
        ("sys", "sysfs", Plant::Symlink(host_target.clone())),
        ("sys", "sysfs", Plant::File),
    ];
    for (dir, fstype, what) in &cases {
        let bundle = Bundle::new().unwrap();
        plant(&bundle, dir, what);
        let label = match what {
            Plant::Symlink(t) => format!("/{dir} -> {t}"),
            Plant::File => format!("/{dir} as a file"),
        };
        let id = rt.unique_id("proc-plant");
        let out = rt.create(&bundle, &id).unwrap();
        let err = one_line_error(&out);
        assert!(
            err.contains(fstype) && err.contains(&format!("/{dir}")),
            "{label}: error does not name {fstype} and /{dir}: {err}"
        );
        assert_nothing_left(&rt, &id, Some(&bundle.rootfs()));
        assert!(
            mounts_under(bundle.path()).is_empty(),
            "{label}: mounts left under the bundle"
        );
        assert!(
            mounts_under(host.path()).is_empty(),
            "{label}: something mounted on the host dir"
        );
        assert_eq!(
            dir_names(host.path()),
            ["marker"],
            "{label}: host dir changed"
        );
        assert_eq!(
            dir_names(&bundle.rootfs().join("tmp")),
            Vec::<String>::new(),
            "{label}: rootfs /tmp changed"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 4. Masked paths when /dev/null is not the null device
// ---------------------------------------------------------------------------------------

/// Replaces the tmpfs /dev with a bind mount of `rootfs/fakedev` (created empty), keeping
/// /dev/pts when `devpts`.
fn bind_fake_dev(bundle: &mut Bundle, devpts: bool) -> PathBuf {
    let dir = bundle.rootfs().join("fakedev");
    fs::create_dir_all(&dir).unwrap();
    let src = dir.to_str().unwrap().to_string();
    let mounts = bundle.config_mut()["mounts"].as_array_mut().unwrap();
    mounts.retain(|m| {
        let d = m["destination"].as_str().unwrap_or_default();
        !(d == "/dev" || d.starts_with("/dev/")) || (devpts && d == "/dev/pts")
    });
    let at = mounts
        .iter()
        .position(|m| m["destination"] == "/dev/pts")
        .unwrap_or(mounts.len());
    mounts.insert(
        at,
        json!({ "destination": "/dev", "type": "bind", "source": src, "options": ["rbind", "rw"] }),
    );
    dir
}

fn mknod(path: &Path, kind: libc::mode_t, major: u32, minor: u32) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: c is a valid NUL-terminated path.
    let rc = unsafe { libc::mknod(c.as_ptr(), kind | 0o666, libc::makedev(major, minor)) };
    assert_eq!(
        rc,
        0,
        "mknod {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

#[test]
fn masked_paths_refuse_a_fake_dev_null() {
    let Some(rt) = runtime() else { return };
    let core_pattern = read_trim("/proc/sys/kernel/core_pattern");
    enum Null {
        Link(&'static str),
        File,
        Zero,
        Real,
    }
    for null in [
        Null::Link("/proc/sys/kernel/core_pattern"),
        Null::Link("/proc/sysrq-trigger"),
        Null::File,
        Null::Zero,
        Null::Real,
    ] {
        let mut bundle = Bundle::new().unwrap();
        let dev = bind_fake_dev(&mut bundle, false);
        let label = match null {
            Null::Link(t) => {
                std::os::unix::fs::symlink(t, dev.join("null")).unwrap();
                format!("null -> {t}")
            }
            Null::File => {
                fs::write(dev.join("null"), b"").unwrap();
                "null as a regular file".into()
            }
            Null::Zero => {
                mknod(&dev.join("null"), libc::S_IFCHR, 1, 5);
                "null with /dev/zero's numbers".into()
            }
            Null::Real => {
                mknod(&dev.join("null"), libc::S_IFCHR, 1, 3);
                "a real null device".into()
            }
        };
        bundle.set_probe_args(&["report"]);
        let id = rt.unique_id("fake-null");
        let out = rt.run(&bundle, &id).unwrap();
        if let Null::Real = null {
            // Control: the same setup with a genuine null device works and masks.
            assert!(out.success(), "{label}: {}", out.stderr);
            let r = last_json(&out.stdout);
            let keys = report_mount(&r, "/proc/keys")
                .unwrap_or_else(|| panic!("/proc/keys not masked: {r}"));
            assert!(
                keys["root"].as_str().unwrap().ends_with("/fakedev/null"),
                "masked from something else: {keys}"
            );
        } else {
            let err = one_line_error(&out);
            assert!(
                err.contains("/dev/null"),
                "{label}: error does not name /dev/null: {err}"
            );
        }
        assert_nothing_left(&rt, &id, Some(&bundle.rootfs()));
        assert_eq!(
            read_trim("/proc/sys/kernel/core_pattern"),
            core_pattern,
            "{label}: host core_pattern changed"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 5. /dev/console and /dev/pts replaced by symlinks (CVE-2025-52565 style)
// ---------------------------------------------------------------------------------------

fn terminal_bundle(devpts: bool) -> (Bundle, PathBuf) {
    let mut bundle = Bundle::new().unwrap();
    let dev = bind_fake_dev(&mut bundle, devpts);
    mknod(&dev.join("null"), libc::S_IFCHR, 1, 3);
    bundle.set("/process/terminal", json!(true)).unwrap();
    bundle.set_probe_args(&["report"]);
    (bundle, dev)
}

fn create_with_console(
    rt: &berth_testkit::Runtime,
    bundle: &Bundle,
    id: &str,
) -> (berth_testkit::CmdOutput, ConsoleSocket) {
    let console = ConsoleSocket::new();
    let sock = console.path.to_str().unwrap().to_string();
    let out = rt
        .create_with(bundle, id, &["--console-socket", &sock])
        .unwrap();
    (out, console)
}

#[test]
fn console_and_pty_symlinks_are_refused() {
    let Some(rt) = runtime() else { return };

    // Control: a plain /dev works with a terminal, and the probe sees it.
    let (bundle, _dev) = terminal_bundle(true);
    let id = rt.unique_id("console-ok");
    let (out, console) = create_with_console(&rt, &bundle, &id);
    assert!(out.success(), "control create: {}", out.stderr);
    let master = console
        .master()
        .expect("pty master over the console socket");
    rt.start(&id).unwrap().ok().unwrap();
    let shown = read_pty(&master, Duration::from_secs(20));
    let json_line = shown
        .lines()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| panic!("no report on the pty: {shown:?}"));
    let r: Value = serde_json::from_str(json_line.trim()).unwrap();
    assert_eq!(r["tty"]["0"]["isatty"], true, "{}", r["tty"]);
    rt.wait_stopped(&id, Duration::from_secs(20)).unwrap();
    rt.delete(&id).unwrap().ok().unwrap();

    for target in [
        "/proc/sysrq-trigger",
        "/proc/sys/kernel/core_pattern",
        "pts/0",
    ] {
        let (bundle, dev) = terminal_bundle(true);
        std::os::unix::fs::symlink(target, dev.join("console")).unwrap();
        let id = rt.unique_id("console-link");
        let (out, console) = create_with_console(&rt, &bundle, &id);
        if out.success() {
            // Acceptable only if the pty went over the symlink itself, not its target.
            let pid = state_pid(&rt, &id);
            let info = read_trim(format!("/proc/{pid}/mountinfo"));
            let devpts: Vec<&str> = info.lines().filter(|l| l.contains(" - devpts ")).collect();
            let on_console = devpts
                .iter()
                .filter(|l| l.split(' ').nth(4) == Some("/dev/console"))
                .count();
            assert_eq!(
                on_console, 1,
                "console -> {target}: pty not on /dev/console: {devpts:?}"
            );
            for l in &devpts {
                let mp = l.split(' ').nth(4).unwrap();
                assert!(
                    mp == "/dev/console" || mp == "/dev/pts",
                    "console -> {target}: pty mounted on {mp}"
                );
            }
            assert!(console.master().is_ok());
            rt.delete_force(&id).unwrap().ok().unwrap();
        } else {
            let err = one_line_error(&out);
            assert!(
                err.contains("/dev/console"),
                "console -> {target}: error does not name /dev/console: {err}"
            );
            assert!(
                console.master().is_err(),
                "console -> {target}: a pty master was handed out"
            );
        }
        assert_nothing_left(&rt, &id, Some(&bundle.rootfs()));
        assert!(
            dev.join("console").is_symlink(),
            "the planted symlink was replaced"
        );
    }

    // No devpts mounted: the image's own /dev/pts, with ptmx and 0 planted.
    for (ptmx_target, zero_target) in [
        ("/proc/sysrq-trigger", "/proc/sysrq-trigger"),
        ("/dev/ptmx", "/dev/console"),
    ] {
        let (bundle, dev) = terminal_bundle(false);
        fs::create_dir(dev.join("pts")).unwrap();
        std::os::unix::fs::symlink(ptmx_target, dev.join("pts/ptmx")).unwrap();
        std::os::unix::fs::symlink(zero_target, dev.join("pts/0")).unwrap();
        let id = rt.unique_id("pts-link");
        let (out, console) = create_with_console(&rt, &bundle, &id);
        let err = one_line_error(&out);
        assert!(
            err.contains("/dev/pts/ptmx"),
            "pts/ptmx -> {ptmx_target}: error does not name it: {err}"
        );
        assert!(
            console.master().is_err(),
            "pts/ptmx -> {ptmx_target}: a pty master was handed out"
        );
        assert_nothing_left(&rt, &id, Some(&bundle.rootfs()));
    }

    // A real ptmx node outside any devpts opens no host pty either.
    let (bundle, dev) = terminal_bundle(false);
    fs::create_dir(dev.join("pts")).unwrap();
    mknod(&dev.join("pts/ptmx"), libc::S_IFCHR, 5, 2);
    std::os::unix::fs::symlink("/proc/sysrq-trigger", dev.join("pts/0")).unwrap();
    let id = rt.unique_id("pts-node");
    let (out, console) = create_with_console(&rt, &bundle, &id);
    let err = one_line_error(&out);
    assert!(
        err.contains("/dev/pts/ptmx") || err.contains("pty"),
        "error does not name the pty: {err}"
    );
    assert!(console.master().is_err(), "a pty master was handed out");
    assert_nothing_left(&rt, &id, Some(&bundle.rootfs()));
}

// ---------------------------------------------------------------------------------------
// 6. An image whose /dev is a symlink
// ---------------------------------------------------------------------------------------

#[test]
fn dev_symlink_in_image_stays_inside_rootfs() {
    let Some(rt) = runtime() else { return };

    // Inside: /dev -> /tmp/devdir. Either it runs with /dev in the rootfs or fails clearly.
    let bundle = Bundle::new().unwrap();
    plant(&bundle, "dev", &Plant::Symlink("/tmp/devdir".into()));
    fs::create_dir_all(bundle.rootfs().join("tmp/devdir")).unwrap();
    let id = rt.unique_id("dev-link-in");
    let out = rt.run(&bundle, &id).unwrap();
    if out.success() {
        let r = last_json(&out.stdout);
        let m = report_mount(&r, "/tmp/devdir")
            .unwrap_or_else(|| panic!("no /dev tmpfs at /tmp/devdir: {r}"));
        assert_eq!(m["fstype"], "tmpfs", "{m}");
        assert!(
            report_mount(&r, "/tmp/devdir/pts").is_some(),
            "devpts not under the real /dev: {r}"
        );
    } else {
        assert!(
            out.stderr.contains("/dev"),
            "error does not name /dev: {}",
            out.stderr
        );
    }
    assert_nothing_left(&rt, &id, Some(&bundle.rootfs()));
    assert!(mounts_under(bundle.path()).is_empty());

    // Outside: /dev -> an absolute path that exists on the host with a marker.
    let host = tempfile::Builder::new()
        .prefix("berth-hostdev-")
        .tempdir_in("/run")
        .unwrap();
    fs::write(host.path().join("marker"), b"host\n").unwrap();
    let bundle = Bundle::new().unwrap();
    plant(
        &bundle,
        "dev",
        &Plant::Symlink(host.path().to_str().unwrap().into()),
    );
    let id = rt.unique_id("dev-link-out");
    let out = rt.run(&bundle, &id).unwrap();
    if out.success() {
        let r = last_json(&out.stdout);
        let m = report_mount(&r, host.path().to_str().unwrap())
            .unwrap_or_else(|| panic!("no /dev tmpfs: {r}"));
        assert_eq!(m["fstype"], "tmpfs", "{m}");
        // The tmpfs landed on the rootfs's own copy of that path, which the runtime made.
        assert!(bundle
            .rootfs()
            .join(host.path().strip_prefix("/").unwrap())
            .is_dir());
    } else {
        let err = one_line_error(&out);
        assert!(err.contains("/dev"), "error does not name /dev: {err}");
    }
    assert_nothing_left(&rt, &id, Some(&bundle.rootfs()));
    assert_eq!(
        dir_names(host.path()),
        ["marker"],
        "the host dir was written to"
    );
    assert!(
        mounts_under(host.path()).is_empty(),
        "something was mounted on the host dir"
    );
    assert!(mounts_under(bundle.path()).is_empty());
}

// ---------------------------------------------------------------------------------------
// 7. Mount targets that are symlinks pointing outside the rootfs
// ---------------------------------------------------------------------------------------

#[test]
fn bind_mount_through_symlink_lands_inside_rootfs() {
    let Some(rt) = runtime() else { return };
    let src = host_dir("berth-bind-src-");
    fs::write(src.path().join("marker"), b"source\n").unwrap();
    let target = host_dir("berth-bind-target-");
    let t = target.path().to_str().unwrap().to_string();

    for precreate in [false, true] {
        let mut bundle = Bundle::new().unwrap();
        plant(&bundle, "data", &Plant::Symlink(t.clone()));
        let inside = bundle.rootfs().join(t.trim_start_matches('/'));
        if precreate {
            fs::create_dir_all(&inside).unwrap();
        }
        bundle.add_mount(json!({
            "destination": "/data", "type": "bind", "source": src.path(), "options": ["rbind", "rw"]
        }));
        bundle.set_args(&[
            "/bin/sh",
            "-c",
            "/bin/probe try-write /data/written x; /bin/probe try-open /data/marker r",
        ]);
        let id = rt.unique_id("bind-link");
        let out = rt.run(&bundle, &id).unwrap();
        if precreate {
            // The mount landed on rootfs/<target>, which /data leads to inside the container.
            assert!(out.success(), "{}", out.stderr);
            let lines: Vec<Value> = out
                .stdout
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(
                lines[0]["ok"], true,
                "write through the bind: {}",
                out.stdout
            );
            assert_eq!(
                lines[1]["ok"], true,
                "source not visible at /data: {}",
                out.stdout
            );
            assert_eq!(dir_names(src.path()), ["marker", "written"]);
            fs::remove_file(src.path().join("written")).unwrap();
        } else if out.success() {
            // Only acceptable if it stayed inside: the host target must be untouched.
            assert!(
                inside.is_dir(),
                "mounted somewhere other than inside the rootfs"
            );
        } else {
            assert!(
                out.stderr.contains("/data"),
                "error does not name /data: {}",
                out.stderr
            );
        }
        assert_nothing_left(&rt, &id, Some(&bundle.rootfs()));
        assert!(
            dir_names(target.path()).is_empty(),
            "files appeared in the host target dir"
        );
        assert!(
            mounts_under(target.path()).is_empty(),
            "the host target dir got a mount"
        );
        assert!(mounts_under(bundle.path()).is_empty());
        assert_eq!(dir_names(src.path()), ["marker"]);
    }
}

// ---------------------------------------------------------------------------------------
// 8. Inheritable capabilities stay empty (CVE-2022-29162)
// ---------------------------------------------------------------------------------------

#[test]
fn inheritable_capabilities_stay_empty() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new_hardlinked().unwrap();
    let r = rt.run_probe(&bundle).unwrap();
    assert_eq!(
        r["capabilities"]["CapInh"]["hex"], "0000000000000000",
        "{}",
        r["capabilities"]
    );

    bundle.set_probe_args(&["sleep", "120"]);
    let id = rt.unique_id("capinh");
    rt.run_with(&bundle, &id, &["--detach"])
        .unwrap()
        .ok()
        .unwrap();
    let out = rt
        .exec_with(&id, &["--cap", "CAP_SYS_ADMIN"], &["/bin/probe", "report"])
        .unwrap()
        .ok()
        .unwrap();
    let r = last_json(&out.stdout);
    assert_eq!(
        r["capabilities"]["CapInh"]["hex"], "0000000000000000",
        "{}",
        r["capabilities"]
    );
    assert_eq!(
        r["capabilities"]["CapAmb"]["hex"], "0000000000000000",
        "{}",
        r["capabilities"]
    );
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        assert!(
            cap_names(&r, set).contains(&"CAP_SYS_ADMIN".to_string()),
            "{set}: {}",
            r["capabilities"]
        );
    }
    rt.delete_force(&id).unwrap().ok().unwrap();
}

// ---------------------------------------------------------------------------------------
// 9. Host /proc/sys and /proc/sysrq-trigger are not writable
// ---------------------------------------------------------------------------------------

#[test]
fn host_proc_sys_and_sysrq_are_not_writable() {
    let Some(rt) = runtime() else { return };
    let watched: Vec<&str> = [
        "/proc/sys/kernel/hostname",
        "/proc/sys/kernel/sysrq",
        "/proc/sys/vm/swappiness",
        "/proc/sys/kernel/core_pattern",
    ]
    .into_iter()
    .filter(|p| Path::new(p).exists())
    .collect();
    let before: Vec<String> = watched.iter().map(read_trim).collect();
    let mut bundle = Bundle::new_hardlinked().unwrap();
    // Payloads that would do no harm if a write got through: the current core_pattern,
    // an invalid drop_caches value, sysrq's help key.
    let core_pattern = read_trim("/proc/sys/kernel/core_pattern");
    for (path, data) in [
        ("/proc/sys/kernel/hostname", "pwned"),
        ("/proc/sys/vm/drop_caches", "0"),
        ("/proc/sysrq-trigger", " "),
        ("/proc/sys/kernel/core_pattern", core_pattern.as_str()),
    ] {
        let w = rt
            .run_probe_args(&mut bundle, &["try-write", path, data])
            .unwrap();
        assert_eq!(w["ok"], false, "wrote {path}: {w}");
        let errno = w["errno"].as_i64().unwrap();
        // ENOENT only where the host kernel has no such file (e.g. without CONFIG_MAGIC_SYSRQ).
        let absent = !Path::new(path).exists() && errno == ENOENT;
        assert!(
            absent || [EROFS, EACCES, EPERM].contains(&errno),
            "{path}: {w}"
        );
        let o = rt
            .run_probe_args(&mut bundle, &["try-open", path, "w"])
            .unwrap();
        assert_eq!(o["ok"], false, "opened {path} for writing: {o}");
    }
    let after: Vec<String> = watched.iter().map(read_trim).collect();
    assert_eq!(before, after, "host values changed");
}

// ---------------------------------------------------------------------------------------
// Seccomp, no_new_privs, user namespaces
// ---------------------------------------------------------------------------------------

/// A default-deny allowlist (Docker's default profile, roughly) without mkdir/mkdirat.
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "arch_prctl",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "clone",
    "clone3",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_wait",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fallocate",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchownat",
    "fcntl",
    "fdatasync",
    "fgetxattr",
    "flock",
    "fork",
    "fstat",
    "fstatfs",
    "fsync",
    "ftruncate",
    "futex",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "gettid",
    "gettimeofday",
    "getuid",
    "getxattr",
    "ioctl",
    "kill",
    "lchown",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "lseek",
    "lstat",
    "madvise",
    "membarrier",
    "mincore",
    "mmap",
    "mprotect",
    "mremap",
    "munmap",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pause",
    "personality",
    "pipe",
    "pipe2",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "preadv",
    "prlimit64",
    "pselect6",
    "pwrite64",
    "pwritev",
    "read",
    "readlink",
    "readlinkat",
    "readv",
    "recvfrom",
    "recvmsg",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "sched_getaffinity",
    "sched_yield",
    "select",
    "sendfile",
    "sendmsg",
    "sendto",
    "set_robust_list",
    "set_tid_address",
    "setgid",
    "setgroups",
    "setitimer",
    "setpgid",
    "setresgid",
    "setresuid",
    "setsid",
    "setsockopt",
    "setuid",
    "shutdown",
    "sigaltstack",
    "socket",
    "socketpair",
    "stat",
    "statfs",
    "statx",
    "symlink",
    "symlinkat",
    "sysinfo",
    "tgkill",
    "time",
    "times",
    "tkill",
    "truncate",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utimensat",
    "vfork",
    "wait4",
    "waitid",
    "write",
    "writev",
];

#[test]
fn seccomp_default_deny_blocks_unlisted_syscalls() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new_hardlinked().unwrap();
    bundle
        .set(
            "/linux/seccomp",
            json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": 1,
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{ "names": ALLOWED, "action": "SCMP_ACT_ALLOW" }]
            }),
        )
        .unwrap();
    let r = rt.run_probe(&bundle).unwrap();
    assert_eq!(r["seccomp"], 2, "not in filter mode: {r}");
    // Without the filter mkdir on the read-only root fails with EROFS.
    let m = rt
        .run_probe_args(&mut bundle, &["try-syscall", "mkdir"])
        .unwrap();
    assert_eq!(m["errno"], EPERM, "mkdir not blocked by the filter: {m}");
    // Listed calls still work.
    let k = rt
        .run_probe_args(&mut bundle, &["try-syscall", "chmod"])
        .unwrap();
    assert_ne!(k["errno"], EPERM, "chmod should reach the kernel: {k}");
}

#[test]
fn no_new_privs_follows_the_spec() {
    let Some(rt) = runtime() else { return };
    let mut bundle = Bundle::new_hardlinked().unwrap();
    assert_eq!(rt.run_probe(&bundle).unwrap()["no_new_privs"], true);
    bundle
        .set("/process/noNewPrivileges", json!(false))
        .unwrap();
    assert_eq!(rt.run_probe(&bundle).unwrap()["no_new_privs"], false);

    bundle.set_probe_args(&["sleep", "120"]);
    let id = rt.unique_id("nnp");
    rt.run_with(&bundle, &id, &["--detach"])
        .unwrap()
        .ok()
        .unwrap();
    let out = rt
        .exec_with(&id, &["--no-new-privs"], &["/bin/probe", "report"])
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(last_json(&out.stdout)["no_new_privs"], true);
    rt.delete_force(&id).unwrap().ok().unwrap();
}

#[test]
fn user_namespace_maps_root_away_from_host_root() {
    let Some(rt) = runtime() else { return };
    let host = host_dir("berth-userns-host-");
    fs::write(host.path().join("owned-by-host-root"), b"x\n").unwrap();
    let mut bundle = Bundle::new().unwrap();
    chown_tree(&bundle.rootfs(), 100_000);
    let map = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    bundle.set_namespace("user", None);
    bundle.set("/linux/uidMappings", map.clone()).unwrap();
    bundle.set("/linux/gidMappings", map).unwrap();
    // Even with DAC_OVERRIDE, root in the container is not root over host files.
    let caps = json!([
        "CAP_AUDIT_WRITE",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_DAC_OVERRIDE",
        "CAP_FOWNER",
        "CAP_CHOWN"
    ]);
    for set in ["bounding", "effective", "permitted"] {
        bundle
            .set(&format!("/process/capabilities/{set}"), caps.clone())
            .unwrap();
    }
    bundle.add_mount(json!({ "destination": "/hostdir", "type": "bind", "source": host.path(), "options": ["rbind", "rw"] }));

    let r = rt.run_probe(&bundle).unwrap();
    assert_eq!(r["uid"], 0, "{r}");
    let uid_map: Vec<&str> = r["uid_map"].as_str().unwrap().split_whitespace().collect();
    assert_eq!(uid_map, ["0", "100000", "65536"], "{}", r["uid_map"]);
    let gid_map: Vec<&str> = r["gid_map"].as_str().unwrap().split_whitespace().collect();
    assert_eq!(gid_map, ["0", "100000", "65536"], "{}", r["gid_map"]);
    assert_ne!(r["namespaces"]["user"].as_u64(), host_ns_inode("user"));

    let mut bundle = bundle;
    for (op, path) in [
        ("try-write", "/hostdir/new-file"),
        ("try-write", "/hostdir/owned-by-host-root"),
    ] {
        let w = rt
            .run_probe_args(&mut bundle, &[op, path, "pwned"])
            .unwrap();
        assert_eq!(w["ok"], false, "{op} {path}: {w}");
        assert_eq!(w["errno"], EACCES, "{op} {path}: {w}");
    }
    assert_eq!(dir_names(host.path()), ["owned-by-host-root"]);
    assert_eq!(read_trim(host.path().join("owned-by-host-root")), "x");
    let meta = fs::metadata(host.path().join("owned-by-host-root")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
}
