//! Test peers for berthd: the daemon itself on a private socket and data root, the reference
//! registry, test images pushed with skopeo, and the docker CLI pointed at berthd.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

pub fn berthd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_berthd"))
}

/// The `berth` CLI next to berthd in the target dir (built by the workspace build).
pub fn berth_bin() -> PathBuf {
    berthd_bin().with_file_name("berth")
}

/// Whether the tools a test needs are installed; prints why a test is skipped.
pub fn have(tools: &[&str]) -> bool {
    for tool in tools {
        let found = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success());
        if !found {
            eprintln!("skipping: {tool} is not installed");
            return false;
        }
    }
    true
}

/// A berthd on its own socket and state, killed and cleaned up on drop.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub data_root: PathBuf,
    pub extra_args: Vec<String>,
    pub config_json: String,
    child: Option<Child>,
}

impl Daemon {
    pub fn start(extra_args: &[&str]) -> Daemon {
        Daemon::start_with_config("{}", extra_args)
    }

    /// Starts berthd with `config_json` as its daemon.json.
    pub fn start_with_config(config_json: &str, extra_args: &[&str]) -> Daemon {
        let dir = tempfile::Builder::new().prefix("berthd-test-").tempdir_in("/var/tmp").unwrap();
        let socket = dir.path().join("berth.sock");
        let data_root = dir.path().join("data");
        let extra_args = extra_args.iter().map(|s| s.to_string()).collect();
        let mut daemon = Daemon { socket, data_root, dir, extra_args, config_json: config_json.to_string(), child: None };
        daemon.spawn();
        daemon
    }

    /// Starts (or restarts) the daemon process on the same state.
    pub fn spawn(&mut self) {
        let dir = self.dir.path();
        std::fs::write(dir.join("daemon.json"), &self.config_json).unwrap();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("berthd.log")).unwrap();
        let child = Command::new(berthd_bin())
            .arg("--config-file")
            .arg(dir.join("daemon.json"))
            .arg("--data-root")
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("berthd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start berthd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("berthd exited at start ({status}):\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("berthd did not listen on {}:\n{}", self.socket.display(), self.log());
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("berthd.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        unsafe_free_kill(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "berthd did not stop on SIGTERM:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs the docker CLI against this daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_with(docker_cli(), args, None)
    }

    pub fn docker_with(&self, cli: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let config = self.dir.path().join("docker-config");
        std::fs::create_dir_all(&config).unwrap();
        run(Command::new(cli).env("DOCKER_CONFIG", &config).arg("-H").arg(self.host()).args(args), stdin)
    }

    /// Runs the berth CLI against this daemon.
    pub fn berth(&self, args: &[&str]) -> Output {
        let config = self.dir.path().join("berth-config");
        run(Command::new(berth_bin()).env("BERTH_CONFIG", &config).env("HOME", self.dir.path()).arg("-H").arg(self.host()).args(args), None)
    }
}

fn unsafe_free_kill(pid: u32, signal: i32) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::try_from(signal).unwrap());
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Containers outlive berthd: remove them while it runs, then kill what is left.
        if self.child.is_some() {
            let ids = stdout(&self.docker(&["ps", "-aq"]));
            if !ids.trim().is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids.split_whitespace());
                let _ = self.docker(&args);
            }
        }
        kill_container_leftovers(self.dir.path());
        if let Some(mut child) = self.child.take() {
            unsafe_free_kill(child.id(), libc::SIGTERM);
            for _ in 0..200 {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- berthd log ---\n{}", self.log());
        }
        // Layer directories may hold read-only dirs; make them removable.
        let _ = Command::new("chmod").arg("-R").arg("u+rwx").arg(self.dir.path()).output();
    }
}

/// Kills the containers and shims a test left under `dir` (berthd may be dead) and
/// unmounts everything mounted there.
pub fn kill_container_leftovers(dir: &Path) {
    let containers = dir.join("data/containers");
    for entry in std::fs::read_dir(&containers).into_iter().flatten().flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("container.json")) else { continue };
        let Ok(record) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        for key in ["pid", "shim_pid"] {
            if let Some(pid) = record["state"][key].as_i64().filter(|p| *p > 0) {
                unsafe_free_kill(pid as u32, libc::SIGKILL);
            }
        }
    }
    std::thread::sleep(Duration::from_millis(100));
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.display().to_string();
    let mut mounts: Vec<&str> = mountinfo.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&prefix)).collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let _ = Command::new("umount").arg("-l").arg(m).output();
    }
}

/// Loads a busybox image (Debian's busybox-static) into the daemon as `name`.
pub fn load_busybox(daemon: &Daemon, work: &Path, name: &str) {
    let rootfs = busybox_rootfs(work);
    let archive = work.join("busybox.tar");
    ok(run(
        Command::new(repo_root().join("tests/make-image.py"))
            .arg(work.join("layout"))
            .arg("--layer")
            .arg(&rootfs)
            .args(["--config-json", r#"{"Cmd":["sh"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}"#])
            .arg("--docker-archive")
            .arg(&archive)
            .arg("--repo-tag")
            .arg(name),
        None,
    ));
    ok(daemon.docker(&["load", "-q", "-i", &archive.display().to_string()]));
}

pub fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    child.wait_with_output().unwrap()
}

/// The docker CLI to test with: `BERTH_TEST_DOCKER_CLI`, else the first `docker` on PATH.
pub fn docker_cli() -> &'static str {
    static CLI: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CLI.get_or_init(|| std::env::var("BERTH_TEST_DOCKER_CLI").unwrap_or_else(|_| "docker".to_string()))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
#[track_caller]
pub fn ok(o: Output) -> String {
    assert!(o.status.success(), "command failed ({}):\nstdout: {}\nstderr: {}", o.status, stdout(&o), stderr(&o));
    stdout(&o)
}

/// Asserts failure and returns stderr.
#[track_caller]
pub fn fails(o: Output) -> String {
    assert!(!o.status.success(), "command should have failed:\nstdout: {}\nstderr: {}", stdout(&o), stderr(&o));
    stderr(&o)
}

/// The reference registry on a free loopback port, stopped on drop.
pub struct Registry {
    pub dir: tempfile::TempDir,
    pub addr: String,
}

impl Registry {
    pub fn start(args: &[&str]) -> Registry {
        let dir = tempfile::Builder::new().prefix("registry-test-").tempdir_in("/var/tmp").unwrap();
        let out = run(Command::new(repo_root().join("tests/registry.sh")).arg("start").arg(dir.path()).args(args), None);
        let addr = ok(out).trim().to_string();
        Registry { dir, addr }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = run(Command::new(repo_root().join("tests/registry.sh")).arg("stop").arg(self.dir.path()), None);
    }
}

/// A busybox rootfs directory (from Debian's busybox-static), built once per test.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    ok(run(Command::new(repo_root().join("tests/make-rootfs.sh")).arg(&rootfs), None));
    rootfs
}

/// Builds an OCI layout from layer dirs and pushes it to `registry` as `name:tag` with
/// skopeo; returns the pushed manifest digest.
pub fn push_test_image(registry: &Registry, layers: &[&Path], name: &str, extra: &[&str]) -> String {
    let layout = registry.dir.path().join(format!("layout-{}", name.replace(['/', ':'], "_")));
    let mut cmd = Command::new(repo_root().join("tests/make-image.py"));
    cmd.arg(&layout);
    for l in layers {
        cmd.arg("--layer").arg(l);
    }
    cmd.args(extra);
    let digest = ok(run(&mut cmd, None)).trim().to_string();
    ok(run(
        Command::new("skopeo").args(["copy", "-q", "--dest-tls-verify=false", "--preserve-digests"]).arg(format!("oci:{}:latest", layout.display())).arg(format!("docker://{}/{name}", registry.addr)),
        None,
    ));
    digest
}
